//! The `runs` table: runs and their workload tokens (by SHA-256).

use super::{Result, RunRow, Store, UsageFilter, map_unique};

const RUN_SELECT: &str = "SELECT uid, team_uid, actor_type, actor_uid, triggered_by_type, triggered_by_uid, \
     state, model, prompt, token_hash, token_expires_at, created_at, finished_at FROM runs";

impl Store {
    /// Stores a new run.
    pub async fn insert_run(&self, r: &RunRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO runs (uid, team_uid, actor_type, actor_uid, triggered_by_type, triggered_by_uid, \
             state, model, prompt, token_hash, token_expires_at, created_at, finished_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, NULL)",
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
        .execute(&self.pool)
        .await
        .map_err(|e| map_unique(e, "run exists"))?;
        Ok(())
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

    /// Ends a run unless it already ended; true when this call ended it.
    pub async fn finish_run(
        &self,
        team_uid: &str,
        uid: &str,
        state: &str,
        now: i64,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE runs SET state = $1, finished_at = $2 WHERE team_uid = $3 AND uid = $4 \
             AND state IN ('queued', 'running')",
        )
        .bind(state)
        .bind(now)
        .bind(team_uid)
        .bind(uid)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
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
