//! Leader election over a coordination.k8s.io Lease, with client-go's observed-time semantics:
//! a candidate takes the Lease only after it has itself seen the record unchanged for the
//! lease duration by its own monotonic clock (the holder's `renewTime` is compared for change,
//! never with the local clock), and a holder stops acting as leader once it has not renewed
//! within its renew deadline, which is shorter than the lease duration. So neither clock skew
//! nor a slow API server gives two leaders. One implementation serves the sweeper and the
//! ServiceAccountToken controller.

use std::future::Future;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use tokio::time::Instant;

use crate::cluster::{Cluster, LeaseRecord, LeaseWrite};

/// How a Lease is held (client-go's LeaseDuration, RenewDeadline and RetryPeriod).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseTiming {
    /// How long others must see the record unchanged before they may take it.
    pub lease_duration: Duration,
    /// How long the holder keeps acting without a successful renewal; shorter than
    /// `lease_duration`, so the holder has stopped before anyone may take over.
    pub renew_deadline: Duration,
    /// Time between attempts to take or renew.
    pub retry_period: Duration,
}

impl Default for LeaseTiming {
    /// client-go's (and kube-controller-manager's) defaults: 15 s, 10 s, 2 s.
    fn default() -> Self {
        Self {
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

impl LeaseTiming {
    /// Refuses timings under which two replicas could both act as leader, or a holder could
    /// never renew in time.
    pub fn check(&self) -> Result<(), String> {
        if self.lease_duration < Duration::from_secs(1) {
            return Err(
                "the lease duration must be at least 1s (a Lease counts whole seconds)".into(),
            );
        }
        if self.renew_deadline >= self.lease_duration {
            return Err("the lease renew deadline must be shorter than the lease duration".into());
        }
        if self.retry_period.is_zero() || self.retry_period >= self.renew_deadline {
            return Err(
                "the lease retry period must be above 0 and shorter than the renew deadline".into(),
            );
        }
        Ok(())
    }

    fn duration_seconds(&self) -> i32 {
        // Rounded up: a fraction of a second more is always safe for the others' wait.
        let seconds =
            self.lease_duration.as_secs() + u64::from(self.lease_duration.subsec_nanos() > 0);
        i32::try_from(seconds).unwrap_or(i32::MAX).max(1)
    }
}

/// What a candidate does with the Lease it just read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// There is no Lease: create it.
    Create,
    /// It is this replica's: renew it.
    Renew,
    /// It is free, or this replica has seen it unchanged for its whole duration: take it.
    Take,
    /// Another replica holds it.
    Wait,
}

/// Judges a Lease: `record` as just read, first seen in this form at `unchanged_since` (this
/// replica's monotonic clock), at `now`. The record's own times are never compared with the
/// local clock; its duration is the holder's promise (`fallback` when it names none).
pub fn judge(
    identity: &str,
    record: Option<&LeaseRecord>,
    unchanged_since: Instant,
    now: Instant,
    fallback: Duration,
) -> Verdict {
    let Some(record) = record else {
        return Verdict::Create;
    };
    if record.holder == identity {
        return Verdict::Renew;
    }
    if record.holder.is_empty() {
        return Verdict::Take;
    }
    let duration = record
        .duration_seconds
        .and_then(|s| u64::try_from(s).ok())
        .filter(|s| *s > 0)
        .map_or(fallback, Duration::from_secs);
    if now.saturating_duration_since(unchanged_since) >= duration {
        Verdict::Take
    } else {
        Verdict::Wait
    }
}

/// The last form of the record this replica saw, and when (its own clock) it first saw it.
#[derive(Debug, Default)]
struct Observed(Option<(LeaseRecord, Instant)>);

impl Observed {
    /// When `record` was first seen as it is: `now` if it changed since the last look.
    fn see(&mut self, record: &LeaseRecord, now: Instant) -> Instant {
        match &self.0 {
            Some((seen, at)) if seen == record => *at,
            _ => {
                self.0 = Some((record.clone(), now));
                now
            }
        }
    }
}

/// What one attempt to take or renew found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Attempt {
    /// This replica holds the Lease now.
    Held,
    /// Another replica holds it.
    HeldByOther,
    /// A rival's write came first; nothing is known yet.
    Raced,
}

/// One replica's candidacy for one Lease.
pub struct LeaderElection {
    cluster: Cluster,
    namespace: String,
    name: String,
    identity: String,
    timing: LeaseTiming,
    observed: Observed,
}

impl LeaderElection {
    /// A candidacy of `identity` for the Lease `namespace/name`.
    pub fn new(
        cluster: Cluster,
        namespace: &str,
        name: &str,
        identity: &str,
        timing: LeaseTiming,
    ) -> Self {
        let timing = if timing.check().is_ok() {
            timing
        } else {
            tracing::warn!(?timing, "unsafe lease timing; using client-go's defaults");
            LeaseTiming::default()
        };
        Self {
            cluster,
            namespace: namespace.into(),
            name: name.into(),
            identity: identity.into(),
            timing,
            observed: Observed::default(),
        }
    }

