//! The seal on a record: an HMAC-SHA256, with a key only tokend's replicas hold, over every fact
//! of the record and the uid of the Secret holding it. A record without a valid seal was not
//! written by tokend (or was altered since): it is never shown as tokend's, and the sweeper never
//! acts on what it says. The uid binds the seal to one object, so a sealed record copied into a
//! new Secret (say after its original was revoked) does not verify.

use std::path::PathBuf;

use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use tokio::sync::OnceCell;

use super::record::TokenRecord;
use crate::cluster::{self, Cluster};

/// Prefix of a seal's text, naming the scheme so it can change later.
const SCHEME: &str = "v1.";
/// Length of a freshly made key, in bytes (the HMAC-SHA256 block is 64; 32 is its strength).
const KEY_LEN: usize = 32;

/// Where tokend's replicas find their shared record key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// A file holding the key (at least 32 bytes); e.g. a mounted Secret.
    File(PathBuf),
    /// A Secret (key `key`) in tokend's own namespace, created with a random key when missing.
    Secret {
        /// tokend's own namespace.
        namespace: String,
        /// The Secret's name.
        name: String,
    },
}

impl Default for KeySource {
    fn default() -> Self {
        KeySource::Secret {
            namespace: "tokend".into(),
            name: crate::vocabulary::RECORD_KEY_SECRET.into(),
        }
    }
}

/// The key records are sealed with.
pub struct RecordKey(hmac::Key);

impl RecordKey {
    /// A key from its bytes.
    pub fn new(bytes: &[u8]) -> Self {
        Self(hmac::Key::new(hmac::HMAC_SHA256, bytes))
    }

    /// The seal of `record` held in the Secret with uid `object_uid`.
    pub fn seal(&self, record: &TokenRecord, object_uid: &str) -> String {
        let tag = hmac::sign(&self.0, &canonical(record, object_uid));
        format!("{SCHEME}{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
    }

    /// Whether `seal` is this key's seal of `record` in the Secret with uid `object_uid`
    /// (compared in constant time).
    pub fn verifies(&self, record: &TokenRecord, object_uid: &str, seal: &str) -> bool {
        let Some(tag) = seal
            .strip_prefix(SCHEME)
            .and_then(|b64| URL_SAFE_NO_PAD.decode(b64).ok())
        else {
            return false;
        };
        hmac::verify(&self.0, &canonical(record, object_uid), &tag).is_ok()
    }
}

impl RecordKey {
    /// This key's tag of `message` for `purpose` (e.g. page tokens): HMAC over the purpose, a
    /// NUL and the message, so a tag made for one purpose never verifies for another, nor as a
    /// record's seal (whose message is a JSON object).
    pub fn tag(&self, purpose: &str, message: &[u8]) -> Vec<u8> {
        hmac::sign(&self.0, &purposed(purpose, message))
            .as_ref()
            .to_vec()
    }

    /// Whether `tag` is this key's tag of `message` for `purpose` (compared in constant time).
    pub fn verifies_tag(&self, purpose: &str, message: &[u8], tag: &[u8]) -> bool {
        hmac::verify(&self.0, &purposed(purpose, message), tag).is_ok()
    }
}

fn purposed(purpose: &str, message: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(purpose.len() + 1 + message.len());
    bytes.extend_from_slice(purpose.as_bytes());
    bytes.push(0);
    bytes.extend_from_slice(message);
    bytes
}

/// Every fact of a record in one unambiguous encoding (JSON of a fixed struct).
fn canonical(record: &TokenRecord, object_uid: &str) -> Vec<u8> {
    #[derive(Serialize)]
    struct Sealed<'a> {
        uid: &'a str,
        token_id: String,
        namespace: &'a str,
        service_account: &'a str,
        service_account_uid: &'a str,
        expiration: Option<String>,
        audiences: &'a [String],
        labels: &'a std::collections::BTreeMap<String, String>,
        issued_by: &'a str,
        cluster_role: Option<&'a str>,
        binding_scope: Option<&'a str>,
        // Absent unless set, so records sealed before renewal existed still verify.
        #[serde(skip_serializing_if = "Option::is_none")]
        replaces: Option<String>,
        // Absent unless set, so records sealed before declared owners existed still verify.
        #[serde(skip_serializing_if = "Option::is_none")]
        owner: Option<&'a str>,
    }
    let sealed = Sealed {
        uid: object_uid,
        token_id: record.token_id.to_string(),
        namespace: &record.namespace,
        service_account: &record.service_account,
        service_account_uid: &record.service_account_uid,
        expiration: record.expiration.map(|t| t.to_string()),
        audiences: &record.audiences,
        labels: &record.labels,
        issued_by: &record.issued_by,
        cluster_role: record.cluster_role.as_deref(),
        binding_scope: record.binding_scope.map(|s| s.as_str()),
        replaces: record.replaces.as_ref().map(ToString::to_string),
        owner: record.owner_uid.as_deref(),
    };
    serde_json::to_vec(&sealed).unwrap_or_default()
}

/// The record key, loaded once on first use (so tokend starts while the API server is down).
pub struct RecordKeys {
    source: KeySource,
    key: OnceCell<RecordKey>,
}

