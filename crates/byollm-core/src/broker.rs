//! The credentials broker (DESIGN §5): temporary AWS credentials per (team,
//! actor, role, region, run), obtained through one STS code path and kept in
//! memory only.
//!
//! - Refresh ahead of expiry at `expires_at − buffer − jitter`, never on a fixed
//!   timer; the buffer and jitter scale down for short sessions.
//! - Single flight: however many requests arrive for a key, one STS call runs;
//!   waiters share its result, success or failure.
//! - While unexpired credentials exist, no request waits: a due refresh runs in
//!   the background and callers get the current credentials.
//! - A client-side token bucket bounds the STS call rate.
//! - A run's credentials are dropped when the run ends.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use parking_lot::Mutex;
use secrecy::SecretString;
use tokio_util::task::TaskTracker;

use byollm_api::types::Actor;

use crate::clock::Clock;
use crate::sts::{AssumeRequest, StsError, StsExchange, TemporaryCredentials};

/// Most time before expiry at which a refresh is due.
pub const REFRESH_BUFFER_SECONDS: i64 = 300;
/// Most random spread added to the buffer, so many keys don't refresh together.
pub const REFRESH_JITTER_SECONDS: i64 = 60;
/// Credentials closer than this to expiry are not handed out: a request signed
/// with them could outlive them (scaled down for short sessions).
pub const MIN_REMAINING_SECONDS: i64 = 15;

/// After a failed role assumption, requests for the same key get the same error
/// for this long instead of another STS call: a misconfigured role must not turn
/// steady traffic into steady STS traffic. Short, so a fixed trust policy is
/// picked up quickly.
pub const FAILURE_HOLD_SECONDS: i64 = 5;

/// How close to expiry credentials of this lifetime stop being handed out.
fn min_remaining(lifetime: i64) -> i64 {
    MIN_REMAINING_SECONDS.min(lifetime.max(0) / 5)
}

/// Whose credentials.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BrokerKey {
    /// The team.
    pub team_uid: String,
    /// The actor the token names.
    pub actor: Actor,
    /// The role assumed.
    pub role_arn: String,
    /// The STS and Bedrock region.
    pub region: String,
    /// The run, for cloud runs.
    pub run_id: Option<String>,
}

/// Broker failures, by cause.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BrokerError {
    /// Minting the identity token failed.
    #[error("could not mint an identity token: {0}")]
    Mint(String),
    /// STS refused or failed.
    #[error(transparent)]
    Sts(#[from] StsError),
    /// The client-side STS rate limit is exhausted.
    #[error("too many STS calls from this server; try again shortly")]
    RateLimited,
}

#[derive(Debug, Default)]
struct SlotState {
    creds: Option<Arc<TemporaryCredentials>>,
    refresh_at: i64,
    /// Credentials stop being handed out this long before they expire.
    min_remaining: i64,
    /// Bumped at the end of every STS attempt.
    attempts: u64,
    last_error: Option<BrokerError>,
    last_error_at: i64,
    refreshing: bool,
}

#[derive(Debug, Default)]
struct Slot {
    state: Mutex<SlotState>,
    flight: tokio::sync::Mutex<()>,
}

/// A token bucket over whole seconds of the broker's clock.
#[derive(Debug)]
struct Bucket {
    tokens: f64,
    last: i64,
}

/// The broker.
#[derive(Debug)]
pub struct CredentialsBroker {
    sts: Arc<dyn StsExchange>,
    clock: Arc<dyn Clock>,
    slots: Mutex<HashMap<BrokerKey, Arc<Slot>>>,
    bucket: Mutex<Bucket>,
    rate_per_second: f64,
    burst: f64,
    tasks: TaskTracker,
}

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

/// When to refresh credentials issued at `now` that expire at `expires_at`.
pub fn refresh_time(now: i64, expires_at: i64) -> i64 {
    let lifetime = (expires_at - now).max(0);
    let buffer = REFRESH_BUFFER_SECONDS.min(lifetime / 5);
    let spread = REFRESH_JITTER_SECONDS.min(lifetime / 10);
    expires_at - buffer - jitter(spread)
}

impl CredentialsBroker {
    /// A broker over an STS exchange, allowing `rate_per_second` STS calls with a
    /// burst of `burst`.
    pub fn new(
        sts: Arc<dyn StsExchange>,
        clock: Arc<dyn Clock>,
        rate_per_second: f64,
        burst: f64,
    ) -> Self {
        let now = clock.now();
        Self {
            sts,
            clock,
            slots: Mutex::new(HashMap::new()),
            bucket: Mutex::new(Bucket {
                tokens: burst,
                last: now,
            }),
            rate_per_second,
            burst,
            tasks: TaskTracker::new(),
        }
    }

    fn slot(&self, key: &BrokerKey) -> Arc<Slot> {
        self.slots.lock().entry(key.clone()).or_default().clone()
    }

