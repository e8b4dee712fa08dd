//! The ServiceAccountToken custom resource (`serviceaccounttokens.tokend.io/v1alpha1`): its spec
//! and status as Rust types, from which the CRD in deploy/ is generated (`tokend crd`).

use std::collections::BTreeMap;

use kube::CustomResource;
use kube::CustomResourceExt as _;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What is asked for: a token for a ServiceAccount of this namespace, with an optional
/// ClusterRole bound in this namespace only.
// Each printer column repeats `type_`; clippy reads the repeated keys as duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Debug, Clone, Default, PartialEq, JsonSchema)]
#[kube(
    group = "tokend.io",
    version = "v1alpha1",
    kind = "ServiceAccountToken",
    namespaced,
    shortname = "sat",
    status = "ServiceAccountTokenStatus",
    doc = "A ServiceAccount token declared as an object: tokend writes the token and a kubeconfig into a Secret the resource owns, reports it in status, rotates it before it expires and revokes it when the resource is deleted.",
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(name = "Expires", type_ = "date", json_path = ".status.expirationTime"),
    printcolumn(
        name = "Secret",
        type_ = "string",
        json_path = ".status.secretRef.name"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct ServiceAccountTokenSpec {
    /// Lifetime asked for, e.g. `1h` or `2d12h`; empty means tokend's --default-duration, and
    /// more than its --max-duration is refused. A wish: status.expirationTime is what was granted.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(pattern(
        r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?)$"
    ))]
    pub duration: String,
    /// ServiceAccount the token is for; empty means one made for this resource (named after it)
    /// and owned by it. Naming one needs the right to create its tokens.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub service_account_name: String,
    /// ClusterRole bound to the ServiceAccount with a RoleBinding in this namespace only; tokend's
    /// --allowed-cluster-roles applies, and the requester must be allowed to bind it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub cluster_role: String,
    /// Audiences of the token; empty means the API server's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub audiences: Vec<String>,
    /// Rotate when less than this remains (same grammar as duration): a new token replaces the
    /// old one in the same Secret, and the old one is revoked shortly after. Empty: no rotation;
    /// the token expires and Ready turns False (TokenExpired).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(pattern(
        r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?)$"
    ))]
    pub renew_before: String,
    /// API server URL written into the kubeconfig; default: tokend's --public-server.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub server: String,
    /// Name of the kubeconfig's context, cluster and user; default `NAMESPACE-SERVICEACCOUNT`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub context_name: String,
    /// Who created the resource, stamped by tokend's admission webhook from the API server's
    /// own record of the request and sealed by it; set by no one else (a CREATE carrying it is
    /// refused, and so is an UPDATE changing it, and one tokend cannot prove its webhook wrote
    /// for this object is never acted on). tokend grants no more than this identity could get
    /// itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requester: Option<Requester>,
}

/// The identity that created a ServiceAccountToken, as the API server authenticated it.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Requester {
    /// Username.
    #[serde(default)]
    pub username: String,
    /// Uid, as the authenticator gave it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uid: String,
    /// Groups.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// The authenticator's extra attributes.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, Vec<String>>,
    /// tokend's proof that its webhook wrote this requester for this object, name, generation
    /// and spec (opaque; keyed with tokend's record key). The controller acts on no requester
    /// without it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub seal: String,
}

/// What tokend did for a ServiceAccountToken.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceAccountTokenStatus {
    /// `Ready`: True (SubresourcesReady) while the token is valid and its Secret and
    /// ServiceAccount exist; False with the reason otherwise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The Secret holding `token`, `kubeconfig`, `ca.crt` and `namespace`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretRef>,
    /// When the current token expires, as the API server set it (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiration_time: Option<String>,
    /// tokend's id of the current token (GetToken, ListTokens, RevokeToken).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_id: Option<String>,
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The generation of the spec the current token was issued for (a later spec is issued
    /// anew, as its requester).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issued_generation: Option<i64>,
    /// A token replaced by rotation, revoked at `previousRevokeAt`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_token_id: Option<String>,
    /// When the previous token is revoked (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_revoke_at: Option<String>,
}

/// Reference to the Secret a ServiceAccountToken owns.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq, JsonSchema)]
pub struct SecretRef {
    /// Name of the Secret, in the resource's namespace.
    pub name: String,
}

/// A condition, as Kubernetes' own types report them.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// The condition's type (`Ready`).
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// One CamelCase word saying why.
    #[serde(default)]
    pub reason: String,
    /// A sentence for people.
    #[serde(default)]
    pub message: String,
    /// When the status last changed (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
    /// The generation the condition was computed for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// The CustomResourceDefinition, as YAML (what `tokend crd` prints and deploy/ holds).
pub fn crd_yaml() -> String {
    let mut crd = ServiceAccountToken::crd();
    // The recommended labels every object in deploy/ carries.
    crd.metadata.labels = Some(
        [
            ("app.kubernetes.io/name", "tokend"),
            ("app.kubernetes.io/instance", "tokend"),
            ("app.kubernetes.io/version", env!("CARGO_PKG_VERSION")),
            ("app.kubernetes.io/component", "controller"),
            ("app.kubernetes.io/part-of", "tokend"),
            ("app.kubernetes.io/managed-by", "kustomize"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect(),
    );
    let body = serde_yaml::to_string(&crd).unwrap_or_else(|e| format!("# cannot render: {e}\n"));
    format!(
        "# Generated from src/controller/resource.rs by `tokend crd`; do not edit by hand\n\
         # (a test fails when this file and the Rust types drift apart).\n{body}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The CRD committed in deploy/ is the one the types generate. To regenerate it after
    /// changing the types: `TOKEND_REGENERATE_CRD=1 cargo test --lib crd_in_deploy`.
    #[test]
    fn crd_in_deploy_matches_the_rust_types() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("deploy/base/crd-serviceaccounttokens.yaml");
        let generated = crd_yaml();
        if std::env::var_os("TOKEND_REGENERATE_CRD").is_some() {
            std::fs::write(&path, &generated).expect("write the CRD");
        }
        let committed = std::fs::read_to_string(&path).expect("read the committed CRD");
        assert!(
            committed == generated,
            "{} differs from the Rust types; regenerate it with \
             `TOKEND_REGENERATE_CRD=1 cargo test --lib crd_in_deploy` (or `tokend crd > FILE`)",
            path.display()
        );
    }

    #[test]
    fn the_duration_pattern_is_the_issue_grammar() {
        let yaml = crd_yaml();
        assert!(yaml.contains(
            r"pattern: ^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?)$"
        ));
        assert!(yaml.contains("shortNames:\n    - sat"));
        assert!(yaml.contains("subresources:\n      status: {}"));
    }
}
