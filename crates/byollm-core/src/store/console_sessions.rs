//! The `console_sessions` and `console_sign_in_links` tables: web console
//! sign-ins (issue 16).
//!
//! Invariants: only hashes are stored (the cookie's SHA-256, the API key's or
//! the sign-in link's SHA-256, never a secret); a session past `expires_at` is
//! never returned, whether or not maintenance has deleted it yet; every read
//! names the cookie's hash, so a session is only ever found by whoever holds
//! it. A sign-in link is spent at most once: the update that marks it used is
//! conditional on `used_at IS NULL`, in the transaction that opens its session.

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
    /// SHA-256 of the API key it was opened with (as in `api_keys.key_hash`),
    /// or of the sign-in link for a link session.
    pub key_hash: String,
    /// The member a sign-in link session acts as (`None`: a key session).
    pub member_uid: Option<String>,
    /// When it was opened, Unix seconds.
    pub created_at: i64,
    /// When it ends whatever happens, Unix seconds.
    pub expires_at: i64,
}

/// A one-time console sign-in link as stored (never the token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignInLinkRow {
    /// SHA-256 of the link's token, hex.
    pub token_hash: String,
    /// The member's team.
    pub team_uid: String,
    /// The member it signs in.
    pub member_uid: String,
    /// When it was minted, Unix seconds.
    pub created_at: i64,
    /// When it stops working, Unix seconds.
    pub expires_at: i64,
    /// When it was spent (`None`: not yet).
    pub used_at: Option<i64>,
}

impl Store {
    /// Stores a new session, with its audit row (one transaction).
    pub async fn insert_console_session(
        &self,
        s: &ConsoleSessionRow,
        audit: Option<&AuditEventRow>,
    ) -> Result<()> {
        let mut tx = self.begin_write().await?;
        insert_session_in(&mut tx, s).await?;
        insert_audit_in(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Stores a new sign-in link, with its audit row (one transaction).
    pub async fn insert_sign_in_link(
        &self,
        l: &SignInLinkRow,
        audit: Option<&AuditEventRow>,
    ) -> Result<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO console_sign_in_links \
             (token_hash, team_uid, member_uid, created_at, expires_at, used_at) \
             VALUES ($1, $2, $3, $4, $5, NULL)",
        )
        .bind(&l.token_hash)
        .bind(&l.team_uid)
        .bind(&l.member_uid)
        .bind(l.created_at)
        .bind(l.expires_at)
        .execute(&mut *tx)
        .await
        .map_err(|e| map_unique(e, "sign-in link exists"))?;
        insert_audit_in(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The sign-in link with this hash, spent or not (`None`: never minted,
    /// or purged).
    pub async fn find_sign_in_link(&self, token_hash: &str) -> Result<Option<SignInLinkRow>> {
        let row = sqlx::query(
            "SELECT token_hash, team_uid, member_uid, created_at, expires_at, used_at \
             FROM console_sign_in_links WHERE token_hash = $1",
        )
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(SignInLinkRow {
                token_hash: r.try_get("token_hash")?,
                team_uid: r.try_get("team_uid")?,
                member_uid: r.try_get("member_uid")?,
                created_at: r.try_get("created_at")?,
                expires_at: r.try_get("expires_at")?,
                used_at: r.try_get("used_at")?,
            })
        })
        .transpose()
    }

    /// Spends a live, unused sign-in link and opens its session with its audit
    /// row, in one transaction; `false` (nothing written) when the link was
    /// spent meanwhile or has expired.
    pub async fn spend_sign_in_link(
        &self,
        token_hash: &str,
        now: i64,
        session: &ConsoleSessionRow,
        audit: Option<&AuditEventRow>,
    ) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(
            "UPDATE console_sign_in_links SET used_at = $1 \
             WHERE token_hash = $2 AND used_at IS NULL AND expires_at > $1",
        )
        .bind(now)
        .bind(token_hash)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            tx.rollback().await?;
            return Ok(false);
        }
        insert_session_in(&mut tx, session).await?;
        insert_audit_in(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// The live session whose cookie has this hash (`None` once it expired).
    pub async fn find_console_session(
        &self,
        id_hash: &str,
        now: i64,
    ) -> Result<Option<ConsoleSessionRow>> {
        let row = sqlx::query(
            "SELECT id_hash, team_uid, key_hash, member_uid, created_at, expires_at \
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
                member_uid: r.try_get("member_uid")?,
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

    /// Deletes sessions that ended at or before `now`, and sign-in links
    /// expired a day before `now` (kept that long so a late click still gets
    /// the "expired" page); how many sessions.
    pub async fn purge_console_sessions(&self, now: i64) -> Result<u64> {
        sqlx::query("DELETE FROM console_sign_in_links WHERE expires_at <= $1")
            .bind(now - 24 * 3600)
            .execute(&self.pool)
            .await?;
        Ok(
            sqlx::query("DELETE FROM console_sessions WHERE expires_at <= $1")
                .bind(now)
                .execute(&self.pool)
                .await?
                .rows_affected(),
        )
    }
}

async fn insert_session_in(db: &mut sqlx::AnyConnection, s: &ConsoleSessionRow) -> Result<()> {
    sqlx::query(
        "INSERT INTO console_sessions \
         (id_hash, team_uid, key_hash, member_uid, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&s.id_hash)
    .bind(&s.team_uid)
    .bind(&s.key_hash)
    .bind(&s.member_uid)
    .bind(s.created_at)
    .bind(s.expires_at)
    .execute(&mut *db)
    .await
    .map_err(|e| map_unique(e, "console session exists"))?;
    Ok(())
}
