//! Named agents: read by members (and by the agent itself), written by admins;
//! edited with a JSON Merge Patch (RFC 7396).
//!
//! Invariants: deleting an agent revokes its keys and cancels its open runs in
//! the same transaction, and their credentials leave the caches at once; a
//! change of its availability or AWS override drops the AWS credentials chosen
//! under the old one.

use byollm_api::types::{Actor, ActorType, Agent, AgentCreate, AgentEditable};

use super::{Core, Result};
use crate::auth::Principal;
use crate::authz::{self, Action, Target};
use crate::bounded::Cause;
use crate::error::CoreError;
use crate::ids;
use crate::merge_patch::merge_patch;
use crate::settings;
use crate::store::AgentRow;
use crate::validate::{self, FieldError};
use byollm_api::clock::rfc3339;

/// Fields a patch may not name: the server sets them.
const READ_ONLY: [&str; 3] = ["uid", "created_at", "created_by"];

fn validate_agent(e: &AgentEditable) -> Result<()> {
    validate::name("name", &e.name, 100)?;
    validate::free_text("description", &e.description, 2000)?;
    if let Some(model) = &e.base_model {
        validate::model_id("base_model", model)?;
    }
    settings::validate_override(&e.inference_providers.aws)?;
    Ok(())
}

impl Core {
    /// `GET /api/v1/agent/identities`.
    pub async fn list_agents(&self, p: &Principal) -> Result<Vec<Agent>> {
        authz::check(p, Action::ListAgents, Target::Team)?;
        Ok(self
            .store
            .list_agents(&p.team_uid)
            .await?
            .into_iter()
            .map(|a| a.agent)
            .collect())
    }

    /// `GET /api/v1/agent/identities/{uid}`.
    pub async fn get_agent(&self, p: &Principal, uid: &str) -> Result<Agent> {
        validate::uid("uid", uid)?;
        let agent = self
            .store
            .get_agent(&p.team_uid, uid)
            .await?
            .ok_or(CoreError::NotFound("agent"))?;
        authz::check(p, Action::ReadAgent, Target::Agent(uid))?;
        Ok(agent.agent)
    }

    /// `POST /api/v1/agent/identities`.
    pub async fn create_agent(&self, p: &Principal, req: AgentCreate) -> Result<Agent> {
        authz::check(p, Action::CreateAgent, Target::Team)?;
        let editable = AgentEditable {
            name: req.name,
            description: req.description.unwrap_or_default(),
            available: req.available.unwrap_or(true),
            base_model: req.base_model,
            inference_providers: req.inference_providers.unwrap_or_default(),
        };
        validate_agent(&editable)?;
        let now = self.clock.now();
        let row = AgentRow {
            team_uid: p.team_uid.clone(),
            agent: Agent {
                uid: ids::new_uid(),
                name: editable.name,
                description: editable.description,
                available: editable.available,
                created_at: rfc3339(now),
                created_by: p.actor.uid.clone(),
                base_model: editable.base_model,
                inference_providers: editable.inference_providers,
            },
        };
        self.store.insert_agent(&row, now).await?;
        let changes = serde_json::to_value(&row.agent).unwrap_or_default();
        self.audit(
            p,
            "agent.create",
            format!("agent:{}", row.agent.uid),
            changes,
        )
        .await?;
        Ok(row.agent)
    }

    /// `PATCH /api/v1/agent/identities/{uid}`: a JSON Merge Patch (RFC 7396).
    pub async fn patch_agent(
        &self,
        p: &Principal,
        uid: &str,
        patch: serde_json::Value,
    ) -> Result<Agent> {
        authz::check(p, Action::PatchAgent, Target::Agent(uid))?;
        validate::uid("uid", uid)?;
        let mut row = self
            .store
            .get_agent(&p.team_uid, uid)
            .await?
            .ok_or(CoreError::NotFound("agent"))?;
        let serde_json::Value::Object(fields) = &patch else {
            return Err(
                FieldError::new("body", "expected a JSON object (a JSON Merge Patch)").into(),
            );
        };
        for read_only in READ_ONLY {
            if fields.contains_key(read_only) {
                return Err(FieldError::new(read_only, "is read-only").into());
            }
        }
        let current = AgentEditable {
            name: row.agent.name.clone(),
            description: row.agent.description.clone(),
            available: row.agent.available,
            base_model: row.agent.base_model.clone(),
            inference_providers: row.agent.inference_providers.clone(),
        };
        let mut doc =
            serde_json::to_value(&current).map_err(|e| CoreError::Internal(e.to_string()))?;
        merge_patch(&mut doc, &patch);
        let edited: AgentEditable = validate::from_json_value(doc)?;
        validate_agent(&edited)?;
        // Agents hold no secret: the AWS override is a role ARN and a region.
        let changes = super::changed_fields(
            &serde_json::to_value(&current).unwrap_or_default(),
            &serde_json::to_value(&edited).unwrap_or_default(),
        );
        let credentials_stale = edited.available != current.available
            || edited.inference_providers != current.inference_providers;
        row.agent.name = edited.name;
        row.agent.description = edited.description;
        row.agent.available = edited.available;
        row.agent.base_model = edited.base_model;
        row.agent.inference_providers = edited.inference_providers;
        self.store.update_agent(&row).await?;
        self.audit(p, "agent.update", format!("agent:{uid}"), changes)
            .await?;
        self.bump();
        if credentials_stale {
            self.broker
                .drop_actor(&p.team_uid, &agent_actor(uid), Cause::SettingsChanged);
        }
        Ok(row.agent)
    }

    /// `DELETE /api/v1/agent/identities/{uid}`: also revokes its keys and cancels
    /// its open runs.
    pub async fn delete_agent(&self, p: &Principal, uid: &str) -> Result<()> {
        authz::check(p, Action::DeleteAgent, Target::Agent(uid))?;
        validate::uid("uid", uid)?;
        let removed = self
            .store
            .delete_agent(&p.team_uid, uid, self.clock.now())
            .await?
            .ok_or(CoreError::NotFound("agent"))?;
        self.forget_removed(&p.team_uid, &agent_actor(uid), &removed);
        self.audit(
            p,
            "agent.delete",
            format!("agent:{uid}"),
            serde_json::json!({}),
        )
        .await?;
        Ok(())
    }
}

fn agent_actor(uid: &str) -> Actor {
    Actor {
        actor_type: ActorType::ServiceAccount,
        uid: uid.to_owned(),
    }
}
