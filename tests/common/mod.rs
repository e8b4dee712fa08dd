//! Test harness shared by the black-box tests: a Kubernetes API (the emulator, or the real
//! cluster named by `TOKEND_TEST_KUBECONFIG`), tokend served in-process on a loopback port, and
//! helpers for unique names and eventual consistency.
#![allow(dead_code)]

pub mod least_privilege;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::api::rbac::v1::ClusterRoleBinding;
use kube::api::{DeleteParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client};
use kube_emulator::Emulator;
use tokend::config::AuthMode;
use tokend::server::{self, ServerOptions};
use tokend::service::{KeySource, RecordKey, TokenRecord};
use tokend::vocabulary::{PENDING_LABEL, RECORD_KEY_DATA, RECORD_KEY_SECRET, SEAL_ANNOTATION};
use tokend_client::TokendClient;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// Env var that runs tokend with the admin credentials instead of deploy/'s RBAC.
pub const AS_ADMIN_ENV: &str = "TOKEND_TEST_AS_ADMIN";

/// Env var naming an admin kubeconfig of a real cluster to run the suite against.
pub const REAL_CLUSTER_ENV: &str = "TOKEND_TEST_KUBECONFIG";

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
    /// Admin client of the Kubernetes API.
    pub kube: Client,
    /// Admin kubeconfig of the Kubernetes API, as a file.
    pub admin_kubeconfig: PathBuf,
    emulator: Option<Emulator>,
    _dir: tempfile::TempDir,
    shutdown: Option<oneshot::Sender<()>>,
    namespaces: Mutex<Vec<String>>,
    cluster_bindings: Mutex<Vec<String>>,
    cluster_roles: Mutex<Vec<String>>,
}

/// Starts tokend without caller authentication (the RPC tests' setting) against the test backend.
pub async fn start() -> TestEnv {
    start_with(ServerOptions {
        auth: AuthMode::None,
        ..ServerOptions::default()
    })
    .await
}

/// Starts tokend with `options` against the test backend, with exactly deploy/'s RBAC (or as
/// admin when `TOKEND_TEST_AS_ADMIN` is set).
pub async fn start_with(options: ServerOptions) -> TestEnv {
    let rbac = (std::env::var_os(AS_ADMIN_ENV).is_none()).then(least_privilege::TokendRbac::deploy);
    start_as(options, rbac).await
}

/// Starts tokend with `options`; with `Some(rbac)` tokend runs as a ServiceAccount holding only
/// that RBAC, with None as the backend's admin.
pub async fn start_as(
    mut options: ServerOptions,
    rbac: Option<least_privilege::TokendRbac>,
) -> TestEnv {
    let dir = tempfile::tempdir().expect("temp dir");
    let admin_kubeconfig = dir.path().join("admin.kubeconfig");
    let (emulator, kube_config) = match std::env::var_os(REAL_CLUSTER_ENV) {
        Some(path) => {
            std::fs::copy(&path, &admin_kubeconfig).expect("copy the real cluster's kubeconfig");
            let kubeconfig = Kubeconfig::read_from(&path).expect("read TOKEND_TEST_KUBECONFIG");
            let config =
                kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                    .await
                    .expect("TOKEND_TEST_KUBECONFIG is usable");
            (None, config)
        }
        None => {
            let emulator = Emulator::start_with(emulator_options())
                .await
                .expect("emulator starts");
            emulator
                .write_kubeconfig(&admin_kubeconfig)
                .await
                .expect("write kubeconfig");
            let config = emulator.client_config().await.expect("emulator config");
            (Some(emulator), config)
        }
    };
    let kube = Client::try_from(kube_config.clone()).expect("kube client");
    let mut cluster_roles = Vec::new();
    let mut namespaces = Vec::new();
    let mut tokend_namespace = None;
    let tokend_config = match rbac {
        Some(rbac) => {
            let account = least_privilege::tokend_account(&kube, &kube_config, rbac).await;
            if let Some(sweeper) = options.sweeper.as_mut() {
                sweeper.lease_namespace = account.namespace.clone();
            }
            options.settings.record_key = KeySource::Secret {
                namespace: account.namespace.clone(),
                name: RECORD_KEY_SECRET.into(),
            };
            cluster_roles.push(account.cluster_role);
            namespaces.push(account.namespace.clone());
            tokend_namespace = Some(account.namespace);
            account.config
        }
        None => kube_config,
    };
    let (addr, metrics_addr, tx) = serve_tokend(tokend_config, options).await;
    TestEnv {
        endpoint: format!("http://{addr}"),
        addr,
        metrics_addr,
        tokend_namespace,
        kube,
        admin_kubeconfig,
        emulator,
        _dir: dir,
        shutdown: Some(tx),
        namespaces: Mutex::new(namespaces),
        cluster_bindings: Mutex::new(cluster_roles.clone()),
        cluster_roles: Mutex::new(cluster_roles),
    }
}

