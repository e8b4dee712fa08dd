//! Kubernetes name and label syntax, checked before any API call so bad input never reaches it.

/// Why a name or label was refused, phrased as the rule it broke.
pub type Rule = String;

/// Longest piece of a caller's input an error message repeats back.
pub const MAX_ECHOED_CHARS: usize = 64;

/// A caller's value as an error message may quote it: at most [`MAX_ECHOED_CHARS`] characters
/// and then `…`, so a megabyte of input does not come back as a megabyte of grpc-message.
pub fn echo(value: &str) -> String {
    match value.char_indices().nth(MAX_ECHOED_CHARS) {
        Some((end, _)) => format!("{}…", &value[..end]),
        None => value.to_owned(),
    }
}

/// Checks a DNS-1123 label (namespaces): at most 63 lowercase alphanumerics or '-',
/// starting and ending with an alphanumeric.
pub fn check_dns1123_label(value: &str) -> Result<(), Rule> {
    if value.is_empty() {
        return Err("must not be empty".into());
    }
    if value.len() > 63 {
        return Err(format!(
            "must be no more than 63 characters (got {})",
            value.len()
        ));
    }
    if !label_shape(value) {
        return Err(
            "a DNS-1123 label must consist of lower case alphanumeric characters or '-', \
             and must start and end with an alphanumeric character"
                .into(),
        );
    }
    Ok(())
}

/// Checks a DNS-1123 subdomain (ServiceAccounts, Secrets): at most 253 characters,
/// dot-separated DNS-1123 labels.
pub fn check_dns1123_subdomain(value: &str) -> Result<(), Rule> {
    if value.is_empty() {
        return Err("must not be empty".into());
    }
    if value.len() > 253 {
        return Err(format!(
            "must be no more than 253 characters (got {})",
            value.len()
        ));
    }
    if !value.split('.').all(label_shape) {
        return Err(
            "a DNS-1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', \
             and must start and end with an alphanumeric character"
                .into(),
        );
    }
    Ok(())
}

/// Checks an RBAC role name: Kubernetes accepts any path segment, tokend also requires it to be
/// printable ASCII so it can appear in binding names.
pub fn check_role_name(value: &str) -> Result<(), Rule> {
    if value.is_empty() {
        return Err("must not be empty".into());
    }
    if value.len() > 253 {
        return Err(format!(
            "must be no more than 253 characters (got {})",
            value.len()
        ));
    }
    if value == "." || value == ".." {
        return Err("may not be '.' or '..'".into());
    }
    if !value
        .chars()
        .all(|c| c.is_ascii_graphic() && c != '/' && c != '%')
    {
        return Err("may contain only printable ASCII characters other than '/' and '%'".into());
    }
    Ok(())
}

/// Checks a label key: an optional DNS-1123 subdomain prefix and '/', then a name of at most 63
/// alphanumerics, '-', '_' or '.', starting and ending with an alphanumeric.
pub fn check_label_key(key: &str) -> Result<(), Rule> {
    let name = match key.split_once('/') {
        Some((prefix, name)) => {
            check_dns1123_subdomain(prefix).map_err(|rule| format!("prefix {rule}"))?;
            name
        }
        None => key,
    };
    if name.is_empty() {
        return Err("name part must not be empty".into());
    }
    if name.len() > 63 || !qualified_shape(name) {
        return Err(
            "name part must be no more than 63 alphanumeric characters, '-', '_' or '.', \
             starting and ending with an alphanumeric character"
                .into(),
        );
    }
    Ok(())
}

/// Checks a label value: empty, or at most 63 alphanumerics, '-', '_' or '.', starting and ending
/// with an alphanumeric.
pub fn check_label_value(value: &str) -> Result<(), Rule> {
    if value.is_empty() {
        return Ok(());
    }
    if value.len() > 63 || !qualified_shape(value) {
        return Err(
            "must be empty or no more than 63 alphanumeric characters, '-', '_' or '.', \
             starting and ending with an alphanumeric character"
                .into(),
        );
    }
    Ok(())
}

fn label_shape(part: &str) -> bool {
    let bytes = part.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
}

fn qualified_shape(part: &str) -> bool {
    let bytes = part.as_bytes();
    bytes
        .iter()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_accept_kubernetes_names_and_refuse_the_rest() {
        for ok in ["default", "a", "team-1", &"a".repeat(63)] {
            assert!(check_dns1123_label(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "Default",
            "-a",
            "a-",
            "a.b",
            "a_b",
            "ü",
            "../x",
            &"a".repeat(64),
        ] {
            assert!(check_dns1123_label(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn subdomains_allow_dots_between_labels() {
        for ok in ["demo", "my.app", "a-b.c-d"] {
            assert!(check_dns1123_subdomain(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            ".a",
            "a.",
            "a..b",
            "Bad_Name",
            "../etc",
            &"a".repeat(254),
        ] {
            assert!(check_dns1123_subdomain(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn label_keys_and_values_follow_the_qualified_name_rule() {
        assert!(check_label_key("team").is_ok());
        assert!(check_label_key("example.com/team_x").is_ok());
        assert!(check_label_key("Example.com/team").is_err());
        assert!(check_label_key("a/").is_err());
        assert!(check_label_key("has space").is_err());
        assert!(check_label_value("").is_ok());
        assert!(check_label_value("Blue_1.x").is_ok());
        assert!(check_label_value("-x").is_err());
        assert!(check_label_value(&"v".repeat(64)).is_err());
    }

    #[test]
    fn role_names_refuse_path_characters() {
        assert!(check_role_name("system:auth-delegator").is_ok());
        assert!(check_role_name("a/b").is_err());
        assert!(check_role_name("..").is_err());
        assert!(check_role_name("").is_err());
    }
}
