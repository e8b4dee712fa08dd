//! Name, label and data-key validation with the messages kube-apiserver's validators produce.

use crate::status::FieldError;

const DNS1123_SUBDOMAIN_MSG: &str = "a DNS-1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const DNS1123_LABEL_MSG: &str = "a DNS-1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";
const QUALIFIED_NAME_MSG: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
const CONFIG_KEY_MSG: &str = "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')";

/// How an object's name is validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameRule {
    /// DNS-1123 subdomain (most namespaced objects).
    Subdomain,
    /// DNS-1123 label (namespaces).
    Label,
    /// Any path segment (RBAC objects, which allow `system:...` names).
    PathSegment,
}

fn is_dns_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// Whether `s` matches the DNS-1123 subdomain regex (length aside).
pub fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty() && s.split('.').all(is_dns_label)
}

/// Validation messages for a name under `rule` (empty when valid).
pub fn name_errors(name: &str, rule: NameRule) -> Vec<String> {
    let mut errs = Vec::new();
    match rule {
        NameRule::Subdomain => {
            if name.len() > 253 {
                errs.push("must be no more than 253 characters".to_string());
            }
            if !is_dns_subdomain(name) {
                errs.push(DNS1123_SUBDOMAIN_MSG.to_string());
            }
        }
        NameRule::Label => {
            if name.len() > 63 {
                errs.push("must be no more than 63 characters".to_string());
            }
            if !is_dns_label(name) {
                errs.push(DNS1123_LABEL_MSG.to_string());
            }
        }
        NameRule::PathSegment => {
            if name == "." || name == ".." {
                errs.push(format!("may not be '{name}'"));
            }
            for bad in ["/", "%"] {
                if name.contains(bad) {
                    errs.push(format!("may not contain '{bad}'"));
                }
            }
        }
    }
    errs
}

/// Field errors for `metadata.name`.
pub fn validate_name(name: &str, rule: NameRule) -> Vec<FieldError> {
    name_errors(name, rule)
        .into_iter()
        .map(|m| FieldError::invalid("metadata.name", name, &m))
        .collect()
}

fn is_label_value(v: &str) -> bool {
    let b = v.as_bytes();
    if b.is_empty() {
        return true;
    }
    b.len() <= 63
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

fn is_qualified_name_part(v: &str) -> bool {
    !v.is_empty() && is_label_value(v)
}

/// Whether `key` is a valid label key (`[prefix/]name`).
pub fn is_label_key(key: &str) -> bool {
    match key.split_once('/') {
        Some((prefix, name)) => {
            prefix.len() <= 253 && is_dns_subdomain(prefix) && is_qualified_name_part(name)
        }
        None => is_qualified_name_part(key),
    }
}

/// Whether `value` is a valid label value.
pub fn is_valid_label_value(value: &str) -> bool {
    is_label_value(value)
}

/// Field errors for an object's labels.
pub fn validate_labels(labels: &serde_json::Map<String, serde_json::Value>) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for (k, v) in labels {
        if !is_label_key(k) {
            errs.push(FieldError::invalid(
                "metadata.labels",
                k,
                QUALIFIED_NAME_MSG,
            ));
        }
        match v.as_str() {
            Some(s) if is_label_value(s) => {}
            Some(s) => errs.push(FieldError::invalid(
                format!("metadata.labels[{k}]"),
                s,
                LABEL_VALUE_MSG,
            )),
            None => errs.push(FieldError::invalid(
                format!("metadata.labels[{k}]"),
                &v.to_string(),
                "must be a string",
            )),
        }
    }
    errs
}

/// Field errors for the keys of a Secret's or ConfigMap's `data`.
pub fn validate_data_keys<'a>(
    field: &str,
    keys: impl Iterator<Item = &'a String>,
) -> Vec<FieldError> {
    keys.filter(|k| {
        k.is_empty()
            || k.len() > 253
            || !k
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
    })
    .map(|k| FieldError::invalid(format!("{field}[{k}]"), k, CONFIG_KEY_MSG))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subdomains() {
        assert!(is_dns_subdomain("demo"));
        assert!(is_dns_subdomain("a.b-c.d1"));
        assert!(!is_dns_subdomain("Bad_Name"));
        assert!(!is_dns_subdomain("-a"));
        assert!(!is_dns_subdomain("a..b"));
        assert!(!is_dns_subdomain(""));
        assert_eq!(name_errors(&"a".repeat(254), NameRule::Subdomain).len(), 1);
    }

    #[test]
    fn labels_reject_dots_for_namespaces() {
        assert!(name_errors("team-a", NameRule::Label).is_empty());
        assert!(!name_errors("team.a", NameRule::Label).is_empty());
        assert!(!name_errors(&"a".repeat(64), NameRule::Label).is_empty());
    }

    #[test]
    fn rbac_names_allow_colons() {
        assert!(name_errors("system:basic-user", NameRule::PathSegment).is_empty());
        assert!(!name_errors("a/b", NameRule::PathSegment).is_empty());
        assert!(!name_errors("..", NameRule::PathSegment).is_empty());
    }

    #[test]
    fn invalid_name_message_matches_the_recording() {
        let errs = validate_name("Bad_Name", NameRule::Subdomain);
        assert_eq!(errs.len(), 1);
        assert!(errs[0].body.starts_with(
            "Invalid value: \"Bad_Name\": a DNS-1123 subdomain must consist of lower case"
        ));
    }

    #[test]
    fn label_keys_and_values() {
        assert!(is_label_key("tokend.io/token"));
        assert!(is_label_key("app"));
        assert!(!is_label_key("bad key"));
        assert!(!is_label_key("Bad_/x"));
        assert!(is_valid_label_value(""));
        assert!(is_valid_label_value("v1.2_x"));
        assert!(!is_valid_label_value("-x"));
        assert!(!is_valid_label_value(&"a".repeat(64)));
    }
}
