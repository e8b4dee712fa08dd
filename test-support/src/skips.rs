//! Counted skips: a test that cannot run on the current backend says why, and the line lands in
//! the file named by `TOKEND_TEST_SKIP_LOG`, which `scripts/test` totals per backend (and fails
//! on when a skip is not one the backend explains).

use std::io::Write as _;

use crate::backend::Backend;

/// File that collects one line per skipped test (`backend<TAB>kind<TAB>test<TAB>reason`).
pub const SKIP_LOG_ENV: &str = "TOKEND_TEST_SKIP_LOG";

/// Why a test does not run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipKind {
    /// It checks the emulator itself (its fault knobs, its own start-up state): a real cluster
    /// has no such thing. The only kind CI accepts on the real backend.
    EmulatorOnly,
    /// A tool it drives is not installed. CI installs every tool, so CI fails on this kind.
    MissingTool,
    /// The emulator does not serve what the test needs yet (work in progress on another
    /// branch); CI fails on this kind, so the skip is removed once the support lands.
    PendingEmulatorSupport,
}

impl SkipKind {
    fn as_str(self) -> &'static str {
        match self {
            SkipKind::EmulatorOnly => "emulator-only",
            SkipKind::MissingTool => "missing-tool",
            SkipKind::PendingEmulatorSupport => "pending-emulator-support",
        }
    }
}

/// Records that `test` is skipped on this backend for `reason`.
pub fn skip(test: &str, kind: SkipKind, reason: &str) {
    let backend = Backend::selected().name();
    let line = format!("{backend}\t{}\t{test}\t{reason}\n", kind.as_str());
    eprint!("SKIPPED {line}");
    if let Some(path) = std::env::var_os(SKIP_LOG_ENV).filter(|p| !p.is_empty()) {
        // O_APPEND writes of one short line are atomic, so parallel tests do not interleave.
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path);
        match file {
            Ok(mut f) => {
                let _ = f.write_all(line.as_bytes());
            }
            Err(e) => eprintln!("cannot record the skip in {}: {e}", path.to_string_lossy()),
        }
    }
}

/// Skips `test` (and says true) unless the suite runs on the emulator.
pub fn skip_unless_emulator(test: &str, reason: &str) -> bool {
    if Backend::selected() == Backend::Emulator {
        return false;
    }
    skip(test, SkipKind::EmulatorOnly, reason);
    true
}
