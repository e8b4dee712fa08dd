//! tokenctl as a process without a server: help, usage errors (exit 2), local and connection errors (exit 1).
//!
//! These also make `cargo test --workspace` build the `tokenctl` binary that the workspace's
//! black-box tests (tests/tokenctl.rs) run against a live tokend.

use std::io::Write;
use std::process::{Command, Output, Stdio};

/// Runs tokenctl with `args` and `stdin`, with no TOKEND_* settings inherited.
fn tokenctl(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tokenctl"))
        .args(args)
        .env_remove("TOKEND_ADDR")
        .env_remove("TOKEND_TOKEN_FILE")
        .env_remove("TOKEND_CA")
        .env_remove("TOKEND_CERT")
        .env_remove("TOKEND_KEY")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("tokenctl starts");
    if let Some(mut input) = child.stdin.take() {
        input
            .write_all(stdin.as_bytes())
            .expect("stdin is writable");
    }
    child.wait_with_output().expect("tokenctl runs to the end")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// An address where nothing listens: a port bound and released again.
fn closed_address() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    let port = listener.local_addr().expect("bound address").port();
    drop(listener);
    format!("http://127.0.0.1:{port}")
}

#[test]
fn help_shows_examples() {
    let output = tokenctl(&["--help"], "");
    assert_eq!(output.status.code(), Some(0));
    let text = stdout(&output);
    assert!(text.contains("Examples:"), "{text}");
    assert!(
        text.contains("tokenctl issue team-a/ci --duration 2h45m"),
        "{text}"
    );
    for subcommand in [
        "issue",
        "kubeconfig",
        "revoke",
        "validate",
        "list",
        "get",
        "completions",
    ] {
        assert!(
            text.contains(subcommand),
            "{subcommand} missing from:\n{text}"
        );
    }
    let issue_help = stdout(&tokenctl(&["issue", "--help"], ""));
    assert!(issue_help.contains("Examples:"), "{issue_help}");
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        vec!["issue", "no-slash"],
        vec!["issue", "ns/sa", "--duration", "1.5h"],
        vec!["issue", "ns/sa", "--scope", "cluster"],
        vec!["kubeconfig", "ns/sa", "--use"],
        vec!["revoke"],
        vec!["validate", "--token", "abc"],
        vec!["frobnicate"],
    ] {
        let output = tokenctl(&args, "");
        assert_eq!(
            output.status.code(),
            Some(2),
            "{args:?}: {}",
            stderr(&output)
        );
        assert!(
            stderr(&output).starts_with("error: "),
            "{args:?}: {}",
            stderr(&output)
        );
    }
}

#[test]
fn unreachable_server_exits_1_with_the_grpc_code() {
    let addr = closed_address();
    let output = tokenctl(&["--addr", &addr, "list", "team-a"], "");
    assert_eq!(output.status.code(), Some(1));
    let message = stderr(&output);
    assert!(message.starts_with("error: UNAVAILABLE: "), "{message}");
    assert!(message.contains(&addr), "{message}");
    assert!(stdout(&output).is_empty());
}

#[test]
fn bad_address_exits_1() {
    let output = tokenctl(&["--addr", "not a uri", "get", "x"], "");
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).starts_with("error: INVALID_ARGUMENT: "),
        "{}",
        stderr(&output)
    );
}

#[test]
fn validate_without_a_token_on_stdin_fails_before_connecting() {
    let output = tokenctl(&["--addr", &closed_address(), "validate"], "\n");
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(stderr(&output).trim(), "error: no token in stdin");
}

#[test]
fn missing_token_file_is_reported() {
    let output = tokenctl(
        &["--token-file", "/nonexistent/tokend-token", "list", "ns"],
        "",
    );
    assert_eq!(output.status.code(), Some(1));
    let message = stderr(&output);
    assert!(message.starts_with("error: UNAUTHENTICATED: "), "{message}");
    assert!(message.contains("/nonexistent/tokend-token"), "{message}");
}

#[test]
fn unset_token_env_is_reported() {
    let output = tokenctl(
        &["--token-env", "TOKENCTL_TEST_SURELY_UNSET", "list", "ns"],
        "",
    );
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("TOKENCTL_TEST_SURELY_UNSET"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn completions_are_generated_for_each_shell() {
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let output = tokenctl(&["completions", shell], "");
        assert_eq!(
            output.status.code(),
            Some(0),
            "{shell}: {}",
            stderr(&output)
        );
        assert!(stdout(&output).contains("tokenctl"), "{shell}");
    }
}
