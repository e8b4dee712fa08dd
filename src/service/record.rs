//! A token's record: the labelled Secret tokend keeps per token, and its reading back.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::Timestamp;

use super::seal::RecordKey;
use crate::token_id::TokenId;
use crate::vocabulary::*;

/// Where a binding made for a token applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindingScope {
    /// A RoleBinding in the ServiceAccount's namespace.
    Namespace,
    /// A ClusterRoleBinding.
    Cluster,
}

impl BindingScope {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            BindingScope::Namespace => "namespace",
            BindingScope::Cluster => "cluster",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        match text {
            "namespace" => Some(BindingScope::Namespace),
            "cluster" => Some(BindingScope::Cluster),
            _ => None,
        }
    }
}

/// Whether a token on record can still be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenState {
    /// Not expired, and its ServiceAccount is the one it was issued for.
    Active,
    /// Past its expiration time.
    Expired,
    /// Its ServiceAccount is gone or was recreated.
    Orphaned,
}

/// What tokend knows of a token it issued (never the token itself).
#[derive(Debug, Clone)]
pub struct TokenRecord {
    /// The id callers use.
    pub token_id: TokenId,
    /// Namespace of the ServiceAccount.
    pub namespace: String,
    /// The ServiceAccount.
    pub service_account: String,
    /// Uid of the ServiceAccount at issue time.
    pub service_account_uid: String,
    /// When the record was made.
    pub issued_at: Option<Timestamp>,
    /// When the token expires.
    pub expiration: Option<Timestamp>,
    /// Audiences asked for (empty: the API server's).
    pub audiences: Vec<String>,
    /// The caller's labels.
    pub labels: BTreeMap<String, String>,
    /// Who asked for it.
    pub issued_by: String,
    /// ClusterRole bound for it, if any.
    pub cluster_role: Option<String>,
    /// Scope of that binding.
    pub binding_scope: Option<BindingScope>,
    /// Uid of the Secret holding the record (empty before it is created).
    pub object_uid: String,
    /// resourceVersion of that Secret when it was read.
    pub resource_version: String,
    /// The seal tokend wrote once the token was issued; see [`super::seal`].
    pub seal: Option<String>,
    /// Written before the token was issued and not confirmed since.
    pub pending: bool,
    /// The token this one replaced, when it was issued by RenewToken.
    pub replaces: Option<TokenId>,
    /// Uid of the object the token was declared by (a ServiceAccountToken), which owns the
    /// record; None for tokens issued through the API.
    pub owner_uid: Option<String>,
}

impl TokenRecord {
    /// The Secret that holds this record; no token value in it.
    pub fn to_secret(&self) -> Secret {
        let mut labels = self.labels.clone();
        labels.insert(MANAGED_BY_LABEL.into(), MANAGED_BY_VALUE.into());
        labels.insert(
            SERVICE_ACCOUNT_LABEL.into(),
            label_safe(&self.service_account),
        );
        if self.pending {
            labels.insert(PENDING_LABEL.into(), "true".into());
        }
        let mut annotations = BTreeMap::from([
            (ISSUED_BY_ANNOTATION.to_owned(), self.issued_by.clone()),
            (
                SERVICE_ACCOUNT_UID_ANNOTATION.to_owned(),
                self.service_account_uid.clone(),
            ),
            (
                AUDIENCES_ANNOTATION.to_owned(),
                serde_json::to_string(&self.audiences).unwrap_or_else(|_| "[]".into()),
            ),
        ]);
        if let Some(expiration) = self.expiration {
            annotations.insert(EXPIRATION_ANNOTATION.into(), expiration.to_string());
        }
        if let (Some(role), Some(scope)) = (&self.cluster_role, self.binding_scope) {
            annotations.insert(CLUSTER_ROLE_ANNOTATION.into(), role.clone());
            annotations.insert(BINDING_SCOPE_ANNOTATION.into(), scope.as_str().into());
        }
        if let Some(replaced) = &self.replaces {
            annotations.insert(REPLACES_ANNOTATION.into(), replaced.to_string());
        }
        if let Some(owner) = &self.owner_uid {
            annotations.insert(OWNER_UID_ANNOTATION.into(), owner.clone());
        }
        Secret {
            metadata: ObjectMeta {
                name: Some(self.token_id.secret_name()),
                namespace: Some(self.namespace.clone()),
                labels: Some(labels),
                annotations: Some(annotations),
                ..Default::default()
            },
            type_: Some(RECORD_SECRET_TYPE.into()),
            ..Default::default()
        }
    }

