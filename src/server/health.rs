//! grpc.health.v1: SERVING only while the Kubernetes API answers, re-checked on an interval by
//! one task, never by request handlers.

use std::time::Duration;

use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use tokend_api::v1::token_service_server::SERVICE_NAME;

use crate::cluster::Cluster;

/// Watches the Kubernetes API and flips the health status of the server and of TokenService. A
/// check that takes longer than `timeout` counts as unreachable: a stalled API is as unusable
/// as a refused one.
pub async fn watch(
    reporter: HealthReporter,
    cluster: Cluster,
    interval: Duration,
    timeout: Duration,
) {
    let mut last = None;
    loop {
        let reachable = tokio::time::timeout(timeout, cluster.ping())
            .await
            .is_ok_and(|answer| answer.is_ok());
        let status = if reachable {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        };
        if last != Some(status) {
            match status {
                ServingStatus::Serving => tracing::info!("Kubernetes API reachable: serving"),
                _ => tracing::warn!("Kubernetes API unreachable: not serving"),
            }
            reporter.set_service_status("", status).await;
            reporter.set_service_status(SERVICE_NAME, status).await;
            last = Some(status);
        }
        tokio::time::sleep(interval).await;
    }
}
