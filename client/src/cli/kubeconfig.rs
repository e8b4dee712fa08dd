//! Merging a kubeconfig from tokend into an existing kubeconfig file without disturbing its other entries.

use std::path::{Path, PathBuf};

use serde_yaml::{Mapping, Value};

use super::secret_file::{self, Replaced};

/// The named lists of a kubeconfig that a merge adds entries to.
const SECTIONS: [&str; 3] = ["clusters", "users", "contexts"];

/// Why a merge could not be done.
#[derive(Debug, thiserror::Error)]
pub(crate) enum MergeError {
    /// A document is not YAML.
    #[error("{what} is not valid YAML: {source}")]
    Yaml {
        /// Which document.
        what: &'static str,
        /// The parser's error.
        #[source]
        source: serde_yaml::Error,
    },
    /// A document is YAML but not shaped like a kubeconfig.
    #[error("{what} is not a kubeconfig: {problem}")]
    Shape {
        /// Which document.
        what: &'static str,
        /// What is wrong with it.
        problem: String,
    },
    /// No kubeconfig path could be worked out.
    #[error("no kubeconfig to merge into: pass --kubeconfig PATH, or set KUBECONFIG or HOME")]
    NoPath,
    /// The merged file could not be written.
    #[error(transparent)]
    Write(#[from] secret_file::SecretFileError),
    /// Reading the file or creating its directory failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// The result of [`merge`]: the new file's text and the context that was added.
#[derive(Debug)]
pub(crate) struct Merged {
    /// The merged kubeconfig, YAML.
    pub(crate) yaml: String,
    /// The name of the context merged in.
    pub(crate) context: String,
}

/// Merges the kubeconfig `new` into `existing` (`None` when there is no file yet).
///
/// Every cluster, user and context of `new` replaces the entry of the same name in place, or is
/// appended; every other entry and key of `existing` is kept as it was. `current-context` changes
/// only when `use_context` is set, or when there was no file, so that a fresh file works as it is.
pub(crate) fn merge(
    existing: Option<&str>,
    new: &str,
    use_context: bool,
) -> Result<Merged, MergeError> {
    let new_doc: Value = serde_yaml::from_str(new).map_err(|source| MergeError::Yaml {
        what: "the kubeconfig from tokend",
        source,
    })?;
    let new_map = new_doc.as_mapping().ok_or_else(|| MergeError::Shape {
        what: "the kubeconfig from tokend",
        problem: "its top level is not a mapping".into(),
    })?;
    let context = new_context_name(new_map)?;

    let fresh = existing.is_none_or(|text| text.trim().is_empty());
    let mut target = match existing.filter(|_| !fresh) {
        Some(text) => {
            let doc: Value = serde_yaml::from_str(text).map_err(|source| MergeError::Yaml {
                what: "the existing kubeconfig",
                source,
            })?;
            match doc {
                Value::Mapping(map) => map,
                Value::Null => empty_kubeconfig(),
                _ => {
                    return Err(MergeError::Shape {
                        what: "the existing kubeconfig",
                        problem: "its top level is not a mapping".into(),
                    });
                }
            }
        }
        None => empty_kubeconfig(),
    };

    for section in SECTIONS {
        let Some(new_entries) = new_map.get(section) else {
            continue;
        };
        let new_entries = new_entries.as_sequence().ok_or_else(|| MergeError::Shape {
            what: "the kubeconfig from tokend",
            problem: format!("{section} is not a list"),
        })?;
        let slot = target.entry(Value::from(section)).or_insert(Value::Null);
        if slot.is_null() {
            *slot = Value::Sequence(Vec::new());
        }
        let entries = slot.as_sequence_mut().ok_or_else(|| MergeError::Shape {
            what: "the existing kubeconfig",
            problem: format!("{section} is not a list"),
        })?;
        for entry in new_entries {
            let name = entry_name(entry);
            match entries
                .iter_mut()
                .find(|old| name.is_some() && entry_name(old) == name)
            {
                Some(old) => *old = entry.clone(),
                None => entries.push(entry.clone()),
            }
        }
    }
    if use_context || fresh {
        target.insert(Value::from("current-context"), Value::from(context.clone()));
    }
    let yaml =
        serde_yaml::to_string(&Value::Mapping(target)).map_err(|source| MergeError::Yaml {
            what: "the merged kubeconfig",
            source,
        })?;
    Ok(Merged { yaml, context })
}

/// The `name` of a kubeconfig list entry.
fn entry_name(entry: &Value) -> Option<&str> {
    entry.get("name").and_then(Value::as_str)
}

/// The context the new kubeconfig is about: its current-context, or its only context.
fn new_context_name(new_map: &Mapping) -> Result<String, MergeError> {
    if let Some(name) = new_map
        .get("current-context")
        .and_then(Value::as_str)
        .filter(|name| !name.is_empty())
    {
        return Ok(name.to_owned());
    }
    new_map
        .get("contexts")
        .and_then(Value::as_sequence)
        .and_then(|contexts| contexts.first())
        .and_then(entry_name)
        .map(str::to_owned)
        .ok_or_else(|| MergeError::Shape {
            what: "the kubeconfig from tokend",
            problem: "it names no context".into(),
        })
}

/// The skeleton of a new kubeconfig file.
fn empty_kubeconfig() -> Mapping {
    let mut map = Mapping::new();
    map.insert(Value::from("apiVersion"), Value::from("v1"));
    map.insert(Value::from("kind"), Value::from("Config"));
    map.insert(Value::from("preferences"), Value::Mapping(Mapping::new()));
    for section in SECTIONS {
        map.insert(Value::from(section), Value::Sequence(Vec::new()));
    }
    map
}

/// The file to merge into, as kubectl picks it: `explicit`; else, of the `KUBECONFIG` list, the
/// first file that exists or the last if none does; else `~/.kube/config`.
pub(crate) fn target_path(
    explicit: Option<&Path>,
    kubeconfig_env: Option<&std::ffi::OsStr>,
    home: Option<&std::ffi::OsStr>,
) -> Result<PathBuf, MergeError> {
    if let Some(path) = explicit {
        return Ok(path.to_owned());
    }
    if let Some(list) = kubeconfig_env {
        let paths: Vec<PathBuf> = std::env::split_paths(list)
            .filter(|p| !p.as_os_str().is_empty())
            .collect();
        if let Some(existing) = paths.iter().find(|p| p.exists()) {
            return Ok(existing.clone());
        }
        if let Some(last) = paths.last() {
            return Ok(last.clone());
        }
    }
    match home {
        Some(home) if !home.is_empty() => Ok(Path::new(home).join(".kube").join("config")),
        _ => Err(MergeError::NoPath),
    }
}

/// Merges `new` into the file at `path` and replaces it atomically with the result, mode 0600
/// whatever the old file's mode (it now holds a credential). A symlink at `path` is read through,
/// as kubectl reads it, but replaced rather than written through: its target is left unchanged.
/// Returns the merged context's name and what was replaced.
pub(crate) fn merge_into_file(
    path: &Path,
    new: &str,
    use_context: bool,
) -> Result<(String, Replaced), MergeError> {
    let existing = match std::fs::read_to_string(path) {
        Ok(text) => Some(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(source) => {
            return Err(MergeError::Io {
                action: "reading",
                path: path.to_owned(),
                source,
            });
        }
    };
    let merged = merge(existing.as_deref(), new, use_context)?;
    if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| MergeError::Io {
            action: "creating",
            path: dir.to_owned(),
            source,
        })?;
    }
    let replaced = secret_file::write(path, merged.yaml.as_bytes())?;
    Ok((merged.context, replaced))
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXISTING: &str = r#"apiVersion: v1
kind: Config
clusters:
- name: prod
  cluster:
    server: https://prod.example.com:6443
    certificate-authority-data: UFJPRA==
    x-unknown-field: {kept: [1, 2]}
users:
- name: alice
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1
      command: oidc-login
      args: [get-token, --issuer=https://id.example.com]
contexts:
- name: prod
  context: {cluster: prod, user: alice, namespace: default}
current-context: prod
preferences: {colors: true}
extensions:
- name: something
  extension: {a: b}
"#;

    fn tokend_kubeconfig(name: &str, token: &str) -> String {
        format!(
            r#"apiVersion: v1
kind: Config
clusters:
- name: {name}
  cluster:
    server: https://emulator:6443
    certificate-authority-data: Q0E=
users:
- name: {name}
  user:
    token: {token}
contexts:
- name: {name}
  context:
    cluster: {name}
    user: {name}
    namespace: team-a
current-context: {name}
"#
        )
    }

    fn parse(text: &str) -> Value {
        serde_yaml::from_str(text).unwrap_or_else(|e| panic!("not YAML: {e}\n{text}"))
    }

    fn names(doc: &Value, section: &str) -> Vec<String> {
        doc.get(section)
            .and_then(Value::as_sequence)
            .map(|entries| {
                entries
                    .iter()
                    .filter_map(entry_name)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    }

    fn find<'a>(doc: &'a Value, section: &str, name: &str) -> Option<&'a Value> {
        doc.get(section)?
            .as_sequence()?
            .iter()
            .find(|e| entry_name(e) == Some(name))
    }

    fn merged(existing: Option<&str>, new: &str, use_context: bool) -> (Value, String) {
        match merge(existing, new, use_context) {
            Ok(m) => (parse(&m.yaml), m.context),
            Err(e) => panic!("merge failed: {e}"),
        }
    }

    #[test]
    fn adds_a_new_context_and_leaves_the_others_unchanged() {
        let before = parse(EXISTING);
        let (after, context) = merged(
            Some(EXISTING),
            &tokend_kubeconfig("team-a-ci", "tok1"),
            false,
        );
        assert_eq!(context, "team-a-ci");
        assert_eq!(names(&after, "clusters"), ["prod", "team-a-ci"]);
        assert_eq!(names(&after, "users"), ["alice", "team-a-ci"]);
        assert_eq!(names(&after, "contexts"), ["prod", "team-a-ci"]);
        // Every pre-existing entry and key is exactly as it was.
        assert_eq!(
            find(&after, "clusters", "prod"),
            find(&before, "clusters", "prod")
        );
        assert_eq!(
            find(&after, "users", "alice"),
            find(&before, "users", "alice")
        );
        assert_eq!(
            find(&after, "contexts", "prod"),
            find(&before, "contexts", "prod")
        );
        for key in [
            "apiVersion",
            "kind",
            "preferences",
            "extensions",
            "current-context",
        ] {
            assert_eq!(after.get(key), before.get(key), "{key}");
        }
        // The new entries are tokend's.
        let user = find(&after, "users", "team-a-ci")
            .and_then(|u| u.get("user"))
            .and_then(|u| u.get("token"));
        assert_eq!(user.and_then(Value::as_str), Some("tok1"));
        assert!(find(&after, "contexts", "team-a-ci").is_some());
        assert!(find(&after, "clusters", "team-a-ci").is_some());
    }

    #[test]
    fn remerging_the_same_name_replaces_only_that_entry() {
        let first = match merge(
            Some(EXISTING),
            &tokend_kubeconfig("team-a-ci", "tok1"),
            false,
        ) {
            Ok(m) => m.yaml,
            Err(e) => panic!("{e}"),
        };
        let (after, _) = merged(Some(&first), &tokend_kubeconfig("team-a-ci", "tok2"), false);
        assert_eq!(names(&after, "users"), ["alice", "team-a-ci"]);
        assert_eq!(names(&after, "contexts"), ["prod", "team-a-ci"]);
        let token = find(&after, "users", "team-a-ci")
            .and_then(|u| u.get("user"))
            .and_then(|u| u.get("token"))
            .and_then(Value::as_str);
        assert_eq!(token, Some("tok2"));
        let before = parse(EXISTING);
        assert_eq!(
            find(&after, "users", "alice"),
            find(&before, "users", "alice")
        );
        assert_eq!(after.get("current-context"), before.get("current-context"));
    }

    #[test]
    fn changes_current_context_only_when_asked() {
        let (kept, _) = merged(Some(EXISTING), &tokend_kubeconfig("x", "t"), false);
        assert_eq!(
            kept.get("current-context").and_then(Value::as_str),
            Some("prod")
        );
        let (switched, _) = merged(Some(EXISTING), &tokend_kubeconfig("x", "t"), true);
        assert_eq!(
            switched.get("current-context").and_then(Value::as_str),
            Some("x")
        );
    }

    #[test]
    fn a_missing_or_empty_file_becomes_a_working_kubeconfig() {
        for existing in [None, Some(""), Some("\n")] {
            let (after, _) = merged(existing, &tokend_kubeconfig("x", "t"), false);
            assert_eq!(after.get("kind").and_then(Value::as_str), Some("Config"));
            assert_eq!(
                after.get("current-context").and_then(Value::as_str),
                Some("x")
            );
            assert_eq!(names(&after, "contexts"), ["x"]);
        }
    }

    #[test]
    fn fills_in_missing_or_null_sections() {
        let existing = "apiVersion: v1\nkind: Config\nclusters: null\ncurrent-context: \"\"\n";
        let (after, _) = merged(Some(existing), &tokend_kubeconfig("x", "t"), false);
        assert_eq!(names(&after, "clusters"), ["x"]);
        assert_eq!(names(&after, "users"), ["x"]);
        assert_eq!(
            after.get("current-context").and_then(Value::as_str),
            Some("")
        );
    }

    #[test]
    fn refuses_files_that_are_not_kubeconfigs() {
        assert!(matches!(
            merge(Some("- a\n- b\n"), &tokend_kubeconfig("x", "t"), false),
            Err(MergeError::Shape { .. })
        ));
        assert!(matches!(
            merge(
                Some("clusters: {a: b}\n"),
                &tokend_kubeconfig("x", "t"),
                false
            ),
            Err(MergeError::Shape { .. })
        ));
        assert!(matches!(
            merge(Some("a: [\n"), &tokend_kubeconfig("x", "t"), false),
            Err(MergeError::Yaml { .. })
        ));
        assert!(matches!(
            merge(Some(EXISTING), "apiVersion: v1\n", false),
            Err(MergeError::Shape { .. })
        ));
    }

    #[test]
    fn picks_the_target_file_like_kubectl() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let a = dir.path().join("a");
        let b = dir.path().join("b");
        let explicit = dir.path().join("explicit");
        let home = dir.path().as_os_str();
        let target = |explicit: Option<&Path>, env: Option<&std::ffi::OsStr>| {
            target_path(explicit, env, Some(home)).map_err(|e| e.to_string())
        };
        let list = std::env::join_paths([&a, &b]).map_err(std::io::Error::other)?;

        assert_eq!(target(Some(&explicit), Some(&list)), Ok(explicit.clone()));
        assert_eq!(
            target(None, Some(&list)),
            Ok(b.clone()),
            "none exists: the last"
        );
        std::fs::write(&b, "")?;
        assert_eq!(
            target(None, Some(&list)),
            Ok(b.clone()),
            "the first that exists"
        );
        std::fs::write(&a, "")?;
        assert_eq!(target(None, Some(&list)), Ok(a.clone()));
        assert_eq!(
            target(None, None),
            Ok(dir.path().join(".kube").join("config"))
        );
        assert_eq!(
            target(None, Some(std::ffi::OsStr::new(""))),
            Ok(dir.path().join(".kube/config"))
        );
        assert!(matches!(
            target_path(None, None, None),
            Err(MergeError::NoPath)
        ));
        Ok(())
    }

    #[test]
    fn merges_into_a_file_and_leaves_it_private() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("nested").join("config");
        let merge_file = |path: &Path, name: &str| {
            merge_into_file(path, &tokend_kubeconfig(name, "t"), false)
                .map(|(context, _)| context)
                .map_err(std::io::Error::other)
        };
        assert_eq!(merge_file(&path, "first")?, "first");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&path)?.permissions().mode() & 0o777,
                0o600
            );
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640))?;
        }
        merge_file(&path, "second")?;
        let doc = parse(&std::fs::read_to_string(&path)?);
        assert_eq!(names(&doc, "contexts"), ["first", "second"]);
        assert_eq!(
            doc.get("current-context").and_then(Value::as_str),
            Some("first")
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&path)?.permissions().mode() & 0o777,
                0o600,
                "the merged file holds a credential: 0600 whatever the old mode"
            );
        }
        let leftovers = std::fs::read_dir(dir.path().join("nested"))?.count();
        assert_eq!(leftovers, 1, "no temporary file is left behind");
        Ok(())
    }
}
