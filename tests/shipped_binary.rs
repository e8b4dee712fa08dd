//! The binary the image ships (`cargo build -p tokend --no-default-features`, as the Dockerfile
//! builds it) links no test code (no Kubernetes API emulator, no certificate generator, no CLI),
//! says what it is (`--version`), and stops at start, saying what to create, without its own
//! namespace.

use tokend_test_support as common;

use std::process::Command;
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;

#[test]
fn the_image_build_links_neither_the_emulator_nor_rcgen_nor_the_cli() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "tree",
            "--locked",
            "--offline",
            "-e",
            "normal",
            "-p",
            "tokend",
            "--no-default-features",
            "--prefix",
            "none",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run cargo tree");
    assert!(
        out.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tree = String::from_utf8_lossy(&out.stdout);
    assert!(tree.contains("tokend-api"), "the tree is tokend's: {tree}");
    for forbidden in ["kube-emulator", "rcgen", "clap_complete", "tokend-client"] {
        assert!(
            !tree
                .lines()
                .any(|l| l.starts_with(&format!("{forbidden} "))),
            "the shipped binary depends on {forbidden}"
        );
    }
}

#[test]
fn the_dockerfile_builds_without_the_dev_feature() {
    let dockerfile = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Dockerfile"))
        .expect("read Dockerfile");
    assert!(
        dockerfile.contains("cargo build --release --locked -p tokend --no-default-features"),
        "the image must be built without `tokend dev`"
    );
}

#[test]
fn version_says_which_commit_compiler_and_profile_built_the_binary() {
    let out = Command::new(env!("CARGO_BIN_EXE_tokend"))
        .arg("--version")
        .output()
        .expect("run tokend --version");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let line = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key).map(str::trim))
            .unwrap_or_else(|| panic!("no `{key}` line in: {text}"))
            .to_owned()
    };
    assert_eq!(
        text.lines().next(),
        Some(concat!("tokend ", env!("CARGO_PKG_VERSION"))),
        "{text}"
    );
    // Named by the builder (CI and the Dockerfile pass TOKEND_BUILD_COMMIT), else `unknown`.
    let commit = line("commit:");
    assert!(
        commit == "unknown" || (commit.len() >= 7 && commit.bytes().all(|b| b.is_ascii_hexdigit())),
        "{commit}"
    );
    assert!(line("rustc:").starts_with("rustc 1."), "{text}");
    assert_eq!(line("profile:"), "debug");
    assert!(!line("target:").is_empty());
}

