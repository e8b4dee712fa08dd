//! tokenctl as a process without a server: help and the man page, usage errors (exit 2), an
//! unreachable server (exit 3), local errors (exit 1), and the binary run as `kubectl-tokend`.
//!
//! These also make `cargo test --workspace` build the `tokenctl` binary that the workspace's
//! black-box tests (tests/tokenctl.rs) run against a live tokend.

use std::io::Write;
use std::process::{Command, Output, Stdio};

/// Runs tokenctl with `args` and `stdin`, with no TOKEND_* settings inherited.
fn tokenctl(args: &[&str], stdin: &str) -> Output {
    run(Command::new(env!("CARGO_BIN_EXE_tokenctl")), args, stdin)
}

/// Runs `program` with `args` and `stdin`, with no TOKEND_* or KUBECONFIG settings inherited.
fn run(mut program: Command, args: &[&str], stdin: &str) -> Output {
    let mut child = program
        .args(args)
        .env_remove("TOKEND_TOKEN")
        .env_remove("KUBECONFIG")
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
        vec!["issue", "a/b/c"],
        vec!["--addr", "not a uri", "get", "x"],
        vec!["list", "-o", "wide"],
        vec!["list", "-o", "jsonpath={.tokens"],
        vec!["get", "x", "-o", "table"],
        vec!["validate", "-o", "name"],
        vec!["list", "a", "b", "c"],
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
fn a_namespace_given_twice_differently_is_a_usage_error_naming_both() {
    for args in [
        vec!["list", "-n", "team-b", "team-a/ci"],
        vec!["list", "-n", "team-b", "team-a", "ci"],
        vec!["issue", "team-a/ci", "--namespace", "team-b"],
        vec!["kubeconfig", "team-a/ci", "-n", "team-b"],
    ] {
        let output = tokenctl(&args, "");
        let message = stderr(&output);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {message}");
        assert!(
            message.starts_with("error: ")
                && message.contains("team-a")
                && message.contains("team-b"),
            "{args:?}: {message}"
        );
    }
}

#[test]
fn unreachable_server_exits_3_with_the_grpc_code() {
    let addr = closed_address();
    let output = tokenctl(&["--addr", &addr, "list", "team-a"], "");
    assert_eq!(output.status.code(), Some(3));
    let message = stderr(&output);
    assert!(message.starts_with("error: UNAVAILABLE: "), "{message}");
    assert!(message.contains(&addr), "{message}");
    assert!(stdout(&output).is_empty());
}

#[test]
fn validate_that_cannot_ask_is_not_token_invalid() {
    // "Could not ask" (3) is not "the token is invalid" (6), so a script can tell them apart.
    let output = tokenctl(&["--addr", &closed_address(), "validate"], "a.b.c\n");
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    assert!(stdout(&output).is_empty());
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
    // A local file problem, not the server's verdict: exit 1, not 5.
    assert_eq!(output.status.code(), Some(1));
    let message = stderr(&output);
    assert!(
        message.starts_with("error: cannot use the bearer token from /nonexistent/tokend-token"),
        "{message}"
    );
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

#[test]
fn help_lists_the_exit_codes() {
    let text = stdout(&tokenctl(&["--help"], ""));
    let codes = text
        .split("Exit codes:")
        .nth(1)
        .unwrap_or_else(|| panic!("no exit codes in:\n{text}"));
    for (code, words) in [
        ("0", "success"),
        ("2", "usage"),
        ("3", "unreachable"),
        ("4", "NOT_FOUND"),
        ("5", "PERMISSION_DENIED or UNAUTHENTICATED"),
        ("6", "not valid"),
    ] {
        assert!(
            codes
                .lines()
                .any(|line| line.trim_start().starts_with(&format!("{code} "))
                    && line.contains(words)),
            "exit code {code} ({words}) missing from:\n{codes}"
        );
    }
}

#[test]
fn man_page_renders_with_every_subcommand_and_the_exit_codes() {
    let output = tokenctl(&["man"], "");
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let page = stdout(&output);
    assert!(page.contains(".TH tokenctl 1"), "{page}");
    for section in [
        ".SH SYNOPSIS",
        ".SH OPTIONS",
        ".SH SUBCOMMANDS",
        ".SH ENVIRONMENT",
        ".SH \"EXIT STATUS\"",
    ] {
        assert!(page.contains(section), "{section} missing");
    }
    for subcommand in ["issue", "kubeconfig", "revoke", "validate", "list", "get"] {
        assert!(
            page.contains(&format!("tokenctl\\-{subcommand}")),
            "{subcommand} missing"
        );
    }
    assert!(page.contains("TOKEND_TOKEN"));
    // Each subcommand has a page of its own, with the global connection flags.
    let issue = stdout(&tokenctl(&["man", "issue"], ""));
    assert!(issue.contains(".TH tokenctl-issue 1"), "{issue}");
    assert!(
        issue.contains("\\-\\-namespace") && issue.contains("\\-\\-addr"),
        "{issue}"
    );
    assert_eq!(tokenctl(&["man", "frobnicate"], "").status.code(), Some(2));
    // When a roff formatter is installed, the page formats without warnings.
    let Some(nroff) = ["/usr/bin/nroff", "/usr/local/bin/nroff"]
        .into_iter()
        .find(|p| std::path::Path::new(p).is_file())
    else {
        eprintln!("nroff is not installed: the page was checked as text only");
        return;
    };
    let mut formatter = Command::new(nroff);
    formatter.args(["-man", "-ww"]);
    let rendered = run(formatter, &[], &page);
    assert!(rendered.status.success(), "{}", stderr(&rendered));
    assert!(
        stderr(&rendered).trim().is_empty(),
        "nroff warned: {}",
        stderr(&rendered)
    );
}

#[test]
fn as_kubectl_tokend_it_names_itself_kubectl_tokend() {
    let dir = tempfile::tempdir().expect("temp dir");
    let plugin = dir.path().join("kubectl-tokend");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_tokenctl"), &plugin).expect("symlink");
    let help = run(Command::new(&plugin), &["--help"], "");
    assert_eq!(help.status.code(), Some(0));
    assert!(
        stdout(&help).contains("Usage: kubectl tokend [OPTIONS] <COMMAND>"),
        "{}",
        stdout(&help)
    );
    let misuse = run(Command::new(&plugin), &["list", "--bogus"], "");
    assert_eq!(misuse.status.code(), Some(2));
    assert!(
        stderr(&misuse).contains("Usage: kubectl tokend list"),
        "{}",
        stderr(&misuse)
    );
}
