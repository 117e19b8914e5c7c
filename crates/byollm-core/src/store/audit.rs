//! The `token_audit` table: one row per issued identity token.

use super::{AuditRow, Result, Store};

impl Store {
    /// Records an issued token (never the token itself).
    pub async fn insert_audit(&self, a: &AuditRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO token_audit (jti, team_uid, sub, aud, kid, iat, exp, requested_by, actor) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&a.jti)
        .bind(&a.team_uid)
        .bind(&a.sub)
        .bind(&a.aud)
        .bind(&a.kid)
        .bind(a.iat)
        .bind(a.exp)
        .bind(&a.requested_by)
        .bind(&a.actor)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// A team's audit rows, newest first.
    pub async fn list_audit(&self, team_uid: &str, limit: i64) -> Result<Vec<AuditRow>> {
        let rows = sqlx::query(
            "SELECT jti, team_uid, sub, aud, kid, iat, exp, requested_by, actor FROM token_audit \
             WHERE team_uid = $1 ORDER BY iat DESC, jti LIMIT $2",
        )
        .bind(team_uid)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(AuditRow::from_row).collect()
    }
}
