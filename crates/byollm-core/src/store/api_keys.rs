//! The `api_keys` table: keys by their SHA-256, never the key itself, with an
//! optional expiry and a coarse last use.
//!
//! Invariant: `last_used_at` is written at most once per [`LAST_USE_GRANULARITY`]
//! per key, whatever the number of replicas (the write is conditional).

use byollm_api::types::ActorType;

use super::audit_events::insert_audit_in;
use super::notify::{Change, ChangeKind};
use super::{ApiKeyRow, AuditEventRow, Result, Store, map_unique};

/// How stale `last_used_at` may be: a use within this many seconds of the
/// recorded one is not written.
pub const LAST_USE_GRANULARITY: i64 = 600;

const KEY_SELECT: &str = "SELECT id, team_uid, owner_type, owner_uid, name, key_hash, prefix, \
     created_at, expires_at, last_used_at FROM api_keys";

/// Where a page of keys starts: after this `(created_at, id)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyAfter {
    /// The last listed key's creation time.
    pub created_at: i64,
    /// The last listed key's id.
    pub id: String,
}

impl Store {
    /// Stores a key (its hash), with its audit row.
    pub async fn insert_api_key(&self, k: &ApiKeyRow, audit: Option<&AuditEventRow>) -> Result<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO api_keys (id, team_uid, owner_type, owner_uid, name, key_hash, prefix, \
             created_at, expires_at, last_used_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(&k.id)
        .bind(&k.team_uid)
        .bind(k.owner_type.as_str())
        .bind(&k.owner_uid)
        .bind(&k.name)
        .bind(&k.key_hash)
        .bind(&k.prefix)
        .bind(k.created_at)
        .bind(k.expires_at)
        .bind(k.last_used_at)
        .execute(&mut *tx)
        .await
        .map_err(|e| map_unique(e, "key exists"))?;
        insert_audit_in(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    /// A team's keys, oldest first.
    pub async fn list_api_keys(&self, team_uid: &str) -> Result<Vec<ApiKeyRow>> {
        let rows = sqlx::query(&format!(
            "{KEY_SELECT} WHERE team_uid = $1 ORDER BY created_at, id"
        ))
        .bind(team_uid)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(ApiKeyRow::from_row).collect()
    }

    /// At most `limit` of a team's keys (one owner's when `owner` is given) in
    /// `(created_at, id)` order, starting after `after`.
    pub async fn list_api_keys_page(
        &self,
        team_uid: &str,
        owner: Option<(ActorType, &str)>,
        after: Option<&KeyAfter>,
        limit: i64,
    ) -> Result<Vec<ApiKeyRow>> {
        let (after_at, after_id) = after.map_or((i64::MIN, ""), |a| (a.created_at, &a.id));
        let (owner_type, owner_uid) = owner.map_or(("", ""), |(t, u)| (t.as_str(), u));
        let rows = sqlx::query(&format!(
            "{KEY_SELECT} WHERE team_uid = $1 \
             AND ($2 = '' OR (owner_type = $2 AND owner_uid = $3)) \
             AND (created_at > $4 OR (created_at = $4 AND id > $5)) \
             ORDER BY created_at, id LIMIT $6"
        ))
        .bind(team_uid)
        .bind(owner_type)
        .bind(owner_uid)
        .bind(after_at)
        .bind(after_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(ApiKeyRow::from_row).collect()
    }

    /// One key of a team.
    pub async fn get_api_key(&self, team_uid: &str, id: &str) -> Result<Option<ApiKeyRow>> {
        let row = sqlx::query(&format!("{KEY_SELECT} WHERE team_uid = $1 AND id = $2"))
            .bind(team_uid)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| ApiKeyRow::from_row(&r)).transpose()
    }

    /// Deletes a key, with its audit row (written only if the key existed).
    pub async fn delete_api_key(
        &self,
        team_uid: &str,
        id: &str,
        audit: Option<&AuditEventRow>,
    ) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query("DELETE FROM api_keys WHERE team_uid = $1 AND id = $2")
            .bind(team_uid)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let changed = done.rows_affected() == 1;
        if changed {
            insert_audit_in(&mut tx, audit).await?;
        }
        tx.commit().await?;
        if changed {
            self.announce(&[Change::new(ChangeKind::KeyRevoked, team_uid, id)])
                .await;
        }
        Ok(changed)
    }

    /// The key with this hash (authentication on a cache miss).
    pub async fn find_api_key(&self, key_hash: &str) -> Result<Option<ApiKeyRow>> {
        let row = sqlx::query(&format!("{KEY_SELECT} WHERE key_hash = $1"))
            .bind(key_hash)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| ApiKeyRow::from_row(&r)).transpose()
    }

    /// Records a use of the key with this hash at `now`, unless one within
    /// [`LAST_USE_GRANULARITY`] is already recorded; whether it wrote.
    pub async fn touch_api_key(&self, key_hash: &str, now: i64) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE api_keys SET last_used_at = $1 WHERE key_hash = $2 \
             AND (last_used_at IS NULL OR last_used_at <= $3)",
        )
        .bind(now)
        .bind(key_hash)
        .bind(now - LAST_USE_GRANULARITY)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }
}
