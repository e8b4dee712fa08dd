//! The shape of every cache tokend keeps (caller reviews, access decisions, known
//! ServiceAccounts): moka, bounded in entries, each entry living a fixed time after it was
//! written.

use std::hash::Hash;
use std::time::Duration;

/// Most entries any one cache holds; moka evicts the least useful beyond it.
pub const MAX_CACHED: u64 = 10_000;

/// A cache keeping entries for `ttl` (zero: keeps nothing usable), at most [`MAX_CACHED`].
pub fn expiring<K, V>(ttl: Duration) -> moka::sync::Cache<K, V>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    moka::sync::Cache::builder()
        .max_capacity(MAX_CACHED)
        // moka needs a positive lifetime; a nanosecond is as good as none.
        .time_to_live(ttl.max(Duration::from_nanos(1)))
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_and_a_zero_ttl_keeps_nothing() {
        let cache = expiring(Duration::from_secs(60));
        cache.insert(1, "a");
        assert_eq!(cache.get(&1), Some("a"));
        cache.invalidate(&1);
        assert_eq!(cache.get(&1), None);

        let off = expiring(Duration::ZERO);
        off.insert(1, "a");
        std::thread::sleep(Duration::from_millis(1));
        assert_eq!(off.get(&1), None);
    }
}
