//! The team and its members: who the caller is, the members' own settings, adding and removing members, and the offline bootstrap
//! of a new team.
//!
//! Invariants: a team keeps at least one owner (checked inside the store's
//! transaction, so concurrent demotions or removals cannot both pass it), and
//! only owners add, demote or remove owners ([`Action::AddOwner`],
//! [`Action::DemoteOwner`], [`Action::RemoveOwner`]). A role change evicts the
//! member's keys from the credential cache, so the new role holds at once on
//! this replica. AWS credentials
//! leave the broker when what chose them changes: a member's removal (and the
//! runs they started are cancelled) or a member's opt-in. (The team's LLM
//! settings live in `llm_settings`.)

use byollm_api::SecretValue;
use byollm_api::types::{
    Actor, ActorType, Me, Member, MemberCreate, MemberCreated, MemberList, MemberPatch, PageQuery,
    Role, TeamInfo,
};
use serde_json::json;

use super::api_keys::new_key_row;
use super::page::Page;
use super::{Core, Result};
use crate::auth::Principal;
use crate::authz::{self, Action, Target};
use crate::bounded::Cause;
use crate::error::CoreError;
use crate::ids;
use crate::store::{AuditEventRow, MemberAfter, MemberRow, RemovedActor, Store, StoreError};
use crate::validate;
use byollm_api::clock::Clock;

impl Core {
    /// `GET /api/v1/me`.
    pub async fn me(&self, p: &Principal) -> Result<Me> {
        authz::check(p, Action::ReadMe, Target::Team)?;
        let team = self.team(&p.team_uid).await?;
        Ok(Me {
            credential: p.kind.as_str().to_owned(),
            actor: p.actor.clone(),
            role: p.role,
            run_id: p.run_id.clone(),
            team: TeamInfo {
                uid: team.uid,
                name: team.name,
            },
        })
    }

    /// `GET /api/v1/team/members`: one page in `(created_at, uid)` order.
    pub async fn list_members(&self, p: &Principal, q: PageQuery) -> Result<MemberList> {
        authz::check(p, Action::ListMembers, Target::Team)?;
        let page = Page::parse(q.limit, q.cursor.as_deref())?;
        let after = page.cursor.as_ref().map(|c| MemberAfter {
            created_at: c.created_at,
            uid: c.id.clone(),
        });
        let mut rows = self
            .store
            .list_members_page(&p.team_uid, after.as_ref(), page.fetch())
            .await?;
        let next_cursor = page.finish(&mut rows, |(m, at)| (*at, m.uid.clone()));
        Ok(MemberList {
            members: rows.into_iter().map(|(m, _)| member(m)).collect(),
            next_cursor,
        })
    }

    /// `PATCH /api/v1/team/members/{uid}`: a new role. Only owners make or
    /// unmake owners; the last owner keeps the role.
    pub async fn patch_member(&self, p: &Principal, uid: &str, req: MemberPatch) -> Result<Member> {
        authz::check(p, Action::PatchMember, Target::Team)?;
        validate::uid("uid", uid)?;
        let target = self
            .store
            .get_member(&p.team_uid, uid)
            .await?
            .ok_or(CoreError::NotFound("member"))?;
        if target.role == Role::Owner && req.role != Role::Owner {
            authz::check(p, Action::DemoteOwner, Target::Member(uid))?;
        }
        if req.role == Role::Owner && target.role != Role::Owner {
            authz::check(p, Action::AddOwner, Target::Member(uid))?;
        }
        if target.role != req.role {
            let changes = json!({"role": {"before": target.role, "after": req.role}});
            let audit = self.audit_event(p, "member.role", format!("member:{uid}"), &changes);
            let changed = self
                .store
                .set_member_role(&p.team_uid, uid, target.role, req.role, Some(&audit))
                .await
                .map_err(owner_rule)?;
            if !changed {
                return Err(CoreError::NotFound("member"));
            }
            self.evict_member_keys(&p.team_uid, uid).await?;
        }
        Ok(Member {
            role: req.role,
            ..member(target)
        })
    }

