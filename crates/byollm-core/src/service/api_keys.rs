//! API keys: a member's own, or (admins) a named agent's; listed a page at a
//! time and revoked under [`Action::ReadApiKey`] and [`Action::RevokeApiKey`].
//!
//! Invariants: a key is shown once, at creation; the store keeps its SHA-256 and
//! a visible prefix, and revoking it evicts it from the credential cache at once.
//! A key may expire (`expires_at`, never in the past, never past the team's
//! `api_key_max_lifetime_days`; a key created without one under a team maximum
//! gets the maximum). Only owners revoke owners' keys.

use byollm_api::SecretValue;
use byollm_api::types::{
    Actor, ActorType, ApiKeyCreate, ApiKeyCreated, ApiKeyInfo, ApiKeyList, PageQuery, Role,
};
use secrecy::ExposeSecret as _;
use serde_json::json;

use super::page::Page;
use super::{Core, Result};
use crate::auth::Principal;
use crate::authz::{self, Action, Target};
use crate::error::CoreError;
use crate::ids;
use crate::store::{ApiKeyRow, KeyAfter};
use crate::validate::{self, FieldError};
use byollm_api::clock::{parse_rfc3339_ms, rfc3339};

const DAY: i64 = 24 * 3600;

impl Core {
    /// `POST /api/v1/api-keys`: a member's own key, or (admins) a named agent's.
    pub async fn create_api_key(&self, p: &Principal, req: ApiKeyCreate) -> Result<ApiKeyCreated> {
        validate::name("name", &req.name, 100)?;
        if let Some(agent_uid) = &req.agent_uid {
            validate::uid("agent_uid", agent_uid)?;
        }
        let agent_uid = req.agent_uid.as_deref();
        authz::check(p, Action::CreateApiKey, Target::NewApiKey { agent_uid })?;
        let owner = match agent_uid {
            Some(agent_uid) => {
                self.store
                    .get_agent(&p.team_uid, agent_uid)
                    .await?
                    .ok_or(CoreError::NotFound("agent"))?;
                Actor {
                    actor_type: ActorType::ServiceAccount,
                    uid: agent_uid.to_owned(),
                }
            }
            None => p.actor.clone(),
        };
        let expires_at = self
            .key_expiry(&p.team_uid, req.expires_at.as_deref())
            .await?;
        let (row, key) = new_key_row(&p.team_uid, &owner, req.name, self.clock.now(), expires_at);
        let changes = json!({
            "name": row.name, "owner": owner, "prefix": row.prefix,
            "expires_at": row.expires_at.map(rfc3339),
        });
        let audit = self.audit_event(p, "api_key.create", format!("api_key:{}", row.id), &changes);
        self.store.insert_api_key(&row, Some(&audit)).await?;
        Ok(created(row, key))
    }

    /// When a new key of the team expires: `requested` (RFC 3339) checked
    /// against now and the team's maximum lifetime, or that maximum.
    pub(super) async fn key_expiry(
        &self,
        team_uid: &str,
        requested: Option<&str>,
    ) -> Result<Option<i64>> {
        let now = self.clock.now();
        let max_days = self
            .team(team_uid)
            .await?
            .settings
            .api_key_max_lifetime_days;
        let latest = max_days.map(|d| now + i64::from(d) * DAY);
        let Some(text) = requested else {
            return Ok(latest);
        };
        let at = parse_rfc3339_ms(text)
            .map(|ms| ms.div_euclid(1000))
            .ok_or_else(|| {
                FieldError::new(
                    "expires_at",
                    format!("`{text}` is not an RFC 3339 time, e.g. 2027-01-31T00:00:00Z"),
                )
            })?;
        if at <= now {
            return Err(FieldError::new(
                "expires_at",
                format!("{text} is in the past; a key must expire after it is created"),
            )
            .into());
        }
        if let (Some(latest), Some(days)) = (latest, max_days)
            && at > latest
        {
            return Err(FieldError::new(
                "expires_at",
                format!(
                    "{text} is past the team's maximum key lifetime of {days} days \
                     (api_key_max_lifetime_days); expected {} or earlier",
                    rfc3339(latest)
                ),
            )
            .into());
        }
        Ok(Some(at))
    }

