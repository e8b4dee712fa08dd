//! Turning load results into the report: one measurement per run, medians over repeats per
//! series and concurrency, tokend/baseline ratios, as a text table and as JSON.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::load::LoadResult;
use crate::memory::Rss;
use crate::{Mode, Workload};

/// One measured run of one series at one concurrency.
#[derive(Debug, Clone, Serialize)]
pub struct Measurement {
    /// The series: the mode's name, `tokend+auth` with caller authentication on.
    pub series: String,
    /// The mode.
    pub mode: Mode,
    /// Issue only, or issue + revoke pairs.
    pub workload: Workload,
    /// Operations in flight at once.
    pub concurrency: usize,
    /// Which repeat this was, from 0.
    pub repeat: usize,
    /// Operations attempted.
    pub ops: usize,
    /// Operations that succeeded.
    pub ok: usize,
    /// Operations that failed.
    pub errors: usize,
    /// The first failure, if any.
    pub first_error: Option<String>,
    /// Median latency, ms.
    pub p50_ms: f64,
    /// 90th percentile latency, ms.
    pub p90_ms: f64,
    /// 99th percentile latency, ms.
    pub p99_ms: f64,
    /// Slowest operation, ms.
    pub max_ms: f64,
    /// Successful operations per second.
    pub throughput: f64,
    /// Kubernetes API calls per operation by `METHOD resource`, where they were counted.
    pub api_calls_per_op: BTreeMap<String, f64>,
    /// RSS of the tokend process after the run, when tokend ran as its own process.
    pub tokend_rss: Option<Rss>,
}

impl Measurement {
    /// A measurement from a load result.
    pub fn new(
        series: String,
        mode: Mode,
        workload: Workload,
        concurrency: usize,
        repeat: usize,
        ops: usize,
        result: &LoadResult,
    ) -> Self {
        let ms = |q: f64| result.latency_us.value_at_quantile(q) as f64 / 1000.0;
        Self {
            series,
            mode,
            workload,
            concurrency,
            repeat,
            ops,
            ok: result.ok,
            errors: result.errors,
            first_error: result.first_error.clone(),
            p50_ms: ms(0.50),
            p90_ms: ms(0.90),
            p99_ms: ms(0.99),
            max_ms: result.latency_us.max() as f64 / 1000.0,
            throughput: result.throughput(),
            api_calls_per_op: BTreeMap::new(),
            tokend_rss: None,
        }
    }
}

/// The medians over repeats of one series at one concurrency.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// The series.
    pub series: String,
    /// Operations in flight at once.
    pub concurrency: usize,
    /// How many repeats the medians are over.
    pub repeats: usize,
    /// Operations per repeat.
    pub ops: usize,
    /// Failed operations, summed over repeats.
    pub errors: usize,
    /// Median over repeats of p50, ms.
    pub p50_ms: f64,
    /// Median over repeats of p90, ms.
    pub p90_ms: f64,
    /// Median over repeats of p99, ms.
    pub p99_ms: f64,
    /// Largest max over repeats, ms.
    pub max_ms: f64,
    /// Median over repeats of throughput, ops/s.
    pub throughput: f64,
    /// API calls per operation (from the last repeat).
    pub api_calls_per_op: BTreeMap<String, f64>,
}

/// tokend against a baseline at one concurrency.
#[derive(Debug, Clone, Serialize)]
pub struct Ratio {
    /// The tokend series (`tokend`, `tokend+auth`, `service`).
    pub series: String,
    /// The baseline series (`raw`, `kubectl`).
    pub baseline: String,
    /// Operations in flight at once.
    pub concurrency: usize,
    /// series p50 / baseline p50.
    pub p50_ratio: f64,
    /// series throughput / baseline throughput.
    pub throughput_ratio: f64,
}

