//! Who is asking (DESIGN §4): the caller's team, the member accountable for
//! the request and the effective AWS config, read from the store and cached per
//! credential; and the caller's own AWS credentials (flow 4) from request
//! headers, used for that one request and never stored or logged.
//!
//! A cached entry is reused only while the store's epoch is the one it was read
//! at (any write on this replica, and on PostgreSQL any other replica's
//! announced change, bumps it), while the replica's caches are trusted (it is
//! not missing other replicas' changes, [`byollm_core::service::Core::caches_trusted`]),
//! and for at most [`CONTEXT_TTL_SECONDS`] (the backstop). The cache is bounded
//! ([`Bounded`]) and holds nothing secret; the caller's own AWS credentials
//! never enter it or any other cache.
//!
//! An agent marked `available: false` does no inference: its keys and its
//! runs' tokens get a 403 in the caller's format.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::HeaderMap;

use byollm_api::types::{ActorType, BedrockTarget};
use byollm_core::CoreError;
use byollm_core::auth::Principal;
use byollm_core::bounded::Bounded;
use byollm_core::settings::azure::FoundryTarget;
use byollm_core::settings::gcp::VertexTarget;
use byollm_core::settings::{self, NoBedrock};
use byollm_core::store::TeamRow;

use crate::bedrock::{CallCredentials, CallerCredentials};
use crate::error::GatewayError;
use crate::gateway::{
    CONTEXT_TTL_SECONDS, Gateway, HDR_ACCESS_KEY, HDR_REGION, HDR_REQUEST_ID, HDR_SECRET_KEY,
    HDR_SESSION_TOKEN,
};

/// Most callers cached; past this the least recently used leave.
const MAX_STORED_CALLERS: u64 = 100_000;

/// How long (real time) an entry stays at all: a memory bound only, since
/// [`CONTEXT_TTL_SECONDS`] on the domain's clock decides reuse.
const STORED_CALLER_LIFETIME: Duration = Duration::from_secs(60);

/// The store's view of a caller: what every request with the same credential
/// shares.
#[derive(Debug)]
struct StoredCaller {
    team: Arc<TeamRow>,
    accountable: Option<String>,
    effective: Result<BedrockTarget, NoBedrock>,
    vertex: Option<VertexTarget>,
    azure: Option<FoundryTarget>,
    /// The store epoch it was read at.
    epoch: u64,
    /// When it was read (clock seconds).
    at: i64,
}

/// Stored callers by credential hash, and the reads in progress: concurrent
/// first requests with one credential wait for one read (a burst of a run's
/// first requests costs the store one read, not one per request).
#[derive(Debug)]
pub(crate) struct StoredCallers {
    cache: Bounded<String, Arc<StoredCaller>>,
    /// One lock per credential being read; an entry lives while its read runs.
    reading: parking_lot::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl Default for StoredCallers {
    fn default() -> Self {
        Self {
            cache: Bounded::new(
                MAX_STORED_CALLERS,
                Some(Box::new(Lifetime(STORED_CALLER_LIFETIME))),
                |_, _| {},
            ),
            reading: parking_lot::Mutex::default(),
        }
    }
}

impl StoredCallers {
    /// Callers held.
    pub(crate) fn len(&self) -> u64 {
        self.cache.entries()
    }

    /// Joins the readers of one credential; the table forgets the credential
    /// when its last reader leaves (done or cancelled).
    fn join(&self, hash: &str) -> Reading<'_> {
        let lock = self
            .reading
            .lock()
            .entry(hash.to_owned())
            .or_default()
            .clone();
        Reading {
            callers: self,
            hash: hash.to_owned(),
            lock,
        }
    }
}

/// One reader's place among a credential's readers.
struct Reading<'a> {
    callers: &'a StoredCallers,
    hash: String,
    lock: Arc<tokio::sync::Mutex<()>>,
}

impl Drop for Reading<'_> {
    fn drop(&mut self) {
        let mut reading = self.callers.reading.lock();
        // Held by the table and by us only: nobody else is reading or waiting.
        if Arc::strong_count(&self.lock) == 2 {
            reading.remove(&self.hash);
        }
    }
}

