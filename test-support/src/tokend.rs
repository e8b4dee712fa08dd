//! tokend under test: served in-process on loopback ports against the selected backend, through
//! the fault proxy, with exactly deploy/'s RBAC (or as admin), and the calls most tests share.

use std::path::PathBuf;

use k8s_openapi::api::core::v1::{ConfigMap, Namespace, ServiceAccount};
use kube::api::PostParams;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client};
use kube_emulator::Emulator;
use tokend::config::AuthMode;
use tokend::server::{self, ServerOptions};
use tokend::service::KeySource;
use tokend::vocabulary::RECORD_KEY_SECRET;
use tokend_client::TokendClient;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::backend::{Backend, Cluster};
use crate::cleanup::Cleanup;
use crate::fault_proxy::{FaultProxy, Faults};
use crate::least_privilege::{self, TokendRbac};
use crate::names::unique_name;

/// Where tokend keeps its record key when it runs as admin.
pub const ADMIN_KEY_NAMESPACE: &str = "default";

/// Env var that runs tokend with the admin credentials instead of deploy/'s RBAC.
pub const AS_ADMIN_ENV: &str = "TOKEND_TEST_AS_ADMIN";

/// A running tokend and the Kubernetes API behind it.
pub struct TestEnv {
    /// gRPC endpoint of tokend, `http://127.0.0.1:PORT`.
    pub endpoint: String,
    /// `127.0.0.1:PORT`, for grpcurl.
    pub addr: String,
    /// `127.0.0.1:PORT` of tokend's `/metrics` endpoint.
    pub metrics_addr: String,
    /// Namespace of tokend's own ServiceAccount (and sweeper Lease) when it runs with deploy/'s
    /// RBAC; None when it runs as admin.
    pub tokend_namespace: Option<String>,
    /// Admin client of the Kubernetes API (direct, not through the fault proxy).
    pub kube: Client,
    /// Admin kubeconfig of the Kubernetes API, as a file.
    pub admin_kubeconfig: PathBuf,
    /// The controller and webhook additions (start_declarative).
    pub declarative: Option<crate::declarative::Declarative>,
    shutdown: Option<oneshot::Sender<()>>,
    // Dropped in this order: tokend stops (above), then the proxy, then the cleanup runs, then
    // the backend goes.
    proxy: FaultProxy,
    cleanup: Cleanup,
    cluster: Cluster,
}

/// Starts tokend without caller authentication (the RPC tests' setting) against the backend.
pub async fn start() -> TestEnv {
    start_with(ServerOptions {
        auth: AuthMode::None,
        ..ServerOptions::default()
    })
    .await
}

/// `options` with bootstrap tokens and client certificates switched on, as
/// `--enable-bootstrap-tokens --enable-client-certificates` do, and bootstrap tokens allowed
/// `extra_groups` besides kubeadm's default one (`--bootstrap-token-allowed-groups`): tests name
/// groups of their own, so parallel tests' RBAC does not meet.
pub fn with_node_credentials(mut options: ServerOptions, extra_groups: &[&str]) -> ServerOptions {
    options.settings.bootstrap.enabled = true;
    options
        .settings
        .bootstrap
        .allowed_groups
        .extend(extra_groups.iter().map(|g| (*g).to_owned()));
    options.settings.certificates.enabled = true;
    options
}

/// Starts tokend without caller authentication, with bootstrap tokens (allowed `extra_groups`
/// besides kubeadm's default) and client certificates switched on.
pub async fn start_with_node_credentials(extra_groups: &[&str]) -> TestEnv {
    start_with(with_node_credentials(
        ServerOptions {
            auth: AuthMode::None,
            ..ServerOptions::default()
        },
        extra_groups,
    ))
    .await
}

/// Starts tokend with `options` against the backend, with exactly deploy/'s RBAC (or as admin
/// when `TOKEND_TEST_AS_ADMIN` is set).
pub async fn start_with(options: ServerOptions) -> TestEnv {
    let rbac = std::env::var_os(AS_ADMIN_ENV)
        .is_none()
        .then(TokendRbac::deploy);
    start_as(options, rbac).await
}

