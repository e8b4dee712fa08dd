//! `tokenctl credential`: kubectl's exec credential plugin. It reads `KUBERNETES_EXEC_INFO`,
//! answers an `ExecCredential` (client.authentication.k8s.io v1 or v1beta1) with a token from
//! tokend, and keeps that token in an on-disk cache (0600, under the kube cache directory, keyed
//! by tokend address, target and audiences) so kubectl calls reuse it until a fraction of its
//! lifetime has passed. A cached token whose record is gone (revoked) is dropped the next time
//! the plugin runs more than [`CHECK_INTERVAL`] after its last check; if its record cannot be
//! checked, it is served for at most [`MAX_UNCHECKED`] after the last successful check. The
//! cache is used only when nobody else could have written it ([`trusted_cache_dir`],
//! [`read_entry`]); otherwise the plugin works without it for that run and says why on stderr.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::digest;
use clap::Args;
use serde::{Deserialize, Serialize};

use super::args::{ServiceAccountRef, parse_label, parse_service_account_ref};
use super::{CliError, ExitStatus, print, resolve_namespace};
use crate::TokendClient;
use crate::v1;

/// How long a cached token is served without asking tokend whether its record still exists.
pub(crate) const CHECK_INTERVAL: Duration = Duration::from_secs(10);
/// How long a cached token is served after its last successful check when tokend cannot be
/// asked (unreachable, or the caller may not read its records).
pub(crate) const MAX_UNCHECKED: Duration = Duration::from_secs(300);
/// A cached token this close to its expiry is never served.
const EXPIRY_MARGIN: Duration = Duration::from_secs(60);

/// The ExecCredential API versions this plugin speaks, newest first.
const API_VERSIONS: [&str; 2] = [
    "client.authentication.k8s.io/v1",
    "client.authentication.k8s.io/v1beta1",
];

/// Arguments of `tokenctl credential`.
#[derive(Debug, Args)]
pub(crate) struct CredentialArgs {
    /// The ServiceAccount: NAME (in -n's namespace), or NAMESPACE/NAME.
    #[arg(value_name = "[NAMESPACE/]SERVICEACCOUNT", value_parser = parse_service_account_ref)]
    pub(crate) service_account: ServiceAccountRef,
    /// The namespace, when not given as NAMESPACE/.
    #[arg(short = 'n', long, value_name = "NAMESPACE")]
    pub(crate) namespace: Option<String>,
    /// Lifetime of each token, e.g. 1h (units y w d h m s); default: the server's.
    #[arg(long)]
    pub(crate) duration: Option<String>,
    /// An audience the token is valid for (repeatable); default: the API server's.
    #[arg(long = "audience", value_name = "AUDIENCE")]
    pub(crate) audiences: Vec<String>,
    /// A label for each token's record, KEY=VALUE (repeatable).
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = parse_label)]
    pub(crate) labels: Vec<(String, String)>,
    /// Reuse a cached token until this fraction of its lifetime has passed (0 < f <= 0.9).
    #[arg(long, default_value_t = 0.5, value_parser = parse_fraction)]
    pub(crate) renew_fraction: f64,
    /// Where the cache lives; default: $KUBECACHEDIR, else ~/.kube/cache (then tokend/).
    #[arg(long, value_name = "DIR")]
    pub(crate) cache_dir: Option<PathBuf>,
    /// Ask tokend for a fresh token every time, and cache nothing.
    #[arg(long)]
    pub(crate) no_cache: bool,
}

fn parse_fraction(text: &str) -> Result<f64, String> {
    let value: f64 = text.parse().map_err(|e| format!("{e}"))?;
    if value > 0.0 && value <= 0.9 {
        Ok(value)
    } else {
        Err("must be more than 0 and at most 0.9".into())
    }
}

/// The part of `KUBERNETES_EXEC_INFO` the plugin reads.
#[derive(Deserialize)]
struct ExecInfo {
    #[serde(rename = "apiVersion")]
    api_version: String,
}

/// One cache entry: the token and what decides whether it may be served.
#[derive(Serialize, Deserialize)]
struct Entry {
    token: String,
    token_id: String,
    /// Unix seconds.
    issued_at: u64,
    expires_at: u64,
    /// When tokend last said the token's record exists.
    checked_at: u64,
}

