//! The `token_audit` table: one row per issued identity token.

use tokio::sync::oneshot;

use super::{AuditRow, Direct, Engine, Result, Store, StoreError, push_value_rows};

/// One multi-row `INSERT` for `rows` audit rows. A row whose commit's
/// request was cancelled goes again with the next commit, and that first
/// commit may have landed: the same token's row is then skipped, not a
/// conflict that would refuse every token of the batch.
fn insert_statement(rows: usize, engine: Engine) -> String {
    let mut sql = String::from(
        "INSERT INTO token_audit (jti, team_uid, sub, aud, kid, iat, exp, requested_by, actor) VALUES ",
    );
    push_value_rows(&mut sql, rows, 9, engine);
    sql.push_str(" ON CONFLICT (jti) DO NOTHING");
    sql
}

/// The one-row audit insert of the direct path (SQLite), built once.
static INSERT_AUDIT_ONE: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| insert_statement(1, Engine::Sqlite));

/// Inserts `a` with the cached one-row statement (a repeated token is skipped).
fn insert_audit_one(conn: &rusqlite::Connection, a: &&AuditRow) -> rusqlite::Result<()> {
    let mut st = conn.prepare_cached(&INSERT_AUDIT_ONE)?;
    st.execute(rusqlite::params![
        a.jti,
        a.team_uid,
        a.sub,
        a.aud,
        a.kid,
        a.iat,
        a.exp,
        a.requested_by,
        a.actor,
    ])?;
    Ok(())
}

/// Rows per `INSERT`: 64 × 9 parameters stays under SQLite's historical
/// limit of 999 bound parameters.
const ROWS_PER_STATEMENT: usize = 64;

/// Group commit of token audit rows. Each minting request puts its row in
/// `pending` and then either takes the write turn ([`Store::write_turn`]),
/// committing every pending
/// row in one transaction, or is answered by whoever holds the turn and took
/// its row. A lone row is thus committed by its own request with no hand-off,
/// and under load one commit carries many tokens' rows. No background task:
/// every row's request waits until its row is committed (or has failed), so a
/// row can be left pending only by a request that stopped waiting, and the
/// next commit takes it.
#[derive(Debug, Default)]
pub(super) struct AuditBatch {
    pending: parking_lot::Mutex<Vec<(AuditRow, oneshot::Sender<Outcome>)>>,
}

/// A commit's outcome, as each of its rows' requests gets it.
type Outcome = std::result::Result<(), (bool, String)>;

impl Store {
    /// Records an issued token (never the token itself); returns once the row
    /// is committed, so a token is handed out only with its audit row stored.
    /// Concurrent calls share commits ([`AuditBatch`]).
    pub async fn insert_audit(&self, a: &AuditRow) -> Result<()> {
        let batch = &self.audit;
        loop {
            let (done, mut answer) = oneshot::channel();
            batch.pending.lock().push((a.clone(), done));
            let turn = tokio::select! {
                // Another request's commit took the row.
                r = &mut answer => match r {
                    Ok(outcome) => return outcome.map_err(batch_error),
                    // That request stopped (it was cancelled mid-commit):
                    // whether the row landed is unknown, so it goes again.
                    Err(_) => continue,
                },
                turn = self.write_turn.lock() => turn,
            };
            // Our turn; a commit before it may have taken the row already.
            if let Ok(outcome) = answer.try_recv() {
                return outcome.map_err(batch_error);
            }
            let rows: Vec<_> = std::mem::take(&mut *batch.pending.lock());
            let written = self
                .insert_audit_rows(&rows.iter().map(|(r, _)| r).collect::<Vec<_>>())
                .await;
            drop(turn);
            let checkpoint_due = matches!(written, Ok(true));
            let outcome = written
                .map(|_| ())
                .map_err(|e| (e.is_unavailable(), e.to_string()));
            for (_, done) in rows {
                let _ = done.send(outcome.clone());
            }
            if checkpoint_due {
                // Every COMMITS_PER_CHECKPOINT direct commits, the request
                // that made the last one puts the log back in the database
                // (there is no background task here), after every row of its
                // commit has its answer and with the write turn released.
                if let Err(e) = self.checkpoint().await {
                    tracing::warn!(error = %e, "checkpointing the database's log failed; the next one retries");
                }
            }
            match answer.try_recv() {
                Ok(outcome) => return outcome.map_err(batch_error),
                // Not ours after all (cannot happen: our row was pending
                // until this commit took it); go again rather than guess.
                Err(_) => continue,
            }
        }
    }

    /// One transaction for `rows` (a single statement up to
    /// [`ROWS_PER_STATEMENT`]). On SQLite, up to [`ROWS_PER_STATEMENT`] rows go
    /// through the ledger's own connection on this thread first (the caller
    /// holds the write turn, so it is free): no hand-off to sqlx's worker
    /// thread and back. `Ok(true)`: committed, and a checkpoint is due.
    async fn insert_audit_rows(&self, rows: &[&AuditRow]) -> Result<bool> {
        if rows.len() > ROWS_PER_STATEMENT {
            let mut tx = self.begin_write().await?;
            for chunk in rows.chunks(ROWS_PER_STATEMENT) {
                insert_audit_chunk(&mut *tx, chunk, self.engine).await?;
            }
            tx.commit().await?;
            return Ok(false);
        }
        // A bounded batch: a few hundred µs at most on this thread.
        match self.commit_direct(rows, insert_audit_one) {
            Ok(Direct::Committed) => return Ok(false),
            Ok(Direct::CommittedCheckpointDue) => return Ok(true),
            Ok(Direct::Declined) => {}
            Err(e) => {
                tracing::debug!(error = %e, rows = rows.len(), "direct audit commit failed; through the pool");
            }
        }
        insert_audit_chunk(&self.pool, rows, self.engine).await?;
        Ok(false)
    }

    /// A team's audit rows, newest first.
    pub async fn list_audit(&self, team_uid: &str, limit: i64) -> Result<Vec<AuditRow>> {
        let rows = sqlx::query(
            "SELECT jti, team_uid, sub, aud, kid, iat, exp, requested_by, actor FROM token_audit \
             WHERE team_uid = $1 ORDER BY iat DESC, jti LIMIT $2",
        )
        .bind(team_uid)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(AuditRow::from_row).collect()
    }
}

/// The error a row's request gets when the commit that carried it failed.
fn batch_error((unavailable, message): (bool, String)) -> StoreError {
    StoreError::Batch {
        unavailable,
        message,
    }
}

/// One multi-row `INSERT` of audit rows.
async fn insert_audit_chunk<'c, E>(db: E, rows: &[&AuditRow], engine: Engine) -> Result<()>
where
    E: sqlx::Executor<'c, Database = sqlx::Any>,
{
    if rows.is_empty() {
        return Ok(());
    }
    let sql = insert_statement(rows.len(), engine);
    let mut q = sqlx::query(&sql);
    for a in rows {
        q = q
            .bind(a.jti.clone())
            .bind(a.team_uid.clone())
            .bind(a.sub.clone())
            .bind(a.aud.clone())
            .bind(a.kid.clone())
            .bind(a.iat)
            .bind(a.exp)
            .bind(a.requested_by.clone())
            .bind(a.actor.clone());
    }
    q.execute(db).await?;
    Ok(())
}
