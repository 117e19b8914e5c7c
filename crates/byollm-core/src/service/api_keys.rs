//! API keys: a member's own, or (admins) a named agent's; listed and revoked
//! under [`Action::ReadApiKey`] and [`Action::RevokeApiKey`].
//!
//! Invariant: a key is shown once, at creation; the store keeps its SHA-256 and
//! a visible prefix, and revoking it evicts it from the credential cache at once.

use byollm_api::SecretValue;
use byollm_api::types::{Actor, ActorType, ApiKeyCreate, ApiKeyCreated, ApiKeyInfo};
use secrecy::ExposeSecret as _;
use serde_json::json;

use super::{Core, Result};
use crate::auth::Principal;
use crate::authz::{self, Action, Target};
use crate::error::CoreError;
use crate::ids;
use crate::store::ApiKeyRow;
use crate::validate;
use byollm_api::clock::rfc3339;

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
        let key = ids::new_api_key();
        let row = ApiKeyRow {
            id: ids::new_id("key"),
            team_uid: p.team_uid.clone(),
            owner_type: owner.actor_type,
            owner_uid: owner.uid.clone(),
            name: req.name,
            key_hash: ids::hash_secret(key.expose_secret()),
            prefix: ids::visible_prefix(key.expose_secret()),
            created_at: self.clock.now(),
        };
        self.store.insert_api_key(&row).await?;
        let changes = json!({"name": row.name, "owner": owner, "prefix": row.prefix});
        self.audit(p, "api_key.create", format!("api_key:{}", row.id), changes)
            .await?;
        Ok(ApiKeyCreated {
            id: row.id,
            key: SecretValue::from(key),
            owner,
        })
    }

    /// `GET /api/v1/api-keys`: the caller's own keys; admins see the team's.
    pub async fn list_api_keys(&self, p: &Principal) -> Result<Vec<ApiKeyInfo>> {
        authz::check(p, Action::ListApiKeys, Target::Team)?;
        Ok(self
            .store
            .list_api_keys(&p.team_uid)
            .await?
            .into_iter()
            .map(|k| ApiKeyInfo {
                id: k.id,
                name: k.name,
                owner: Actor {
                    actor_type: k.owner_type,
                    uid: k.owner_uid,
                },
                prefix: k.prefix,
                created_at: rfc3339(k.created_at),
            })
            .filter(|k| authz::allows(p, Action::ReadApiKey, Target::ApiKey { owner: &k.owner }))
            .collect())
    }

    /// `DELETE /api/v1/api-keys/{id}`: the caller's own key; admins any of the team's.
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
        self.store.delete_api_key(&p.team_uid, id).await?;
        self.auth.evict(&[key.key_hash]);
        let changes = json!({"name": key.name, "owner": owner});
        self.audit(p, "api_key.revoke", format!("api_key:{id}"), changes)
            .await?;
        Ok(())
    }
}
