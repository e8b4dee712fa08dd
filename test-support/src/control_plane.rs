//! A real Kubernetes control plane on loopback, envtest-style: etcd, kube-apiserver and
//! kube-controller-manager started from a folder of binaries with their own PKI, an admin
//! static token and the ServiceAccount issuer flags; stopped when the handle is dropped, and
//! killed by the kernel when the process that started them exits in any other way.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock, mpsc};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use kube::config::{KubeConfigOptions, Kubeconfig};

/// Folder with `kube-apiserver`, `kube-controller-manager` and `etcd`, as controller-runtime's
/// envtest lays out `KUBEBUILDER_ASSETS`; a user can point it at binaries of their own.
pub const ASSETS_ENV: &str = "TOKEND_KUBE_ASSETS";

/// Prefix of each control plane's folder in the temporary directory.
const FOLDER_PREFIX: &str = "tokend-control-plane-";

/// File in that folder naming the process that started the plane.
const OWNER_FILE: &str = "owner.pid";

/// Removes the folders of control planes whose starting process is gone: a plane shared by a
/// test binary is killed with it (PR_SET_PDEATHSIG) but never dropped, so its folder stays.
fn remove_abandoned_folders() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let ours = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with(FOLDER_PREFIX));
        let owner = std::fs::read_to_string(path.join(OWNER_FILE)).ok();
        let alive = owner
            .and_then(|pid| pid.trim().parse::<u32>().ok())
            .is_some_and(|pid| Path::new(&format!("/proc/{pid}")).exists());
        if ours && !alive {
            let _ = std::fs::remove_dir_all(&path);
        }
    }
}

/// How long the whole control plane may take to become ready.
const READY_WITHIN: Duration = Duration::from_secs(90);

/// The binaries a control plane runs.
#[derive(Debug, Clone)]
pub struct Assets {
    /// kube-apiserver.
    pub apiserver: PathBuf,
    /// kube-controller-manager.
    pub controller_manager: PathBuf,
    /// etcd.
    pub etcd: PathBuf,
}

impl Assets {
    /// The binaries from `TOKEND_KUBE_ASSETS`, else the project's `../shared/kube/` (decompressed
    /// once into `target/kube-assets/`) and etcd from PATH (Debian's `etcd-server`).
    pub fn locate() -> Result<Assets> {
        if let Some(dir) = std::env::var_os(ASSETS_ENV).filter(|v| !v.is_empty()) {
            let dir = PathBuf::from(dir);
            let assets = Assets {
                apiserver: dir.join("kube-apiserver"),
                controller_manager: dir.join("kube-controller-manager"),
                etcd: dir.join("etcd"),
            };
            for path in [&assets.apiserver, &assets.controller_manager, &assets.etcd] {
                if !path.is_file() {
                    bail!("{ASSETS_ENV}={} has no {}", dir.display(), path.display());
                }
            }
            return Ok(assets);
        }
        let shared = workspace_root().join("../shared/kube");
        let out = target_dir().join("kube-assets");
        std::fs::create_dir_all(&out).context("creating target/kube-assets")?;
        let etcd = crate::find_on_path("etcd").with_context(
            || "etcd is not on PATH: install Debian's etcd-server (scripts/test --real does)",
        )?;
        Ok(Assets {
            apiserver: decompressed(&shared, &out, "kube-apiserver")?,
            controller_manager: decompressed(&shared, &out, "kube-controller-manager")?,
            etcd,
        })
    }
}

/// The workspace's root folder (this crate lives one below it).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

/// `shared/NAME.xz` decompressed to `out/NAME` (once: later runs reuse it).
fn decompressed(shared: &Path, out: &Path, name: &str) -> Result<PathBuf> {
    let target = out.join(name);
    if target.is_file() {
        return Ok(target);
    }
    let source = shared.join(format!("{name}.xz"));
    if !source.is_file() {
        bail!(
            "{} is missing: set {ASSETS_ENV} to a folder with kube-apiserver, \
             kube-controller-manager and etcd",
            source.display()
        );
    }
    // Decompress beside the target and rename, so a concurrent or interrupted run never sees
    // half a binary.
    let partial = out.join(format!("{name}.{}.partial", std::process::id()));
    let file = std::fs::File::create(&partial).context("creating the binary")?;
    let status = Command::new("xz")
        .arg("-dc")
        .arg(&source)
        .stdout(file)
        .status()
        .context("running xz (Debian's xz-utils)")?;
    if !status.success() {
        bail!("xz -dc {} failed: {status}", source.display());
    }
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&partial, std::fs::Permissions::from_mode(0o755))?;
    std::fs::rename(&partial, &target)?;
    Ok(target)
}

