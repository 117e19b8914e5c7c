//! The `usage_requests` table, and retention across the tables that grow with
//! traffic (finished runs, audit rows, usage rows).

use super::{Result, Store, UsageFilter, UsageKey, UsageRow};

/// Rows per `INSERT` statement: 64 × 14 parameters stays under SQLite's
/// historical limit of 999 bound parameters.
const ROWS_PER_STATEMENT: usize = 64;

/// One multi-row `INSERT` for `rows` (at most [`ROWS_PER_STATEMENT`]).
fn insert_statement(rows: usize) -> String {
    let mut sql = String::from(
        "INSERT INTO usage_requests (id, team_uid, run_id, actor_type, actor_uid, member_uid, agent_uid, \
         model, route, attempts, input_tokens, output_tokens, inference_microcredits, created_at) VALUES ",
    );
    for r in 0..rows {
        if r > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for c in 0..14 {
            if c > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&format!("${}", r * 14 + c + 1));
        }
        sql.push(')');
    }
    sql.push_str(" ON CONFLICT (id) DO NOTHING");
    sql
}

impl Store {
    /// Writes a batch of usage rows, all or none. Idempotent: a row whose id is
    /// already stored is skipped, so retrying a commit whose answer was lost
    /// never counts a request twice. A batch of up to 64 rows is one statement
    /// (one round trip, its own transaction); a larger one is one transaction.
    pub async fn insert_usage(&self, rows: &[UsageRow]) -> Result<()> {
        if rows.len() <= ROWS_PER_STATEMENT {
            return insert_chunk(&self.pool, rows).await;
        }
        let mut tx = self.begin_write().await?;
        for chunk in rows.chunks(ROWS_PER_STATEMENT) {
            insert_chunk(&mut *tx, chunk).await?;
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
        let events = self.purge_audit_events_before(cutoff).await?;
        Ok(runs + audit + usage + events)
    }
}

/// One `INSERT` of `rows` on `db` (a pool or a transaction).
async fn insert_chunk<'c, E>(db: E, rows: &[UsageRow]) -> Result<()>
where
    E: sqlx::Executor<'c, Database = sqlx::Any>,
{
    if rows.is_empty() {
        return Ok(());
    }
    let sql = insert_statement(rows.len());
    let mut q = sqlx::query(&sql);
    for u in rows {
        q = q
            .bind(u.id.clone())
            .bind(u.team_uid.clone())
            .bind(u.run_id.clone())
            .bind(u.actor.actor_type.as_str())
            .bind(u.actor.uid.clone())
            .bind(u.member_uid.clone())
            .bind(u.agent_uid.clone())
            .bind(u.model.clone())
            .bind(u.route.clone())
            .bind(u.attempts.clone())
            .bind(u.input_tokens)
            .bind(u.output_tokens)
            .bind(u.inference_microcredits)
            .bind(u.created_at);
    }
    q.execute(db).await?;
    Ok(())
}
