//! The service layer: validation, policy and the issue / revoke / validate / list logic, in
//! Kubernetes terms. The gRPC layer translates to and from it; it never sees tonic.

pub mod audit;
mod authz;
mod bootstrap_tokens;
mod checks;
mod claims;
mod client_certificates;
mod declared;
mod error;
mod get;
mod issue;
mod kubeconfig;
pub mod label_selector;
mod listing;
pub mod policy;
mod reason;
mod record;
mod renew;
mod revoke;
mod seal;
mod settings;
mod undo;
mod validate;

pub use crate::caller::Caller;
pub use bootstrap_tokens::{
    BootstrapIssue, BootstrapPolicy, BootstrapTokenInfo, BootstrapTokenPage,
    ENABLE_BOOTSTRAP_TOKENS_FLAG, IssuedBootstrapToken, is_bootstrap_group,
};
pub use claims::Claims;
pub use client_certificates::{
    CertificateIssue, CertificatePolicy, ENABLE_CLIENT_CERTIFICATES_FLAG, IssuedCertificate,
};
pub use declared::Credentials;
pub use error::{Error, Failure, RETRY_DELAY, Violation, Violations};
pub use issue::{DeclaredOwner, IssueRequest, IssuedToken};
pub use kubeconfig::{KubeconfigExec, KubeconfigRequest, KubeconfigSource, RenderedKubeconfig};
pub use listing::{DEFAULT_PAGE_SIZE, ListPage, ListQuery, MAX_PAGE_SIZE};
pub use reason::Reason;
pub use record::{BindingScope, TokenRecord, TokenState};
pub use renew::{MAX_REVOKE_GRACE, RenewRequest, Renewed};
pub use revoke::RevokeTarget;
pub use seal::{KeyError, KeySource, RecordKey, RecordKeys, tokend_namespace_missing};
pub use settings::Settings;
pub use validate::Validation;

use std::sync::Arc;

use crate::cache::expiring;
use crate::cluster::Cluster;
use crate::token_id::TokenId;

/// Result of the service layer.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The token service: everything tokend does, over one [`Cluster`].
#[derive(Clone)]
pub struct TokenService {
    cluster: Cluster,
    settings: Arc<Settings>,
    /// Access decisions the API server allowed, briefly reused (keyed by caller and action).
    allowed: moka::sync::Cache<authz::AccessKey, ()>,
    /// ServiceAccounts known to exist, with their uids, so an issue need not look them up.
    accounts: moka::sync::Cache<(String, String), String>,
    /// The key records are sealed with, shared with the sweeper.
    keys: Arc<RecordKeys>,
}

impl TokenService {
    /// A service over `cluster` with `settings`.
    pub fn new(cluster: Cluster, settings: Settings) -> Self {
        let keys = Arc::new(RecordKeys::new(settings.record_key.clone()));
        Self::with_keys(cluster, settings, keys)
    }

    /// A service over `cluster` sealing records with `keys` (which the sweeper shares).
    pub fn with_keys(cluster: Cluster, settings: Settings, keys: Arc<RecordKeys>) -> Self {
        Self {
            cluster,
            keys,
            allowed: expiring(settings.access_cache_ttl),
            accounts: expiring(settings.account_cache_ttl),
            settings: Arc::new(settings),
        }
    }

    async fn record(&self, id: &TokenId) -> Result<Option<TokenRecord>> {
        let meta = self
            .cluster
            .secret_metadata(id.namespace(), &id.secret_name())
            .await?;
        let key = self.key().await?;
        Ok(meta
            .as_ref()
            .and_then(TokenRecord::from_metadata)
            .filter(|record| record.is_sealed_by(key)))
    }

    /// The record key, for what else tokend seals with it (the requester its admission webhook
    /// stamps on a ServiceAccountToken).
    pub async fn record_key(&self) -> Result<&RecordKey> {
        self.key().await
    }

    /// The record key (read or created on first use).
    async fn key(&self) -> Result<&RecordKey> {
        self.keys.get(&self.cluster).await.map_err(Error::from)
    }
}
