//! `tokenctl credential`, kubectl's exec credential plugin, through the real kubectl with an exec
//! kubeconfig from GetKubeconfig (`tokenctl kubeconfig --exec`): tokens from tokend, a cache that
//! spares tokend a call per kubectl run, recovery from a revoked cached token within the bound
//! the README states, and the plugin's own error when tokend is down.
//!
//! Needs the tokenctl binary (`cargo build -p tokend-client`), found beside this test's
//! executable or at `$TOKENCTL_BIN`, and kubectl on PATH (a counted skip otherwise).

use tokend_test_support as common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{TestEnv, eventually_within, issue};
use tokend_client::v1;

const TEST: &str = "credential";

/// What the README promises: a revoked token is served from the cache for at most the plugin's
/// 10 s check interval; the API server may accept it for its own 10 s authentication cache.
const REVOKED_BOUND: Duration = Duration::from_secs(10 + 10 + 10);

fn tokenctl_path() -> PathBuf {
    if let Some(path) = std::env::var_os("TOKENCTL_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("the test's own path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("tests run from target/<profile>/deps");
    let path = dir.join("tokenctl");
    assert!(
        path.is_file(),
        "{} is not built: run `cargo build -p tokend-client` first, or set TOKENCTL_BIN",
        path.display()
    );
    path
}

/// One finished process.
struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

/// A directory with `tokenctl` on PATH (as the exec kubeconfig's command), a kube cache and
/// the kubeconfig, for kubectl runs that see nothing of the tester's own setup.
struct Workspace {
    dir: tempfile::TempDir,
    path: std::ffi::OsString,
    kubectl: PathBuf,
}

impl Workspace {
    fn new(kubectl: PathBuf) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).expect("bin dir");
        std::os::unix::fs::symlink(tokenctl_path(), bin.join("tokenctl")).expect("link tokenctl");
        let path = std::env::join_paths(std::iter::once(bin).chain(std::env::split_paths(
            &std::env::var_os("PATH").unwrap_or_default(),
        )))
        .expect("PATH");
        Self { dir, path, kubectl }
    }

    fn cache(&self) -> PathBuf {
        self.dir.path().join("cache")
    }

    fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("kubeconfig")
    }

    async fn run(&self, program: &Path, args: &[&str]) -> Run {
        let output = tokio::process::Command::new(program)
            .args(args)
            .env("PATH", &self.path)
            .env("HOME", self.dir.path())
            .env("KUBECACHEDIR", self.cache())
            .env_remove("KUBECONFIG")
            .env_remove("TOKEND_ADDR")
            .env_remove("TOKEND_TOKEN")
            .env_remove("TOKEND_TOKEN_FILE")
            .kill_on_drop(true)
            .output()
            .await
            .expect("the process runs");
        Run {
            ok: output.status.success(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    async fn kubectl(&self, args: &[&str]) -> Run {
        let kubeconfig = self.kubeconfig();
        let mut all = vec!["--kubeconfig", kubeconfig.to_str().expect("utf-8 path")];
        all.extend_from_slice(args);
        self.run(&self.kubectl, &all).await
    }

    /// The cache's entries.
    fn entries(&self) -> Vec<PathBuf> {
        match std::fs::read_dir(self.cache().join("tokend")) {
            Ok(dir) => dir
                .map(|e| e.expect("entry").path())
                .filter(|p| p.extension().is_some_and(|x| x == "json"))
                .collect(),
            Err(_) => vec![],
        }
    }
}

/// tokend's count of tokens issued, from /metrics.
async fn issued(env: &TestEnv) -> u64 {
    let text = env.scrape_metrics().await;
    text.lines()
        .filter(|l| !l.starts_with('#') && l.contains("tokens_issued"))
        .find_map(|l| l.split_whitespace().last()?.parse().ok())
        .unwrap_or_else(|| panic!("no tokens_issued counter in\n{text}"))
}

/// kubectl, or a counted skip.
fn kubectl_or_skip(test: &str) -> Option<PathBuf> {
    let found = common::find_on_path("kubectl");
    if found.is_none() {
        common::skip(
            test,
            common::SkipKind::MissingTool,
            "kubectl is not on PATH",
        );
    }
    found
}

/// The ServiceAccount `ci` in `ns`, bound to `view`.
async fn service_account(env: &TestEnv, ns: &str) {
    env.client()
        .await
        .issue_token(v1::IssueTokenRequest {
            cluster_role: "view".into(),
            ..issue(ns, "ci")
        })
        .await
        .expect("IssueToken sets up ci");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_runs_on_tokens_from_the_plugin_reusing_them_and_recovering_from_revocation() {
    let test = format!("{TEST}::kubectl_runs_on_tokens_from_the_plugin");
    let Some(kubectl) = kubectl_or_skip(&test) else {
        return;
    };
    let env = common::start().await;
    let ns = env.fresh_namespace().await;
    service_account(&env, &ns).await;
    let work = Workspace::new(kubectl);

    // tokenctl kubeconfig --exec writes a kubeconfig that runs the plugin and holds no secret.
    let target = format!("{ns}/ci");
    let written = work
        .run(
            &tokenctl_path(),
            &[
                "--addr",
                &env.endpoint,
                "kubeconfig",
                &target,
                "--exec",
                "--duration",
                "1h",
            ],
        )
        .await;
    assert!(written.ok, "tokenctl kubeconfig --exec: {}", written.stderr);
    let before_any = issued(&env).await;
    let config: serde_yaml::Value = serde_yaml::from_str(&written.stdout).expect("YAML");
    let user = &config["users"][0]["user"];
    assert!(
        user.get("token").is_none(),
        "no token in {}",
        written.stdout
    );
    assert_eq!(user["exec"]["command"].as_str(), Some("tokenctl"));
    assert_eq!(user["exec"]["interactiveMode"].as_str(), Some("Never"));
    assert_eq!(
        user["exec"]["apiVersion"].as_str(),
        Some("client.authentication.k8s.io/v1")
    );
    assert!(
        user["exec"]["installHint"]
            .as_str()
            .is_some_and(|h| h.contains("tokenctl"))
    );
    assert_eq!(
        before_any,
        issued(&env).await,
        "an exec kubeconfig issues nothing"
    );
    std::fs::write(work.kubeconfig(), &written.stdout).expect("write kubeconfig");

    // kubectl gets a token from the plugin and the API server accepts it.
    let api = work.kubectl(&["get", "--raw", "/api"]).await;
    assert!(api.ok, "kubectl get --raw /api: {}", api.stderr);
    assert!(api.stdout.contains("\"versions\""), "{}", api.stdout);
    let after_first = issued(&env).await;
    assert_eq!(
        after_first,
        before_any + 1,
        "the first run issues one token"
    );
    let [entry] = work.entries().try_into().unwrap_or_else(|e: Vec<PathBuf>| {
        panic!("one cache entry expected: {e:?}");
    });
    let mode = std::fs::metadata(&entry)
        .expect("entry")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600, "the cache entry is the user's alone");

    // Further kubectl runs reuse the cached token: tokend issues nothing more.
    let yes = work
        .kubectl(&["auth", "can-i", "list", "pods", "-n", &ns])
        .await;
    assert!(
        yes.ok && yes.stdout.trim() == "yes",
        "can-i list pods: {} {}",
        yes.stdout,
        yes.stderr
    );
    let no = work
        .kubectl(&["auth", "can-i", "create", "pods", "-n", &ns])
        .await;
    assert!(
        !no.ok && no.stdout.trim() == "no",
        "can-i create pods: {} {}",
        no.stdout,
        no.stderr
    );
    assert_eq!(
        issued(&env).await,
        after_first,
        "the cached token was reused"
    );

    // Revoke the cached token's record: kubectl works again, on a fresh token, within the bound.
    let client = env.client().await;
    let listed = client
        .list_tokens(v1::ListTokensRequest {
            namespace: ns.clone(),
            service_account: "ci".into(),
            ..Default::default()
        })
        .await
        .expect("ListTokens");
    // Every record goes, the plugin's with the setup's: the plugin must notice and re-ask.
    assert_eq!(listed.tokens.len(), 2, "the setup token and the plugin's");
    for record in &listed.tokens {
        client
            .revoke_token(v1::RevokeTokenRequest {
                target: Some(v1::revoke_token_request::Target::TokenId(
                    record.token_id.clone(),
                )),
            })
            .await
            .expect("RevokeToken");
    }
    eventually_within(
        "kubectl works again with a fresh token",
        REVOKED_BOUND,
        || async {
            // The API server may accept the revoked token for a while (its authentication
            // cache), so success alone proves nothing: the plugin must have issued a fresh one.
            let run = work.kubectl(&["get", "--raw", "/api"]).await;
            Ok(run.ok && issued(&env).await > after_first)
        },
    )
    .await
    .expect("recovered within the README's bound");
    let yes = work
        .kubectl(&["auth", "can-i", "list", "pods", "-n", &ns])
        .await;
    assert!(yes.ok, "can-i after renewal: {}", yes.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_tokend_down_kubectl_shows_the_plugins_error() {
    let test = format!("{TEST}::with_tokend_down_kubectl_shows_the_plugins_error");
    let Some(kubectl) = kubectl_or_skip(&test) else {
        return;
    };
    let env = common::start().await;
    let ns = env.fresh_namespace().await;
    service_account(&env, &ns).await;
    let work = Workspace::new(kubectl);
    // A loopback port nobody listens on.
    let down = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        format!("http://{}", listener.local_addr().expect("addr"))
    };
    let rendered = env
        .client()
        .await
        .get_kubeconfig(v1::GetKubeconfigRequest {
            source: Some(v1::get_kubeconfig_request::Source::Issue(
                v1::IssueTokenRequest {
                    namespace: ns.clone(),
                    service_account: "ci".into(),
                    ..Default::default()
                },
            )),
            exec: Some(v1::KubeconfigExec {
                tokend_address: down.clone(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .expect("GetKubeconfig exec");
    assert!(rendered.token_id.is_empty(), "nothing issued");
    std::fs::write(work.kubeconfig(), &rendered.kubeconfig).expect("write kubeconfig");

    let run = work.kubectl(&["get", "--raw", "/api"]).await;
    assert!(!run.ok, "kubectl cannot succeed without tokend");
    assert!(
        run.stderr.contains("UNAVAILABLE") && run.stderr.contains(&down["http://".len()..]),
        "the plugin's error names tokend's address: {}",
        run.stderr
    );
    assert!(run.stderr.contains("getting credentials"), "{}", run.stderr);
    assert!(work.entries().is_empty(), "nothing cached");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_v1beta1_exec_kubeconfig_gets_a_v1beta1_answer() {
    let test = format!("{TEST}::a_v1beta1_exec_kubeconfig_gets_a_v1beta1_answer");
    let Some(kubectl) = kubectl_or_skip(&test) else {
        return;
    };
    let env = common::start().await;
    let ns = env.fresh_namespace().await;
    service_account(&env, &ns).await;
    let work = Workspace::new(kubectl);
    let target = format!("{ns}/ci");
    let written = work
        .run(
            &tokenctl_path(),
            &["--addr", &env.endpoint, "kubeconfig", &target, "--exec"],
        )
        .await;
    assert!(written.ok, "tokenctl kubeconfig --exec: {}", written.stderr);
    // As an older client would have it: kubectl then sends and expects v1beta1.
    let older = written.stdout.replace(
        "client.authentication.k8s.io/v1\n",
        "client.authentication.k8s.io/v1beta1\n",
    );
    assert_ne!(older, written.stdout, "the apiVersion line was found");
    std::fs::write(work.kubeconfig(), &older).expect("write kubeconfig");
    let yes = work
        .kubectl(&["auth", "can-i", "get", "pods", "-n", &ns])
        .await;
    assert!(
        yes.ok && yes.stdout.trim() == "yes",
        "{} {}",
        yes.stdout,
        yes.stderr
    );
}

#[tokio::test]
async fn exec_kubeconfig_requests_are_checked_and_issue_nothing() {
    let env = common::start().await;
    let ns = env.fresh_namespace().await;
    service_account(&env, &ns).await;
    let client = env.client().await;
    let before = issued(&env).await;
    let exec = |address: &str| {
        Some(v1::KubeconfigExec {
            tokend_address: address.into(),
            ..Default::default()
        })
    };
    let target = || {
        Some(v1::get_kubeconfig_request::Source::Issue(
            v1::IssueTokenRequest {
                namespace: ns.clone(),
                service_account: "ci".into(),
                ..Default::default()
            },
        ))
    };
    let cases = [
        (
            v1::GetKubeconfigRequest {
                source: Some(v1::get_kubeconfig_request::Source::Token("x".into())),
                exec: exec("http://tokend:50051"),
                ..Default::default()
            },
            "exec",
        ),
        (
            v1::GetKubeconfigRequest {
                source: target(),
                exec: exec("ftp://tokend"),
                ..Default::default()
            },
            "exec.tokend_address",
        ),
        (
            v1::GetKubeconfigRequest {
                source: Some(v1::get_kubeconfig_request::Source::Issue(issue(&ns, "ci"))),
                exec: exec("http://tokend:50051"),
                ..Default::default()
            },
            "exec",
        ),
        (
            v1::GetKubeconfigRequest {
                source: target(),
                exec: Some(v1::KubeconfigExec {
                    tokend_address: "http://tokend:50051".into(),
                    extra_args: vec!["a\nb".into()],
                    ..Default::default()
                }),
                ..Default::default()
            },
            "exec.extra_args",
        ),
    ];
    for (request, field) in cases {
        common::assert_code(
            client.get_kubeconfig(request).await,
            tonic::Code::InvalidArgument,
            field,
        );
    }
    let missing = client
        .get_kubeconfig(v1::GetKubeconfigRequest {
            source: Some(v1::get_kubeconfig_request::Source::Issue(
                v1::IssueTokenRequest {
                    namespace: ns.clone(),
                    service_account: "nobody".into(),
                    ..Default::default()
                },
            )),
            exec: exec("http://tokend:50051"),
            ..Default::default()
        })
        .await;
    // A kubeconfig that could only ever fail is refused now, naming what is missing.
    common::assert_code(missing, tonic::Code::NotFound, "service_account");
    assert_eq!(issued(&env).await, before, "nothing was issued");
}

/// What a hostile user who could write into the cache leaves there for the plugin to read.
const PLANTED_TOKEN: &str = "planted-by-the-attacker";

/// The warning the plugin prints (and kubectl shows) when it works without its cache.
const NO_CACHE_WARNING: &str = "not using the token cache";

impl Workspace {
    /// Writes an exec kubeconfig (`tokenctl kubeconfig --exec`) for `ns/ci` into the workspace.
    async fn exec_kubeconfig(&self, env: &TestEnv, ns: &str) {
        let target = format!("{ns}/ci");
        let written = self
            .run(
                &tokenctl_path(),
                &[
                    "--addr",
                    &env.endpoint,
                    "kubeconfig",
                    &target,
                    "--exec",
                    "--duration",
                    "1h",
                ],
            )
            .await;
        assert!(written.ok, "tokenctl kubeconfig --exec: {}", written.stderr);
        std::fs::write(self.kubeconfig(), &written.stdout).expect("write kubeconfig");
    }

    /// The plugin as kubectl starts it from the exec kubeconfig (command, args,
    /// KUBERNETES_EXEC_INFO), not yet waited for.
    fn spawn_plugin(&self) -> tokio::process::Child {
        let text = std::fs::read_to_string(self.kubeconfig()).expect("read kubeconfig");
        let config: serde_yaml::Value = serde_yaml::from_str(&text).expect("YAML");
        let exec = &config["users"][0]["user"]["exec"];
        let args: Vec<&str> = exec["args"]
            .as_sequence()
            .expect("exec args")
            .iter()
            .map(|a| a.as_str().expect("string arg"))
            .collect();
        tokio::process::Command::new(tokenctl_path())
            .args(&args)
            .env("PATH", &self.path)
            .env("HOME", self.dir.path())
            .env("KUBECACHEDIR", self.cache())
            .env(
                "KUBERNETES_EXEC_INFO",
                r#"{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","spec":{"interactive":false}}"#,
            )
            .env_remove("KUBECONFIG")
            .env_remove("TOKEND_ADDR")
            .env_remove("TOKEND_TOKEN")
            .env_remove("TOKEND_TOKEN_FILE")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("the plugin starts")
    }

    /// Runs the plugin as kubectl does and returns the token it answered with.
    async fn plugin(&self) -> (String, Run) {
        let output = self
            .spawn_plugin()
            .wait_with_output()
            .await
            .expect("the plugin runs");
        let run = Run {
            ok: output.status.success(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        };
        assert!(run.ok, "the plugin answers: {}", run.stderr);
        let answer: serde_json::Value = serde_json::from_str(&run.stdout).expect("ExecCredential");
        let token = answer["status"]["token"]
            .as_str()
            .expect("a token")
            .to_owned();
        (token, run)
    }

    /// kubectl works (the API server accepts the plugin's token).
    async fn assert_kubectl_works(&self, what: &str) -> Run {
        let api = self.kubectl(&["get", "--raw", "/api"]).await;
        assert!(
            api.ok && api.stdout.contains("\"versions\""),
            "{what}: kubectl still works: {} {}",
            api.stdout,
            api.stderr
        );
        api
    }

    /// No file under the cache directory holds `token`.
    fn assert_not_cached(&self, token: &str, what: &str) {
        let mut dirs = vec![self.cache()];
        while let Some(dir) = dirs.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries {
                let path = entry.expect("entry").path();
                let meta = std::fs::symlink_metadata(&path).expect("metadata");
                if meta.is_dir() {
                    dirs.push(path);
                } else if meta.is_file() {
                    let text = std::fs::read_to_string(&path).unwrap_or_default();
                    assert!(!text.contains(token), "{what}: the token is in {path:?}");
                }
            }
        }
    }
}

/// A cache entry as an attacker would plant it: fresh, just checked, holding their token.
fn planted_entry() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    serde_json::json!({
        "token": PLANTED_TOKEN,
        "token_id": "planted",
        "issued_at": now,
        "expires_at": now + 3600,
        "checked_at": now,
    })
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cache_directory_others_can_write_is_not_used() {
    let test = format!("{TEST}::a_cache_directory_others_can_write_is_not_used");
    let Some(kubectl) = kubectl_or_skip(&test) else {
        return;
    };
    let env = common::start().await;
    let ns = env.fresh_namespace().await;
    service_account(&env, &ns).await;
    let work = Workspace::new(kubectl);
    work.exec_kubeconfig(&env, &ns).await;

    // Given a tokend/ cache directory made beforehand, writable by everyone.
    let dir = work.cache().join("tokend");
    std::fs::create_dir_all(&dir).expect("cache dir");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).expect("chmod 0777");

    // When kubectl runs the plugin, it works, and the plugin says why it does not cache.
    let api = work.assert_kubectl_works("0777 cache directory").await;
    assert!(
        api.stderr.contains(NO_CACHE_WARNING) && api.stderr.contains("tokend"),
        "kubectl shows the plugin's warning: {}",
        api.stderr
    );
    let (token, run) = work.plugin().await;
    assert!(run.stderr.contains(NO_CACHE_WARNING), "{}", run.stderr);
    assert!(
        run.stderr.contains("can be written by group or others"),
        "{}",
        run.stderr
    );

    // Then nothing was written where others could replace or read it.
    assert!(
        work.entries().is_empty(),
        "nothing cached in a 0777 directory"
    );
    work.assert_not_cached(&token, "0777 cache directory");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_planted_cache_entry_is_never_served() {
    let test = format!("{TEST}::a_planted_cache_entry_is_never_served");
    let Some(kubectl) = kubectl_or_skip(&test) else {
        return;
    };
    let env = common::start().await;
    let ns = env.fresh_namespace().await;
    service_account(&env, &ns).await;
    let work = Workspace::new(kubectl);
    work.exec_kubeconfig(&env, &ns).await;
    // The first run makes the entry: its name is what an attacker computes from the target.
    work.assert_kubectl_works("first run").await;
    let [entry] = work.entries().try_into().unwrap_or_else(|e: Vec<PathBuf>| {
        panic!("one cache entry expected: {e:?}");
    });

    // A symlink to the attacker's own file, and a file others may write (as one owned by
    // someone else is: the same check), each holding a fresh entry with the attacker's token.
    let attacker_file = work.dir.path().join("attacker.json");
    std::fs::write(&attacker_file, planted_entry()).expect("attacker's file");
    std::fs::set_permissions(&attacker_file, std::fs::Permissions::from_mode(0o644))
        .expect("chmod");
    let attacker_before = std::fs::read(&attacker_file).expect("read");
    type Plant = fn(&Path, &Path);
    let plants: [(&str, Plant); 2] = [
        ("a symlink to the attacker's file", |entry, attacker| {
            std::os::unix::fs::symlink(attacker, entry).expect("plant symlink");
        }),
        ("an entry others may write", |entry, _| {
            std::fs::write(entry, planted_entry()).expect("plant entry");
            std::fs::set_permissions(entry, std::fs::Permissions::from_mode(0o666)).expect("chmod");
        }),
    ];
    for (what, plant) in plants {
        std::fs::remove_file(&entry).expect("remove the entry");
        plant(&entry, &attacker_file);

        let (token, run) = work.plugin().await;
        assert_ne!(
            token, PLANTED_TOKEN,
            "{what}: the planted token is not served"
        );
        assert!(
            !run.stdout.contains(PLANTED_TOKEN),
            "{what}: {}",
            run.stdout
        );
        assert!(
            run.stderr.contains(NO_CACHE_WARNING),
            "{what}: the plugin says why: {}",
            run.stderr
        );
        assert_eq!(
            std::fs::read(&attacker_file).expect("read"),
            attacker_before,
            "{what}: the attacker's file is untouched"
        );
        work.assert_not_cached(&token, what);
        let api = work.assert_kubectl_works(what).await;
        assert!(
            api.stderr.contains(NO_CACHE_WARNING),
            "{what}: {}",
            api.stderr
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_planted_temporary_file_is_never_written_through() {
    let test = format!("{TEST}::a_planted_temporary_file_is_never_written_through");
    let Some(kubectl) = kubectl_or_skip(&test) else {
        return;
    };
    let env = common::start().await;
    let ns = env.fresh_namespace().await;
    service_account(&env, &ns).await;
    let work = Workspace::new(kubectl);
    work.exec_kubeconfig(&env, &ns).await;
    let dir = work.cache().join("tokend");
    std::fs::create_dir_all(&dir).expect("cache dir");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    let victim = work.dir.path().join("victim");
    std::fs::write(&victim, "the victim's own secret\n").expect("victim");
    std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o600)).expect("chmod");

    // Given symlinks to the victim at the temporary names the plugin could pick that an
    // attacker can guess (its process id), planted as soon as the process exists: well before
    // it has asked tokend for a token.
    let child = work.spawn_plugin();
    let pid = child.id().expect("the plugin's pid");
    for name in [format!(".{pid}.tmp"), format!(".tokenctl-{pid}.tmp")] {
        std::os::unix::fs::symlink(&victim, dir.join(name)).expect("plant symlink");
    }
    let output = child.wait_with_output().await.expect("the plugin runs");
    assert!(
        output.status.success(),
        "the plugin answers: {}",
        String::from_utf8_lossy(&output.stderr)
    );

    // Then the victim is untouched, and the entry is a file of its own, 0600.
    assert_eq!(
        std::fs::read_to_string(&victim).expect("read victim"),
        "the victim's own secret\n",
        "nothing was written through a planted temporary name"
    );
    let [entry] = work.entries().try_into().unwrap_or_else(|e: Vec<PathBuf>| {
        panic!("one cache entry expected: {e:?}");
    });
    let meta = std::fs::symlink_metadata(&entry).expect("entry");
    assert!(meta.is_file(), "the entry is a regular file, not a symlink");
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    work.assert_kubectl_works("after a planted temporary name")
        .await;
}
