//! The refresh policy every holder of exchanged credentials follows (the
//! server's broker per team/actor/run, the agent runtime per worker or member):
//!
//! - Refresh at `expires_at − buffer − jitter`, computed from each credential's
//!   own expiry, never on a fixed timer. The buffer (at most 5 min) and the
//!   jitter (at most 1 min, so many holders do not refresh together) scale
//!   down for short sessions: a fifth and a tenth of the lifetime.
//! - Hand credentials out only until `expires_at − min(15 s, lifetime / 10)`: a
//!   request signed with them must not outlive them. That is always after the
//!   refresh time, so a due refresh starts while the old credentials still
//!   serve and nobody waits for it.
//! - After a failure, back off 1 s, 2 s, 4 s … up to 60 s, each wait drawn from
//!   the upper half of its step; the old credentials serve while usable.
//! - Per error class ([`crate::ErrorClass`]): an expired identity token is
//!   re-minted and exchanged again at once, once; everything else backs off.
//!
//! Times are Unix milliseconds from the caller's `Clock`; the functions here
//! only compute, so the policy is testable without one. A caller whose clock
//! and expiries are whole seconds (the broker: STS expirations are) schedules
//! with [`Schedule::whole_seconds`], the same rules at one-second granularity,
//! so a 12 s session is refreshed 2–3 s ahead, not 2.4–3.6 s of a lifetime the
//! truncated expiry already shortened.

use aws_lc_rs::rand::{SecureRandom as _, SystemRandom};

use crate::{ErrorClass, ExchangeError};

/// Most time before expiry at which a refresh is due.
pub const REFRESH_BUFFER_MS: i64 = 300_000;
/// Most random spread added to the buffer.
pub const REFRESH_JITTER_MS: i64 = 60_000;
/// Credentials closer than this to expiry are not handed out (scaled down for
/// short sessions).
pub const MIN_REMAINING_MS: i64 = 15_000;
/// First backoff after a failure; it doubles per consecutive failure.
pub const BACKOFF_BASE_MS: i64 = 1_000;
/// Longest backoff.
pub const BACKOFF_MAX_MS: i64 = 60_000;

/// A uniformly random delay in `[0, max]` (0 if the system RNG fails: a
/// missing jitter is harmless, a missing refresh is not).
fn jitter(max: i64) -> i64 {
    if max <= 0 {
        return 0;
    }
    let mut b = [0u8; 8];
    if SystemRandom::new().fill(&mut b).is_err() {
        return 0;
    }
    i64::try_from(u64::from_le_bytes(b) % u64::try_from(max + 1).unwrap_or(1)).unwrap_or(0)
}

/// [`refresh_at`] in units of `unit_ms` milliseconds.
fn refresh_at_in(unit_ms: i64, now: i64, expires_at: i64) -> i64 {
    let lifetime = (expires_at - now).max(0);
    let buffer = (REFRESH_BUFFER_MS / unit_ms).min(lifetime / 5);
    let spread = (REFRESH_JITTER_MS / unit_ms).min(lifetime / 10);
    expires_at - buffer - jitter(spread)
}

/// [`usable_until`] in units of `unit_ms` milliseconds.
fn usable_until_in(unit_ms: i64, now: i64, expires_at: i64) -> i64 {
    let lifetime = (expires_at - now).max(0);
    expires_at - (MIN_REMAINING_MS / unit_ms).min(lifetime / 10)
}

/// When to refresh something obtained at `now_ms` that expires at
/// `expires_at_ms`: `expires_at − buffer − jitter`, both scaled to the lifetime.
pub fn refresh_at(now_ms: i64, expires_at_ms: i64) -> i64 {
    refresh_at_in(1, now_ms, expires_at_ms)
}

/// Until when something obtained at `now_ms` that expires at `expires_at_ms`
/// may be handed out.
pub fn usable_until(now_ms: i64, expires_at_ms: i64) -> i64 {
    usable_until_in(1, now_ms, expires_at_ms)
}

/// The wait after the `failures`-th consecutive failure: 1 s doubling to 60 s,
/// drawn from its upper half so many holders do not retry together.
pub fn backoff_ms(failures: u32) -> i64 {
    let exp = failures.saturating_sub(1).min(16);
    let base = BACKOFF_BASE_MS
        .saturating_mul(1_i64 << exp)
        .min(BACKOFF_MAX_MS);
    base / 2 + jitter(base / 2)
}

/// The three instants of one credential's life, fixed when it is obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    /// When it stops working.
    pub expires_at_ms: i64,
    /// When a refresh is due ([`refresh_at`]).
    pub refresh_at_ms: i64,
    /// When it stops being handed out ([`usable_until`]).
    pub usable_until_ms: i64,
}

impl Schedule {
    /// The schedule of something obtained at `now_ms` that expires at
    /// `expires_at_ms` (with fresh jitter).
    pub fn new(now_ms: i64, expires_at_ms: i64) -> Self {
        Self {
            expires_at_ms,
            refresh_at_ms: refresh_at(now_ms, expires_at_ms),
            usable_until_ms: usable_until(now_ms, expires_at_ms),
        }
    }

