//! Route paths (DESIGN §3, §6), used by the router, the discovery document and
//! the clients alike.

/// OIDC discovery document.
pub const DISCOVERY: &str = "/.well-known/openid-configuration";
/// The issuer's JSON Web Key Set.
pub const JWKS: &str = "/.well-known/jwks.json";
/// Liveness.
pub const HEALTHZ: &str = "/healthz";
/// Readiness (the store answers and a signing key is loaded).
pub const READYZ: &str = "/readyz";

/// The caller's principal and team.
pub const ME: &str = "/api/v1/me";
/// The calling member's own settings.
pub const ME_SETTINGS: &str = "/api/v1/me/settings";
/// The team's LLM settings.
pub const TEAM_LLM_SETTINGS: &str = "/api/v1/team/llm-settings";
/// Team members.
pub const TEAM_MEMBERS: &str = "/api/v1/team/members";
/// One team member.
pub const TEAM_MEMBER: &str = "/api/v1/team/members/{uid}";
/// API keys.
pub const API_KEYS: &str = "/api/v1/api-keys";
/// One API key.
pub const API_KEY: &str = "/api/v1/api-keys/{id}";
/// Named agents.
pub const AGENT_IDENTITIES: &str = "/api/v1/agent/identities";
/// One named agent.
pub const AGENT_IDENTITY: &str = "/api/v1/agent/identities/{uid}";
/// Runs.
pub const RUNS: &str = "/api/v1/runs";
/// One run.
pub const RUN: &str = "/api/v1/runs/{id}";
/// Finish a run.
pub const RUN_FINISH: &str = "/api/v1/runs/{id}/finish";
/// Mint an identity token for a run (its workload token only).
pub const RUN_IDENTITY_TOKEN: &str = "/api/v1/runs/{id}/identity-token";
/// An admin mints a named agent's identity token, to check its cloud setup (the
/// doctor): no run is started, so nothing is billed; the audit row says who asked.
pub const AGENT_IDENTITY_TOKEN: &str = "/api/v1/agent/identities/{uid}/identity-token";
/// Mint an identity token for the calling member.
pub const IDENTITY_TOKEN: &str = "/api/v1/identity-token";
/// Usage and credits.
pub const USAGE: &str = "/api/v1/usage";
/// A member's invitation: `POST` re-issues it (a new code; the old one dies),
/// `DELETE` revokes it.
pub const TEAM_MEMBER_INVITATION: &str = "/api/v1/team/members/{uid}/invitation";
/// Redeem an invitation code for the member's first API key (public).
pub const INVITATIONS_REDEEM: &str = "/api/v1/invitations/redeem";
/// The team's admin audit trail (admins).
pub const AUDIT: &str = "/api/v1/audit";

/// The gateway's Anthropic Messages API (`POST`; streams when the body says
/// `"stream": true`).
pub const MESSAGES: &str = "/v1/messages";
/// The gateway's OpenAI Chat Completions API (`POST`).
pub const CHAT_COMPLETIONS: &str = "/v1/chat/completions";
/// The models the caller may use, with the host each would take (`GET`).
pub const MODELS: &str = "/v1/models";
/// Claude in Vertex AI's shape (`POST`), for Anthropic's `AnthropicVertex`
/// client with `base_url` `{gateway}/vertex/v1` and the byollm key as its
/// access token: `{model_verb}` is `MODEL:rawPredict` or
/// `MODEL:streamRawPredict`; routed like [`MESSAGES`] with the model from the
/// URL. The project and location in the path are the client's; the team's
/// settings decide where the request goes.
pub const VERTEX_RAW_PREDICT: &str =
    "/vertex/v1/projects/{project}/locations/{location}/publishers/anthropic/models/{model_verb}";

/// Routes that need no credentials. Everything else authenticates by default.
pub const PUBLIC_ROUTES: &[&str] = &[DISCOVERY, JWKS, HEALTHZ, READYZ, INVITATIONS_REDEEM];

/// Fills a `{param}` placeholder of a route template.
pub fn fill(template: &str, value: &str) -> String {
    match (template.find('{'), template.find('}')) {
        (Some(start), Some(end)) if start < end => {
            format!("{}{}{}", &template[..start], value, &template[end + 1..])
        }
        _ => template.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn fill_replaces_the_placeholder() {
        assert_eq!(
            super::fill(super::RUN_FINISH, "r1"),
            "/api/v1/runs/r1/finish"
        );
        assert_eq!(super::fill(super::ME, "x"), super::ME);
    }
}
