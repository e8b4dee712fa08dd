//! A Python client generated in the test from proto/ with grpcio-tools, as a Python team would
//! make one: it issues a token with a google.protobuf.Duration, branches on ErrorInfo.reason of a
//! bad request (never on the message), and lists the services through reflection.
//!
//! The packages (grpcio, grpcio-tools, grpcio-status, grpcio-reflection,
//! googleapis-common-protos) live in a virtualenv under target/ that scripts/test installs; the
//! test makes it itself when missing, and records a counted skip when pip cannot.

use tokend_test_support as common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{SkipKind, skip};

/// The packages the Python client needs, pinned to a major series that has the reflection and
/// status helpers used here.
const PACKAGES: &[&str] = &[
    "grpcio>=1.60,<2",
    "grpcio-tools>=1.60,<2",
    "grpcio-status>=1.60,<2",
    "grpcio-reflection>=1.60,<2",
    "googleapis-common-protos>=1.60,<2",
];

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The virtualenv's python with the packages importable, or why there is none.
fn python() -> Result<PathBuf, String> {
    let venv = repo().join("target/python-client");
    let python = venv.join("bin/python");
    let ready = |python: &Path| {
        Command::new(python)
            .args([
                "-c",
                "import grpc, grpc_tools, grpc_status, grpc_reflection, google.rpc",
            ])
            .status()
            .is_ok_and(|s| s.success())
    };
    if python.exists() && ready(&python) {
        return Ok(python);
    }
    let system = common::find_on_path("python3").ok_or("python3 is not installed")?;
    let made = Command::new(system)
        .args(["-m", "venv"])
        .arg(&venv)
        .status()
        .map_err(|e| format!("python3 -m venv: {e}"))?;
    if !made.success() {
        return Err("python3 -m venv failed (is python3-venv installed?)".into());
    }
    let pip = Command::new(&python)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ])
        .args(PACKAGES)
        .status()
        .map_err(|e| format!("pip: {e}"))?;
    if !pip.success() || !ready(&python) {
        return Err(format!("pip could not install {}", PACKAGES.join(" ")));
    }
    Ok(python)
}

// Runs external processes synchronously: a second worker keeps the in-process servers going.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_client_generated_from_the_proto_issues_and_reads_error_reasons() {
    let test = "a_python_client_generated_from_the_proto_issues_and_reads_error_reasons";
    let python = match python() {
        Ok(python) => python,
        Err(why) => {
            skip(test, SkipKind::MissingTool, &why);
            return;
        }
    };
    let env = common::start().await;
    let ns = env.fresh_namespace().await;

    // Given Python code generated from proto/ as a Python team would generate it.
    let generated = tempfile::tempdir().expect("a directory for the generated code");
    let protos: Vec<PathBuf> = std::fs::read_dir(repo().join("proto/tokend/v1"))
        .expect("proto/tokend/v1")
        .map(|entry| entry.expect("a proto file").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "proto"))
        .collect();
    let protoc = Command::new(&python)
        .args(["-m", "grpc_tools.protoc", "-I"])
        .arg(repo().join("proto"))
        .arg(format!("--python_out={}", generated.path().display()))
        .arg(format!("--grpc_python_out={}", generated.path().display()))
        .args(&protos)
        .output()
        .expect("run grpc_tools.protoc");
    assert!(
        protoc.status.success(),
        "grpc_tools.protoc: {}",
        String::from_utf8_lossy(&protoc.stderr)
    );

    // When the Python client talks to tokend.
    let out = Command::new(&python)
        .arg(repo().join("tests/python/tokend_client.py"))
        .arg(&env.addr)
        .arg(&ns)
        .env("PYTHONPATH", generated.path())
        .output()
        .expect("run the Python client");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the Python client failed: {}{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: serde_json::Value =
        serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"));

    // Then it issued a two-hour token with a Duration, and was told so as a Duration.
    assert_eq!(seen["token_present"], true, "{seen}");
    let granted = seen["granted_seconds"].as_i64().unwrap_or_default();
    assert!((7195..=7200).contains(&granted), "{seen}");
    // It branched on the reason of the bad request, and saw every bad field with its own.
    assert_eq!(seen["bad_code"], "INVALID_ARGUMENT", "{seen}");
    assert_eq!(seen["bad_domain"], "tokend.io", "{seen}");
    assert_eq!(seen["bad_branch"], "fix the fields", "{seen}");
    assert_eq!(
        seen["violations"],
        serde_json::json!([
            ["namespace", "NAME_INVALID"],
            ["duration", "DURATION_INVALID"],
            ["labels[\"tokend.io/forged\"]", "LABEL_INVALID"]
        ]),
        "{seen}"
    );
    assert_eq!(seen["over_maximum"], 31_536_000, "{seen}");
    // And it found the services by reflection.
    for service in ["tokend.v1.TokenService", "grpc.health.v1.Health"] {
        assert!(
            seen["services"]
                .as_array()
                .is_some_and(|s| s.iter().any(|name| name == service)),
            "{seen}"
        );
    }
}
