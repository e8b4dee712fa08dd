//! What people do today: `kubectl create token SA --duration=1h --bound-object-kind=Secret
//! --bound-object-name=NAME` as one process per token, and `kubectl delete secret` to revoke.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};
use tokio::process::Command;

use crate::TOKEN_DURATION;
use crate::backend::SERVICE_ACCOUNT;

/// Where kubectl is looked for when `--kubectl` is not given.
pub const DEFAULT_KUBECTL: &str = "kubectl";

/// Runs kubectl against one namespace with an admin kubeconfig.
#[derive(Clone)]
pub struct Kubectl {
    program: PathBuf,
    kubeconfig: PathBuf,
    namespace: String,
}

impl Kubectl {
    /// kubectl at `program`, or why it cannot be used (absent, or not answering `version --client`).
    pub async fn find(program: &Path, kubeconfig: &Path, namespace: &str) -> Result<Self, String> {
        let output = Command::new(program)
            .args(["version", "--client"])
            .output()
            .await
            .map_err(|e| format!("{} cannot be run: {e}", program.display()))?;
        if !output.status.success() {
            return Err(format!(
                "`{} version --client` failed: {}",
                program.display(),
                String::from_utf8_lossy(&output.stderr).trim()
            ));
        }
        Ok(Self {
            program: program.to_owned(),
            kubeconfig: kubeconfig.to_owned(),
            namespace: namespace.to_owned(),
        })
    }

    /// Creates the Secrets the tokens will be bound to, untimed: kubectl has no single command
    /// that makes the record and the token, so its baseline gets the Secret for free.
    pub async fn prepare_secrets(&self, client: Client, names: &[String]) -> anyhow::Result<()> {
        let api: Api<Secret> = Api::namespaced(client, &self.namespace);
        for name in names {
            let secret = Secret {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    ..Default::default()
                },
                ..Default::default()
            };
            api.create(&PostParams::default(), &secret)
                .await
                .with_context(|| format!("creating Secret {name} for kubectl"))?;
        }
        Ok(())
    }

    /// `kubectl create token` bound to Secret `secret`, one process.
    pub async fn create_token(&self, secret: &str) -> anyhow::Result<()> {
        let duration = format!("--duration={TOKEN_DURATION}");
        let bound = format!("--bound-object-name={secret}");
        let token = self
            .run(&[
                "create",
                "token",
                SERVICE_ACCOUNT,
                &duration,
                "--bound-object-kind=Secret",
                &bound,
            ])
            .await?;
        if token.trim().is_empty() {
            bail!("kubectl create token printed no token");
        }
        Ok(())
    }

    /// `kubectl delete secret`, one process: the revocation.
    pub async fn delete_secret(&self, secret: &str) -> anyhow::Result<()> {
        self.run(&["delete", "secret", secret, "--wait=false"])
            .await
            .map(drop)
    }

    async fn run(&self, args: &[&str]) -> anyhow::Result<String> {
        let output = Command::new(&self.program)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(["--namespace", &self.namespace])
            .args(args)
            .output()
            .await
            .with_context(|| format!("running {}", self.program.display()))?;
        if !output.status.success() {
            bail!(
                "kubectl {} failed: {}",
                args.first().copied().unwrap_or_default(),
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        String::from_utf8(output.stdout).context("kubectl printed non-UTF-8")
    }
}
