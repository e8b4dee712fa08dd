//! A bound on failed authentications per client address: each failure may cost a TokenReview,
//! so a client sending garbage tokens is refused for the rest of a window once it has failed a
//! set number of times, before any API call. The map of addresses is bounded too.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Most addresses tracked at once; past it, untracked addresses share one count.
const MAX_PEERS: usize = 10_000;

/// The key of addresses that did not fit (and of callers whose address is unknown).
const SHARED: IpAddr = IpAddr::V6(Ipv6Addr::UNSPECIFIED);

/// Failures per address in fixed windows.
pub struct PeerFailures {
    limit: u32,
    window: Duration,
    peers: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

impl PeerFailures {
    /// Allows `limit` failures per address in each `window`; a limit of 0 turns the bound off.
    pub fn new(limit: u32, window: Duration) -> Self {
        Self {
            limit,
            window,
            peers: Mutex::new(HashMap::new()),
        }
    }

    /// `Err(wait)` while `peer` has used up its failures: how long until its window ends.
    pub fn check(&self, peer: Option<IpAddr>) -> Result<(), Duration> {
        if self.limit == 0 {
            return Ok(());
        }
        let Ok(peers) = self.peers.lock() else {
            return Ok(());
        };
        let key = match peer {
            Some(ip) if peers.contains_key(&ip) => ip,
            // Not tracked while there is room: it has not failed in this window.
            Some(_) if peers.len() < MAX_PEERS => return Ok(()),
            _ => SHARED,
        };
        match peers.get(&key) {
            Some((started, count)) if *count >= self.limit => {
                let age = started.elapsed();
                if age < self.window {
                    Err(self.window - age)
                } else {
                    Ok(())
                }
            }
            _ => Ok(()),
        }
    }

    /// Counts one failure of `peer`.
    pub fn record_failure(&self, peer: Option<IpAddr>) {
        if self.limit == 0 {
            return;
        }
        let Ok(mut peers) = self.peers.lock() else {
            return;
        };
        let mut key = peer.unwrap_or(SHARED);
        if !peers.contains_key(&key) && peers.len() >= MAX_PEERS {
            let window = self.window;
            peers.retain(|_, (started, _)| started.elapsed() < window);
            if peers.len() >= MAX_PEERS {
                key = SHARED;
            }
        }
        let entry = peers.entry(key).or_insert((Instant::now(), 0));
        if entry.0.elapsed() >= self.window {
            *entry = (Instant::now(), 0);
        }
        entry.1 = entry.1.saturating_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_is_refused_after_its_failures_until_the_window_ends() {
        let limiter = PeerFailures::new(2, Duration::from_millis(50));
        let a = Some(IpAddr::from([10, 0, 0, 1]));
        let b = Some(IpAddr::from([10, 0, 0, 2]));
        assert!(limiter.check(a).is_ok());
        limiter.record_failure(a);
        limiter.record_failure(a);
        assert!(limiter.check(a).is_err());
        assert!(limiter.check(b).is_ok(), "other addresses are not affected");
        std::thread::sleep(Duration::from_millis(60));
        assert!(limiter.check(a).is_ok(), "a new window starts afresh");
        assert!(
            PeerFailures::new(0, Duration::from_secs(1))
                .check(a)
                .is_ok()
        );
    }
}
