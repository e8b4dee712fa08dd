//! `tokenctl credential`: kubectl's exec credential plugin. It reads `KUBERNETES_EXEC_INFO`,
//! answers an `ExecCredential` (client.authentication.k8s.io v1 or v1beta1) with a token from
//! tokend, and keeps that token in an on-disk cache (0600, under the kube cache directory, keyed
//! by tokend address, target and audiences) so kubectl calls reuse it until a fraction of its
//! lifetime has passed. A cached token whose record is gone (revoked) is dropped the next time
//! the plugin runs more than [`CHECK_INTERVAL`] after its last check; if its record cannot be
//! checked, it is served for at most [`MAX_UNCHECKED`] after the last successful check.

use std::io::Write;
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
    let path = (!args.no_cache)
        .then(|| cache_dir(args.cache_dir.as_deref()))
        .flatten()
        .map(|dir| dir.join(format!("{}.json", cache_key(addr, &request))));
    let client = connect().await;
    let now = unix_now();
    let cached = path.as_deref().and_then(read_entry);
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
        write_entry(path, &entry)?;
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

/// The entry at `path`, if there is a readable one.
fn read_entry(path: &Path) -> Option<Entry> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

/// Writes `entry` to `path` readable by its owner only: to a temporary file made 0600 before
/// anything is in it, then renamed over the old entry, so a reader never sees half an entry.
fn write_entry(path: &Path, entry: &Entry) -> Result<(), CliError> {
    let io = |action, source| CliError::Io {
        action,
        what: path.display().to_string(),
        source,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
        .create(dir)
        .map_err(|e| io("creating the directory of", e))?;
    let temporary = dir.join(format!(".{}.tmp", std::process::id()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(&temporary)
        .map_err(|e| io("writing the cache entry", e))?;
    let text = serde_json::to_vec(entry)?;
    file.write_all(&text)
        .and_then(|()| file.sync_all())
        .map_err(|e| io("writing the cache entry", e))?;
    std::fs::rename(&temporary, path).map_err(|e| io("writing the cache entry", e))
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
