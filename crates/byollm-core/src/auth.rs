//! Authentication of API keys and run workload tokens through an in-memory cache,
//! so the hot path costs one SHA-256 and one map lookup, no database round trip.
//!
//! Invariants:
//! - A presented credential that is not in our format, or whose checksum fails
//!   ([`crate::ids::credential_format`]), is refused before any hash or query.
//! - Revocation (key deleted, member removed, run finished) evicts the entry on
//!   this replica at once, and is final: every eviction bumps a generation, a
//!   store read records the generation before it starts, and its result is
//!   cached only if no eviction happened meanwhile (checked and inserted under
//!   the same lock that eviction takes). A read that raced a revocation may still
//!   answer the request it was made for, but never repopulates the cache.
//! - Other replicas hear of a revocation through the store's change
//!   notifications (PostgreSQL, [`crate::store::notify`]) and evict by what the
//!   notification names ([`AuthCache::evict_where`], same generation rule).
//!   While a replica is not listening (its connection lost, not yet
//!   re-subscribed) the cache is not trusted: every request asks the store
//!   ([`AuthCache::set_trusted`]). Entries older than [`CACHE_TTL_SECONDS`] are
//!   re-checked whatever happens, the backstop if a notification is lost; run
//!   tokens and expiring API keys die at their own expiry whatever the cache
//!   holds (an entry never outlives its credential).
//! - A key's use is recorded at most once per [`LAST_USE_GRANULARITY`] per
//!   replica ([`AuthCache::use_due`]); the caller writes it off the request path.
//! - Unknown credentials are remembered for [`NEGATIVE_TTL_SECONDS`], so a flood
//!   of the same bad key costs one query. A credential is never negatively cached
//!   before it exists (keys and tokens are random), so this cannot hide a new one.
//! - Both caches are bounded (moka: size bound plus a wall-clock TTL backstop);
//!   freshness itself is judged by the injected [`Clock`].

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use moka::sync::Cache;
use parking_lot::Mutex;

use byollm_api::clock::Clock;
use byollm_api::types::{Actor, ActorType, Role};

use crate::ids::{CredentialFormat, LEGACY_FORMAT_ACCEPTED_UNTIL, credential_format, hash_secret};
use crate::store::{LAST_USE_GRANULARITY, Store, StoreError};

/// How long a cached credential is trusted before the store is asked again.
pub const CACHE_TTL_SECONDS: i64 = 30;

/// How long an unknown credential is remembered as unknown.
pub const NEGATIVE_TTL_SECONDS: i64 = 10;

/// Most cached valid credentials (least recently used go first past this).
const CACHE_CAPACITY: u64 = 100_000;
/// Most remembered unknown credentials: a flood of distinct bad keys evicts its
/// own entries, not the valid ones (separate cache).
const NEGATIVE_CAPACITY: u64 = 10_000;

/// Why a presented credential did not authenticate. Safe to log: it names no
/// part of the credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    /// Not one of our credential formats (refused with no hash, no query).
    Malformed,
    /// Our format with a wrong checksum (refused with no hash, no query).
    BadChecksum,
    /// A pre-checksum credential presented after
    /// [`LEGACY_FORMAT_ACCEPTED_UNTIL`].
    LegacyFormatRetired,
    /// Well-formed but not a live credential (never issued, revoked, owner
    /// removed, run finished or expired).
    Unknown,
    /// The store would have to be asked, and the caller's source is throttled
    /// for failing too often (the `may_query` gate said no).
    Throttled,
}

impl AuthFailure {
    /// A stable word for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthFailure::Malformed => "malformed",
            AuthFailure::BadChecksum => "bad_checksum",
            AuthFailure::LegacyFormatRetired => "legacy_format_retired",
            AuthFailure::Unknown => "unknown",
            AuthFailure::Throttled => "throttled",
        }
    }
}