    /// Drops a member's keys from the credential cache (they carry the role).
    async fn evict_member_keys(&self, team_uid: &str, uid: &str) -> Result<()> {
        let hashes: Vec<String> = self
            .store
            .list_api_keys(team_uid)
            .await?
            .into_iter()
            .filter(|k| k.owner_type == ActorType::User && k.owner_uid == uid)
            .map(|k| k.key_hash)
            .collect();
        self.auth.evict(&hashes);
        self.bump();
        Ok(())
    }

    /// `POST /api/v1/team/members`, with the member's one-time invitation. Only
    /// owners add owners.
    pub async fn create_member(&self, p: &Principal, req: MemberCreate) -> Result<MemberCreated> {
        authz::check(p, Action::CreateMember, Target::Team)?;
        validate::email("email", &req.email)?;
        if req.role == Role::Owner {
            authz::check(p, Action::AddOwner, Target::Team)?;
        }
        let row = MemberRow {
            uid: ids::new_uid(),
            team_uid: p.team_uid.clone(),
            email: req.email,
            role: req.role,
            aws_bedrock_opt_in: false,
        };
        let changes = json!({"email": row.email, "role": row.role});
        let audit = self.audit_event(p, "member.create", format!("member:{}", row.uid), &changes);
        self.store
            .insert_member(&row, self.clock.now(), Some(&audit))
            .await?;
        let invitation = self.issue_invitation(&p.team_uid, &row.uid).await?;
        Ok(MemberCreated {
            member: member(row),
            invitation,
        })
    }

    /// `DELETE /api/v1/team/members/{uid}`. Admins cannot remove owners; the last
    /// owner cannot be removed.
    pub async fn delete_member(&self, p: &Principal, uid: &str) -> Result<()> {
        authz::check(p, Action::DeleteMember, Target::Team)?;
        validate::uid("uid", uid)?;
        let target = self
            .store
            .get_member(&p.team_uid, uid)
            .await?
            .ok_or(CoreError::NotFound("member"))?;
        if target.role == Role::Owner {
            authz::check(p, Action::RemoveOwner, Target::Member(uid))?;
        }
        let changes = json!({"email": target.email, "role": target.role});
        let audit = self.audit_event(p, "member.delete", format!("member:{uid}"), &changes);
        let removed = self
            .store
            .delete_member(
                &p.team_uid,
                uid,
                target.role,
                self.clock.now(),
                Some(&audit),
            )
            .await
            .map_err(owner_rule)?
            .ok_or(CoreError::NotFound("member"))?;
        let actor = Actor {
            actor_type: ActorType::User,
            uid: uid.to_owned(),
        };
        self.forget_removed(&p.team_uid, &actor, &removed);
        Ok(())
    }

    /// What dies on this replica with a removed member or agent: its keys' and
    /// cancelled runs' tokens, its AWS credentials and its runs'.
    pub(super) fn forget_removed(&self, team_uid: &str, actor: &Actor, removed: &RemovedActor) {
        self.auth.evict(&removed.credential_hashes);
        self.broker.drop_actor(team_uid, actor, Cause::Removed);
        for run in &removed.cancelled_runs {
            self.broker.drop_run(team_uid, run);
        }
        self.bump();
    }
}

/// The wire view of a member.
fn member(m: MemberRow) -> Member {
    Member {
        uid: m.uid,
        email: m.email,
        role: m.role,
    }
}

/// The store's refusals of an owner-changing write, as the API answers them.
fn owner_rule(e: StoreError) -> CoreError {
    match e {
        StoreError::Conflict(m) => CoreError::Conflict(m),
        other => other.into(),
    }
}

