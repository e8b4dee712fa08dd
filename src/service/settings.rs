//! The service's settings: policy, kubeconfig rendering, caches, the record key.

use super::policy::Policy;
use super::seal::KeySource;

/// Server-wide settings the service needs beyond the policy.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Limits on what may be issued.
    pub policy: Policy,
    /// API server URL written into kubeconfigs (`--public-server`); default: the one tokend uses.
    pub public_server: Option<String>,
    /// CA bundle written into kubeconfigs (`--kubeconfig-ca-file`), before any discovered one.
    pub ca_pem: Option<String>,
    /// The CA tokend itself trusts for the API server: the last resort for kubeconfigs.
    pub client_ca_pem: Option<String>,
    /// tokend's own namespace, whose `kube-root-ca.crt` it trusts for kubeconfigs.
    pub own_namespace: Option<String>,
    /// The API server URL tokend talks to.
    pub api_server_url: String,
    /// Check every call with SubjectAccessReview (on whenever callers are authenticated).
    pub authorize: bool,
    /// How long an allowed SubjectAccessReview is reused (denials never are).
    pub access_cache_ttl: std::time::Duration,
    /// How long a ServiceAccount seen to exist is trusted to exist without a lookup.
    pub account_cache_ttl: std::time::Duration,
    /// Where the key that seals records is kept.
    pub record_key: KeySource,
    /// Limits on bootstrap tokens.
    pub bootstrap: super::BootstrapPolicy,
    /// Limits on client certificates.
    pub certificates: super::CertificatePolicy,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            policy: Policy::default(),
            public_server: None,
            ca_pem: None,
            client_ca_pem: None,
            own_namespace: None,
            api_server_url: String::new(),
            authorize: false,
            access_cache_ttl: std::time::Duration::from_secs(10),
            account_cache_ttl: std::time::Duration::from_secs(30),
            record_key: KeySource::default(),
            bootstrap: super::BootstrapPolicy::default(),
            certificates: super::CertificatePolicy::default(),
        }
    }
}
