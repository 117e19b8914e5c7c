//! Authentication of API keys and run workload tokens through an in-memory cache,
//! so the hot path costs one SHA-256 and one map lookup, no database round trip.
//!
//! Revocation (key deleted, member removed, run finished) evicts the entry on this
//! replica at once. Other replicas re-check the store when their entry is older
//! than [`CACHE_TTL_SECONDS`], which bounds how long a revoked credential can live
//! there.

use std::collections::HashMap;

use parking_lot::RwLock;

use byollm_api::clock::Clock;
use byollm_api::types::{Actor, ActorType, Role};

use crate::ids::{API_KEY_PREFIX, WORKLOAD_TOKEN_PREFIX, hash_secret};
use crate::store::{Store, StoreError};

/// How long a cached credential is trusted before the store is asked again.
pub const CACHE_TTL_SECONDS: i64 = 30;

/// Most cached credentials; past this the cache is cleared (a bounded map beats an
/// unbounded one under a flood of distinct valid keys).
const CACHE_CAPACITY: usize = 100_000;

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
}

/// The credential cache.
#[derive(Debug, Default)]
pub struct AuthCache {
    entries: RwLock<HashMap<String, Entry>>,
}

impl AuthCache {
    /// Authenticates a presented key or token; `None` when it is not valid.
    pub async fn authenticate(
        &self,
        store: &Store,
        clock: &dyn Clock,
        presented: &str,
    ) -> Result<Option<Principal>, StoreError> {
        // Only our own formats are looked up: anything else is refused before a
        // hash or a query is spent on it.
        if !(presented.starts_with(API_KEY_PREFIX) || presented.starts_with(WORKLOAD_TOKEN_PREFIX))
            || presented.len() > 128
        {
            return Ok(None);
        }
        let hash = hash_secret(presented);
        let now = clock.now();
        if let Some(entry) = self.entries.read().get(&hash)
            && now - entry.checked_at < CACHE_TTL_SECONDS
            && entry.dies_at.is_none_or(|d| now < d)
        {
            return Ok(Some(entry.principal.clone()));
        }
        let found = self.lookup(store, &hash, now).await?;
        let mut entries = self.entries.write();
        match &found {
            Some(entry) => {
                if entries.len() >= CACHE_CAPACITY {
                    entries.clear();
                }
                entries.insert(hash, entry.clone());
            }
            None => {
                entries.remove(&hash);
            }
        }
        Ok(found.map(|e| e.principal))
    }

    async fn lookup(
        &self,
        store: &Store,
        hash: &str,
        now: i64,
    ) -> Result<Option<Entry>, StoreError> {
        if let Some(key) = store.find_api_key(hash).await? {
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
                dies_at: None,
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
            }));
        }
        Ok(None)
    }

    /// Evicts credentials by hash.
    pub fn evict(&self, hashes: &[String]) {
        let mut entries = self.entries.write();
        for h in hashes {
            entries.remove(h);
        }
    }

    /// Number of cached credentials.
    pub fn len(&self) -> usize {
        self.entries.read().len()
    }

    /// Nothing cached.
    pub fn is_empty(&self) -> bool {
        self.entries.read().is_empty()
    }
}
