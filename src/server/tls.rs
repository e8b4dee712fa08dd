//! TLS on the gRPC port: the certificate and the client CA are read from files and re-read when
//! they change (cert-manager rotates them in place), so rotation needs no restart.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{
    DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig, SignatureScheme,
};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_stream::wrappers::ReceiverStream;

use crate::server::listener::{ConnectionBounds, LimitedConnection};

/// The files TLS is served from.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// Certificate chain, PEM.
    pub cert: PathBuf,
    /// Private key, PEM.
    pub key: PathBuf,
    /// CA bundle (PEM) client certificates must chain to; when set, clients must present one.
    pub client_ca: Option<PathBuf>,
}

/// TLS files that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file holds no usable PEM of the expected kind.
    #[error("{path}: {message}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        message: String,
    },
    /// rustls refused the material.
    #[error("TLS: {0}")]
    Rustls(#[from] rustls::Error),
}

/// TLS state shared by the acceptor and the reload task.
#[derive(Clone)]
pub struct ReloadingTls {
    files: TlsFiles,
    cert: Arc<ReloadingCert>,
    client_verifier: Option<Arc<ReloadingClientVerifier>>,
    acceptor: TlsAcceptor,
}

impl ReloadingTls {
    /// Loads the files; fails if any is unusable, so a bad start is loud.
    pub fn load(files: TlsFiles) -> Result<Self, TlsError> {
        Self::load_with_alpn(files, vec![b"h2".to_vec()])
    }

    /// [`ReloadingTls::load`], offering the ALPN protocols `alpn` (the webhook port speaks
    /// HTTP/1.1 too, as API servers' webhook clients may).
    pub fn load_with_alpn(files: TlsFiles, alpn: Vec<Vec<u8>>) -> Result<Self, TlsError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let cert = Arc::new(ReloadingCert {
            current: RwLock::new(Arc::new(load_certified_key(&files, &provider)?)),
            provider: provider.clone(),
        });
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?;
        let (builder, client_verifier) = match &files.client_ca {
            Some(ca) => {
                let verifier = Arc::new(ReloadingClientVerifier {
                    current: RwLock::new(load_client_verifier(ca, &provider)?),
                    provider: provider.clone(),
                });
                (
                    builder.with_client_cert_verifier(verifier.clone()),
                    Some(verifier),
                )
            }
            None => (builder.with_no_client_auth(), None),
        };
        let mut config = builder.with_cert_resolver(cert.clone());
        config.alpn_protocols = alpn;
        Ok(Self {
            files,
            cert,
            client_verifier,
            acceptor: TlsAcceptor::from(Arc::new(config)),
        })
    }

    /// Re-reads the files whenever one changes, checking every `interval`; a broken file is
    /// logged and the previous material kept.
    pub async fn watch(self, interval: Duration) {
        let mut seen = self.modified();
        loop {
            tokio::time::sleep(interval).await;
            let now = self.modified();
            if now == seen {
                continue;
            }
            seen = now;
            match self.reload() {
                Ok(()) => {
                    tracing::info!(cert = %self.files.cert.display(), "TLS certificate reloaded")
                }
                Err(e) => {
                    tracing::error!(error = %e, "TLS files changed but cannot be used; keeping the previous ones")
                }
            }
        }
    }

    fn reload(&self) -> Result<(), TlsError> {
        let key = load_certified_key(&self.files, &self.cert.provider)?;
        if let Ok(mut current) = self.cert.current.write() {
            *current = Arc::new(key);
        }
        if let (Some(verifier), Some(ca)) = (&self.client_verifier, &self.files.client_ca) {
            let fresh = load_client_verifier(ca, &verifier.provider)?;
            if let Ok(mut current) = verifier.current.write() {
                *current = fresh;
            }
        }
        Ok(())
    }

    fn modified(&self) -> Vec<Option<SystemTime>> {
        let mut paths = vec![&self.files.cert, &self.files.key];
        paths.extend(self.files.client_ca.as_ref());
        paths
            .into_iter()
            .map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
            .collect()
    }

    /// Accepts TCP connections (within `bounds`) and completes TLS handshakes (within
    /// `bounds.setup_timeout`) off the accept loop, yielding the established streams; the loop
    /// ends when the server drops the stream.
    pub fn incoming(
        &self,
        listener: TcpListener,
        bounds: ConnectionBounds,
    ) -> ReceiverStream<Result<LimitedConnection<TlsStream<TcpStream>>, std::io::Error>> {
        let acceptor = self.acceptor.clone();
        crate::server::listener::incoming(listener, bounds, move |tcp, peer| {
            let acceptor = acceptor.clone();
            async move {
                match acceptor.accept(tcp).await {
                    Ok(stream) => Some(stream),
                    Err(e) => {
                        tracing::debug!(%peer, error = %e, "TLS handshake failed");
                        None
                    }
                }
            }
        })
    }
}

struct ReloadingCert {
    current: RwLock<Arc<CertifiedKey>>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl fmt::Debug for ReloadingCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ReloadingCert")
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current.read().ok().map(|key| key.clone())
    }
}

/// Delegates to a verifier built from the current client CA file.
struct ReloadingClientVerifier {
    current: RwLock<Arc<dyn ClientCertVerifier>>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl fmt::Debug for ReloadingClientVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ReloadingClientVerifier")
    }
}

impl ReloadingClientVerifier {
    fn inner(&self) -> Result<Arc<dyn ClientCertVerifier>, rustls::Error> {
        self.current
            .read()
            .map(|v| v.clone())
            .map_err(|_| rustls::Error::General("client CA verifier unavailable".into()))
    }
}

impl ClientCertVerifier for ReloadingClientVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        // Hints are optional; the live ones sit behind a lock that cannot lend a reference.
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.inner()?
            .verify_client_cert(end_entity, intermediates, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner()?.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner()?.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(path)?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Pem {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Pem {
            path: path.to_owned(),
            message: "no CERTIFICATE block".into(),
        });
    }
    Ok(certs)
}

fn load_certified_key(
    files: &TlsFiles,
    provider: &rustls::crypto::CryptoProvider,
) -> Result<CertifiedKey, TlsError> {
    let chain = certificates(&files.cert)?;
    let key = PrivateKeyDer::from_pem_slice(&read(&files.key)?).map_err(|e| TlsError::Pem {
        path: files.key.clone(),
        message: e.to_string(),
    })?;
    Ok(CertifiedKey::from_der(chain, key, provider)?)
}

fn load_client_verifier(
    ca: &Path,
    provider: &Arc<rustls::crypto::CryptoProvider>,
) -> Result<Arc<dyn ClientCertVerifier>, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in certificates(ca)? {
        roots.add(cert)?;
    }
    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| TlsError::Pem {
            path: ca.to_owned(),
            message: e.to_string(),
        })
}
