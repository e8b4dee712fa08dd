//! tokend under load: served in-process or as its own process (so its memory can be read
//! alone), driven through tokend-client; and its service layer called directly, without gRPC,
//! to split the gRPC layer's cost from the Kubernetes calls.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use tokend::cluster::Cluster;
use tokend::config::AuthMode;
use tokend::server::{self, ServerOptions};
use tokend::service::{Caller, IssueRequest, KeySource, RevokeTarget, Settings, TokenService};

/// Where the benchmarked tokend keeps the key its records are sealed with: a namespace every
/// backend has (tokend's default, `tokend`, exists only where deploy/ was applied).
const KEY_NAMESPACE: &str = "default";

fn record_key() -> KeySource {
    KeySource::Secret {
        namespace: KEY_NAMESPACE.into(),
        name: tokend::vocabulary::RECORD_KEY_SECRET.into(),
    }
}
use tokend_client::{TokendClient, v1};
use tokio::net::TcpListener;
use tokio::process::{Child, Command};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::TOKEN_DURATION;
use crate::backend::SERVICE_ACCOUNT;

/// How long a tokend process gets to start answering.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// How tokend authenticates the benchmark's calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Auth {
    /// `--auth none`: no TokenReview, no SubjectAccessReview.
    None,
    /// `--auth kubernetes`: a bearer token checked by (cached) TokenReview, and every call
    /// authorised with SubjectAccessReview.
    Kubernetes,
}

impl Auth {
    fn mode(self) -> AuthMode {
        match self {
            Auth::None => AuthMode::None,
            Auth::Kubernetes => AuthMode::Kubernetes,
        }
    }

    fn flag(self) -> &'static str {
        match self {
            Auth::None => "none",
            Auth::Kubernetes => "kubernetes",
        }
    }
}

