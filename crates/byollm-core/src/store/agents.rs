//! The `agents` table: named agents of a team.

use byollm_api::types::ActorType;

use super::notify::{Change, ChangeKind};
use super::{AgentRow, RemovedActor, Result, Store, b, map_unique};

const AGENT_SELECT: &str = "SELECT uid, team_uid, name, description, base_model, available, \
     inference_providers, created_at, created_by FROM agents";

impl Store {
    /// Adds a named agent.
    pub async fn insert_agent(&self, a: &AgentRow, now: i64) -> Result<()> {
        sqlx::query(
            "INSERT INTO agents (uid, team_uid, name, description, base_model, available, \
             inference_providers, created_at, created_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&a.agent.uid)
        .bind(&a.team_uid)
        .bind(&a.agent.name)
        .bind(&a.agent.description)
        .bind(a.agent.base_model.clone())
        .bind(b(a.agent.available))
        .bind(a.providers_json()?)
        .bind(now)
        .bind(&a.agent.created_by)
        .execute(&self.pool)
        .await
        .map_err(|e| map_unique(e, "an agent with this name already exists in the team"))?;
        Ok(())
    }

    /// A named agent of a team.
    pub async fn get_agent(&self, team_uid: &str, uid: &str) -> Result<Option<AgentRow>> {
        let row = sqlx::query(&format!("{AGENT_SELECT} WHERE team_uid = $1 AND uid = $2"))
            .bind(team_uid)
            .bind(uid)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| AgentRow::from_row(&r)).transpose()
    }

    /// A team's named agents, oldest first.
    pub async fn list_agents(&self, team_uid: &str) -> Result<Vec<AgentRow>> {
        let rows = sqlx::query(&format!(
            "{AGENT_SELECT} WHERE team_uid = $1 ORDER BY created_at, uid"
        ))
        .bind(team_uid)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(AgentRow::from_row).collect()
    }

    /// Writes an agent's mutable fields.
    pub async fn update_agent(&self, a: &AgentRow) -> Result<()> {
        sqlx::query(
            "UPDATE agents SET name = $1, description = $2, base_model = $3, available = $4, \
             inference_providers = $5 WHERE team_uid = $6 AND uid = $7",
        )
        .bind(&a.agent.name)
        .bind(&a.agent.description)
        .bind(a.agent.base_model.clone())
        .bind(b(a.agent.available))
        .bind(a.providers_json()?)
        .bind(&a.team_uid)
        .bind(&a.agent.uid)
        .execute(&self.pool)
        .await
        .map_err(|e| map_unique(e, "an agent with this name already exists in the team"))?;
        self.announce(&[Change::new(
            ChangeKind::AgentChanged,
            &a.team_uid,
            &a.agent.uid,
        )])
        .await;
        Ok(())
    }

    /// Removes an agent and its keys and cancels its open runs; `None` when
    /// there was no such agent.
    pub async fn delete_agent(
        &self,
        team_uid: &str,
        uid: &str,
        now: i64,
    ) -> Result<Option<RemovedActor>> {
        self.delete_actor(team_uid, ActorType::ServiceAccount, uid, None, now)
            .await
    }
}