/// Starts tokend with `options`; with `Some(rbac)` tokend runs as a ServiceAccount holding only
/// that RBAC, with None as the backend's admin.
pub async fn start_as(options: ServerOptions, rbac: Option<TokendRbac>) -> TestEnv {
    start_behind_proxy(options, rbac, false).await
}

/// Starts tokend with `options` while its API server is unreachable (the fault proxy is down),
/// so tokend comes up without a Kubernetes API; bring it back with `faults().set_down(false)`.
pub async fn start_with_api_down(options: ServerOptions) -> TestEnv {
    let rbac = std::env::var_os(AS_ADMIN_ENV)
        .is_none()
        .then(TokendRbac::deploy);
    start_behind_proxy(options, rbac, true).await
}

async fn start_behind_proxy(
    mut options: ServerOptions,
    rbac: Option<TokendRbac>,
    down: bool,
) -> TestEnv {
    let cluster = Cluster::connect().await.expect("the test backend");
    let cleanup = match cluster.backend {
        Backend::Real => Cleanup::new(cluster.config.clone()),
        Backend::Emulator => Cleanup::discard(),
    };
    let mut tokend_namespace = None;
    let tokend_config = match rbac {
        Some(rbac) => {
            let account = least_privilege::tokend_account(&cluster, &cleanup, rbac).await;
            if let Some(sweeper) = options.sweeper.as_mut() {
                sweeper.lease_namespace = account.namespace.clone();
            }
            if let Some(controller) = options.controller.as_mut() {
                controller.lease_namespace = account.namespace.clone();
            }
            options.settings.record_key = KeySource::Secret {
                namespace: account.namespace.clone(),
                name: RECORD_KEY_SECRET.into(),
            };
            // Its own namespace is where it looks for the kube-root-ca.crt it trusts.
            if options.settings.own_namespace.is_none() {
                options.settings.own_namespace = Some(account.namespace.clone());
            }
            tokend_namespace = Some(account.namespace);
            account.config
        }
        None => {
            // As admin, the controller's Lease is in a namespace every backend has, under a
            // name of its own (envs run in parallel).
            if let Some(controller) = options.controller.as_mut() {
                controller.lease_namespace = ADMIN_KEY_NAMESPACE.into();
                controller.lease_name = unique_name("tokend-controller");
            }
            // As admin, the record key lives in a namespace every backend has.
            if options.settings.record_key == KeySource::default() {
                options.settings.record_key = KeySource::Secret {
                    namespace: ADMIN_KEY_NAMESPACE.into(),
                    name: RECORD_KEY_SECRET.into(),
                };
            }
            cluster.config.clone()
        }
    };
    // Kubeconfigs tokend renders point at the API server itself, not at the proxy (whose CA
    // tokend trusts beside the server's, so its last-resort kubeconfig CA still fits).
    if options.settings.public_server.is_none() {
        options.settings.public_server = Some(cluster.url());
    }
    let proxy = FaultProxy::start(&tokend_config)
        .await
        .expect("fault proxy starts");
    proxy.faults().set_down(down);
    let routed = proxy
        .route(&tokend_config)
        .expect("route through the proxy");
    let (addr, metrics_addr, shutdown) = serve_tokend(routed, options).await;
    TestEnv {
        endpoint: format!("http://{addr}"),
        addr,
        metrics_addr,
        tokend_namespace,
        kube: cluster.client.clone(),
        admin_kubeconfig: cluster.admin_kubeconfig.clone(),
        declarative: None,
        shutdown: Some(shutdown),
        proxy,
        cleanup,
        cluster,
    }
}

impl TestEnv {
    /// A client of tokend through the client crate.
    pub async fn client(&self) -> TokendClient {
        TokendClient::connect(self.endpoint.clone())
            .await
            .expect("connect to tokend")
    }

    /// Creates a namespace with a unique name, deleted when the env is dropped. On a real
    /// cluster it returns once the controller-manager has furnished it (the `default`
    /// ServiceAccount and the `kube-root-ca.crt` ConfigMap), as namespaces in use are: tests
    /// then see no object appear behind their back.
    pub async fn fresh_namespace(&self) -> String {
        self.fresh_namespace_labelled(Default::default()).await
    }

