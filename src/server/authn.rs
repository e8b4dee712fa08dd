//! Caller authentication: a tower layer in front of TokenService that turns the caller's bearer
//! token (through TokenReview, cached briefly) or verified client certificate into a [`Caller`]
//! and puts it in the request's extensions. Handlers read the caller; they never parse headers.

use std::net::IpAddr;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::future::BoxFuture;
use tonic::Status;

use crate::cache::expiring;
use crate::caller::Caller;
use crate::cluster::Cluster;
use crate::metrics::Metrics;
use crate::server::peer_limit::PeerFailures;

/// Calls to the services of this package are authenticated.
const GUARDED_PACKAGE: &str = "/tokend.v1.";

/// How callers prove who they are.
#[derive(Clone)]
pub enum Authentication {
    /// Nobody is asked; every caller is anonymous (dev and explicit insecure mode only).
    None,
    /// `authorization: Bearer <Kubernetes token>`, checked with TokenReview.
    Kubernetes(Arc<TokenAuthenticator>),
    /// The client certificate the TLS layer verified: CN is the user, each O a group, both
    /// under configured prefixes.
    ClientCertificate(CertificateIdentity),
}

/// Why a caller is not let in. Mapped to a gRPC status once, in [`AuthError::into_status`].
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No credential, or one that names nobody.
    #[error("{0}")]
    Unauthenticated(String),
    /// A credential that claims an identity it may never claim (a `system:` user or group).
    #[error("{0}")]
    Forbidden(String),
    /// This address has failed too often lately; it is not reviewed until its window ends.
    #[error("{0}")]
    Throttled(String),
    /// The Kubernetes API could not be asked.
    #[error("cannot check the caller's token with the Kubernetes API: {0}")]
    Unavailable(String),
}

impl AuthError {
    /// The status the caller sees (mapped, with its details, in `grpc::status`).
    pub fn into_status(self) -> Status {
        crate::grpc::auth_status(self)
    }
}

/// How a verified client certificate becomes a Kubernetes identity. As with the API server's
/// `--oidc-username-prefix` / `--oidc-groups-prefix`, a prefix keeps certificate identities apart
/// from every other authenticator's, so a certificate can never name a ServiceAccount, a node or
/// a `system:` group such as `system:masters`.
#[derive(Debug, Clone)]
pub struct CertificateIdentity {
    /// Put before the subject CN to make the username (`mtls:` by default).
    pub username_prefix: String,
    /// Put before each subject O to make a group name (`mtls:` by default).
    pub groups_prefix: String,
}

/// Identities reserved for the cluster itself (`system:masters`, `system:serviceaccount:...`,
/// `system:nodes`...): no certificate may claim one.
const RESERVED_IDENTITY_PREFIX: &str = "system:";

impl CertificateIdentity {
    /// Refuses prefixes that would let certificates name reserved identities.
    pub fn check(&self) -> Result<(), String> {
        for (flag, prefix) in [
            ("--mtls-username-prefix", &self.username_prefix),
            ("--mtls-groups-prefix", &self.groups_prefix),
        ] {
            if prefix.starts_with(RESERVED_IDENTITY_PREFIX) {
                return Err(format!(
                    "{flag} must not start with {RESERVED_IDENTITY_PREFIX:?}: certificates may not \
                     name the cluster's own identities"
                ));
            }
            if prefix.chars().any(char::is_control) {
                return Err(format!("{flag} must not hold control characters"));
            }
        }
        Ok(())
    }
}

/// Checks bearer tokens with the API server and remembers answers for a short TTL, keyed by a
/// hash of the token (never the token itself): successes so a caller is not reviewed on every
/// call, failures so a repeated bad token costs one review. Distinct bad tokens are bounded per
/// client address by [`PeerFailures`].
pub struct TokenAuthenticator {
    cluster: Cluster,
    audiences: Vec<String>,
    cache: moka::sync::Cache<[u8; 32], Caller>,
    rejected: moka::sync::Cache<[u8; 32], String>,
    failures: PeerFailures,
    metrics: Metrics,
}

/// Limits on failed authentications.
#[derive(Debug, Clone, Copy)]
pub struct FailureLimit {
    /// Failed reviews allowed per client address in each window (0: unbounded).
    pub per_peer: u32,
    /// The window.
    pub window: Duration,
}

impl TokenAuthenticator {
    /// An authenticator reviewing tokens for `audiences` (empty: the API server's), reusing
    /// answers for `ttl`, and refusing addresses past `limit`.
    pub fn new(
        cluster: Cluster,
        audiences: Vec<String>,
        ttl: Duration,
        limit: FailureLimit,
        metrics: Metrics,
    ) -> Self {
        Self {
            cluster,
            audiences,
            cache: expiring(ttl),
            rejected: expiring(ttl),
            failures: PeerFailures::new(limit.per_peer, limit.window),
            metrics,
        }
    }

