//! The default namespace, as kubectl works it out: the namespace of the kubeconfig's current (or
//! `--context`) context, read from the files kubectl would read, without calling any cluster.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// kubectl's namespace when the kubeconfig names none.
pub(crate) const FALLBACK_NAMESPACE: &str = "default";

/// Why the default namespace could not be worked out.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ContextError {
    /// A kubeconfig file could not be read.
    #[error("reading kubeconfig {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A kubeconfig file is not a kubeconfig.
    #[error("kubeconfig {path} is not valid: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's error.
        #[source]
        source: serde_yaml::Error,
    },
    /// `--context` names a context no kubeconfig file has.
    #[error("--context {0:?}: no such context in the kubeconfig")]
    NoSuchContext(String),
}

/// The part of a kubeconfig file this module reads.
#[derive(Debug, Default, Deserialize)]
struct KubeconfigFile {
    #[serde(rename = "current-context", default)]
    current_context: Option<String>,
    #[serde(default)]
    contexts: Option<Vec<NamedContext>>,
}

/// One `contexts` entry.
#[derive(Debug, Deserialize)]
struct NamedContext {
    name: String,
    #[serde(default)]
    context: Option<ContextFields>,
}

/// The fields of a context this module reads.
#[derive(Debug, Default, Deserialize)]
struct ContextFields {
    #[serde(default)]
    namespace: Option<String>,
}

/// Where the kubeconfig is and which context to use, as the flags and environment say.
#[derive(Debug, Clone, Copy)]
pub(crate) struct KubeconfigSource<'a> {
    /// `--kubeconfig`: only this file, which must exist.
    pub(crate) explicit: Option<&'a Path>,
    /// `$KUBECONFIG`: a path list, merged; missing files are skipped.
    pub(crate) env: Option<&'a OsStr>,
    /// `$HOME`, for `~/.kube/config` (skipped when missing).
    pub(crate) home: Option<&'a OsStr>,
    /// `--context`: this context rather than the current one; it must exist.
    pub(crate) context: Option<&'a str>,
}

/// The namespace kubectl would use without `-n`.
///
/// Files are merged as kubectl merges them: `current-context` comes from the first file that sets
/// it, a context from the first file that defines its name. With no kubeconfig, no current
/// context, or a context without a namespace, it is `default`.
pub(crate) fn default_namespace(source: KubeconfigSource<'_>) -> Result<String, ContextError> {
    let files = kubeconfig_files(&source)?;
    let wanted = match source.context {
        Some(name) => Some(name.to_owned()),
        None => files
            .iter()
            .find_map(|file| file.current_context.clone().filter(|name| !name.is_empty())),
    };
    let Some(wanted) = wanted else {
        return Ok(FALLBACK_NAMESPACE.to_owned());
    };
    let found = files
        .iter()
        .flat_map(|file| file.contexts.iter().flatten())
        .find(|entry| entry.name == wanted);
    match found {
        Some(entry) => Ok(entry
            .context
            .as_ref()
            .and_then(|c| c.namespace.clone())
            .filter(|ns| !ns.is_empty())
            .unwrap_or_else(|| FALLBACK_NAMESPACE.to_owned())),
        None if source.context.is_some() => Err(ContextError::NoSuchContext(wanted)),
        // kubectl too uses "default" when current-context names a context that is not there.
        None => Ok(FALLBACK_NAMESPACE.to_owned()),
    }
}

/// Reads the kubeconfig files kubectl would read, in precedence order.
fn kubeconfig_files(source: &KubeconfigSource<'_>) -> Result<Vec<KubeconfigFile>, ContextError> {
    if let Some(path) = source.explicit {
        return Ok(vec![read(path)?.unwrap_or_default()]);
    }
    let paths: Vec<PathBuf> = match source.env.filter(|value| !value.is_empty()) {
        Some(list) => std::env::split_paths(list)
            .filter(|p| !p.as_os_str().is_empty())
            .collect(),
        None => source
            .home
            .map(|home| Path::new(home).join(".kube").join("config"))
            .into_iter()
            .collect(),
    };
    let mut files = Vec::new();
    for path in paths {
        match read(&path) {
            Ok(Some(file)) => files.push(file),
            Ok(None) => {}
            Err(ContextError::Read { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound => {}
            Err(other) => return Err(other),
        }
    }
    Ok(files)
}

/// Parses one kubeconfig file; `None` for an empty one.
fn read(path: &Path) -> Result<Option<KubeconfigFile>, ContextError> {
    let text = std::fs::read_to_string(path).map_err(|source| ContextError::Read {
        path: path.to_owned(),
        source,
    })?;
    if text.trim().is_empty() {
        return Ok(None);
    }
    serde_yaml::from_str(&text)
        .map(Some)
        .map_err(|source| ContextError::Parse {
            path: path.to_owned(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROD: &str = "apiVersion: v1\nkind: Config\ncurrent-context: prod\ncontexts:\n\
        - name: prod\n  context: {cluster: c, user: u, namespace: team-a}\n\
        - name: bare\n  context: {cluster: c, user: u}\n";
    const OTHER: &str = "current-context: staging\ncontexts:\n\
        - name: staging\n  context: {namespace: team-s}\n\
        - name: prod\n  context: {namespace: shadowed}\n";

    fn source<'a>(explicit: Option<&'a Path>, env: Option<&'a OsStr>) -> KubeconfigSource<'a> {
        KubeconfigSource {
            explicit,
            env,
            home: None,
            context: None,
        }
    }

    #[test]
    fn current_context_namespace_and_fallbacks() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let prod = dir.path().join("prod");
        std::fs::write(&prod, PROD)?;
        let ns = |s: KubeconfigSource<'_>| default_namespace(s).map_err(|e| e.to_string());
        assert_eq!(ns(source(Some(&prod), None)), Ok("team-a".into()));
        let bare = KubeconfigSource {
            context: Some("bare"),
            ..source(Some(&prod), None)
        };
        assert_eq!(ns(bare), Ok("default".into()));
        let missing = KubeconfigSource {
            context: Some("nope"),
            ..source(Some(&prod), None)
        };
        assert!(ns(missing).is_err_and(|e| e.contains("\"nope\"")));
        // No kubeconfig anywhere: kubectl's "default".
        assert_eq!(ns(source(None, None)), Ok("default".into()));
        // --kubeconfig must exist.
        assert!(ns(source(Some(&dir.path().join("absent")), None)).is_err());
        Ok(())
    }

    #[test]
    fn kubeconfig_lists_merge_like_kubectl() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let prod = dir.path().join("prod");
        let other = dir.path().join("other");
        std::fs::write(&prod, PROD)?;
        std::fs::write(&other, OTHER)?;
        let list = std::env::join_paths([dir.path().join("absent"), other.clone(), prod.clone()])
            .map_err(std::io::Error::other)?;
        let ns = |s: KubeconfigSource<'_>| default_namespace(s).map_err(|e| e.to_string());
        // The first current-context wins, and the first definition of a context name.
        assert_eq!(ns(source(None, Some(&list))), Ok("team-s".into()));
        let pick_prod = KubeconfigSource {
            context: Some("prod"),
            ..source(None, Some(&list))
        };
        assert_eq!(ns(pick_prod), Ok("shadowed".into()));
        Ok(())
    }

    #[test]
    fn a_broken_kubeconfig_is_an_error_naming_it() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let broken = dir.path().join("broken");
        std::fs::write(&broken, "contexts: [unclosed")?;
        let error = default_namespace(source(Some(&broken), None)).map_err(|e| e.to_string());
        assert!(error.is_err_and(|e| e.contains("broken")));
        Ok(())
    }
}
