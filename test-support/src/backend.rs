//! Which Kubernetes API the suite runs against, and admin access to it: the emulator (the
//! default), a real control plane started for the run (`TOKEND_TEST_BACKEND=real`), or any
//! cluster named by an admin kubeconfig (`TOKEND_TEST_KUBECONFIG`).

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube_emulator::Emulator;

use crate::control_plane::ControlPlane;

/// An admin kubeconfig of a real cluster to run the suite against.
pub const KUBECONFIG_ENV: &str = "TOKEND_TEST_KUBECONFIG";

/// `emulator` (the default) or `real`: with `real` and no `TOKEND_TEST_KUBECONFIG`, each test
/// binary starts a loopback control plane of its own (see [`crate::control_plane`]).
pub const BACKEND_ENV: &str = "TOKEND_TEST_BACKEND";

/// The kind of API server behind the suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The in-process Kubernetes API emulator.
    Emulator,
    /// A real kube-apiserver.
    Real,
}

impl Backend {
    /// The backend the environment selects.
    pub fn selected() -> Backend {
        let kubeconfig = std::env::var_os(KUBECONFIG_ENV).is_some_and(|v| !v.is_empty());
        let real = std::env::var(BACKEND_ENV).is_ok_and(|v| v == "real");
        if kubeconfig || real {
            Backend::Real
        } else {
            Backend::Emulator
        }
    }

    /// `emulator` or `real`, as skip lines and summaries print it.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Emulator => "emulator",
            Backend::Real => "real",
        }
    }
}

/// The emulator as the suite runs it: with a token-lifetime cap, as many real clusters set
/// (`--service-account-max-token-expiration`; the suite's control plane sets 48h too), so tokend
/// meets a server that shortens tokens.
pub fn emulator_options() -> kube_emulator::Options {
    kube_emulator::Options {
        max_token_expiration: Some(Duration::from_secs(48 * 3600)),
        ..kube_emulator::Options::default()
    }
}

/// Admin access to the backend for one test.
pub struct Cluster {
    /// Which kind of backend this is.
    pub backend: Backend,
    /// The emulator, when the test runs on it.
    pub emulator: Option<Emulator>,
    /// Admin client configuration.
    pub config: kube::Config,
    /// Admin client, on the runtime of the test that connected.
    pub client: kube::Client,
    /// The admin kubeconfig as a file (for kubectl).
    pub admin_kubeconfig: PathBuf,
    _dir: tempfile::TempDir,
}

impl Cluster {
    /// Connects to the selected backend; an emulator gets the suite's options.
    pub async fn connect() -> Result<Cluster> {
        Cluster::connect_with(emulator_options()).await
    }

    /// Connects to the selected backend; an emulator gets `options`.
    pub async fn connect_with(options: kube_emulator::Options) -> Result<Cluster> {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let dir = tempfile::tempdir().context("temp dir")?;
        let admin_kubeconfig = dir.path().join("admin.kubeconfig");
        let (backend, emulator, config) = match Backend::selected() {
            Backend::Real => {
                let source = real_kubeconfig()?;
                std::fs::copy(&source, &admin_kubeconfig)
                    .with_context(|| format!("copying {}", source.display()))?;
                let kubeconfig = Kubeconfig::read_from(&source)
                    .with_context(|| format!("reading {}", source.display()))?;
                let config =
                    kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                        .await
                        .with_context(|| format!("using {}", source.display()))?;
                (Backend::Real, None, config)
            }
            Backend::Emulator => {
                let emulator = Emulator::start_with(options).await?;
                emulator.write_kubeconfig(&admin_kubeconfig).await?;
                let config = emulator.client_config().await?;
                (Backend::Emulator, Some(emulator), config)
            }
        };
        let client = kube::Client::try_from(config.clone())?;
        Ok(Cluster {
            backend,
            emulator,
            config,
            client,
            admin_kubeconfig,
            _dir: dir,
        })
    }

    /// Admin access through `config` to a server of kind `backend` that the caller runs itself
    /// (an emulator with options of its own); there is no kubeconfig file.
    pub fn from_config(backend: Backend, config: kube::Config) -> Result<Cluster> {
        let dir = tempfile::tempdir().context("temp dir")?;
        Ok(Cluster {
            backend,
            emulator: None,
            client: kube::Client::try_from(config.clone())?,
            config,
            admin_kubeconfig: dir.path().join("no-kubeconfig"),
            _dir: dir,
        })
    }

    /// The API server's URL.
    pub fn url(&self) -> String {
        self.config
            .cluster_url
            .to_string()
            .trim_end_matches('/')
            .to_owned()
    }

    /// The CA bundle (PEM) the admin client trusts for the API server.
    pub fn ca_pem(&self) -> Option<String> {
        let certs = self.config.root_cert.as_ref()?;
        Some(
            certs
                .iter()
                .map(|der| pem::encode(&pem::Pem::new("CERTIFICATE", der.clone())))
                .collect(),
        )
    }

    /// A client of this backend that authenticates with `token` instead of the admin's
    /// credentials.
    pub fn client_with_token(&self, token: &str) -> Result<kube::Client> {
        let mut config = self.config.clone();
        config.auth_info = kube::config::AuthInfo {
            token: Some(token.to_owned().into()),
            ..Default::default()
        };
        Ok(kube::Client::try_from(config)?)
    }

    /// A client of this backend that sends no credentials.
    pub fn anonymous_client(&self) -> Result<kube::Client> {
        let mut config = self.config.clone();
        config.auth_info = kube::config::AuthInfo::default();
        Ok(kube::Client::try_from(config)?)
    }
}

/// The real cluster's admin kubeconfig: `TOKEND_TEST_KUBECONFIG`, else a control plane this test
/// binary starts once and shares among its tests (killed when the binary exits).
fn real_kubeconfig() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os(KUBECONFIG_ENV).filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(path));
    }
    static PLANE: OnceLock<Result<ControlPlane, String>> = OnceLock::new();
    let plane = PLANE.get_or_init(|| {
        // Started on a runtime of its own: the test that happens to ask first may be on a
        // current-thread runtime, and nothing of the plane may depend on that runtime.
        std::thread::spawn(|| {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            runtime
                .block_on(ControlPlane::start())
                .map_err(|e| format!("{e:#}"))
        })
        .join()
        .unwrap_or_else(|_| Err("the control plane's start panicked".to_owned()))
    });
    match plane {
        Ok(plane) => Ok(plane.kubeconfig().to_path_buf()),
        Err(e) => Err(anyhow!("starting a control plane: {e}")),
    }
}
