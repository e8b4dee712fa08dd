//! `tokend-bench`: runs bounded load against tokend and its baselines and prints (and writes as
//! JSON and a chart) latency percentiles, throughput, API calls per token and tokend's RSS.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;
use futures::future::BoxFuture;
use serde::Serialize;
use tokend_bench::backend::{Backend, unique_name};
use tokend_bench::calls::CallCounter;
use tokend_bench::kubectl::{DEFAULT_KUBECTL, Kubectl};
use tokend_bench::load::{self, LoadResult};
use tokend_bench::memory::{self, Rss};
use tokend_bench::raw::RawIssuer;
use tokend_bench::report::{self, Measurement, Ratio, Row};
use tokend_bench::scale;
use tokend_bench::via_tokend::{Auth, ServiceIssuer, TokendIssuer, TokendServer};
use tokend_bench::{Issuer, Mode, Workload, chart};

/// Load generator for tokend, against the raw kube-rs floor and kubectl-per-token.
#[derive(Debug, Parser, Serialize)]
#[command(version)]
struct Args {
    /// Admin kubeconfig of the Kubernetes API to use; default: an embedded emulator.
    #[arg(long, env = "TOKEND_BENCH_KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
    /// Modes to run, comma-separated: raw, kubectl, tokend; and two diagnostics: service
    /// (tokend's service layer without gRPC) and grpc-floor (a request tokend rejects before
    /// any Kubernetes call).
    #[arg(long, value_delimiter = ',', default_value = "raw,kubectl,tokend")]
    modes: Vec<Mode>,
    /// Operations per run (every mode but kubectl).
    #[arg(long, default_value_t = 1000)]
    ops: usize,
    /// Operations per kubectl run (a process each, so far slower).
    #[arg(long, default_value_t = 100)]
    kubectl_ops: usize,
    /// Concurrency levels, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,4,16,32")]
    concurrency: Vec<usize>,
    /// What one operation is.
    #[arg(long, value_enum, default_value = "issue")]
    workload: WorkloadArg,
    /// Times every mode and concurrency is run; the report gives medians over them.
    #[arg(long, default_value_t = 1)]
    repeat: usize,
    /// Unrecorded operations before each run (connections, caches).
    #[arg(long, default_value_t = 20)]
    warmup: usize,
    /// How tokend authenticates the benchmark (kubernetes: the admin token, cached TokenReview).
    #[arg(long, value_enum, default_value = "none")]
    auth: Auth,
    /// tokend's caller TokenReview cache TTL, in seconds.
    #[arg(long, default_value_t = 10)]
    auth_cache_ttl_secs: u64,
    /// Run tokend as this binary (`tokend serve`) instead of in-process; its RSS is then reported.
    #[arg(long)]
    tokend_bin: Option<PathBuf>,
    /// The kubectl to run.
    #[arg(long, default_value = DEFAULT_KUBECTL)]
    kubectl: PathBuf,
    /// Write the report as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Draw the latency-vs-concurrency chart (PNG) here.
    #[arg(long)]
    chart: Option<PathBuf>,
    /// TrueType font for the chart's text.
    #[arg(long, default_value = chart::DEFAULT_FONT)]
    font: PathBuf,
    /// Scale mode instead of load: for each record count N (comma-separated), write N sealed
    /// records directly, then measure tokend (as --tokend-bin, required) paging them with
    /// ListTokens, sweeping them, and the first page's latency.
    #[arg(long, value_delimiter = ',')]
    scale: Vec<usize>,
    /// Scale mode: look-alike Secrets (tokend's labels, ~--lookalike-kib of data each) to page
    /// and sweep after the sizes; 0 skips them.
    #[arg(long, default_value_t = 0)]
    lookalikes: usize,
    /// Scale mode: KiB of data in each look-alike.
    #[arg(long, default_value_t = 900)]
    lookalike_kib: usize,
    /// Scale mode: ListTokens page size.
    #[arg(long, default_value_t = 500)]
    page_size: i32,
    /// Scale mode: the sweeper's --sweep-delete-rate.
    #[arg(long, default_value_t = 2000)]
    sweep_delete_rate: u32,
}

