//! A fault-injecting HTTPS proxy between tokend and whichever API server backs a test (the
//! emulator or a real kube-apiserver): added latency, canned error statuses for chosen requests,
//! connections reset mid-request, requests held without an answer, and a "down" switch. It
//! terminates TLS with its own CA and forwards every request, credentials untouched, so the
//! fault tests run unchanged on both backends.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::{Context, Result};
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::TcpListener;
use tokio::sync::watch;

/// A rule answering the next `count` matching requests with an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailRule {
    /// Only requests with this method match; any method when None.
    pub method: Option<http::Method>,
    /// Only requests whose path (with query) contains this string match; empty matches all.
    pub path_contains: String,
    /// How many matching requests fail.
    pub count: usize,
    /// The HTTP status they get, with a Status body shaped as a real server shapes it; 0
    /// resets the connection instead of answering.
    pub status: u16,
}

#[derive(Debug, Default)]
struct Knobs {
    latency: Duration,
    rules: Vec<FailRule>,
}

/// A cheap-to-clone handle on the proxy's fault knobs.
#[derive(Debug, Clone)]
pub struct Faults {
    knobs: Arc<Mutex<Knobs>>,
    down: Arc<watch::Sender<bool>>,
    stalled: Arc<watch::Sender<bool>>,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            knobs: Arc::default(),
            down: Arc::new(watch::channel(false).0),
            stalled: Arc::new(watch::channel(false).0),
        }
    }
}

impl Faults {
    fn knobs(&self) -> MutexGuard<'_, Knobs> {
        self.knobs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds `d` before every forwarded request.
    pub fn set_latency(&self, d: Duration) {
        self.knobs().latency = d;
    }

    /// Answers the next `rule.count` requests matching `rule` with `rule.status`.
    pub fn fail_next(&self, rule: FailRule) {
        if rule.count > 0 {
            self.knobs().rules.push(rule);
        }
    }

    /// While down, new connections are closed at once and open ones are dropped: what a
    /// crashed or unreachable API server looks like.
    pub fn set_down(&self, down: bool) {
        self.down.send_replace(down);
    }

    /// While stalled, connections are accepted and requests read, but nothing is answered
    /// until the stall ends: what a hung API server (or a black-holing network) looks like.
    pub fn set_stalled(&self, stalled: bool) {
        self.stalled.send_replace(stalled);
    }

    /// Removes all latency, pending failures, the stall and the down state.
    pub fn clear(&self) {
        let mut k = self.knobs();
        k.latency = Duration::ZERO;
        k.rules.clear();
        drop(k);
        self.set_stalled(false);
        self.set_down(false);
    }

    /// Whether the proxy is down now.
    pub fn is_down(&self) -> bool {
        *self.down.borrow()
    }

    fn take_failure(&self, method: &http::Method, path: &str) -> Option<u16> {
        let mut k = self.knobs();
        let idx = k.rules.iter().position(|r| {
            r.method.as_ref().is_none_or(|m| m == method) && path.contains(&r.path_contains)
        })?;
        let status = k.rules[idx].status;
        k.rules[idx].count -= 1;
        if k.rules[idx].count == 0 {
            k.rules.remove(idx);
        }
        Some(status)
    }

    async fn wait_while_stalled(&self) {
        let mut rx = self.stalled.subscribe();
        let _ = rx.wait_for(|stalled| !stalled).await;
    }
}

