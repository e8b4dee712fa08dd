//! Bootstrap-token authentication, as kube-apiserver's `--enable-bootstrap-token-auth` does it
//! (k8s.io/kubernetes plugin/pkg/auth/authenticator/token/bootstrap, v1.24): a bearer token
//! `<id>.<secret>` matches the Secret `bootstrap-token-<id>` of type
//! `bootstrap.kubernetes.io/token` in kube-system, unexpired and marked
//! `usage-bootstrap-authentication: "true"`, and is user `system:bootstrap:<id>` in
//! `system:bootstrappers` plus the Secret's `auth-extra-groups`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;
use std::collections::BTreeSet;

use crate::authn::{AUTHENTICATED, UserInfo};
use crate::resources;
use crate::state::Shared;

fn lower_alnum(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// `<id>.<secret>` as kubeadm's BootstrapTokenPattern `\A([a-z0-9]{6})\.([a-z0-9]{16})\z`.
fn parse_token(token: &str) -> Option<(&str, &str)> {
    let (id, secret) = token.split_once('.')?;
    (id.len() == 6 && secret.len() == 16 && lower_alnum(id) && lower_alnum(secret))
        .then_some((id, secret))
}

/// BootstrapGroupPattern: `\Asystem:bootstrappers:[a-z0-9:-]{0,255}[a-z0-9]\z`.
fn valid_group(group: &str) -> bool {
    let Some(rest) = group.strip_prefix("system:bootstrappers:") else {
        return false;
    };
    let Some(last) = rest.chars().last() else {
        return false;
    };
    rest.len() <= 256
        && (last.is_ascii_lowercase() || last.is_ascii_digit())
        && rest
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b':' || b == b'-')
}

/// Namespace of bootstrap token Secrets.
const NAMESPACE: &str = "kube-system";
/// Their type.
const SECRET_TYPE: &str = "bootstrap.kubernetes.io/token";

/// What the bootstrap authenticator makes of `token`: None when the token is not of the
/// bootstrap form at all (other authenticators may try it), `Some(None)` when it has that form
/// and no valid Secret backs it, `Some(Some(user))` when it authenticates.
pub fn authenticate(shared: &Shared, token: &str) -> Option<Option<UserInfo>> {
    let (id, secret) = parse_token(token)?;
    let rt = resources::stored_type("", "secrets")?;
    let store = shared.store();
    let Some(object) = store.get(rt, NAMESPACE, &format!("bootstrap-token-{id}")) else {
        return Some(None);
    };
    Some(user_of(object, id, secret, crate::clock::now_unix()))
}

fn user_of(object: &Value, id: &str, secret: &str, now: i64) -> Option<UserInfo> {
    if object.pointer("/metadata/deletionTimestamp").is_some()
        || object.get("type").and_then(Value::as_str) != Some(SECRET_TYPE)
    {
        return None;
    }
    let data = |key: &str| -> String {
        object
            .pointer(&format!("/data/{key}"))
            .and_then(Value::as_str)
            .and_then(|b64| STANDARD.decode(b64).ok())
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .unwrap_or_default()
    };
    let stored_secret = data("token-secret");
    if aws_lc_rs::constant_time::verify_slices_are_equal(
        stored_secret.as_bytes(),
        secret.as_bytes(),
    )
    .is_err()
        || data("token-id") != id
    {
        return None;
    }
    let expiration = data("expiration");
    if !expiration.is_empty() {
        // An unparseable expiry counts as expired, as in cluster-bootstrap's GetExpiration.
        let expires = expiration.parse::<jiff::Timestamp>().ok()?.as_second();
        if expires <= now {
            return None;
        }
    }
    if data("usage-bootstrap-authentication") != "true" {
        return None;
    }
    // A sorted set, as the real authenticator builds it; one invalid group refuses the token.
    let mut groups = BTreeSet::from(["system:bootstrappers".to_owned()]);
    let extra = data("auth-extra-groups");
    if !extra.is_empty() {
        for group in extra.split(',') {
            if !valid_group(group) {
                return None;
            }
            groups.insert(group.to_owned());
        }
    }
    let mut groups: Vec<String> = groups.into_iter().collect();
    groups.push(AUTHENTICATED.into());
    Some(UserInfo {
        name: format!("system:bootstrap:{id}"),
        uid: String::new(),
        groups,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn secret(data: &[(&str, &str)]) -> Value {
        let data: serde_json::Map<String, Value> = data
            .iter()
            .map(|(k, v)| ((*k).to_owned(), Value::String(STANDARD.encode(v))))
            .collect();
        json!({"type": SECRET_TYPE, "metadata": {"name": "bootstrap-token-abcdef"}, "data": data})
    }

    const GOOD: &[(&str, &str)] = &[
        ("token-id", "abcdef"),
        ("token-secret", "0123456789abcdef"),
        ("usage-bootstrap-authentication", "true"),
        ("expiration", "2030-01-01T00:00:00Z"),
        (
            "auth-extra-groups",
            "system:bootstrappers:z,system:bootstrappers:a",
        ),
    ];

    #[test]
    fn a_valid_secret_names_the_user_and_sorted_groups() {
        let user = user_of(&secret(GOOD), "abcdef", "0123456789abcdef", 0).expect("valid");
        assert_eq!(user.name, "system:bootstrap:abcdef");
        assert_eq!(
            user.groups,
            [
                "system:bootstrappers",
                "system:bootstrappers:a",
                "system:bootstrappers:z",
                "system:authenticated"
            ]
        );
    }

    #[test]
    fn expiry_usage_secret_and_groups_are_honoured() {
        let expired = 1_900_000_000;
        assert!(user_of(&secret(GOOD), "abcdef", "0123456789abcdef", expired).is_none());
        assert!(user_of(&secret(GOOD), "abcdef", "0123456789abcdeX", 0).is_none());
        let mut no_usage = GOOD.to_vec();
        no_usage.retain(|(k, _)| *k != "usage-bootstrap-authentication");
        assert!(user_of(&secret(&no_usage), "abcdef", "0123456789abcdef", 0).is_none());
        let mut bad_group = GOOD.to_vec();
        bad_group.push(("auth-extra-groups", "system:masters"));
        bad_group.remove(4);
        assert!(user_of(&secret(&bad_group), "abcdef", "0123456789abcdef", 0).is_none());
        let mut bad_expiry = GOOD.to_vec();
        bad_expiry[3] = ("expiration", "tomorrow");
        assert!(user_of(&secret(&bad_expiry), "abcdef", "0123456789abcdef", 0).is_none());
    }
}
