//! Smoke test of the load generator: a handful of operations in every mode against the embedded
//! emulator, checking that each ran exactly as many times as asked and none failed. No timings.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

/// Runs `tokend-bench` with `args` and `--json`, returning the report.
fn bench(args: &[&str], json: &Path) -> Value {
    let output = Command::new(env!("CARGO_BIN_EXE_tokend-bench"))
        .args(args)
        .arg("--json")
        .arg(json)
        .output()
        .expect("tokend-bench runs");
    assert!(
        output.status.success(),
        "tokend-bench failed\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let text = std::fs::read_to_string(json).expect("JSON report written");
    serde_json::from_str(&text).expect("JSON report parses")
}

/// (series, concurrency, ops, ok, errors) of every measurement.
fn counts(report: &Value) -> Vec<(String, u64, u64, u64, u64)> {
    report["measurements"]
        .as_array()
        .expect("measurements")
        .iter()
        .map(|m| {
            (
                m["series"].as_str().expect("series").to_owned(),
                m["concurrency"].as_u64().expect("concurrency"),
                m["ops"].as_u64().expect("ops"),
                m["ok"].as_u64().expect("ok"),
                m["errors"].as_u64().expect("errors"),
            )
        })
        .collect()
}

#[test]
fn every_mode_runs_the_asked_number_of_issue_revoke_pairs() {
    let dir = tempfile::tempdir().expect("temp dir");
    let json = dir.path().join("report.json");
    let report = bench(
        &[
            "--modes",
            "raw,kubectl,tokend,service",
            "--ops",
            "4",
            "--kubectl-ops",
            "2",
            "--concurrency",
            "1,2",
            "--warmup",
            "1",
            "--workload",
            "issue-revoke",
        ],
        &json,
    );
    let measured = counts(&report);
    let kubectl_skipped = report["skipped"]
        .as_array()
        .expect("skipped")
        .iter()
        .any(|s| s[0] == "kubectl");
    let mut expected = vec!["raw", "tokend", "service"];
    if !kubectl_skipped {
        expected.push("kubectl");
    }
    for series in expected {
        for concurrency in [1, 2] {
            let want_ops = if series == "kubectl" { 2 } else { 4 };
            let found = measured
                .iter()
                .find(|m| m.0 == series && m.1 == concurrency)
                .unwrap_or_else(|| panic!("no {series} run at concurrency {concurrency}"));
            assert_eq!(
                (found.2, found.3, found.4),
                (want_ops, want_ops, 0),
                "{series} at concurrency {concurrency}: (ops, ok, errors)"
            );
        }
    }
    // The floor makes exactly tokend's calls: one of each per issue, one DELETE per revoke.
    let raw_calls = &report["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .find(|r| r["series"] == "raw")
        .expect("raw row")["api_calls_per_op"];
    for call in [
        "GET serviceaccounts",
        "POST secrets",
        "POST serviceaccounts/token",
        "DELETE secrets",
    ] {
        assert_eq!(raw_calls[call].as_f64(), Some(1.0), "{call} per op");
    }
}

#[test]
fn tokend_with_caller_authentication_issues_every_token() {
    let dir = tempfile::tempdir().expect("temp dir");
    let json = dir.path().join("report.json");
    let report = bench(
        &[
            "--modes",
            "tokend",
            "--auth",
            "kubernetes",
            "--ops",
            "3",
            "--concurrency",
            "1",
            "--warmup",
            "0",
        ],
        &json,
    );
    assert_eq!(
        counts(&report),
        vec![("tokend+auth".to_owned(), 1, 3, 3, 0)]
    );
}
