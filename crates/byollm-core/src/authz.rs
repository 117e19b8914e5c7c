//! Who may do what, as data (DESIGN §6): one table from every domain [`Action`]
//! to the [`Rule`] that decides it, read by the domain operations (through
//! [`check`]) and by the server's authorization-matrix test, so a route cannot
//! exist without a rule and a rule cannot drift from what the API answers.
//!
//! Invariants:
//! - the rules never look at teams: every object is looked up within the
//!   caller's team before an object rule runs, so another team's object is a
//!   `NotFound`, never a `Forbidden`;
//! - a rule given a [`Target`] it does not understand refuses (fails closed);
//! - the refusal messages are part of the API (clients and tests compare them):
//!   change them only with the API.

use byollm_api::types::{Actor, ActorType, Role};

use crate::auth::{CredentialKind, Principal};
use crate::error::CoreError;

/// Who may do an action. Object rules (the ones naming an object) judge the
/// [`Target`] the domain passes once it has looked the object up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// Any authenticated key or run token.
    AnyCredential,
    /// A member's API key, any role.
    Members,
    /// A member's API key with the admin or owner role.
    Admins,
    /// A member's API key with the owner role.
    Owners,
    /// Any API key (member's or agent's); never a run token.
    ApiKeys,
    /// A member's key for a key of their own; an admin's for a named agent's
    /// ([`Target::NewApiKey`], see [`may_create_key`]).
    SelfOrAdminForAgents,
    /// The key's owner, through that owner's own API key, or an admin
    /// ([`Target::ApiKey`], see [`key_visible_to`]).
    KeyOwnerOrAdmin,
    /// Members, or the named agent itself through its key or its runs' tokens
    /// ([`Target::Agent`], see [`agent_readable_by`]).
    MembersOrTheAgent,
    /// Member keys for themselves or any agent, agent keys for their own agent;
    /// never run tokens ([`Target::NewRun`], see [`may_start_run`]).
    MembersOrAgentForItself,
    /// The run's own token, the key that created it, its agent's key, or an
    /// admin ([`Target::Run`], see [`run_visible_to`]).
    RunOrCreatorOrAdmin,
    /// Only the run's own workload token ([`Target::Run`]).
    OwnRunTokenOnly,
    /// A member about themselves, or an admin about anyone ([`Target::Member`]).
    SelfOrAdmin,
}

/// The refusal an action gives instead of its rule's default one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    /// The 403's message.
    pub message: &'static str,
    /// What the caller can do about it.
    pub hint: Option<&'static str>,
}

