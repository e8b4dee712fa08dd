//! The ServiceAccountToken controller: tokens declared as objects. One replica at a time runs it
//! (a coordination.k8s.io Lease, as the sweeper does); it issues through the token service as
//! the object's requester (only one its own webhook sealed), writes the Secret, keeps `Ready`
//! true to the facts and rotates before expiry. Everything it makes is owned by the resource, so
//! deleting it revokes the token through garbage collection, with or without tokend running (no
//! finalizer). The admission webhook that stamps the requester lives in [`admission`].
//!
//! | file | holds |
//! | --- | --- |
//! | `resource.rs` | the custom resource's Rust types, from which the CRD is generated |
//! | `reconcile.rs` | one reconciliation: issue, check, rotate, revoke |
//! | `status.rs` | conditions and their reasons |
//! | `objects.rs` | the Secret and ServiceAccount the controller owns (kube-rs calls) |
//! | `admission.rs` | the mutating webhook served over HTTPS |
//! | `requester.rs` | the seal proving the webhook wrote a requester |

pub mod admission;
mod objects;
mod reconcile;
mod requester;
pub mod resource;
pub mod status;

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use futures::StreamExt as _;
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::core::PartialObjectMeta;
use kube::runtime::controller::Controller;
use kube::runtime::watcher;
use kube::{Api, Client};

use crate::cluster::Cluster;
use crate::leader_election::{LeaderElection, LeaseTiming};
use crate::metrics::ControllerMetrics;
use crate::service::TokenService;
pub use resource::{ServiceAccountToken, ServiceAccountTokenSpec, ServiceAccountTokenStatus};

/// Name of the Lease the replicas compete for to run the controller.
pub const LEASE_NAME: &str = "tokend-controller";
/// Finalizer earlier versions put on every resource (they revoked its token before it went). Now
/// garbage collection does that; the controller removes this from objects that still carry it, so
/// none waits on a tokend that may never run again (a namespace stuck Terminating).
pub const LEGACY_FINALIZER: &str = "tokend.io/revoke-token";
/// Label on the Secret and ServiceAccount made for a resource: the resource's name. The
/// controller watches only objects carrying it.
pub const OWNER_LABEL: &str = "tokend.io/serviceaccounttoken";

/// What can go wrong in the controller.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A Kubernetes call failed.
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// The token service failed in a way worth retrying.
    #[error("token service: {0}")]
    Service(#[from] crate::service::Error),
    /// The object lacks what every stored object has (name, namespace, uid).
    #[error("object: {0}")]
    Object(String),
}

impl Error {
    /// The bounded `reason` label a failed reconciliation is counted under.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::Kube(_) => "kubernetes",
            Error::Service(_) => "service",
            Error::Object(_) => "object",
        }
    }
}

/// How the controller runs.
#[derive(Debug, Clone)]
pub struct ControllerOptions {
    /// Namespace of the Lease (tokend's own).
    pub lease_namespace: String,
    /// Name of the Lease ([`LEASE_NAME`]; tests sharing a namespace pick their own).
    pub lease_name: String,
    /// This replica's name in the Lease.
    pub identity: String,
    /// How the Lease is held.
    pub lease: LeaseTiming,
    /// Only resources matching this label selector are reconciled (sharding; tests).
    pub label_selector: Option<String>,
    /// How long a token replaced by rotation stays valid, so users of the old Secret content
    /// can pick up the new one.
    pub rotation_grace: Duration,
    /// The controller's clock (tests move it forward to see expiry).
    pub clock: Clock,
}

impl Default for ControllerOptions {
    fn default() -> Self {
        Self {
            lease_namespace: "tokend".into(),
            lease_name: LEASE_NAME.into(),
            identity: "tokend".into(),
            lease: LeaseTiming::default(),
            label_selector: None,
            rotation_grace: Duration::from_secs(60),
            clock: Clock::default(),
        }
    }
}

/// The controller's "now": the system clock plus an offset a test may move forward. Only the
/// controller's decisions (expired? rotate?) read it; the API server keeps its own time.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    offset_seconds: Arc<AtomicI64>,
}

impl Clock {
    /// The current time as the controller sees it.
    pub fn now(&self) -> Timestamp {
        let offset = SignedDuration::from_secs(self.offset_seconds.load(Ordering::Relaxed));
        Timestamp::now()
            .checked_add(offset)
            .unwrap_or_else(|_| Timestamp::now())
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let seconds = i64::try_from(by.as_secs()).unwrap_or(i64::MAX);
        self.offset_seconds.fetch_add(seconds, Ordering::Relaxed);
    }
}

/// What a reconciliation needs.
pub(crate) struct Context {
    client: Client,
    service: TokenService,
    options: ControllerOptions,
    metrics: ControllerMetrics,
    /// Failures in a row per resource (by uid), for the retry backoff; bounded like every cache.
    failures: moka::sync::Cache<String, u32>,
}

/// Runs forever: while this replica holds the Lease, run the controller; it is dropped the
/// moment the Lease can no longer be guaranteed ours. `client` must allow long reads (watches);
/// `service` is tokend's token service.
pub async fn run(
    client: Client,
    cluster: Cluster,
    service: TokenService,
    options: ControllerOptions,
    metrics: ControllerMetrics,
) {
    let election = LeaderElection::new(
        cluster,
        &options.lease_namespace,
        &options.lease_name,
        &options.identity,
        options.lease,
    );
    let context = Arc::new(Context {
        client,
        service: service.authorizing(),
        options,
        metrics,
        failures: moka::sync::Cache::new(crate::cache::MAX_CACHED),
    });
    election.lead(|| control(context.clone())).await;
}

/// The kube-runtime controller: ServiceAccountTokens, and the Secrets and ServiceAccounts they
/// own (metadata only, selected by [`OWNER_LABEL`], so no other Secret reaches tokend).
async fn control(context: Arc<Context>) {
    let client = context.client.clone();
    let metrics = context.metrics.clone();
    let mut config = watcher::Config::default();
    if let Some(selector) = &context.options.label_selector {
        config = config.labels(selector);
    }
    let owned = watcher::Config::default().labels(OWNER_LABEL);
    // Api<PartialObjectMeta<_>> asks for metadata only: no Secret's data reaches tokend.
    Controller::new(Api::<ServiceAccountToken>::all(client.clone()), config)
        .owns(
            Api::<PartialObjectMeta<Secret>>::all(client.clone()),
            owned.clone(),
        )
        .owns(Api::<PartialObjectMeta<ServiceAccount>>::all(client), owned)
        .run(reconcile::reconcile, reconcile::error_policy, context)
        .for_each(|result| {
            match result {
                Ok((object, _)) => tracing::debug!(%object, "reconciled"),
                Err(kube::runtime::controller::Error::QueueError(e)) => {
                    metrics.watch_errors.inc();
                    tracing::warn!(error = %e, "a ServiceAccountToken controller watch failed");
                }
                // Counted, by reason, and backed off in `reconcile::error_policy`.
                Err(e) => tracing::debug!(error = %e, "reconcile failed"),
            }
            std::future::ready(())
        })
        .await;
}
