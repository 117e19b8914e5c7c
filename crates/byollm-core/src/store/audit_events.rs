//! The `audit_events` table: the admin audit trail, one row per administrative
//! change, read a team at a time in `(at, id)` order.
//!
//! Invariant: an administrative write and its audit row are one transaction.
//! Each audited write of the store takes the row (`audit: Option<&AuditEventRow>`,
//! `None` only for writes nobody made through the API: bootstrap, fixtures)
//! and inserts it with [`insert_audit_in`] on its own transaction, after the
//! change and only when the change was made; if the insert fails, the change
//! rolls back with it.

use sqlx::AnyConnection;
use sqlx::any::AnyRow;

use super::{Result, Store, col};

/// One administrative change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEventRow {
    /// Event id (`aud_…`).
    pub id: String,
    /// The team it happened in.
    pub team_uid: String,
    /// Unix seconds.
    pub at: i64,
    /// `user` or `service_account`.
    pub actor_type: String,
    /// The member or agent that acted.
    pub actor_uid: String,
    /// The credential used: its kind and a fingerprint (the first 16 hex
    /// characters of its SHA-256), never the credential.
    pub credential: String,
    /// What was done, e.g. `member.create`.
    pub action: String,
    /// What it was done to, e.g. `member:<uid>`.
    pub target: String,
    /// The request that did it.
    pub request_id: Option<String>,
    /// The changed fields as a JSON object (no secrets).
    pub changes: String,
}

impl AuditEventRow {
    fn from_row(r: &AnyRow) -> Result<Self> {
        Ok(AuditEventRow {
            id: col(r, "id")?,
            team_uid: col(r, "team_uid")?,
            at: col(r, "at")?,
            actor_type: col(r, "actor_type")?,
            actor_uid: col(r, "actor_uid")?,
            credential: col(r, "credential")?,
            action: col(r, "action")?,
            target: col(r, "target")?,
            request_id: col(r, "request_id")?,
            changes: col(r, "changes")?,
        })
    }
}

/// Which events to list (every field optional; all given must match).
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Exact action.
    pub action: Option<String>,
    /// Exact actor uid.
    pub actor_uid: Option<String>,
    /// Exact target.
    pub target: Option<String>,
    /// At or after (Unix seconds).
    pub since: Option<i64>,
    /// Before (Unix seconds).
    pub until: Option<i64>,
}

/// Inserts `audit` (when given) on `db`: the transaction of the change it
/// records.
pub(super) async fn insert_audit_in(
    db: &mut AnyConnection,
    audit: Option<&AuditEventRow>,
) -> Result<()> {
    if let Some(e) = audit {
        insert(&mut *db, e).await?;
    }
    Ok(())
}

async fn insert<'c, E: sqlx::Executor<'c, Database = sqlx::Any>>(
    db: E,
    e: &AuditEventRow,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO audit_events (id, team_uid, at, actor_type, actor_uid, credential, \
         action, target, request_id, changes) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(&e.id)
    .bind(&e.team_uid)
    .bind(e.at)
    .bind(&e.actor_type)
    .bind(&e.actor_uid)
    .bind(&e.credential)
    .bind(&e.action)
    .bind(&e.target)
    .bind(e.request_id.clone())
    .bind(&e.changes)
    .execute(db)
    .await?;
    Ok(())
}

impl Store {
    /// Records an event that changes nothing else in the store.
    pub async fn insert_audit_event(&self, e: &AuditEventRow) -> Result<()> {
        insert(&self.pool, e).await
    }

    /// A team's events matching `filter`, oldest first, after `(at, id)` when
    /// given, at most `limit`.
    pub async fn list_audit_events(
        &self,
        team_uid: &str,
        filter: &AuditFilter,
        after: Option<(i64, &str)>,
        limit: i64,
    ) -> Result<Vec<AuditEventRow>> {
        const COLUMNS: &str = "SELECT id, team_uid, at, actor_type, actor_uid, credential, action, \
             target, request_id, changes FROM audit_events WHERE team_uid = $1 \
             AND ($2 IS NULL OR action = $2) AND ($3 IS NULL OR actor_uid = $3) \
             AND ($4 IS NULL OR target = $4) AND at >= $5 AND at < $6";
        let sql = match after {
            None => format!("{COLUMNS} ORDER BY at, id LIMIT $7"),
            Some(_) => {
                format!("{COLUMNS} AND (at > $8 OR (at = $8 AND id > $9)) ORDER BY at, id LIMIT $7")
            }
        };
        let mut q = sqlx::query(&sql)
            .bind(team_uid)
            .bind(filter.action.clone())
            .bind(filter.actor_uid.clone())
            .bind(filter.target.clone())
            .bind(filter.since.unwrap_or(i64::MIN))
            .bind(filter.until.unwrap_or(i64::MAX))
            .bind(limit);
        if let Some((at, id)) = after {
            q = q.bind(at).bind(id.to_owned());
        }
        let rows = q.fetch_all(&self.pool).await?;
        rows.iter().map(AuditEventRow::from_row).collect()
    }

    /// Deletes events older than `cutoff` (retention); returns how many.
    pub async fn purge_audit_events_before(&self, cutoff: i64) -> Result<u64> {
        Ok(sqlx::query("DELETE FROM audit_events WHERE at < $1")
            .bind(cutoff)
            .execute(&self.pool)
            .await?
            .rows_affected())
    }
}
