//! A member's own settings in the `members` table, written only by a
//! compare-and-swap on the row's `version` (see [`crate::versioned`]).

use super::audit_events::insert_audit_in;
use super::notify::{Change, ChangeKind};
use super::{AuditEventRow, Result, Store, b, col};
use crate::versioned::Versioned;

impl Store {
    /// A member's Bedrock opt-in and the row's version; `None` for no such
    /// member.
    pub async fn get_member_opt_in_versioned(
        &self,
        team_uid: &str,
        uid: &str,
    ) -> Result<Option<Versioned<bool>>> {
        let row = sqlx::query(
            "SELECT aws_bedrock_opt_in, version FROM members WHERE team_uid = $1 AND uid = $2",
        )
        .bind(team_uid)
        .bind(uid)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(Versioned {
                value: col::<i64>(&r, "aws_bedrock_opt_in")? != 0,
                version: col(&r, "version")?,
            })
        })
        .transpose()
    }

    /// Sets a member's Bedrock opt-in if the row's version is still `seen`;
    /// `false` when another write got there first. `audit` is written with it.
    pub async fn set_member_opt_in_if(
        &self,
        team_uid: &str,
        uid: &str,
        opt_in: bool,
        seen: i64,
        audit: Option<&AuditEventRow>,
    ) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(
            "UPDATE members SET aws_bedrock_opt_in = $1, version = version + 1 \
             WHERE team_uid = $2 AND uid = $3 AND version = $4",
        )
        .bind(b(opt_in))
        .bind(team_uid)
        .bind(uid)
        .bind(seen)
        .execute(&mut *tx)
        .await?;
        let updated = done.rows_affected() == 1;
        if updated {
            insert_audit_in(&mut tx, audit).await?;
        }
        tx.commit().await?;
        if updated {
            self.announce(&[Change::new(ChangeKind::MemberChanged, team_uid, uid)])
                .await;
        }
        Ok(updated)
    }
}
