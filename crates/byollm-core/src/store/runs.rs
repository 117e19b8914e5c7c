//! The `runs` table: runs and their workload tokens (by SHA-256).
//!
//! A run that reaches its maximum age (`token_expires_at`) without ending is
//! `expired`, and ended at that time, not when someone noticed: its
//! `finished_at` is its `token_expires_at`, so compute stops counting there.

use sqlx::Row as _;

use super::audit_events::insert_audit_in;
use super::notify::{Change, ChangeKind};
use super::{AuditEventRow, Result, RunRow, Store, UsageFilter, map_unique};

/// A run that [`Store::expire_runs`] ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpiredRun {
    /// Its team.
    pub team_uid: String,
    /// The run.
    pub uid: String,
    /// Its workload token's hash, for the credential cache.
    pub token_hash: String,
}

/// Which runs a page lists, after which one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunFilter {
    /// Only runs in this state (wire spelling).
    pub state: Option<String>,
    /// Only runs acting as this actor `(type, uid)`.
    pub actor: Option<(String, String)>,
    /// Only runs this member acts as or started (a member's own list).
    pub involving_member: Option<String>,
    /// Created at or after (Unix seconds).
    pub since: Option<i64>,
    /// Created before (Unix seconds).
    pub until: Option<i64>,
    /// The page starts after this `(created_at, uid)`.
    pub after: Option<(i64, String)>,
}

const RUN_SELECT: &str = "SELECT uid, team_uid, actor_type, actor_uid, triggered_by_type, triggered_by_uid, \
     state, model, prompt, token_hash, token_expires_at, created_at, finished_at, \
     bedrock_role_arn, bedrock_region FROM runs";

