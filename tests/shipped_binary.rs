//! The binary the image ships (`cargo build -p tokend --no-default-features`, as the Dockerfile
//! builds it) links no test code: no Kubernetes API emulator, no certificate generator, no CLI.

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