    /// Reads a record back from its Secret's metadata (every fact of a record is a label or an
    /// annotation, so its data is never read); `None` when it is not shaped as tokend's record.
    pub fn from_metadata(meta: &ObjectMeta) -> Option<Self> {
        let labels = meta.labels.clone().unwrap_or_default();
        if labels.get(MANAGED_BY_LABEL).map(String::as_str) != Some(MANAGED_BY_VALUE) {
            return None;
        }
        let namespace = meta.namespace.clone()?;
        let token_id = TokenId::from_secret(&namespace, meta.name.as_deref()?)?;
        let annotations = meta.annotations.clone().unwrap_or_default();
        let annotation = |key: &str| annotations.get(key).cloned().unwrap_or_default();
        let service_account = labels.get(SERVICE_ACCOUNT_LABEL)?.clone();
        let pending = labels.contains_key(PENDING_LABEL);
        let caller_labels = labels
            .into_iter()
            .filter(|(k, _)| k != MANAGED_BY_LABEL && !k.starts_with(RESERVED_PREFIX))
            .collect();
        Some(Self {
            token_id,
            namespace,
            service_account,
            service_account_uid: annotation(SERVICE_ACCOUNT_UID_ANNOTATION),
            issued_at: meta.creation_timestamp.as_ref().map(|t| t.0),
            expiration: annotations
                .get(EXPIRATION_ANNOTATION)
                .and_then(|t| t.parse().ok()),
            audiences: serde_json::from_str(&annotation(AUDIENCES_ANNOTATION)).unwrap_or_default(),
            labels: caller_labels,
            issued_by: annotation(ISSUED_BY_ANNOTATION),
            cluster_role: annotations.get(CLUSTER_ROLE_ANNOTATION).cloned(),
            binding_scope: annotations
                .get(BINDING_SCOPE_ANNOTATION)
                .and_then(|s| BindingScope::parse(s)),
            object_uid: meta.uid.clone().unwrap_or_default(),
            resource_version: meta.resource_version.clone().unwrap_or_default(),
            seal: annotations.get(SEAL_ANNOTATION).cloned(),
            pending,
            replaces: annotations
                .get(REPLACES_ANNOTATION)
                .and_then(|id| TokenId::parse(id).ok()),
            owner_uid: annotations.get(OWNER_UID_ANNOTATION).cloned(),
        })
    }

    /// Whether tokend wrote this record as it reads now: its seal verifies with `key` for the
    /// Secret it was read from.
    pub fn is_sealed_by(&self, key: &RecordKey) -> bool {
        !self.object_uid.is_empty()
            && self
                .seal
                .as_deref()
                .is_some_and(|seal| key.verifies(self, &self.object_uid, seal))
    }

    /// The record's state at `now`, given the uid its ServiceAccount has now (None: gone).
    pub fn state(&self, now: Timestamp, current_sa_uid: Option<&str>) -> TokenState {
        if self.expiration.is_some_and(|exp| exp <= now) {
            TokenState::Expired
        } else if current_sa_uid != Some(self.service_account_uid.as_str()) {
            TokenState::Orphaned
        } else {
            TokenState::Active
        }
    }
}

/// ServiceAccount names are DNS subdomains (up to 253 characters) and label values stop at 63:
/// the label only narrows listing, so a long name is cut and the list filtered again by name.
fn label_safe(name: &str) -> String {
    let cut: String = name.chars().take(63).collect();
    cut.trim_end_matches(['-', '.']).to_owned()
}

/// The label selector for records, optionally of one ServiceAccount.
pub fn selector(service_account: Option<&str>) -> String {
    match service_account {
        Some(sa) => format!(
            "{MANAGED_BY_LABEL}={MANAGED_BY_VALUE},{SERVICE_ACCOUNT_LABEL}={}",
            label_safe(sa)
        ),
        None => format!("{MANAGED_BY_LABEL}={MANAGED_BY_VALUE}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> TokenRecord {
        TokenRecord {
            token_id: TokenId::generate("team-a"),
            namespace: "team-a".into(),
            service_account: "deployer".into(),
            service_account_uid: "uid-1".into(),
            issued_at: None,
            expiration: Some("2030-01-01T00:00:00Z".parse().expect("time")),
            audiences: vec!["vault".into()],
            labels: BTreeMap::from([("team".into(), "blue".into())]),
            issued_by: "alice".into(),
            cluster_role: Some("view".into()),
            binding_scope: Some(BindingScope::Namespace),
            object_uid: String::new(),
            resource_version: String::new(),
            seal: None,
            pending: true,
            replaces: None,
            owner_uid: None,
        }
    }

    #[test]
    fn a_record_survives_its_secret() {
        let original = record();
        let back = TokenRecord::from_metadata(&original.to_secret().metadata).expect("reads back");
        assert_eq!(back.token_id, original.token_id);
        assert_eq!(back.service_account, "deployer");
        assert_eq!(back.expiration, original.expiration);
        assert_eq!(back.audiences, vec!["vault".to_owned()]);
        assert_eq!(back.labels, original.labels);
        assert_eq!(back.issued_by, "alice");
        assert_eq!(back.cluster_role.as_deref(), Some("view"));
        assert_eq!(back.binding_scope, Some(BindingScope::Namespace));
        assert!(back.pending, "a record is written pending");
    }

    #[test]
    fn secrets_without_tokend_label_are_not_records() {
        let mut secret = record().to_secret();
        secret.metadata.labels = None;
        assert!(TokenRecord::from_metadata(&secret.metadata).is_none());
    }

    #[test]
    fn state_follows_expiry_and_the_service_account() {
        let r = record();
        let before: Timestamp = "2029-01-01T00:00:00Z".parse().expect("time");
        let after: Timestamp = "2031-01-01T00:00:00Z".parse().expect("time");
        assert_eq!(r.state(before, Some("uid-1")), TokenState::Active);
        assert_eq!(r.state(before, None), TokenState::Orphaned);
        assert_eq!(r.state(before, Some("uid-2")), TokenState::Orphaned);
        assert_eq!(r.state(after, Some("uid-1")), TokenState::Expired);
    }
}
