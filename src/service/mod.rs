//! The service layer: validation, policy and the issue / revoke / validate / list logic, in
//! Kubernetes terms. The gRPC layer translates to and from it; it never sees tonic.

mod authz;
mod claims;
mod error;
mod issue;
mod listing;
mod record;
mod seal;

pub use claims::Claims;
pub use error::Error;
pub use issue::{IssueRequest, IssuedToken};
pub use listing::{DEFAULT_PAGE_SIZE, ListPage, ListQuery, MAX_PAGE_SIZE};
pub use record::{BindingScope, TokenRecord, TokenState};
pub use seal::{KeyError, KeySource, RecordKey, RecordKeys};

use std::sync::Arc;

use k8s_openapi::jiff::Timestamp;

use crate::cluster::{Cluster, ResourceAccess};
use crate::kubeconfig::{self, KubeconfigParts};
use crate::names;
use crate::policy::Policy;
use crate::token_id::TokenId;
use crate::ttl_cache::TtlCache;
use crate::{audit, vocabulary};

/// Result of the service layer.
pub type Result<T, E = Error> = std::result::Result<T, E>;

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
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            policy: Policy::default(),
            public_server: None,
            ca_pem: None,
            client_ca_pem: None,
            api_server_url: String::new(),
            authorize: false,
            access_cache_ttl: std::time::Duration::from_secs(10),
            account_cache_ttl: std::time::Duration::from_secs(30),
            record_key: KeySource::default(),
        }
    }
}

/// Who is calling, as authenticated by the transport; empty when authentication is off.
#[derive(Debug, Clone, Default)]
pub struct Caller {
    /// Kubernetes username of the caller.
    pub username: String,
    /// The caller's uid, as the authenticator gave it.
    pub uid: String,
    /// The caller's groups.
    pub groups: Vec<String>,
}

/// Which token to revoke.
#[derive(Debug, Clone)]
pub enum RevokeTarget {
    /// By the id IssueToken returned.
    TokenId(String),
    /// By the token itself.
    Token(String),
}

/// Where the token in a kubeconfig comes from.
#[derive(Debug, Clone)]
pub enum KubeconfigSource {
    /// Issue a fresh token.
    Issue(IssueRequest),
    /// Wrap a token the caller has.
    Token(String),
}

/// A kubeconfig request.
#[derive(Debug, Clone)]
pub struct KubeconfigRequest {
    /// The token's source.
    pub source: KubeconfigSource,
    /// API server URL override.
    pub server: String,
    /// Context name override.
    pub context_name: String,
}

/// A rendered kubeconfig and what is known of its token.
pub struct RenderedKubeconfig {
    /// The YAML.
    pub yaml: String,
    /// Set when tokend issued the token.
    pub token_id: Option<TokenId>,
    /// When the token expires, when known.
    pub expiration: Option<Timestamp>,
}

/// What the API server made of a token.
#[derive(Debug, Clone, Default)]
pub struct Validation {
    /// Whether the token authenticates now.
    pub authenticated: bool,
    /// The user it authenticates as.
    pub username: String,
    /// That user's uid.
    pub uid: String,
    /// That user's groups.
    pub groups: Vec<String>,
    /// Audiences the token is valid for, of those asked.
    pub audiences: Vec<String>,
    /// The API server's reason for rejecting it.
    pub error: String,
    /// Set when tokend issued the token.
    pub token_id: Option<TokenId>,
    /// Expiry from the token's claims.
    pub expiration: Option<Timestamp>,
}

/// The token service: everything tokend does, over one [`Cluster`].
#[derive(Clone)]
pub struct TokenService {
    cluster: Cluster,
    settings: Arc<Settings>,
    /// Access decisions the API server allowed, briefly reused (keyed by caller and action).
    allowed: Arc<TtlCache<authz::AccessKey, ()>>,
    /// ServiceAccounts known to exist, with their uids, so an issue need not look them up.
    accounts: Arc<TtlCache<(String, String), String>>,
    /// The key records are sealed with, shared with the sweeper.
    keys: Arc<RecordKeys>,
}

