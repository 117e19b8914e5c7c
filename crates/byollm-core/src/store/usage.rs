//! The `usage_requests` table, and retention across the tables that grow with
//! traffic (finished runs, audit rows, usage rows).

use std::path::Path;

use super::{Engine, Result, Store, StoreError, UsageFilter, UsageKey, UsageRow, push_value_rows};

/// Rows per `INSERT` statement: 64 × 14 parameters stays under SQLite's
/// historical limit of 999 bound parameters.
const ROWS_PER_STATEMENT: usize = 64;

/// One multi-row `INSERT` for `rows` (at most [`ROWS_PER_STATEMENT`]).
fn insert_statement(rows: usize, engine: Engine) -> String {
    let mut sql = String::from(
        "INSERT INTO usage_requests (id, team_uid, run_id, actor_type, actor_uid, member_uid, agent_uid, \
         model, route, attempts, input_tokens, output_tokens, inference_microcredits, created_at) VALUES ",
    );
    push_value_rows(&mut sql, rows, 14, engine);
    sql.push_str(" ON CONFLICT (id) DO NOTHING");
    sql
}

/// The one-row insert of [`Store::insert_usage_now`] (SQLite), built once.
static INSERT_ONE: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| insert_statement(1, Engine::Sqlite));

/// The `WHERE` clause of a usage query for `filter` (`$1` team, `$2` run,
/// `$3` agent, `$4` member). A run filter is a plain `run_id = $2`: the run
/// index holds only rows with a run id (migration 0010), and a planner uses
/// it only where the query implies `run_id IS NOT NULL`, which
/// `$2 IS NULL OR run_id = $2` does not.
fn usage_filter_sql(filter: &UsageFilter) -> &'static str {
    if filter.run_id.is_some() {
        "WHERE team_uid = $1 AND run_id = $2 AND ($3 IS NULL OR agent_uid = $3) \
         AND ($4 IS NULL OR member_uid = $4)"
    } else {
        "WHERE team_uid = $1 AND ($2 IS NULL OR run_id = $2) AND ($3 IS NULL OR agent_uid = $3) \
         AND ($4 IS NULL OR member_uid = $4)"
    }
}

/// What became of a direct commit ([`Store::insert_usage_now`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direct {
    /// Committed.
    Committed,
    /// Committed, and a checkpoint of the log is due ([`Store::checkpoint`]).
    CommittedCheckpointDue,
    /// Not written: the path is not available now.
    Declined,
}

/// A SQLite connection of the ledgers' own (usage rows and token audit rows),
/// used on the caller's thread ([`Store::insert_usage_now`],
/// [`Store::insert_audit`]); opened on first use, dropped after an error (the
/// next use opens a fresh one).
#[derive(Debug, Default)]
pub(super) struct DirectWriter {
    conn: parking_lot::Mutex<Option<rusqlite::Connection>>,
    /// Commits since the last checkpoint was asked for.
    since_checkpoint: std::sync::atomic::AtomicU32,
}

/// Direct commits between two checkpoints. The direct connection never
/// checkpoints itself (`wal_autocheckpoint` 0: a checkpoint copies pages back
/// into the database and syncs it, milliseconds the caller's thread must not
/// spend); every this many commits, [`Store::insert_usage_now`] says a
/// checkpoint is due and the caller runs [`Store::checkpoint`] in the
/// background. About 5 pages per commit keeps the log near SQLite's default
/// of 1,000 pages.
pub const COMMITS_PER_CHECKPOINT: u32 = 200;

fn direct_error(e: rusqlite::Error) -> StoreError {
    StoreError::Direct(e.to_string())
}

/// Opens the direct connection: never waits for another writer's lock
/// (`busy_timeout` 0: a busy database is the caller's cue to queue the row
/// instead), and syncs as the pool's connections do.
fn open_direct(path: &Path) -> Result<rusqlite::Connection> {
    use rusqlite::OpenFlags;
    let conn = rusqlite::Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(direct_error)?;
    conn.busy_timeout(std::time::Duration::ZERO)
        .map_err(direct_error)?;
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(direct_error)?;
    conn.pragma_update(None, "wal_autocheckpoint", 0)
        .map_err(direct_error)?;
    Ok(conn)
}

/// Inserts `u` with the cached one-row statement (a duplicate id is skipped).
fn insert_one(conn: &rusqlite::Connection, u: &UsageRow) -> rusqlite::Result<()> {
    let mut st = conn.prepare_cached(&INSERT_ONE)?;
    st.execute(rusqlite::params![
        u.id,
        u.team_uid,
        u.run_id,
        u.actor.actor_type.as_str(),
        u.actor.uid,
        u.member_uid,
        u.agent_uid,
        u.model,
        u.route,
        u.attempts,
        u.input_tokens,
        u.output_tokens,
        u.inference_microcredits,
        u.created_at,
    ])?;
    Ok(())
}

