//! Fault injection: added latency, canned failures for matching requests, and a "down" switch.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::watch;

/// A rule answering the next `count` matching requests with an error status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailRule {
    /// Only requests with this method match; any method when None.
    pub method: Option<http::Method>,
    /// Only requests whose path contains this string match (empty matches every path).
    pub path_contains: String,
    /// How many matching requests fail.
    pub count: usize,
    /// The HTTP status they get, with a Status body shaped as a real server shapes it.
    pub status: u16,
}

#[derive(Debug, Default)]
struct Knobs {
    latency: Duration,
    rules: Vec<FailRule>,
}

/// A cheap-to-clone handle on the emulator's fault knobs.
#[derive(Debug, Clone)]
pub struct Faults {
    knobs: Arc<Mutex<Knobs>>,
    down: Arc<watch::Sender<bool>>,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            knobs: Arc::default(),
            down: Arc::new(watch::channel(false).0),
        }
    }
}

impl Faults {
    fn knobs(&self) -> MutexGuard<'_, Knobs> {
        self.knobs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds `d` before every response.
    pub fn set_latency(&self, d: Duration) {
        self.knobs().latency = d;
    }

    /// Answers the next `rule.count` requests matching `rule` with `rule.status`.
    pub fn fail_next(&self, rule: FailRule) {
        if rule.count > 0 {
            self.knobs().rules.push(rule);
        }
    }

    /// While down, new connections are closed at once and open ones are dropped.
    pub fn set_down(&self, down: bool) {
        self.down.send_replace(down);
    }

    /// Removes all latency, pending failures and the down state.
    pub fn clear(&self) {
        let mut k = self.knobs();
        k.latency = Duration::ZERO;
        k.rules.clear();
        drop(k);
        self.set_down(false);
    }

    /// Whether the emulator is down now.
    pub fn is_down(&self) -> bool {
        *self.down.borrow()
    }

    /// A receiver that sees every change of the down state.
    pub fn watch_down(&self) -> watch::Receiver<bool> {
        self.down.subscribe()
    }

    /// The latency to add now.
    pub fn latency(&self) -> Duration {
        self.knobs().latency
    }

    /// Consumes one matching failure, returning its status code.
    pub fn take_failure(&self, method: &http::Method, path: &str) -> Option<u16> {
        let mut k = self.knobs();
        let idx = k.rules.iter().position(|r| {
            r.method.as_ref().is_none_or(|m| m == method) && path.contains(&r.path_contains)
        })?;
        let status = k.rules[idx].status;
        k.rules[idx].count -= 1;
        if k.rules[idx].count == 0 {
            k.rules.remove(idx);
        }
        Some(status)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_counted_and_matched() {
        let f = Faults::default();
        f.fail_next(FailRule {
            method: Some(http::Method::POST),
            path_contains: "/token".into(),
            count: 2,
            status: 500,
        });
        assert_eq!(f.take_failure(&http::Method::GET, "/a/token"), None);
        assert_eq!(f.take_failure(&http::Method::POST, "/other"), None);
        assert_eq!(f.take_failure(&http::Method::POST, "/a/token"), Some(500));
        assert_eq!(f.take_failure(&http::Method::POST, "/a/token"), Some(500));
        assert_eq!(f.take_failure(&http::Method::POST, "/a/token"), None);
    }

    #[test]
    fn clear_resets_everything() {
        let f = Faults::default();
        f.set_latency(Duration::from_millis(5));
        f.set_down(true);
        f.fail_next(FailRule {
            method: None,
            path_contains: String::new(),
            count: 1,
            status: 503,
        });
        f.clear();
        assert_eq!(f.latency(), Duration::ZERO);
        assert!(!f.is_down());
        assert_eq!(f.take_failure(&http::Method::GET, "/"), None);
    }
}
