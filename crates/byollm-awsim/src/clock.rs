//! The emulator's clock: every expiry, signature-skew and token-bucket decision
//! reads time through [`Clock`], so tests can substitute their own.

use std::fmt::Debug;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A source of wall-clock time.
pub trait Clock: Send + Sync + Debug {
    /// Now.
    fn now(&self) -> SystemTime;

    /// Now as fractional seconds since the Unix epoch.
    fn unix_f64(&self) -> f64 {
        self.now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_secs_f64()
    }

    /// Now as whole seconds since the Unix epoch.
    fn unix(&self) -> i64 {
        i64::try_from(
            self.now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or(Duration::ZERO)
                .as_secs(),
        )
        .unwrap_or(i64::MAX)
    }
}

/// The real clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[expect(
        clippy::disallowed_methods,
        reason = "the one place the emulator reads the real clock"
    )]
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}
