//! Time as a dependency: the one [`Clock`] of the workspace.
//!
//! Key rotation, token expiry, credential refresh, backoff and the emulator's
//! signature skew all read time through a [`Clock`] and wait with
//! [`Clock::sleep_until`], so tests drive them with a `FakeClock` (feature
//! `test-util`) instead of sleeping. Everything else (`SystemTime::now`,
//! `Instant::now`) is kept out by `clippy.toml`.
//!
//! Invariants: [`Clock::now_ms`] is wall-clock Unix milliseconds (never
//! monotonic: a refresh deadline is an expiry AWS wrote down); the provided
//! readings ([`Clock::now`], [`Clock::now_system`], [`Clock::unix_f64`]) are
//! derived from it, so one fake moves them all; [`Clock::sleep_until`] never
//! wakes before its deadline.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A boxed future, so [`Clock`] stays object-safe (`Arc<dyn Clock>`).
pub type Sleep<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// Wall-clock time and a way to wait for it.
pub trait Clock: Send + Sync + fmt::Debug {
    /// Now, in milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64;

    /// Resolves once [`Clock::now_ms`] reaches `deadline_ms` (Unix milliseconds).
    fn sleep_until(&self, deadline_ms: i64) -> Sleep<'_>;

    /// Now, in whole seconds since the Unix epoch (rounded down), the unit of
    /// JWT claims, the store and STS expirations.
    fn now(&self) -> i64 {
        self.now_ms().div_euclid(1000)
    }

    /// Now as a [`SystemTime`] (the epoch for a time before it).
    fn now_system(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(u64::try_from(self.now_ms()).unwrap_or(0))
    }

    /// Now as fractional seconds since the Unix epoch (token buckets, caches).
    fn unix_f64(&self) -> f64 {
        self.now_ms() as f64 / 1000.0
    }
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[expect(
        clippy::disallowed_methods,
        reason = "the one place the workspace reads the real clock"
    )]
    fn now_ms(&self) -> i64 {
        let since = SystemTime::now().duration_since(UNIX_EPOCH);
        since.map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
    }

    fn sleep_until(&self, deadline_ms: i64) -> Sleep<'_> {
        Box::pin(async move {
            // Re-check after waking: a suspended machine wakes late, never early.
            loop {
                let left = deadline_ms - self.now_ms();
                if left <= 0 {
                    return;
                }
                let left = u64::try_from(left).unwrap_or(0);
                tokio::time::sleep(Duration::from_millis(left)).await;
            }
        })
    }
}

#[cfg(any(test, feature = "test-util"))]
pub use fake::FakeClock;

#[cfg(any(test, feature = "test-util"))]
mod fake {
    use std::sync::Arc;

    use tokio::sync::watch;

    use super::{Clock, Sleep};

    /// A clock tests move by hand; sleepers wake when it passes their deadline.
    /// Clones share one time.
    #[derive(Debug, Clone)]
    pub struct FakeClock(Arc<watch::Sender<i64>>);

    impl Default for FakeClock {
        /// A clock at the Unix epoch.
        fn default() -> Self {
            Self::from_ms(0)
        }
    }

    impl FakeClock {
        /// A clock reading `unix_seconds`.
        pub fn new(unix_seconds: i64) -> Self {
            Self::from_ms(unix_seconds.saturating_mul(1000))
        }

        /// A clock reading `unix_ms` milliseconds.
        pub fn from_ms(unix_ms: i64) -> Self {
            Self(Arc::new(watch::Sender::new(unix_ms)))
        }

        /// Moves the clock forward by `seconds`.
        pub fn advance(&self, seconds: i64) {
            self.advance_ms(seconds.saturating_mul(1000));
        }

        /// Moves the clock forward by `ms`.
        pub fn advance_ms(&self, ms: i64) {
            self.0.send_modify(|t| *t += ms);
        }

        /// Sets the clock to `unix_seconds`.
        pub fn set(&self, unix_seconds: i64) {
            self.set_ms(unix_seconds.saturating_mul(1000));
        }

        /// Sets the clock to `unix_ms` milliseconds.
        pub fn set_ms(&self, unix_ms: i64) {
            self.0.send_replace(unix_ms);
        }
    }

    impl Clock for FakeClock {
        fn now_ms(&self) -> i64 {
            *self.0.borrow()
        }

        fn sleep_until(&self, deadline_ms: i64) -> Sleep<'_> {
            let mut rx = self.0.subscribe();
            Box::pin(async move {
                // The sender lives as long as `self`, so this only ends at the deadline.
                let _ = rx.wait_for(|t| *t >= deadline_ms).await;
            })
        }
    }
}

/// Formats Unix seconds as RFC 3339 (`2026-11-26T08:00:00Z`).
pub fn rfc3339(unix_seconds: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix_seconds)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| unix_seconds.to_string())
}

/// Formats Unix milliseconds as RFC 3339 in whole seconds (rounded down).
pub fn rfc3339_ms(unix_ms: i64) -> String {
    rfc3339(unix_ms.div_euclid(1000))
}

/// Parses RFC 3339 into Unix milliseconds.
pub fn parse_rfc3339_ms(text: &str) -> Option<i64> {
    let t =
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_fake_moves_every_reading() {
        let clock = FakeClock::new(1_700_000_000);
        clock.advance(60);
        assert_eq!(clock.now(), 1_700_000_060);
        clock.advance_ms(1_500);
        assert_eq!(clock.now_ms(), 1_700_000_061_500);
        assert_eq!(clock.now(), 1_700_000_061);
        assert!((clock.unix_f64() - 1_700_000_061.5).abs() < 1e-6);
        assert_eq!(
            clock.now_system(),
            UNIX_EPOCH + Duration::from_millis(1_700_000_061_500)
        );
        clock.set(5);
        assert_eq!(clock.now_ms(), 5_000);
        // Before the epoch, seconds round down like the Unix time they are.
        clock.set_ms(-1);
        assert_eq!(clock.now(), -1);
        assert_eq!(clock.now_system(), UNIX_EPOCH);
    }

    #[tokio::test]
    #[expect(clippy::disallowed_methods, reason = "a test task")]
    async fn fake_clock_wakes_sleepers_at_the_deadline() {
        let clock = FakeClock::from_ms(1_000);
        let c2 = clock.clone();
        let waiter = tokio::spawn(async move { c2.sleep_until(5_000).await });
        clock.advance_ms(3_000);
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        clock.advance_ms(1_000);
        waiter.await.unwrap();
        assert_eq!(clock.now_ms(), 5_000);
    }

    #[test]
    fn rfc3339_formats_and_round_trips() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_ms(1_999), "1970-01-01T00:00:01Z");
        assert_eq!(
            parse_rfc3339_ms("2026-11-26T08:00:00Z"),
            Some(1_795_680_000_000)
        );
        assert_eq!(parse_rfc3339_ms("yesterday"), None);
    }
}
