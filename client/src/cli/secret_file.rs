//! Writing a file that holds a secret (a token, a private key): the one way tokenctl does it.
//!
//! The contents go to a new temporary file in the target's directory, created exclusively
//! (`O_CREAT|O_EXCL`, so never through a planted file or symlink) under an unpredictable name,
//! made 0600 before anything is written, synced, then renamed over the target. Whatever was at
//! the target (a 0644 file, a symlink to someone's file) is replaced, never written through: a
//! symlink's target is left as it was, and an old file's mode is not inherited.

use std::io::Write as _;
use std::path::{Path, PathBuf};

/// Why a secret file could not be written.
#[derive(Debug, thiserror::Error)]
#[error("{action} {path}: {source}")]
pub(crate) struct SecretFileError {
    /// What was being done.
    pub(crate) action: &'static str,
    /// The file (or directory) it was done to.
    pub(crate) path: PathBuf,
    /// The I/O error.
    #[source]
    pub(crate) source: std::io::Error,
}

/// What [`write`] replaced at the target.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Replaced {
    /// Nothing was there, or a regular file.
    File,
    /// A symlink, now a file of its own; where it pointed is unchanged.
    Symlink(PathBuf),
}

/// Writes `contents` to `path` readable and writable by its owner only (see the module's doc).
/// The directory must exist.
pub(crate) fn write(path: &Path, contents: &[u8]) -> Result<Replaced, SecretFileError> {
    let fail = |action, path: &Path| {
        let path = path.to_owned();
        move |source| SecretFileError {
            action,
            path,
            source,
        }
    };
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let replaced = match std::fs::read_link(path) {
        Ok(target) => Replaced::Symlink(target),
        Err(_) => Replaced::File,
    };
    let mut builder = tempfile::Builder::new();
    builder.prefix(".tokenctl-").suffix(".tmp");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        builder.permissions(std::fs::Permissions::from_mode(0o600));
    }
    let mut temp = builder
        .tempfile_in(dir)
        .map_err(fail("creating a temporary file in", dir))?;
    // The mode asked for at creation passes through the umask; set it outright so the result is
    // 0600 whatever the umask (a stricter one would leave the owner unable to read it back).
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        temp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(fail("setting the mode of", temp.path()))?;
    }
    temp.write_all(contents)
        .and_then(|()| temp.as_file().sync_all())
        .map_err(fail("writing", temp.path()))?;
    // On failure the temporary file is removed when the error (which owns it) is dropped.
    temp.persist(path)
        .map_err(|e| fail("replacing", path)(e.error))?;
    Ok(replaced)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    fn mode(path: &Path) -> u32 {
        std::fs::symlink_metadata(path)
            .map(|m| m.permissions().mode() & 0o7777)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    #[test]
    fn an_existing_world_readable_file_is_replaced_by_a_private_one() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("kubeconfig");
        std::fs::write(&path, "old")?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644))?;
        assert_eq!(write(&path, b"secret").ok(), Some(Replaced::File));
        assert_eq!(std::fs::read_to_string(&path)?, "secret");
        assert_eq!(mode(&path), 0o600);
        let left: Vec<_> = std::fs::read_dir(dir.path())?.collect();
        assert_eq!(left.len(), 1, "no temporary file left: {left:?}");
        Ok(())
    }

    #[test]
    fn a_symlink_is_replaced_and_its_target_left_alone() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "precious")?;
        let path = dir.path().join("out");
        std::os::unix::fs::symlink(&victim, &path)?;
        assert_eq!(
            write(&path, b"secret").ok(),
            Some(Replaced::Symlink(victim.clone()))
        );
        assert_eq!(std::fs::read_to_string(&victim)?, "precious");
        assert!(std::fs::symlink_metadata(&path)?.is_file());
        assert_eq!(mode(&path), 0o600);
        Ok(())
    }
}
