//! Scale mode: tokend's memory and first-page latency as the number of records grows. Records are
//! written straight to the API server (sealed with a key file tokend is given, as tokend would
//! seal them; no live tokens), then a fresh tokend process per phase is measured: (a) paging
//! through every record with ListTokens, (b) one full sweep of them all, expired, (c) look-alike
//! Secrets of ~900 KB each (paged and swept). Each phase's figure is that process's VmHWM.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use tokend::service::{RecordKey, TokenRecord};
use tokend::token_id::TokenId;
use tokend::vocabulary::{PENDING_LABEL, SEAL_ANNOTATION};
use tokend_client::v1;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::backend::{Backend, SERVICE_ACCOUNT, unique_name};
use crate::memory;
use crate::report::median;
use crate::via_tokend::{Auth, TokendServer};

/// Writes to the API server in flight at once while records are made.
const WRITES_AT_ONCE: usize = 32;
/// First-page calls timed per size.
const FIRST_PAGE_SAMPLES: usize = 30;

/// What to run.
#[derive(Debug, Clone)]
pub struct ScaleOptions {
    /// Record counts N.
    pub sizes: Vec<usize>,
    /// Look-alike Secrets per run of (c); 0 skips it.
    pub lookalikes: usize,
    /// Size of each look-alike's data, in KiB.
    pub lookalike_kib: usize,
    /// The tokend binary to run.
    pub tokend_bin: PathBuf,
    /// ListTokens page size.
    pub page_size: i32,
    /// The sweeper's --sweep-delete-rate.
    pub delete_rate: u32,
}

/// One size's figures.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ScaleRow {
    /// Records.
    pub records: usize,
    /// Seconds to write them.
    pub write_secs: f64,
    /// Median latency of the first ListTokens page, ms.
    pub first_page_ms: f64,
    /// Seconds to page through all of them.
    pub page_all_secs: f64,
    /// Records ListTokens returned over all pages.
    pub listed: usize,
    /// Peak RSS of tokend while paging, MiB.
    pub list_peak_mib: f64,
    /// Seconds one full sweep took.
    pub sweep_secs: f64,
    /// Records that sweep deleted.
    pub swept: u64,
    /// Deletes per second achieved.
    pub sweep_rate: f64,
    /// Peak RSS of tokend through the sweep, MiB.
    pub sweep_peak_mib: f64,
}

/// The look-alike phase's figures.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LookalikeRow {
    /// Look-alike Secrets.
    pub secrets: usize,
    /// KiB of data each.
    pub kib: usize,
    /// Tokens ListTokens returned (none should be).
    pub listed: usize,
    /// Look-alikes the sweep deleted (pending, unsealed, not immutable: abandoned).
    pub swept: u64,
    /// Peak RSS of tokend through paging and one sweep, MiB.
    pub peak_mib: f64,
}

