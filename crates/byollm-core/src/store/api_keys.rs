//! The `api_keys` table: keys by their SHA-256, never the key itself.

use super::notify::{Change, ChangeKind};
use super::{ApiKeyRow, Result, Store, map_unique};

const KEY_SELECT: &str =
    "SELECT id, team_uid, owner_type, owner_uid, name, key_hash, prefix, created_at FROM api_keys";

impl Store {
    /// Stores a key (its hash).
    pub async fn insert_api_key(&self, k: &ApiKeyRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO api_keys (id, team_uid, owner_type, owner_uid, name, key_hash, prefix, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&k.id)
        .bind(&k.team_uid)
        .bind(k.owner_type.as_str())
        .bind(&k.owner_uid)
        .bind(&k.name)
        .bind(&k.key_hash)
        .bind(&k.prefix)
        .bind(k.created_at)
        .execute(&self.pool)
        .await
        .map_err(|e| map_unique(e, "key exists"))?;
        Ok(())
    }

    /// A team's keys, all of them or one owner's.
    pub async fn list_api_keys(&self, team_uid: &str) -> Result<Vec<ApiKeyRow>> {
        let rows = sqlx::query(&format!(
            "{KEY_SELECT} WHERE team_uid = $1 ORDER BY created_at, id"
        ))
        .bind(team_uid)
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

    /// Deletes a key.
    pub async fn delete_api_key(&self, team_uid: &str, id: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM api_keys WHERE team_uid = $1 AND id = $2")
            .bind(team_uid)
            .bind(id)
            .execute(&self.pool)
            .await?;
        let changed = done.rows_affected() == 1;
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
}