/// The object an action is about, as far as the rules need it.
#[derive(Debug, Clone, Copy)]
pub enum Target<'a> {
    /// No object: the caller's team or the caller itself.
    Team,
    /// A member of the team, by uid.
    Member(&'a str),
    /// An API key about to be created: the caller's own, or the named agent's.
    NewApiKey {
        /// The agent the key is for, if any.
        agent_uid: Option<&'a str>,
    },
    /// An existing API key.
    ApiKey {
        /// Whose key it is.
        owner: &'a Actor,
    },
    /// A named agent, by uid.
    Agent(&'a str),
    /// A run about to be started: for the caller, or for the named agent.
    NewRun {
        /// The agent the run is for, if any.
        agent_uid: Option<&'a str>,
    },
    /// An existing run.
    Run {
        /// Its id.
        id: &'a str,
        /// Who it acts as.
        actor: &'a Actor,
        /// Whose key started it.
        triggered_by: &'a Actor,
    },
}

macro_rules! actions {
    (@refusal) => { None };
    (@refusal $message:literal) => { Some(Refusal { message: $message, hint: None }) };
    (@refusal $message:literal, $hint:literal) => {
        Some(Refusal { message: $message, hint: Some($hint) })
    };
    ($(
        $(#[$doc:meta])*
        $name:ident => $rule:ident $(, $message:literal $(, hint $hint:literal)?)?;
    )*) => {
        /// Every operation of the domain that someone may or may not do.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Action {
            $($(#[$doc])* $name,)*
        }

        impl Action {
            /// Every action, in table order.
            pub const ALL: &'static [Action] = &[$(Action::$name,)*];

            /// The rule that decides this action.
            pub const fn rule(self) -> Rule {
                match self {
                    $(Action::$name => Rule::$rule,)*
                }
            }

            /// The refusal this action gives, when not its rule's default.
            pub const fn refusal(self) -> Option<Refusal> {
                match self {
                    $(Action::$name => actions!(@refusal $($message $(, $hint)?)?),)*
                }
            }
        }
    };
}

actions! {
    /// `GET /api/v1/me`.
    ReadMe => AnyCredential;
    /// `GET /api/v1/me/settings`.
    ReadMemberSettings => Members;
    /// `PUT /api/v1/me/settings`.
    WriteMemberSettings => Members;
    /// `GET /api/v1/team/llm-settings`.
    ReadLlmSettings => Members;
    /// `PUT /api/v1/team/llm-settings`.
    WriteLlmSettings => Admins;
    /// `GET /api/v1/team/members`.
    ListMembers => Admins;
    /// `POST /api/v1/team/members`.
    CreateMember => Admins;
    /// Adding a member with the owner role (on top of [`Action::CreateMember`]).
    AddOwner => Owners, "only an owner can add an owner";
    /// `DELETE /api/v1/team/members/{uid}`.
    DeleteMember => Admins;
    /// Removing a member with the owner role (on top of [`Action::DeleteMember`]).
    RemoveOwner => Owners, "only an owner can remove an owner";
    /// `POST /api/v1/api-keys`.
    CreateApiKey => SelfOrAdminForAgents;
    /// `GET /api/v1/api-keys` (which keys it lists is [`Action::ReadApiKey`]).
    ListApiKeys => ApiKeys;
    /// Seeing one key in the list.
    ReadApiKey => KeyOwnerOrAdmin;
    /// `DELETE /api/v1/api-keys/{id}`.
    RevokeApiKey => KeyOwnerOrAdmin, "you may revoke only your own keys";
    /// `GET /api/v1/agent/identities`.
    ListAgents => Members, "reading agents needs a member's API key";
    /// `GET /api/v1/agent/identities/{uid}`.
    ReadAgent => MembersOrTheAgent;
    /// `POST /api/v1/agent/identities`.
    CreateAgent => Admins;
    /// `PATCH /api/v1/agent/identities/{uid}`.
    PatchAgent => Admins;
    /// `DELETE /api/v1/agent/identities/{uid}`.
    DeleteAgent => Admins;
    /// `POST /api/v1/runs`.
    CreateRun => MembersOrAgentForItself;
    /// `GET /api/v1/runs` (which runs it lists is [`Action::ListTeamRuns`]).
    ListRuns => Members, "listing runs needs a member's API key";
    /// Listing every run of the team (otherwise a member lists the runs they
    /// act as or started).
    ListTeamRuns => Admins;
    /// `GET /api/v1/runs/{id}`.
    ReadRun => RunOrCreatorOrAdmin;
    /// `POST /api/v1/runs/{id}/finish`.
    FinishRun => RunOrCreatorOrAdmin;
    /// `POST /api/v1/identity-token`.
    MintForMember => Members, "only a member's API key mints interactive identity tokens",
        hint "runs mint with POST /api/v1/runs/{id}/identity-token";
    /// `POST /api/v1/runs/{id}/identity-token`.
    MintForRun => OwnRunTokenOnly;
    /// `POST /api/v1/agent/identities/{uid}/identity-token`.
    MintForAgent => Admins, "only an admin's API key mints an agent's identity token";
    /// `GET /api/v1/usage`.
    ReadUsage => Members;
    /// Usage filtered to one member.
    ReadMemberUsage => SelfOrAdmin, "members see only their own usage", hint "omit member_uid";
    /// Usage of the whole team (otherwise a member sees only their own).
    ReadTeamUsage => Admins;
    /// `PATCH /api/v1/team/members/{uid}` (a member's role).
    PatchMember => Admins;
    /// Changing an owner's role (on top of [`Action::PatchMember`]).
    DemoteOwner => Owners, "only an owner can change an owner's role";
    /// `POST /api/v1/team/members/{uid}/invitation` (re-issue: a new code).
    ReissueInvitation => Admins;
    /// `DELETE /api/v1/team/members/{uid}/invitation`.
    RevokeInvitation => Admins;
    /// Re-issuing or revoking an owner's invitation (on top of the two above):
    /// whoever redeems it acts as the owner.
    InviteOwner => Owners, "only an owner can issue or revoke an owner's invitation";
    /// Revoking an owner's key (on top of [`Action::RevokeApiKey`]).
    RevokeOwnerKey => Owners, "only an owner can revoke an owner's key";
    /// `GET /api/v1/audit`.
    ReadAudit => Admins, "only admins read the audit trail";
}

/// Allows `action` on `target`, or the 403 the API answers.
pub fn check(p: &Principal, action: Action, target: Target<'_>) -> Result<(), CoreError> {
    judge(p, action.rule(), &target).map_err(|default| match action.refusal() {
        Some(r) => CoreError::forbidden(r.message, r.hint),
        None => default,
    })
}

/// Whether `p` may do `action` on `target`.
pub fn allows(p: &Principal, action: Action, target: Target<'_>) -> bool {
    judge(p, action.rule(), &target).is_ok()
}

fn judge(p: &Principal, rule: Rule, target: &Target<'_>) -> Result<(), CoreError> {
    let ok = match (rule, target) {
        (Rule::AnyCredential, _) => true,
        (Rule::Members, _) => p.is_member(),
        (Rule::Admins, _) => p.is_admin(),
        (Rule::Owners, _) => p.is_member() && p.role == Some(Role::Owner),
        (Rule::ApiKeys, _) => p.kind != CredentialKind::RunToken,
        (Rule::SelfOrAdminForAgents, Target::NewApiKey { agent_uid }) => {
            return may_create_key(p, *agent_uid);
        }
        (Rule::KeyOwnerOrAdmin, Target::ApiKey { owner }) => key_visible_to(p, owner),
        (Rule::MembersOrTheAgent, Target::Agent(uid)) => agent_readable_by(p, uid),
        (Rule::MembersOrAgentForItself, Target::NewRun { agent_uid }) => {
            return may_start_run(p, *agent_uid);
        }
        (
            Rule::RunOrCreatorOrAdmin,
            Target::Run {
                id,
                actor,
                triggered_by,
            },
        ) => run_visible_to(p, id, actor, triggered_by),
        (Rule::OwnRunTokenOnly, Target::Run { id, .. }) => is_own_run(p, id),
        (Rule::SelfOrAdmin, Target::Member(uid)) => {
            p.is_admin() || (p.is_member() && p.actor.uid == *uid)
        }
        // An object rule without its object: refuse rather than guess.
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(default_refusal(p, rule))
    }
}

/// The message a rule refuses with unless the action names its own.
fn default_refusal(p: &Principal, rule: Rule) -> CoreError {
    match rule {
        Rule::Admins => admins_only(),
        Rule::Members | Rule::AnyCredential => members_only(p),
        Rule::Owners => CoreError::forbidden("this action needs a team owner's API key", None),
        Rule::ApiKeys => CoreError::forbidden("a run token has no API keys", None),
        Rule::SelfOrAdminForAgents => members_only(p),
        Rule::KeyOwnerOrAdmin => {
            CoreError::forbidden("you may see or revoke only your own keys", None)
        }
        Rule::MembersOrTheAgent => {
            CoreError::forbidden("reading agents needs a member's API key", None)
        }
        Rule::MembersOrAgentForItself => {
            CoreError::forbidden("a run token cannot start runs", None)
        }
        Rule::RunOrCreatorOrAdmin => CoreError::forbidden(
            "only the run itself, its creator and team admins may see or finish it",
            None,
        ),
        Rule::OwnRunTokenOnly => CoreError::forbidden(
            "only this run's workload token may mint its identity tokens",
            None,
        ),
        Rule::SelfOrAdmin => CoreError::forbidden("members may act only for themselves", None),
    }
}

fn admins_only() -> CoreError {
    CoreError::forbidden(
        "this action needs a team admin's API key",
        Some("ask a team owner or admin"),
    )
}

fn members_only(p: &Principal) -> CoreError {
    CoreError::forbidden(
        format!(
            "a {} cannot do this; use a member's API key",
            p.kind.as_str()
        ),
        None,
    )
}

/// A member creates keys for themselves; only an admin creates a named agent's.
pub fn may_create_key(p: &Principal, agent_uid: Option<&str>) -> Result<(), CoreError> {
    match agent_uid {
        Some(_) if !p.is_admin() => Err(admins_only()),
        None if !p.is_member() => Err(members_only(p)),
        _ => Ok(()),
    }
}

/// A key is visible to its owner acting through their own API key (a run token
/// acting as the same actor is not the owner) and to admins.
pub fn key_visible_to(p: &Principal, owner: &Actor) -> bool {
    (owner.actor_type == p.actor.actor_type
        && owner.uid == p.actor.uid
        && p.kind != CredentialKind::RunToken)
        || p.is_admin()
}

/// Members read every agent; an agent reads itself, through its key or through
/// its runs' tokens.
pub fn agent_readable_by(p: &Principal, agent_uid: &str) -> bool {
    p.is_member() || (p.actor.actor_type == ActorType::ServiceAccount && p.actor.uid == agent_uid)
}

/// Members start runs for themselves or any agent of the team; an agent key only
/// for its own agent; a run token never.
pub fn may_start_run(p: &Principal, agent_uid: Option<&str>) -> Result<(), CoreError> {
    match (p.kind, agent_uid) {
        (CredentialKind::RunToken, _) => {
            Err(CoreError::forbidden("a run token cannot start runs", None))
        }
        (CredentialKind::AgentKey, Some(uid)) if uid != p.actor.uid => Err(CoreError::forbidden(
            "an agent key can start runs only for its own agent",
            None,
        )),
        _ => Ok(()),
    }
}

/// A run is visible to its own workload token, to the key that created it (not
/// to a run token of the same actor), to its agent's key, and to admins.
pub fn run_visible_to(p: &Principal, run_id: &str, actor: &Actor, triggered_by: &Actor) -> bool {
    let creator = p.kind != CredentialKind::RunToken && *triggered_by == p.actor;
    let its_agent = p.kind == CredentialKind::AgentKey && *actor == p.actor;
    is_own_run(p, run_id) || creator || its_agent || p.is_admin()
}

/// The caller is this run's own workload token.
pub fn is_own_run(p: &Principal, run_id: &str) -> bool {
    p.kind == CredentialKind::RunToken && p.run_id.as_deref() == Some(run_id)
}

#[cfg(test)]
#[path = "authz_tests.rs"]
mod tests;
