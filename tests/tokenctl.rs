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
        .env_remove("TOKEND_TOKEN")
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
    let response: serde_json::Value = serde_json::from_str(&record).expect("get -o json is JSON");
    // GetTokenResponse in proto3 JSON: lowerCamelCase names, enums by name.
    let record = &response["token"];
    assert_eq!(record["tokenId"], token_id.as_str());
    assert_eq!(record["namespace"], ns.as_str());
    assert_eq!(record["serviceAccount"], sa.as_str());
    assert_eq!(record["state"], "TOKEN_STATE_ACTIVE");
    assert_eq!(record["labels"]["purpose"], "tokenctl-test");
    assert!(
        !response.to_string().contains(&token),
        "get never prints the token"
    );
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

    // ...makes validate say "not authenticated" (exit 6) once the API server notices.
    let env_ref = &env;
    for (what, secret) in [
        ("issued token", &token),
        ("kubeconfig token", &kubeconfig_token),
    ] {
        eventually(
            &format!("tokenctl validate rejects the revoked {what}"),
            || async move {
                let run = tokenctl(env_ref, &["validate"], secret, &[]).await;
                run.code == Some(6) && field(&run.stdout, "authenticated") == Some("false")
            },
        )
        .await;
    }

    // And the record is gone: `get` fails with NOT_FOUND and exit code 4.
    let gone = tokenctl(&env, &["get", &token_id], "", &[]).await;
    assert_eq!(gone.code, Some(4), "{}", gone.stderr);
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

    // -o json prints IssueTokenResponse in proto3 JSON: the token and where it belongs.
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
    assert_eq!(issued["serviceAccount"], sa.as_str());
    assert!(
        issued["token"]
            .as_str()
            .is_some_and(|t| t.split('.').count() == 3)
    );
    assert!(
        issued["expirationTime"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z'))
    );
    let token_id = issued["tokenId"].as_str().expect("tokenId").to_owned();

    let record = tokenctl(&env, &["get", &token_id], "", &[])
        .await
        .ok("get (yaml)");
    let record: Value = serde_yaml::from_str(&record).expect("YAML");
    assert_eq!(record["token"]["tokenId"].as_str(), Some(token_id.as_str()));

    // A ServiceAccount that does not exist, without --create-sa: the server's code and message,
    // and exit 4.
    let missing = tokenctl(
        &env,
        &["issue", &format!("{ns}/{}", unique_name("nope"))],
        "",
        &[],
    )
    .await;
    assert_eq!(missing.code, Some(4), "{}", missing.stderr);
    assert!(
        missing.stderr.starts_with("error: NOT_FOUND: "),
        "{}",
        missing.stderr
    );
    assert!(missing.stdout.is_empty());

    // A duration under the API server's 10 minute minimum is refused by tokend, not sent: exit 1.
    let short = tokenctl(&env, &["issue", &target, "--duration", "1m"], "", &[]).await;
    assert_eq!(short.code, Some(1), "{}", short.stderr);
    assert!(
        short.stderr.starts_with("error: INVALID_ARGUMENT: ")
            || short.stderr.starts_with("error: FAILED_PRECONDITION: "),
        "{}",
        short.stderr
    );

    // A token id that was never issued: NOT_FOUND, exit 4.
    let (id_namespace, random) = token_id.split_once('.').expect("NAMESPACE.ID");
    let never_issued = format!("{id_namespace}.{}", "0".repeat(random.len()));
    let unknown = tokenctl(&env, &["revoke", &never_issued], "", &[]).await;
    assert_eq!(unknown.code, Some(4), "{}", unknown.stderr);
    assert!(
        unknown.stderr.starts_with("error: NOT_FOUND: "),
        "{}",
        unknown.stderr
    );

    // Garbage is not authenticated: exit 6 ("invalid", not "could not ask"), and the output says so.
    let garbage = tokenctl(&env, &["validate"], "not-a-token", &[]).await;
    assert_eq!(
        garbage.code,
        Some(6),
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

    // Without credentials tokend refuses, with the server's code and message, and exit 5.
    let anonymous = tokenctl(&env, &["list", &ns], "", &[]).await;
    assert_eq!(anonymous.code, Some(5), "{}", anonymous.stderr);
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
    assert_eq!(denied.code, Some(5), "{}", denied.stderr);
    assert!(
        denied.stderr.starts_with("error: PERMISSION_DENIED: "),
        "{}",
        denied.stderr
    );

    // $TOKEND_TOKEN authenticates on its own...
    tokenctl(
        &env,
        &["list", &ns],
        "",
        &[("TOKEND_TOKEN", OsStr::new(&admin))],
    )
    .await
    .ok("list with TOKEND_TOKEN");
    // ...wins over $TOKEND_TOKEN_FILE (the powerless token in the variable is the one used)...
    let env_wins = tokenctl(
        &env,
        &["issue", &format!("{ns}/{sa}")],
        "",
        &[
            ("TOKEND_TOKEN", OsStr::new(token.trim())),
            ("TOKEND_TOKEN_FILE", OsStr::new(admin_file)),
        ],
    )
    .await;
    assert_eq!(env_wins.code, Some(5), "{}", env_wins.stderr);
    // ...and loses to --token-file (the admin's file is used over the powerless variable).
    tokenctl(
        &env,
        &["--token-file", admin_file, "issue", &format!("{ns}/{sa}")],
        "",
        &[("TOKEND_TOKEN", OsStr::new(token.trim()))],
    )
    .await
    .ok("--token-file over TOKEND_TOKEN");
    // --token-env wins over all of them.
    let named = tokenctl(
        &env,
        &[
            "--token-env",
            "TOKENCTL_TEST_CALLER",
            "--token-file",
            admin_file,
            "issue",
            &format!("{ns}/{sa}"),
        ],
        "",
        &[
            ("TOKENCTL_TEST_CALLER", OsStr::new(token.trim())),
            ("TOKEND_TOKEN", OsStr::new(&admin)),
        ],
    )
    .await;
    assert_eq!(named.code, Some(5), "{}", named.stderr);
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
        let list: serde_json::Value = serde_json::from_str(stdout).expect("JSON list");
        list["tokens"]
            .as_array()
            .map(|rows| {
                rows.iter()
                    .map(|r| r["tokenId"].as_str().expect("tokenId").to_owned())
                    .collect()
            })
            .unwrap_or_default()
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

/// Runs grpcurl (plaintext, its default output: defaults omitted) on `method` with `body`.
fn grpcurl(env: &TestEnv, method: &str, body: &serde_json::Value) -> Option<serde_json::Value> {
    let Some(grpcurl) = common::find_on_path("grpcurl") else {
        common::skip(
            "tokenctl::json_output_is_grpcurls_and_kubectl_formats_work",
            common::SkipKind::MissingTool,
            "grpcurl is not on PATH (scripts/test installs it)",
        );
        return None;
    };
    let out = std::process::Command::new(grpcurl)
        .args(["-plaintext", "-d", &body.to_string(), &env.addr])
        .arg(format!("tokend.v1.TokenService/{method}"))
        .output()
        .expect("grpcurl runs");
    assert!(
        out.status.success(),
        "grpcurl {method}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(serde_json::from_slice(&out.stdout).expect("grpcurl prints JSON"))
}

/// Asserts that two JSON documents have the same fields with the same values, naming the first
/// field that differs (or is only in one of them).
fn assert_same_fields(
    what: &str,
    ours: &serde_json::Value,
    theirs: &serde_json::Value,
    path: &str,
) {
    match (ours, theirs) {
        (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
            let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for key in keys {
                let field = format!("{path}.{key}");
                match (a.get(key), b.get(key)) {
                    (Some(x), Some(y)) => assert_same_fields(what, x, y, &field),
                    (x, y) => {
                        panic!("{what}: {field} is {x:?} in tokenctl's and {y:?} in grpcurl's")
                    }
                }
            }
        }
        (serde_json::Value::Array(a), serde_json::Value::Array(b)) => {
            assert_eq!(a.len(), b.len(), "{what}: {path} has different lengths");
            for (index, (x, y)) in a.iter().zip(b).enumerate() {
                assert_same_fields(what, x, y, &format!("{path}[{index}]"));
            }
        }
        (a, b) => assert_eq!(a, b, "{what}: {path} differs"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_output_is_grpcurls_and_kubectl_formats_work() {
    let env = common::start().await;
    let ns = env.fresh_namespace().await;
    let sa = unique_name("ctl");

    // Given a token issued with labels and audiences (so maps, lists and enums are all in play)...
    let issued = tokenctl(
        &env,
        &[
            "issue",
            &sa,
            "-n",
            &ns,
            "--create-sa",
            "--duration",
            "1h",
            "--label",
            "team=blue",
            "--label",
            "app=ci",
            "--audience",
            "vault",
            "--audience",
            "api",
            "--role",
            "view",
            "-o",
            "json",
        ],
        "",
        &[],
    )
    .await
    .ok("issue -n -o json");
    let issued: serde_json::Value = serde_json::from_str(&issued).expect("JSON");
    let token_id = issued["tokenId"].as_str().expect("tokenId").to_owned();
    let token = issued["token"].as_str().expect("token").to_owned();

    // ...-o json is field for field what grpcurl prints for the same RPC.
    let get_ours: serde_json::Value = serde_json::from_str(
        &tokenctl(&env, &["get", &token_id, "-o", "json"], "", &[])
            .await
            .ok("get -o json"),
    )
    .expect("JSON");
    let Some(get_theirs) = grpcurl(
        &env,
        "GetToken",
        &serde_json::json!({ "token_id": token_id }),
    ) else {
        return;
    };
    assert_same_fields("GetToken", &get_ours, &get_theirs, "");
    assert_eq!(get_ours["token"]["bindingScope"], "BINDING_SCOPE_NAMESPACE");
    assert!(
        get_ours["token"]["issuedAt"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z'))
    );

    let list_ours: serde_json::Value = serde_json::from_str(
        &tokenctl(&env, &["list", "-n", &ns, "-o", "json"], "", &[])
            .await
            .ok("list -o json"),
    )
    .expect("JSON");
    let list_theirs =
        grpcurl(&env, "ListTokens", &serde_json::json!({ "namespace": ns })).expect("grpcurl");
    assert_same_fields("ListTokens", &list_ours, &list_theirs, "");

    let validate_theirs = grpcurl(
        &env,
        "ValidateToken",
        &serde_json::json!({ "token": token, "audiences": ["vault"] }),
    )
    .expect("grpcurl");
    let validate_ours_vault: serde_json::Value = serde_json::from_str(
        &tokenctl(
            &env,
            &["validate", "--audience", "vault", "-o", "json"],
            &token,
            &[],
        )
        .await
        .ok("validate --audience -o json"),
    )
    .expect("JSON");
    assert_same_fields("ValidateToken", &validate_ours_vault, &validate_theirs, "");
    assert_eq!(validate_ours_vault["authenticated"], true);

    // -o yaml is the same document.
    let yaml: serde_json::Value = serde_yaml::from_str(
        &tokenctl(&env, &["get", &token_id, "-o", "yaml"], "", &[])
            .await
            .ok("get -o yaml"),
    )
    .expect("YAML");
    assert_eq!(yaml, get_ours);

    // -o name is kubectl's kind/name.
    let names = tokenctl(&env, &["list", "-n", &ns, "-o", "name"], "", &[])
        .await
        .ok("list -o name");
    assert_eq!(names, format!("token/{token_id}\n"));
    let name = tokenctl(&env, &["get", &token_id, "-o", "name"], "", &[])
        .await
        .ok("get -o name");
    assert_eq!(name, format!("token/{token_id}\n"));

    // -o jsonpath takes kubectl's templates, over the proto3 JSON names.
    let ids = tokenctl(
        &env,
        &["list", "-n", &ns, "-o", "jsonpath={.tokens[*].tokenId}"],
        "",
        &[],
    )
    .await
    .ok("list -o jsonpath");
    assert_eq!(ids, token_id);
    let rows = tokenctl(
        &env,
        &[
            "list",
            &format!("{ns}/{sa}"),
            "-o",
            r#"jsonpath={range .tokens[*]}{.tokenId}{"\t"}{.state}{"\t"}{.labels.team}{"\n"}{end}"#,
        ],
        "",
        &[],
    )
    .await
    .ok("list NS/SA -o jsonpath range");
    assert_eq!(rows, format!("{token_id}\tTOKEN_STATE_ACTIVE\tblue\n"));
    let second = tokenctl(
        &env,
        &["issue", &format!("{ns}/{sa}"), "-o", "jsonpath={.tokenId}"],
        "",
        &[],
    )
    .await
    .ok("issue -o jsonpath");
    assert!(
        second.starts_with(&format!("{ns}.")) && second != token_id,
        "{second}"
    );

    // --no-headers leaves one row per token and nothing else.
    let table = tokenctl(&env, &["list", "-n", &ns, &sa, "--no-headers"], "", &[])
        .await
        .ok("list --no-headers");
    let mut first_cells: Vec<&str> = table
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .collect();
    first_cells.sort_unstable();
    let mut expected = vec![token_id.as_str(), second.as_str()];
    expected.sort_unstable();
    assert_eq!(first_cells, expected, "{table}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespace_defaults_to_the_kubeconfig_contexts() {
    let env = common::start().await;
    let here = env.fresh_namespace().await;
    let there = env.fresh_namespace().await;
    let sa = unique_name("ctl");
    let dir = tempfile::tempdir().expect("temp dir");
    // A kubeconfig like a user's: tokenctl reads only its contexts, and calls no cluster.
    let kubeconfig = dir.path().join("config");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: here\n\
             clusters:\n- name: c\n  cluster: {{server: 'https://127.0.0.1:1'}}\n\
             users:\n- name: u\n  user: {{token: not-used}}\n\
             contexts:\n- name: here\n  context: {{cluster: c, user: u, namespace: {here}}}\n\
             - name: there\n  context: {{cluster: c, user: u, namespace: {there}}}\n"
        ),
    )
    .expect("write kubeconfig");
    let with_kubeconfig = [("KUBECONFIG", kubeconfig.as_os_str())];

    // Without -n or NAMESPACE/, the current context's namespace is used...
    let name = tokenctl(
        &env,
        &[
            "issue",
            &sa,
            "--create-sa",
            "--duration",
            "1h",
            "-o",
            "name",
        ],
        "",
        &with_kubeconfig,
    )
    .await
    .ok("issue SA with $KUBECONFIG");
    let token_id = name
        .trim()
        .strip_prefix("token/")
        .expect("token/ID")
        .to_owned();
    assert!(token_id.starts_with(&format!("{here}.")), "{token_id}");
    let listed = tokenctl(&env, &["list", "-o", "name"], "", &with_kubeconfig)
        .await
        .ok("list with $KUBECONFIG");
    assert_eq!(listed.trim(), format!("token/{token_id}"));

    // ...--context picks another context's, -n overrides both, --kubeconfig names the file.
    let kc = kubeconfig.to_str().expect("utf-8 path");
    let other = tokenctl(
        &env,
        &[
            "list",
            "--kubeconfig",
            kc,
            "--context",
            "there",
            "-o",
            "name",
        ],
        "",
        &[],
    )
    .await
    .ok("list --context there");
    assert_eq!(other, "", "nothing was issued in {there}");
    let explicit = tokenctl(
        &env,
        &["list", "-n", &there, "-o", "name"],
        "",
        &with_kubeconfig,
    )
    .await
    .ok("list -n");
    assert_eq!(explicit, "");
    let missing_context = tokenctl(
        &env,
        &["list", "--kubeconfig", kc, "--context", "nowhere"],
        "",
        &[],
    )
    .await;
    assert_eq!(missing_context.code, Some(1), "{}", missing_context.stderr);
    assert!(
        missing_context.stderr.contains("nowhere"),
        "{}",
        missing_context.stderr
    );

    // The kubeconfig subcommand defaults the same way.
    let written = tokenctl(
        &env,
        &["kubeconfig", &sa, "--duration", "1h"],
        "",
        &with_kubeconfig,
    )
    .await
    .ok("kubeconfig SA with $KUBECONFIG");
    let parsed: Value = serde_yaml::from_str(&written).expect("YAML");
    assert_eq!(
        parsed["contexts"][0]["context"]["namespace"].as_str(),
        Some(here.as_str())
    );

    // -n and a different NAMESPACE/ together are a usage error, before anything is sent.
    let conflict = tokenctl(
        &env,
        &["issue", &format!("{there}/{sa}"), "-n", &here],
        "",
        &with_kubeconfig,
    )
    .await;
    assert_eq!(conflict.code, Some(2), "{}", conflict.stderr);
    assert!(
        conflict.stderr.contains(&here) && conflict.stderr.contains(&there),
        "{}",
        conflict.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_runs_tokenctl_as_its_tokend_plugin() {
    const TEST: &str = "tokenctl::kubectl_runs_tokenctl_as_its_tokend_plugin";
    let Some(kubectl) = common::find_on_path("kubectl") else {
        common::skip(
            TEST,
            common::SkipKind::MissingTool,
            "kubectl is not on PATH",
        );
        return;
    };
    let env = common::start().await;
    let ns = env.fresh_namespace().await;
    let sa = unique_name("plugin");
    // Installed as the README says: a link named kubectl-tokend on PATH.
    let bin = tempfile::tempdir().expect("temp dir");
    std::os::unix::fs::symlink(tokenctl_path(), bin.path().join("kubectl-tokend"))
        .expect("link kubectl-tokend");
    let path = std::env::join_paths(std::iter::once(bin.path().to_path_buf()).chain(
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()),
    ))
    .expect("PATH");
    let kubectl_tokend = |args: Vec<String>| {
        let mut command = tokio::process::Command::new(&kubectl);
        command
            .arg("tokend")
            .args(args)
            .env("PATH", &path)
            .env_remove("KUBECONFIG")
            .env_remove("TOKEND_ADDR")
            .env_remove("TOKEND_TOKEN")
            .env_remove("TOKEND_TOKEN_FILE")
            .kill_on_drop(true);
        async move { Run::from(command.output().await.expect("kubectl runs")) }
    };
    let s = |v: &[&str]| v.iter().map(|a| (*a).to_owned()).collect::<Vec<_>>();

    // kubectl finds the plugin and passes every argument through...
    let name = kubectl_tokend(s(&[
        "--addr",
        &env.endpoint,
        "issue",
        &sa,
        "-n",
        &ns,
        "--create-sa",
        "-o",
        "name",
    ]))
    .await
    .ok("kubectl tokend issue");
    let token_id = name
        .trim()
        .strip_prefix("token/")
        .expect("token/ID")
        .to_owned();
    let owner = kubectl_tokend(s(&[
        "--addr",
        &env.endpoint,
        "get",
        &token_id,
        "-o",
        "jsonpath={.token.serviceAccount}",
    ]))
    .await
    .ok("kubectl tokend get");
    assert_eq!(owner, sa);

    // ...and tokenctl's exit codes come back through kubectl unchanged.
    let (id_namespace, random) = token_id.split_once('.').expect("NAMESPACE.ID");
    let never_issued = format!("{id_namespace}.{}", "0".repeat(random.len()));
    let missing = kubectl_tokend(s(&["--addr", &env.endpoint, "get", &never_issued])).await;
    assert_eq!(missing.code, Some(4), "{}", missing.stderr);
    let usage = kubectl_tokend(s(&["list", "--bogus"])).await;
    assert_eq!(usage.code, Some(2), "{}", usage.stderr);
    assert!(
        usage.stderr.contains("kubectl tokend list"),
        "{}",
        usage.stderr
    );

    // Its help names it as kubectl users type it.
    let help = kubectl_tokend(s(&["--help"]))
        .await
        .ok("kubectl tokend --help");
    assert!(help.contains("Usage: kubectl tokend"), "{help}");
}

/// Where a test asks tokenctl to write a secret file: over an existing world-readable file, or
/// over a symlink to someone else's file (the victim). Both are what a careless setup or a
/// hostile one leaves at the path.
enum Planted {
    WorldReadableFile,
    SymlinkToVictim,
}

/// The file tokenctl is to write, and the victim file a symlink at it points to.
struct SecretTarget {
    _dir: tempfile::TempDir,
    path: PathBuf,
    victim: PathBuf,
}

const VICTIM_TEXT: &str = "the victim's own contents\n";

impl SecretTarget {
    fn plant(planted: &Planted, existing: &str) -> Self {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("out");
        let victim = dir.path().join("victim");
        std::fs::write(&victim, VICTIM_TEXT).expect("write victim");
        std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        match planted {
            Planted::WorldReadableFile => {
                std::fs::write(&path, existing).expect("write existing file");
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644))
                    .expect("chmod");
            }
            Planted::SymlinkToVictim => {
                std::fs::write(&victim, existing).expect("write victim");
                std::os::unix::fs::symlink(&victim, &path).expect("plant symlink");
            }
        }
        Self {
            _dir: dir,
            path,
            victim,
        }
    }

    fn arg(&self) -> &str {
        self.path.to_str().expect("utf-8 path")
    }

    /// The written file is a regular file of mode 0600 holding `secret`, and, when a symlink was
    /// planted, the file it pointed to still holds exactly what it held.
    fn assert_private(&self, planted: &Planted, victim_before: &str, secret: &str, what: &str) {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::symlink_metadata(&self.path).expect("the written file");
        assert!(meta.is_file(), "{what}: a regular file, not a symlink");
        assert_eq!(
            meta.permissions().mode() & 0o777,
            0o600,
            "{what}: the file holds a secret, so it is the owner's alone"
        );
        let text = std::fs::read_to_string(&self.path).expect("read the written file");
        assert!(text.contains(secret), "{what}: the secret is in the file");
        if let Planted::SymlinkToVictim = planted {
            let victim = std::fs::read_to_string(&self.victim).expect("read the victim");
            assert_eq!(
                victim, victim_before,
                "{what}: the symlink's target is untouched"
            );
            assert!(!victim.contains(secret), "{what}: no secret in the victim");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_files_are_private_and_never_written_through_an_existing_file_or_symlink() {
    // Bootstrap tokens and client certificates are switched on, as an operator would for them.
    let env = common::start_with_node_credentials(&[]).await;
    let client = env.client().await;
    let ns = env.fresh_namespace().await;
    let sa = unique_name("ctl");
    let target = format!("{ns}/{sa}");
    for planted in [Planted::WorldReadableFile, Planted::SymlinkToVictim] {
        // bootstrap create --kubeconfig-out: the kubeconfig holds the bootstrap token.
        let out = SecretTarget::plant(&planted, VICTIM_TEXT);
        let said = tokenctl(
            &env,
            &[
                "bootstrap",
                "create",
                "--duration",
                "1h",
                "--kubeconfig-out",
                out.arg(),
                "-o",
                "json",
            ],
            "",
            &[],
        )
        .await
        .ok("bootstrap create --kubeconfig-out");
        let issued: serde_json::Value = serde_json::from_str(&said).expect("JSON");
        let token = issued["token"].as_str().expect("token").to_owned();
        let token_id = issued["tokenId"].as_str().expect("tokenId").to_owned();
        client
            .revoke_bootstrap_token(tokend_client::v1::RevokeBootstrapTokenRequest { token_id })
            .await
            .expect("revoke the bootstrap token");
        out.assert_private(&planted, VICTIM_TEXT, &token, "bootstrap --kubeconfig-out");

        // kubeconfig --client-cert -f: the kubeconfig holds the private key.
        let out = SecretTarget::plant(&planted, VICTIM_TEXT);
        let user = unique_name("alice");
        tokenctl(
            &env,
            &[
                "kubeconfig",
                "--client-cert",
                &user,
                "--duration",
                "10m",
                "-f",
                out.arg(),
            ],
            "",
            &[],
        )
        .await
        .ok("kubeconfig --client-cert -f");
        out.assert_private(
            &planted,
            VICTIM_TEXT,
            "client-key-data",
            "kubeconfig --client-cert -f",
        );

        // kubeconfig --merge: the merged kubeconfig holds the token; an existing kubeconfig is
        // merged (read through a symlink, as kubectl reads it), the result replaces the link.
        let out = SecretTarget::plant(&planted, EXISTING_KUBECONFIG);
        let context = unique_name("ctx");
        tokenctl(
            &env,
            &[
                "kubeconfig",
                &target,
                "--create-sa",
                "--duration",
                "1h",
                "--context",
                &context,
                "--merge",
                "--kubeconfig",
                out.arg(),
            ],
            "",
            &[],
        )
        .await
        .ok("kubeconfig --merge");
        let merged: Value =
            serde_yaml::from_str(&std::fs::read_to_string(&out.path).expect("read")).expect("YAML");
        assert_eq!(
            names(&merged, "contexts"),
            ["prod".to_owned(), "staging".to_owned(), context.clone()],
            "the existing kubeconfig was merged"
        );
        out.assert_private(
            &planted,
            EXISTING_KUBECONFIG,
            &context,
            "kubeconfig --merge",
        );
    }
}
