//! RBAC: evaluating stored roles and bindings for a request, and Forbidden bodies. The policy a
//! fresh server starts with is in [`crate::bootstrap_policy`].

use serde_json::{Value, json};

use crate::authn::{MASTERS, UserInfo};
use crate::resources;
use crate::status::{ApiError, GroupResource, go_quote};
use crate::store::{Store, meta_str};

/// The attributes of one request, as the authorizer sees them.
#[derive(Debug, Clone, Default)]
pub struct Attributes {
    /// The requesting user.
    pub user: Option<UserInfo>,
    /// The verb (`get`, `list`, `create`, ... or an HTTP verb for non-resource paths).
    pub verb: String,
    /// Whether this is a resource request (else a non-resource path).
    pub resource_request: bool,
    /// Namespace, empty for cluster scope.
    pub namespace: String,
    /// API group.
    pub api_group: String,
    /// Plural resource.
    pub resource: String,
    /// Subresource.
    pub subresource: String,
    /// Object name.
    pub name: String,
    /// Request path, for non-resource requests.
    pub path: String,
}

/// The authorizer's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Whether the request is allowed.
    pub allowed: bool,
    /// Why (empty when denied, as RBAC leaves it).
    pub reason: String,
}

fn strings<'a>(rule: &'a Value, key: &str) -> impl Iterator<Item = &'a str> + 'a {
    rule.get(key)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
}

fn verb_matches(rule: &Value, verb: &str) -> bool {
    strings(rule, "verbs").any(|v| v == "*" || v == verb)
}

fn api_group_matches(rule: &Value, group: &str) -> bool {
    strings(rule, "apiGroups").any(|g| g == "*" || g == group)
}

fn resource_matches(rule: &Value, combined: &str, subresource: &str) -> bool {
    strings(rule, "resources").any(|r| {
        r == "*"
            || r == combined
            || (!subresource.is_empty()
                && r.len() == subresource.len() + 2
                && r.starts_with("*/")
                && r.ends_with(subresource))
    })
}

fn resource_name_matches(rule: &Value, name: &str) -> bool {
    let mut names = strings(rule, "resourceNames").peekable();
    names.peek().is_none() || names.any(|n| n == name)
}

fn non_resource_url_matches(rule: &Value, path: &str) -> bool {
    strings(rule, "nonResourceURLs").any(|u| {
        u == "*" || u == path || (u.ends_with('*') && path.starts_with(u.trim_end_matches('*')))
    })
}

/// Whether one PolicyRule allows the request (RBAC's `RuleAllows`).
pub fn rule_allows(rule: &Value, a: &Attributes) -> bool {
    if a.resource_request {
        let combined = if a.subresource.is_empty() {
            a.resource.clone()
        } else {
            format!("{}/{}", a.resource, a.subresource)
        };
        verb_matches(rule, &a.verb)
            && api_group_matches(rule, &a.api_group)
            && resource_matches(rule, &combined, &a.subresource)
            && resource_name_matches(rule, &a.name)
    } else {
        verb_matches(rule, &a.verb) && non_resource_url_matches(rule, &a.path)
    }
}

/// Whether a binding subject names the user (ServiceAccount subjects default to `binding_ns`).
fn applies_to(user: &UserInfo, subject: &Value, binding_ns: &str) -> bool {
    let field = |k: &str| subject.get(k).and_then(Value::as_str).unwrap_or("");
    match field("kind") {
        "User" => user.name == field("name"),
        "Group" => user.groups.iter().any(|g| g == field("name")),
        "ServiceAccount" => {
            let ns = if field("namespace").is_empty() {
                binding_ns
            } else {
                field("namespace")
            };
            !ns.is_empty() && user.name == format!("system:serviceaccount:{ns}:{}", field("name"))
        }
        _ => false,
    }
}

fn describe_subject(subject: &Value, binding_ns: &str) -> String {
    let field = |k: &str| subject.get(k).and_then(Value::as_str).unwrap_or("");
    let kind = field("kind");
    if kind == "ServiceAccount" {
        let ns = if field("namespace").is_empty() {
            binding_ns
        } else {
            field("namespace")
        };
        format!("{kind} {}", go_quote(&format!("{}/{ns}", field("name"))))
    } else {
        format!("{kind} {}", go_quote(field("name")))
    }
}

fn rules_of<'a>(store: &'a Store, role_ref: &Value, binding_ns: &str) -> Vec<&'a Value> {
    let kind = role_ref.get("kind").and_then(Value::as_str).unwrap_or("");
    let name = role_ref.get("name").and_then(Value::as_str).unwrap_or("");
    let role = match kind {
        "ClusterRole" => resources::stored_type("rbac.authorization.k8s.io", "clusterroles")
            .and_then(|rt| store.get(rt, "", name)),
        "Role" if !binding_ns.is_empty() => {
            resources::stored_type("rbac.authorization.k8s.io", "roles")
                .and_then(|rt| store.get(rt, binding_ns, name))
        }
        _ => None,
    };
    role.and_then(|r| r.get("rules"))
        .and_then(Value::as_array)
        .map(|rules| rules.iter().collect())
        .unwrap_or_default()
}

