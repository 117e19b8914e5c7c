//! The `teams` table: a team and its LLM settings (one JSON document).

use byollm_api::types::LlmSettings;

use super::notify::{Change, ChangeKind};
use super::{Result, Store, StoreError, TeamRow, map_unique};

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

    /// Replaces a team's LLM settings.
    pub async fn put_settings(&self, team_uid: &str, settings: &LlmSettings) -> Result<()> {
        let text =
            serde_json::to_string(settings).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        sqlx::query("UPDATE teams SET llm_settings = $1 WHERE uid = $2")
            .bind(text)
            .bind(team_uid)
            .execute(&self.pool)
            .await?;
        self.announce(&[Change::new(ChangeKind::TeamSettings, team_uid, team_uid)])
            .await;
        Ok(())
    }
}
