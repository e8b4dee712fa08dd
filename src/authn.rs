//! Caller authentication: a tower layer in front of TokenService that turns the caller's bearer
//! token into a [`Caller`] (through TokenReview, cached briefly) and puts it in the request's
//! extensions. Handlers read the caller; they never parse headers.

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::future::BoxFuture;
use tonic::Status;

use crate::cluster::Cluster;
use crate::grpc::v1::token_service_server::SERVICE_NAME;
use crate::metrics::Metrics;
use crate::service::Caller;
use crate::ttl_cache::TtlCache;

/// Most reviews kept at once.
const MAX_CACHED: usize = 10_000;

/// How callers prove who they are.
#[derive(Clone)]
pub enum Authentication {
    /// Nobody is asked; every caller is anonymous (dev and explicit insecure mode only).
    None,
    /// `authorization: Bearer <Kubernetes token>`, checked with TokenReview.
    Kubernetes(Arc<TokenAuthenticator>),
    /// The client certificate the TLS layer verified: CN is the user, each O a group.
    ClientCertificate,
}

/// Checks bearer tokens with the API server and remembers successes for a short TTL, keyed by
/// a hash of the token (never the token itself).
pub struct TokenAuthenticator {
    cluster: Cluster,
    audiences: Vec<String>,
    cache: TtlCache<[u8; 32], Caller>,
    metrics: Metrics,
}

impl TokenAuthenticator {
    /// An authenticator reviewing tokens for `audiences` (empty: the API server's) and caching
    /// successes for `ttl`.
    pub fn new(cluster: Cluster, audiences: Vec<String>, ttl: Duration, metrics: Metrics) -> Self {
        Self {
            cluster,
            audiences,
            cache: TtlCache::new(ttl, MAX_CACHED),
            metrics,
        }
    }

    /// The caller a bearer token belongs to, or why it is refused.
    pub async fn authenticate(&self, token: &str) -> Result<Caller, Status> {
        let key = fingerprint(token);
        if let Some(caller) = self.cache.get(&key) {
            self.metrics.review_cache_hits.inc();
            return Ok(caller);
        }
        self.metrics.review_cache_misses.inc();
        let status = self
            .cluster
            .review_token(token, &self.audiences)
            .await
            .map_err(|e| {
                Status::unavailable(format!(
                    "cannot check the caller's token with the Kubernetes API: {e}"
                ))
            })?;
        if status.authenticated != Some(true) {
            return Err(Status::unauthenticated(format!(
                "the bearer token was rejected by the Kubernetes API: {}",
                status.error.unwrap_or_else(|| "not authenticated".into())
            )));
        }
        let user = status.user.unwrap_or_default();
        let caller = Caller {
            username: user.username.unwrap_or_default(),
            uid: user.uid.unwrap_or_default(),
            groups: user.groups.unwrap_or_default(),
        };
        self.cache.insert(key, caller.clone());
        Ok(caller)
    }
}

fn fingerprint(token: &str) -> [u8; 32] {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
    let mut key = [0u8; 32];
    key.copy_from_slice(digest.as_ref());
    key
}

/// The tower layer that authenticates calls to TokenService (health and reflection stay open,
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
            let guarded = request
                .uri()
                .path()
                .starts_with(&format!("/{SERVICE_NAME}/"));
            match authentication {
                Authentication::Kubernetes(authenticator) if guarded => {
                    let token = match bearer_token(&request) {
                        Ok(token) => token,
                        Err(status) => return Ok(status.into_http()),
                    };
                    match authenticator.authenticate(&token).await {
                        Ok(caller) => {
                            request.extensions_mut().insert(caller);
                        }
                        Err(status) => return Ok(status.into_http()),
                    }
                }
                Authentication::ClientCertificate if guarded => {
                    match certificate_caller(&request) {
                        Ok(caller) => {
                            request.extensions_mut().insert(caller);
                        }
                        Err(status) => return Ok(status.into_http()),
                    }
                }
                _ => {}
            }
            inner.call(request).await
        })
    }
}

/// The caller named by the verified client certificate, read the way the API server reads one.
fn certificate_caller<B>(request: &http::Request<B>) -> Result<Caller, Status> {
    use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
    let certs = request
        .extensions()
        .get::<TlsConnectInfo<TcpConnectInfo>>()
        .and_then(|info| info.peer_certs())
        .ok_or_else(|| Status::unauthenticated("no client certificate was presented"))?;
    let leaf = certs
        .first()
        .ok_or_else(|| Status::unauthenticated("no client certificate was presented"))?;
    let (_, cert) = x509_parser::parse_x509_certificate(leaf.as_ref())
        .map_err(|e| Status::unauthenticated(format!("unreadable client certificate: {e}")))?;
    let subject = cert.subject();
    let username = subject
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .filter(|cn| !cn.is_empty())
        .ok_or_else(|| {
            Status::unauthenticated("the client certificate has no subject CN to name the user")
        })?
        .to_owned();
    let mut groups: Vec<String> = subject
        .iter_organization()
        .filter_map(|o| o.as_str().ok().map(str::to_owned))
        .collect();
    groups.push("system:authenticated".into());
    Ok(Caller {
        username,
        uid: String::new(),
        groups,
    })
}

fn bearer_token<B>(request: &http::Request<B>) -> Result<String, Status> {
    let header = request
        .headers()
        .get(http::header::AUTHORIZATION)
        .ok_or_else(|| {
            Status::unauthenticated(
                "no credentials: send `authorization: Bearer <Kubernetes token>`",
            )
        })?;
    let value = header
        .to_str()
        .map_err(|_| Status::unauthenticated("the authorization header is not text"))?;
    match value.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            Ok(token.trim().to_owned())
        }
        _ => Err(Status::unauthenticated(
            "the authorization header must be `Bearer <token>`",
        )),
    }
}
