use std::collections::HashSet;

use byollm_api::types::{Actor, ActorType, Role};

use super::*;
use crate::auth::{CredentialKind, Principal};

fn user(uid: &str) -> Actor {
    Actor {
        actor_type: ActorType::User,
        uid: uid.to_owned(),
    }
}

fn agent(uid: &str) -> Actor {
    Actor {
        actor_type: ActorType::ServiceAccount,
        uid: uid.to_owned(),
    }
}

fn principal(
    kind: CredentialKind,
    actor: Actor,
    role: Option<Role>,
    run: Option<&str>,
) -> Principal {
    Principal {
        team_uid: "team".to_owned(),
        kind,
        actor,
        role,
        run_id: run.map(str::to_owned),
        credential_hash: String::new(),
    }
}

fn owner() -> Principal {
    principal(
        CredentialKind::MemberKey,
        user("o"),
        Some(Role::Owner),
        None,
    )
}
fn admin() -> Principal {
    principal(
        CredentialKind::MemberKey,
        user("a"),
        Some(Role::Admin),
        None,
    )
}
fn member() -> Principal {
    principal(
        CredentialKind::MemberKey,
        user("m"),
        Some(Role::Member),
        None,
    )
}
fn agent_key() -> Principal {
    principal(CredentialKind::AgentKey, agent("g"), None, None)
}
/// The member's run, acting as the member.
fn member_run() -> Principal {
    principal(CredentialKind::RunToken, user("m"), None, Some("r1"))
}
/// The agent's run, acting as the agent.
fn agent_run() -> Principal {
    principal(CredentialKind::RunToken, agent("g"), None, Some("r2"))
}

fn forbidden(e: CoreError) -> (String, Option<String>) {
    match e {
        CoreError::Forbidden { message, hint } => (message, hint),
        other => panic!("expected a 403, got {other:?}"),
    }
}

#[test]
fn every_action_is_listed_once() {
    let unique: HashSet<_> = Action::ALL.iter().collect();
    assert_eq!(unique.len(), Action::ALL.len());
    assert!(Action::ALL.contains(&Action::ReadUsage));
}

#[test]
fn role_rules_by_credential() {
    let callers = [
        owner(),
        admin(),
        member(),
        agent_key(),
        member_run(),
        agent_run(),
    ];
    let cases: [(Action, [bool; 6]); 7] = [
        (Action::ReadMe, [true; 6]),
        (
            Action::ReadLlmSettings,
            [true, true, true, false, false, false],
        ),
        (
            Action::WriteLlmSettings,
            [true, true, false, false, false, false],
        ),
        (Action::AddOwner, [true, false, false, false, false, false]),
        (Action::ListApiKeys, [true, true, true, true, false, false]),
        // Members list runs (their own); admins every run of the team.
        (Action::ListRuns, [true, true, true, false, false, false]),
        (
            Action::ListTeamRuns,
            [true, true, false, false, false, false],
        ),
    ];
    for (action, expected) in cases {
        for (p, want) in callers.iter().zip(expected) {
            assert_eq!(
                allows(p, action, Target::Team),
                want,
                "{action:?} by {:?}",
                p.kind
            );
        }
    }
}

#[test]
fn refusals_keep_the_api_wording() {
    let (m, h) = forbidden(check(&member(), Action::WriteLlmSettings, Target::Team).unwrap_err());
    assert_eq!(m, "this action needs a team admin's API key");
    assert_eq!(h.as_deref(), Some("ask a team owner or admin"));
    let (m, _) = forbidden(check(&agent_key(), Action::ReadUsage, Target::Team).unwrap_err());
    assert_eq!(m, "a agent_key cannot do this; use a member's API key");
    let (m, h) = forbidden(check(&agent_key(), Action::MintForMember, Target::Team).unwrap_err());
    assert_eq!(
        m,
        "only a member's API key mints interactive identity tokens"
    );
    assert_eq!(
        h.as_deref(),
        Some("runs mint with POST /api/v1/runs/{id}/identity-token")
    );
    let (m, _) = forbidden(check(&admin(), Action::RemoveOwner, Target::Member("o")).unwrap_err());
    assert_eq!(m, "only an owner can remove an owner");
    let (m, _) = forbidden(check(&member_run(), Action::ListApiKeys, Target::Team).unwrap_err());
    assert_eq!(m, "a run token has no API keys");
    let (m, h) =
        forbidden(check(&member(), Action::ReadMemberUsage, Target::Member("other")).unwrap_err());
    assert_eq!(m, "members see only their own usage");
    assert_eq!(h.as_deref(), Some("omit member_uid"));
}

#[test]
fn keys_are_their_owners_and_admins() {
    let mine = Target::ApiKey { owner: &user("m") };
    let agents = Target::ApiKey { owner: &agent("g") };
    assert!(allows(&member(), Action::RevokeApiKey, mine));
    assert!(allows(&admin(), Action::RevokeApiKey, agents));
    assert!(allows(&agent_key(), Action::RevokeApiKey, agents));
    // A run token acts as its actor but does not own the actor's keys.
    assert!(!allows(&member_run(), Action::RevokeApiKey, mine));
    assert!(!allows(&agent_run(), Action::RevokeApiKey, agents));
    assert!(!allows(&member(), Action::RevokeApiKey, agents));
    let (m, _) = forbidden(check(&member(), Action::RevokeApiKey, agents).unwrap_err());
    assert_eq!(m, "you may revoke only your own keys");
}