fn allowed_by_bindings<'a>(
    store: &'a Store,
    bindings: impl Iterator<Item = &'a Value>,
    a: &Attributes,
    user: &UserInfo,
    cluster: bool,
) -> Option<String> {
    for binding in bindings {
        let binding_ns = meta_str(binding, "namespace").unwrap_or("");
        let Some(role_ref) = binding.get("roleRef") else {
            continue;
        };
        let subjects = binding
            .get("subjects")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let Some(subject) = subjects.iter().find(|s| applies_to(user, s, binding_ns)) else {
            continue;
        };
        if rules_of(store, role_ref, binding_ns)
            .into_iter()
            .any(|rule| rule_allows(rule, a))
        {
            let name = meta_str(binding, "name").unwrap_or("");
            let role_kind = role_ref.get("kind").and_then(Value::as_str).unwrap_or("");
            let role_name = role_ref.get("name").and_then(Value::as_str).unwrap_or("");
            let source = if cluster {
                format!(
                    "ClusterRoleBinding {} of {role_kind} {} to {}",
                    go_quote(name),
                    go_quote(role_name),
                    describe_subject(subject, "")
                )
            } else {
                format!(
                    "RoleBinding {} of {role_kind} {} to {}",
                    go_quote(&format!("{name}/{binding_ns}")),
                    go_quote(role_name),
                    describe_subject(subject, binding_ns)
                )
            };
            return Some(format!("RBAC: allowed by {source}"));
        }
    }
    None
}

/// Evaluates the stored RBAC policy for a request: cluster bindings first, then the namespace's bindings.
pub fn authorize(store: &Store, a: &Attributes) -> Decision {
    let anonymous = UserInfo::anonymous();
    let user = a.user.as_ref().unwrap_or(&anonymous);
    let crb = resources::stored_type("rbac.authorization.k8s.io", "clusterrolebindings");
    let rb = resources::stored_type("rbac.authorization.k8s.io", "rolebindings");
    let mut reason =
        crb.and_then(|rt| allowed_by_bindings(store, store.list(rt, None), a, user, true));
    if reason.is_none()
        && !a.namespace.is_empty()
        && let Some(rt) = rb
    {
        reason = allowed_by_bindings(store, store.list(rt, Some(&a.namespace)), a, user, false);
    }
    match reason {
        Some(reason) => Decision {
            allowed: true,
            reason,
        },
        // system:masters is allowed everything even without the cluster-admin binding.
        None if user.groups.iter().any(|g| g == MASTERS) => Decision {
            allowed: true,
            reason: String::new(),
        },
        None => Decision {
            allowed: false,
            reason: String::new(),
        },
    }
}

