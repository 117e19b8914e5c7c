//! The credentials broker (DESIGN §5): a cloud's short-lived credentials per
//! (team, actor, cloud target, run), obtained through that cloud's exchange in
//! `byollm_federation` and kept in memory only. A cloud target
//! ([`CloudTarget`]) is an AWS role and region (STS
//! `AssumeRoleWithWebIdentity`) or a Google workload identity pool provider
//! and optional service account (Google's STS token exchange) or an Entra
//! tenant and client (Entra's client-assertion grant); every rule
//! below holds for each the same way, and the key carries the whole target,
//! so a settings change that names another role, provider or service account
//! exchanges afresh.
//!
//! - Refresh when `byollm_federation::refresh` says (ahead of expiry with
//!   jitter, scaled for short sessions), never on a fixed timer.
//! - Single flight: however many requests arrive for a key, one STS call runs;
//!   waiters share its result, success or failure.
//! - While unexpired credentials exist, no request waits: a due refresh runs in
//!   the background and callers get the current credentials.
//! - A client-side token bucket bounds the STS call rate.
//! - No re-mint on `ExpiredToken`: every exchange here uses a token minted for
//!   it a moment before, so AWS calling it expired means a clock problem (the
//!   doctor says so), and the failure is held like any other.
//!
//! Lifetimes (issue 10): the entries live in one [`Bounded`] cache (a size
//! bound, a per-entry expiry from the credentials' expiration) and leave it,
//! counted by cause in [`BrokerStats`], when their run ends
//! ([`CredentialsBroker::drop_run`]), their agent or member is removed or the
//! settings that chose their role change ([`CredentialsBroker::drop_actor`],
//! [`CredentialsBroker::drop_team`]), at their own expiry on our clock
//! ([`CredentialsBroker::evict_expired`], and on read), or when AWS refuses them.
//! On PostgreSQL the same drops run on every replica when another one announces
//! the change ([`crate::service::Core::invalidate`]); a replica that missed
//! announcements drops everything ([`CredentialsBroker::drop_all`]).
//! An entry that leaves lets go of its credentials at once and is marked dead,
//! so an STS call still in flight for it cannot put them back; what remains
//! are the callers' own `Arc`s, for the length of their request. Whatever a
//! user builds from the credentials (the gateway's SDK client) hangs on the
//! same [`Brokered`] value and dies with it. The secrets are
//! `secrecy::SecretString`s, zeroized on drop.

use std::any::Any;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use moka::policy::Expiry;
use parking_lot::Mutex;
use secrecy::SecretString;
use tokio_util::task::TaskTracker;
use tracing::Instrument as _;

use byollm_api::clock::Clock;
use byollm_api::types::Actor;
use byollm_federation::ExchangeError;
use byollm_federation::aws::{AssumeRole, AwsExchange, TemporaryCredentials};
use byollm_federation::azure::{AzureExchange, EntraTokenEndpoint};
use byollm_federation::gcp::{GcpExchange, GoogleSts};
use byollm_federation::refresh::Schedule;
use byollm_telemetry::{CacheEvent, Metrics, Stopwatch};

use crate::bounded::{Bounded, Cause, Evictions};

#[path = "broker_clouds.rs"]
mod clouds;
pub use clouds::{CloudCredentials, CloudTarget};

/// After a failed role assumption, requests for the same key get the same error
/// for this long instead of another STS call: a misconfigured role must not turn
/// steady traffic into steady STS traffic. Short, so a fixed trust policy is
/// picked up quickly.
pub const FAILURE_HOLD_SECONDS: i64 = 5;

/// Most keys held per replica; past this the least recently used leave.
pub const MAX_ENTRIES: u64 = 10_000;

/// How long (real time) an entry without credentials (a held failure, an STS
/// call under way) may stay: long past the failure hold and any STS timeout.
const EMPTY_ENTRY_TTL: Duration = Duration::from_secs(600);