impl TestEnv {
    /// A client of tokend through the client crate.
    pub async fn client(&self) -> TokendClient {
        TokendClient::connect(self.endpoint.clone())
            .await
            .expect("connect to tokend")
    }

    /// Creates a namespace with a unique name, deleted when the env is dropped.
    pub async fn fresh_namespace(&self) -> String {
        let name = unique_name("tokend-test");
        let ns = Namespace {
            metadata: kube::api::ObjectMeta {
                name: Some(name.clone()),
                ..Default::default()
            },
            ..Default::default()
        };
        Api::<Namespace>::all(self.kube.clone())
            .create(&PostParams::default(), &ns)
            .await
            .expect("create namespace");
        self.namespaces.lock().expect("lock").push(name.clone());
        name
    }

    /// Remembers a ClusterRoleBinding a test made tokend create, so it is deleted at the end.
    pub fn forget_cluster_binding_later(&self, name: &str) {
        self.cluster_bindings
            .lock()
            .expect("lock")
            .push(name.to_owned());
    }

    /// The emulator, when the suite runs against it (fault knobs, emulator-only tests).
    pub fn emulator(&self) -> Option<&Emulator> {
        self.emulator.as_ref()
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        // A real cluster keeps what the test made; the emulator goes away with its process.
        if self.emulator.is_some() {
            return;
        }
        let namespaces = std::mem::take(&mut *self.namespaces.lock().expect("lock"));
        let bindings = std::mem::take(&mut *self.cluster_bindings.lock().expect("lock"));
        let roles = std::mem::take(&mut *self.cluster_roles.lock().expect("lock"));
        let kube = self.kube.clone();
        // Drop cannot await, and the test's runtime is shutting down: clean up on a thread of its own.
        let cleanup = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                let dp = DeleteParams::default();
                for ns in namespaces {
                    let _ = Api::<Namespace>::all(kube.clone()).delete(&ns, &dp).await;
                }
                for b in bindings {
                    let _ = Api::<ClusterRoleBinding>::all(kube.clone())
                        .delete(&b, &dp)
                        .await;
                }
                for r in roles {
                    let _ = Api::<k8s_openapi::api::rbac::v1::ClusterRole>::all(kube.clone())
                        .delete(&r, &dp)
                        .await;
                }
            });
        });
        let _ = cleanup.join();
    }
}

/// The emulator as the suite runs it: with a token-lifetime cap, as many real clusters set
/// (`--service-account-max-token-expiration`), so tokend meets a server that shortens tokens.
pub fn emulator_options() -> kube_emulator::Options {
    kube_emulator::Options {
        max_token_expiration: Some(Duration::from_secs(48 * 3600)),
        ..kube_emulator::Options::default()
    }
}

/// A name no other test run uses: `prefix-` and 8 random lowercase alphanumerics.
pub fn unique_name(prefix: &str) -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    let suffix: String = (0..8)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect();
    format!("{prefix}-{suffix}")
}

