//! The `agents` table: named agents of a team.
//!
//! Names are unique per team under [`validate::name_key`] (case-insensitive),
//! and every edit is a compare-and-swap on `version` (see
//! [`crate::versioned`]).

use byollm_api::types::ActorType;

use super::audit_events::insert_audit_in;
use super::notify::{Change, ChangeKind};
use super::{AgentRow, AuditEventRow, RemovedActor, Result, Store, b, col, map_unique};
use crate::validate;
use crate::versioned::Versioned;

const AGENT_SELECT: &str = "SELECT uid, team_uid, name, description, base_model, available, \
     inference_providers, created_at, created_by, version FROM agents";

const NAME_TAKEN: &str = "an agent with this name (compared case-insensitively) already exists \
     in the team";

/// Which agents a page lists, after which one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgentFilter {
    /// Names starting with this (compared case-insensitively).
    pub name_prefix: Option<String>,
    /// Only available (or only unavailable) agents.
    pub available: Option<bool>,
    /// The page starts after this `(created_at, uid)`.
    pub after: Option<(i64, String)>,
}

/// `LIKE` with `\` as the escape, so `%` and `_` in a prefix match themselves.
fn like_prefix(prefix: &str) -> String {
    let mut s = String::new();
    for c in prefix.chars() {
        if matches!(c, '%' | '_' | '\\') {
            s.push('\\');
        }
        s.push(c);
    }
    s.push('%');
    s
}

impl Store {
    /// Adds a named agent, with its audit row.
    pub async fn insert_agent(
        &self,
        a: &AgentRow,
        now: i64,
        audit: Option<&AuditEventRow>,
    ) -> Result<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO agents (uid, team_uid, name, description, base_model, available, \
             inference_providers, created_at, created_by, name_key) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
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
        .bind(validate::name_key(&a.agent.name))
        .execute(&mut *tx)
        .await
        .map_err(|e| map_unique(e, NAME_TAKEN))?;
        insert_audit_in(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    /// A named agent of a team.
    pub async fn get_agent(&self, team_uid: &str, uid: &str) -> Result<Option<AgentRow>> {
        Ok(self
            .get_agent_versioned(team_uid, uid)
            .await?
            .map(|v| v.value))
    }

    /// A named agent of a team and its version.
    pub async fn get_agent_versioned(
        &self,
        team_uid: &str,
        uid: &str,
    ) -> Result<Option<Versioned<AgentRow>>> {
        let row = sqlx::query(&format!("{AGENT_SELECT} WHERE team_uid = $1 AND uid = $2"))
            .bind(team_uid)
            .bind(uid)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| {
            Ok(Versioned {
                value: AgentRow::from_row(&r)?,
                version: col(&r, "version")?,
            })
        })
        .transpose()
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

    /// One page of a team's named agents in `(created_at, uid)` order, with
    /// their creation times: at most `limit` after `f.after`.
    pub async fn list_agents_page(
        &self,
        team_uid: &str,
        f: &AgentFilter,
        limit: u32,
    ) -> Result<Vec<(AgentRow, i64)>> {
        let mut sql = format!("{AGENT_SELECT} WHERE team_uid = $1");
        let mut n = 1;
        let mut arg = || {
            n += 1;
            format!("${n}")
        };
        if f.name_prefix.is_some() {
            sql.push_str(&format!(" AND name_key LIKE {} ESCAPE '\\'", arg()));
        }
        if f.available.is_some() {
            sql.push_str(&format!(" AND available = {}", arg()));
        }
        if f.after.is_some() {
            let (a, b, c) = (arg(), arg(), arg());
            sql.push_str(&format!(
                " AND (created_at > {a} OR (created_at = {b} AND uid > {c}))"
            ));
        }
        sql.push_str(&format!(" ORDER BY created_at, uid LIMIT {}", arg()));
        let mut q = sqlx::query(&sql).bind(team_uid);
        if let Some(prefix) = &f.name_prefix {
            q = q.bind(like_prefix(&validate::name_key(prefix)));
        }
        if let Some(available) = f.available {
            q = q.bind(b(available));
        }
        if let Some((created_at, uid)) = &f.after {
            q = q.bind(*created_at).bind(*created_at).bind(uid.clone());
        }
        let rows = q.bind(i64::from(limit)).fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| Ok((AgentRow::from_row(r)?, col(r, "created_at")?)))
            .collect()
    }

    /// Writes an agent's mutable fields if its version is still `seen`
    /// (compare-and-swap), with its audit row; `false` when another write got
    /// there first.
    pub async fn update_agent_if(
        &self,
        a: &AgentRow,
        seen: i64,
        audit: Option<&AuditEventRow>,
    ) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(
            "UPDATE agents SET name = $1, description = $2, base_model = $3, available = $4, \
             inference_providers = $5, name_key = $6, version = version + 1 \
             WHERE team_uid = $7 AND uid = $8 AND version = $9",
        )
        .bind(&a.agent.name)
        .bind(&a.agent.description)
        .bind(a.agent.base_model.clone())
        .bind(b(a.agent.available))
        .bind(a.providers_json()?)
        .bind(validate::name_key(&a.agent.name))
        .bind(&a.team_uid)
        .bind(&a.agent.uid)
        .bind(seen)
        .execute(&mut *tx)
        .await
        .map_err(|e| map_unique(e, NAME_TAKEN))?;
        let updated = done.rows_affected() == 1;
        if updated {
            insert_audit_in(&mut tx, audit).await?;
        }
        tx.commit().await?;
        if updated {
            self.announce(&[Change::new(
                ChangeKind::AgentChanged,
                &a.team_uid,
                &a.agent.uid,
            )])
            .await;
        }
        Ok(updated)
    }

    /// Removes an agent and its keys and cancels its open runs; `None` when
    /// there was no such agent. `audit` is written with it.
    pub async fn delete_agent(
        &self,
        team_uid: &str,
        uid: &str,
        now: i64,
        audit: Option<&AuditEventRow>,
    ) -> Result<Option<RemovedActor>> {
        self.delete_actor(team_uid, ActorType::ServiceAccount, uid, None, now, audit)
            .await
    }
}