    /// The caller a bearer token belongs to, or why it is refused; `peer` is the client's
    /// address, which failures are counted against.
    pub async fn authenticate(
        &self,
        token: &str,
        peer: Option<IpAddr>,
    ) -> Result<Caller, AuthError> {
        let key = fingerprint(token);
        if let Some(caller) = self.cache.get(&key) {
            self.metrics.review_cache_hits.inc();
            return Ok(caller);
        }
        if let Some(reason) = self.rejected.get(&key) {
            self.metrics.review_cache_hits.inc();
            return Err(rejected(&reason));
        }
        if let Err(wait) = self.failures.check(peer) {
            return Err(AuthError::Throttled(format!(
                "too many failed authentications from this address; try again in {}s",
                wait.as_secs().max(1)
            )));
        }
        self.metrics.review_cache_misses.inc();
        let status = self
            .cluster
            .review_token(token, &self.audiences)
            .await
            .map_err(|e| AuthError::Unavailable(e.to_string()))?;
        if status.authenticated != Some(true) {
            let reason = status.error.unwrap_or_else(|| "not authenticated".into());
            self.failures.record_failure(peer);
            let refusal = rejected(&reason);
            self.rejected.insert(key, reason);
            return Err(refusal);
        }
        let caller = reviewed_caller(status.user.unwrap_or_default());
        self.cache.insert(key, caller.clone());
        Ok(caller)
    }
}

/// The caller a successful TokenReview names: everything the API server said of the user,
/// `extra` included, so SubjectAccessReview sees what the API server's own authorizer would.
fn reviewed_caller(user: k8s_openapi::api::authentication::v1::UserInfo) -> Caller {
    Caller {
        username: user.username.unwrap_or_default(),
        uid: user.uid.unwrap_or_default(),
        groups: user.groups.unwrap_or_default(),
        extra: user.extra.unwrap_or_default(),
    }
}

fn rejected(reason: &str) -> AuthError {
    AuthError::Unauthenticated(format!(
        "the bearer token was rejected by the Kubernetes API: {}",
        crate::names::echo(reason)
    ))
}

/// The client's address, as the transport saw it.
fn peer_ip<B>(request: &http::Request<B>) -> Option<IpAddr> {
    use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
    let extensions = request.extensions();
    extensions
        .get::<TcpConnectInfo>()
        .and_then(TcpConnectInfo::remote_addr)
        .or_else(|| {
            extensions
                .get::<TlsConnectInfo<TcpConnectInfo>>()
                .and_then(|info| info.get_ref().remote_addr())
        })
        .map(|addr| addr.ip())
}

fn fingerprint(token: &str) -> [u8; 32] {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
    let mut key = [0u8; 32];
    key.copy_from_slice(digest.as_ref());
    key
}

/// The tower layer that authenticates calls to tokend's services (health and reflection stay open,
/// as kubelet probes and `grpcurl list` carry no credentials).
#[derive(Clone)]
pub struct AuthLayer {
    authentication: Authentication,
}

impl AuthLayer {
    /// A layer applying `authentication`.
    pub fn new(authentication: Authentication) -> Self {
        Self { authentication }
    }
}

impl<S> tower::Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthService {
            inner,
            authentication: self.authentication.clone(),
        }
    }
}

/// The service [`AuthLayer`] wraps around the gRPC router.
#[derive(Clone)]
pub struct AuthService<S> {
    inner: S,
    authentication: Authentication,
}

impl<S, B> tower::Service<http::Request<B>> for AuthService<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        // The clone is the fresh, not-yet-ready one: keep the ready service for this call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let authentication = self.authentication.clone();
        Box::pin(async move {
            // Every service of tokend's package (TokenService, BootstrapTokenService,
            // ClientCertificateService); health and reflection live in other packages.
            let guarded = request.uri().path().starts_with(GUARDED_PACKAGE);
            match authentication {
                Authentication::Kubernetes(authenticator) if guarded => {
                    let token = match bearer_token(&request) {
                        Ok(token) => token,
                        Err(e) => return Ok(e.into_status().into_http()),
                    };
                    match authenticator.authenticate(&token, peer_ip(&request)).await {
                        Ok(caller) => {
                            request.extensions_mut().insert(caller);
                        }
                        Err(e) => return Ok(e.into_status().into_http()),
                    }
                }
                Authentication::ClientCertificate(identity) if guarded => {
                    match certificate_caller(&request, &identity) {
                        Ok(caller) => {
                            request.extensions_mut().insert(caller);
                        }
                        Err(e) => {
                            tracing::info!(error = %e, "client certificate refused");
                            return Ok(e.into_status().into_http());
                        }
                    }
                }
                _ => {}
            }
            inner.call(request).await
        })
    }
}

