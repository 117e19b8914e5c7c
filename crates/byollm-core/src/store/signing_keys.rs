//! The `signing_keys` table and the `keyring` generation that guards every
//! change to it (compare-and-swap, see [`Store::apply_key_change`]).

use sqlx::Row as _;

use super::notify::{Change, ChangeKind};
use super::{KeyChange, KeyRow, Result, Store, StoreError};

impl Store {
    /// The keyring generation and every stored key, consistent with each other.
    pub async fn load_keys(&self) -> Result<(i64, Vec<KeyRow>)> {
        let generation = || async {
            let row = sqlx::query("SELECT generation FROM keyring WHERE id = 1")
                .fetch_one(&self.pool)
                .await?;
            row.try_get::<i64, _>(0).map_err(StoreError::Db)
        };
        loop {
            // Every key change bumps the generation in the same transaction, and
            // the generation only grows: reading it before and after the rows and
            // seeing the same value proves the rows belong to it (under READ
            // COMMITTED the two reads may otherwise straddle a commit).
            let before = generation().await?;
            let rows = sqlx::query(
                "SELECT kid, alg, state, private_key_sealed, created_at, activate_after, retired_at, verify_until \
                 FROM signing_keys ORDER BY created_at, kid",
            )
            .fetch_all(&self.pool)
            .await?;
            if generation().await? == before {
                let keys = rows.iter().map(KeyRow::from_row).collect::<Result<_>>()?;
                return Ok((before, keys));
            }
        }
    }

    /// Applies a key-lifecycle change if the keyring is still at `generation`
    /// (compare-and-swap); false when another writer got there first.
    pub async fn apply_key_change(&self, generation: i64, change: &KeyChange) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        // The CAS is the transaction's first statement, so on SQLite it takes the
        // write lock before anything is read, and on PostgreSQL a racing updater
        // blocks on the row and then sees the new generation.
        let won = sqlx::query(
            "UPDATE keyring SET generation = generation + 1 WHERE id = 1 AND generation = $1",
        )
        .bind(generation)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if !won {
            tx.rollback().await?;
            return Ok(false);
        }
        for k in &change.insert {
            sqlx::query(
                "INSERT INTO signing_keys (kid, alg, state, private_key_sealed, created_at, activate_after, \
                 retired_at, verify_until) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(&k.kid)
            .bind(&k.alg)
            .bind(k.state.as_str())
            .bind(&k.private_key_sealed)
            .bind(k.created_at)
            .bind(k.activate_after)
            .bind(k.retired_at)
            .bind(k.verify_until)
            .execute(&mut *tx)
            .await?;
        }
        for (kid, state, retired_at, verify_until) in &change.update {
            sqlx::query("UPDATE signing_keys SET state = $1, retired_at = $2, verify_until = $3 WHERE kid = $4")
                .bind(state.as_str())
                .bind(*retired_at)
                .bind(*verify_until)
                .bind(kid)
                .execute(&mut *tx)
                .await?;
        }
        for kid in &change.remove {
            sqlx::query("DELETE FROM signing_keys WHERE kid = $1")
                .bind(kid)
                .execute(&mut *tx)
                .await?;
        }
        self.announce_in(&mut tx, &[Change::new(ChangeKind::SigningKeys, "", "")])
            .await?;
        tx.commit().await?;
        Ok(true)
    }
}