/// A fixed lifetime from when an entry was stored.
struct Lifetime(Duration);

impl<K, V> moka::Expiry<K, V> for Lifetime {
    fn expire_after_create(&self, _: &K, _: &V, _: Instant) -> Option<Duration> {
        Some(self.0)
    }
}

/// Who is asking, and what the team says about it: one request's view.
#[derive(Debug)]
pub(crate) struct Ctx {
    pub p: Principal,
    pub team: Arc<TeamRow>,
    pub run_id: Option<String>,
    /// The member the request is accounted to (a run's trigger, an agent's creator).
    pub accountable: Option<String>,
    /// The caller's own AWS credentials (flow 4), which replace brokered ones.
    pub caller_creds: Option<CallCredentials>,
    pub effective: Result<BedrockTarget, NoBedrock>,
    /// The team's Vertex AI target, when its host is on.
    pub vertex: Option<VertexTarget>,
    /// The caller's Azure AI Foundry target, when its host is on.
    pub azure: Option<FoundryTarget>,
    /// The request's id as the server generated it (`x-byollm-request-id`,
    /// set by the server's request layer, never the caller's): the usage
    /// row's id. Absent when the gateway is driven without that layer.
    pub request_id: Option<String>,
}

fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

impl Gateway {
    /// What the store says about a caller, cached per credential for at most
    /// [`CONTEXT_TTL_SECONDS`] and dropped at once by any write on this replica.
    async fn stored_caller(&self, p: &Principal) -> Result<Arc<StoredCaller>, GatewayError> {
        if let Some(b) = self.cached_caller(p) {
            return Ok(b);
        }
        let reading = self.callers.join(&p.credential_hash);
        let _turn = reading.lock.lock().await;
        // A reader before us may have stored it while we waited.
        match self.cached_caller(p) {
            Some(b) => Ok(b),
            None => self.read_caller(p).await,
        }
    }

    /// The cached caller, if it may still answer.
    fn cached_caller(&self, p: &Principal) -> Option<Arc<StoredCaller>> {
        let b = self.callers.cache.get(&p.credential_hash)?;
        let fresh = self.core.caches_trusted()
            && b.epoch == self.core.current_epoch()
            && self.core.clock().now() - b.at < CONTEXT_TTL_SECONDS;
        fresh.then_some(b)
    }

    /// Reads the caller from the store and caches it.
    async fn read_caller(&self, p: &Principal) -> Result<Arc<StoredCaller>, GatewayError> {
        let epoch = self.core.current_epoch();
        let now = self.core.clock().now();
        let store = self.core.store();
        let forbidden_or_internal = GatewayError::forbidden_or_internal;
        let team = store
            .get_team(&p.team_uid)
            .await
            .map_err(|e| forbidden_or_internal(e.into()))?
            .ok_or_else(|| {
                forbidden_or_internal(CoreError::Internal("caller's team is missing".into()))
            })?;
        let agent = match p.actor.actor_type {
            ActorType::ServiceAccount => Some(
                store
                    .get_agent(&p.team_uid, &p.actor.uid)
                    .await
                    .map_err(|e| forbidden_or_internal(e.into()))?
                    .ok_or_else(|| {
                        forbidden_or_internal(CoreError::forbidden(
                            "this agent no longer exists",
                            None,
                        ))
                    })?,
            ),
            ActorType::User => None,
        };
        if let Some(a) = &agent
            && !a.agent.available
        {
            // Not cached: the agent may be made available again at any time.
            let mut e = forbidden_or_internal(CoreError::forbidden(
                format!("agent `{}` is not available", a.agent.name),
                None,
            ));
            e.hint = Some("an admin can set `available: true` on the agent".into());
            return Err(e);
        }
        let (opt_in, mut accountable) = match p.actor.actor_type {
            ActorType::User => (
                store
                    .get_member(&p.team_uid, &p.actor.uid)
                    .await
                    .map_err(|e| forbidden_or_internal(e.into()))?
                    .is_some_and(|m| m.aws_bedrock_opt_in),
                Some(p.actor.uid.clone()),
            ),
            ActorType::ServiceAccount => {
                (false, agent.as_ref().map(|a| a.agent.created_by.clone()))
            }
        };
        if let Some(run_id) = &p.run_id
            && let Some(run) = store
                .get_run(&p.team_uid, run_id)
                .await
                .map_err(|e| forbidden_or_internal(e.into()))?
        {
            accountable = self
                .core
                .accountable_member(&run)
                .await
                .map_err(forbidden_or_internal)?;
        }
        let providers = agent.map(|a| a.agent.inference_providers);
        let effective = settings::effective_aws(
            &team.settings,
            p.actor.actor_type,
            providers.as_ref().map(|o| &o.aws),
            opt_in,
        );
        let vertex =
            settings::gcp::effective_gcp(&team.settings, providers.as_ref().map(|o| &o.gcp));
        let azure =
            settings::azure::effective_azure(&team.settings, providers.as_ref().map(|o| &o.azure));
        let stored = Arc::new(StoredCaller {
            team: Arc::new(team),
            accountable,
            effective,
            vertex,
            azure,
            epoch,
            at: now,
        });
        self.callers
            .cache
            .insert(p.credential_hash.clone(), stored.clone());
        Ok(stored)
    }