    /// Runs `work` whenever this replica leads, forever: waits until it holds the Lease, runs
    /// `work` (again, after a retry period, should it end) while renewing every retry period,
    /// and drops `work` the moment a renewal has not succeeded within the renew deadline of
    /// the last successful one's start; then it is a candidate again.
    pub async fn lead<W, Fut>(mut self, mut work: W)
    where
        W: FnMut() -> Fut,
        Fut: Future<Output = ()>,
    {
        loop {
            let renewed_at = self.acquire().await;
            tracing::info!(lease = %self.name, identity = %self.identity, "lease taken: leading");
            let retry = self.timing.retry_period;
            let working = async {
                loop {
                    work().await;
                    tokio::time::sleep(retry).await;
                }
            };
            tokio::select! {
                () = working => {}
                () = self.keep(renewed_at) => tracing::warn!(
                    lease = %self.name,
                    identity = %self.identity,
                    "lease not renewed within the renew deadline: stopped leading"
                ),
            }
        }
    }

    /// Tries every retry period until this replica holds the Lease; answers when the
    /// successful attempt started.
    async fn acquire(&mut self) -> Instant {
        loop {
            let started = Instant::now();
            match self.attempt().await {
                Ok(Attempt::Held) => return started,
                Ok(Attempt::HeldByOther | Attempt::Raced) => {
                    tracing::debug!(lease = %self.name, "another replica holds the lease")
                }
                Err(e) => tracing::warn!(lease = %self.name, error = %e, "cannot reach the lease"),
            }
            tokio::time::sleep(self.timing.retry_period).await;
        }
    }

    /// Renews every retry period; returns when leadership can no longer be guaranteed: no
    /// renewal succeeded within the renew deadline of the last good one's start (the start,
    /// as others may have seen the write as early as that), or another replica holds it.
    async fn keep(&mut self, mut renewed_at: Instant) {
        let timing = self.timing;
        loop {
            let deadline = renewed_at + timing.renew_deadline;
            tokio::time::sleep_until(deadline.min(Instant::now() + timing.retry_period)).await;
            let renewal = tokio::time::timeout_at(deadline, async {
                loop {
                    let started = Instant::now();
                    match self.attempt().await {
                        Ok(Attempt::Held) => return Some(started),
                        Ok(Attempt::HeldByOther) => return None,
                        Ok(Attempt::Raced) => {}
                        Err(e) => tracing::warn!(
                            lease = %self.name,
                            error = %e,
                            "cannot renew the lease; trying again until the renew deadline"
                        ),
                    }
                    tokio::time::sleep(timing.retry_period).await;
                }
            })
            .await;
            match renewal {
                Ok(Some(started)) => renewed_at = started,
                Ok(None) | Err(_) => return,
            }
        }
    }

