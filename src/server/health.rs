//! grpc.health.v1, with liveness apart from readiness. Readiness (the server as a whole, `""`,
//! and `tokend.v1.TokenService`) is SERVING only while the Kubernetes API answers, re-checked on
//! an interval by one task, never by request handlers: a replica that cannot reach the API
//! leaves the Service's endpoints. Liveness ([`LIVENESS_SERVICE`]) is SERVING for as long as the
//! process serves gRPC at all: an API-server outage must make every replica unready, not make
//! the kubelet restart all of them.

use std::time::Duration;

use prometheus_client::metrics::gauge::Gauge;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use tokend_api::v1::token_service_server::SERVICE_NAME;

use crate::cluster::Cluster;

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

/// Watches the Kubernetes API and flips readiness, and `reachable` (1 or 0) with it. A check
/// that takes longer than `timeout` counts as unreachable: a stalled API is as unusable as a
/// refused one. Liveness is never touched.
pub async fn watch(
    reporter: HealthReporter,
    cluster: Cluster,
    interval: Duration,
    timeout: Duration,
    reachable_gauge: Gauge,
) {
    let mut last = None;
    loop {
        let reachable = tokio::time::timeout(timeout, cluster.ping())
            .await
            .is_ok_and(|answer| answer.is_ok());
        reachable_gauge.set(i64::from(reachable));
        let status = if reachable {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        };
        if last != Some(status) {
            match status {
                ServingStatus::Serving => tracing::info!("Kubernetes API reachable: ready"),
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
