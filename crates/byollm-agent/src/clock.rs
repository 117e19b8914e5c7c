//! Time as a dependency: refresh decisions read [`Clock::now_ms`] and wait with
//! [`Clock::sleep_until`], so tests drive them with a [`FakeClock`].

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tokio::sync::watch;

/// A boxed future, for the object-safe [`Clock`].
pub type Sleep<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// Wall-clock time in milliseconds since the Unix epoch, and a way to wait for it.
pub trait Clock: Send + Sync + fmt::Debug {
    /// Now, in milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64;

    /// Resolves once [`Clock::now_ms`] reaches `deadline_ms`.
    fn sleep_until(&self, deadline_ms: i64) -> Sleep<'_>;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[expect(
        clippy::disallowed_methods,
        reason = "the one place byollm-agent reads the real clock"
    )]
    fn now_ms(&self) -> i64 {
        let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
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
                tokio::time::sleep(std::time::Duration::from_millis(left)).await;
            }
        })
    }
}

/// A clock tests move by hand; sleepers wake when it passes their deadline.
#[derive(Debug, Clone)]
pub struct FakeClock(Arc<watch::Sender<i64>>);

impl FakeClock {
    /// A clock reading `now_ms`.
    pub fn new(now_ms: i64) -> Self {
        Self(Arc::new(watch::Sender::new(now_ms)))
    }

    /// Moves the clock forward by `ms`.
    pub fn advance_ms(&self, ms: i64) {
        self.0.send_modify(|t| *t += ms);
    }

    /// Sets the clock.
    pub fn set_ms(&self, now_ms: i64) {
        self.0.send_replace(now_ms);
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

/// Formats Unix milliseconds as RFC 3339 (whole seconds, `Z`).
pub fn rfc3339(unix_ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix_ms.div_euclid(1000))
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| unix_ms.div_euclid(1000).to_string())
}

/// Parses RFC 3339 into Unix milliseconds.
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    let t =
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    #[allow(clippy::disallowed_methods, reason = "a test task")]
    async fn fake_clock_wakes_sleepers_at_the_deadline() {
        let clock = FakeClock::new(1_000);
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
    fn rfc3339_round_trips() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(
            parse_rfc3339("2026-11-26T08:00:00Z"),
            Some(1_795_680_000_000)
        );
    }
}
