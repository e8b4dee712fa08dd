//! An in-process HTTPS emulator of the Kubernetes API subset tokend uses, with real semantics and Status bodies.
//!
//! Start one with [`Emulator::start`], talk to it with [`Emulator::client`] or any kubeconfig-driven tool
//! (kubectl included) through [`Emulator::kubeconfig`].

mod admission;
mod authn;
mod bootstrap_policy;
mod bootstrap_tokens;
mod certificates;
mod clock;
mod custom_resources;
mod discovery;
mod error;
mod garbage_collector;
mod patch;
mod protobuf;
mod rbac;
mod request_info;
mod resources;
mod rest;
mod reviews;
mod selector;
mod server;
mod state;
mod status;
mod store;
mod tls;
mod token_request;
mod tokens;
mod validation;
mod watches;
mod webhooks;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, Mutex};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use kube::config::{
    AuthInfo, Cluster, Context, KubeConfigOptions, Kubeconfig, NamedAuthInfo, NamedCluster,
    NamedContext,
};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use error::Error;

use state::Shared;
use store::Store;
use tokens::Signer;

/// The issuer of the service-account tokens the emulator signs.
pub const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

/// The namespaces that exist when the emulator starts.
pub const INITIAL_NAMESPACES: &[&str] =
    &["default", "kube-system", "kube-public", "kube-node-lease"];

/// The name used for the cluster, user and context in generated kubeconfigs.
const KUBECONFIG_NAME: &str = "kube-emulator";

/// How to start an emulator.
#[derive(Debug, Clone)]
pub struct Options {
    /// Where to listen; port 0 picks a free port. Default `127.0.0.1:0`.
    pub bind: SocketAddr,
    /// Whether requests without credentials run as `system:anonymous` (403 when not allowed) or get 401.
    pub anonymous_auth: bool,
    /// Like kube-apiserver's `--service-account-max-token-expiration`: a TokenRequest for longer
    /// is not refused but silently shortened to this. Default: no maximum.
    pub max_token_expiration: Option<std::time::Duration>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            bind: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
            anonymous_auth: true,
            max_token_expiration: None,
        }
    }
}

/// A running emulator; dropping it (or calling [`Emulator::shutdown`]) stops the server.
pub struct Emulator {
    shared: Arc<Shared>,
    addr: SocketAddr,
    url: String,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Emulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emulator")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

fn random_token() -> String {
    let bytes: [u8; 32] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Creates the initial namespaces (each with kube-root-ca.crt) and the bootstrap RBAC policy.
fn seed(shared: &Shared) {
    let mut store = shared.store();
    if let Some(ns_type) = resources::stored_type("", "namespaces") {
        for ns in INITIAL_NAMESPACES {
            let _ = rest::create(
                shared,
                &mut store,
                ns_type,
                "",
                json!({"metadata": {"name": ns}}),
            );
        }
    }
    for (plural, obj) in bootstrap_policy::bootstrap_policy() {
        if let Some(rt) = bootstrap_policy::policy_type(plural) {
            let _ = rest::create(shared, &mut store, rt, "", obj);
        }
    }
    let seeded = store.revision();
    store.events.forget_history(seeded);
}

impl Emulator {
    /// Starts an emulator with [`Options::default`].
    pub async fn start() -> Result<Emulator, Error> {
        Self::start_with(Options::default()).await
    }

    /// Starts an emulator: generates its CA, serving certificate, signing key and admin token, and listens.
    pub async fn start_with(opts: Options) -> Result<Emulator, Error> {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let tls = tls::generate()?;
        let signer = Signer::generate(ISSUER)?;
        let listener = TcpListener::bind(opts.bind)
            .await
            .map_err(|source| Error::Bind {
                addr: opts.bind,
                source,
            })?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            store: Mutex::new(Store::new()),
            signer,
            admin_token: random_token(),
            ca_pem: tls.ca_pem,
            ca: tls.ca,
            anonymous_auth: opts.anonymous_auth,
            max_token_seconds: opts
                .max_token_expiration
                .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX)),
        });
        seed(&shared);
        garbage_collector::spawn(&shared);
        let host = if addr.ip().is_unspecified() {
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        } else {
            addr.ip()
        };
        let url = format!("https://{}", SocketAddr::new(host, addr.port()));
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(server::serve(listener, tls.config, shared.clone(), stopped));
        Ok(Emulator {
            shared,
            addr,
            url,
            stop,
            task: Some(task),
        })
    }

    /// The base URL, `https://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// PEM of the emulator's CA, which signed its serving certificate (SANs 127.0.0.1, ::1, localhost).
    pub fn ca_pem(&self) -> &str {
        &self.shared.ca_pem
    }

    /// The bearer token of user `admin` in group `system:masters`.
    pub fn admin_token(&self) -> &str {
        &self.shared.admin_token
    }

    /// The issuer (`iss`) of the tokens the emulator signs.
    pub fn issuer(&self) -> &str {
        self.shared.signer.issuer()
    }

    /// An admin kubeconfig: the CA embedded as certificate-authority-data and the admin token.
    pub fn kubeconfig(&self) -> Kubeconfig {
        Kubeconfig {
            clusters: vec![NamedCluster {
                name: KUBECONFIG_NAME.into(),
                cluster: Some(Cluster {
                    server: Some(self.url()),
                    certificate_authority_data: Some(STANDARD.encode(self.ca_pem())),
                    ..Cluster::default()
                }),
                ..NamedCluster::default()
            }],
            auth_infos: vec![NamedAuthInfo {
                name: KUBECONFIG_NAME.into(),
                auth_info: Some(AuthInfo {
                    token: Some(self.admin_token().to_string().into()),
                    ..AuthInfo::default()
                }),
                ..NamedAuthInfo::default()
            }],
            contexts: vec![NamedContext {
                name: KUBECONFIG_NAME.into(),
                context: Some(Context {
                    cluster: KUBECONFIG_NAME.into(),
                    user: Some(KUBECONFIG_NAME.into()),
                    namespace: Some("default".into()),
                    ..Context::default()
                }),
                ..NamedContext::default()
            }],
            current_context: Some(KUBECONFIG_NAME.into()),
            kind: Some("Config".into()),
            api_version: Some("v1".into()),
            ..Kubeconfig::default()
        }
    }

    /// The admin kubeconfig as YAML.
    pub fn kubeconfig_yaml(&self) -> Result<String, Error> {
        Ok(serde_yaml::to_string(&self.kubeconfig())?)
    }

    /// Writes the admin kubeconfig to `path` with mode 0600.
    pub async fn write_kubeconfig(&self, path: &Path) -> Result<(), Error> {
        use tokio::io::AsyncWriteExt;
        let yaml = self.kubeconfig_yaml()?;
        let mut options = tokio::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        options.mode(0o600);
        let mut file = options.open(path).await?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            tokio::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).await?;
        }
        file.write_all(yaml.as_bytes()).await?;
        file.flush().await?;
        Ok(())
    }

    /// A kube client configuration for the admin user.
    pub async fn client_config(&self) -> Result<kube::Config, Error> {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        Ok(
            kube::Config::from_custom_kubeconfig(self.kubeconfig(), &KubeConfigOptions::default())
                .await?,
        )
    }

    /// A kube client for the admin user.
    pub async fn client(&self) -> Result<kube::Client, Error> {
        Ok(kube::Client::try_from(self.client_config().await?)?)
    }

    /// Stops the server and waits for the accept loop to end; open connections are closed.
    pub async fn shutdown(mut self) {
        self.stop.send_replace(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.stop.send_replace(true);
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
