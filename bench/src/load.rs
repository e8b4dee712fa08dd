//! The load loop: N operations spread over C concurrent workers, each latency recorded in an
//! HDR histogram, errors counted (and the first one kept to explain them).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// Significant figures the latency histograms keep.
const SIGFIGS: u8 = 3;
/// Longest latency recorded, in microseconds (an hour); longer ones saturate to it.
const MAX_US: u64 = 3_600_000_000;

/// The outcome of one load run.
#[derive(Debug, Clone)]
pub struct LoadResult {
    /// Operations that succeeded.
    pub ok: usize,
    /// Operations that failed.
    pub errors: usize,
    /// The first failure, as text.
    pub first_error: Option<String>,
    /// From the first operation's start to the last one's end.
    pub wall: Duration,
    /// Latency of successful operations, in microseconds.
    pub latency_us: Histogram<u64>,
}

impl LoadResult {
    /// Successful operations per second of wall time.
    pub fn throughput(&self) -> f64 {
        let secs = self.wall.as_secs_f64();
        if secs > 0.0 {
            self.ok as f64 / secs
        } else {
            0.0
        }
    }
}

/// Runs `op(0..ops)` with at most `concurrency` in flight; every index is run exactly once.
pub async fn run<F, Fut>(ops: usize, concurrency: usize, op: F) -> LoadResult
where
    F: Fn(usize) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency.max(1))
        .map(|_| {
            let next = next.clone();
            let op = op.clone();
            tokio::spawn(async move {
                let mut latency = new_histogram();
                let mut errors = 0usize;
                let mut first_error = None;
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= ops {
                        break;
                    }
                    let t = Instant::now();
                    match op(i).await {
                        Ok(()) => {
                            let us = u64::try_from(t.elapsed().as_micros()).unwrap_or(u64::MAX);
                            latency.saturating_record(us.max(1));
                        }
                        Err(e) => {
                            errors += 1;
                            first_error.get_or_insert_with(|| format!("{e:#}"));
                        }
                    }
                }
                (latency, errors, first_error)
            })
        })
        .collect();
    let mut result = LoadResult {
        ok: 0,
        errors: 0,
        first_error: None,
        wall: Duration::ZERO,
        latency_us: new_histogram(),
    };
    for worker in futures::future::join_all(workers).await {
        match worker {
            Ok((latency, errors, first_error)) => {
                // Same bounds on both sides, so adding cannot run out of range.
                if let Err(e) = result.latency_us.add(&latency) {
                    result
                        .first_error
                        .get_or_insert_with(|| format!("histogram: {e}"));
                }
                result.errors += errors;
                if result.first_error.is_none() {
                    result.first_error = first_error;
                }
            }
            Err(e) => {
                result.errors += 1;
                result
                    .first_error
                    .get_or_insert_with(|| format!("worker panicked: {e}"));
            }
        }
    }
    result.ok = usize::try_from(result.latency_us.len()).unwrap_or(usize::MAX);
    result.wall = started.elapsed();
    result
}

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_US, SIGFIGS)
        .expect("1 us to 1 h at 3 significant figures are valid histogram bounds")
}