    /// `GET /api/v1/api-keys`: the caller's own keys; admins see the team's. One
    /// page in `(created_at, id)` order.
    pub async fn list_api_keys(&self, p: &Principal, q: PageQuery) -> Result<ApiKeyList> {
        authz::check(p, Action::ListApiKeys, Target::Team)?;
        let page = Page::parse(q.limit, q.cursor.as_deref())?;
        let after = page.cursor.as_ref().map(|c| KeyAfter {
            created_at: c.created_at,
            id: c.id.clone(),
        });
        // Admins page through the team's keys; everyone else through their own.
        let owner = (!p.is_admin()).then_some((p.actor.actor_type, p.actor.uid.as_str()));
        let mut rows = self
            .store
            .list_api_keys_page(&p.team_uid, owner, after.as_ref(), page.fetch())
            .await?;
        let next_cursor = page.finish(&mut rows, |k| (k.created_at, k.id.clone()));
        Ok(ApiKeyList {
            api_keys: rows
                .into_iter()
                .map(info)
                .filter(|k| {
                    authz::allows(p, Action::ReadApiKey, Target::ApiKey { owner: &k.owner })
                })
                .collect(),
            next_cursor,
        })
    }

    /// `DELETE /api/v1/api-keys/{id}`: the caller's own key; admins any of the
    /// team's but an owner's.
    pub async fn delete_api_key(&self, p: &Principal, id: &str) -> Result<()> {
        validate::uid("id", id)?;
        let key = self
            .store
            .get_api_key(&p.team_uid, id)
            .await?
            .ok_or(CoreError::NotFound("API key"))?;
        let owner = Actor {
            actor_type: key.owner_type,
            uid: key.owner_uid.clone(),
        };
        authz::check(p, Action::RevokeApiKey, Target::ApiKey { owner: &owner })?;
        if owner.actor_type == ActorType::User
            && let Some(m) = self.store.get_member(&p.team_uid, &owner.uid).await?
            && m.role == Role::Owner
        {
            authz::check(p, Action::RevokeOwnerKey, Target::Member(&owner.uid))?;
        }
        let changes = json!({"name": key.name, "owner": owner});
        let audit = self.audit_event(p, "api_key.revoke", format!("api_key:{id}"), &changes);
        self.store
            .delete_api_key(&p.team_uid, id, Some(&audit))
            .await?;
        self.auth.evict(&[key.key_hash]);
        Ok(())
    }
}

/// A new key for `owner` and its row (the key's hash, never the key).
pub(super) fn new_key_row(
    team_uid: &str,
    owner: &Actor,
    name: String,
    now: i64,
    expires_at: Option<i64>,
) -> (ApiKeyRow, SecretValue) {
    let key = ids::new_api_key();
    let row = ApiKeyRow {
        id: ids::new_id("key"),
        team_uid: team_uid.to_owned(),
        owner_type: owner.actor_type,
        owner_uid: owner.uid.clone(),
        name,
        key_hash: ids::hash_secret(key.expose_secret()),
        prefix: ids::visible_prefix(key.expose_secret()),
        created_at: now,
        expires_at,
        last_used_at: None,
    };
    (row, SecretValue::from(key))
}

/// The answer to a key's creation (the key shown this once).
pub(super) fn created(row: ApiKeyRow, key: SecretValue) -> ApiKeyCreated {
    ApiKeyCreated {
        id: row.id,
        key,
        owner: Actor {
            actor_type: row.owner_type,
            uid: row.owner_uid,
        },
        expires_at: row.expires_at.map(rfc3339),
    }
}

fn info(k: ApiKeyRow) -> ApiKeyInfo {
    ApiKeyInfo {
        id: k.id,
        name: k.name,
        owner: Actor {
            actor_type: k.owner_type,
            uid: k.owner_uid,
        },
        prefix: k.prefix,
        created_at: rfc3339(k.created_at),
        expires_at: k.expires_at.map(rfc3339),
        last_used_at: k.last_used_at.map(rfc3339),
    }
}