/// Runs every size, then the look-alikes; prints as it goes.
pub async fn run(
    backend: &Backend,
    options: &ScaleOptions,
) -> anyhow::Result<(Vec<ScaleRow>, Option<LookalikeRow>)> {
    let dir = tempfile::tempdir().context("temporary directory")?;
    let key_file = dir.path().join("record.key");
    let key_bytes: [u8; 32] = rand::random();
    std::fs::write(&key_file, key_bytes).context("writing the record key")?;
    let key = RecordKey::new(&key_bytes);
    let admin = kube::Client::try_from(backend.config()).context("kube client")?;
    let mut rows = Vec::new();
    for &n in &options.sizes {
        let ns = unique_name("tokend-scale");
        backend.prepare_namespace(&ns).await?;
        let started = Instant::now();
        write_records(&admin, &key, &ns, n).await?;
        let write_secs = started.elapsed().as_secs_f64();
        eprintln!("scale: {n} records written in {write_secs:.1} s");

        // (a) paging, with the sweeper off.
        let (mut server, _) =
            start(backend, options, &key_file, &["--sweep-interval", "0"]).await?;
        let client = server.client(None).await?;
        let request = v1::ListTokensRequest {
            namespace: ns.clone(),
            include_expired: true,
            page_size: options.page_size,
            ..Default::default()
        };
        let mut samples = Vec::new();
        for _ in 0..FIRST_PAGE_SAMPLES {
            let t = Instant::now();
            client.list_tokens(request.clone()).await?;
            samples.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        let t = Instant::now();
        let listed = client
            .list_all_tokens(request.clone())
            .try_fold(0usize, |n, _| async move { Ok(n + 1) })
            .await?;
        let page_all_secs = t.elapsed().as_secs_f64();
        let list_peak_mib = peak_mib(&server)?;
        server.stop().await;
        if listed != n {
            bail!("ListTokens listed {listed} of {n} records");
        }

        // (b) one full sweep of them all (they expired long ago).
        let (sweep_secs, swept, sweep_peak_mib) = sweep_once(backend, options, &key_file).await?;
        let row = ScaleRow {
            records: n,
            write_secs,
            first_page_ms: median(samples.into_iter()),
            page_all_secs,
            listed,
            list_peak_mib,
            sweep_secs,
            swept,
            sweep_rate: swept as f64 / sweep_secs.max(f64::EPSILON),
            sweep_peak_mib,
        };
        eprintln!("scale: {row:?}");
        rows.push(row);
        backend.drop_namespace(&ns).await?;
    }
    let lookalikes = if options.lookalikes > 0 {
        Some(run_lookalikes(backend, options, &admin, &key_file).await?)
    } else {
        None
    };
    Ok((rows, lookalikes))
}

/// (c): look-alike Secrets (tokend's labels and type, a record's name, pending, ~900 KB of data,
/// no seal), as anyone who may create Secrets can make; then ListTokens over them and a sweep.
async fn run_lookalikes(
    backend: &Backend,
    options: &ScaleOptions,
    admin: &kube::Client,
    key_file: &Path,
) -> anyhow::Result<LookalikeRow> {
    let ns = unique_name("tokend-lookalike");
    backend.prepare_namespace(&ns).await?;
    let payload = k8s_openapi::ByteString(vec![b'x'; options.lookalike_kib * 1024]);
    let secrets: Api<Secret> = Api::namespaced(admin.clone(), &ns);
    futures::stream::iter(0..options.lookalikes)
        .map(|_| {
            let secrets = secrets.clone();
            let payload = payload.clone();
            let ns = ns.clone();
            async move {
                let mut secret = record(&ns, "2020-01-01T00:00:00Z").to_secret();
                secret.data = Some([("payload".to_owned(), payload)].into());
                secrets.create(&PostParams::default(), &secret).await?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(4)
        .try_collect::<Vec<()>>()
        .await?;
    eprintln!("scale: {} look-alikes written", options.lookalikes);
    let (mut server, port) = start(
        backend,
        options,
        key_file,
        &[
            "--sweep-interval",
            "1h",
            "--pending-grace",
            "0s",
            "--sweep-delete-rate",
            &options.delete_rate.to_string(),
        ],
    )
    .await?;
    let client = server.client(None).await?;
    let listed = client
        .list_all_tokens(v1::ListTokensRequest {
            namespace: ns.clone(),
            include_expired: true,
            page_size: options.page_size,
            ..Default::default()
        })
        .try_fold(0usize, |n, _| async move { Ok(n + 1) })
        .await?;
    let (_, swept) = wait_for_sweep(port).await?;
    let peak_mib = peak_mib(&server)?;
    server.stop().await;
    backend.drop_namespace(&ns).await?;
    Ok(LookalikeRow {
        secrets: options.lookalikes,
        kib: options.lookalike_kib,
        listed,
        swept,
        peak_mib,
    })
}

/// A fresh tokend with the sweeper on; waits for its first sweep; answers its duration, the
/// records it deleted, and tokend's peak RSS.
async fn sweep_once(
    backend: &Backend,
    options: &ScaleOptions,
    key_file: &Path,
) -> anyhow::Result<(f64, u64, f64)> {
    let (mut server, port) = start(
        backend,
        options,
        key_file,
        &[
            "--sweep-interval",
            "1h",
            "--sweep-grace",
            "0s",
            "--sweep-delete-rate",
            &options.delete_rate.to_string(),
        ],
    )
    .await?;
    server.client(None).await?;
    let (secs, swept) = wait_for_sweep(port).await?;
    let peak = peak_mib(&server)?;
    server.stop().await;
    Ok((secs, swept, peak))
}

async fn start(
    backend: &Backend,
    options: &ScaleOptions,
    key_file: &Path,
    extra: &[&str],
) -> anyhow::Result<(TokendServer, u16)> {
    let metrics_port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    // A Lease namespace of its own: the previous phase's tokend was killed holding its Lease,
    // which another replica may only take over once it expires (3 sweep intervals).
    let lease_namespace = unique_name("tokend-scale-lease");
    backend.prepare_namespace(&lease_namespace).await?;
    let mut args: Vec<String> = vec![
        "--record-key-file".into(),
        key_file.display().to_string(),
        "--lease-namespace".into(),
        lease_namespace,
        "--metrics-listen".into(),
        format!("127.0.0.1:{metrics_port}"),
    ];
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    let server = TokendServer::process_with(
        &options.tokend_bin,
        backend.kubeconfig(),
        Auth::None,
        Duration::from_secs(10),
        &args,
    )
    .await?;
    Ok((server, metrics_port))
}

/// Polls tokend's /metrics (on `port`) until the first sweep is done; answers its duration and
/// the records it deleted.
async fn wait_for_sweep(port: u16) -> anyhow::Result<(f64, u64)> {
    let deadline = Instant::now() + Duration::from_secs(3600);
    loop {
        let text = scrape(port).await.unwrap_or_default();
        let value = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|v| v.parse::<f64>().ok())
        };
        if value("tokend_sweep_duration_seconds_count").unwrap_or(0.0) >= 1.0 {
            let secs = value("tokend_sweep_duration_seconds_sum").unwrap_or(0.0);
            let deleted = value("tokend_sweep_last_records_deleted").unwrap_or(0.0);
            return Ok((secs, deleted as u64));
        }
        if Instant::now() > deadline {
            bail!("no sweep finished within an hour");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn scrape(port: u16) -> anyhow::Result<String> {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .await?;
    let mut body = String::new();
    stream.read_to_string(&mut body).await?;
    Ok(body)
}

fn peak_mib(server: &TokendServer) -> anyhow::Result<f64> {
    let rss = server
        .pid()
        .and_then(|pid| memory::rss(Some(pid)))
        .context("reading tokend's /proc status")?;
    Ok(rss.peak_kib as f64 / 1024.0)
}

/// A record of the bench ServiceAccount in `ns`, expiring at `expiration`, pending.
fn record(ns: &str, expiration: &str) -> TokenRecord {
    TokenRecord {
        token_id: TokenId::generate(ns),
        namespace: ns.to_owned(),
        service_account: SERVICE_ACCOUNT.to_owned(),
        service_account_uid: String::new(),
        issued_at: None,
        expiration: expiration.parse().ok(),
        audiences: Vec::new(),
        labels: [("team".to_owned(), "bench".to_owned())].into(),
        issued_by: "tokend-bench".into(),
        cluster_role: None,
        binding_scope: None,
        object_uid: String::new(),
        resource_version: String::new(),
        seal: None,
        pending: true,
        replaces: None,
        owner_uid: None,
    }
}

/// The fast path: `n` expired records written and sealed as tokend writes them (create, then
/// the confirming PATCH with the seal), without TokenRequests.
async fn write_records(
    admin: &kube::Client,
    key: &RecordKey,
    ns: &str,
    n: usize,
) -> anyhow::Result<()> {
    let secrets: Api<Secret> = Api::namespaced(admin.clone(), ns);
    futures::stream::iter(0..n)
        .map(|_| {
            let secrets = secrets.clone();
            async move {
                let mut r = record(ns, "2020-01-01T00:00:00Z");
                let created = secrets
                    .create(&PostParams::default(), &r.to_secret())
                    .await?;
                let uid = created.metadata.uid.unwrap_or_default();
                r.pending = false;
                let patch = serde_json::json!({
                    "metadata": {
                        "annotations": { SEAL_ANNOTATION: key.seal(&r, &uid) },
                        "labels": { PENDING_LABEL: null },
                    },
                    "immutable": true,
                });
                secrets
                    .patch(
                        &r.token_id.secret_name(),
                        &PatchParams::default(),
                        &Patch::Merge(&patch),
                    )
                    .await?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(WRITES_AT_ONCE)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(())
}

/// The results as a Markdown table.
pub fn table(rows: &[ScaleRow], lookalikes: Option<&LookalikeRow>) -> String {
    let mut out = String::from(
        "| N records | first page (ms, median) | page all (s) | peak RSS paging (MiB) | sweep (s) | swept | deletes/s | peak RSS sweep (MiB) |\n\
         | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n",
    );
    for r in rows {
        out.push_str(&format!(
            "| {} | {:.2} | {:.2} | {:.1} | {:.1} | {} | {:.0} | {:.1} |\n",
            r.records,
            r.first_page_ms,
            r.page_all_secs,
            r.list_peak_mib,
            r.sweep_secs,
            r.swept,
            r.sweep_rate,
            r.sweep_peak_mib
        ));
    }
    if let Some(l) = lookalikes {
        out.push_str(&format!(
            "\nLook-alikes: {} Secrets of {} KiB: ListTokens listed {}, the sweep deleted {} (abandoned pending look-alikes), peak RSS {:.1} MiB\n",
            l.secrets, l.kib, l.listed, l.swept, l.peak_mib
        ));
    }
    out
}