/// The proxy, serving until dropped.
pub struct FaultProxy {
    url: String,
    ca_pem: String,
    faults: Faults,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FaultProxy {
    /// Starts a proxy on a loopback port in front of the API server `upstream` points at.
    /// The upstream's credentials are not used: each request carries its own.
    pub async fn start(upstream: &kube::Config) -> Result<FaultProxy> {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let mut anonymous = upstream.clone();
        anonymous.auth_info = kube::config::AuthInfo::default();
        let upstream = kube::Client::try_from(anonymous).context("upstream client")?;
        let (ca_pem, tls) = tls_config()?;
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("https://{}", listener.local_addr()?);
        let faults = Faults::default();
        let task = tokio::spawn(accept_loop(listener, tls, upstream, faults.clone()));
        Ok(FaultProxy {
            url,
            ca_pem,
            faults,
            task,
        })
    }

    /// The proxy's URL, `https://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The CA that signed the proxy's serving certificate.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The fault knobs.
    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    /// `config` with its server replaced by this proxy: the proxy's CA is trusted in addition
    /// to the server's, so a CA bundle taken from the routed config still verifies the server.
    pub fn route(&self, config: &kube::Config) -> Result<kube::Config> {
        let mut routed = config.clone();
        routed.cluster_url = self.url.parse().context("proxy URL")?;
        let der = pem::parse(&self.ca_pem).context("proxy CA")?;
        let mut roots = vec![der.contents().to_vec()];
        roots.extend(config.root_cert.iter().flatten().cloned());
        routed.root_cert = Some(roots);
        routed.accept_invalid_certs = false;
        routed.tls_server_name = None;
        Ok(routed)
    }
}

async fn accept_loop(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    upstream: kube::Client,
    faults: Faults,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        if faults.is_down() {
            drop(tcp);
            continue;
        }
        let (acceptor, upstream, faults) = (acceptor.clone(), upstream.clone(), faults.clone());
        tokio::spawn(async move {
            let mut down = faults.down.subscribe();
            let serve = async {
                let Ok(stream) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = hyper::service::service_fn(move |request| {
                    forward(request, upstream.clone(), faults.clone())
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            };
            // Going down drops the connection mid-flight, as a crashed server would.
            tokio::select! {
                () = serve => {}
                _ = down.wait_for(|d| *d) => {}
            }
        });
    }
}

/// The connection is reset instead of answered.
#[derive(Debug)]
struct Reset;

impl std::fmt::Display for Reset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("fault proxy: connection reset")
    }
}

impl std::error::Error for Reset {}

async fn forward(
    request: http::Request<Incoming>,
    upstream: kube::Client,
    faults: Faults,
) -> Result<http::Response<kube::client::Body>, Reset> {
    faults.wait_while_stalled().await;
    let latency = faults.knobs().latency;
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let path = request
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    match faults.take_failure(request.method(), &path) {
        Some(0) => return Err(Reset),
        Some(status) => return Ok(status_response(status)),
        None => {}
    }
    let (mut parts, body) = request.into_parts();
    let Ok(body) = body.collect().await else {
        return Err(Reset);
    };
    parts.headers.remove(http::header::HOST);
    let Ok(uri) = path.parse() else {
        return Ok(status_response(400));
    };
    parts.uri = uri;
    let request =
        http::Request::from_parts(parts, kube::client::Body::from(body.to_bytes().to_vec()));
    match upstream.send(request).await {
        Ok(response) => Ok(response),
        // The upstream is gone: the caller sees what it would see of a dead server.
        Err(_) => Err(Reset),
    }
}

/// An error answer with a `Status` body as kube-apiserver writes one.
fn status_response(code: u16) -> http::Response<kube::client::Body> {
    let reason = match code {
        409 => "Conflict",
        429 => "TooManyRequests",
        500 => "InternalError",
        503 => "ServiceUnavailable",
        504 => "Timeout",
        _ => "Unknown",
    };
    let body = serde_json::json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": format!("injected by the test fault proxy: {reason}"),
        "reason": reason,
        "code": code,
    });
    let mut response = http::Response::new(kube::client::Body::from(body.to_string().into_bytes()));
    *response.status_mut() =
        http::StatusCode::from_u16(code).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

/// A CA and a serving certificate for 127.0.0.1 and localhost; HTTP/1.1 only, as kube-rs speaks.
fn tls_config() -> Result<(String, Arc<rustls::ServerConfig>)> {
    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "tokend-test-fault-proxy-ca");
    ca_params.distinguished_name = dn;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate()?;
    let params = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])?;
    let cert = params.signed_by(&key, &issuer)?;
    let chain = vec![CertificateDer::from(cert.der().to_vec())];
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok((ca_cert.pem(), Arc::new(config)))
}