/// Whose credentials.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BrokerKey {
    /// The team.
    pub team_uid: String,
    /// The actor the token names.
    pub actor: Actor,
    /// Which cloud, and what in it: the role and region, or the pool
    /// provider and service account.
    pub target: CloudTarget,
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

/// Brokered credentials, and what a user of the broker built from them (the
/// gateway's SDK client), which lives exactly as long as they do.
pub struct Brokered {
    creds: CloudCredentials,
    attached: OnceLock<Arc<dyn Any + Send + Sync>>,
}

impl std::fmt::Debug for Brokered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Brokered")
            .field("creds", &self.creds)
            .field("attached", &self.attached.get().is_some())
            .finish()
    }
}

impl Brokered {
    fn new(creds: CloudCredentials) -> Self {
        Self {
            creds,
            attached: OnceLock::new(),
        }
    }

    /// The credentials.
    pub fn credentials(&self) -> &CloudCredentials {
        &self.creds
    }

    /// The AWS credentials, when these are AWS's.
    pub fn aws(&self) -> Option<&TemporaryCredentials> {
        match &self.creds {
            CloudCredentials::Aws(c) => Some(c),
            CloudCredentials::Gcp(_) | CloudCredentials::Azure(_) => None,
        }
    }

    /// What was built from these credentials, built by `init` on first use and
    /// dropped with them; `None` when something of another type was attached
    /// first (the caller then builds its own, for one use).
    pub fn attached<T: Any + Send + Sync>(&self, init: impl FnOnce() -> T) -> Option<Arc<T>> {
        let any = self
            .attached
            .get_or_init(|| Arc::new(init()) as Arc<dyn Any + Send + Sync>)
            .clone();
        any.downcast::<T>().ok()
    }
}

#[derive(Debug, Default)]
struct SlotState {
    /// The credentials and when to refresh and stop handing them out.
    creds: Option<(Arc<Brokered>, Schedule)>,
    /// Bumped at the end of every STS attempt.
    attempts: u64,
    last_error: Option<BrokerError>,
    /// Whole Unix seconds.
    last_error_at: i64,
    refreshing: bool,
}

impl SlotState {
    /// The credentials, while they may be handed out at `now_ms`.
    fn usable(&self, now_ms: i64) -> Option<&Arc<Brokered>> {
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
    /// Set when the entry left the cache: nothing is stored in it any more.
    dead: AtomicBool,
}

impl Slot {
    /// Lets go of the credentials for good (the entry left the cache).
    fn kill(&self) {
        self.dead.store(true, Ordering::SeqCst);
        self.state.lock().creds = None;
    }

    fn is_dead(&self) -> bool {
        self.dead.load(Ordering::SeqCst)
    }

    /// Credentials held that are past their expiry at `now_ms`.
    fn expired(&self, now_ms: i64) -> bool {
        self.state
            .lock()
            .creds
            .as_ref()
            .is_some_and(|(c, _)| now_ms >= c.creds.expires_at_ms())
    }

    /// Nothing worth keeping at `now_ms`: expired credentials, or none and no
    /// failure still held, and no STS call under way.
    fn stale(&self, now_ms: i64) -> bool {
        if self.flight.try_lock().is_err() {
            return false;
        }
        let st = self.state.lock();
        match &st.creds {
            Some((c, _)) => now_ms >= c.creds.expires_at_ms(),
            None => {
                !st.refreshing && now_ms.div_euclid(1000) - st.last_error_at >= FAILURE_HOLD_SECONDS
            }
        }
    }
}

/// moka's per-entry expiry (real time, the memory backstop): an entry with
/// credentials lives until they expire, one without for [`EMPTY_ENTRY_TTL`].
struct SlotExpiry {
    clock: Arc<dyn Clock>,
}

impl SlotExpiry {
    fn lifetime(&self, slot: &Slot) -> Option<Duration> {
        // try_lock: never wait on a slot from inside the cache.
        let st = slot.state.try_lock()?;
        let (c, _) = st.creds.as_ref()?;
        let left = c.creds.expires_at_ms() - self.clock.now_ms();
        Some(Duration::from_millis(u64::try_from(left).unwrap_or(0)))
    }
}

impl Expiry<BrokerKey, Arc<Slot>> for SlotExpiry {
    fn expire_after_create(&self, _: &BrokerKey, _: &Arc<Slot>, _: Instant) -> Option<Duration> {
        Some(EMPTY_ENTRY_TTL)
    }