#[test]
fn new_keys_and_runs() {
    let own = Target::NewApiKey { agent_uid: None };
    let for_agent = Target::NewApiKey {
        agent_uid: Some("g"),
    };
    assert!(allows(&member(), Action::CreateApiKey, own));
    assert!(!allows(&agent_key(), Action::CreateApiKey, own));
    assert!(!allows(&member(), Action::CreateApiKey, for_agent));
    assert!(allows(&admin(), Action::CreateApiKey, for_agent));
    let (m, _) = forbidden(check(&member(), Action::CreateApiKey, for_agent).unwrap_err());
    assert_eq!(m, "this action needs a team admin's API key");

    let run_for = |agent_uid| Target::NewRun { agent_uid };
    assert!(allows(&member(), Action::CreateRun, run_for(Some("g"))));
    assert!(allows(&agent_key(), Action::CreateRun, run_for(Some("g"))));
    assert!(allows(&agent_key(), Action::CreateRun, run_for(None)));
    let (m, _) = forbidden(check(&agent_key(), Action::CreateRun, run_for(Some("h"))).unwrap_err());
    assert_eq!(m, "an agent key can start runs only for its own agent");
    let (m, _) = forbidden(check(&agent_run(), Action::CreateRun, run_for(None)).unwrap_err());
    assert_eq!(m, "a run token cannot start runs");
}

#[test]
fn agents_are_read_by_members_and_themselves() {
    assert!(allows(&member(), Action::ReadAgent, Target::Agent("g")));
    assert!(allows(&agent_key(), Action::ReadAgent, Target::Agent("g")));
    assert!(allows(&agent_run(), Action::ReadAgent, Target::Agent("g")));
    assert!(!allows(&agent_key(), Action::ReadAgent, Target::Agent("h")));
    assert!(!allows(
        &member_run(),
        Action::ReadAgent,
        Target::Agent("g")
    ));
    assert!(!allows(&agent_key(), Action::ListAgents, Target::Team));
}

#[test]
fn runs_are_their_own_their_creators_and_admins() {
    let (m, g) = (user("m"), agent("g"));
    let member_started = Target::Run {
        id: "r1",
        actor: &m,
        triggered_by: &m,
    };
    let agent_started = Target::Run {
        id: "r2",
        actor: &g,
        triggered_by: &g,
    };
    for action in [Action::ReadRun, Action::FinishRun] {
        assert!(allows(&member(), action, member_started));
        assert!(allows(&member_run(), action, member_started));
        assert!(allows(&admin(), action, member_started));
        assert!(!allows(&agent_key(), action, member_started));
        assert!(!allows(&agent_run(), action, member_started));
        assert!(allows(&agent_key(), action, agent_started));
        assert!(!allows(&member(), action, agent_started));
    }
    assert!(allows(&member_run(), Action::MintForRun, member_started));
    assert!(!allows(&member(), Action::MintForRun, member_started));
    assert!(!allows(&owner(), Action::MintForRun, member_started));
    assert!(!allows(&agent_run(), Action::MintForRun, member_started));
}

#[test]
fn object_rules_without_their_object_refuse() {
    for action in Action::ALL {
        let needs_object = !matches!(
            action.rule(),
            Rule::AnyCredential | Rule::Members | Rule::Admins | Rule::Owners | Rule::ApiKeys
        );
        if needs_object {
            assert!(
                !allows(&owner(), *action, Target::Team),
                "{action:?} without its object"
            );
        }
    }
}

#[test]
fn owners_are_protected_from_admins() {
    for (action, message) in [
        (
            Action::DemoteOwner,
            "only an owner can change an owner's role",
        ),
        (Action::RemoveOwner, "only an owner can remove an owner"),
        (
            Action::InviteOwner,
            "only an owner can issue or revoke an owner's invitation",
        ),
        (
            Action::RevokeOwnerKey,
            "only an owner can revoke an owner's key",
        ),
    ] {
        assert!(allows(&owner(), action, Target::Member("o")), "{action:?}");
        let (m, _) = forbidden(check(&admin(), action, Target::Member("o")).unwrap_err());
        assert_eq!(m, message);
        assert!(
            !allows(&member(), action, Target::Member("o")),
            "{action:?}"
        );
    }
    for action in [
        Action::PatchMember,
        Action::ReissueInvitation,
        Action::RevokeInvitation,
    ] {
        assert!(allows(&owner(), action, Target::Member("m")), "{action:?}");
        assert!(allows(&admin(), action, Target::Member("m")), "{action:?}");
        assert!(
            !allows(&member(), action, Target::Member("m")),
            "{action:?}"
        );
        assert!(
            !allows(&agent_key(), action, Target::Member("m")),
            "{action:?}"
        );
    }
}
