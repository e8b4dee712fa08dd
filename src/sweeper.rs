//! The sweeper: deletes tokend's records whose tokens expired more than a grace period ago. One
//! replica sweeps at a time, chosen through a coordination.k8s.io Lease; it never touches a
//! Secret that is not a tokend record (type, label and name all tokend's).

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::Client;
use std::time::Instant;

use std::sync::Arc;

use crate::cluster::Cluster;
use crate::leader_election::{LeaderElection, LeaseTiming};
use crate::metrics::SweepMetrics;
use crate::service::{KeyError, KeySource, RecordKey, RecordKeys, TokenRecord};
use crate::vocabulary::{MANAGED_BY_LABEL, MANAGED_BY_VALUE, RECORD_SECRET_TYPE};

/// Name of the Lease the replicas compete for.
pub const LEASE_NAME: &str = "tokend-sweeper";

/// How the sweeper runs.
#[derive(Debug, Clone)]
pub struct SweeperOptions {
    /// Time between sweeps.
    pub interval: Duration,
    /// How the sweeper's Lease is held.
    pub lease: LeaseTiming,
    /// How long after expiry a record is kept (so ListTokens can still show EXPIRED ones).
    pub grace: Duration,
    /// Namespace of the Lease.
    pub lease_namespace: String,
    /// This replica's name in the Lease.
    pub identity: String,
    /// Records read per API call (one page).
    pub page_size: u32,
    /// Deletes in flight at once.
    pub concurrency: usize,
    /// Most deletes per second; 0 for no limit.
    pub delete_rate: u32,
    /// How old a record still pending (its token never confirmed issued) must be before it is
    /// deleted: longer than any IssueToken takes.
    pub pending_grace: Duration,
}

impl Default for SweeperOptions {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(300),
            lease: LeaseTiming::default(),
            grace: Duration::from_secs(24 * 3600),
            lease_namespace: "tokend".into(),
            identity: "tokend".into(),
            page_size: 500,
            concurrency: 4,
            delete_rate: 50,
            pending_grace: Duration::from_secs(300),
        }
    }
}

/// Runs forever: while this replica holds the lease, sweep every interval. Records are verified
/// with the key in tokend's own namespace ([`KeySource::default`]).
pub async fn run(client: Client, options: SweeperOptions) {
    let keys = Arc::new(RecordKeys::new(KeySource::default()));
    run_with(Cluster::new(client), options, SweepMetrics::default(), keys).await;
}

/// [`run`], verifying records with `keys` and counting each sweep's work into `metrics`. The
/// sweep in progress is dropped the moment the lease can no longer be guaranteed ours.
pub async fn run_with(
    cluster: Cluster,
    options: SweeperOptions,
    metrics: SweepMetrics,
    keys: Arc<RecordKeys>,
) {
    let election = LeaderElection::new(
        cluster.clone(),
        &options.lease_namespace,
        LEASE_NAME,
        &options.identity,
        options.lease,
    );
    election
        .lead(|| {
            let (cluster, options, metrics, keys) = (
                cluster.clone(),
                options.clone(),
                metrics.clone(),
                keys.clone(),
            );
            async move {
                loop {
                    match sweep(&cluster, &options, &metrics, &keys).await {
                        Ok(report) => tracing::debug!(
                            examined = report.examined,
                            deleted = report.deleted,
                            "sweep done"
                        ),
                        Err(e) => {
                            tracing::warn!(error = %e, "sweep failed; trying again next interval")
                        }
                    }
                    tokio::time::sleep(options.interval).await;
                }
            }
        })
        .await;
}

/// What one sweep did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SweepReport {
    /// Records looked at.
    pub examined: u64,
    /// Records deleted.
    pub deleted: u64,
}

/// Deletes, in every namespace, each sealed record whose token expired more than `grace` ago,
/// and each record still pending `pending_grace` after it was written (an issue whose undo could
/// not run: no caller received its token). It acts only on what someone unable to delete the
/// record cannot change: the sealed expiry, and the API server's own creationTimestamp,
/// immutability and uid. It reads records a page at a time, as metadata only, so its memory
/// follows the page size, not the number of records; deletes run a few at a time and never
/// faster than the configured rate.
pub async fn sweep(
    cluster: &Cluster,
    options: &SweeperOptions,
    metrics: &SweepMetrics,
    keys: &RecordKeys,
) -> Result<SweepReport, SweepError> {
    let started = Instant::now();
    let result = match keys.get(cluster).await {
        Ok(key) => sweep_pages(cluster, options, metrics, key).await,
        Err(e) => Err(e.into()),
    };
    metrics.duration.0.observe(started.elapsed().as_secs_f64());
    if result.is_err() {
        metrics.failures.inc();
    }
    if let Ok(report) = &result {
        metrics
            .last_examined
            .set(i64::try_from(report.examined).unwrap_or(i64::MAX));
        metrics
            .last_deleted
            .set(i64::try_from(report.deleted).unwrap_or(i64::MAX));
    }
    result
}