/// The `--workload` values.
#[derive(Debug, Clone, Copy, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
enum WorkloadArg {
    /// IssueToken only.
    Issue,
    /// IssueToken then RevokeToken of the same token; the pair's latency.
    IssueRevoke,
}

impl From<WorkloadArg> for Workload {
    fn from(w: WorkloadArg) -> Self {
        match w {
            WorkloadArg::Issue => Workload::Issue,
            WorkloadArg::IssueRevoke => Workload::IssueRevoke,
        }
    }
}

/// Everything the JSON report holds.
#[derive(Serialize)]
struct JsonReport<'a> {
    command: String,
    args: &'a Args,
    measurements: &'a [Measurement],
    rows: &'a [Row],
    ratios: &'a [Ratio],
    skipped: &'a [(Mode, String)],
    bench_process_rss: Option<Rss>,
}

/// The modes that will run, each ready, and the reasons for those that will not.
struct Drivers {
    raw: Option<(RawIssuer, CallCounter)>,
    service: Option<(ServiceIssuer, CallCounter)>,
    tokend: Option<(TokendIssuer, Option<u32>)>,
    kubectl: Option<Kubectl>,
    skipped: Vec<(Mode, String)>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.concurrency.contains(&0) {
        bail!("--concurrency levels must be at least 1");
    }
    let workload = Workload::from(args.workload);
    let backend = Backend::start(args.kubeconfig.as_deref()).await?;
    if !args.scale.is_empty() || args.lookalikes > 0 {
        let options = scale::ScaleOptions {
            sizes: args.scale.clone(),
            lookalikes: args.lookalikes,
            lookalike_kib: args.lookalike_kib,
            tokend_bin: args
                .tokend_bin
                .clone()
                .context("scale mode runs tokend as its own process: pass --tokend-bin")?,
            page_size: args.page_size,
            delete_rate: args.sweep_delete_rate,
        };
        let (rows, lookalikes) = scale::run(&backend, &options).await?;
        println!("{}", scale::table(&rows, lookalikes.as_ref()));
        if let Some(path) = &args.json {
            let json = serde_json::json!({ "scale": rows, "lookalikes": lookalikes });
            std::fs::write(path, serde_json::to_vec_pretty(&json)?)
                .with_context(|| format!("writing {}", path.display()))?;
        }
        return Ok(());
    }
    let namespace = unique_name("tokend-bench");
    backend.prepare_namespace(&namespace).await?;
    let admin = kube::Client::try_from(backend.config()).context("kube client")?;

    let mut server = None;
    let mut drivers = Drivers {
        raw: None,
        service: None,
        tokend: None,
        kubectl: None,
        skipped: Vec::new(),
    };
    for mode in &args.modes {
        match mode {
            Mode::Raw => {
                let counter = CallCounter::default();
                let client = counter.client(backend.config())?;
                drivers.raw = Some((RawIssuer::new(client, &namespace), counter));
            }
            Mode::Service => {
                let counter = CallCounter::default();
                let client = counter.client(backend.config())?;
                drivers.service = Some((ServiceIssuer::new(client, &namespace), counter));
            }
            Mode::Tokend | Mode::GrpcFloor if drivers.tokend.is_some() => {}
            Mode::Tokend | Mode::GrpcFloor => {
                let ttl = Duration::from_secs(args.auth_cache_ttl_secs);
                let mut started = match &args.tokend_bin {
                    Some(bin) => {
                        TokendServer::process(bin, backend.kubeconfig(), args.auth, ttl).await?
                    }
                    None => TokendServer::in_process(backend.config(), args.auth, ttl).await?,
                };
                let bearer = match args.auth {
                    Auth::None => None,
                    Auth::Kubernetes => Some(
                        backend
                            .admin_token()
                            .context("--auth kubernetes needs a kubeconfig with a bearer token")?
                            .to_owned(),
                    ),
                };
                let client = started.client(bearer.as_deref()).await?;
                drivers.tokend = Some((TokendIssuer::new(client, &namespace), started.pid()));
                server = Some(started);
            }
            Mode::Kubectl => {
                match Kubectl::find(&args.kubectl, backend.kubeconfig(), &namespace).await {
                    Ok(kubectl) => drivers.kubectl = Some(kubectl),
                    Err(reason) => {
                        println!("kubectl mode skipped: {reason}");
                        drivers.skipped.push((Mode::Kubectl, reason));
                    }
                }
            }
        }
    }

