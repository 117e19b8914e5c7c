//! The one bounded in-memory cache of the workspace: moka's sync cache (a size
//! bound with LRU eviction, an optional per-entry expiry, an eviction hook),
//! with counters of why entries left, so tests and operators observe
//! evictions through numbers rather than by sleeping.
//!
//! Invariants:
//! - every entry that leaves, for any reason but replacement by the same key,
//!   goes through the `on_evict` hook exactly once (that is where a cache
//!   holding a secret lets go of it);
//! - removals our code asks for carry their [`Cause`]; moka's own (size, its
//!   real-time expiry) are counted by the listener as [`Cause::Size`] and
//!   [`Cause::Expired`].
//!
//! moka keeps time with the system clock, so an expiry that tests must drive
//! (our `Clock`) is enforced by the owner calling [`Bounded::remove_where`]
//! with [`Cause::Expired`]; moka's expiry is then only the memory backstop.

use std::hash::Hash;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use moka::notification::RemovalCause;
use moka::policy::{EvictionPolicy, Expiry};

/// Why an entry left a cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// Its run finished, failed, was cancelled or expired.
    RunEnded,
    /// Its agent or member was removed.
    Removed,
    /// The settings that chose it changed.
    SettingsChanged,
    /// Its own lifetime ended.
    Expired,
    /// The cache was full.
    Size,
    /// The upstream refused it (AWS called the credentials invalid).
    Refused,
}

const CAUSES: usize = 6;

impl Cause {
    fn index(self) -> usize {
        match self {
            Cause::RunEnded => 0,
            Cause::Removed => 1,
            Cause::SettingsChanged => 2,
            Cause::Expired => 3,
            Cause::Size => 4,
            Cause::Refused => 5,
        }
    }
}

/// Entries that left, by cause, since the cache was built.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Evictions {
    /// [`Cause::RunEnded`].
    pub run_ended: u64,
    /// [`Cause::Removed`].
    pub removed: u64,
    /// [`Cause::SettingsChanged`].
    pub settings_changed: u64,
    /// [`Cause::Expired`].
    pub expired: u64,
    /// [`Cause::Size`].
    pub size: u64,
    /// [`Cause::Refused`].
    pub refused: u64,
}

#[derive(Debug, Default)]
struct Counters([AtomicU64; CAUSES]);

impl Counters {
    fn add(&self, cause: Cause, n: u64) {
        self.0[cause.index()].fetch_add(n, Ordering::Relaxed);
    }

    fn get(&self, cause: Cause) -> u64 {
        self.0[cause.index()].load(Ordering::Relaxed)
    }
}

/// A bounded cache (see the module docs).
pub struct Bounded<K, V> {
    cache: moka::sync::Cache<K, V>,
    counts: Arc<Counters>,
}

impl<K, V> std::fmt::Debug for Bounded<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bounded")
            .field("entries", &self.cache.entry_count())
            .finish_non_exhaustive()
    }
}