    /// [`TestEnv::fresh_namespace`], created with `labels` (present from its first moment, so
    /// no admission decision ever sees it without them).
    pub async fn fresh_namespace_labelled(
        &self,
        labels: std::collections::BTreeMap<String, String>,
    ) -> String {
        let name = unique_name("tokend-test");
        let ns = Namespace {
            metadata: kube::api::ObjectMeta {
                name: Some(name.clone()),
                labels: (!labels.is_empty()).then_some(labels),
                ..Default::default()
            },
            ..Default::default()
        };
        Api::<Namespace>::all(self.kube.clone())
            .create(&PostParams::default(), &ns)
            .await
            .expect("create namespace");
        self.cleanup.namespace(&name);
        if self.backend() == Backend::Real {
            let accounts = Api::<ServiceAccount>::namespaced(self.kube.clone(), &name);
            let maps = Api::<ConfigMap>::namespaced(self.kube.clone(), &name);
            crate::eventually("the controller-manager furnishes the namespace", || async {
                matches!(accounts.get_opt("default").await, Ok(Some(_)))
                    && matches!(maps.get_opt("kube-root-ca.crt").await, Ok(Some(_)))
            })
            .await;
        }
        name
    }

    /// Remembers a ClusterRoleBinding a test made tokend create, so it is deleted at the end.
    pub fn forget_cluster_binding_later(&self, name: &str) {
        self.cleanup.cluster_role_binding(name);
    }

    /// Remembers a ClusterRole a test made, so it is deleted at the end.
    pub fn forget_cluster_role_later(&self, name: &str) {
        self.cleanup.cluster_role(name);
    }

    /// Remembers a namespace a test made by other means, so it is deleted at the end.
    pub fn forget_namespace_later(&self, name: &str) {
        self.cleanup.namespace(name);
    }

    /// Stops tokend (gRPC, controller, webhook), as an operator scaling it to zero would, and
    /// returns once its gRPC port refuses connections: its tasks end with the server. The
    /// cluster objects and the cleanup stay.
    pub async fn stop_tokend(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        crate::eventually("tokend stops serving", || async {
            tokio::net::TcpStream::connect(&self.addr).await.is_err()
        })
        .await;
    }

    /// GET /metrics over plain HTTP/1.1, as a Prometheus scraper asks; the whole answer,
    /// status line and headers included.
    pub async fn scrape_metrics(&self) -> String {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let mut stream = tokio::net::TcpStream::connect(&self.metrics_addr)
            .await
            .expect("connect to metrics");
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: tokend\r\nConnection: close\r\n\r\n")
            .await
            .expect("send");
        let mut response = String::new();
        stream.read_to_string(&mut response).await.expect("read");
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        response
    }

    /// The fault knobs of the proxy between tokend and its API server (both backends).
    pub fn faults(&self) -> &Faults {
        self.proxy.faults()
    }

    /// What is deleted when the env is dropped.
    pub(crate) fn cleanup(&self) -> &Cleanup {
        &self.cleanup
    }

    /// The backend's admin access.
    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    /// Which backend this is.
    pub fn backend(&self) -> Backend {
        self.cluster.backend
    }

    /// The emulator, when the suite runs against it (emulator-only checks).
    pub fn emulator(&self) -> Option<&Emulator> {
        self.cluster.emulator.as_ref()
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.proxy.faults().clear();
        self.cleanup.run();
    }
}

/// A kube-rs client that authenticates with `token` against the backend's API server.
pub async fn client_with_token(env: &TestEnv, token: &str) -> Client {
    let mut kubeconfig = Kubeconfig::read_from(&env.admin_kubeconfig).expect("admin kubeconfig");
    for user in &mut kubeconfig.auth_infos {
        user.auth_info = Some(kube::config::AuthInfo {
            token: Some(token.to_owned().into()),
            ..Default::default()
        });
    }
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("config with token");
    Client::try_from(config).expect("client with token")
}