impl Entry {
    /// When the token stops being served from the cache: the renewal point, never later than
    /// shortly before expiry.
    fn renew_at(&self, fraction: f64) -> u64 {
        let lifetime = self.expires_at.saturating_sub(self.issued_at);
        let renew = self.issued_at + (lifetime as f64 * fraction) as u64;
        renew.min(self.expires_at.saturating_sub(EXPIRY_MARGIN.as_secs()))
    }
}

/// Runs the plugin: prints one ExecCredential on stdout, and nothing else there.
pub(super) async fn credential(
    connect: impl AsyncFnOnce() -> Result<TokendClient, CliError>,
    addr: &str,
    args: CredentialArgs,
) -> Result<ExitStatus, CliError> {
    let api_version = api_version(std::env::var("KUBERNETES_EXEC_INFO").ok().as_deref())?;
    let namespace = resolve_namespace(
        args.service_account.namespace.clone(),
        &args.service_account.name,
        args.namespace.as_deref(),
        None,
        None,
    )?;
    let request = v1::IssueTokenRequest {
        namespace,
        service_account: args.service_account.name.clone(),
        duration: args.duration.clone().unwrap_or_default(),
        audiences: args.audiences.clone(),
        labels: args.labels.iter().cloned().collect(),
        ..Default::default()
    };
    // Any doubt about the cache (a directory others can write, an entry that is a symlink or
    // not the user's alone) means working without it this time, saying why on stderr, which
    // kubectl shows; the answer to kubectl does not depend on the cache.
    let cache = (!args.no_cache)
        .then(|| cache_dir(args.cache_dir.as_deref()))
        .flatten()
        .and_then(|dir| refused_as_warning(trusted_cache_dir(&dir)));
    let mut path = cache.map(|dir| dir.join(format!("{}.json", cache_key(addr, &request))));
    let client = connect().await;
    let now = unix_now();
    let cached = match path.as_deref().map(read_entry) {
        Some(Ok(entry)) => entry,
        Some(Err(refused)) => {
            warn(&refused);
            path = None;
            None
        }
        None => None,
    };
    let entry = match cached {
        Some(entry) if now < entry.renew_at(args.renew_fraction) => {
            reuse(client.as_ref().ok(), entry, now).await
        }
        _ => None,
    };
    let entry = match entry {
        Some(entry) => entry,
        None => {
            let issued = client?.issue_token(request).await?;
            Entry {
                token: issued.token,
                token_id: issued.token_id,
                issued_at: now,
                expires_at: issued
                    .expiration_time
                    .and_then(|t| u64::try_from(t.seconds).ok())
                    .unwrap_or(now),
                checked_at: now,
            }
        }
    };
    if let Some(path) = &path {
        let text = serde_json::to_vec(&entry)?;
        if let Err(e) = super::secret_file::write(path, &text) {
            warn(&CacheRefused::Write(e));
        }
    }
    let expiration = prost_types::Timestamp {
        seconds: i64::try_from(entry.renew_at(args.renew_fraction)).unwrap_or(i64::MAX),
        nanos: 0,
    };
    let credential = serde_json::json!({
        "apiVersion": api_version,
        "kind": "ExecCredential",
        "status": {
            "token": entry.token,
            "expirationTimestamp": expiration.to_string(),
        },
    });
    print(&format!("{}\n", serde_json::to_string(&credential)?))?;
    Ok(ExitStatus::Success)
}

/// The cached entry if it may still be served: checked within [`CHECK_INTERVAL`], or found on
/// record now (and so still ACTIVE), or, when tokend cannot tell, checked within
/// [`MAX_UNCHECKED`]. A record that is gone or no longer active drops the entry.
async fn reuse(client: Option<&TokendClient>, mut entry: Entry, now: u64) -> Option<Entry> {
    let since_check = Duration::from_secs(now.saturating_sub(entry.checked_at));
    if since_check < CHECK_INTERVAL {
        return Some(entry);
    }
    let answer = match client {
        Some(client) => Some(
            client
                .get_token(v1::GetTokenRequest {
                    token_id: entry.token_id.clone(),
                })
                .await,
        ),
        None => None,
    };
    match answer {
        Some(Ok(found)) => {
            let active = found
                .token
                .is_some_and(|r| r.state() == v1::TokenState::Active);
            active.then(|| {
                entry.checked_at = now;
                entry
            })
        }
        Some(Err(e)) if e.code() == tonic::Code::NotFound => None,
        _ => (since_check < MAX_UNCHECKED).then_some(entry),
    }
}

