//! Named agents: read by members (and by the agent itself), written by admins;
//! edited with a JSON Merge Patch (RFC 7396).
//!
//! Invariants: deleting an agent revokes its keys and cancels its open runs in
//! the same transaction, and their credentials leave the caches at once; a
//! change of its availability or AWS override drops the AWS credentials chosen
//! under the old one. Names are stored trimmed and NFC-normalised and are unique
//! per team case-insensitively ([`validate::agent_name`]). A PATCH is a
//! compare-and-swap on the agent's version: two concurrent PATCHes both land
//! (the loser re-applies its patch to the winner's result), and one sent with a
//! stale `If-Match` is a 412. The list pages with [`Page`].

use byollm_api::types::{
    Actor, ActorType, Agent, AgentCreate, AgentEditable, AgentList, AgentListQuery,
};

use super::{Core, Result};
use crate::auth::Principal;
use crate::authz::{self, Action, Target};
use crate::bounded::Cause;
use crate::error::CoreError;
use crate::ids;
use crate::merge_patch::merge_patch;
use crate::settings;
use crate::store::{AgentFilter, AgentRow};
use crate::validate::{self, FieldError};
use crate::versioned::{self, IfMatch, MAX_ATTEMPTS, Versioned};
use byollm_api::clock::rfc3339;

use super::page::Page;

/// Fields a patch may not name: the server sets them.
const READ_ONLY: [&str; 3] = ["uid", "created_at", "created_by"];

/// Validates an agent's editable fields and normalises its name in place.
fn validate_agent(e: &mut AgentEditable) -> Result<()> {
    e.name = validate::agent_name("name", &e.name, 100)?;
    validate::free_text("description", &e.description, 2000)?;
    if let Some(model) = &e.base_model {
        validate::model_id("base_model", model)?;
    }
    settings::validate_override(&e.inference_providers.aws)?;
    settings::gcp::validate_override(&e.inference_providers.gcp)?;
    settings::azure::validate_override(&e.inference_providers.azure)?;
    Ok(())
}

impl Core {
    /// `GET /api/v1/agent/identities`: one page, oldest first, filtered by
    /// name prefix and availability.
    pub async fn list_agents(&self, p: &Principal, q: AgentListQuery) -> Result<AgentList> {
        authz::check(p, Action::ListAgents, Target::Team)?;
        let page = Page::parse(q.limit, q.cursor.as_deref())?;
        let filter = AgentFilter {
            name_prefix: q.name_prefix,
            available: q.available,
            after: page.cursor.as_ref().map(|c| (c.created_at, c.id.clone())),
        };
        let limit = u32::try_from(page.fetch()).unwrap_or(u32::MAX);
        let mut rows = self
            .store
            .list_agents_page(&p.team_uid, &filter, limit)
            .await?;
        let next_cursor = page.finish(&mut rows, |(a, created_at)| {
            (*created_at, a.agent.uid.clone())
        });
        Ok(AgentList {
            agents: rows.into_iter().map(|(a, _)| a.agent).collect(),
            next_cursor,
        })
    }

    /// `GET /api/v1/agent/identities/{uid}`.
    pub async fn get_agent(&self, p: &Principal, uid: &str) -> Result<Versioned<Agent>> {
        validate::uid("uid", uid)?;
        let agent = self
            .store
            .get_agent_versioned(&p.team_uid, uid)
            .await?
            .ok_or(CoreError::NotFound("agent"))?;
        authz::check(p, Action::ReadAgent, Target::Agent(uid))?;
        Ok(Versioned {
            value: agent.value.agent,
            version: agent.version,
        })
    }

    /// `POST /api/v1/agent/identities`.
    pub async fn create_agent(&self, p: &Principal, req: AgentCreate) -> Result<Agent> {
        authz::check(p, Action::CreateAgent, Target::Team)?;
        let mut editable = AgentEditable {
            name: req.name,
            description: req.description.unwrap_or_default(),
            available: req.available.unwrap_or(true),
            base_model: req.base_model,
            inference_providers: req.inference_providers.unwrap_or_default(),
        };
        validate_agent(&mut editable)?;
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
        let changes = serde_json::to_value(&row.agent).unwrap_or_default();
        let audit = self.audit_event(
            p,
            "agent.create",
            format!("agent:{}", row.agent.uid),
            &changes,
        );
        self.store.insert_agent(&row, now, Some(&audit)).await?;
        Ok(row.agent)
    }

    /// `PATCH /api/v1/agent/identities/{uid}`: a JSON Merge Patch (RFC 7396),
    /// applied to the current agent by a compare-and-swap (see the module doc).
    pub async fn patch_agent(
        &self,
        p: &Principal,
        uid: &str,
        patch: serde_json::Value,
        if_match: Option<IfMatch>,
    ) -> Result<Versioned<Agent>> {
        authz::check(p, Action::PatchAgent, Target::Agent(uid))?;
        validate::uid("uid", uid)?;
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
        for _ in 0..MAX_ATTEMPTS {
            let Versioned {
                value: mut row,
                version,
            } = self
                .store
                .get_agent_versioned(&p.team_uid, uid)
                .await?
                .ok_or(CoreError::NotFound("agent"))?;
            if let Some(m) = &if_match {
                m.check(version)?;
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
            let mut edited: AgentEditable = validate::from_json_value(doc)?;
            validate_agent(&mut edited)?;
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
            let audit = self.audit_event(p, "agent.update", format!("agent:{uid}"), &changes);
            if !self
                .store
                .update_agent_if(&row, version, Some(&audit))
                .await?
            {
                if if_match.is_some() {
                    return Err(versioned::stale());
                }
                continue;
            }
            self.bump();
            if credentials_stale {
                self.broker
                    .drop_actor(&p.team_uid, &agent_actor(uid), Cause::SettingsChanged);
            }
            return Ok(Versioned {
                value: row.agent,
                version: version + 1,
            });
        }
        Err(versioned::contended())
    }

    /// `DELETE /api/v1/agent/identities/{uid}`: also revokes its keys and cancels
    /// its open runs.
    pub async fn delete_agent(&self, p: &Principal, uid: &str) -> Result<()> {
        authz::check(p, Action::DeleteAgent, Target::Agent(uid))?;
        validate::uid("uid", uid)?;
        let audit = self.audit_event(
            p,
            "agent.delete",
            format!("agent:{uid}"),
            &serde_json::json!({}),
        );
        let removed = self
            .store
            .delete_agent(&p.team_uid, uid, self.clock.now(), Some(&audit))
            .await?
            .ok_or(CoreError::NotFound("agent"))?;
        self.forget_removed(&p.team_uid, &agent_actor(uid), &removed);
        Ok(())
    }
}

fn agent_actor(uid: &str) -> Actor {
    Actor {
        actor_type: ActorType::ServiceAccount,
        uid: uid.to_owned(),
    }
}