/// What `byollm admin bootstrap` created.
#[derive(Debug)]
pub struct Bootstrapped {
    /// The new team.
    pub team_uid: String,
    /// Its owner.
    pub owner_uid: String,
    /// The owner's API key (shown once).
    pub api_key: SecretValue,
}

/// Creates a team, its owner and an owner API key directly on the store (offline;
/// run once per team).
pub async fn bootstrap_team(
    store: &Store,
    clock: &dyn Clock,
    team_name: &str,
    owner_email: &str,
) -> Result<Bootstrapped> {
    validate::name("team-name", team_name, 100)?;
    validate::email("owner-email", owner_email)?;
    let now = clock.now();
    let team_uid = ids::new_uid();
    store.insert_team(&team_uid, team_name, now).await?;
    let owner = MemberRow {
        uid: ids::new_uid(),
        team_uid: team_uid.clone(),
        email: owner_email.to_owned(),
        role: Role::Owner,
        aws_bedrock_opt_in: false,
    };
    store.insert_member(&owner, now, None).await?;
    let actor = Actor {
        actor_type: ActorType::User,
        uid: owner.uid.clone(),
    };
    let (row, api_key) = new_key_row(
        &team_uid,
        &actor,
        "bootstrap owner key".to_owned(),
        now,
        None,
    );
    store.insert_api_key(&row, None).await?;
    Ok(Bootstrapped {
        team_uid,
        owner_uid: owner.uid,
        api_key,
    })
}

/// What `byollm admin recover` issued.
#[derive(Debug)]
pub struct Recovered {
    /// The owner's uid.
    pub owner_uid: String,
    /// The new key's id.
    pub key_id: String,
    /// The new owner key (shown once).
    pub api_key: SecretValue,
}

/// Issues a new API key for the team's owner with this email, directly on the
/// store (offline: the operator's way back in when no owner has a key left),
/// records it in the team's audit trail and logs it at warn. The key does not expire; refused when the email is not
/// an owner's.
pub async fn recover_owner(
    store: &Store,
    clock: &dyn Clock,
    team_uid: &str,
    owner_email: &str,
) -> Result<Recovered> {
    validate::uid("team", team_uid)?;
    validate::email("owner-email", owner_email)?;
    store
        .get_team(team_uid)
        .await?
        .ok_or(CoreError::NotFound("team"))?;
    let owner = store
        .list_members(team_uid)
        .await?
        .into_iter()
        .find(|m| m.email.eq_ignore_ascii_case(owner_email))
        .ok_or(CoreError::NotFound("member"))?;
    if owner.role != Role::Owner {
        return Err(CoreError::refused(
            format!(
                "{owner_email} is a team {}, not an owner",
                owner.role.as_str()
            ),
            Some("recover an owner's access; owners then manage everyone else"),
        ));
    }
    let actor = Actor {
        actor_type: ActorType::User,
        uid: owner.uid.clone(),
    };
    let (row, api_key) = new_key_row(
        team_uid,
        &actor,
        "recovery owner key".to_owned(),
        clock.now(),
        None,
    );
    // The audit record of an operator's recovery: who got a key, never the key.
    // The operator acts on the store, with no credential of the team's.
    let audit = AuditEventRow {
        id: ids::new_id("aud"),
        team_uid: team_uid.to_owned(),
        at: clock.now(),
        actor_type: "operator".to_owned(),
        actor_uid: "byollm admin recover".to_owned(),
        credential: "store".to_owned(),
        action: "owner.recover".to_owned(),
        target: format!("member:{}", owner.uid),
        request_id: None,
        changes: json!({"api_key": {"id": row.id, "prefix": row.prefix}}).to_string(),
    };
    store.insert_api_key(&row, Some(&audit)).await?;
    tracing::warn!(
        team_uid,
        owner_uid = %owner.uid,
        key_id = %row.id,
        "owner access recovered: a new owner API key was issued by `byollm admin recover`"
    );
    Ok(Recovered {
        owner_uid: owner.uid,
        key_id: row.id,
        api_key,
    })
}
