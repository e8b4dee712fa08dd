//! grpc.health.v1, with liveness apart from readiness. Readiness (the server as a whole, `""`,
//! and `tokend.v1.TokenService`) is SERVING only while the Kubernetes API answers, re-checked on
//! an interval by one task, never by request handlers: a replica that cannot reach the API
//! leaves the Service's endpoints. Liveness ([`LIVENESS_SERVICE`]) is SERVING for as long as the
//! process serves gRPC at all: an API-server outage must make every replica unready, not make
//! the kubelet restart all of them. Readiness also waits until tokend's own namespaces
//! (`--lease-namespace`) are known to exist; the first answer that one does not ends the
//! process, through [`watch`]'s `fatal` channel, with a message saying what to create.

use std::time::Duration;

use prometheus_client::metrics::gauge::Gauge;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use tokend_api::v1::token_service_server::SERVICE_NAME;

use crate::cluster::{self, Cluster};

/// The health service name of liveness (the kubelet's livenessProbe and startupProbe ask for it).
pub const LIVENESS_SERVICE: &str = "liveness";

/// The health service names that follow readiness: the server as a whole (what a probe or
/// grpcurl asks without naming a service) and TokenService.
pub const READINESS_SERVICES: [&str; 2] = ["", SERVICE_NAME];

/// Sets the statuses a server starts with: alive, not ready until the first check passes.
pub async fn starting(reporter: &HealthReporter) {
    reporter
        .set_service_status(LIVENESS_SERVICE, ServingStatus::Serving)
        .await;
    for service in READINESS_SERVICES {
        reporter
            .set_service_status(service, ServingStatus::NotServing)
            .await;
    }
}

/// What the API server says about tokend's own namespaces.
#[derive(Debug, PartialEq, Eq)]
pub enum OwnNamespaces {
    /// Each exists (or could not be read for a reason a retry does not change, like RBAC
    /// without `get namespaces`: requests then say what is wrong).
    Exist,
    /// One does not exist: what to tell the operator.
    Missing(String),
    /// The API server did not answer (in time).
    CannotTell,
}

/// Asks whether each of `namespaces` exists.
pub async fn check_own_namespaces(cluster: &Cluster, namespaces: &[String]) -> OwnNamespaces {
    for namespace in namespaces {
        match cluster.namespace_exists(namespace).await {
            Ok(true) => {}
            Ok(false) => {
                return OwnNamespaces::Missing(crate::service::tokend_namespace_missing(namespace));
            }
            Err(cluster::Error::Unreachable(_)) => return OwnNamespaces::CannotTell,
            Err(e) if e.is_transient() => return OwnNamespaces::CannotTell,
            Err(e) => {
                tracing::warn!(
                    namespace = %namespace,
                    error = %e,
                    "cannot check that tokend's own namespace exists"
                );
            }
        }
    }
    OwnNamespaces::Exist
}

/// Watches the Kubernetes API and flips readiness, and `reachable` (1 or 0) with it. A check
/// that takes longer than `timeout` counts as unreachable: a stalled API is as unusable as a
/// refused one. Until [`check_own_namespaces`] has once found `own_namespaces` existing, the
/// server is not ready; if it finds one missing, the message goes to `fatal` and the watch
/// ends (the server then stops: no request could be served). Liveness is never touched.
pub async fn watch(
    reporter: HealthReporter,
    cluster: Cluster,
    interval: Duration,
    timeout: Duration,
    reachable_gauge: Gauge,
    mut own_namespaces: Vec<String>,
    fatal: tokio::sync::oneshot::Sender<String>,
) {
    let mut last = None;
    loop {
        let reachable = tokio::time::timeout(timeout, cluster.ping())
            .await
            .is_ok_and(|answer| answer.is_ok());
        reachable_gauge.set(i64::from(reachable));
        if reachable && !own_namespaces.is_empty() {
            let checked =
                tokio::time::timeout(timeout, check_own_namespaces(&cluster, &own_namespaces))
                    .await
                    .unwrap_or(OwnNamespaces::CannotTell);
            match checked {
                OwnNamespaces::Exist => own_namespaces.clear(),
                OwnNamespaces::Missing(message) => {
                    tracing::error!(%message, "not ready, stopping");
                    let _ = fatal.send(message);
                    return;
                }
                OwnNamespaces::CannotTell => {}
            }
        }
        let status = if reachable && own_namespaces.is_empty() {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        };
        if last != Some(status) {
            match (status, reachable) {
                (ServingStatus::Serving, _) => tracing::info!("Kubernetes API reachable: ready"),
                (_, true) => tracing::warn!(
                    "Kubernetes API reachable, tokend's own namespace not yet checked: not ready"
                ),
                _ => tracing::warn!("Kubernetes API unreachable: not ready (still live)"),
            }
            for service in READINESS_SERVICES {
                reporter.set_service_status(service, status).await;
            }
            last = Some(status);
        }
        tokio::time::sleep(interval).await;
    }
}