impl Store {
    /// Stores a new run, with its audit row.
    pub async fn insert_run(&self, r: &RunRow, audit: Option<&AuditEventRow>) -> Result<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO runs (uid, team_uid, actor_type, actor_uid, triggered_by_type, triggered_by_uid, \
             state, model, prompt, token_hash, token_expires_at, created_at, finished_at, \
             bedrock_role_arn, bedrock_region) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, NULL, $13, $14)",
        )
        .bind(&r.uid)
        .bind(&r.team_uid)
        .bind(r.actor.actor_type.as_str())
        .bind(&r.actor.uid)
        .bind(r.triggered_by.actor_type.as_str())
        .bind(&r.triggered_by.uid)
        .bind(r.state.as_str())
        .bind(r.model.clone())
        .bind(r.prompt.clone())
        .bind(&r.token_hash)
        .bind(r.token_expires_at)
        .bind(r.created_at)
        .bind(r.bedrock.as_ref().map(|b| b.role_arn.clone()))
        .bind(r.bedrock.as_ref().map(|b| b.region.clone()))
        .execute(&mut *tx)
        .await
        .map_err(|e| map_unique(e, "run exists"))?;
        insert_audit_in(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    /// One page of a team's runs in `(created_at, uid)` order: at most `limit`
    /// after `f.after`.
    pub async fn list_runs_page(
        &self,
        team_uid: &str,
        f: &RunFilter,
        limit: i64,
    ) -> Result<Vec<RunRow>> {
        let mut sql = format!("{RUN_SELECT} WHERE team_uid = $1");
        let mut n = 1;
        let mut arg = || {
            n += 1;
            format!("${n}")
        };
        if f.state.is_some() {
            sql.push_str(&format!(" AND state = {}", arg()));
        }
        if f.actor.is_some() {
            sql.push_str(&format!(
                " AND actor_type = {} AND actor_uid = {}",
                arg(),
                arg()
            ));
        }
        if f.involving_member.is_some() {
            let (a, b) = (arg(), arg());
            sql.push_str(&format!(
                " AND ((actor_type = 'user' AND actor_uid = {a}) \
                 OR (triggered_by_type = 'user' AND triggered_by_uid = {b}))"
            ));
        }
        if f.since.is_some() {
            sql.push_str(&format!(" AND created_at >= {}", arg()));
        }
        if f.until.is_some() {
            sql.push_str(&format!(" AND created_at < {}", arg()));
        }
        if f.after.is_some() {
            let (a, b, c) = (arg(), arg(), arg());
            sql.push_str(&format!(
                " AND (created_at > {a} OR (created_at = {b} AND uid > {c}))"
            ));
        }
        sql.push_str(&format!(" ORDER BY created_at, uid LIMIT {}", arg()));
        let mut q = sqlx::query(&sql).bind(team_uid);
        if let Some(state) = &f.state {
            q = q.bind(state.clone());
        }
        if let Some((t, uid)) = &f.actor {
            q = q.bind(t.clone()).bind(uid.clone());
        }
        if let Some(uid) = &f.involving_member {
            q = q.bind(uid.clone()).bind(uid.clone());
        }
        if let Some(since) = f.since {
            q = q.bind(since);
        }
        if let Some(until) = f.until {
            q = q.bind(until);
        }
        if let Some((created_at, uid)) = &f.after {
            q = q.bind(*created_at).bind(*created_at).bind(uid.clone());
        }
        let rows = q.bind(limit).fetch_all(&self.pool).await?;
        rows.iter().map(RunRow::from_row).collect()
    }

    /// A run of a team.
    pub async fn get_run(&self, team_uid: &str, uid: &str) -> Result<Option<RunRow>> {
        let row = sqlx::query(&format!("{RUN_SELECT} WHERE team_uid = $1 AND uid = $2"))
            .bind(team_uid)
            .bind(uid)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| RunRow::from_row(&r)).transpose()
    }

    /// The run with this workload-token hash (authentication on a cache miss).
    pub async fn find_run_by_token(&self, token_hash: &str) -> Result<Option<RunRow>> {
        let row = sqlx::query(&format!("{RUN_SELECT} WHERE token_hash = $1"))
            .bind(token_hash)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| RunRow::from_row(&r)).transpose()
    }

    /// Marks `expired` every open run past its maximum age at `now` (all teams,
    /// or the one run `only` names), ended at its maximum age; returns them.
    pub async fn expire_runs(
        &self,
        now: i64,
        only: Option<(&str, &str)>,
    ) -> Result<Vec<ExpiredRun>> {
        let (team, uid) = only.unzip();
        let rows = sqlx::query(
            "UPDATE runs SET state = 'expired', finished_at = token_expires_at \
             WHERE state IN ('queued', 'running') AND token_expires_at <= $1 \
             AND ($2 IS NULL OR team_uid = $2) AND ($3 IS NULL OR uid = $3) \
             RETURNING team_uid, uid, token_hash",
        )
        .bind(now)
        .bind(team)
        .bind(uid)
        .fetch_all(&self.pool)
        .await?;
        let expired = rows
            .iter()
            .map(|r| {
                Ok(ExpiredRun {
                    team_uid: r.try_get(0)?,
                    uid: r.try_get(1)?,
                    token_hash: r.try_get(2)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        self.announce(
            &expired
                .iter()
                .map(|r| Change::new(ChangeKind::RunEnded, &r.team_uid, &r.uid))
                .collect::<Vec<_>>(),
        )
        .await;
        Ok(expired)
    }

    /// Ends a run unless it already ended or is past its maximum age (then it
    /// is `expired`, see [`Store::expire_runs`]); true when this call ended it
    /// (and wrote `audit` with it).
    pub async fn finish_run(
        &self,
        team_uid: &str,
        uid: &str,
        state: &str,
        now: i64,
        audit: Option<&AuditEventRow>,
    ) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(
            "UPDATE runs SET state = $1, finished_at = $2 WHERE team_uid = $3 AND uid = $4 \
             AND state IN ('queued', 'running') AND token_expires_at > $2",
        )
        .bind(state)
        .bind(now)
        .bind(team_uid)
        .bind(uid)
        .execute(&mut *tx)
        .await?;
        let changed = done.rows_affected() == 1;
        if changed {
            insert_audit_in(&mut tx, audit).await?;
        }
        tx.commit().await?;
        if changed {
            self.announce(&[Change::new(ChangeKind::RunEnded, team_uid, uid)])
                .await;
        }
        Ok(changed)
    }

    /// A team's runs matching `filter` (agent = actor, member = triggering member).
    pub async fn list_runs(&self, team_uid: &str, filter: &UsageFilter) -> Result<Vec<RunRow>> {
        let rows = sqlx::query(&format!(
            "{RUN_SELECT} WHERE team_uid = $1 AND ($2 IS NULL OR uid = $2) \
             AND ($3 IS NULL OR (actor_type = 'service_account' AND actor_uid = $3)) \
             AND ($4 IS NULL OR (triggered_by_type = 'user' AND triggered_by_uid = $4)) ORDER BY created_at, uid"
        ))
        .bind(team_uid)
        .bind(filter.run_id.clone())
        .bind(filter.agent_uid.clone())
        .bind(filter.member_uid.clone())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(RunRow::from_row).collect()
    }
}
