//! The binary the image ships (`cargo build -p tokend --no-default-features`, as the Dockerfile
//! builds it) links no test code: no Kubernetes API emulator, no certificate generator, no CLI.

use std::process::Command;

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