/// The medians of every series at every concurrency, in series then concurrency order.
pub fn rows(measurements: &[Measurement]) -> Vec<Row> {
    let mut groups: BTreeMap<(String, usize), Vec<&Measurement>> = BTreeMap::new();
    for m in measurements {
        groups
            .entry((m.series.clone(), m.concurrency))
            .or_default()
            .push(m);
    }
    let mut rows: Vec<Row> = groups
        .into_iter()
        .map(|((series, concurrency), ms)| Row {
            series,
            concurrency,
            repeats: ms.len(),
            ops: ms.first().map_or(0, |m| m.ops),
            errors: ms.iter().map(|m| m.errors).sum(),
            p50_ms: median(ms.iter().map(|m| m.p50_ms)),
            p90_ms: median(ms.iter().map(|m| m.p90_ms)),
            p99_ms: median(ms.iter().map(|m| m.p99_ms)),
            max_ms: ms.iter().map(|m| m.max_ms).fold(0.0, f64::max),
            throughput: median(ms.iter().map(|m| m.throughput)),
            api_calls_per_op: ms
                .last()
                .map(|m| m.api_calls_per_op.clone())
                .unwrap_or_default(),
        })
        .collect();
    rows.sort_by_key(|r| (series_rank(&r.series), r.concurrency));
    rows
}

/// Every tokend-ish series against `raw` and `kubectl` at each concurrency both were run at.
pub fn ratios(rows: &[Row]) -> Vec<Ratio> {
    let find = |series: &str, c: usize| {
        rows.iter()
            .find(|r| r.series == series && r.concurrency == c)
    };
    let mut out = Vec::new();
    for row in rows
        .iter()
        .filter(|r| (2..=4).contains(&series_rank(&r.series)))
    {
        for baseline in ["raw", "kubectl"] {
            if let Some(base) = find(baseline, row.concurrency) {
                out.push(Ratio {
                    series: row.series.clone(),
                    baseline: baseline.to_owned(),
                    concurrency: row.concurrency,
                    p50_ratio: divide(row.p50_ms, base.p50_ms),
                    throughput_ratio: divide(row.throughput, base.throughput),
                });
            }
        }
    }
    out
}

/// The rows as a fixed-width text table.
pub fn rows_table(rows: &[Row]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<12} {:>4} {:>6} {:>4} {:>7} {:>9} {:>9} {:>9} {:>9} {:>9}  api calls/op",
        "series", "conc", "ops", "runs", "errors", "p50 ms", "p90 ms", "p99 ms", "max ms", "ops/s"
    );
    for r in rows {
        let calls = r
            .api_calls_per_op
            .iter()
            .map(|(k, v)| format!("{k} {v:.2}"))
            .collect::<Vec<_>>()
            .join(", ");
        let _ = writeln!(
            out,
            "{:<12} {:>4} {:>6} {:>4} {:>7} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>9.1}  {}",
            r.series,
            r.concurrency,
            r.ops,
            r.repeats,
            r.errors,
            r.p50_ms,
            r.p90_ms,
            r.p99_ms,
            r.max_ms,
            r.throughput,
            if calls.is_empty() { "-" } else { &calls }
        );
    }
    out
}

/// The ratios as a fixed-width text table.
pub fn ratios_table(ratios: &[Ratio]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<12} {:<8} {:>4} {:>10} {:>12}",
        "series", "vs", "conc", "p50 ratio", "ops/s ratio"
    );
    for r in ratios {
        let _ = writeln!(
            out,
            "{:<12} {:<8} {:>4} {:>10.3} {:>12.3}",
            r.series, r.baseline, r.concurrency, r.p50_ratio, r.throughput_ratio
        );
    }
    out
}

/// Report order: raw, kubectl, then tokend, tokend+auth, service, grpc-floor.
pub fn series_rank(series: &str) -> u8 {
    match series {
        "raw" => 0,
        "kubectl" => 1,
        "tokend" => 2,
        "tokend+auth" => 3,
        "service" => 4,
        _ => 5,
    }
}

fn divide(a: f64, b: f64) -> f64 {
    if b > 0.0 { a / b } else { f64::NAN }
}

/// The median of some numbers (the mean of the middle two for an even count); 0 for none.
pub fn median(values: impl Iterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = values.collect();
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::median;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median([3.0, 1.0, 2.0].into_iter()), 2.0);
        assert_eq!(median([4.0, 1.0, 2.0, 3.0].into_iter()), 2.5);
        assert_eq!(median(std::iter::empty()), 0.0);
    }
}