/// What kind of credential authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialKind {
    /// A member's API key.
    MemberKey,
    /// A named agent's API key.
    AgentKey,
    /// A run's workload token.
    RunToken,
}

impl CredentialKind {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            CredentialKind::MemberKey => "member_key",
            CredentialKind::AgentKey => "agent_key",
            CredentialKind::RunToken => "run_token",
        }
    }
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The caller's team.
    pub team_uid: String,
    /// The credential used.
    pub kind: CredentialKind,
    /// The actor it acts as (for run tokens: the run's actor).
    pub actor: Actor,
    /// The member's role (member keys only).
    pub role: Option<Role>,
    /// The run (run tokens only).
    pub run_id: Option<String>,
    /// SHA-256 of the credential, to evict it.
    pub credential_hash: String,
}

impl Principal {
    /// A member key of an admin or owner.
    pub fn is_admin(&self) -> bool {
        self.kind == CredentialKind::MemberKey && self.role.is_some_and(Role::is_admin)
    }

    /// A member key (any role).
    pub fn is_member(&self) -> bool {
        self.kind == CredentialKind::MemberKey
    }

    /// How the audit log names the caller.
    pub fn audit_name(&self) -> String {
        match (&self.kind, &self.run_id) {
            (CredentialKind::RunToken, Some(run)) => format!("run:{run}"),
            (CredentialKind::AgentKey, _) => format!("agent:{}", self.actor.uid),
            _ => format!("member:{}", self.actor.uid),
        }
    }
}

#[derive(Debug, Clone)]
struct Entry {
    principal: Principal,
    checked_at: i64,
    /// Run tokens die at this time even if nobody finishes the run.
    dies_at: Option<i64>,
    /// The API key's id (keys only): what a revocation notification names.
    key_id: Option<String>,
}

/// What a cached credential is, for [`AuthCache::evict_where`]: a notification
/// names an object, not a credential.
#[derive(Debug, Clone, Copy)]
pub struct CachedCredential<'a> {
    /// The caller.
    pub principal: &'a Principal,
    /// The API key's id (`None` for run tokens).
    pub key_id: Option<&'a str>,
}

/// Pauses a store lookup between its read and its cache insert, so a test can
/// revoke in between (the race of issue 10). Test builds only.
#[cfg(feature = "test-util")]
#[derive(Debug, Default)]
pub struct LookupPause {
    /// Notified when a lookup has read the store and waits to insert.
    pub reached: tokio::sync::Notify,
    /// Notify to let the lookup go on.
    pub resume: tokio::sync::Notify,
}

/// The credential cache.
#[derive(Debug)]
pub struct AuthCache {
    entries: Cache<String, Entry>,
    /// Hash → when it was found unknown (clock seconds).
    unknown: Cache<String, i64>,
    /// Key hash → the last use this replica had recorded (clock seconds).
    used: Cache<String, i64>,
    /// Bumped by every eviction; see the module docs.
    generation: Mutex<u64>,
    /// False while change notifications may be missed: no cache answers.
    trusted: AtomicBool,
    store_lookups: AtomicU64,
    #[cfg(feature = "test-util")]
    pause: Mutex<Option<std::sync::Arc<LookupPause>>>,
}

impl Default for AuthCache {
    fn default() -> Self {
        let wall = |secs: i64| Duration::from_secs(u64::try_from(secs).unwrap_or(0));
        AuthCache {
            entries: Cache::builder()
                .max_capacity(CACHE_CAPACITY)
                .time_to_live(wall(CACHE_TTL_SECONDS))
                .build(),
            unknown: Cache::builder()
                .max_capacity(NEGATIVE_CAPACITY)
                .time_to_live(wall(NEGATIVE_TTL_SECONDS))
                .build(),
            used: Cache::builder()
                .max_capacity(CACHE_CAPACITY)
                .time_to_live(wall(LAST_USE_GRANULARITY))
                .build(),
            generation: Mutex::new(0),
            trusted: AtomicBool::new(true),
            store_lookups: AtomicU64::new(0),
            #[cfg(feature = "test-util")]
            pause: Mutex::new(None),
        }
    }
}