    let mut measurements = Vec::new();
    for repeat in 0..args.repeat.max(1) {
        for &concurrency in &args.concurrency {
            for &mode in &args.modes {
                let measured =
                    measure(&drivers, &admin, &args, mode, workload, concurrency, repeat).await?;
                if let Some(m) = measured {
                    print_measurement(&m);
                    measurements.push(m);
                }
            }
        }
    }
    if let Some(server) = server {
        server.stop().await;
    }
    backend.drop_namespace(&namespace).await?;

    let rows = report::rows(&measurements);
    let ratios = report::ratios(&rows);
    println!(
        "\nmedians over {} repeat(s), workload {:?}:\n{}",
        args.repeat.max(1),
        workload,
        report::rows_table(&rows)
    );
    println!("{}", report::ratios_table(&ratios));
    let bench_process_rss = memory::rss(None);
    if let Some(rss) = bench_process_rss {
        println!(
            "bench process (load generator{}): VmHWM {:.1} MiB, VmRSS {:.1} MiB",
            if args.tokend_bin.is_none() {
                ", emulator and tokend"
            } else {
                " and emulator"
            },
            rss.peak_kib as f64 / 1024.0,
            rss.current_kib as f64 / 1024.0
        );
    }
    if let Some(path) = &args.json {
        let report = JsonReport {
            command: std::env::args().collect::<Vec<_>>().join(" "),
            args: &args,
            measurements: &measurements,
            rows: &rows,
            ratios: &ratios,
            skipped: &drivers.skipped,
            bench_process_rss,
        };
        let json = serde_json::to_string_pretty(&report).context("serialising the report")?;
        std::fs::write(path, json).with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = &args.chart {
        match chart::load_font(&args.font) {
            Ok(()) => {
                let title = format!(
                    "tokend vs baselines, {:?}, {} ops/run, median of {}",
                    workload,
                    args.ops,
                    args.repeat.max(1)
                );
                chart::draw(&rows, &title, path)?;
                println!("chart written to {}", path.display());
            }
            Err(e) => println!("chart skipped: {e:#}"),
        }
    }
    Ok(())
}

/// Runs one mode at one concurrency (after a warm-up), or `None` when the mode is not available.
async fn measure(
    drivers: &Drivers,
    admin: &kube::Client,
    args: &Args,
    mode: Mode,
    workload: Workload,
    concurrency: usize,
    repeat: usize,
) -> anyhow::Result<Option<Measurement>> {
    let revoke = workload == Workload::IssueRevoke;
    let ops = args.ops;
    let (series, result, calls, rss) = match mode {
        Mode::Raw => {
            let Some((issuer, counter)) = &drivers.raw else {
                return Ok(None);
            };
            let op = issue_op(issuer.clone(), revoke);
            let result = warm_then_run(args.warmup, ops, concurrency, op, || {
                counter.take();
            })
            .await;
            ("raw".to_owned(), result, Some(counter.take()), None)
        }
        Mode::Service => {
            let Some((issuer, counter)) = &drivers.service else {
                return Ok(None);
            };
            let op = issue_op(issuer.clone(), revoke);
            let result = warm_then_run(args.warmup, ops, concurrency, op, || {
                counter.take();
            })
            .await;
            ("service".to_owned(), result, Some(counter.take()), None)
        }
        Mode::Tokend => {
            let Some((issuer, pid)) = &drivers.tokend else {
                return Ok(None);
            };
            let op = issue_op(issuer.clone(), revoke);
            let result = warm_then_run(args.warmup, ops, concurrency, op, || {}).await;
            let series = match args.auth {
                Auth::None => "tokend",
                Auth::Kubernetes => "tokend+auth",
            };
            let rss = pid.and_then(|pid| memory::rss(Some(pid)));
            (series.to_owned(), result, None, rss)
        }
        Mode::GrpcFloor => {
            let Some((issuer, _)) = &drivers.tokend else {
                return Ok(None);
            };
            let op = {
                let issuer = issuer.clone();
                move |_| {
                    let issuer = issuer.clone();
                    async move { issuer.rejected().await }
                }
            };
            let result = warm_then_run(args.warmup, ops, concurrency, op, || {}).await;
            ("grpc-floor".to_owned(), result, None, None)
        }
        Mode::Kubectl => {
            let Some(kubectl) = &drivers.kubectl else {
                return Ok(None);
            };
            let ops = args.kubectl_ops;
            let warmup = args.warmup.min(3);
            let names: Vec<String> = (0..warmup + ops)
                .map(|_| unique_name("kubectl-bench"))
                .collect();
            kubectl.prepare_secrets(admin.clone(), &names).await?;
            let names = Arc::new(names);
            let run_range = |offset: usize, count: usize, c: usize| {
                let kubectl = kubectl.clone();
                let names = names.clone();
                load::run(count, c, move |i| {
                    let kubectl = kubectl.clone();
                    let names = names.clone();
                    async move {
                        let name = names
                            .get(offset + i)
                            .context("no Secret prepared for this operation")?;
                        kubectl.create_token(name).await?;
                        if revoke {
                            kubectl.delete_secret(name).await?;
                        }
                        Ok(())
                    }
                })
            };
            run_range(0, warmup, concurrency.min(warmup.max(1))).await;
            let result = run_range(warmup, ops, concurrency).await;
            let m = Measurement::new(
                "kubectl".into(),
                mode,
                workload,
                concurrency,
                repeat,
                ops,
                &result,
            );
            return Ok(Some(m));
        }
    };
    let mut m = Measurement::new(series, mode, workload, concurrency, repeat, ops, &result);
    if let Some(calls) = calls {
        m.api_calls_per_op = calls
            .into_iter()
            .map(|(k, v)| (k, v as f64 / ops.max(1) as f64))
            .collect();
    }
    m.tokend_rss = rss;
    Ok(Some(m))
}

/// A warm-up of `warmup` operations (then `reset`), then the measured `ops`.
/// One operation of a mode: issue a token, and revoke it again when `revoke` is set.
fn issue_op<I: Issuer>(
    issuer: I,
    revoke: bool,
) -> impl Fn(usize) -> BoxFuture<'static, anyhow::Result<()>> + Clone + Send + Sync + 'static {
    move |_| {
        let issuer = issuer.clone();
        Box::pin(async move {
            let id = issuer.issue().await?;
            if revoke {
                issuer.revoke(&id).await?;
            }
            Ok(())
        })
    }
}

async fn warm_then_run<F, Fut>(
    warmup: usize,
    ops: usize,
    concurrency: usize,
    op: F,
    reset: impl FnOnce(),
) -> LoadResult
where
    F: Fn(usize) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send + 'static,
{
    if warmup > 0 {
        load::run(warmup, concurrency.min(warmup), op.clone()).await;
    }
    reset();
    load::run(ops, concurrency, op).await
}

fn print_measurement(m: &Measurement) {
    let mut line = format!(
        "{:<12} c={:<3} run={} ok={:<6} err={:<4} p50={:.2}ms p90={:.2}ms p99={:.2}ms max={:.2}ms {:.1} ops/s",
        m.series,
        m.concurrency,
        m.repeat,
        m.ok,
        m.errors,
        m.p50_ms,
        m.p90_ms,
        m.p99_ms,
        m.max_ms,
        m.throughput
    );
    if let Some(rss) = m.tokend_rss {
        line.push_str(&format!(
            " tokend VmHWM={:.1}MiB VmRSS={:.1}MiB",
            rss.peak_kib as f64 / 1024.0,
            rss.current_kib as f64 / 1024.0
        ));
    }
    if let Some(e) = &m.first_error {
        line.push_str(&format!(" first error: {e}"));
    }
    println!("{line}");
}