/// A running control plane. Dropping it stops the processes and removes its folder.
pub struct ControlPlane {
    dir: tempfile::TempDir,
    processes: Vec<(&'static str, Child)>,
    kubeconfig: PathBuf,
    url: String,
}

impl ControlPlane {
    /// Starts etcd, kube-apiserver and kube-controller-manager on free loopback ports and waits
    /// until the API server is ready and the controllers have made the `default` ServiceAccount.
    pub async fn start() -> Result<ControlPlane> {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let assets = Assets::locate()?;
        remove_abandoned_folders();
        let dir = tempfile::Builder::new()
            .prefix(FOLDER_PREFIX)
            .tempdir()
            .context("control plane folder")?;
        let d = dir.path();
        std::fs::write(d.join(OWNER_FILE), std::process::id().to_string())?;
        let ca_pem = crate::pki::write(d)?;
        let admin_token = random_hex();
        let kcm_token = random_hex();
        std::fs::write(
            d.join("tokens.csv"),
            format!(
                "{admin_token},admin,admin-uid,\"system:masters\"\n\
                 {kcm_token},system:kube-controller-manager,kcm-uid,\n"
            ),
        )?;
        let [etcd_port, peer_port, api_port, kcm_port] = free_ports()?;
        let url = format!("https://127.0.0.1:{api_port}");
        let kubeconfig = d.join("admin.kubeconfig");
        std::fs::write(&kubeconfig, kubeconfig_yaml(&url, &ca_pem, &admin_token)?)?;
        let kcm_kubeconfig = d.join("kcm.kubeconfig");
        std::fs::write(&kcm_kubeconfig, kubeconfig_yaml(&url, &ca_pem, &kcm_token)?)?;

        let mut plane = ControlPlane {
            processes: Vec::new(),
            kubeconfig,
            url,
            dir,
        };
        let d = plane.dir.path().to_path_buf();
        let p = |name: &str| d.join(name).display().to_string();
        let etcd_url = format!("http://127.0.0.1:{etcd_port}");
        let peer_url = format!("http://127.0.0.1:{peer_port}");
        plane.spawn(
            "etcd",
            &assets.etcd,
            &[
                "--name=t".into(),
                format!("--data-dir={}", p("etcd")),
                format!("--listen-client-urls={etcd_url}"),
                format!("--advertise-client-urls={etcd_url}"),
                format!("--listen-peer-urls={peer_url}"),
                format!("--initial-advertise-peer-urls={peer_url}"),
                format!("--initial-cluster=t={peer_url}"),
                "--initial-cluster-state=new".into(),
                // Tests do not need durability; fsync on every write would dominate the run.
                "--unsafe-no-fsync".into(),
            ],
        )?;
        plane
            .wait_until("etcd healthy", || etcd_healthy(etcd_port))
            .await?;
        plane.spawn(
            "kube-apiserver",
            &assets.apiserver,
            &[
                "--bind-address=127.0.0.1".into(),
                "--advertise-address=127.0.0.1".into(),
                format!("--secure-port={api_port}"),
                format!("--etcd-servers={etcd_url}"),
                format!("--tls-cert-file={}", p("apiserver.crt")),
                format!("--tls-private-key-file={}", p("apiserver.key")),
                format!("--client-ca-file={}", p("ca.crt")),
                format!("--token-auth-file={}", p("tokens.csv")),
                "--authorization-mode=Node,RBAC".into(),
                "--enable-admission-plugins=NodeRestriction".into(),
                "--service-account-issuer=https://kubernetes.default.svc".into(),
                "--api-audiences=https://kubernetes.default.svc".into(),
                format!("--service-account-signing-key-file={}", p("sa.key")),
                format!("--service-account-key-file={}", p("sa.key")),
                // As many managed clusters do, and as the suite's emulator does: tokens asked
                // for longer are shortened, not refused.
                "--service-account-max-token-expiration=48h".into(),
                "--service-cluster-ip-range=10.96.0.0/12".into(),
                "--endpoint-reconciler-type=none".into(),
                "--enable-bootstrap-token-auth=true".into(),
                format!("--requestheader-client-ca-file={}", p("front-proxy-ca.crt")),
                "--requestheader-allowed-names=front-proxy-client".into(),
                "--requestheader-username-headers=X-Remote-User".into(),
                "--requestheader-group-headers=X-Remote-Group".into(),
                "--requestheader-extra-headers-prefix=X-Remote-Extra-".into(),
                format!("--proxy-client-cert-file={}", p("front-proxy-client.crt")),
                format!("--proxy-client-key-file={}", p("front-proxy-client.key")),
            ],
        )?;
        let admin = plane.client().await?;
        plane
            .wait_until("kube-apiserver ready", || {
                let admin = admin.clone();
                async move {
                    let request = http::Request::get("/readyz").body(Vec::new());
                    match request {
                        Ok(r) => admin.request_text(r).await.is_ok(),
                        Err(_) => false,
                    }
                }
            })
            .await?;
        let kcm_config = kcm_kubeconfig.display().to_string();
        plane.spawn(
            "kube-controller-manager",
            &assets.controller_manager,
            &[
                format!("--kubeconfig={kcm_config}"),
                format!("--authentication-kubeconfig={kcm_config}"),
                format!("--authorization-kubeconfig={kcm_config}"),
                "--bind-address=127.0.0.1".into(),
                format!("--secure-port={kcm_port}"),
                "--leader-elect=false".into(),
                "--use-service-account-credentials=true".into(),
                format!("--service-account-private-key-file={}", p("sa.key")),
                format!("--root-ca-file={}", p("ca.crt")),
                format!("--cluster-signing-cert-file={}", p("ca.crt")),
                format!("--cluster-signing-key-file={}", p("ca.key")),
                "--service-cluster-ip-range=10.96.0.0/12".into(),
                "--controllers=*,bootstrapsigner,tokencleaner".into(),
                format!("--flex-volume-plugin-dir={}", p("flexvolume")),
            ],
        )?;
        plane
            .wait_until("the controllers made default/default", || {
                let accounts = kube::Api::<k8s_openapi::api::core::v1::ServiceAccount>::namespaced(
                    admin.clone(),
                    "default",
                );
                async move { matches!(accounts.get_opt("default").await, Ok(Some(_))) }
            })
            .await?;
        Ok(plane)
    }