/// The ExecCredential apiVersion to answer with: the one kubectl sent (v1 when it sent none).
fn api_version(exec_info: Option<&str>) -> Result<&'static str, CliError> {
    let Some(text) = exec_info.filter(|t| !t.trim().is_empty()) else {
        return Ok(API_VERSIONS[0]);
    };
    let info: ExecInfo = serde_json::from_str(text).map_err(|e| {
        CliError::ExecInfo(format!(
            "KUBERNETES_EXEC_INFO is not an ExecCredential: {e}"
        ))
    })?;
    API_VERSIONS
        .into_iter()
        .find(|v| *v == info.api_version)
        .ok_or_else(|| {
            CliError::ExecInfo(format!(
                "KUBERNETES_EXEC_INFO asks for {:?}; this plugin speaks {}",
                info.api_version,
                API_VERSIONS.join(" and ")
            ))
        })
}

/// `$KUBECACHEDIR/tokend`, else `~/.kube/cache/tokend`; None without a home.
fn cache_dir(flag: Option<&Path>) -> Option<PathBuf> {
    if let Some(dir) = flag {
        return Some(dir.to_owned());
    }
    let base = match std::env::var_os("KUBECACHEDIR").filter(|d| !d.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(std::env::var_os("HOME")?).join(".kube/cache"),
    };
    Some(base.join("tokend"))
}

