//! The `members` table, and removing a member or an agent with everything that
//! authenticates as it (its keys, its open runs' tokens) in one transaction.

use sqlx::Row as _;

use byollm_api::types::ActorType;

use super::notify::{Change, ChangeKind};
use super::{MemberRow, Result, Store, b, map_unique};

/// What died with a removed member or agent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RemovedActor {
    /// Hashes of its API keys and of the cancelled runs' tokens, for the
    /// credential cache.
    pub credential_hashes: Vec<String>,
    /// The runs cancelled: those it acts in and those it started.
    pub cancelled_runs: Vec<String>,
}

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

    /// Removes a member, their API keys, and cancels the runs they act in or
    /// started; `None` when there was no such member.
    pub async fn delete_member(
        &self,
        team_uid: &str,
        uid: &str,
        now: i64,
    ) -> Result<Option<RemovedActor>> {
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
        self.announce(&[Change::new(ChangeKind::MemberChanged, team_uid, uid)])
            .await;
        Ok(())
    }

    /// Removes a member or an agent in one transaction: its API keys go, the runs
    /// it acts in or started are cancelled, and what died is returned; `None`
    /// when the actor did not exist in the team.
    pub(super) async fn delete_actor(
        &self,
        team_uid: &str,
        actor: ActorType,
        uid: &str,
        now: i64,
    ) -> Result<Option<RemovedActor>> {
        let kind = actor.as_str();
        let (table, change) = match actor {
            ActorType::User => ("members", ChangeKind::MemberRemoved),
            ActorType::ServiceAccount => ("agents", ChangeKind::AgentRemoved),
        };
        let mut tx = self.pool.begin().await?;
        // A run it started for someone else (a member's run of an agent) ends
        // with it too: nobody is left to answer for it.
        const OPEN_RUNS: &str = "team_uid = $1 AND state IN ('queued', 'running') \
             AND ((actor_type = $2 AND actor_uid = $3) \
             OR (triggered_by_type = $2 AND triggered_by_uid = $3))";
        let mut removed = RemovedActor::default();
        for r in sqlx::query(
            "SELECT key_hash FROM api_keys WHERE team_uid = $1 AND owner_type = $2 AND owner_uid = $3",
        )
        .bind(team_uid)
        .bind(kind)
        .bind(uid)
        .fetch_all(&mut *tx)
        .await?
        {
            removed.credential_hashes.push(r.try_get::<String, _>(0)?);
        }
        for r in sqlx::query(&format!(
            "SELECT token_hash, uid FROM runs WHERE {OPEN_RUNS}"
        ))
        .bind(team_uid)
        .bind(kind)
        .bind(uid)
        .fetch_all(&mut *tx)
        .await?
        {
            removed.credential_hashes.push(r.try_get::<String, _>(0)?);
            removed.cancelled_runs.push(r.try_get::<String, _>(1)?);
        }
        sqlx::query(
            "DELETE FROM api_keys WHERE team_uid = $1 AND owner_type = $2 AND owner_uid = $3",
        )
        .bind(team_uid)
        .bind(kind)
        .bind(uid)
        .execute(&mut *tx)
        .await?;
        // OPEN_RUNS with its placeholders moved up by one ($1 is the time).
        sqlx::query(
            "UPDATE runs SET state = 'cancelled', finished_at = $1 WHERE team_uid = $2 \
             AND state IN ('queued', 'running') AND ((actor_type = $3 AND actor_uid = $4) \
             OR (triggered_by_type = $3 AND triggered_by_uid = $4))",
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
        let changes = std::iter::once(Change::new(change, team_uid, uid)).chain(
            removed
                .cancelled_runs
                .iter()
                .map(|r| Change::new(ChangeKind::RunEnded, team_uid, r)),
        );
        self.announce_in(&mut tx, &changes.collect::<Vec<_>>())
            .await?;
        tx.commit().await?;
        Ok((done.rows_affected() == 1).then_some(removed))
    }
}