#[tokio::test]
async fn a_missing_lease_namespace_stops_tokend_at_start_saying_what_to_create() {
    // Given a cluster without the namespace --lease-namespace names.
    let env = common::start().await;
    let missing = common::unique_name("no-such-namespace");
    let port = {
        let probe = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        probe.local_addr().expect("addr").port()
    };

    // When `tokend serve` starts against it, as a new user would start it...
    let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_tokend"))
        .args(["serve", "--sweep-interval", "0"])
        .args(["--lease-namespace", &missing])
        .arg("--kubeconfig")
        .arg(&env.admin_kubeconfig)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env_remove("TOKEND_LEASE_NAMESPACE")
        .env("RUST_LOG", "info")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    // (A generous bound for a busy machine: without the check it serves until killed.)
    let output = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("tokend stops by itself instead of serving")
        .expect("tokend runs");

    // Then it exits non-zero, naming the flag, the namespace and what to create.
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "a failure exit: {stderr}");
    assert!(
        stderr.contains("--lease-namespace")
            && stderr.contains(&missing)
            && stderr.contains(&format!("kubectl create namespace {missing}")),
        "the message says what is wrong and what to do: {stderr}"
    );
    // And it made nothing: not the namespace, nor anything in it.
    let namespace = kube::Api::<Namespace>::all(env.kube.clone())
        .get_opt(&missing)
        .await
        .expect("read namespaces");
    assert!(namespace.is_none(), "tokend created no namespace");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_api_down_at_start_tokend_waits_unready_then_stops_on_a_missing_lease_namespace() {
    use base64::Engine as _;
    use tonic_health::pb::health_check_response::ServingStatus;
    // Given the API server reached through a proxy that is down, and a --lease-namespace that
    // does not exist.
    let env = common::start().await;
    let missing = common::unique_name("no-such-namespace");
    let upstream = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::read_from(&env.admin_kubeconfig).expect("admin kubeconfig"),
        &kube::config::KubeConfigOptions::default(),
    )
    .await
    .expect("admin config");
    let proxy = common::FaultProxy::start(&upstream).await.expect("proxy");
    proxy.faults().set_down(true);
    let mut kubeconfig =
        kube::config::Kubeconfig::read_from(&env.admin_kubeconfig).expect("admin kubeconfig");
    for named in &mut kubeconfig.clusters {
        if let Some(cluster) = named.cluster.as_mut() {
            cluster.server = Some(proxy.url().to_owned());
            cluster.certificate_authority = None;
            cluster.certificate_authority_data =
                Some(base64::engine::general_purpose::STANDARD.encode(proxy.ca_pem().as_bytes()));
            cluster.insecure_skip_tls_verify = None;
            cluster.tls_server_name = None;
        }
    }
    let dir = tempfile::tempdir().expect("dir");
    let proxied = dir.path().join("kubeconfig");
    std::fs::write(
        &proxied,
        serde_yaml::to_string(&kubeconfig).expect("render kubeconfig"),
    )
    .expect("write kubeconfig");
    let port = {
        let probe = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        probe.local_addr().expect("addr").port()
    };
    let endpoint = format!("http://127.0.0.1:{port}");
    let mut server = tokio::process::Command::new(env!("CARGO_BIN_EXE_tokend"))
        .args(["serve", "--auth", "none", "--insecure-no-auth"])
        .args(["--sweep-interval", "0", "--health-interval", "1s"])
        .args(["--kube-timeout", "2s", "--lease-namespace", &missing])
        .arg("--kubeconfig")
        .arg(&proxied)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env_remove("TOKEND_LEASE_NAMESPACE")
        .env("RUST_LOG", "info")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start tokend");

    // Then it starts and answers, not ready; a request is UNAVAILABLE, never INTERNAL.
    let status = common::eventually_some("tokend answers health checks", || async {
        let Ok(channel) = tonic::transport::Endpoint::from_shared(endpoint.clone())
            .expect("endpoint")
            .connect()
            .await
        else {
            return Ok(None);
        };
        let answer = tonic_health::pb::health_client::HealthClient::new(channel)
            .check(tonic_health::pb::HealthCheckRequest::default())
            .await;
        Ok(answer.ok().map(|a| a.into_inner().status))
    })
    .await
    .expect("tokend serves health while the API is down");
    assert_eq!(status, ServingStatus::NotServing as i32, "not ready");
    let client = tokend_client::TokendClient::connect(endpoint.clone())
        .await
        .expect("connect");
    let refused = client
        .issue_token(common::issue("default", "nobody"))
        .await
        .expect_err("nothing can be issued while the API is down");
    assert_eq!(refused.code(), tonic::Code::Unavailable, "{refused:?}");
    assert!(
        server.try_wait().expect("poll tokend").is_none(),
        "tokend keeps running while the API server cannot be asked"
    );

    // When the API server answers, tokend finds the namespace missing and stops, saying so.
    proxy.faults().set_down(false);
    let output = tokio::time::timeout(Duration::from_secs(60), server.wait_with_output())
        .await
        .expect("tokend stops by itself once the API answers")
        .expect("tokend runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "a failure exit: {stderr}");
    assert!(
        stderr.contains("--lease-namespace")
            && stderr.contains(&format!("kubectl create namespace {missing}")),
        "{stderr}"
    );
    let namespace = kube::Api::<Namespace>::all(env.kube.clone())
        .get_opt(&missing)
        .await
        .expect("read namespaces");
    assert!(namespace.is_none(), "tokend created no namespace");
}