    /// The schedule of something obtained at `now_s` that expires at
    /// `expires_at_s` (whole Unix seconds), computed in whole seconds and given
    /// in milliseconds; comparing a millisecond clock against it is the same as
    /// comparing that clock's whole seconds.
    pub fn whole_seconds(now_s: i64, expires_at_s: i64) -> Self {
        let ms = |s: i64| s.saturating_mul(1000);
        Self {
            expires_at_ms: ms(expires_at_s),
            refresh_at_ms: ms(refresh_at_in(1000, now_s, expires_at_s)),
            usable_until_ms: ms(usable_until_in(1000, now_s, expires_at_s)),
        }
    }

    /// Whether a refresh is due at `now_ms`.
    pub fn is_due(&self, now_ms: i64) -> bool {
        now_ms >= self.refresh_at_ms
    }

    /// Whether it may still be handed out at `now_ms`.
    pub fn is_usable(&self, now_ms: i64) -> bool {
        now_ms < self.usable_until_ms
    }
}

/// What to do right after a failed exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recovery {
    /// Mint a new identity token and exchange again now (the token expired).
    ReMintNow,
    /// Record the failure and wait [`backoff_ms`] before the next attempt.
    BackOff,
}

/// The policy per error class: an expired identity token is re-minted at once,
/// once (`reminted` says whether this exchange already used a fresh token);
/// every other failure backs off.
pub fn recovery(err: &ExchangeError, reminted: bool) -> Recovery {
    match err.class() {
        ErrorClass::ReMint if !reminted => Recovery::ReMintNow,
        _ => Recovery::BackOff,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_is_ahead_of_expiry_and_scales_with_lifetime() {
        for _ in 0..100 {
            let r = refresh_at(0, 3_600_000);
            assert!(
                (3_600_000 - 360_000..=3_600_000 - 300_000).contains(&r),
                "{r}"
            );
            let r = refresh_at(0, 100_000);
            assert!((70_000..=80_000).contains(&r), "{r}");
            let r = refresh_at(0, 10_000);
            assert!((7_000..=8_000).contains(&r), "{r}");
            // A 120 s identity token is refreshed 24–36 s before it expires.
            let r = refresh_at(0, 120_000);
            assert!((84_000..=96_000).contains(&r), "{r}");
        }
    }

    #[test]
    fn credentials_stay_usable_past_their_refresh_time() {
        assert_eq!(usable_until(0, 3_600_000), 3_600_000 - 15_000);
        assert_eq!(usable_until(0, 12_000), 12_000 - 1_200);
        assert_eq!(usable_until(5, 5), 5);
        for lifetime in [1_000, 8_000, 12_000, 120_000, 900_000, 43_200_000] {
            for _ in 0..50 {
                let s = Schedule::new(0, lifetime);
                assert!(s.refresh_at_ms < s.usable_until_ms, "{s:?}");
                assert!(s.usable_until_ms < s.expires_at_ms, "{s:?}");
                assert!(s.is_due(s.refresh_at_ms) && !s.is_due(s.refresh_at_ms - 1));
                assert!(s.is_usable(s.usable_until_ms - 1) && !s.is_usable(s.usable_until_ms));
            }
        }
    }

    #[test]
    fn whole_seconds_schedules_keep_whole_seconds() {
        for _ in 0..100 {
            // 12 s sessions: refreshed 2–3 s ahead, handed out until 1 s before.
            let s = Schedule::whole_seconds(100, 112);
            assert!([109_000, 110_000].contains(&s.refresh_at_ms), "{s:?}");
            assert_eq!(s.usable_until_ms, 111_000);
            assert_eq!(s.expires_at_ms, 112_000);
            // An hour: the same bounds as in milliseconds.
            let s = Schedule::whole_seconds(0, 3_600);
            assert!(
                (3_600_000 - 360_000..=3_600_000 - 300_000).contains(&s.refresh_at_ms),
                "{s:?}"
            );
            assert_eq!(s.refresh_at_ms % 1000, 0);
            assert_eq!(s.usable_until_ms, 3_600_000 - 15_000);
        }
    }

    #[test]
    fn backoff_doubles_to_a_cap() {
        for _ in 0..100 {
            assert!((500..=1_000).contains(&backoff_ms(1)));
            assert!((1_000..=2_000).contains(&backoff_ms(2)));
            assert!((2_000..=4_000).contains(&backoff_ms(3)));
            assert!((30_000..=60_000).contains(&backoff_ms(30)));
            assert!((30_000..=60_000).contains(&backoff_ms(u32::MAX)));
        }
    }

    #[test]
    fn an_expired_token_is_re_minted_once_everything_else_backs_off() {
        let expired = ExchangeError::ExpiredToken("ExpiredTokenException".into());
        assert_eq!(recovery(&expired, false), Recovery::ReMintNow);
        assert_eq!(recovery(&expired, true), Recovery::BackOff);
        for e in [
            ExchangeError::AccessDenied(String::new()),
            ExchangeError::Throttled(String::new()),
            ExchangeError::Unavailable(String::new()),
        ] {
            assert_eq!(recovery(&e, false), Recovery::BackOff, "{e}");
        }
    }
}
