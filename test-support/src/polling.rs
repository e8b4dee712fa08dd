//! Waiting for what a real cluster makes true eventually: revocation (the API server caches
//! token authentications for 10 s), RBAC propagation, garbage collection.

use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};

/// How long eventually consistent behaviour may take: the 10 s token-authentication cache plus
/// margin.
pub const EVENTUALLY: Duration = Duration::from_secs(15);

/// Polls `check` until it returns true; panics after [`EVENTUALLY`].
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + EVENTUALLY;
    loop {
        if check().await {
            return;
        }
        if Instant::now() >= deadline {
            panic!("not true within {EVENTUALLY:?}: {what}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Polls `check` until it returns Ok(true), for up to [`EVENTUALLY`]; fails with the last outcome.
pub async fn eventually_ok<F, Fut>(what: &str, check: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<bool>>,
{
    eventually_within(what, EVENTUALLY, check).await
}

/// Polls `check` until it returns Ok(true) or `limit` passes.
pub async fn eventually_within<F, Fut>(what: &str, limit: Duration, mut check: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<bool>>,
{
    let deadline = Instant::now() + limit;
    loop {
        let last = check().await;
        if let Ok(true) = last {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("{what} did not happen within {limit:?} (last outcome: {last:?})");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Polls `check` until it returns Ok(Some(value)), for up to [`EVENTUALLY`]; returns the value.
pub async fn eventually_some<T, F, Fut>(what: &str, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>>>,
{
    let deadline = Instant::now() + EVENTUALLY;
    loop {
        let last = check().await;
        if let Ok(Some(value)) = last {
            return Ok(value);
        }
        if Instant::now() >= deadline {
            bail!(
                "{what} did not happen within {EVENTUALLY:?} (last outcome: {:?})",
                last.err()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