/// Polls `check` until it returns true, for up to 15 s: a real API server caches token
/// authentication for up to 10 s, so revocation is eventually, not immediately, visible.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        if check().await {
            return;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("not true within 15 s: {what}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
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

/// Starts tokend with `options` against an emulator that is already down (`faults().set_down`),
/// so tokend comes up without a Kubernetes API; bring it back with `set_down(false)`. Against a
/// real cluster, which cannot be taken down, this is [`start_with`] and the API stays up: tests
/// check [`TestEnv::emulator`] and return early.
pub async fn start_with_emulator_down(options: ServerOptions) -> TestEnv {
    if std::env::var_os(REAL_CLUSTER_ENV).is_some() {
        return start_with(options).await;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let admin_kubeconfig = dir.path().join("admin.kubeconfig");
    let emulator = Emulator::start().await.expect("emulator starts");
    emulator
        .write_kubeconfig(&admin_kubeconfig)
        .await
        .expect("write kubeconfig");
    let kube_config = emulator.client_config().await.expect("emulator config");
    emulator.faults().set_down(true);
    let kube = Client::try_from(kube_config.clone()).expect("kube client");
    let (addr, metrics_addr, shutdown) = serve_tokend(kube_config, options).await;
    TestEnv {
        endpoint: format!("http://{addr}"),
        addr,
        metrics_addr,
        tokend_namespace: None,
        kube,
        admin_kubeconfig,
        emulator: Some(emulator),
        _dir: dir,
        shutdown: Some(shutdown),
        namespaces: Mutex::new(Vec::new()),
        cluster_bindings: Mutex::new(Vec::new()),
        cluster_roles: Mutex::new(Vec::new()),
    }
}

/// Serves tokend (gRPC and `/metrics`, each on a fresh loopback port) until the returned sender
/// fires or is dropped; answers the gRPC and metrics addresses.
async fn serve_tokend(
    kube_config: kube::Config,
    mut options: ServerOptions,
) -> (String, String, oneshot::Sender<()>) {
    // As admin, the record key lives in a namespace every backend has.
    if options.settings.record_key == KeySource::default() {
        options.settings.record_key = KeySource::Secret {
            namespace: ADMIN_KEY_NAMESPACE.into(),
            name: RECORD_KEY_SECRET.into(),
        };
    }
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

/// Where tokend keeps its record key when it runs as admin.
const ADMIN_KEY_NAMESPACE: &str = "default";

/// The key tokend seals records with, as an operator holding the key Secret could read it (made
/// now, for tokend to find, if tokend has not needed it yet). Tests use it to write records as
/// tokend would, e.g. ones that expired long ago.
pub async fn record_key(env: &TestEnv) -> RecordKey {
    let namespace = env
        .tokend_namespace
        .clone()
        .unwrap_or_else(|| ADMIN_KEY_NAMESPACE.into());
    let secrets = Api::<Secret>::namespaced(env.kube.clone(), &namespace);
    let fresh: [u8; 32] = rand::random();
    let new = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(RECORD_KEY_SECRET.into()),
            ..Default::default()
        },
        data: Some(std::collections::BTreeMap::from([(
            RECORD_KEY_DATA.to_owned(),
            k8s_openapi::ByteString(fresh.to_vec()),
        )])),
        ..Default::default()
    };
    // 409: tokend (or an earlier test) made it first; read that one.
    let _ = secrets.create(&PostParams::default(), &new).await;
    let stored = secrets
        .get(RECORD_KEY_SECRET)
        .await
        .expect("record key Secret");
    let bytes = stored
        .data
        .and_then(|mut d| d.remove(RECORD_KEY_DATA))
        .expect("key in the record key Secret");
    RecordKey::new(&bytes.0)
}

/// Writes `record` as tokend does (pending, then sealed and made immutable once it has the
/// Secret's uid) without issuing a token: records in states a test cannot wait for, such as
/// expired ones. Answers the Secret's uid.
pub async fn write_sealed_record(env: &TestEnv, record: &TokenRecord) -> String {
    let key = record_key(env).await;
    let secrets = Api::<Secret>::namespaced(env.kube.clone(), &record.namespace);
    let created = secrets
        .create(&PostParams::default(), &record.to_secret())
        .await
        .expect("create record Secret");
    let uid = created.metadata.uid.clone().expect("uid");
    let mut sealed = record.clone();
    sealed.pending = false;
    let patch = serde_json::json!({
        "metadata": {
            "annotations": { SEAL_ANNOTATION: key.seal(&sealed, &uid) },
            "labels": { PENDING_LABEL: null },
        },
        "immutable": true,
    });
    secrets
        .patch(
            &record.token_id.secret_name(),
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&patch),
        )
        .await
        .expect("seal the record");
    uid
}

/// A record of `ns/sa` expiring at `expiration`, as tokend writes it before sealing.
pub fn record_of(ns: &str, sa: &str, expiration: &str) -> TokenRecord {
    TokenRecord {
        token_id: tokend::token_id::TokenId::generate(ns),
        namespace: ns.into(),
        service_account: sa.into(),
        service_account_uid: String::new(),
        issued_at: None,
        expiration: Some(expiration.parse().expect("RFC 3339 time")),
        audiences: Vec::new(),
        labels: Default::default(),
        issued_by: "test".into(),
        cluster_role: None,
        binding_scope: None,
        object_uid: String::new(),
        resource_version: String::new(),
        seal: None,
        pending: true,
    }
}

/// The first file named `program` on PATH, like `command -v`.
pub fn find_on_path(program: &str) -> Option<PathBuf> {
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
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
