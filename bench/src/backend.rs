//! The Kubernetes API every mode talks to: the embedded emulator, a loopback control plane from
//! the test harness (`TOKEND_TEST_BACKEND=real`), or a cluster named by a kubeconfig; and the
//! namespace and ServiceAccount a benchmark issues tokens for.

use std::path::{Path, PathBuf};

use anyhow::Context;
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::api::{DeleteParams, ObjectMeta, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client};
use kube_emulator::Emulator;
use tokend_test_support::Backend as Selected;
use tokend_test_support::control_plane::ControlPlane;

pub use tokend_test_support::unique_name;

/// The ServiceAccount tokens are issued for.
pub const SERVICE_ACCOUNT: &str = "bench";

/// A Kubernetes API to benchmark against, with an admin kubeconfig file for kubectl.
pub struct Backend {
    emulator: Option<Emulator>,
    _control_plane: Option<ControlPlane>,
    config: kube::Config,
    kubeconfig: PathBuf,
    admin_token: Option<String>,
    _dir: tempfile::TempDir,
}

impl Backend {
    /// Reads `kubeconfig` when one is given; else starts a loopback control plane when
    /// `TOKEND_TEST_BACKEND=real`, or the embedded emulator.
    pub async fn start(kubeconfig: Option<&Path>) -> anyhow::Result<Self> {
        if kubeconfig.is_none() && Selected::selected() == Selected::Real {
            let plane = ControlPlane::start()
                .await
                .context("starting a control plane")?;
            let mut backend = Box::pin(Self::start(Some(plane.kubeconfig()))).await?;
            backend._control_plane = Some(plane);
            return Ok(backend);
        }
        let dir = tempfile::tempdir().context("temporary directory")?;
        match kubeconfig {
            Some(path) => {
                let parsed = Kubeconfig::read_from(path)
                    .with_context(|| format!("reading kubeconfig {}", path.display()))?;
                let config =
                    kube::Config::from_custom_kubeconfig(parsed, &KubeConfigOptions::default())
                        .await
                        .with_context(|| format!("using kubeconfig {}", path.display()))?;
                let admin_token = config
                    .auth_info
                    .token
                    .as_ref()
                    .map(|t| secrecy::ExposeSecret::expose_secret(t).to_owned());
                Ok(Self {
                    emulator: None,
                    _control_plane: None,
                    config,
                    kubeconfig: path.to_owned(),
                    admin_token,
                    _dir: dir,
                })
            }
            None => {
                let emulator = Emulator::start().await.context("starting the emulator")?;
                let path = dir.path().join("admin.kubeconfig");
                emulator
                    .write_kubeconfig(&path)
                    .await
                    .context("writing the emulator's kubeconfig")?;
                let config = emulator
                    .client_config()
                    .await
                    .context("emulator client config")?;
                let admin_token = Some(emulator.admin_token().to_owned());
                Ok(Self {
                    emulator: Some(emulator),
                    _control_plane: None,
                    config,
                    kubeconfig: path,
                    admin_token,
                    _dir: dir,
                })
            }
        }
    }

    /// The admin client configuration.
    pub fn config(&self) -> kube::Config {
        self.config.clone()
    }

    /// A file holding the admin kubeconfig.
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// The admin bearer token, when the kubeconfig carries one (the emulator's always does).
    pub fn admin_token(&self) -> Option<&str> {
        self.admin_token.as_deref()
    }

    /// Whether this is the embedded emulator.
    pub fn is_emulator(&self) -> bool {
        self.emulator.is_some()
    }

    /// Creates namespace `name` holding ServiceAccount [`SERVICE_ACCOUNT`].
    pub async fn prepare_namespace(&self, name: &str) -> anyhow::Result<()> {
        let client = Client::try_from(self.config()).context("kube client")?;
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                ..Default::default()
            },
            ..Default::default()
        };
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .with_context(|| format!("creating namespace {name}"))?;
        let sa = ServiceAccount {
            metadata: ObjectMeta {
                name: Some(SERVICE_ACCOUNT.to_owned()),
                namespace: Some(name.to_owned()),
                ..Default::default()
            },
            ..Default::default()
        };
        Api::<ServiceAccount>::namespaced(client, name)
            .create(&PostParams::default(), &sa)
            .await
            .with_context(|| format!("creating ServiceAccount {name}/{SERVICE_ACCOUNT}"))?;
        Ok(())
    }

    /// Deletes namespace `name` (on a real cluster; the emulator goes away with the process).
    pub async fn drop_namespace(&self, name: &str) -> anyhow::Result<()> {
        if self.is_emulator() {
            return Ok(());
        }
        let client = Client::try_from(self.config()).context("kube client")?;
        Api::<Namespace>::all(client)
            .delete(name, &DeleteParams::default())
            .await
            .with_context(|| format!("deleting namespace {name}"))?;
        Ok(())
    }
}
