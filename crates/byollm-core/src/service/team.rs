//! The team and its members: who the caller is, the members' own settings, the
//! team's LLM settings, adding and removing members, and the offline bootstrap
//! of a new team.
//!
//! Invariants: a team keeps at least one owner, and only owners add or remove
//! owners ([`Action::AddOwner`], [`Action::RemoveOwner`]). AWS credentials
//! leave the broker when what chose them changes: a member's removal (and the
//! runs they started are cancelled), a member's opt-in, the team's Bedrock host
//! settings or what goes into the identity tokens it exchanges.

use byollm_api::SecretValue;
use byollm_api::types::{
    Actor, ActorType, LlmSettings, Me, Member, MemberCreate, MemberSettings, Role, TeamInfo,
};
use secrecy::ExposeSecret as _;
use serde_json::json;

use super::{Core, Result};
use crate::auth::Principal;
use crate::authz::{self, Action, Target};
use crate::bounded::Cause;
use crate::error::CoreError;
use crate::ids;
use crate::settings;
use crate::store::{ApiKeyRow, MemberRow, RemovedActor, Store};
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

    /// `GET /api/v1/me/settings`.
    pub async fn member_settings(&self, p: &Principal) -> Result<MemberSettings> {
        authz::check(p, Action::ReadMemberSettings, Target::Team)?;
        let m = self
            .store
            .get_member(&p.team_uid, &p.actor.uid)
            .await?
            .ok_or(CoreError::NotFound("member"))?;
        Ok(MemberSettings {
            aws_bedrock_opt_in: m.aws_bedrock_opt_in,
        })
    }

    /// `PUT /api/v1/me/settings`.
    pub async fn put_member_settings(
        &self,
        p: &Principal,
        s: MemberSettings,
    ) -> Result<MemberSettings> {
        authz::check(p, Action::WriteMemberSettings, Target::Team)?;
        self.store
            .set_member_opt_in(&p.team_uid, &p.actor.uid, s.aws_bedrock_opt_in)
            .await?;
        let changes = json!({"aws_bedrock_opt_in": s.aws_bedrock_opt_in});
        self.audit(
            p,
            "member_settings.update",
            format!("member:{}", p.actor.uid),
            changes,
        )
        .await?;
        self.bump();
        if !s.aws_bedrock_opt_in {
            self.broker
                .drop_actor(&p.team_uid, &p.actor, Cause::SettingsChanged);
        }
        Ok(s)
    }

    /// `GET /api/v1/team/llm-settings`.
    pub async fn llm_settings(&self, p: &Principal) -> Result<LlmSettings> {
        authz::check(p, Action::ReadLlmSettings, Target::Team)?;
        Ok(self.team(&p.team_uid).await?.settings)
    }

    /// `PUT /api/v1/team/llm-settings`.
    pub async fn put_llm_settings(&self, p: &Principal, s: LlmSettings) -> Result<LlmSettings> {
        authz::check(p, Action::WriteLlmSettings, Target::Team)?;
        settings::validate_llm_settings(&s)?;
        let old = self.team(&p.team_uid).await?.settings;
        self.store.put_settings(&p.team_uid, &s).await?;
        self.audit(
            p,
            "settings.update",
            "team".into(),
            settings_change(&old, &s),
        )
        .await?;
        self.bump();
        if chooses_credentials_differently(&old, &s) {
            self.broker.drop_team(&p.team_uid);
        }
        Ok(s)
    }

    /// `GET /api/v1/team/members`.
    pub async fn list_members(&self, p: &Principal) -> Result<Vec<Member>> {
        authz::check(p, Action::ListMembers, Target::Team)?;
        Ok(self
            .store
            .list_members(&p.team_uid)
            .await?
            .into_iter()
            .map(|m| Member {
                uid: m.uid,
                email: m.email,
                role: m.role,
            })
            .collect())
    }

    /// `POST /api/v1/team/members`. Only owners add owners.
    pub async fn create_member(&self, p: &Principal, req: MemberCreate) -> Result<Member> {
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
        self.store.insert_member(&row, self.clock.now()).await?;
        let changes = json!({"email": row.email, "role": row.role});
        self.audit(p, "member.create", format!("member:{}", row.uid), changes)
            .await?;
        Ok(Member {
            uid: row.uid,
            email: row.email,
            role: row.role,
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
            let owners = self
                .store
                .list_members(&p.team_uid)
                .await?
                .iter()
                .filter(|m| m.role == Role::Owner)
                .count();
            if owners <= 1 {
                return Err(CoreError::Conflict(
                    "a team keeps at least one owner".into(),
                ));
            }
        }
        let removed = self
            .store
            .delete_member(&p.team_uid, uid, self.clock.now())
            .await?
            .ok_or(CoreError::NotFound("member"))?;
        let actor = Actor {
            actor_type: ActorType::User,
            uid: uid.to_owned(),
        };
        self.forget_removed(&p.team_uid, &actor, &removed);
        let changes = json!({"email": target.email, "role": target.role});
        self.audit(p, "member.delete", format!("member:{uid}"), changes)
            .await?;
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

/// Whether the team's AWS credentials were chosen under settings that no
/// longer hold: the Bedrock host (on, role, region, enforcement) or what the
/// identity tokens exchanged for them say (subject, tags, source identity,
/// audiences).
fn chooses_credentials_differently(old: &LlmSettings, new: &LlmSettings) -> bool {
    old.hosts.aws_bedrock != new.hosts.aws_bedrock
        || old.subject_template != new.subject_template
        || old.session_tags != new.session_tags
        || old.source_identity != new.source_identity
        || old.token_audiences != new.token_audiences
}

/// The audit entry of a settings write: the changed fields, before and after.
/// Team settings hold no secret (role ARNs, regions, model lists).
fn settings_change(old: &LlmSettings, new: &LlmSettings) -> serde_json::Value {
    let as_json = |s: &LlmSettings| serde_json::to_value(s).unwrap_or_default();
    super::changed_fields(&as_json(old), &as_json(new))
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
    store.insert_member(&owner, now).await?;
    let key = ids::new_api_key();
    store
        .insert_api_key(&ApiKeyRow {
            id: ids::new_id("key"),
            team_uid: team_uid.clone(),
            owner_type: ActorType::User,
            owner_uid: owner.uid.clone(),
            name: "bootstrap owner key".to_owned(),
            key_hash: ids::hash_secret(key.expose_secret()),
            prefix: ids::visible_prefix(key.expose_secret()),
            created_at: now,
        })
        .await?;
    Ok(Bootstrapped {
        team_uid,
        owner_uid: owner.uid,
        api_key: SecretValue::from(key),
    })
}
