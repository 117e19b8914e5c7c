//! The `console_sessions` table: web console sign-ins (issue 16).
//!
//! Invariants: only hashes are stored (the cookie's SHA-256 and the API key's
//! SHA-256, never either secret); a session past `expires_at` is never
//! returned, whether or not maintenance has deleted it yet; every read names
//! the cookie's hash, so a session is only ever found by whoever holds it.

use sqlx::Row as _;

use super::audit_events::insert_audit_in;
use super::{AuditEventRow, Result, Store, map_unique};

/// A console session as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleSessionRow {
    /// SHA-256 of the session cookie, hex.
    pub id_hash: String,
    /// The team it was opened in.
    pub team_uid: String,
    /// SHA-256 of the API key it was opened with (as in `api_keys.key_hash`).
    pub key_hash: String,
    /// When it was opened, Unix seconds.
    pub created_at: i64,
    /// When it ends whatever happens, Unix seconds.
    pub expires_at: i64,
}

impl Store {
    /// Stores a new session, with its audit row (one transaction).
    pub async fn insert_console_session(
        &self,
        s: &ConsoleSessionRow,
        audit: Option<&AuditEventRow>,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO console_sessions (id_hash, team_uid, key_hash, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&s.id_hash)
        .bind(&s.team_uid)
        .bind(&s.key_hash)
        .bind(s.created_at)
        .bind(s.expires_at)
        .execute(&mut *tx)
        .await
        .map_err(|e| map_unique(e, "console session exists"))?;
        insert_audit_in(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The live session whose cookie has this hash (`None` once it expired).
    pub async fn find_console_session(
        &self,
        id_hash: &str,
        now: i64,
    ) -> Result<Option<ConsoleSessionRow>> {
        let row = sqlx::query(
            "SELECT id_hash, team_uid, key_hash, created_at, expires_at \
             FROM console_sessions WHERE id_hash = $1 AND expires_at > $2",
        )
        .bind(id_hash)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(ConsoleSessionRow {
                id_hash: r.try_get("id_hash")?,
                team_uid: r.try_get("team_uid")?,
                key_hash: r.try_get("key_hash")?,
                created_at: r.try_get("created_at")?,
                expires_at: r.try_get("expires_at")?,
            })
        })
        .transpose()
    }

    /// Ends a session (sign-out, or its key found revoked); whether it existed.
    pub async fn delete_console_session(&self, id_hash: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM console_sessions WHERE id_hash = $1")
            .bind(id_hash)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Deletes sessions that ended at or before `now`; how many.
    pub async fn purge_console_sessions(&self, now: i64) -> Result<u64> {
        Ok(
            sqlx::query("DELETE FROM console_sessions WHERE expires_at <= $1")
                .bind(now)
                .execute(&self.pool)
                .await?
                .rows_affected(),
        )
    }
}