impl<K, V> Bounded<K, V>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// At most `max_entries` entries (least recently used leave first), each
    /// living as long as `expiry` says (moka's clock), and `on_evict` called
    /// with every entry that leaves.
    pub fn new(
        max_entries: u64,
        expiry: Option<Box<dyn Expiry<K, V> + Send + Sync>>,
        on_evict: impl Fn(&K, &V) + Send + Sync + 'static,
    ) -> Self {
        let counts = Arc::new(Counters::default());
        let seen = counts.clone();
        let mut builder = moka::sync::Cache::builder()
            .max_capacity(max_entries)
            // LRU, not TinyLFU: a new entry is always admitted, so a full cache
            // never refuses to hold what was just fetched for a live caller.
            .eviction_policy(EvictionPolicy::lru())
            .eviction_listener(move |k: Arc<K>, v: V, cause: RemovalCause| match cause {
                RemovalCause::Replaced => {}
                RemovalCause::Explicit => on_evict(&k, &v),
                RemovalCause::Size => {
                    seen.add(Cause::Size, 1);
                    on_evict(&k, &v);
                }
                RemovalCause::Expired => {
                    seen.add(Cause::Expired, 1);
                    on_evict(&k, &v);
                }
            });
        if let Some(expiry) = expiry {
            builder = builder.expire_after(BoxedExpiry(expiry));
        }
        Self {
            cache: builder.build(),
            counts,
        }
    }

    /// The entry for `key`, if held.
    pub fn get(&self, key: &K) -> Option<V> {
        self.cache.get(key)
    }

    /// The entry for `key`, made by `init` when absent.
    pub fn get_with(&self, key: K, init: impl FnOnce() -> V) -> V {
        self.cache.get_with(key, init)
    }

    /// Stores `value` under `key` (replacing silently, which also re-arms the
    /// entry's expiry).
    pub fn insert(&self, key: K, value: V) {
        self.cache.insert(key, value);
    }

    /// Removes `key` for `cause`; the entry, if there was one.
    pub fn remove(&self, key: &K, cause: Cause) -> Option<V> {
        let v = self.cache.remove(key);
        if v.is_some() {
            self.counts.add(cause, 1);
        }
        v
    }

    /// Removes every entry `pred` selects, for `cause`; how many left.
    pub fn remove_where(&self, cause: Cause, pred: impl Fn(&K, &V) -> bool) -> usize {
        let doomed: Vec<Arc<K>> = self
            .cache
            .iter()
            .filter(|(k, v)| pred(k, v))
            .map(|(k, _)| k)
            .collect();
        doomed
            .iter()
            .filter(|k| self.remove(k, cause).is_some())
            .count()
    }

    /// Puts the entry of `key` back as it is when `same` says it is the one
    /// the caller knows, which re-arms its expiry; a no-op otherwise (it left
    /// or was replaced meanwhile).
    pub fn refresh_if(&self, key: &K, same: impl FnOnce(&V) -> bool)
    where
        K: Clone,
    {
        use moka::ops::compute::Op;
        let _ = self
            .cache
            .entry(key.clone())
            .and_compute_with(|current| match current {
                Some(e) if same(e.value()) => Op::Put(e.into_value()),
                _ => Op::Nop,
            });
    }

    /// Calls `f` with every entry held.
    pub fn for_each(&self, mut f: impl FnMut(&K, &V)) {
        for (k, v) in self.cache.iter() {
            f(&k, &v);
        }
    }

    /// Entries held, after moka's pending housekeeping (so a size eviction that
    /// is due has happened).
    pub fn entries(&self) -> u64 {
        self.cache.run_pending_tasks();
        self.cache.entry_count()
    }

    /// Entries that left, by cause.
    pub fn evictions(&self) -> Evictions {
        self.cache.run_pending_tasks();
        let c = &self.counts;
        Evictions {
            run_ended: c.get(Cause::RunEnded),
            removed: c.get(Cause::Removed),
            settings_changed: c.get(Cause::SettingsChanged),
            expired: c.get(Cause::Expired),
            size: c.get(Cause::Size),
            refused: c.get(Cause::Refused),
        }
    }
}

/// moka wants a sized `Expiry`; this forwards to a boxed one.
struct BoxedExpiry<K, V>(Box<dyn Expiry<K, V> + Send + Sync>);

impl<K, V> Expiry<K, V> for BoxedExpiry<K, V> {
    fn expire_after_create(
        &self,
        key: &K,
        value: &V,
        created_at: std::time::Instant,
    ) -> Option<std::time::Duration> {
        self.0.expire_after_create(key, value, created_at)
    }

    fn expire_after_update(
        &self,
        key: &K,
        value: &V,
        updated_at: std::time::Instant,
        duration_until_expiry: Option<std::time::Duration>,
    ) -> Option<std::time::Duration> {
        self.0
            .expire_after_update(key, value, updated_at, duration_until_expiry)
    }

    fn expire_after_read(
        &self,
        key: &K,
        value: &V,
        read_at: std::time::Instant,
        duration_until_expiry: Option<std::time::Duration>,
        last_modified_at: std::time::Instant,
    ) -> Option<std::time::Duration> {
        self.0
            .expire_after_read(key, value, read_at, duration_until_expiry, last_modified_at)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;

    #[test]
    fn over_its_bound_it_evicts_the_least_recently_used_and_says_why() {
        let hooked = Arc::new(AtomicUsize::new(0));
        let h = hooked.clone();
        let cache: Bounded<u32, u32> = Bounded::new(2, None, move |_, _| {
            h.fetch_add(1, Ordering::SeqCst);
        });
        for k in 0..5 {
            cache.insert(k, k);
        }
        assert_eq!(cache.entries(), 2);
        let ev = cache.evictions();
        assert_eq!(ev.size, 3, "{ev:?}");
        assert_eq!(hooked.load(Ordering::SeqCst), 3);
        assert_eq!(cache.get(&4), Some(4), "the newest stays");

        assert_eq!(cache.remove_where(Cause::RunEnded, |k, _| *k == 4), 1);
        assert_eq!(cache.remove(&4, Cause::Removed), None, "counted once");
        let ev = cache.evictions();
        assert_eq!((ev.run_ended, ev.removed), (1, 0), "{ev:?}");
        assert_eq!(hooked.load(Ordering::SeqCst), 4);
        assert_eq!(cache.entries(), 1);
    }
}