/// SHA-256 over the address and everything that makes a token: a different target never
/// shares an entry, and the file name gives nothing away.
fn cache_key(addr: &str, request: &v1::IssueTokenRequest) -> String {
    let mut labels: Vec<_> = request.labels.iter().collect();
    labels.sort();
    let key = serde_json::json!([
        addr,
        request.namespace,
        request.service_account,
        request.duration,
        request.audiences,
        labels,
    ]);
    digest::digest(&digest::SHA256, key.to_string().as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Why the cache is not used for this run.
#[derive(Debug, thiserror::Error)]
enum CacheRefused {
    /// A directory of the cache's path belongs to someone else.
    #[error("{path} is owned by uid {owner}, not by you (uid {me}) or root")]
    NotOwned {
        /// The directory.
        path: PathBuf,
        /// Its owner.
        owner: u32,
        /// This process's effective uid.
        me: u32,
    },
    /// Someone else could add, replace or remove entries.
    #[error("{path} can be written by group or others (mode {mode:04o}): run `chmod go-w` on it")]
    Writable {
        /// The directory.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The cache directory is a file or something else.
    #[error("{0} is not a directory")]
    NotADirectory(PathBuf),
    /// The entry is a symlink (it could point at anything, or make a write land anywhere).
    #[error("the cache entry {0} is a symlink: remove it")]
    Symlink(PathBuf),
    /// The entry is a device, a FIFO, a directory...
    #[error("the cache entry {0} is not a regular file: remove it")]
    NotAFile(PathBuf),
    /// The entry was not written by this user's plugin: another owner, or others may read or
    /// write it (the plugin writes 0600 only).
    #[error(
        "the cache entry {path} is not yours alone (owner uid {owner}, mode {mode:04o}; you are \
         uid {me}): remove it"
    )]
    NotPrivate {
        /// The entry.
        path: PathBuf,
        /// Its owner.
        owner: u32,
        /// Its permission bits.
        mode: u32,
        /// This process's effective uid.
        me: u32,
    },
    /// Creating, resolving, inspecting or reading failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// To what.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Writing the entry failed.
    #[error(transparent)]
    Write(super::secret_file::SecretFileError),
}

/// Says on stderr (which kubectl shows) that the cache is not used this time, and why.
fn warn(refused: &CacheRefused) {
    eprintln!("tokenctl credential: not using the token cache: {refused}");
}

fn refused_as_warning<T>(result: Result<T, CacheRefused>) -> Option<T> {
    result.map_err(|refused| warn(&refused)).ok()
}

fn io_refused(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> CacheRefused {
    let path = path.to_owned();
    move |source| CacheRefused::Io {
        action,
        path,
        source,
    }
}

fn my_uid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// The cache directory, created 0700 if missing, as a path without symlinks, if it may be
/// trusted as ssh trusts `~/.ssh`: the directory is the user's and nobody else may write to it,
/// and every directory above it belongs to the user or root and is writable by nobody else
/// (or is sticky, like /tmp, where others cannot rename or remove what is not theirs).
/// Everything afterwards goes through the returned path, so a symlink on the way that someone
/// swaps after this check changes nothing.
fn trusted_cache_dir(dir: &Path) -> Result<PathBuf, CacheRefused> {
    use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io_refused("creating", dir))?;
    let real = std::fs::canonicalize(dir).map_err(io_refused("resolving", dir))?;
    let me = my_uid();
    for (depth, path) in real.ancestors().enumerate() {
        let meta = std::fs::metadata(path).map_err(io_refused("inspecting", path))?;
        let owner = meta.uid();
        let mode = meta.mode() & 0o7777;
        let own = depth == 0;
        if own && !meta.is_dir() {
            return Err(CacheRefused::NotADirectory(path.to_owned()));
        }
        if owner != me && (own || owner != 0) {
            return Err(CacheRefused::NotOwned {
                path: path.to_owned(),
                owner,
                me,
            });
        }
        let sticky = mode & 0o1000 != 0;
        if mode & 0o022 != 0 && (own || !sticky) {
            return Err(CacheRefused::Writable {
                path: path.to_owned(),
                mode,
            });
        }
    }
    Ok(real)
}

/// The entry at `path` (None when there is none, or it does not parse), if it may be trusted:
/// opened without following a symlink, then checked on the open file to be a regular file that
/// is the user's and 0600 or stricter, as the plugin writes it.
fn read_entry(path: &Path) -> Result<Option<Entry>, CacheRefused> {
    use rustix::fs::OFlags;
    use std::io::Read as _;
    use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _};
    let mut options = std::fs::OpenOptions::new();
    // NONBLOCK: opening a planted FIFO must not hang kubectl; it is refused below.
    options
        .read(true)
        .custom_flags((OFlags::NOFOLLOW | OFlags::NONBLOCK).bits() as i32);
    let mut file = match options.open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) => {
            return Err(CacheRefused::Symlink(path.to_owned()));
        }
        Err(e) => return Err(io_refused("opening", path)(e)),
    };
    let meta = file.metadata().map_err(io_refused("inspecting", path))?;
    if !meta.is_file() {
        return Err(CacheRefused::NotAFile(path.to_owned()));
    }
    let me = my_uid();
    let mode = meta.mode() & 0o7777;
    if meta.uid() != me || mode & 0o077 != 0 {
        return Err(CacheRefused::NotPrivate {
            path: path.to_owned(),
            owner: meta.uid(),
            mode,
            me,
        });
    }
    let mut text = Vec::new();
    file.read_to_end(&mut text)
        .map_err(io_refused("reading", path))?;
    // An entry that does not parse (an older format, a torn write) is simply not used.
    Ok(serde_json::from_slice(&text).ok())
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_answer_speaks_the_version_kubectl_asked_for() {
        let v1beta1 = r#"{"apiVersion":"client.authentication.k8s.io/v1beta1","kind":"ExecCredential","spec":{"interactive":false}}"#;
        assert_eq!(
            api_version(Some(v1beta1)).ok(),
            Some("client.authentication.k8s.io/v1beta1")
        );
        assert_eq!(
            api_version(None).ok(),
            Some("client.authentication.k8s.io/v1")
        );
        let alpha = r#"{"apiVersion":"client.authentication.k8s.io/v1alpha1"}"#;
        assert!(api_version(Some(alpha)).is_err());
    }

    #[test]
    fn a_cached_token_is_renewed_at_its_fraction_and_before_expiry() {
        let entry = Entry {
            token: String::new(),
            token_id: String::new(),
            issued_at: 1000,
            expires_at: 1000 + 3600,
            checked_at: 1000,
        };
        assert_eq!(entry.renew_at(0.5), 1000 + 1800);
        assert_eq!(entry.renew_at(0.9), 1000 + 3240);
        let short = Entry {
            expires_at: 1000 + 100,
            ..entry
        };
        assert_eq!(
            short.renew_at(0.9),
            1000 + 40,
            "never within a minute of expiry"
        );
    }

    #[test]
    fn targets_never_share_a_cache_entry() {
        let request = v1::IssueTokenRequest {
            namespace: "a".into(),
            service_account: "ci".into(),
            ..Default::default()
        };
        let other = v1::IssueTokenRequest {
            audiences: vec!["vault".into()],
            ..request.clone()
        };
        assert_ne!(
            cache_key("http://x", &request),
            cache_key("http://x", &other)
        );
        assert_ne!(
            cache_key("http://x", &request),
            cache_key("http://y", &request)
        );
        assert_eq!(
            cache_key("http://x", &request),
            cache_key("http://x", &request)
        );
    }
}