/// Most entries each of the service's caches holds.
const MAX_CACHED: usize = 10_000;

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
            allowed: Arc::new(TtlCache::new(settings.access_cache_ttl, MAX_CACHED)),
            accounts: Arc::new(TtlCache::new(settings.account_cache_ttl, MAX_CACHED)),
            settings: Arc::new(settings),
        }
    }

    /// Revokes a token by deleting its record Secret; the second revoke of a token is NotFound.
    pub async fn revoke(&self, caller: &Caller, target: RevokeTarget) -> Result<TokenRecord> {
        let (id, token) = match target {
            RevokeTarget::TokenId(text) => (parse_token_id(&text)?, None),
            RevokeTarget::Token(token) => (claimed_token_id(&token)?, Some(token)),
        };
        let secret_name = id.secret_name();
        // The caller's rights are checked before tokend looks at anything for it, so a refused
        // caller learns nothing about which records exist.
        self.require(
            caller,
            secret_access("delete", id.namespace(), Some(&secret_name)),
        )
        .await?;
        if let Some(token) = token {
            self.confirm_token(&token).await?;
        }
        let Some(record) = self.record(&id).await? else {
            return Err(not_found_token(&id));
        };
        // Only the sealed record just read is deleted: not a Secret put in its place since.
        if !self
            .cluster
            .delete_secret_if_unchanged(
                id.namespace(),
                &id.secret_name(),
                &record.object_uid,
                &record.resource_version,
            )
            .await?
        {
            return Err(not_found_token(&id));
        }
        audit::revoked(caller, &record);
        Ok(record)
    }

    /// Renders a kubeconfig for a fresh token or for one the caller has.
    pub async fn kubeconfig(
        &self,
        caller: &Caller,
        request: KubeconfigRequest,
    ) -> Result<RenderedKubeconfig> {
        let server = self.kubeconfig_server(&request.server)?;
        if !request.context_name.is_empty() {
            names::check_role_name(&request.context_name)
                .map_err(|rule| Error::invalid("context_name", rule))?;
        }
        let (token, namespace, service_account, token_id, expiration) = match request.source {
            KubeconfigSource::Issue(issue) => {
                let issued = self.issue(caller, issue).await?;
                let IssuedToken {
                    token,
                    token_id,
                    expiration,
                    namespace,
                    service_account,
                    ..
                } = issued;
                (
                    token,
                    namespace,
                    service_account,
                    Some(token_id),
                    Some(expiration),
                )
            }
            KubeconfigSource::Token(token) => {
                let validation = self.validate(caller, &token, &[]).await?;
                if !validation.authenticated {
                    return Err(Error::invalid(
                        "token",
                        format!("the API server rejects it: {}", validation.error),
                    ));
                }
                let claims = Claims::read(&token).unwrap_or_default();
                let namespace = claims.namespace().unwrap_or("default").to_owned();
                let sa = claims.service_account().unwrap_or("user").to_owned();
                (
                    token,
                    namespace,
                    sa,
                    validation.token_id,
                    validation.expiration,
                )
            }
        };
        let ca = self.kubeconfig_ca(&namespace).await?;
        let context_name = if request.context_name.is_empty() {
            format!("{namespace}-{service_account}")
        } else {
            request.context_name
        };
        let yaml = kubeconfig::render(&KubeconfigParts {
            server: &server,
            ca_pem: ca.as_deref(),
            token: &token,
            namespace: &namespace,
            context_name: &context_name,
        })
        .map_err(|e| Error::Internal(e.to_string()))?;
        Ok(RenderedKubeconfig {
            yaml,
            token_id,
            expiration,
        })
    }

    /// Asks the API server (TokenReview) about a token; a rejected token is an answer, not an error.
    pub async fn validate(
        &self,
        caller: &Caller,
        token: &str,
        audiences: &[String],
    ) -> Result<Validation> {
        if token.is_empty() {
            return Err(Error::invalid("token", "must not be empty"));
        }
        check_audiences("audiences", audiences)?;
        let review = ResourceAccess {
            verb: "create",
            group: "authentication.k8s.io",
            resource: "tokenreviews",
            subresource: None,
            namespace: None,
            name: None,
        };
        self.require(caller, review).await?;
        let status = self.cluster.review_token(token, audiences).await?;
        if status.authenticated != Some(true) {
            return Ok(Validation {
                error: status
                    .error
                    .unwrap_or_else(|| "token not authenticated".into()),
                ..Default::default()
            });
        }
        let user = status.user.unwrap_or_default();
        let claims = Claims::read(token).unwrap_or_default();
        let token_id = match claims.token_id() {
            Some(id) => self.record(&id).await?.map(|r| r.token_id),
            None => None,
        };
        Ok(Validation {
            authenticated: true,
            username: user.username.unwrap_or_default(),
            uid: user.uid.unwrap_or_default(),
            groups: user.groups.unwrap_or_default(),
            audiences: status.audiences.unwrap_or_default(),
            error: String::new(),
            token_id,
            expiration: claims.exp.and_then(|s| Timestamp::from_second(s).ok()),
        })
    }

    /// One record and its state.
    pub async fn get(&self, caller: &Caller, token_id: &str) -> Result<(TokenRecord, TokenState)> {
        let id = parse_token_id(token_id)?;
        let secret_name = id.secret_name();
        self.require(
            caller,
            secret_access("get", id.namespace(), Some(&secret_name)),
        )
        .await?;
        let record = self
            .record(&id)
            .await?
            .ok_or_else(|| not_found_token(&id))?;
        let uid = self
            .cluster
            .service_account_uid(&record.namespace, &record.service_account)
            .await?;
        let state = record.state(Timestamp::now(), uid.as_deref());
        Ok((record, state))
    }

    /// Whether the Kubernetes API answers.
    pub async fn kubernetes_reachable(&self) -> bool {
        self.cluster.ping().await.is_ok()
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

    /// The record key (read or created on first use).
    async fn key(&self) -> Result<&RecordKey> {
        self.keys.get(&self.cluster).await.map_err(Error::from)
    }

    /// Only a token the API server still accepts is revoked by value: the claims of anything
    /// else are the sender's word, not the cluster's.
    async fn confirm_token(&self, token: &str) -> Result<()> {
        let audiences = Claims::read(token)
            .map(|c| c.audiences())
            .unwrap_or_default();
        let status = self.cluster.review_token(token, &audiences).await?;
        if status.authenticated == Some(true) {
            return Ok(());
        }
        Err(Error::invalid(
            "token",
            format!(
                "the API server rejects it ({}): a revoked, expired or foreign token cannot be \
                 revoked by value; use its token_id",
                status.error.unwrap_or_else(|| "not authenticated".into())
            ),
        ))
    }

    fn kubeconfig_server(&self, requested: &str) -> Result<String> {
        let server = if !requested.is_empty() {
            requested.to_owned()
        } else if let Some(public) = &self.settings.public_server {
            public.clone()
        } else {
            self.settings.api_server_url.clone()
        };
        let uri: http::Uri = server
            .parse()
            .map_err(|_| Error::invalid("server", "must be an https:// URL"))?;
        if uri.scheme_str() != Some("https") || uri.host().is_none() {
            return Err(Error::invalid(
                "server",
                "must be an https:// URL with a host",
            ));
        }
        Ok(server.trim_end_matches('/').to_owned())
    }

    /// The CA for kubeconfigs: configured, then `kube-root-ca.crt`, then tokend's own trust.
    async fn kubeconfig_ca(&self, namespace: &str) -> Result<Option<String>> {
        if let Some(ca) = &self.settings.ca_pem {
            return Ok(Some(ca.clone()));
        }
        if let Some(ca) = self.cluster.published_root_ca(namespace).await? {
            return Ok(Some(ca));
        }
        Ok(self.settings.client_ca_pem.clone())
    }
}

