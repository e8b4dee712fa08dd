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
