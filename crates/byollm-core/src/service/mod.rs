//! The domain operations behind the HTTP API (DESIGN §6), one module per area.
//! Handlers extract, call one of these, and map the error.
//!
//! Rules kept everywhere: objects are looked up within the caller's team, so
//! another team's object is `NotFound`; who may do what is decided by
//! [`crate::authz`] only, never by a check written in an operation; run tokens
//! act only for their own run.

mod agents;
mod api_keys;
mod audit;
mod changes;
mod console;
mod identity;
mod invitations;
mod llm_settings;
mod member_settings;
pub mod page;
mod runs;
mod team;
mod usage;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio_util::task::TaskTracker;

use crate::auth::{AuthCache, AuthFailure, CredentialKind, Principal};
use crate::broker::CredentialsBroker;
use crate::config::CoreConfig;
use crate::error::CoreError;
use crate::identity::keyring::Keyring;
use crate::store::{Store, TeamRow};
use crate::usage::UsageSink;
use byollm_api::clock::Clock;

pub use audit::{changed_fields, with_request_id};
pub use console::{
    CHECK_SETUP_KEY_SECONDS, CONSOLE_SESSION_SECONDS, CheckSetupKey, ConsoleSession, ConsoleSignIn,
    LinkRefusal, SIGN_IN_LINK_SECONDS, SignInLink, create_sign_in_link,
};
pub use identity::{MintSubject, Minted};
pub use runs::MAX_PROMPT_CHARS;
pub use team::{Bootstrapped, Recovered, bootstrap_team, recover_owner};

type Result<T> = std::result::Result<T, CoreError>;

/// The domain: store, clock, keyring, credential cache and configuration.
///
/// Built once per replica by [`Core::new`]; its parts are reached through
/// accessors so that nothing outside the domain can swap one of them, and the
/// credential cache and the routing epoch stay the domain's own.
#[derive(Debug)]
pub struct Core {
    store: Store,
    clock: Arc<dyn Clock>,
    keyring: Arc<Keyring>,
    auth: AuthCache,
    config: CoreConfig,
    broker: Arc<CredentialsBroker>,
    usage: UsageSink,
    tasks: TaskTracker,
    /// Bumped by every write that can change how a request routes (settings,
    /// agents, members, runs), so caches on this replica drop at once.
    epoch: AtomicU64,
    /// Times this replica (re-)subscribed to other replicas' changes.
    subscriptions: AtomicU64,
}

impl Core {
    /// The domain over its parts. `usage` must write to `store`, and its writer
    /// task must run on `tasks`, so that shutdown waits for it.
    pub fn new(
        store: Store,
        clock: Arc<dyn Clock>,
        keyring: Arc<Keyring>,
        config: CoreConfig,
        broker: Arc<CredentialsBroker>,
        usage: UsageSink,
        tasks: TaskTracker,
    ) -> Core {
        Core {
            store,
            clock,
            keyring,
            auth: AuthCache::default(),
            config,
            broker,
            usage,
            tasks,
            epoch: AtomicU64::new(0),
            subscriptions: AtomicU64::new(0),
        }
    }

    /// The store (reads and writes of the gateway, maintenance, fixtures).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The replica's clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// The issuer's signing keys (JWKS, maintenance, readiness).
    pub fn keyring(&self) -> &Arc<Keyring> {
        &self.keyring
    }

    /// The operator's settings.
    pub fn config(&self) -> &CoreConfig {
        &self.config
    }

    /// Temporary AWS credentials, in memory only.
    pub fn broker(&self) -> &Arc<CredentialsBroker> {
        &self.broker
    }

    /// The replica's metrics (the broker's registry: one per replica).
    pub fn metrics(&self) -> &Arc<byollm_telemetry::Metrics> {
        self.broker.metrics()
    }

    /// The usage ledger's writer.
    pub fn usage_sink(&self) -> &UsageSink {
        &self.usage
    }

    /// Background work of the domain (the usage writer, credential refreshes);
    /// the gateway's streams run on its own tracker.
    pub fn tasks(&self) -> &TaskTracker {
        &self.tasks
    }

    /// Marks routing-relevant state as changed (see [`Core::current_epoch`]).
    fn bump(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
    }

    /// The routing epoch: it changes with every write that can change how a
    /// request routes, so a cache keyed by it drops at once on this replica.
    pub fn current_epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    /// Authenticates a presented key or token.
    pub async fn authenticate(&self, presented: &str) -> Result<Principal> {
        self.check_credential(presented, &|| true)
            .await?
            .map_err(|_| CoreError::Unauthenticated)
    }

    /// Authenticates a presented key or token and says why it failed.
    /// `may_query` is asked only when the answer needs the store (see
    /// [`AuthCache::authenticate`]); the HTTP layer's per-source failure limiter
    /// answers it.
    pub async fn check_credential(
        &self,
        presented: &str,
        may_query: &(dyn Fn() -> bool + Sync),
    ) -> Result<std::result::Result<Principal, AuthFailure>> {
        let found = self
            .auth
            .authenticate(&self.store, self.clock.as_ref(), presented, may_query)
            .await?;
        if let Ok(p) = &found {
            self.record_key_use(p);
        }
        Ok(found)
    }

    /// Records an API key's use, coarsely ([`AuthCache::use_due`]) and off the
    /// request path: the write runs on the domain's task tracker.
    fn record_key_use(&self, p: &Principal) {
        let now = self.clock.now();
        if p.kind == CredentialKind::RunToken || !self.auth.use_due(&p.credential_hash, now) {
            return;
        }
        let store = self.store.clone();
        let hash = p.credential_hash.clone();
        self.tasks.spawn(async move {
            if let Err(e) = store.touch_api_key(&hash, now).await {
                tracing::warn!(error = %e, "recording an API key's last use failed");
            }
        });
    }

    /// The credential cache (its counters; the lookup pause in test builds).
    pub fn auth_cache(&self) -> &AuthCache {
        &self.auth
    }

    async fn team(&self, uid: &str) -> Result<TeamRow> {
        self.store.get_team(uid).await?.ok_or_else(|| {
            CoreError::Internal(format!("team {uid} of an authenticated caller is missing"))
        })
    }
}