/// An action on record Secrets, which is what revoking, getting and listing tokens amounts to.
fn secret_access<'a>(
    verb: &'a str,
    namespace: &'a str,
    name: Option<&'a str>,
) -> ResourceAccess<'a> {
    ResourceAccess {
        verb,
        group: "",
        resource: "secrets",
        subresource: None,
        namespace: Some(namespace),
        name,
    }
}

/// The record a token's claims name; only a hint until the API server confirms the token.
fn claimed_token_id(token: &str) -> Result<TokenId> {
    if token.is_empty() {
        return Err(Error::invalid("token", "must not be empty"));
    }
    let claims = Claims::read(token)
        .ok_or_else(|| Error::invalid("token", "is not a ServiceAccount token (JWT)"))?;
    claims.token_id().ok_or_else(|| {
        Error::invalid(
            "token",
            "is not bound to a tokend record, so tokend did not issue it",
        )
    })
}

fn parse_token_id(text: &str) -> Result<TokenId> {
    if text.is_empty() {
        return Err(Error::invalid("token_id", "must not be empty"));
    }
    TokenId::parse(text).map_err(|rule| Error::invalid("token_id", rule))
}

fn not_found_token(id: &TokenId) -> Error {
    Error::NotFound(format!(
        "token {id} not found: never issued, already revoked, or swept"
    ))
}

/// Audiences: at most [`vocabulary::MAX_AUDIENCES`], each non-empty, printable, without spaces.
fn check_audiences(field: &str, audiences: &[String]) -> Result<()> {
    if audiences.len() > vocabulary::MAX_AUDIENCES {
        return Err(Error::invalid(
            field,
            format!(
                "at most {} audiences (got {})",
                vocabulary::MAX_AUDIENCES,
                audiences.len()
            ),
        ));
    }
    for (i, audience) in audiences.iter().enumerate() {
        if audience.is_empty() {
            return Err(Error::invalid(format!("{field}[{i}]"), "must not be empty"));
        }
        if audience.len() > vocabulary::MAX_AUDIENCE_LEN {
            return Err(Error::invalid(
                format!("{field}[{i}]"),
                format!(
                    "must be at most {} characters",
                    vocabulary::MAX_AUDIENCE_LEN
                ),
            ));
        }
        if !audience.chars().all(|c| c.is_ascii_graphic()) {
            return Err(Error::invalid(
                format!("{field}[{i}]"),
                "must be printable ASCII without spaces",
            ));
        }
        if audiences[..i].contains(audience) {
            return Err(Error::invalid(format!("{field}[{i}]"), "is listed twice"));
        }
    }
    Ok(())
}
