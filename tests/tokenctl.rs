//! Black-box tests of the `tokenctl` binary run as a process against a running tokend, on the
//! emulator or, unchanged, a real cluster (`TOKEND_TEST_KUBECONFIG`).
//!
//! The binary is the one cargo builds for the tokend-client package: `cargo test --workspace`
//! builds it (tokend-client's own integration tests need it) before any test runs. It is found
//! beside this test's executable (`target/<profile>/deps/..` → `target/<profile>/tokenctl`), or at
//! `$TOKENCTL_BIN`.

use tokend_test_support as common;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

use common::{TestEnv, eventually, unique_name};
use serde_yaml::Value;
use tokio::io::AsyncWriteExt;

/// The tokenctl executable to run.
fn tokenctl_path() -> PathBuf {
    if let Some(path) = std::env::var_os("TOKENCTL_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("the test's own path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("tests run from target/<profile>/deps");
    let path = profile_dir.join(format!("tokenctl{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.is_file(),
        "{} is not built: run `cargo test --workspace` (which builds it) or `cargo build -p tokend-client` \
         first, or point TOKENCTL_BIN at it",
        path.display()
    );
    path
}

/// One finished tokenctl run.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl From<Output> for Run {
    fn from(output: Output) -> Self {
        Run {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

impl Run {
    /// Asserts exit code 0 and returns stdout.
    fn ok(self, what: &str) -> String {
        assert_eq!(
            self.code,
            Some(0),
            "{what}: stdout {:?} stderr {:?}",
            self.stdout,
            self.stderr
        );
        self.stdout
    }
}

/// Runs `tokenctl --addr ENDPOINT ARGS...` with `stdin`, asynchronously: tokend is served on this
/// test's runtime, so blocking the runtime on a child process would stall the server.
async fn tokenctl(env: &TestEnv, args: &[&str], stdin: &str, extra_env: &[(&str, &OsStr)]) -> Run {
    let mut command = tokio::process::Command::new(tokenctl_path());
    command
        .arg("--addr")
        .arg(&env.endpoint)
        .args(args)
        .env_remove("TOKEND_ADDR")
        .env_remove("TOKEND_TOKEN_FILE")
        .env_remove("TOKEND_CA")
        .env_remove("TOKEND_CERT")
        .env_remove("TOKEND_KEY")
        .env_remove("KUBECONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (name, value) in extra_env {
        command.env(name, value);
    }
    let mut child = command.spawn().expect("tokenctl starts");
    let mut input = child.stdin.take().expect("piped stdin");
    input
        .write_all(stdin.as_bytes())
        .await
        .expect("write stdin");
    drop(input);
    Run::from(child.wait_with_output().await.expect("tokenctl finishes"))
}

/// The `key: value` line `key` of `validate`'s text output.
fn field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines().find_map(|line| {
        line.strip_prefix(key)
            .and_then(|rest| rest.strip_prefix(": "))
    })
}

/// Runs kubectl, or says why it cannot (not on PATH).
async fn kubectl(args: &[&str]) -> Result<Run, String> {
    let version = tokio::process::Command::new("kubectl")
        .args(["version", "--client"])
        .output()
        .await;
    if !matches!(&version, Ok(out) if out.status.success()) {
        return Err("kubectl is not on PATH".into());
    }
    let output = tokio::process::Command::new("kubectl")
        .args(args)
        .output()
        .await
        .map_err(|e| format!("kubectl did not run: {e}"))?;
    Ok(Run::from(output))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_kubeconfig_kubectl_revoke_then_validate_rejects() {
    let env = common::start().await;
    let ns = env.fresh_namespace().await;
    let sa = unique_name("ctl");
    let target = format!("{ns}/{sa}");
    let dir = tempfile::tempdir().expect("temp dir");

    // Given a token issued by tokenctl, which prints only the token.
    let token = tokenctl(
        &env,
        &[
            "issue",
            &target,
            "--create-sa",
            "--role",
            "view",
            "--scope",
            "namespace",
            "--duration",
            "1h",
            "--label",
            "purpose=tokenctl-test",
        ],
        "",
        &[],
    )
    .await
    .ok("issue");
    assert_eq!(token.lines().count(), 1, "only the token: {token:?}");
    let token = token.trim().to_owned();
    assert_eq!(token.split('.').count(), 3, "a JWT");
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, &token).expect("write token");

    // It validates, from a file and from stdin, naming the ServiceAccount and its record.
    let from_file = tokenctl(
        &env,
        &["validate", token_file.to_str().expect("utf-8 path")],
        "",
        &[],
    )
    .await
    .ok("validate FILE");
    assert_eq!(
        field(&from_file, "authenticated"),
        Some("true"),
        "{from_file}"
    );
    assert_eq!(
        field(&from_file, "user"),
        Some(format!("system:serviceaccount:{ns}:{sa}").as_str())
    );
    assert!(
        field(&from_file, "groups")
            .is_some_and(|g| g.contains(&format!("system:serviceaccounts:{ns}"))),
        "{from_file}"
    );
    let token_id = field(&from_file, "token_id")
        .expect("token_id line")
        .to_owned();
    assert_ne!(token_id, "-", "tokend issued it, so it knows its id");
    assert!(
        field(&from_file, "expires").is_some_and(|e| e.ends_with('Z')),
        "{from_file}"
    );
    let from_stdin = tokenctl(&env, &["validate"], &format!("{token}\n"), &[])
        .await
        .ok("validate stdin");
    assert_eq!(field(&from_stdin, "token_id"), Some(token_id.as_str()));
    assert!(
        !from_stdin.contains(&token),
        "validate never prints the token"
    );

    // `get` and `list` show the record, never the token.
    let record = tokenctl(&env, &["get", &token_id, "-o", "json"], "", &[])
        .await
        .ok("get -o json");
    let record: serde_json::Value = serde_json::from_str(&record).expect("get -o json is JSON");
    assert_eq!(record["token_id"], token_id.as_str());
    assert_eq!(record["namespace"], ns.as_str());
    assert_eq!(record["service_account"], sa.as_str());
    assert_eq!(record["state"], "ACTIVE");
    assert_eq!(record["labels"]["purpose"], "tokenctl-test");
    assert!(record.get("token").is_none());
    let table = tokenctl(&env, &["list", &ns], "", &[]).await.ok("list");
    let header: Vec<&str> = table
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        [
            "TOKEN_ID",
            "SERVICEACCOUNT",
            "STATE",
            "EXPIRES",
            "LEFT",
            "ISSUED_BY"
        ]
    );
    let row = table
        .lines()
        .find(|line| line.starts_with(&token_id))
        .expect("the token is listed");
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cells[1], sa);
    assert_eq!(cells[2], "ACTIVE");
    let left =
        tokend_client::duration::parse_duration(cells[4]).expect("LEFT is in the duration grammar");
    assert!(
        left.as_secs() > 50 * 60 && left.as_secs() <= 3600,
        "about an hour left: {}",
        cells[4]
    );
    assert!(!table.contains(&token));

    // When tokenctl writes a kubeconfig for the ServiceAccount...
    let kubeconfig = tokenctl(&env, &["kubeconfig", &target, "--duration", "1h"], "", &[])
        .await
        .ok("kubeconfig");
    let parsed: Value = serde_yaml::from_str(&kubeconfig).expect("kubeconfig is YAML");
    assert_eq!(
        parsed["current-context"].as_str(),
        Some(format!("{ns}-{sa}").as_str())
    );
    let kubeconfig_path = dir.path().join("kc");
    std::fs::write(&kubeconfig_path, &kubeconfig).expect("write kubeconfig");
    let kubeconfig_token = parsed["users"][0]["user"]["token"]
        .as_str()
        .expect("a token user")
        .to_owned();

    // ...kubectl uses it as it is, with the view role it was bound to.
    let kc = kubeconfig_path.to_str().expect("utf-8 path");
    match kubectl(&[
        "--kubeconfig",
        kc,
        "get",
        "serviceaccounts",
        "-n",
        &ns,
        "-o",
        "name",
    ])
    .await
    {
        Ok(run) => {
            let listed = run.ok("kubectl get serviceaccounts");
            assert!(listed.contains(&format!("serviceaccount/{sa}")), "{listed}");
        }
        Err(reason) => eprintln!("skipped the kubectl step: {reason}"),
    }

    // Then revoking both tokens (by id, and by the token itself on stdin)...
    let revoked = tokenctl(&env, &["revoke", &token_id], "", &[])
        .await
        .ok("revoke TOKEN_ID");
    assert!(revoked.contains(&token_id), "{revoked}");
    assert!(revoked.contains(&format!("{ns}/{sa}")), "{revoked}");
    tokenctl(&env, &["revoke", "--token-stdin"], &kubeconfig_token, &[])
        .await
        .ok("revoke --token-stdin");

    // ...makes validate say "not authenticated" (exit 1) once the API server notices.
    let env_ref = &env;
    for (what, secret) in [
        ("issued token", &token),
        ("kubeconfig token", &kubeconfig_token),
    ] {
        eventually(
            &format!("tokenctl validate rejects the revoked {what}"),
            || async move {
                let run = tokenctl(env_ref, &["validate"], secret, &[]).await;
                run.code == Some(1) && field(&run.stdout, "authenticated") == Some("false")
            },
        )
        .await;
    }

    // And the record is gone: `get` fails with NOT_FOUND and exit code 1.
    let gone = tokenctl(&env, &["get", &token_id], "", &[]).await;
    assert_eq!(gone.code, Some(1), "{}", gone.stderr);
    assert!(
        gone.stderr.starts_with("error: NOT_FOUND: "),
        "{}",
        gone.stderr
    );
    let table = tokenctl(&env, &["list", &ns, &sa, "--all"], "", &[])
        .await
        .ok("list after revoke");
    assert!(!table.contains(&token_id), "{table}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_json_output_and_server_errors() {
    let env = common::start().await;
    let ns = env.fresh_namespace().await;
    let sa = unique_name("ctl");
    let target = format!("{ns}/{sa}");

    // -o json prints the token with its record.
    let issued = tokenctl(
        &env,
        &[
            "issue",
            &target,
            "--create-sa",
            "--duration",
            "2h45m",
            "-o",
            "json",
        ],
        "",
        &[],
    )
    .await
    .ok("issue -o json");
    let issued: serde_json::Value = serde_json::from_str(&issued).expect("JSON");
    assert_eq!(issued["namespace"], ns.as_str());
    assert_eq!(issued["service_account"], sa.as_str());
    assert!(
        issued["token"]
            .as_str()
            .is_some_and(|t| t.split('.').count() == 3)
    );
    assert!(
        issued["expiration_time"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z'))
    );
    let token_id = issued["token_id"].as_str().expect("token_id").to_owned();

    let record = tokenctl(&env, &["get", &token_id], "", &[])
        .await
        .ok("get (yaml)");
    let record: Value = serde_yaml::from_str(&record).expect("YAML");
    assert_eq!(record["token_id"].as_str(), Some(token_id.as_str()));

    // A ServiceAccount that does not exist, without --create-sa: the server's code and message.
    let missing = tokenctl(
        &env,
        &["issue", &format!("{ns}/{}", unique_name("nope"))],
        "",
        &[],
    )
    .await;
    assert_eq!(missing.code, Some(1), "{}", missing.stderr);
    assert!(
        missing.stderr.starts_with("error: NOT_FOUND: "),
        "{}",
        missing.stderr
    );
    assert!(missing.stdout.is_empty());

    // A duration under the API server's 10 minute minimum is refused by tokend, not sent.
    let short = tokenctl(&env, &["issue", &target, "--duration", "1m"], "", &[]).await;
    assert_eq!(short.code, Some(1), "{}", short.stderr);
    assert!(
        short.stderr.starts_with("error: INVALID_ARGUMENT: ")
            || short.stderr.starts_with("error: FAILED_PRECONDITION: "),
        "{}",
        short.stderr
    );

    // A token id that was never issued.
    let unknown = tokenctl(&env, &["revoke", &unique_name("no-such-token")], "", &[]).await;
    assert_eq!(unknown.code, Some(1));
    assert!(unknown.stderr.starts_with("error: "), "{}", unknown.stderr);

    // Garbage is not authenticated: exit 1, and the output says so.
    let garbage = tokenctl(&env, &["validate"], "not-a-token", &[]).await;
    assert_eq!(
        garbage.code,
        Some(1),
        "{} {}",
        garbage.stdout,
        garbage.stderr
    );
    assert_eq!(
        field(&garbage.stdout, "authenticated"),
        Some("false"),
        "{}",
        garbage.stdout
    );
}

/// A kubeconfig someone already uses: another cluster, an exec-plugin user, extra fields.
const EXISTING_KUBECONFIG: &str = r#"apiVersion: v1
kind: Config
preferences: {}
clusters:
- name: prod
  cluster:
    server: https://prod.example.com:6443
    certificate-authority-data: UFJPRA==
    extensions:
    - name: client.authentication.k8s.io/exec
      extension: {audience: prod}
users:
- name: alice
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1
      command: oidc-login
      args: [get-token, --issuer=https://id.example.com]
      interactiveMode: IfAvailable
contexts:
- name: prod
  context: {cluster: prod, user: alice, namespace: default}
- name: staging
  context: {cluster: prod, user: alice, namespace: staging}
current-context: prod
"#;

/// The entry named `name` in a kubeconfig's `section`.
fn entry<'a>(doc: &'a Value, section: &str, name: &str) -> Option<&'a Value> {
    doc[section]
        .as_sequence()?
        .iter()
        .find(|e| e["name"].as_str() == Some(name))
}

fn names(doc: &Value, section: &str) -> Vec<String> {
    doc[section]
        .as_sequence()
        .map(|entries| {
            entries
                .iter()
                .filter_map(|e| e["name"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merge_keeps_the_other_entries_of_an_existing_kubeconfig() {
    let env = common::start().await;
    let ns = env.fresh_namespace().await;
    let sa = unique_name("ctl");
    let target = format!("{ns}/{sa}");
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("config");
    std::fs::write(&path, EXISTING_KUBECONFIG).expect("write kubeconfig");
    let before: Value = serde_yaml::from_str(EXISTING_KUBECONFIG).expect("YAML");

    // When a context is merged in with --kubeconfig...
    let context = unique_name("ctx");
    let kc = path.to_str().expect("utf-8 path");
    let said = tokenctl(
        &env,
        &[
            "kubeconfig",
            &target,
            "--create-sa",
            "--role",
            "view",
            "--scope",
            "namespace",
            "--duration",
            "1h",
            "--context",
            &context,
            "--merge",
            "--kubeconfig",
            kc,
        ],
        "",
        &[],
    )
    .await
    .ok("kubeconfig --merge");
    assert!(said.contains(&context), "{said}");
    assert!(
        !said.contains("token:"),
        "merge does not print the kubeconfig: {said}"
    );

    // ...every other entry is unchanged, the new context is added, current-context is kept.
    let after: Value =
        serde_yaml::from_str(&std::fs::read_to_string(&path).expect("read")).expect("YAML");
    for (section, name) in [
        ("clusters", "prod"),
        ("users", "alice"),
        ("contexts", "prod"),
        ("contexts", "staging"),
    ] {
        let old = entry(&before, section, name).expect("in the original");
        let new =
            entry(&after, section, name).unwrap_or_else(|| panic!("{section}/{name} is gone"));
        assert_eq!(
            serde_yaml::to_string(new).expect("render"),
            serde_yaml::to_string(old).expect("render"),
            "{section}/{name} changed"
        );
    }
    assert_eq!(
        names(&after, "contexts"),
        ["prod".to_owned(), "staging".to_owned(), context.clone()]
    );
    assert_eq!(
        names(&after, "clusters"),
        ["prod".to_owned(), context.clone()]
    );
    assert_eq!(
        names(&after, "users"),
        ["alice".to_owned(), context.clone()]
    );
    assert_eq!(after["current-context"].as_str(), Some("prod"));
    assert_eq!(after["preferences"], before["preferences"]);
    let merged_context = entry(&after, "contexts", &context).expect("the new context");
    assert_eq!(
        merged_context["context"]["namespace"].as_str(),
        Some(ns.as_str())
    );
    let first_token = entry(&after, "users", &context)
        .and_then(|u| u["user"]["token"].as_str())
        .map(str::to_owned);
    assert!(first_token.is_some(), "the new user carries its token");

    // Merging the same name again (through $KUBECONFIG, with --use) replaces only that entry.
    let said = tokenctl(
        &env,
        &[
            "kubeconfig",
            &target,
            "--duration",
            "1h",
            "--context",
            &context,
            "--merge",
            "--use",
        ],
        "",
        &[("KUBECONFIG", path.as_os_str())],
    )
    .await
    .ok("kubeconfig --merge --use via KUBECONFIG");
    assert!(said.contains("current context"), "{said}");
    let again: Value =
        serde_yaml::from_str(&std::fs::read_to_string(&path).expect("read")).expect("YAML");
    assert_eq!(names(&again, "contexts"), names(&after, "contexts"));
    assert_eq!(names(&again, "users"), names(&after, "users"));
    for (section, name) in [
        ("clusters", "prod"),
        ("users", "alice"),
        ("contexts", "prod"),
        ("contexts", "staging"),
    ] {
        assert_eq!(
            entry(&again, section, name),
            entry(&before, section, name),
            "{section}/{name} changed"
        );
    }
    let second_token = entry(&again, "users", &context)
        .and_then(|u| u["user"]["token"].as_str())
        .map(str::to_owned);
    assert_ne!(
        second_token, first_token,
        "the entry now holds the new token"
    );
    assert_eq!(again["current-context"].as_str(), Some(context.as_str()));

    // The merged context works with kubectl, which picks it out of the shared file by name.
    let listed = kubectl(&[
        "--kubeconfig",
        kc,
        "--context",
        &context,
        "get",
        "serviceaccounts",
        "-o",
        "name",
    ])
    .await;
    match listed {
        Ok(run) => {
            let listed = run.ok("kubectl --context NEW get serviceaccounts");
            assert!(listed.contains(&format!("serviceaccount/{sa}")), "{listed}");
        }
        Err(reason) => eprintln!("skipped the kubectl step: {reason}"),
    }
}

/// The bearer token of the admin kubeconfig's current user, when it authenticates with one.
fn admin_token(env: &TestEnv) -> Option<String> {
    let text = std::fs::read_to_string(&env.admin_kubeconfig).ok()?;
    let doc: Value = serde_yaml::from_str(&text).ok()?;
    let context = doc["current-context"].as_str()?;
    let user = entry(&doc, "contexts", context)?["context"]["user"].as_str()?;
    entry(&doc, "users", user)?["user"]["token"]
        .as_str()
        .map(str::to_owned)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_authenticate_with_a_token_file_or_env_var() {
    let env = common::start_with(tokend::server::ServerOptions::default()).await;
    let Some(admin) = admin_token(&env) else {
        eprintln!("skipped: the admin kubeconfig's user has no bearer token to call tokend with");
        return;
    };
    let ns = env.fresh_namespace().await;
    let sa = unique_name("ctl");
    let dir = tempfile::tempdir().expect("temp dir");
    let admin_file = dir.path().join("admin-token");
    std::fs::write(&admin_file, format!("{admin}\n")).expect("write token");
    let admin_file = admin_file.to_str().expect("utf-8 path");

    // Without credentials tokend refuses, with the server's code and message.
    let anonymous = tokenctl(&env, &["list", &ns], "", &[]).await;
    assert_eq!(anonymous.code, Some(1), "{}", anonymous.stderr);
    assert!(
        anonymous.stderr.starts_with("error: UNAUTHENTICATED: "),
        "{}",
        anonymous.stderr
    );

    // With --token-file the caller is the admin, and the record says who issued the token.
    let token = tokenctl(
        &env,
        &[
            "--token-file",
            admin_file,
            "issue",
            &format!("{ns}/{sa}"),
            "--create-sa",
        ],
        "",
        &[],
    )
    .await
    .ok("issue --token-file");
    let table = tokenctl(
        &env,
        &["list", &ns],
        "",
        &[("TOKEND_TOKEN_FILE", OsStr::new(admin_file))],
    )
    .await
    .ok("list with TOKEND_TOKEN_FILE");
    let row: Vec<&str> = table
        .lines()
        .nth(1)
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(row.get(1).copied(), Some(sa.as_str()), "{table}");
    assert_ne!(
        row.get(5).copied(),
        Some("-"),
        "ISSUED_BY names the caller: {table}"
    );

    // --token-env names a variable holding the token.
    tokenctl(
        &env,
        &["--token-env", "TOKENCTL_TEST_CALLER", "list", &ns],
        "",
        &[("TOKENCTL_TEST_CALLER", OsStr::new(&admin))],
    )
    .await
    .ok("list --token-env");

    // A ServiceAccount with no rights is authenticated but not allowed to issue.
    let powerless = dir.path().join("sa-token");
    std::fs::write(&powerless, token.trim()).expect("write token");
    let denied = tokenctl(
        &env,
        &[
            "--token-file",
            powerless.to_str().expect("utf-8 path"),
            "issue",
            &format!("{ns}/{sa}"),
        ],
        "",
        &[],
    )
    .await;
    assert_eq!(denied.code, Some(1), "{}", denied.stderr);
    assert!(
        denied.stderr.starts_with("error: PERMISSION_DENIED: "),
        "{}",
        denied.stderr
    );
}

#[tokio::test]
async fn list_follows_pages_selects_by_label_and_stops_at_limit() {
    // Given more records than one server page holds (ListTokens' default page is 100),
    let env = common::start().await;
    let ns = env.fresh_namespace().await;
    let client = env.client().await;
    let mut blue = Vec::new();
    for i in 0..105 {
        let mut request = common::issue(&ns, "ci");
        let team = if i % 5 == 0 { "blue" } else { "red" };
        request.labels = [("team".to_owned(), team.to_owned())].into();
        let id = client.issue_token(request).await.expect("issue").token_id;
        if team == "blue" {
            blue.push(id);
        }
    }
    let ids = |stdout: &str| -> Vec<String> {
        let rows: Vec<serde_json::Value> = serde_json::from_str(stdout).expect("JSON list");
        rows.iter()
            .map(|r| r["token_id"].as_str().expect("token_id").to_owned())
            .collect()
    };
    // then `list` shows every one of them, across pages,
    let all = tokenctl(&env, &["list", &ns, "-o", "json"], "", &[])
        .await
        .ok("list");
    assert_eq!(ids(&all).len(), 105);
    // --limit stops early,
    let some = tokenctl(&env, &["list", &ns, "--limit", "7", "-o", "json"], "", &[])
        .await
        .ok("list --limit");
    assert_eq!(ids(&some).len(), 7);
    // and a selector picks by the labels given at issue.
    let mut selected = ids(&tokenctl(
        &env,
        &["list", &ns, "-l", "team=blue", "-o", "json"],
        "",
        &[],
    )
    .await
    .ok("list -l"));
    selected.sort();
    blue.sort();
    assert_eq!(selected, blue);
}
