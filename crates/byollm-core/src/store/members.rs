//! The `members` table, and removing a member or an agent with everything that
//! authenticates as it (its keys, its open runs' tokens) in one transaction.

use sqlx::Row as _;

use byollm_api::types::ActorType;

use super::{MemberRow, Result, Store, b, map_unique};

impl Store {
    /// Adds a member.
    pub async fn insert_member(&self, m: &MemberRow, now: i64) -> Result<()> {
        sqlx::query(
            "INSERT INTO members (uid, team_uid, email, role, aws_bedrock_opt_in, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&m.uid)
        .bind(&m.team_uid)
        .bind(&m.email)
        .bind(m.role.as_str())
        .bind(b(m.aws_bedrock_opt_in))
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(|e| map_unique(e, "a member with this email already exists in the team"))?;
        Ok(())
    }

    /// A member of a team.
    pub async fn get_member(&self, team_uid: &str, uid: &str) -> Result<Option<MemberRow>> {
        let row = sqlx::query(
            "SELECT uid, team_uid, email, role, aws_bedrock_opt_in FROM members WHERE team_uid = $1 AND uid = $2",
        )
        .bind(team_uid)
        .bind(uid)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| MemberRow::from_row(&r)).transpose()
    }

    /// A team's members, oldest first.
    pub async fn list_members(&self, team_uid: &str) -> Result<Vec<MemberRow>> {
        let rows = sqlx::query(
            "SELECT uid, team_uid, email, role, aws_bedrock_opt_in FROM members WHERE team_uid = $1 \
             ORDER BY created_at, uid",
        )
        .bind(team_uid)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(MemberRow::from_row).collect()
    }

    /// Removes a member, their API keys, and cancels the runs they act in;
    /// returns the hashes of the keys and run tokens that died, for the cache.
    pub async fn delete_member(
        &self,
        team_uid: &str,
        uid: &str,
        now: i64,
    ) -> Result<Option<Vec<String>>> {
        self.delete_actor(team_uid, ActorType::User, uid, now).await
    }

    /// Sets a member's Bedrock opt-in.
    pub async fn set_member_opt_in(&self, team_uid: &str, uid: &str, opt_in: bool) -> Result<()> {
        sqlx::query("UPDATE members SET aws_bedrock_opt_in = $1 WHERE team_uid = $2 AND uid = $3")
            .bind(b(opt_in))
            .bind(team_uid)
            .bind(uid)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Removes a member or an agent in one transaction: its API keys go, the runs
    /// it acts in are cancelled, and the hashes of every key and run token that
    /// died are returned; `None` when the actor did not exist in the team.
    pub(super) async fn delete_actor(
        &self,
        team_uid: &str,
        actor: ActorType,
        uid: &str,
        now: i64,
    ) -> Result<Option<Vec<String>>> {
        let kind = actor.as_str();
        let table = match actor {
            ActorType::User => "members",
            ActorType::ServiceAccount => "agents",
        };
        let mut tx = self.pool.begin().await?;
        let mut hashes: Vec<String> = Vec::new();
        for sql in [
            "SELECT key_hash FROM api_keys WHERE team_uid = $1 AND owner_type = $2 AND owner_uid = $3",
            "SELECT token_hash FROM runs WHERE team_uid = $1 AND actor_type = $2 AND actor_uid = $3 \
             AND state IN ('queued', 'running')",
        ] {
            for r in sqlx::query(sql)
                .bind(team_uid)
                .bind(kind)
                .bind(uid)
                .fetch_all(&mut *tx)
                .await?
            {
                hashes.push(r.try_get::<String, _>(0)?);
            }
        }
        sqlx::query(
            "DELETE FROM api_keys WHERE team_uid = $1 AND owner_type = $2 AND owner_uid = $3",
        )
        .bind(team_uid)
        .bind(kind)
        .bind(uid)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE runs SET state = 'cancelled', finished_at = $1 WHERE team_uid = $2 \
             AND actor_type = $3 AND actor_uid = $4 AND state IN ('queued', 'running')",
        )
        .bind(now)
        .bind(team_uid)
        .bind(kind)
        .bind(uid)
        .execute(&mut *tx)
        .await?;
        let done = sqlx::query(&format!(
            "DELETE FROM {table} WHERE team_uid = $1 AND uid = $2"
        ))
        .bind(team_uid)
        .bind(uid)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok((done.rows_affected() == 1).then_some(hashes))
    }
}