impl AuthCache {
    /// Authenticates a presented key or token. `may_query` is asked only when
    /// the store would be queried (no cache answered); `false` refuses with
    /// [`AuthFailure::Throttled`] at no store cost.
    pub async fn authenticate(
        &self,
        store: &Store,
        clock: &dyn Clock,
        presented: &str,
        may_query: &(dyn Fn() -> bool + Sync),
    ) -> Result<Result<Principal, AuthFailure>, StoreError> {
        let now = clock.now();
        match credential_format(presented) {
            CredentialFormat::Current => {}
            CredentialFormat::Legacy if now < LEGACY_FORMAT_ACCEPTED_UNTIL => {}
            CredentialFormat::Legacy => return Ok(Err(AuthFailure::LegacyFormatRetired)),
            CredentialFormat::BadChecksum => return Ok(Err(AuthFailure::BadChecksum)),
            CredentialFormat::Malformed => return Ok(Err(AuthFailure::Malformed)),
        }
        self.authenticate_hash(store, clock, hash_secret(presented), may_query)
            .await
    }

    /// Authenticates a credential known by its hash only (a web console
    /// session holds the hash of the key it was opened with, never the key):
    /// the same cache, revocation and expiry rules as [`AuthCache::authenticate`]
    /// after its format check.
    pub async fn authenticate_hash(
        &self,
        store: &Store,
        clock: &dyn Clock,
        hash: String,
        may_query: &(dyn Fn() -> bool + Sync),
    ) -> Result<Result<Principal, AuthFailure>, StoreError> {
        let now = clock.now();
        let trusted = self.trusted.load(Ordering::SeqCst);
        if trusted
            && let Some(entry) = self.entries.get(&hash)
            && now - entry.checked_at < CACHE_TTL_SECONDS
            && entry.dies_at.is_none_or(|d| now < d)
        {
            return Ok(Ok(entry.principal));
        }
        if trusted
            && let Some(at) = self.unknown.get(&hash)
            && now - at < NEGATIVE_TTL_SECONDS
        {
            return Ok(Err(AuthFailure::Unknown));
        }
        if !may_query() {
            return Ok(Err(AuthFailure::Throttled));
        }
        let generation = *self.generation.lock();
        self.store_lookups.fetch_add(1, Ordering::Relaxed);
        let found = self.lookup(store, &hash, now).await?;
        #[cfg(feature = "test-util")]
        {
            let pause = self.pause.lock().clone();
            if let Some(p) = pause {
                p.reached.notify_one();
                p.resume.notified().await;
            }
        }
        match found {
            Some(entry) => {
                let current = self.generation.lock();
                if *current == generation {
                    self.entries.insert(hash, entry.clone());
                }
                drop(current);
                Ok(Ok(entry.principal))
            }
            None => {
                self.entries.invalidate(&hash);
                self.unknown.insert(hash, now);
                Ok(Err(AuthFailure::Unknown))
            }
        }
    }