/// A running tokend, in this process or as a child process.
pub struct TokendServer {
    endpoint: String,
    child: Option<Child>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl TokendServer {
    /// Serves tokend in this process on a loopback port, through `tokend::server::run`.
    pub async fn in_process(
        config: kube::Config,
        auth: Auth,
        auth_cache_ttl: Duration,
    ) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding a loopback port for tokend")?;
        let endpoint = format!("http://{}", listener.local_addr()?);
        let options = ServerOptions {
            auth: auth.mode(),
            auth_cache_ttl,
            settings: Settings {
                record_key: record_key(),
                ..Settings::default()
            },
            ..ServerOptions::default()
        };
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let shutdown = async {
                let _ = rx.await;
            };
            if let Err(e) = server::run(config, options, listener, shutdown).await {
                eprintln!("tokend stopped: {e}");
            }
        });
        Ok(Self {
            endpoint,
            child: None,
            shutdown: Some(tx),
            task: Some(task),
        })
    }

    /// Runs `binary serve` against `kubeconfig` on a free loopback port, logs discarded.
    pub async fn process(
        binary: &Path,
        kubeconfig: &Path,
        auth: Auth,
        auth_cache_ttl: Duration,
    ) -> anyhow::Result<Self> {
        let own_namespace = ["--lease-namespace".to_owned(), KEY_NAMESPACE.to_owned()];
        Self::process_with(binary, kubeconfig, auth, auth_cache_ttl, &own_namespace).await
    }

    /// [`process`](Self::process) with more `serve` flags (`--lease-namespace` among them: tokend's
    /// own namespace, where its record key lives, must exist on the backend).
    pub async fn process_with(
        binary: &Path,
        kubeconfig: &Path,
        auth: Auth,
        auth_cache_ttl: Duration,
        extra_args: &[String],
    ) -> anyhow::Result<Self> {
        let port = {
            let probe = std::net::TcpListener::bind("127.0.0.1:0")
                .context("finding a free loopback port")?;
            probe.local_addr()?.port()
        };
        let listen = format!("127.0.0.1:{port}");
        let mut command = Command::new(binary);
        command
            .arg("serve")
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .args(["--listen", &listen, "--auth", auth.flag()])
            .arg(format!(
                "--auth-cache-ttl={}s",
                auth_cache_ttl.as_secs().max(1)
            ))
            .args(extra_args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        if auth == Auth::None {
            command.arg("--insecure-no-auth");
        }
        let child = command
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        Ok(Self {
            endpoint: format!("http://{listen}"),
            child: Some(child),
            shutdown: None,
            task: None,
        })
    }

    /// The gRPC endpoint, `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The child process's id, when tokend runs as its own process.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    /// A client (one HTTP/2 connection, shared by clones), retrying until tokend listens.
    pub async fn client(&mut self, bearer_token: Option<&str>) -> anyhow::Result<TokendClient> {
        let deadline = tokio::time::Instant::now() + START_TIMEOUT;
        loop {
            if let Some(child) = &mut self.child
                && let Some(status) = child.try_wait().context("checking on tokend")?
            {
                bail!("tokend exited at start: {status}");
            }
            let mut builder = TokendClient::builder(self.endpoint.clone())
                .connect_timeout(Duration::from_secs(2));
            if let Some(token) = bearer_token {
                builder = builder.bearer_token(token);
            }
            match builder.connect().await {
                Ok(client) => return Ok(client),
                Err(e) if tokio::time::Instant::now() >= deadline => {
                    return Err(e).context("connecting to tokend");
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    /// Stops tokend and waits for it.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }
}

/// Issues and revokes through tokend's gRPC API.
#[derive(Clone)]
pub struct TokendIssuer {
    client: TokendClient,
    namespace: String,
}

impl TokendIssuer {
    /// Issues for ServiceAccount [`SERVICE_ACCOUNT`] in `namespace` through `client`.
    pub fn new(client: TokendClient, namespace: &str) -> Self {
        Self {
            client,
            namespace: namespace.to_owned(),
        }
    }

    /// IssueToken; returns the token id.
    pub async fn issue(&self) -> anyhow::Result<String> {
        let response = self
            .client
            .issue_token(v1::IssueTokenRequest {
                namespace: self.namespace.clone(),
                service_account: SERVICE_ACCOUNT.to_owned(),
                duration: TOKEN_DURATION.to_owned(),
                ..Default::default()
            })
            .await
            .context("IssueToken")?;
        if response.token.is_empty() {
            bail!("IssueToken answered without a token");
        }
        Ok(response.token_id)
    }

    /// IssueToken with a namespace no API server accepts: tokend answers INVALID_ARGUMENT before
    /// any Kubernetes call, so this times the gRPC round trip through tokend alone.
    pub async fn rejected(&self) -> anyhow::Result<()> {
        let answer = self
            .client
            .issue_token(v1::IssueTokenRequest {
                namespace: "-not-a-namespace-".to_owned(),
                service_account: SERVICE_ACCOUNT.to_owned(),
                ..Default::default()
            })
            .await;
        match answer {
            Err(e) if e.code() == tonic::Code::InvalidArgument => Ok(()),
            Err(e) => Err(e).context("IssueToken with a bad namespace"),
            Ok(_) => bail!("IssueToken accepted a bad namespace"),
        }
    }

    /// RevokeToken by id.
    pub async fn revoke(&self, token_id: &str) -> anyhow::Result<()> {
        self.client
            .revoke_token(v1::RevokeTokenRequest {
                target: Some(v1::revoke_token_request::Target::TokenId(
                    token_id.to_owned(),
                )),
            })
            .await
            .context("RevokeToken")?;
        Ok(())
    }
}

/// Issues and revokes through tokend's service layer, in-process, as an unauthenticated caller.
#[derive(Clone)]
pub struct ServiceIssuer {
    service: TokenService,
    namespace: String,
}

impl ServiceIssuer {
    /// The service layer over `client` (no caller authorisation), issuing in `namespace`.
    pub fn new(client: kube::Client, namespace: &str) -> Self {
        let settings = Settings {
            authorize: false,
            record_key: record_key(),
            ..Settings::default()
        };
        Self {
            service: TokenService::new(Cluster::new(client), settings),
            namespace: namespace.to_owned(),
        }
    }

    /// `TokenService::issue`; returns the token id.
    pub async fn issue(&self) -> anyhow::Result<String> {
        let issued = self
            .service
            .issue(
                &Caller::default(),
                IssueRequest {
                    namespace: self.namespace.clone(),
                    service_account: SERVICE_ACCOUNT.to_owned(),
                    duration: TOKEN_DURATION.to_owned(),
                    ..Default::default()
                },
            )
            .await
            .context("TokenService::issue")?;
        Ok(issued.token_id.to_string())
    }

    /// `TokenService::revoke` by id.
    pub async fn revoke(&self, token_id: &str) -> anyhow::Result<()> {
        self.service
            .revoke(
                &Caller::default(),
                RevokeTarget::TokenId(token_id.to_owned()),
            )
            .await
            .context("TokenService::revoke")?;
        Ok(())
    }
}
