//! The `members` table, and removing a member or an agent with everything that
//! authenticates as it (its keys, its open runs' tokens, a member's invitation)
//! in one transaction.
//!
//! Invariant: a team keeps at least one owner. Every change that can take the
//! owner role away (a role change, a removal) runs in one transaction that first
//! locks the team's row, so two of them (on any replica, on SQLite or
//! PostgreSQL) are serialized and the second sees the first's result; and it
//! applies only if the member still has the role the caller judged.

use sqlx::Row as _;

use byollm_api::types::{ActorType, Role};

use super::audit_events::insert_audit_in;
use super::notify::{Change, ChangeKind};
use super::{AuditEventRow, MemberRow, Result, Store, StoreError, b, map_unique};

/// The refusal of a change that would leave a team without an owner.
pub const LAST_OWNER: &str = "a team keeps at least one owner";

/// The refusal of a change judged on a role the member no longer has.
pub const ROLE_CHANGED: &str = "the member's role changed meanwhile; read it again and retry";

/// Where a page of members starts: after this `(created_at, uid)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberAfter {
    /// The last listed member's creation time.
    pub created_at: i64,
    /// The last listed member's uid.
    pub uid: String,
}

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
    /// Adds a member, with its audit row.
    pub async fn insert_member(
        &self,
        m: &MemberRow,
        now: i64,
        audit: Option<&AuditEventRow>,
    ) -> Result<()> {
        let mut tx = self.begin_write().await?;
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
        .execute(&mut *tx)
        .await
        .map_err(|e| map_unique(e, "a member with this email already exists in the team"))?;
        insert_audit_in(&mut tx, audit).await?;
        tx.commit().await?;
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

    /// At most `limit` of a team's members in `(created_at, uid)` order after
    /// `after`, each with its creation time.
    pub async fn list_members_page(
        &self,
        team_uid: &str,
        after: Option<&MemberAfter>,
        limit: i64,
    ) -> Result<Vec<(MemberRow, i64)>> {
        let (after_at, after_uid) = after.map_or((i64::MIN, ""), |a| (a.created_at, &a.uid));
        let rows = sqlx::query(
            "SELECT uid, team_uid, email, role, aws_bedrock_opt_in, created_at FROM members \
             WHERE team_uid = $1 AND (created_at > $2 OR (created_at = $2 AND uid > $3)) \
             ORDER BY created_at, uid LIMIT $4",
        )
        .bind(team_uid)
        .bind(after_at)
        .bind(after_uid)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((MemberRow::from_row(r)?, r.try_get::<i64, _>("created_at")?)))
            .collect()
    }

    /// Removes a member, their API keys and invitation, and cancels the runs
    /// they act in or started; `None` when there was no such member. Refused
    /// ([`StoreError::Conflict`]) when the member no longer has `expected` role,
    /// or is the team's last owner.
    pub async fn delete_member(
        &self,
        team_uid: &str,
        uid: &str,
        expected: Role,
        now: i64,
        audit: Option<&AuditEventRow>,
    ) -> Result<Option<RemovedActor>> {
        self.delete_actor(team_uid, ActorType::User, uid, Some(expected), now, audit)
            .await
    }

    /// Changes a member's role from `from` to `to`, in one transaction with the
    /// owner rule (module docs) and `audit`; `false` when there is no such
    /// member.
    pub async fn set_member_role(
        &self,
        team_uid: &str,
        uid: &str,
        from: Role,
        to: Role,
        audit: Option<&AuditEventRow>,
    ) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let Some(current) = lock_and_read_role(&mut tx, team_uid, uid).await? else {
            return Ok(false);
        };
        check_owner_rule(&mut tx, team_uid, current, from, Some(to)).await?;
        sqlx::query("UPDATE members SET role = $1 WHERE team_uid = $2 AND uid = $3")
            .bind(to.as_str())
            .bind(team_uid)
            .bind(uid)
            .execute(&mut *tx)
            .await?;
        insert_audit_in(&mut tx, audit).await?;
        // Other replicas drop the member's cached principal (it holds the role).
        self.announce_in(
            &mut tx,
            &[Change::new(ChangeKind::MemberChanged, team_uid, uid)],
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Removes a member or an agent in one transaction: its API keys go, the runs
    /// it acts in or started are cancelled, `audit` is written, and what died
    /// is returned; `None` when the actor did not exist in the team.
    pub(super) async fn delete_actor(
        &self,
        team_uid: &str,
        actor: ActorType,
        uid: &str,
        expected_role: Option<Role>,
        now: i64,
        audit: Option<&AuditEventRow>,
    ) -> Result<Option<RemovedActor>> {
        let kind = actor.as_str();
        let (table, change) = match actor {
            ActorType::User => ("members", ChangeKind::MemberRemoved),
            ActorType::ServiceAccount => ("agents", ChangeKind::AgentRemoved),
        };
        let mut tx = self.begin_write().await?;
        if let Some(expected) = expected_role {
            let Some(current) = lock_and_read_role(&mut tx, team_uid, uid).await? else {
                return Ok(None);
            };
            check_owner_rule(&mut tx, team_uid, current, expected, None).await?;
            sqlx::query("DELETE FROM invitations WHERE team_uid = $1 AND member_uid = $2")
                .bind(team_uid)
                .bind(uid)
                .execute(&mut *tx)
                .await?;
        }
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
        if done.rows_affected() != 1 {
            return Ok(None);
        }
        insert_audit_in(&mut tx, audit).await?;
        let changes = std::iter::once(Change::new(change, team_uid, uid)).chain(
            removed
                .cancelled_runs
                .iter()
                .map(|r| Change::new(ChangeKind::RunEnded, team_uid, r)),
        );
        self.announce_in(&mut tx, &changes.collect::<Vec<_>>())
            .await?;
        tx.commit().await?;
        Ok(Some(removed))
    }
}

type Tx<'a> = sqlx::Transaction<'a, sqlx::Any>;

/// Locks the team's row (serializing every owner-changing transaction of the
/// team; on SQLite it takes the write lock) and reads the member's role.
async fn lock_and_read_role(tx: &mut Tx<'_>, team_uid: &str, uid: &str) -> Result<Option<Role>> {
    sqlx::query("UPDATE teams SET name = name WHERE uid = $1")
        .bind(team_uid)
        .execute(&mut **tx)
        .await?;
    let row = sqlx::query("SELECT role FROM members WHERE team_uid = $1 AND uid = $2")
        .bind(team_uid)
        .bind(uid)
        .fetch_optional(&mut **tx)
        .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let role: String = row.try_get(0)?;
    Role::parse(&role)
        .map(Some)
        .ok_or_else(|| StoreError::Corrupt(format!("role `{role}`")))
}

/// Refuses a change (to `to`, or a removal when `None`) of a member whose role
/// is `current` when it was judged on `expected`, or when it takes the team's
/// last owner away.
async fn check_owner_rule(
    tx: &mut Tx<'_>,
    team_uid: &str,
    current: Role,
    expected: Role,
    to: Option<Role>,
) -> Result<()> {
    if current != expected {
        return Err(StoreError::Conflict(ROLE_CHANGED.to_owned()));
    }
    if current != Role::Owner || to == Some(Role::Owner) {
        return Ok(());
    }
    let owners: i64 =
        sqlx::query("SELECT COUNT(*) FROM members WHERE team_uid = $1 AND role = 'owner'")
            .bind(team_uid)
            .fetch_one(&mut **tx)
            .await?
            .try_get(0)?;
    if owners <= 1 {
        return Err(StoreError::Conflict(LAST_OWNER.to_owned()));
    }
    Ok(())
}
