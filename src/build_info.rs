//! What this binary is: version, commit, compiler, target and profile, as `build.rs` recorded
//! them (shown by `tokend --version` and exported as `tokend_build_info`).

/// The crate version, e.g. `0.1.0`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The commit built (`TOKEND_BUILD_COMMIT` at build time), or `unknown`.
pub const COMMIT: &str = env!("TOKEND_BUILD_COMMIT");
/// `rustc --version` of the compiler that built it.
pub const RUSTC: &str = env!("TOKEND_BUILD_RUSTC");
/// The target triple, e.g. `x86_64-unknown-linux-gnu`.
pub const TARGET: &str = env!("TOKEND_BUILD_TARGET");
/// Cargo's profile: `debug` or `release`.
pub const PROFILE: &str = env!("TOKEND_BUILD_PROFILE");
/// `dev` when the binary holds `tokend dev` and the emulator, `server` otherwise.
pub const FLAVOUR: &str = if cfg!(feature = "dev") {
    "dev"
} else {
    "server"
};

/// The text after `tokend ` in `tokend --version`.
pub const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    "\ncommit:  ",
    env!("TOKEND_BUILD_COMMIT"),
    "\nrustc:   ",
    env!("TOKEND_BUILD_RUSTC"),
    "\ntarget:  ",
    env!("TOKEND_BUILD_TARGET"),
    "\nprofile: ",
    env!("TOKEND_BUILD_PROFILE"),
);