/// Why a sweep stopped.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    /// The record key is not available.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// A Kubernetes call failed.
    #[error(transparent)]
    Cluster(#[from] crate::cluster::Error),
}

/// Why a record is deleted.
#[derive(Debug, Clone, Copy)]
enum Due {
    /// Its sealed expiry, plus the grace period, has passed.
    Expired,
    /// It is still pending long after it was written.
    Abandoned,
}

async fn sweep_pages(
    cluster: &Cluster,
    options: &SweeperOptions,
    metrics: &SweepMetrics,
    key: &RecordKey,
) -> Result<SweepReport, SweepError> {
    let grace = SignedDuration::try_from(options.grace).unwrap_or(SignedDuration::MAX);
    let pending_grace =
        SignedDuration::try_from(options.pending_grace).unwrap_or(SignedDuration::MAX);
    let limiter = DeleteRate::new(options.delete_rate);
    let selector = format!("{MANAGED_BY_LABEL}={MANAGED_BY_VALUE}");
    let mut report = SweepReport::default();
    let mut continue_token = None;
    loop {
        let page = cluster
            .record_page(
                None,
                &selector,
                options.page_size,
                continue_token.as_deref(),
            )
            .await?;
        let now = Timestamp::now();
        report.examined += page.items.len() as u64;
        metrics.examined.inc_by(page.items.len() as u64);
        let due: Vec<(TokenRecord, Due)> = page
            .items
            .iter()
            .filter_map(TokenRecord::from_metadata)
            .filter_map(|record| {
                let past = |t: Option<Timestamp>, after: SignedDuration| {
                    t.is_some_and(|t| t.checked_add(after).is_ok_and(|end| end <= now))
                };
                if record.is_sealed_by(key) {
                    past(record.expiration, grace).then_some((record, Due::Expired))
                } else if record.pending {
                    // issued_at is the API server's creationTimestamp, which no one can change.
                    past(record.issued_at, pending_grace).then_some((record, Due::Abandoned))
                } else {
                    // Forged or altered: nothing it says is acted on.
                    None
                }
            })
            .collect();
        let deleted: Vec<bool> = futures::stream::iter(due)
            .map(|(record, why)| {
                let limiter = &limiter;
                async move {
                    limiter.wait().await;
                    delete_record(cluster, &record, why).await
                }
            })
            .buffer_unordered(options.concurrency.max(1))
            .try_collect()
            .await?;
        let count = deleted.into_iter().filter(|d| *d).count() as u64;
        report.deleted += count;
        metrics.deleted.inc_by(count);
        match page.continue_token {
            Some(next) => continue_token = Some(next),
            None => return Ok(report),
        }
    }
}

/// Deletes one record if it is unchanged since it was checked; audits what it deleted.
async fn delete_record(
    cluster: &Cluster,
    record: &TokenRecord,
    why: Due,
) -> Result<bool, crate::cluster::Error> {
    let name = record.token_id.secret_name();
    let resource_version = match why {
        Due::Expired => record.resource_version.clone(),
        Due::Abandoned => {
            // A confirmed record is immutable, and that cannot be undone: one that merely wears
            // the pending label again (someone re-added it) is not abandoned.
            let Some(facts) = cluster.secret_facts(&record.namespace, &name).await? else {
                return Ok(false);
            };
            if facts.immutable
                || facts.type_ != RECORD_SECRET_TYPE
                || facts.uid != record.object_uid
            {
                return Ok(false);
            }
            facts.resource_version
        }
    };
    let deleted = cluster
        .delete_secret_if_unchanged(
            &record.namespace,
            &name,
            &record.object_uid,
            &resource_version,
        )
        .await?;
    if deleted {
        tracing::info!(
            target: "tokend::service::audit",
            action = "sweep",
            outcome = match why {
                Due::Expired => "deleted: expired",
                Due::Abandoned => "deleted: pending, no caller received its token",
            },
            namespace = %record.namespace,
            service_account = %record.service_account,
            token_id = %record.token_id,
            expiration = ?record.expiration,
        );
    }
    Ok(deleted)
}

/// Spaces deletes evenly at `per_second` across all of a sweep's concurrent deletes, so a
/// backlog of expired records is worked off without a burst against the API server.
struct DeleteRate {
    ticks: Option<tokio::sync::Mutex<tokio::time::Interval>>,
}

impl DeleteRate {
    fn new(per_second: u32) -> Self {
        let ticks = (per_second > 0).then(|| {
            let mut interval = tokio::time::interval(Duration::from_secs(1) / per_second);
            // After a pause (a slow API call), continue at the rate rather than catch up.
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tokio::sync::Mutex::new(interval)
        });
        Self { ticks }
    }

    async fn wait(&self) {
        if let Some(ticks) = &self.ticks {
            ticks.lock().await.tick().await;
        }
    }
}