    fn expire_after_update(
        &self,
        _: &BrokerKey,
        slot: &Arc<Slot>,
        _: Instant,
        left: Option<Duration>,
    ) -> Option<Duration> {
        self.lifetime(slot).or(left)
    }
}

/// A token bucket over whole seconds of the broker's clock.
#[derive(Debug)]
struct Bucket {
    tokens: f64,
    last: i64,
}

/// What the broker holds and what it let go of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BrokerStats {
    /// Keys held (with credentials, a held failure, or an STS call under way).
    pub entries: u64,
    /// Keys holding credentials.
    pub with_credentials: u64,
    /// Keys that left, by cause.
    pub evictions: Evictions,
}

/// The broker.
#[derive(Debug)]
pub struct CredentialsBroker {
    sts: Arc<AwsExchange>,
    /// Google's STS (and IAM Credentials), for [`CloudTarget::Gcp`] keys.
    gcp: Arc<GcpExchange>,
    /// Entra's token endpoint, for [`CloudTarget::Azure`] keys.
    azure: Arc<AzureExchange>,
    clock: Arc<dyn Clock>,
    slots: Bounded<BrokerKey, Arc<Slot>>,
    bucket: Mutex<Bucket>,
    rate_per_second: f64,
    burst: f64,
    tasks: TaskTracker,
    /// The replica's metrics (cache events, STS calls); the domain's too
    /// ([`crate::service::Core::metrics`]).
    metrics: Arc<Metrics>,
}

impl CredentialsBroker {
    /// A broker over an STS exchange, allowing `rate_per_second` STS calls with a
    /// burst of `burst`, holding at most [`MAX_ENTRIES`] keys.
    pub fn new(
        sts: Arc<AwsExchange>,
        clock: Arc<dyn Clock>,
        rate_per_second: f64,
        burst: f64,
    ) -> Self {
        Self::with_max_entries(sts, clock, rate_per_second, burst, MAX_ENTRIES)
    }

    /// [`CredentialsBroker::new`] holding at most `max_entries` keys.
    pub fn with_max_entries(
        sts: Arc<AwsExchange>,
        clock: Arc<dyn Clock>,
        rate_per_second: f64,
        burst: f64,
        max_entries: u64,
    ) -> Self {
        let now = clock.now();
        let expiry = SlotExpiry {
            clock: clock.clone(),
        };
        let google_clock = clock.clone();
        let gcp: Arc<GcpExchange> = Arc::new(GoogleSts::new(
            None,
            Arc::new(move || google_clock.now_ms()),
        ));
        let entra_clock = clock.clone();
        let azure: Arc<AzureExchange> = Arc::new(EntraTokenEndpoint::new(
            None,
            Arc::new(move || entra_clock.now_ms()),
        ));
        Self {
            sts,
            gcp,
            azure,
            slots: Bounded::new(
                max_entries,
                Some(Box::new(expiry)),
                |_, slot: &Arc<Slot>| slot.kill(),
            ),
            clock,
            bucket: Mutex::new(Bucket {
                tokens: burst,
                last: now,
            }),
            rate_per_second,
            burst,
            tasks: TaskTracker::new(),
            metrics: Arc::new(Metrics::default()),
        }
    }

    /// Exchanges for Google Cloud keys through `gcp` (Google's endpoints by
    /// default; the emulator, or a stand-in in tests).
    pub fn with_gcp(mut self, gcp: Arc<GcpExchange>) -> Self {
        self.gcp = gcp;
        self
    }

    /// Exchanges for Azure keys through `azure` (Entra's public authority by
    /// default; the emulator, or a stand-in in tests).
    pub fn with_azure(mut self, azure: Arc<AzureExchange>) -> Self {
        self.azure = azure;
        self
    }

