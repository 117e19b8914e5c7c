//! The `teams` table: a team and its LLM settings (one JSON document, written
//! only by a compare-and-swap on `settings_version`, see [`crate::versioned`]).

use byollm_api::types::LlmSettings;

use super::audit_events::insert_audit_in;
use super::notify::{Change, ChangeKind};
use super::{AuditEventRow, Result, Store, StoreError, TeamRow, col, map_unique};
use crate::versioned::Versioned;

impl Store {
    /// Creates a team with default settings.
    pub async fn insert_team(&self, uid: &str, name: &str, now: i64) -> Result<()> {
        let settings = serde_json::to_string(&LlmSettings::default())
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        sqlx::query(
            "INSERT INTO teams (uid, name, llm_settings, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(uid)
        .bind(name)
        .bind(settings)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(|e| map_unique(e, "team exists"))?;
        Ok(())
    }

    /// A team.
    pub async fn get_team(&self, uid: &str) -> Result<Option<TeamRow>> {
        let row = sqlx::query("SELECT uid, name, llm_settings FROM teams WHERE uid = $1")
            .bind(uid)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| TeamRow::from_row(&r)).transpose()
    }

    /// A team's LLM settings and their version; `None` for no such team.
    pub async fn get_settings_versioned(
        &self,
        team_uid: &str,
    ) -> Result<Option<Versioned<LlmSettings>>> {
        let row = sqlx::query(
            "SELECT uid, name, llm_settings, settings_version FROM teams WHERE uid = $1",
        )
        .bind(team_uid)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(Versioned {
                value: TeamRow::from_row(&r)?.settings,
                version: col(&r, "settings_version")?,
            })
        })
        .transpose()
    }

    /// Replaces a team's LLM settings if their version is still `seen`
    /// (compare-and-swap), with its audit row; `false` when another write got
    /// there first.
    pub async fn put_settings_if(
        &self,
        team_uid: &str,
        settings: &LlmSettings,
        seen: i64,
        audit: Option<&AuditEventRow>,
    ) -> Result<bool> {
        let text =
            serde_json::to_string(settings).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(
            "UPDATE teams SET llm_settings = $1, settings_version = settings_version + 1 \
             WHERE uid = $2 AND settings_version = $3",
        )
        .bind(text)
        .bind(team_uid)
        .bind(seen)
        .execute(&mut *tx)
        .await?;
        let updated = done.rows_affected() == 1;
        if updated {
            insert_audit_in(&mut tx, audit).await?;
        }
        tx.commit().await?;
        if updated {
            self.announce(&[Change::new(ChangeKind::TeamSettings, team_uid, team_uid)])
                .await;
        }
        Ok(updated)
    }
}