/// The 403 Forbidden answer for a denied request, worded as kube-apiserver words it.
pub fn forbidden(a: &Attributes) -> ApiError {
    let user = a.user.as_ref().map(|u| u.name.as_str()).unwrap_or("");
    if !a.resource_request {
        return ApiError::forbidden(
            format!(
                "forbidden: User {} cannot {} path {}",
                go_quote(user),
                a.verb,
                go_quote(&a.path)
            ),
            json!({}),
        );
    }
    let resource = if a.subresource.is_empty() {
        a.resource.clone()
    } else {
        format!("{}/{}", a.resource, a.subresource)
    };
    let what = format!(
        "User {} cannot {} resource {} in API group {}",
        go_quote(user),
        a.verb,
        go_quote(&resource),
        go_quote(&a.api_group)
    );
    let scope = if a.namespace.is_empty() {
        "at the cluster scope".to_string()
    } else {
        format!("in the namespace {}", go_quote(&a.namespace))
    };
    let gr = GroupResource {
        group: &a.api_group,
        resource: &a.resource,
    };
    let subject = if a.name.is_empty() {
        gr.qualified()
    } else {
        format!("{} {}", gr.qualified(), go_quote(&a.name))
    };
    let mut details = serde_json::Map::new();
    if !a.name.is_empty() {
        details.insert("name".into(), a.name.clone().into());
    }
    if !a.api_group.is_empty() {
        details.insert("group".into(), a.api_group.clone().into());
    }
    details.insert("kind".into(), a.resource.clone().into());
    ApiError::forbidden(
        format!("{subject} is forbidden: {what} {scope}"),
        Value::Object(details),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bootstrap_policy::{rule, url_rule};

    fn res(verb: &str, group: &str, resource: &str, sub: &str, name: &str) -> Attributes {
        Attributes {
            verb: verb.into(),
            resource_request: true,
            namespace: "ns".into(),
            api_group: group.into(),
            resource: resource.into(),
            subresource: sub.into(),
            name: name.into(),
            ..Attributes::default()
        }
    }

    #[test]
    fn verbs_groups_and_resources() {
        let r = rule(&[""], &["secrets"], &["get", "list"]);
        assert!(rule_allows(&r, &res("get", "", "secrets", "", "x")));
        assert!(!rule_allows(&r, &res("create", "", "secrets", "", "x")));
        assert!(!rule_allows(&r, &res("get", "apps", "secrets", "", "x")));
        assert!(!rule_allows(&r, &res("get", "", "configmaps", "", "x")));
        let all = rule(&["*"], &["*"], &["*"]);
        assert!(rule_allows(
            &all,
            &res("delete", "rbac.authorization.k8s.io", "roles", "", "")
        ));
    }

    #[test]
    fn subresources_need_their_own_rule() {
        let sa = rule(&[""], &["serviceaccounts"], &["create"]);
        assert!(!rule_allows(
            &sa,
            &res("create", "", "serviceaccounts", "token", "x")
        ));
        let token = rule(&[""], &["serviceaccounts/token"], &["create"]);
        assert!(rule_allows(
            &token,
            &res("create", "", "serviceaccounts", "token", "x")
        ));
        assert!(!rule_allows(
            &token,
            &res("create", "", "serviceaccounts", "", "x")
        ));
        let any_token = rule(&[""], &["*/token"], &["create"]);
        assert!(rule_allows(
            &any_token,
            &res("create", "", "serviceaccounts", "token", "x")
        ));
        let wrong = rule(&[""], &["*/status"], &["create"]);
        assert!(!rule_allows(
            &wrong,
            &res("create", "", "serviceaccounts", "token", "x")
        ));
    }

    #[test]
    fn resource_names_restrict_the_rule() {
        let r = json!({"apiGroups": [""], "resources": ["serviceaccounts/token"],
                       "resourceNames": ["demo"], "verbs": ["create"]});
        assert!(rule_allows(
            &r,
            &res("create", "", "serviceaccounts", "token", "demo")
        ));
        assert!(!rule_allows(
            &r,
            &res("create", "", "serviceaccounts", "token", "other")
        ));
        assert!(!rule_allows(
            &r,
            &res("create", "", "serviceaccounts", "token", "")
        ));
    }

    #[test]
    fn non_resource_urls() {
        let r = url_rule(&["/healthz", "/apis/*"], &["get"]);
        let path = |p: &str, verb: &str| Attributes {
            verb: verb.into(),
            path: p.into(),
            ..Attributes::default()
        };
        assert!(rule_allows(&r, &path("/healthz", "get")));
        assert!(rule_allows(&r, &path("/apis/apps/v1", "get")));
        assert!(!rule_allows(&r, &path("/api", "get")));
        assert!(!rule_allows(&r, &path("/healthz", "post")));
    }

    #[test]
    fn service_account_subjects_default_to_the_binding_namespace() {
        let user = UserInfo::service_account("ns", "sa", "u");
        assert!(applies_to(
            &user,
            &json!({"kind": "ServiceAccount", "name": "sa"}),
            "ns"
        ));
        assert!(!applies_to(
            &user,
            &json!({"kind": "ServiceAccount", "name": "sa"}),
            "other"
        ));
        assert!(!applies_to(
            &user,
            &json!({"kind": "ServiceAccount", "name": "sa"}),
            ""
        ));
        assert!(applies_to(
            &user,
            &json!({"kind": "ServiceAccount", "name": "sa", "namespace": "ns"}),
            ""
        ));
        assert!(applies_to(
            &user,
            &json!({"kind": "Group", "name": "system:serviceaccounts:ns"}),
            ""
        ));
        assert!(!applies_to(
            &user,
            &json!({"kind": "User", "name": "sa"}),
            ""
        ));
    }

    #[test]
    fn forbidden_message_format() {
        let mut a = res("create", "", "serviceaccounts", "", "");
        a.user = Some(UserInfo::service_account("ns", "sa", "u"));
        assert_eq!(
            forbidden(&a).message,
            "serviceaccounts is forbidden: User \"system:serviceaccount:ns:sa\" cannot create resource \"serviceaccounts\" in API group \"\" in the namespace \"ns\""
        );
        a.verb = "list".into();
        a.resource = "pods".into();
        a.namespace = "default".into();
        a.user = Some(UserInfo::anonymous());
        let e = forbidden(&a);
        assert_eq!(
            e.body()["message"],
            "pods is forbidden: User \"system:anonymous\" cannot list resource \"pods\" in API group \"\" in the namespace \"default\""
        );
        assert_eq!(e.body()["details"], json!({"kind": "pods"}));
    }
}
