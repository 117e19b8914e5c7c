//! The `invitations` table: one live invitation code per member, stored as its
//! SHA-256 (like API keys), and its redemption for the member's first API key.
//!
//! Invariants: a code is single use — redeeming deletes its row and inserts the
//! key in one transaction, so two concurrent redemptions cannot both get a key;
//! an expired code redeems nothing; re-issuing replaces the member's row, so
//! the old code is dead at once.

use sqlx::Row as _;

use super::{ApiKeyRow, Result, Store, StoreError, map_unique};

/// An invitation as stored (its code's hash, never the code).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvitationRow {
    /// The invited member.
    pub member_uid: String,
    /// Their team.
    pub team_uid: String,
    /// SHA-256 of the code, hex.
    pub code_hash: String,
    /// When the code stops redeeming, Unix seconds.
    pub expires_at: i64,
    /// When it was issued, Unix seconds.
    pub created_at: i64,
}

impl Store {
    /// Stores a member's invitation, replacing any earlier one (whose code then
    /// redeems nothing).
    pub async fn put_invitation(&self, inv: &InvitationRow) -> Result<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM invitations WHERE team_uid = $1 AND member_uid = $2")
            .bind(&inv.team_uid)
            .bind(&inv.member_uid)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO invitations (member_uid, team_uid, code_hash, expires_at, created_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&inv.member_uid)
        .bind(&inv.team_uid)
        .bind(&inv.code_hash)
        .bind(inv.expires_at)
        .bind(inv.created_at)
        .execute(&mut *tx)
        .await
        .map_err(|e| map_unique(e, "invitation code exists"))?;
        tx.commit().await?;
        Ok(())
    }

    /// Deletes a member's invitation; whether there was one.
    pub async fn delete_invitation(&self, team_uid: &str, member_uid: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM invitations WHERE team_uid = $1 AND member_uid = $2")
            .bind(team_uid)
            .bind(member_uid)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Redeems the invitation whose code has this hash: in one transaction the
    /// invitation is deleted and `key` (built for the invitation's member and
    /// team by `make_key`) is stored. `None` when no live invitation has this
    /// hash (never issued, already redeemed, revoked, re-issued or expired) or
    /// its member is gone.
    pub async fn redeem_invitation(
        &self,
        code_hash: &str,
        now: i64,
        make_key: impl FnOnce(&InvitationRow) -> ApiKeyRow,
    ) -> Result<Option<ApiKeyRow>> {
        let mut tx = self.begin_write().await?;
        // The DELETE comes first: it takes the row's lock (the write lock on
        // SQLite), so of two concurrent redemptions only one sees the row.
        let row = sqlx::query(
            "DELETE FROM invitations WHERE code_hash = $1 \
             RETURNING member_uid, team_uid, code_hash, expires_at, created_at",
        )
        .bind(code_hash)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let inv = InvitationRow::from_row(&row)?;
        if now >= inv.expires_at {
            // Expired: the row goes anyway (it could never redeem again).
            tx.commit().await?;
            return Ok(None);
        }
        let member = sqlx::query("SELECT uid FROM members WHERE team_uid = $1 AND uid = $2")
            .bind(&inv.team_uid)
            .bind(&inv.member_uid)
            .fetch_optional(&mut *tx)
            .await?;
        if member.is_none() {
            tx.commit().await?;
            return Ok(None);
        }
        let key = make_key(&inv);
        if key.team_uid != inv.team_uid || key.owner_uid != inv.member_uid {
            return Err(StoreError::Corrupt(
                "an invitation's key must be its member's".to_owned(),
            ));
        }
        sqlx::query(
            "INSERT INTO api_keys (id, team_uid, owner_type, owner_uid, name, key_hash, prefix, \
             created_at, expires_at, last_used_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(&key.id)
        .bind(&key.team_uid)
        .bind(key.owner_type.as_str())
        .bind(&key.owner_uid)
        .bind(&key.name)
        .bind(&key.key_hash)
        .bind(&key.prefix)
        .bind(key.created_at)
        .bind(key.expires_at)
        .bind(key.last_used_at)
        .execute(&mut *tx)
        .await
        .map_err(|e| map_unique(e, "key exists"))?;
        tx.commit().await?;
        Ok(Some(key))
    }

    /// A member's invitation, if any (expired ones too).
    pub async fn get_invitation(
        &self,
        team_uid: &str,
        member_uid: &str,
    ) -> Result<Option<InvitationRow>> {
        let row = sqlx::query(&format!("{SELECT} WHERE team_uid = $1 AND member_uid = $2"))
            .bind(team_uid)
            .bind(member_uid)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| InvitationRow::from_row(&r)).transpose()
    }

    /// The invitation whose code has this hash, if any (expired ones too).
    pub async fn find_invitation(&self, code_hash: &str) -> Result<Option<InvitationRow>> {
        let row = sqlx::query(&format!("{SELECT} WHERE code_hash = $1"))
            .bind(code_hash)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| InvitationRow::from_row(&r)).transpose()
    }
}

const SELECT: &str =
    "SELECT member_uid, team_uid, code_hash, expires_at, created_at FROM invitations";

impl InvitationRow {
    fn from_row(r: &sqlx::any::AnyRow) -> Result<Self> {
        Ok(InvitationRow {
            member_uid: r.try_get(0)?,
            team_uid: r.try_get(1)?,
            code_hash: r.try_get(2)?,
            expires_at: r.try_get(3)?,
            created_at: r.try_get(4)?,
        })
    }
}
