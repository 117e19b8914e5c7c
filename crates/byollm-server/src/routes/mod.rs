//! One module per resource, each with its `router()`, and [`ACTIONS`]: the
//! domain action (hence the permission rule, [`byollm_core::authz`]) behind every
//! authenticated route.

mod agents;
mod api_keys;
mod audit;
mod gateway;
mod health;
mod identity;
mod invitations;
mod me;
mod members;
mod oidc;
mod paging;
mod runs;
mod settings;
mod usage;

use axum::Router;
use axum::http::Method;

use byollm_api::routes as r;
use byollm_core::authz::Action;

use crate::app::AppState;

/// The domain action each authenticated route performs, so its rule is the one
/// of [`Action::rule`]. Not listed: [`r::PUBLIC_ROUTES`] (no credentials) and
/// the inference routes under `/v1/`, which any key or run token may call (the
/// gateway then applies the team's settings). The authorization-matrix test
/// fails when a route of the router is missing here.
pub const ACTIONS: &[(Method, &str, Action)] = &[
    (Method::GET, r::ME, Action::ReadMe),
    (Method::GET, r::ME_SETTINGS, Action::ReadMemberSettings),
    (Method::PUT, r::ME_SETTINGS, Action::WriteMemberSettings),
    (Method::GET, r::TEAM_LLM_SETTINGS, Action::ReadLlmSettings),
    (Method::PUT, r::TEAM_LLM_SETTINGS, Action::WriteLlmSettings),
    (
        Method::PATCH,
        r::TEAM_LLM_SETTINGS,
        Action::WriteLlmSettings,
    ),
    (Method::GET, r::TEAM_MEMBERS, Action::ListMembers),
    (Method::POST, r::TEAM_MEMBERS, Action::CreateMember),
    (Method::DELETE, r::TEAM_MEMBER, Action::DeleteMember),
    (Method::GET, r::API_KEYS, Action::ListApiKeys),
    (Method::POST, r::API_KEYS, Action::CreateApiKey),
    (Method::DELETE, r::API_KEY, Action::RevokeApiKey),
    (Method::GET, r::AGENT_IDENTITIES, Action::ListAgents),
    (Method::POST, r::AGENT_IDENTITIES, Action::CreateAgent),
    (Method::GET, r::AGENT_IDENTITY, Action::ReadAgent),
    (Method::PATCH, r::AGENT_IDENTITY, Action::PatchAgent),
    (Method::DELETE, r::AGENT_IDENTITY, Action::DeleteAgent),
    (Method::POST, r::RUNS, Action::CreateRun),
    (Method::GET, r::RUNS, Action::ListRuns),
    (Method::GET, r::RUN, Action::ReadRun),
    (Method::POST, r::RUN_FINISH, Action::FinishRun),
    (Method::POST, r::RUN_IDENTITY_TOKEN, Action::MintForRun),
    (Method::POST, r::IDENTITY_TOKEN, Action::MintForMember),
    (Method::POST, r::AGENT_IDENTITY_TOKEN, Action::MintForAgent),
    (Method::GET, r::USAGE, Action::ReadUsage),
    (Method::PATCH, r::TEAM_MEMBER, Action::PatchMember),
    (
        Method::POST,
        r::TEAM_MEMBER_INVITATION,
        Action::ReissueInvitation,
    ),
    (
        Method::DELETE,
        r::TEAM_MEMBER_INVITATION,
        Action::RevokeInvitation,
    ),
    (Method::GET, r::AUDIT, Action::ReadAudit),
];

/// The action behind `method` on a route template, if it is an authenticated
/// API route.
pub fn action_of(method: &Method, template: &str) -> Option<Action> {
    ACTIONS
        .iter()
        .find(|(m, t, _)| m == method && *t == template)
        .map(|(_, _, a)| *a)
}

/// Every route.
pub fn router() -> Router<AppState> {
    Router::new()
        .merge(oidc::router())
        .merge(health::router())
        .merge(me::router())
        .merge(settings::router())
        .merge(members::router())
        .merge(api_keys::router())
        .merge(agents::router())
        .merge(runs::router())
        .merge(identity::router())
        .merge(usage::router())
        .merge(invitations::router())
        .merge(audit::router())
        .merge(gateway::router())
}