impl Store {
    /// Commits usage rows, all in one transaction, on the calling thread,
    /// through the ledger's own SQLite connection: no hand-off to a
    /// connection's worker thread, so a lone row costs the commit itself (tens
    /// of µs) and nothing around it. Idempotent like [`Store::insert_usage`].
    ///
    /// `Ok(Direct::Declined)`, with nothing written, when this path is not
    /// available: on PostgreSQL, while another thread uses the connection, or
    /// while another connection holds SQLite's write lock (it never waits for
    /// it); the caller then writes the row the usual way.
    /// `Ok(Direct::CommittedCheckpointDue)`: committed, and the caller should
    /// run [`Store::checkpoint`] off its thread.
    pub fn insert_usage_now(&self, rows: &[UsageRow]) -> Result<Direct> {
        self.commit_direct(rows, insert_one)
    }

    /// Commits `rows` on the ledgers' own SQLite connection on this thread,
    /// each written by `insert` (a cached one-row statement): a lone row as
    /// one statement, several in one transaction that takes the write lock at
    /// its start, so all or none are stored. `Declined` on PostgreSQL, while
    /// another thread uses the connection or while another connection holds
    /// the write lock (`busy_timeout` is 0: it never waits); on any other
    /// error the connection is dropped and the next use opens a fresh one.
    /// Counts commits towards the next checkpoint.
    pub(super) fn commit_direct<T>(
        &self,
        rows: &[T],
        insert: impl Fn(&rusqlite::Connection, &T) -> rusqlite::Result<()>,
    ) -> Result<Direct> {
        if rows.is_empty() {
            return Ok(Direct::Committed);
        }
        let Some(path) = self.sqlite_path.as_deref() else {
            return Ok(Direct::Declined);
        };
        let Some(mut slot) = self.direct.conn.try_lock() else {
            return Ok(Direct::Declined);
        };
        let mut conn = match slot.take() {
            Some(c) => c,
            None => open_direct(path)?,
        };
        let written = match rows {
            [row] => insert(&conn, row),
            _ => conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .and_then(|tx| {
                    rows.iter().try_for_each(|row| insert(&tx, row))?;
                    tx.commit()
                }),
        };
        match written {
            Ok(()) => {
                *slot = Some(conn);
                let n = self
                    .direct
                    .since_checkpoint
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if n + 1 >= COMMITS_PER_CHECKPOINT {
                    self.direct
                        .since_checkpoint
                        .store(0, std::sync::atomic::Ordering::Relaxed);
                    return Ok(Direct::CommittedCheckpointDue);
                }
                Ok(Direct::Committed)
            }
            Err(rusqlite::Error::SqliteFailure(e, _))
                if matches!(
                    e.code,
                    rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
                ) =>
            {
                *slot = Some(conn);
                Ok(Direct::Declined)
            }
            // The connection is dropped: the next use opens a fresh one.
            Err(e) => Err(direct_error(e)),
        }
    }

    /// A passive checkpoint of SQLite's write-ahead log through the pool (it
    /// waits for no reader or writer); nothing on PostgreSQL.
    pub async fn checkpoint(&self) -> Result<()> {
        if self.engine == Engine::Sqlite {
            sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                .execute(&self.pool)
                .await?;
        }
        Ok(())
    }

    /// Writes a batch of usage rows, all or none. Idempotent: a row whose id is
    /// already stored is skipped, so retrying a commit whose answer was lost
    /// never counts a request twice. A batch of up to 64 rows is one statement
    /// (one round trip, its own transaction); a larger one is one transaction.
    pub async fn insert_usage(&self, rows: &[UsageRow]) -> Result<()> {
        if rows.len() <= ROWS_PER_STATEMENT {
            return insert_chunk(&self.pool, rows, self.engine).await;
        }
        let mut tx = self.begin_write().await?;
        for chunk in rows.chunks(ROWS_PER_STATEMENT) {
            insert_chunk(&mut *tx, chunk, self.engine).await?;
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
             route, attempts, input_tokens, output_tokens, inference_microcredits, created_at FROM usage_requests";
        let filter_sql = usage_filter_sql(filter);
        let sql = match after {
            None => format!("{COLUMNS} {filter_sql} ORDER BY created_at, id LIMIT $5"),
            Some(_) => format!(
                "{COLUMNS} {filter_sql} AND (created_at > $6 OR (created_at = $6 AND id > $7)) \
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
        let sql = format!(
            "SELECT CAST(COALESCE(SUM(inference_microcredits), 0) AS BIGINT) FROM usage_requests {}",
            usage_filter_sql(filter)
        );
        let total: i64 = sqlx::query_scalar(&sql)
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
async fn insert_chunk<'c, E>(db: E, rows: &[UsageRow], engine: Engine) -> Result<()>
where
    E: sqlx::Executor<'c, Database = sqlx::Any>,
{
    if rows.is_empty() {
        return Ok(());
    }
    let sql = insert_statement(rows.len(), engine);
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