/// Why the record key is not available.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The key file cannot be read or is too short.
    #[error("record key file {path}: {why}")]
    File {
        /// The file.
        path: String,
        /// What is wrong.
        why: String,
    },
    /// The key Secret cannot be read or created.
    #[error(transparent)]
    Cluster(#[from] cluster::Error),
    /// The namespace the key Secret belongs in does not exist: a configuration error, which
    /// no retry fixes, worded for the operator.
    #[error("{}", tokend_namespace_missing(namespace))]
    NamespaceMissing {
        /// tokend's own namespace.
        namespace: String,
    },
}

/// What tokend says, at start and to a request, when its own namespace does not exist.
pub fn tokend_namespace_missing(namespace: &str) -> String {
    format!(
        "tokend's own namespace {namespace:?} (--lease-namespace, where it keeps its record key \
         and leases) does not exist: create it (`kubectl create namespace {namespace}`), or pass \
         --lease-namespace naming a namespace that exists"
    )
}

impl RecordKeys {
    /// Keys from `source`, not yet loaded.
    pub fn new(source: KeySource) -> Self {
        Self {
            source,
            key: OnceCell::new(),
        }
    }

    /// The key; the first call reads the file or the Secret (creating it when missing: the
    /// replica that creates it first wins, the others read the winner's key).
    pub async fn get(&self, cluster: &Cluster) -> Result<&RecordKey, KeyError> {
        self.key
            .get_or_try_init(|| async {
                let bytes = match &self.source {
                    KeySource::File(path) => {
                        let bytes = std::fs::read(path).map_err(|e| KeyError::File {
                            path: path.display().to_string(),
                            why: e.to_string(),
                        })?;
                        if bytes.len() < KEY_LEN {
                            return Err(KeyError::File {
                                path: path.display().to_string(),
                                why: format!(
                                    "holds {} bytes, needs at least {KEY_LEN}",
                                    bytes.len()
                                ),
                            });
                        }
                        bytes
                    }
                    KeySource::Secret { namespace, name } => {
                        let fresh: [u8; KEY_LEN] = rand::random();
                        // Creating the Secret in a missing namespace answers 404 for the
                        // namespace (a read of a missing Secret answers None, not an error).
                        cluster
                            .shared_key(namespace, name, &fresh)
                            .await
                            .map_err(|e| match e {
                                cluster::Error::Api { code: 404, .. } => {
                                    KeyError::NamespaceMissing {
                                        namespace: namespace.clone(),
                                    }
                                }
                                other => KeyError::Cluster(other),
                            })?
                    }
                };
                Ok(RecordKey::new(&bytes))
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::token_id::TokenId;

    fn record() -> TokenRecord {
        TokenRecord {
            token_id: TokenId::generate("team-a"),
            namespace: "team-a".into(),
            service_account: "ci".into(),
            service_account_uid: "sa-uid".into(),
            issued_at: None,
            expiration: Some("2030-01-01T00:00:00Z".parse().expect("time")),
            audiences: vec!["vault".into()],
            labels: BTreeMap::from([("team".into(), "blue".into())]),
            issued_by: "alice".into(),
            cluster_role: None,
            binding_scope: None,
            object_uid: String::new(),
            resource_version: String::new(),
            seal: None,
            pending: false,
            replaces: None,
            owner_uid: None,
        }
    }

    #[test]
    fn a_seal_verifies_only_its_record_its_object_and_its_key() {
        let key = RecordKey::new(&[7; 32]);
        let r = record();
        let seal = key.seal(&r, "uid-1");
        assert!(key.verifies(&r, "uid-1", &seal));
        assert!(!key.verifies(&r, "uid-2", &seal), "another object");
        assert!(
            !RecordKey::new(&[8; 32]).verifies(&r, "uid-1", &seal),
            "another key"
        );
        let mut back_dated = r.clone();
        back_dated.expiration = Some("2020-01-01T00:00:00Z".parse().expect("time"));
        assert!(
            !key.verifies(&back_dated, "uid-1", &seal),
            "an altered expiry"
        );
        let mut promoted = r.clone();
        promoted.issued_by = "cluster-admin-bot".into();
        assert!(
            !key.verifies(&promoted, "uid-1", &seal),
            "an altered issuer"
        );
        assert!(!key.verifies(&r, "uid-1", "v1.garbage"));
        let mut adopted = r.clone();
        adopted.owner_uid = Some("another-resource".into());
        assert!(
            !key.verifies(&adopted, "uid-1", &seal),
            "an owner added afterwards"
        );
    }

    #[test]
    fn a_tag_verifies_only_its_message_its_purpose_and_its_key() {
        let key = RecordKey::new(&[7; 32]);
        let tag = key.tag("page", b"continue");
        assert!(key.verifies_tag("page", b"continue", &tag));
        assert!(
            !key.verifies_tag("page", b"continuE", &tag),
            "another message"
        );
        assert!(
            !key.verifies_tag("other", b"continue", &tag),
            "another purpose"
        );
        assert!(!RecordKey::new(&[8; 32]).verifies_tag("page", b"continue", &tag));
    }

    #[test]
    fn a_missing_own_namespace_is_a_failed_precondition_naming_the_flag() {
        let error = crate::service::error::Error::from(KeyError::NamespaceMissing {
            namespace: "tokend".into(),
        });
        assert!(
            matches!(error, crate::service::error::Error::FailedPrecondition(_)),
            "{error:?}"
        );
        assert_eq!(
            error.reason(),
            crate::service::reason::Reason::TokendNamespaceNotFound
        );
        let text = error.to_string();
        assert!(
            text.contains("--lease-namespace") && text.contains("kubectl create namespace tokend"),
            "{text}"
        );
    }
}
