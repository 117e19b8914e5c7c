//! The credentials broker (DESIGN §5): temporary AWS credentials per (team,
//! actor, role, region, run), obtained through the one exchange
//! (`byollm_federation::aws`) and kept in memory only.
//!
//! - Refresh when `byollm_federation::refresh` says (ahead of expiry with
//!   jitter, scaled for short sessions), never on a fixed timer.
//! - Single flight: however many requests arrive for a key, one STS call runs;
//!   waiters share its result, success or failure.
//! - While unexpired credentials exist, no request waits: a due refresh runs in
//!   the background and callers get the current credentials.
//! - A client-side token bucket bounds the STS call rate.
//! - A run's credentials are dropped when the run ends.
//! - No re-mint on `ExpiredToken`: every exchange here uses a token minted for
//!   it a moment before, so AWS calling it expired means a clock problem (the
//!   doctor says so), and the failure is held like any other.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use parking_lot::Mutex;
use secrecy::SecretString;
use tokio_util::task::TaskTracker;

use byollm_api::clock::Clock;
use byollm_api::types::Actor;
use byollm_federation::ExchangeError;
use byollm_federation::aws::{AssumeRole, AwsExchange, TemporaryCredentials};
use byollm_federation::refresh::Schedule;

/// After a failed role assumption, requests for the same key get the same error
/// for this long instead of another STS call: a misconfigured role must not turn
/// steady traffic into steady STS traffic. Short, so a fixed trust policy is
/// picked up quickly.
pub const FAILURE_HOLD_SECONDS: i64 = 5;

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
    Sts(#[from] ExchangeError),
    /// The client-side STS rate limit is exhausted.
    #[error("too many STS calls from this server; try again shortly")]
    RateLimited,
}

#[derive(Debug, Default)]
struct SlotState {
    /// The credentials and when to refresh and stop handing them out.
    creds: Option<(Arc<TemporaryCredentials>, Schedule)>,
    /// Bumped at the end of every STS attempt.
    attempts: u64,
    last_error: Option<BrokerError>,
    /// Whole Unix seconds.
    last_error_at: i64,
    refreshing: bool,
}

impl SlotState {
    /// The credentials, while they may be handed out at `now_ms`.
    fn usable(&self, now_ms: i64) -> Option<&Arc<TemporaryCredentials>> {
        self.creds
            .as_ref()
            .filter(|(_, s)| s.is_usable(now_ms))
            .map(|(c, _)| c)
    }
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
    sts: Arc<AwsExchange>,
    clock: Arc<dyn Clock>,
    slots: Mutex<HashMap<BrokerKey, Arc<Slot>>>,
    bucket: Mutex<Bucket>,
    rate_per_second: f64,
    burst: f64,
    tasks: TaskTracker,
}