    /// One request's view of its caller: the stored caller, with the caller's
    /// own credentials and region (flow 4) when the headers carry them.
    pub(crate) async fn context(
        &self,
        p: Principal,
        headers: &HeaderMap,
    ) -> Result<Ctx, GatewayError> {
        let stored = self.stored_caller(&p).await?;
        let team = Arc::clone(&stored.team);
        let accountable = stored.accountable.clone();
        let mut effective = stored.effective.clone();
        let caller_creds = caller_credentials(headers)?;
        if caller_creds.is_some() {
            // Flow 4: the caller's own credentials stand in for the role; the
            // region comes from the caller, else the effective or team region.
            let region = header(headers, HDR_REGION)
                .map(str::to_owned)
                .or_else(|| effective.as_ref().ok().map(|t| t.region.clone()))
                .or_else(|| team.settings.hosts.aws_bedrock.region.clone());
            if let Some(r) = &region {
                byollm_core::validate::region(HDR_REGION, r)
                    .map_err(|e| GatewayError::invalid(e.to_string()))?;
            }
            effective = match (effective, region) {
                (Ok(_) | Err(NoBedrock::NoRole), Some(region)) => Ok(BedrockTarget {
                    role_arn: "caller-credentials".into(),
                    region,
                }),
                (Err(NoBedrock::NoRegion), None) | (Ok(_), None) => Err(NoBedrock::NoRegion),
                (Err(e), _) => Err(e),
            };
        }
        Ok(Ctx {
            request_id: header(headers, HDR_REQUEST_ID).map(str::to_owned),
            run_id: p.run_id.clone(),
            p,
            team,
            accountable,
            caller_creds,
            effective,
            vertex: stored.vertex.clone(),
            azure: stored.azure.clone(),
        })
    }
}

fn caller_credentials(headers: &HeaderMap) -> Result<Option<CallCredentials>, GatewayError> {
    let ak = header(headers, HDR_ACCESS_KEY);
    let sk = header(headers, HDR_SECRET_KEY);
    match (ak, sk) {
        (None, None) => Ok(None),
        (Some(ak), Some(sk)) => Ok(Some(CallCredentials::Caller(Arc::new(CallerCredentials {
            access_key_id: ak.to_owned(),
            secret_access_key: secrecy::SecretString::from(sk.to_owned()),
            session_token: header(headers, HDR_SESSION_TOKEN)
                .map(|t| secrecy::SecretString::from(t.to_owned())),
        })))),
        _ => Err(GatewayError::invalid(format!(
            "{HDR_ACCESS_KEY} and {HDR_SECRET_KEY} go together; send both (and {HDR_SESSION_TOKEN} for temporary credentials)"
        ))),
    }
}
