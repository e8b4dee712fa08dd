//! A small bounded map whose entries expire a fixed time after they were written: the caches of
//! caller reviews, access decisions and known ServiceAccounts.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Entries live for `ttl`; past `max` entries the expired ones go, and if none had, all of them.
pub struct TtlCache<K, V> {
    ttl: Duration,
    max: usize,
    entries: Mutex<HashMap<K, (V, Instant)>>,
}

impl<K: Eq + Hash, V: Clone> TtlCache<K, V> {
    /// A cache keeping entries for `ttl` (zero: keeps nothing), at most `max` at a time.
    pub fn new(ttl: Duration, max: usize) -> Self {
        Self {
            ttl,
            max,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The live value for `key`.
    pub fn get(&self, key: &K) -> Option<V> {
        let entries = self.entries.lock().ok()?;
        let (value, at) = entries.get(key)?;
        (at.elapsed() < self.ttl).then(|| value.clone())
    }

    /// Remembers `value` for `key` from now on.
    pub fn insert(&self, key: K, value: V) {
        if self.ttl.is_zero() {
            return;
        }
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        if entries.len() >= self.max {
            let ttl = self.ttl;
            entries.retain(|_, (_, at)| at.elapsed() < ttl);
            if entries.len() >= self.max {
                entries.clear();
            }
        }
        entries.insert(key, (value, Instant::now()));
    }

    /// Forgets `key`.
    pub fn remove(&self, key: &K) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_and_the_size_stays_bounded() {
        let cache = TtlCache::new(Duration::from_secs(60), 2);
        cache.insert(1, "a");
        cache.insert(2, "b");
        assert_eq!(cache.get(&1), Some("a"));
        cache.insert(3, "c");
        assert!(cache.entries.lock().map(|e| e.len()).unwrap_or(0) <= 2);
        assert_eq!(cache.get(&3), Some("c"));
        cache.remove(&3);
        assert_eq!(cache.get(&3), None);

        let expired = TtlCache::new(Duration::from_nanos(1), 10);
        expired.insert(1, "a");
        std::thread::sleep(Duration::from_millis(1));
        assert_eq!(expired.get(&1), None);
        let off = TtlCache::new(Duration::ZERO, 10);
        off.insert(1, "a");
        assert_eq!(off.get(&1), None);
    }
}