/// The caller named by the verified client certificate, read the way the API server reads one
/// (CN = user, each O = a group) but under `identity`'s prefixes; refused unless it is a client
/// certificate (clientAuth extended key usage) with exactly one CN and nothing that could forge
/// a log line or claim a `system:` identity.
fn certificate_caller<B>(
    request: &http::Request<B>,
    identity: &CertificateIdentity,
) -> Result<Caller, AuthError> {
    use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
    let no_certificate =
        || AuthError::Unauthenticated("no client certificate was presented".into());
    let certs = request
        .extensions()
        .get::<TlsConnectInfo<TcpConnectInfo>>()
        .and_then(|info| info.peer_certs())
        .ok_or_else(no_certificate)?;
    let leaf = certs.first().ok_or_else(no_certificate)?;
    let (_, cert) = x509_parser::parse_x509_certificate(leaf.as_ref())
        .map_err(|e| AuthError::Unauthenticated(format!("unreadable client certificate: {e}")))?;
    // The TLS layer accepts a certificate without any extended key usage (webpki allows every
    // usage then); a server or signing certificate from the same CA must not name a caller.
    let client_auth = cert
        .extended_key_usage()
        .ok()
        .flatten()
        .is_some_and(|eku| eku.value.client_auth);
    if !client_auth {
        return Err(AuthError::Unauthenticated(
            "the client certificate is not for client authentication (no clientAuth extended \
             key usage)"
                .into(),
        ));
    }
    let subject = cert.subject();
    let names: Vec<_> = subject.iter_common_name().collect();
    let [cn] = names.as_slice() else {
        return Err(AuthError::Unauthenticated(format!(
            "the client certificate's subject must hold exactly one CN to name the user (it holds {})",
            names.len()
        )));
    };
    let user = cn.as_str().map_err(|_| {
        AuthError::Unauthenticated("the client certificate's CN is not a text string".into())
    })?;
    check_claim("CN", user)?;
    if user.is_empty() {
        return Err(AuthError::Unauthenticated(
            "the client certificate's CN is empty".into(),
        ));
    }
    let mut groups = Vec::new();
    for o in subject.iter_organization() {
        let group = o.as_str().map_err(|_| {
            AuthError::Unauthenticated("a client certificate O is not a text string".into())
        })?;
        check_claim("O", group)?;
        if !group.is_empty() {
            groups.push(format!("{}{group}", identity.groups_prefix));
        }
    }
    // Added by tokend, as the API server adds it for every authenticated user: not a claim.
    groups.push("system:authenticated".into());
    Ok(Caller {
        username: format!("{}{user}", identity.username_prefix),
        uid: String::new(),
        groups,
        extra: Default::default(),
    })
}

/// A certificate's claim is refused when it holds control characters (a forged log line) or
/// names a reserved identity. Refused rather than dropped: a certificate that asks for
/// `system:masters` is a mistake or an attack, and either way its holder should hear about it.
fn check_claim(attribute: &str, value: &str) -> Result<(), AuthError> {
    if value.chars().any(char::is_control) {
        return Err(AuthError::Unauthenticated(format!(
            "the client certificate's {attribute} holds control characters"
        )));
    }
    if value.starts_with(RESERVED_IDENTITY_PREFIX) {
        return Err(AuthError::Forbidden(format!(
            "a client certificate may not claim a {RESERVED_IDENTITY_PREFIX} identity ({attribute}={}); \
             certificate users and groups are prefixed (--mtls-username-prefix, --mtls-groups-prefix) \
             and bound to RBAC under that prefix",
            crate::names::echo(value)
        )));
    }
    Ok(())
}

fn bearer_token<B>(request: &http::Request<B>) -> Result<String, AuthError> {
    let header = request
        .headers()
        .get(http::header::AUTHORIZATION)
        .ok_or_else(|| {
            AuthError::Unauthenticated(
                "no credentials: send `authorization: Bearer <Kubernetes token>`".into(),
            )
        })?;
    let value = header
        .to_str()
        .map_err(|_| AuthError::Unauthenticated("the authorization header is not text".into()))?;
    match value.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            Ok(token.trim().to_owned())
        }
        _ => Err(AuthError::Unauthenticated(
            "the authorization header must be `Bearer <token>`".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reviewed_caller_keeps_the_extra_the_api_server_gave() {
        let extra = std::collections::BTreeMap::from([(
            "scopes.example.com/scope".to_owned(),
            vec!["read-only".to_owned()],
        )]);
        let caller = reviewed_caller(k8s_openapi::api::authentication::v1::UserInfo {
            username: Some("u".into()),
            extra: Some(extra.clone()),
            ..Default::default()
        });
        assert_eq!(caller.extra, extra);
    }
}
