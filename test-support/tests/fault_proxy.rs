//! The fault proxy does what the fault tests rely on, in front of either backend: it forwards
//! requests with their own credentials, answers chosen requests with a real-looking Status,
//! resets, holds requests while stalled, adds latency, and refuses connections while down.

use std::time::{Duration, Instant};

use anyhow::{Result, bail, ensure};
use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use tokend_test_support::{Cluster, FailRule, FaultProxy};

async fn proxied() -> Result<(Cluster, FaultProxy, Api<Namespace>)> {
    let cluster = Cluster::connect().await?;
    let proxy = FaultProxy::start(&cluster.config).await?;
    // The admin's own credentials travel through the proxy untouched.
    let client = kube::Client::try_from(proxy.route(&cluster.config)?)?;
    Ok((cluster, proxy, Api::all(client)))
}

#[tokio::test]
async fn requests_pass_through_with_the_callers_credentials() -> Result<()> {
    let (_cluster, _proxy, namespaces) = proxied().await?;
    let default = namespaces.get("default").await?;
    ensure!(default.metadata.name.as_deref() == Some("default"));
    Ok(())
}

#[tokio::test]
async fn a_chosen_request_gets_the_status_asked_for_then_requests_pass_again() -> Result<()> {
    let (_cluster, proxy, namespaces) = proxied().await?;
    proxy.faults().fail_next(FailRule {
        method: Some(http::Method::GET),
        path_contains: "/namespaces/default".into(),
        count: 1,
        status: 500,
    });
    match namespaces.get("default").await {
        Err(kube::Error::Api(status)) => {
            ensure!(status.code == 500, "{status:?}");
            ensure!(status.reason == "InternalError", "{status:?}");
        }
        other => bail!("expected a 500 Status, got {other:?}"),
    }
    namespaces.get("default").await?;
    Ok(())
}

#[tokio::test]
async fn a_reset_fails_the_request_without_an_answer() -> Result<()> {
    let (_cluster, proxy, namespaces) = proxied().await?;
    proxy.faults().fail_next(FailRule {
        method: None,
        path_contains: "/namespaces/default".into(),
        count: 1,
        status: 0,
    });
    match namespaces.get("default").await {
        Err(kube::Error::Api(status)) => bail!("a reset answered with a status: {status:?}"),
        Err(_) => {}
        Ok(_) => bail!("a reset request succeeded"),
    }
    Ok(())
}

#[tokio::test]
async fn latency_is_added_to_every_request() -> Result<()> {
    let (_cluster, proxy, namespaces) = proxied().await?;
    proxy.faults().set_latency(Duration::from_millis(400));
    let start = Instant::now();
    namespaces.get("default").await?;
    ensure!(
        start.elapsed() >= Duration::from_millis(400),
        "{:?}",
        start.elapsed()
    );
    Ok(())
}

#[tokio::test]
async fn a_stalled_request_is_answered_only_once_the_stall_ends() -> Result<()> {
    let (_cluster, proxy, namespaces) = proxied().await?;
    proxy.faults().set_stalled(true);
    let held = tokio::time::timeout(Duration::from_millis(500), namespaces.get("default")).await;
    ensure!(held.is_err(), "a stalled proxy answered: {held:?}");
    let pending = tokio::spawn({
        let namespaces = namespaces.clone();
        async move { namespaces.get("default").await }
    });
    proxy.faults().set_stalled(false);
    pending.await??;
    Ok(())
}

#[tokio::test]
async fn while_down_connections_are_refused_and_when_up_they_work_again() -> Result<()> {
    let (_cluster, proxy, namespaces) = proxied().await?;
    proxy.faults().set_down(true);
    match namespaces.get("default").await {
        Err(kube::Error::Api(status)) => bail!("a down proxy answered: {status:?}"),
        Err(_) => {}
        Ok(_) => bail!("a down proxy answered"),
    }
    proxy.faults().set_down(false);
    namespaces.get("default").await?;
    Ok(())
}