/// Serves tokend (gRPC and `/metrics`, each on a fresh loopback port) until the returned sender
/// fires or is dropped; answers the gRPC and metrics addresses.
async fn serve_tokend(
    kube_config: kube::Config,
    options: ServerOptions,
) -> (String, String, oneshot::Sender<()>) {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("local addr").to_string();
    let metrics = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let metrics_addr = metrics.local_addr().expect("local addr").to_string();
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let shutdown = async {
            let _ = rx.await;
        };
        if let Err(e) =
            server::run_with_metrics(kube_config, options, listener, Some(metrics), shutdown).await
        {
            eprintln!("tokend stopped: {e}");
        }
    });
    (addr, metrics_addr, tx)
}

/// An IssueToken request for `ns/sa` that creates the ServiceAccount when missing.
pub fn issue(ns: &str, sa: &str) -> tokend_client::v1::IssueTokenRequest {
    tokend_client::v1::IssueTokenRequest {
        namespace: ns.into(),
        service_account: sa.into(),
        create_service_account: true,
        ..Default::default()
    }
}

/// The ErrorInfo reason of a failed call.
pub fn reason_of<T>(result: &Result<T, tokend_client::Error>) -> Option<&str> {
    result.as_ref().err().and_then(tokend_client::Error::reason)
}

/// The (field, reason) of every FieldViolation of a failed call.
pub fn violations_of<T>(result: &Result<T, tokend_client::Error>) -> Vec<(String, String)> {
    result
        .as_ref()
        .err()
        .map(|e| {
            e.field_violations()
                .iter()
                .map(|v| (v.field.clone(), v.reason.clone()))
                .collect()
        })
        .unwrap_or_default()
}

/// Asserts that a call failed with `code` and a message mentioning `mentions`.
pub fn assert_code(
    result: Result<impl std::fmt::Debug, tokend_client::Error>,
    code: tonic::Code,
    mentions: &str,
) {
    match result {
        Err(e) => {
            assert_eq!(e.code(), code, "wrong code; message: {}", e.message());
            assert!(
                e.message().contains(mentions),
                "message {:?} should mention {mentions:?}",
                e.message()
            );
        }
        Ok(v) => panic!("expected {code:?}, got a success: {v:?}"),
    }
}

/// Grants `subject` the `rules` in namespace `ns` through a Role and RoleBinding of a unique name
/// (deleted with the namespace), and waits until the API server enforces them; answers that name.
pub async fn grant(
    env: &TestEnv,
    ns: &str,
    subject: k8s_openapi::api::rbac::v1::Subject,
    rules: Vec<k8s_openapi::api::rbac::v1::PolicyRule>,
) -> String {
    use k8s_openapi::api::rbac::v1::{Role, RoleBinding, RoleRef};
    let name = unique_name("grant");
    let meta = kube::api::ObjectMeta {
        name: Some(name.clone()),
        namespace: Some(ns.into()),
        ..Default::default()
    };
    Api::<Role>::namespaced(env.kube.clone(), ns)
        .create(
            &PostParams::default(),
            &Role {
                metadata: meta.clone(),
                rules: Some(rules.clone()),
            },
        )
        .await
        .expect("create Role");
    Api::<RoleBinding>::namespaced(env.kube.clone(), ns)
        .create(
            &PostParams::default(),
            &RoleBinding {
                metadata: meta,
                role_ref: RoleRef {
                    api_group: Some("rbac.authorization.k8s.io".into()),
                    kind: "Role".into(),
                    name: name.clone(),
                },
                subjects: Some(vec![subject.clone()]),
            },
        )
        .await
        .expect("create RoleBinding");
    // In force before the test acts on it: a busy API server's authorizer can lag behind.
    crate::propagation::expect_rbac_in_force(&env.kube, &subject, Some(ns), &rules).await;
    name
}

/// The rule IssueToken with `create_service_account` needs: create ServiceAccounts and their
/// tokens.
pub fn issue_rule() -> k8s_openapi::api::rbac::v1::PolicyRule {
    k8s_openapi::api::rbac::v1::PolicyRule {
        api_groups: Some(vec![String::new()]),
        resources: Some(vec![
            "serviceaccounts".into(),
            "serviceaccounts/token".into(),
        ]),
        verbs: vec!["create".into()],
        ..Default::default()
    }
}