    /// Records into `metrics` from now on (set once, before the broker is shared).
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = metrics;
        self
    }

    /// The replica's metrics registry.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The live slot of `key`: one whose credentials expired on our clock
    /// leaves first, so they are not kept until a refresh replaces them.
    fn slot(&self, key: &BrokerKey) -> Arc<Slot> {
        let now = self.clock.now_ms();
        let slot = self.slots.get_with(key.clone(), Arc::default);
        if !slot.expired(now) && !slot.is_dead() {
            return slot;
        }
        self.slots.remove(key, Cause::Expired);
        self.slots.get_with(key.clone(), Arc::default)
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
    ) -> Result<Arc<Brokered>, BrokerError>
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
                let due = schedule.is_due(now) && !st.refreshing;
                self.metrics.credential_cache(if due {
                    CacheEvent::Refresh
                } else {
                    CacheEvent::Hit
                });
                if due {
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
        self.metrics.credential_cache(CacheEvent::Miss);
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
        slot: &Arc<Slot>,
        session_name: &str,
        mint: F,
    ) -> Result<Arc<Brokered>, BrokerError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<SecretString, BrokerError>>,
    {
        let result = async {
            if !self.take_token() {
                return Err(BrokerError::RateLimited);
            }
            let watch = Stopwatch::start();
            let token = mint().await?;
            let result = self.exchange(key, session_name, &token).await;
            self.metrics
                .sts_call(sts_outcome(result.as_ref().err()), watch.seconds());
            Ok(Arc::new(Brokered::new(result?)))
        }
        .await;
        {
            let mut st = slot.state.lock();
            st.attempts += 1;
            match &result {
                // The entry left while STS answered (its run ended, its
                // settings changed): this caller gets the credentials for its
                // one request, nobody keeps them.
                Ok(_) if slot.is_dead() => return result,
                Ok(creds) => {
                    // Whole seconds, like the clock reading and STS's expirations.
                    let schedule = Schedule::whole_seconds(
                        self.clock.now(),
                        creds.creds.expires_at_ms().div_euclid(1000),
                    );
                    st.creds = Some((creds.clone(), schedule));
                    st.last_error = None;
                }
                Err(e) => {
                    st.last_error = Some(e.clone());
                    st.last_error_at = self.clock.now();
                }
            }
        }
        if result.is_ok() {
            // Re-arm moka's expiry from the new credentials, if the entry is
            // still this slot (outside the slot's lock: the cache may call
            // back into it).
            self.slots
                .refresh_if(key, |current| Arc::ptr_eq(current, slot));
        }
        result
    }

    /// One exchange for `key`'s cloud target, in a client span naming it.
    async fn exchange(
        &self,
        key: &BrokerKey,
        session_name: &str,
        token: &SecretString,
    ) -> Result<CloudCredentials, ExchangeError> {
        match &key.target {
            CloudTarget::Aws { role_arn, region } => {
                let target = AssumeRole {
                    role_arn: role_arn.clone(),
                    role_session_name: session_name.to_owned(),
                    region: region.clone(),
                    duration_seconds: None,
                };
                let span = tracing::info_span!(
                    "sts",
                    otel.kind = "client",
                    rpc.system = "aws-api",
                    rpc.service = "STS",
                    rpc.method = "AssumeRoleWithWebIdentity",
                    cloud.region = %region,
                );
                let creds = self.sts.exchange(token, &target).instrument(span).await?;
                Ok(CloudCredentials::Aws(creds))
            }
            CloudTarget::Gcp(target) => {
                let span = tracing::info_span!(
                    "sts",
                    otel.kind = "client",
                    rpc.system = "google-api",
                    rpc.service = "sts.googleapis.com",
                    rpc.method = "token",
                );
                let creds = self.gcp.exchange(token, target).instrument(span).await?;
                Ok(CloudCredentials::Gcp(creds))
            }
            CloudTarget::Azure(target) => {
                let span = tracing::info_span!(
                    "sts",
                    otel.kind = "client",
                    rpc.system = "azure-api",
                    rpc.service = "login.microsoftonline.com",
                    rpc.method = "token",
                );
                let creds = self.azure.exchange(token, target).instrument(span).await?;
                Ok(CloudCredentials::Azure(creds))
            }
        }
    }

    /// Forgets the credentials of `key` (the cloud said they expired or are
    /// invalid); the next request exchanges again.
    pub fn invalidate(&self, key: &BrokerKey) {
        self.slots.remove(key, Cause::Refused);
    }

    /// Drops every credential of a run (it finished, failed, was cancelled or
    /// expired); how many keys left.
    pub fn drop_run(&self, team_uid: &str, run_id: &str) -> usize {
        self.slots.remove_where(Cause::RunEnded, |k, _| {
            k.team_uid == team_uid && k.run_id.as_deref() == Some(run_id)
        })
    }

    /// Drops every credential of an actor of a team, its runs' included: the
    /// actor was removed ([`Cause::Removed`]) or its own settings changed
    /// ([`Cause::SettingsChanged`]: an agent's override or availability, a
    /// member's opt-in).
    pub fn drop_actor(&self, team_uid: &str, actor: &Actor, cause: Cause) -> usize {
        self.slots
            .remove_where(cause, |k, _| k.team_uid == team_uid && &k.actor == actor)
    }

    /// Drops every credential of a team: the settings that chose its roles and
    /// regions changed.
    pub fn drop_team(&self, team_uid: &str) -> usize {
        self.slots
            .remove_where(Cause::SettingsChanged, |k, _| k.team_uid == team_uid)
    }

    /// Drops every credential: changes may have been missed (this replica lost
    /// its change notifications for a while), so nothing held can be trusted
    /// to still have a purpose. Counted under `cause`.
    pub fn drop_all(&self, cause: Cause) -> usize {
        self.slots.remove_where(cause, |_, _| true)
    }

    /// Drops what is past its time on the broker's clock: credentials at or
    /// past their expiration, and failures no longer held. Maintenance calls
    /// this; lookups also drop expired credentials as they meet them.
    pub fn evict_expired(&self) -> usize {
        let now = self.clock.now_ms();
        self.slots
            .remove_where(Cause::Expired, |_, slot| slot.stale(now))
    }

    /// What is held and what left, by cause.
    pub fn stats(&self) -> BrokerStats {
        let evictions = self.slots.evictions();
        let (mut entries, mut with_credentials) = (0, 0);
        self.slots.for_each(|_, slot| {
            entries += 1;
            if slot.state.lock().creds.is_some() {
                with_credentials += 1;
            }
        });
        BrokerStats {
            entries,
            with_credentials,
            evictions,
        }
    }

    /// Number of keys holding state.
    pub fn len(&self) -> usize {
        usize::try_from(self.slots.entries()).unwrap_or(usize::MAX)
    }

    /// No state held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Waits for background refreshes to finish (shutdown).
    pub async fn close(&self) {
        self.tasks.close();
        self.tasks.wait().await;
    }
}

/// The `outcome` label of an STS call: `ok` or the error's AWS class.
fn sts_outcome(e: Option<&ExchangeError>) -> &'static str {
    match e {
        None => "ok",
        Some(ExchangeError::AccessDenied(_)) => "access_denied",
        Some(ExchangeError::InvalidIdentityToken(_)) => "invalid_identity_token",
        Some(ExchangeError::ExpiredToken(_)) => "expired_token",
        Some(ExchangeError::IdpCommunication(_)) => "idp_communication_error",
        Some(ExchangeError::Validation(_)) => "validation_error",
        Some(ExchangeError::Throttled(_)) => "throttling",
        Some(ExchangeError::Unavailable(_)) => "unavailable",
        Some(ExchangeError::Cloud { .. }) => "cloud_error",
    }
}

#[cfg(test)]
#[path = "broker_tests.rs"]
mod tests;
