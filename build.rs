//! Build metadata for `tokend --version` and the `tokend_build_info` metric: the compiler, the
//! target, the profile and (when the builder names it) the commit, recorded at compile time so a
//! running binary can say exactly what it is. The proto is compiled once, in `api/`; this script
//! only describes the build.
//!
//! The commit comes from `TOKEND_BUILD_COMMIT` (the Dockerfile's build argument, CI's `git
//! rev-parse HEAD`), not from `.git`: reading `.git` here would rebuild the crate and relink
//! every test binary on each commit, and the image's build context holds no `.git`.

use std::process::Command;

fn main() {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let rustc_version = Command::new(&rustc)
        .arg("--version")
        .output()
        .ok()
        .filter(|out| out.status.success())
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .map(|text| text.trim().to_owned())
        .unwrap_or_else(|| "unknown".into());
    let commit = std::env::var("TOKEND_BUILD_COMMIT")
        .ok()
        .map(|c| c.trim().to_owned())
        .filter(|c| !c.is_empty() && c.len() <= 64 && c.bytes().all(|b| b.is_ascii_hexdigit()))
        .unwrap_or_else(|| "unknown".into());
    let target = std::env::var("TARGET").unwrap_or_else(|_| "unknown".into());
    let profile = std::env::var("PROFILE").unwrap_or_else(|_| "unknown".into());
    println!("cargo:rustc-env=TOKEND_BUILD_RUSTC={rustc_version}");
    println!("cargo:rustc-env=TOKEND_BUILD_COMMIT={commit}");
    println!("cargo:rustc-env=TOKEND_BUILD_TARGET={target}");
    println!("cargo:rustc-env=TOKEND_BUILD_PROFILE={profile}");
    println!("cargo:rerun-if-env-changed=TOKEND_BUILD_COMMIT");
    println!("cargo:rerun-if-changed=build.rs");
}