impl CredentialsBroker {
    /// A broker over an STS exchange, allowing `rate_per_second` STS calls with a
    /// burst of `burst`.
    pub fn new(
        sts: Arc<AwsExchange>,
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
        let now = self.clock.now_ms();
        let seen_attempts;
        {
            let mut st = slot.state.lock();
            if let Some((c, schedule)) = &st.creds
                && schedule.is_usable(now)
            {
                let creds = c.clone();
                if schedule.is_due(now) && !st.refreshing {
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
                && now.div_euclid(1000) - st.last_error_at < FAILURE_HOLD_SECONDS
            {
                return Err(e.clone());
            }
            seen_attempts = st.attempts;
        }
        let _flight = slot.flight.lock().await;
        {
            let st = slot.state.lock();
            if let Some(c) = st.usable(self.clock.now_ms()) {
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
            let target = AssumeRole {
                role_arn: key.role_arn.clone(),
                role_session_name: session_name.to_owned(),
                region: key.region.clone(),
                duration_seconds: None,
            };
            let creds = self.sts.exchange(&token, &target).await?;
            Ok(Arc::new(creds))
        }
        .await;
        let mut st = slot.state.lock();
        st.attempts += 1;
        match &result {
            Ok(creds) => {
                // Whole seconds, like the clock reading and STS's expirations.
                let schedule = Schedule::whole_seconds(self.clock.now(), creds.expires_at());
                st.creds = Some((creds.clone(), schedule));
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
    use std::sync::atomic::{AtomicU64, Ordering};

    use async_trait::async_trait;
    use byollm_api::clock::FakeClock;
    use byollm_api::types::ActorType;
    use byollm_federation::Exchange;
    use byollm_federation::aws::AssumeRole;

    use super::*;

    const T0_MS: i64 = 1_800_000_000_000;
    const LIFETIME_MS: i64 = 3_600_000;

    /// STS on the broker's clock: hour-long credentials, or the failure set.
    #[derive(Debug)]
    struct FakeSts {
        clock: FakeClock,
        calls: AtomicU64,
        fail: parking_lot::Mutex<Option<ExchangeError>>,
    }

    #[async_trait]
    impl Exchange for FakeSts {
        type Target = AssumeRole;
        type Credentials = TemporaryCredentials;

        async fn exchange(
            &self,
            _token: &SecretString,
            _target: &AssumeRole,
        ) -> Result<TemporaryCredentials, ExchangeError> {
            let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
            if let Some(e) = self.fail.lock().clone() {
                return Err(e);
            }
            Ok(TemporaryCredentials {
                access_key_id: format!("ASIA{n}"),
                secret_access_key: SecretString::from("secret"),
                session_token: SecretString::from("session"),
                expires_at_ms: self.clock.now_ms() + LIFETIME_MS,
            })
        }
    }

    fn setup() -> (FakeClock, Arc<FakeSts>, Arc<CredentialsBroker>, BrokerKey) {
        let clock = FakeClock::from_ms(T0_MS);
        let sts = Arc::new(FakeSts {
            clock: clock.clone(),
            calls: AtomicU64::new(0),
            fail: parking_lot::Mutex::new(None),
        });
        let broker = Arc::new(CredentialsBroker::new(
            sts.clone(),
            Arc::new(clock.clone()),
            100.0,
            100.0,
        ));
        let key = BrokerKey {
            team_uid: "t1".into(),
            actor: Actor {
                actor_type: ActorType::ServiceAccount,
                uid: "a1".into(),
            },
            role_arn: "arn:aws:iam::123456789012:role/r".into(),
            region: "us-east-1".into(),
            run_id: Some("r1".into()),
        };
        (clock, sts, broker, key)
    }

    async fn get(broker: &Arc<CredentialsBroker>, key: &BrokerKey) -> Result<String, BrokerError> {
        broker
            .credentials(key, "byollm-run-r1", || async {
                Ok(SecretString::from("identity-token"))
            })
            .await
            .map(|c| c.access_key_id.clone())
    }

    #[tokio::test]
    async fn refreshes_in_the_background_when_due_and_in_the_foreground_when_unusable() {
        let (clock, sts, broker, key) = setup();
        assert_eq!(get(&broker, &key).await.unwrap(), "ASIA1");
        // Not yet due (the refresh is at most 6 min before expiry): cached.
        clock.advance_ms(LIFETIME_MS - 361_000);
        assert_eq!(get(&broker, &key).await.unwrap(), "ASIA1");
        assert_eq!(sts.calls.load(Ordering::SeqCst), 1);
        // Due but usable: the current credentials serve, a refresh runs behind.
        clock.advance_ms(71_000);
        assert_eq!(get(&broker, &key).await.unwrap(), "ASIA1");
        broker.close().await;
        assert_eq!(sts.calls.load(Ordering::SeqCst), 2);
        assert_eq!(get(&broker, &key).await.unwrap(), "ASIA2");
        // Past the hand-out limit (15 s before expiry) with no refresh done
        // yet: the caller waits for new credentials.
        broker.invalidate(&key);
        assert_eq!(get(&broker, &key).await.unwrap(), "ASIA3");
        clock.advance_ms(LIFETIME_MS - 14_000);
        assert_eq!(get(&broker, &key).await.unwrap(), "ASIA4");
        assert_eq!(sts.calls.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn a_failure_is_held_then_tried_again() {
        let (clock, sts, broker, key) = setup();
        *sts.fail.lock() = Some(ExchangeError::AccessDenied("AccessDenied: no".into()));
        let e = get(&broker, &key).await.unwrap_err();
        assert!(
            matches!(&e, BrokerError::Sts(ExchangeError::AccessDenied(_))),
            "{e}"
        );
        clock.advance(FAILURE_HOLD_SECONDS - 1);
        assert!(get(&broker, &key).await.is_err());
        assert_eq!(sts.calls.load(Ordering::SeqCst), 1, "held, not retried");
        clock.advance(1);
        *sts.fail.lock() = None;
        assert_eq!(get(&broker, &key).await.unwrap(), "ASIA2");
        broker.drop_run("t1", "r1");
        assert!(broker.is_empty());
    }
}
