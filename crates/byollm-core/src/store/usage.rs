//! The `usage_requests` table, and retention across the tables that grow with
//! traffic (finished runs, audit rows, usage rows).

use super::{Result, Store, UsageFilter, UsageKey, UsageRow};

impl Store {
    /// Writes a batch of usage rows in one transaction. Idempotent: a row whose
    /// id is already stored is skipped, so retrying a commit whose answer was
    /// lost never counts a request twice.
    pub async fn insert_usage(&self, rows: &[UsageRow]) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        for u in rows {
            sqlx::query(
                "INSERT INTO usage_requests (id, team_uid, run_id, actor_type, actor_uid, member_uid, agent_uid, \
                 model, route, attempts, input_tokens, output_tokens, inference_microcredits, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) \
                 ON CONFLICT (id) DO NOTHING",
            )
            .bind(&u.id)
            .bind(&u.team_uid)
            .bind(u.run_id.clone())
            .bind(u.actor.actor_type.as_str())
            .bind(&u.actor.uid)
            .bind(u.member_uid.clone())
            .bind(u.agent_uid.clone())
            .bind(&u.model)
            .bind(&u.route)
            .bind(&u.attempts)
            .bind(u.input_tokens)
            .bind(u.output_tokens)
            .bind(u.inference_microcredits)
            .bind(u.created_at)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// A team's usage rows matching `filter` in `(created_at, id)` order, from
    /// just after `after` (a page's last row) or the start, at most `limit`.
    /// Keyset paging: a walk sees each row committed before it began exactly
    /// once, whatever is inserted or purged meanwhile.
    pub async fn list_usage(
        &self,
        team_uid: &str,
        filter: &UsageFilter,
        after: Option<&UsageKey>,
        limit: i64,
    ) -> Result<Vec<UsageRow>> {
        const COLUMNS: &str = "SELECT id, team_uid, run_id, actor_type, actor_uid, member_uid, agent_uid, model, \
             route, attempts, input_tokens, output_tokens, inference_microcredits, created_at FROM usage_requests \
             WHERE team_uid = $1 AND ($2 IS NULL OR run_id = $2) AND ($3 IS NULL OR agent_uid = $3) \
             AND ($4 IS NULL OR member_uid = $4)";
        let sql = match after {
            None => format!("{COLUMNS} ORDER BY created_at, id LIMIT $5"),
            Some(_) => format!(
                "{COLUMNS} AND (created_at > $6 OR (created_at = $6 AND id > $7)) \
                 ORDER BY created_at, id LIMIT $5"
            ),
        };
        let mut q = sqlx::query(&sql)
            .bind(team_uid)
            .bind(filter.run_id.clone())
            .bind(filter.agent_uid.clone())
            .bind(filter.member_uid.clone())
            .bind(limit);
        if let Some(key) = after {
            q = q.bind(key.created_at).bind(key.id.clone());
        }
        let rows = q.fetch_all(&self.pool).await?;
        rows.iter().map(UsageRow::from_row).collect()
    }

    /// The inference micro-credits of every row of a team matching `filter`
    /// (the cast keeps PostgreSQL's `SUM(bigint)`, a numeric, decodable).
    pub async fn sum_inference_microcredits(
        &self,
        team_uid: &str,
        filter: &UsageFilter,
    ) -> Result<i64> {
        let total: i64 = sqlx::query_scalar(
            "SELECT CAST(COALESCE(SUM(inference_microcredits), 0) AS BIGINT) FROM usage_requests \
             WHERE team_uid = $1 AND ($2 IS NULL OR run_id = $2) AND ($3 IS NULL OR agent_uid = $3) \
             AND ($4 IS NULL OR member_uid = $4)",
        )
        .bind(team_uid)
        .bind(filter.run_id.clone())
        .bind(filter.agent_uid.clone())
        .bind(filter.member_uid.clone())
        .fetch_one(&self.pool)
        .await?;
        Ok(total)
    }

    /// Deletes finished runs, usage and audit rows older than `cutoff` (retention).
    pub async fn purge_before(&self, cutoff: i64) -> Result<u64> {
        let runs =
            sqlx::query("DELETE FROM runs WHERE finished_at IS NOT NULL AND finished_at < $1")
                .bind(cutoff)
                .execute(&self.pool)
                .await?
                .rows_affected();
        let audit = sqlx::query("DELETE FROM token_audit WHERE iat < $1")
            .bind(cutoff)
            .execute(&self.pool)
            .await?
            .rows_affected();
        let usage = sqlx::query("DELETE FROM usage_requests WHERE created_at < $1")
            .bind(cutoff)
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(runs + audit + usage)
    }
}