    async fn lookup(
        &self,
        store: &Store,
        hash: &str,
        now: i64,
    ) -> Result<Option<Entry>, StoreError> {
        if let Some(key) = store.find_api_key(hash).await? {
            if key.expires_at.is_some_and(|at| now >= at) {
                return Ok(None);
            }
            let (kind, role) = match key.owner_type {
                ActorType::User => {
                    let Some(member) = store.get_member(&key.team_uid, &key.owner_uid).await?
                    else {
                        return Ok(None);
                    };
                    (CredentialKind::MemberKey, Some(member.role))
                }
                ActorType::ServiceAccount => {
                    if store
                        .get_agent(&key.team_uid, &key.owner_uid)
                        .await?
                        .is_none()
                    {
                        return Ok(None);
                    }
                    (CredentialKind::AgentKey, None)
                }
            };
            return Ok(Some(Entry {
                principal: Principal {
                    team_uid: key.team_uid,
                    kind,
                    actor: Actor {
                        actor_type: key.owner_type,
                        uid: key.owner_uid,
                    },
                    role,
                    run_id: None,
                    credential_hash: hash.to_owned(),
                },
                checked_at: now,
                dies_at: key.expires_at,
                key_id: Some(key.id),
            }));
        }
        if let Some(run) = store.find_run_by_token(hash).await?
            && !run.state.is_terminal()
            && now < run.token_expires_at
        {
            return Ok(Some(Entry {
                principal: Principal {
                    team_uid: run.team_uid,
                    kind: CredentialKind::RunToken,
                    actor: run.actor,
                    role: None,
                    run_id: Some(run.uid),
                    credential_hash: hash.to_owned(),
                },
                checked_at: now,
                dies_at: Some(run.token_expires_at),
                key_id: None,
            }));
        }
        Ok(None)
    }

    /// Evicts credentials by hash. Call after the store write that revoked them:
    /// a lookup that read the store before that write cannot cache its result.
    pub fn evict(&self, hashes: &[String]) {
        let mut generation = self.generation.lock();
        *generation += 1;
        for h in hashes {
            self.entries.invalidate(h);
        }
    }

    /// Whether a use of the API key with this hash at `now` should be recorded
    /// (none recorded by this replica within [`LAST_USE_GRANULARITY`]); when
    /// it says yes it remembers `now`.
    pub fn use_due(&self, hash: &str, now: i64) -> bool {
        let due = self
            .used
            .get(hash)
            .is_none_or(|at| now - at >= LAST_USE_GRANULARITY);
        if due {
            self.used.insert(hash.to_owned(), now);
        }
        due
    }

    /// Evicts every cached credential `pred` selects (a change another replica
    /// announced), under the same generation rule as [`AuthCache::evict`];
    /// how many left. Unknown credentials stay remembered: a change never makes
    /// an unknown credential valid (new keys and runs have new secrets).
    pub fn evict_where(&self, pred: impl Fn(CachedCredential<'_>) -> bool) -> usize {
        let mut generation = self.generation.lock();
        *generation += 1;
        let doomed: Vec<_> = self
            .entries
            .iter()
            .filter(|(_, e)| {
                pred(CachedCredential {
                    principal: &e.principal,
                    key_id: e.key_id.as_deref(),
                })
            })
            .map(|(k, _)| k)
            .collect();
        for h in &doomed {
            self.entries.invalidate(h.as_str());
        }
        doomed.len()
    }

    /// Forgets every credential (valid and unknown), as after missed changes.
    pub fn evict_all(&self) {
        let mut generation = self.generation.lock();
        *generation += 1;
        self.entries.invalidate_all();
        self.unknown.invalidate_all();
    }

    /// Whether the caches may answer: false while change notifications may be
    /// missed (every authentication then asks the store).
    pub fn set_trusted(&self, trusted: bool) {
        self.trusted.store(trusted, Ordering::SeqCst);
    }

    /// See [`AuthCache::set_trusted`].
    pub fn is_trusted(&self) -> bool {
        self.trusted.load(Ordering::SeqCst)
    }

    /// Number of cached valid credentials.
    pub fn len(&self) -> usize {
        self.entries.run_pending_tasks();
        usize::try_from(self.entries.entry_count()).unwrap_or(usize::MAX)
    }

    /// Nothing cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Store lookups made so far (each is one to three queries): the counter
    /// tests use to show that a refusal cost no query.
    pub fn store_lookups(&self) -> u64 {
        self.store_lookups.load(Ordering::Relaxed)
    }

    /// Makes every following store lookup wait between its read and its cache
    /// insert until `resume` is notified. Test builds only.
    #[cfg(feature = "test-util")]
    pub fn pause_lookups(&self, pause: Option<std::sync::Arc<LookupPause>>) {
        *self.pause.lock() = pause;
    }
}
