//! tokenctl's node and component credentials, run as a user runs them: `bootstrap create
//! --print-join-command`, `bootstrap list`, `bootstrap revoke`, and `kubeconfig --client-cert`
//! (the key made locally) used by kubectl. Against the emulator or, unchanged, a real plane.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokend_test_support as common;

use common::{TestEnv, unique_name};
use k8s_openapi::api::rbac::v1::{PolicyRule, Subject};

fn tokenctl_path() -> PathBuf {
    if let Some(path) = std::env::var_os("TOKENCTL_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("the test's own path");
    let path = exe
        .parent()
        .and_then(Path::parent)
        .expect("tests run from target/<profile>/deps")
        .join(format!("tokenctl{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.is_file(),
        "{} is not built: `cargo build -p tokend-client` first",
        path.display()
    );
    path
}

/// Runs tokenctl against `env`; answers (exit code, stdout, stderr).
async fn tokenctl(env: &TestEnv, args: &[&str]) -> (Option<i32>, String, String) {
    let out = tokio::process::Command::new(tokenctl_path())
        .arg("--addr")
        .arg(&env.endpoint)
        .args(args)
        .env_remove("TOKEND_ADDR")
        .env_remove("TOKEND_TOKEN_FILE")
        .env_remove("KUBECONFIG")
        .stdin(Stdio::null())
        .output()
        .await
        .expect("tokenctl runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bootstrap_create_prints_a_join_command_then_list_and_revoke() {
    let env = common::start_with_node_credentials(&[]).await;
    // When a bootstrap token is created with --print-join-command.
    let (code, join, err) = tokenctl(&env, &["bootstrap", "create", "--print-join-command"]).await;
    assert_eq!(code, Some(0), "{err}");
    // Then it is kubeadm's line: server host:port, the token, the CA's public-key hash.
    let words: Vec<&str> = join.split_whitespace().collect();
    assert_eq!(&words[..2], ["kubeadm", "join"], "{join}");
    let server = env.cluster().url();
    assert_eq!(words[2], server.trim_start_matches("https://"));
    assert_eq!(words[3], "--token");
    let token = words[4];
    let (id, secret) = token.split_once('.').expect("<id>.<secret>");
    assert_eq!(words[5], "--discovery-token-ca-cert-hash");
    assert!(
        words[6].starts_with("sha256:") && words[6].len() == 71,
        "{join}"
    );

    // And list shows it (never the secret); revoke deletes it.
    let (code, listed, err) = tokenctl(&env, &["bootstrap", "list"]).await;
    assert_eq!(code, Some(0), "{err}");
    assert!(
        listed.lines().any(|l| l.starts_with(&format!("{id}\t"))),
        "{listed}"
    );
    assert!(!listed.contains(secret), "the list leaks the secret");
    let (code, _, err) = tokenctl(&env, &["bootstrap", "revoke", id]).await;
    assert_eq!(code, Some(0), "{err}");
    let (code, _, err) = tokenctl(&env, &["bootstrap", "revoke", id]).await;
    assert_eq!(code, Some(4), "NOT_FOUND has its own exit code: {err}");
    assert!(
        err.contains("NotFound") || err.contains("not found"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubeconfig_client_cert_makes_the_key_locally_and_works_with_kubectl() {
    if common::find_on_path("kubectl").is_none() {
        common::skip(
            "kubeconfig_client_cert_makes_the_key_locally_and_works_with_kubectl",
            common::SkipKind::MissingTool,
            "kubectl is not on PATH",
        );
        return;
    }
    let env = common::start_with_node_credentials(&[]).await;
    let ns = env.fresh_namespace().await;
    let user = unique_name("carol");
    let group = unique_name("ops");
    common::grant(
        &env,
        &ns,
        Subject {
            kind: "Group".into(),
            name: group.clone(),
            api_group: Some("rbac.authorization.k8s.io".into()),
            ..Default::default()
        },
        vec![PolicyRule {
            api_groups: Some(vec![String::new()]),
            resources: Some(vec!["configmaps".into()]),
            verbs: vec!["list".into()],
            ..Default::default()
        }],
    )
    .await;
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("carol.kubeconfig");
    let (code, _, err) = tokenctl(
        &env,
        &[
            "kubeconfig",
            "--client-cert",
            &user,
            "--group",
            &group,
            "--duration",
            "15m",
            "-f",
            file.to_str().expect("UTF-8 path"),
        ],
    )
    .await;
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("cannot be revoked"), "{err}");
    let text = std::fs::read_to_string(&file).expect("written");
    assert!(text.contains("client-key-data") && text.contains("client-certificate-data"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&file).expect("meta").permissions().mode();
        assert_eq!(mode & 0o077, 0, "the key file is private");
    }
    let flag = format!("--kubeconfig={}", file.display());
    common::eventually(
        "kubectl lists configmaps as the certificate's group",
        || async {
            tokio::process::Command::new("kubectl")
                .args([flag.as_str(), "get", "configmaps", "-n", ns.as_str()])
                .output()
                .await
                .is_ok_and(|o| o.status.success())
        },
    )
    .await;
}