    /// The admin kubeconfig (user `admin` in `system:masters`).
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// The API server's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The folder holding the PKI, the kubeconfigs and each process's log.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// An admin client of this control plane.
    pub async fn client(&self) -> Result<kube::Client> {
        let kubeconfig = Kubeconfig::read_from(&self.kubeconfig)?;
        let config =
            kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
        Ok(kube::Client::try_from(config)?)
    }

    fn spawn(&mut self, name: &'static str, program: &Path, args: &[String]) -> Result<()> {
        let log = std::fs::File::create(self.dir().join(format!("{name}.log")))?;
        let mut command = Command::new(program);
        command
            .args(args)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        let child = spawn_tied_to_process(command)
            .with_context(|| format!("starting {}", program.display()))?;
        self.processes.push((name, child));
        Ok(())
    }

    /// Polls `ready` until it holds; fails early, with the log's tail, when a process exited.
    async fn wait_until<F, Fut>(&mut self, what: &str, mut ready: F) -> Result<()>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = bool>,
    {
        let deadline = Instant::now() + READY_WITHIN;
        loop {
            if ready().await {
                return Ok(());
            }
            for (name, child) in &mut self.processes {
                if let Ok(Some(status)) = child.try_wait() {
                    let log = std::fs::read_to_string(self.dir.path().join(format!("{name}.log")))
                        .unwrap_or_default();
                    let tail: Vec<&str> = log.lines().rev().take(30).collect();
                    let tail: Vec<&str> = tail.into_iter().rev().collect();
                    bail!(
                        "{name} exited ({status}) before {what}:\n{}",
                        tail.join("\n")
                    );
                }
            }
            if Instant::now() >= deadline {
                bail!(
                    "not within {READY_WITHIN:?}: {what} (logs in {})",
                    self.dir().display()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Stops the processes (controller-manager first, etcd last): SIGTERM, then SIGKILL after 5 s.
    pub fn stop(&mut self) {
        while let Some((_, mut child)) = self.processes.pop() {
            if let Ok(pid) = i32::try_from(child.id()) {
                // SAFETY: kill(2) on a child this handle started and has not reaped yet.
                unsafe { libc::kill(pid, libc::SIGTERM) };
            }
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Spawns `command` from one long-lived thread whose children get SIGKILL when this process
/// ends: PR_SET_PDEATHSIG fires when the *thread* that forked exits, so spawning from a test's
/// own thread would kill the control plane when that test finished.
fn spawn_tied_to_process(command: Command) -> std::io::Result<Child> {
    type Job = (Command, mpsc::Sender<std::io::Result<Child>>);
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<Job>>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("control-plane-spawner".into())
            .spawn(move || {
                for (mut command, answer) in rx {
                    use std::os::unix::process::CommandExt as _;
                    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
                    unsafe {
                        command.pre_exec(|| {
                            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                                return Err(std::io::Error::last_os_error());
                            }
                            Ok(())
                        });
                    }
                    let _ = answer.send(command.spawn());
                }
                // The channel's sender lives in a static, so this loop never ends and the
                // thread stays alive as long as the process.
            })
            .map(|_| ())
            .unwrap_or_default();
        Mutex::new(tx)
    });
    let (tx, rx) = mpsc::channel();
    spawner
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .send((command, tx))
        .map_err(|_| std::io::Error::other("control-plane spawner thread is gone"))?;
    rx.recv()
        .map_err(|_| std::io::Error::other("control-plane spawner thread is gone"))?
}

fn random_hex() -> String {
    let bytes: [u8; 16] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Four distinct free loopback ports below the ephemeral range (32768–60999), so an outgoing
/// connection never takes one between the check and the server's bind.
fn free_ports() -> Result<[u16; 4]> {
    let mut ports = Vec::with_capacity(4);
    for _ in 0..1000 {
        let port = 20000 + rand::random::<u16>() % 12000;
        if ports.contains(&port) {
            continue;
        }
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            ports.push(port);
            if ports.len() == 4 {
                return Ok([ports[0], ports[1], ports[2], ports[3]]);
            }
        }
    }
    bail!("no four free loopback ports between 20000 and 32000")
}

async fn etcd_healthy(port: u16) -> bool {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let Ok(mut stream) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return false;
    };
    let request = b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    if stream.write_all(request).await.is_err() {
        return false;
    }
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(2), stream.read_to_end(&mut answer));
    matches!(read.await, Ok(Ok(_)))
        && String::from_utf8_lossy(&answer).contains("\"health\":\"true\"")
}

/// An admin-style kubeconfig for `url` with the CA embedded and a bearer token.
fn kubeconfig_yaml(url: &str, ca_pem: &str, token: &str) -> Result<String> {
    use base64::Engine as _;
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    let doc = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "test", "cluster": {"server": url, "certificate-authority-data": ca}}],
        "users": [{"name": "test", "user": {"token": token}}],
        "contexts": [{"name": "test", "context": {"cluster": "test", "user": "test"}}],
        "current-context": "test",
    });
    let mut out = Vec::new();
    serde_yaml::to_writer(&mut out, &doc)?;
    let mut text = String::from_utf8(out)?;
    if !text.ends_with('\n') {
        text.push('\n');
    }
    Ok(text)
}

/// Writes `contents` to `path` atomically (a temporary file renamed over it).
pub fn write_atomically(path: &Path, contents: &[u8]) -> Result<()> {
    let partial = path.with_extension(format!("partial.{}", std::process::id()));
    let mut file = std::fs::File::create(&partial)?;
    file.write_all(contents)?;
    file.sync_all()?;
    std::fs::rename(&partial, path)?;
    Ok(())
}