    fn take_token(&self) -> bool {
        let now = self.clock.now();
        let mut b = self.bucket.lock();
        let elapsed = (now - b.last).max(0) as f64;
        b.tokens = (b.tokens + elapsed * self.rate_per_second).min(self.burst);
        b.last = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Credentials for `key`. `mint` makes the identity token when an STS call is
    /// needed; `session_name` and `duration` go to STS.
    pub async fn credentials<F, Fut>(
        self: &Arc<Self>,
        key: &BrokerKey,
        session_name: &str,
        mint: F,
    ) -> Result<Arc<TemporaryCredentials>, BrokerError>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<SecretString, BrokerError>> + Send + 'static,
    {
        let slot = self.slot(key);
        let now = self.clock.now();
        let seen_attempts;
        {
            let mut st = slot.state.lock();
            if let Some(c) = &st.creds
                && now < c.expires_at - st.min_remaining
            {
                let creds = c.clone();
                if now >= st.refresh_at && !st.refreshing {
                    // Due: refresh in the background, serve what we have.
                    st.refreshing = true;
                    let (this, key, slot, name) = (
                        self.clone(),
                        key.clone(),
                        slot.clone(),
                        session_name.to_owned(),
                    );
                    self.tasks.spawn(async move {
                        let _flight = slot.flight.lock().await;
                        let _ = this.refresh(&key, &slot, &name, mint).await;
                        slot.state.lock().refreshing = false;
                    });
                }
                return Ok(creds);
            }
            if st.creds.is_none()
                && let Some(e) = &st.last_error
                && now - st.last_error_at < FAILURE_HOLD_SECONDS
            {
                return Err(e.clone());
            }
            seen_attempts = st.attempts;
        }
        let _flight = slot.flight.lock().await;
        {
            let st = slot.state.lock();
            if let Some(c) = &st.creds
                && self.clock.now() < c.expires_at - st.min_remaining
            {
                return Ok(c.clone());
            }
            // Someone ran STS while we waited and it failed: share the failure
            // rather than calling again (a misconfigured role must not turn a
            // burst of requests into a burst of STS calls).
            if st.attempts != seen_attempts
                && let Some(e) = &st.last_error
            {
                return Err(e.clone());
            }
        }
        self.refresh(key, &slot, session_name, mint).await
    }

    async fn refresh<F, Fut>(
        &self,
        key: &BrokerKey,
        slot: &Slot,
        session_name: &str,
        mint: F,
    ) -> Result<Arc<TemporaryCredentials>, BrokerError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<SecretString, BrokerError>>,
    {
        let result = async {
            if !self.take_token() {
                return Err(BrokerError::RateLimited);
            }
            let token = mint().await?;
            let creds = self
                .sts
                .assume_role_with_web_identity(AssumeRequest {
                    role_arn: key.role_arn.clone(),
                    role_session_name: session_name.to_owned(),
                    web_identity_token: token,
                    region: key.region.clone(),
                    duration_seconds: None,
                })
                .await?;
            Ok(Arc::new(creds))
        }
        .await;
        let mut st = slot.state.lock();
        st.attempts += 1;
        match &result {
            Ok(creds) => {
                let now = self.clock.now();
                st.refresh_at = refresh_time(now, creds.expires_at);
                st.min_remaining = min_remaining(creds.expires_at - now);
                st.creds = Some(creds.clone());
                st.last_error = None;
            }
            Err(e) => {
                st.last_error = Some(e.clone());
                st.last_error_at = self.clock.now();
            }
        }
        result
    }

    /// Forgets the credentials of `key` (AWS said they expired or are invalid);
    /// the next request assumes the role again.
    pub fn invalidate(&self, key: &BrokerKey) {
        if let Some(slot) = self.slots.lock().get(key) {
            let mut st = slot.state.lock();
            st.creds = None;
            st.last_error = None;
        }
    }

    /// Drops every credential of a run (it ended).
    pub fn drop_run(&self, team_uid: &str, run_id: &str) {
        self.slots
            .lock()
            .retain(|k, _| !(k.team_uid == team_uid && k.run_id.as_deref() == Some(run_id)));
    }

    /// Number of keys holding state.
    pub fn len(&self) -> usize {
        self.slots.lock().len()
    }

    /// No state held.
    pub fn is_empty(&self) -> bool {
        self.slots.lock().is_empty()
    }

    /// Waits for background refreshes to finish (shutdown).
    pub async fn close(&self) {
        self.tasks.close();
        self.tasks.wait().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_time_scales_with_lifetime() {
        let hour = refresh_time(0, 3600);
        assert!((3600 - 300 - 60..=3600 - 300).contains(&hour), "{hour}");
        let short = refresh_time(0, 100);
        assert!((100 - 20 - 10..=100 - 20).contains(&short), "{short}");
    }
}
