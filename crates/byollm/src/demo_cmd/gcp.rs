//! The demo's Google Cloud step: a second team whose Claude runs on the
//! emulated Vertex AI through its workload identity pool
//! ([`byollm_stack::gcp`]), beside the AWS team. It prints the provider's
//! mapping and condition and the grants (what `byollm gcp setup-script`
//! writes), the member's decoded token (`aud` is the provider), a streamed
//! reply with its `x-byollm-route`, and the count of Google STS exchanges
//! (one for two requests: the broker reuses the access token).

use anyhow::Context as _;
use byollm_api::types::IdentityTokenRequest;
use byollm_cloudsim::gcp::STS_OP;
use byollm_stack::Stack;
use byollm_stack::gcp::{GCP_LOCATION, GCP_PROJECT, GCP_PROJECT_NUMBER};
use serde_json::Value;

use super::{say, send_message, stream_message};

/// What the Vertex team's member asks (echoed back by the emulated model).
const PROMPT: &str = "Hello from a byollm member on Google Cloud: this reply streamed from Claude \
                      on Vertex AI in the team's own project, with an access token from its \
                      workload identity pool.";

/// Bootstraps the Vertex team and shows a call through it.
pub(super) async fn vertex_team(stack: &Stack) -> anyhow::Result<()> {
    let team = stack
        .bootstrap_gcp_team("Globex Research", "owner@globex.example")
        .await?;
    let setup = &team.setup;
    say(&format!(
        "Google emulator (STS, IAM Credentials, Vertex AI): {} (project {GCP_PROJECT}, number {GCP_PROJECT_NUMBER})",
        stack.sim.endpoint_url()
    ));
    say(&format!(
        "team \"Globex Research\" bootstrapped: team {} (its API key stays hidden)",
        team.team_uid
    ));
    say(&format!("pool           {}", setup.pool_name()));
    say(&format!(
        "provider       {} trusts {}",
        setup.provider_id,
        setup.issuer.url()
    ));
    say(&format!("  mapping      {}", setup.mapping_flag()));
    say(&format!(
        "  condition    {}  (this team only: every team's tokens share the issuer)",
        setup.attribute_condition()
    ));
    for (role, member) in setup.project_grants() {
        say(&format!("  grant        {role} to {member}"));
    }
    say(&format!(
        "settings: Vertex AI on ({GCP_PROJECT}, {GCP_LOCATION}); Bedrock and the direct APIs off"
    ));
    let member = byollm_api::client::Client::new(&stack.base, Some(team.owner_key.clone()))?;
    let token = member
        .identity_token(&IdentityTokenRequest {
            audience: team.audience(),
            requested_duration_seconds: 300,
        })
        .await?;
    let (_, claims) = byollm_doctor::decode_jwt(token.token.expose())
        .context("the server minted a token that is not a JWT")?;
    let claim = |n: &str| {
        claims
            .get(n)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    say("the owner's identity token for Google (decoded; the token itself is not shown):");
    say(&format!("  sub = {}", claim("sub")));
    say(&format!("  aud = {}", claim("aud")));
    say(&format!("  team = {}", claim("team")));
    let reply = stream_message(&member, PROMPT).await?;
    say(&format!("x-byollm-route: {}", reply.route));
    let first = stack.sim.call_count(STS_OP);
    say(&format!("Google STS token exchanges: {first}"));
    let again = send_message(&member, "And once more, please.", false).await?;
    say(&format!(
        "a second request (HTTP {}, route {}): exchanges still {} (the broker reuses the access token)",
        again.status,
        again.route,
        stack.sim.call_count(STS_OP)
    ));
    if !reply.route.starts_with("gcp_vertex:") || again.status != 200 {
        anyhow::bail!("the Vertex team was not served by Vertex AI");
    }
    Ok(())
}