    /// One read and, when the verdict allows, one compare-and-swap write.
    async fn attempt(&mut self) -> Result<Attempt, crate::cluster::Error> {
        let current = self.cluster.read_lease(&self.namespace, &self.name).await?;
        let now = Instant::now();
        let unchanged_since = current
            .as_ref()
            .map_or(now, |record| self.observed.see(record, now));
        let verdict = judge(
            &self.identity,
            current.as_ref(),
            unchanged_since,
            now,
            self.timing.lease_duration,
        );
        let duration_seconds = Some(self.timing.duration_seconds());
        // For people reading the Lease (kubectl): no replica decides anything by these times.
        let wall = Some(Timestamp::now());
        let record = match (verdict, current) {
            (Verdict::Wait, _) => return Ok(Attempt::HeldByOther),
            (Verdict::Renew, Some(current)) => LeaseRecord {
                duration_seconds,
                renew_time: wall,
                ..current
            },
            (Verdict::Take, Some(current)) => LeaseRecord {
                holder: self.identity.clone(),
                duration_seconds,
                renew_time: wall,
                acquire_time: wall,
                transitions: current.transitions.saturating_add(1),
                ..current
            },
            (_, _) => LeaseRecord {
                holder: self.identity.clone(),
                duration_seconds,
                renew_time: wall,
                resource_version: None,
                acquire_time: wall,
                transitions: 0,
            },
        };
        match self
            .cluster
            .write_lease(&self.namespace, &self.name, &record)
            .await?
        {
            LeaseWrite::Written(stored) => {
                self.observed.see(&stored, Instant::now());
                Ok(Attempt::Held)
            }
            LeaseWrite::Lost => Ok(Attempt::Raced),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(holder: &str, renewed: &str, version: &str) -> LeaseRecord {
        LeaseRecord {
            holder: holder.into(),
            duration_seconds: Some(15),
            renew_time: Some(renewed.parse().expect("timestamp")),
            resource_version: Some(version.into()),
            acquire_time: None,
            transitions: 0,
        }
    }

    #[test]
    fn a_lease_is_judged_by_how_long_this_replica_saw_it_unchanged() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let fallback = s(15);
        // The local wall clock is irrelevant: renewTime values an hour in the past (a holder
        // whose clock is behind, or ours ahead) or in the future are only compared for change.
        let stale_by_wall_clock = record("b", "2020-01-01T00:00:00Z", "7");
        let from_the_future = record("b", "2099-01-01T00:00:00Z", "7");
        let mut released = record("", "2020-01-01T00:00:00Z", "7");
        released.duration_seconds = None;
        let ours = record("a", "2020-01-01T00:00:00Z", "7");
        let mut no_duration = record("b", "2020-01-01T00:00:00Z", "7");
        no_duration.duration_seconds = None;
        #[rustfmt::skip]
        let table: Vec<(&str, Option<&LeaseRecord>, Duration, Duration, Verdict)> = vec![
            // (what, record, first seen at t0 + this, now = t0 + this, verdict)
            ("no lease", None, s(0), s(0), Verdict::Create),
            ("ours", Some(&ours), s(0), s(0), Verdict::Renew),
            ("ours, unchanged for ages", Some(&ours), s(0), s(600), Verdict::Renew),
            ("released", Some(&released), s(0), s(0), Verdict::Take),
            ("skewed: renewTime long past, just seen", Some(&stale_by_wall_clock), s(0), s(0), Verdict::Wait),
            ("skewed: renewTime long past, seen 14 s", Some(&stale_by_wall_clock), s(0), s(14), Verdict::Wait),
            ("seen unchanged for the duration", Some(&stale_by_wall_clock), s(0), s(15), Verdict::Take),
            ("renewTime in the future, unchanged 15 s", Some(&from_the_future), s(0), s(15), Verdict::Take),
            ("changed 5 s ago", Some(&from_the_future), s(20), s(25), Verdict::Wait),
            ("no duration: the fallback", Some(&no_duration), s(0), s(14), Verdict::Wait),
            ("no duration: the fallback, passed", Some(&no_duration), s(0), s(15), Verdict::Take),
        ];
        for (what, record, seen, now, verdict) in table {
            let judged = judge("a", record, t0 + seen, t0 + now, fallback);
            assert_eq!(judged, verdict, "{what}");
        }
    }

    #[test]
    fn any_change_of_the_record_restarts_the_wait() {
        let t0 = Instant::now();
        let mut observed = Observed::default();
        let first = record("b", "2020-01-01T00:00:00Z", "7");
        assert_eq!(observed.see(&first, t0), t0);
        assert_eq!(observed.see(&first, t0 + Duration::from_secs(9)), t0);
        // A renewal (new renewTime and resourceVersion), even one whose renewTime went
        // backwards by the holder's clock, is a change.
        let renewed = record("b", "2019-01-01T00:00:00Z", "8");
        let later = t0 + Duration::from_secs(10);
        assert_eq!(observed.see(&renewed, later), later);
        assert_eq!(
            judge(
                "a",
                Some(&renewed),
                later,
                t0 + Duration::from_secs(24),
                Duration::ZERO
            ),
            Verdict::Wait
        );
    }

    #[test]
    fn unsafe_timings_are_refused() {
        let s = Duration::from_secs;
        assert!(LeaseTiming::default().check().is_ok());
        let timing = |lease, renew, retry| LeaseTiming {
            lease_duration: s(lease),
            renew_deadline: s(renew),
            retry_period: s(retry),
        };
        assert!(
            timing(10, 10, 2).check().is_err(),
            "renew deadline = lease duration"
        );
        assert!(timing(10, 5, 5).check().is_err(), "retry = renew deadline");
        assert!(timing(10, 5, 0).check().is_err(), "no retry period");
        assert!(timing(0, 0, 0).check().is_err());
    }
}
