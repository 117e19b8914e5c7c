//! The demo's Azure step: a third team whose Claude runs on the emulated
//! Azure AI Foundry through its federated identity credential
//! ([`byollm_stack::azure`]), beside the AWS and Google Cloud teams. It
//! prints the managed identity, the FIC (one exact subject: the team's, at
//! granularity `team`) and the role assignment, the member's decoded token
//! (RS256, as Entra requires; `sub` is the team, the member stays in `actor`),
//! a streamed reply with its `x-byollm-route`, and the count of Entra token
//! exchanges (one for two requests: the broker reuses the access token).

use anyhow::Context as _;
use byollm_api::types::IdentityTokenRequest;
use byollm_cloudsim::azure::{AZURE_AI_USER, TOKEN_OP};
use byollm_stack::Stack;
use byollm_stack::azure::{AZURE_CLIENT_ID, AZURE_IDENTITY, AZURE_RESOURCE, AZURE_TENANT};
use serde_json::Value;

use super::{say, send_message, stream_message};

/// What the Azure team's member asks (echoed back by the emulated model).
const PROMPT: &str = "Hello from a byollm member on Azure: this reply streamed from Claude in \
                      Azure AI Foundry in the team's own subscription, with an Entra access \
                      token its federated identity credential admitted.";

/// Bootstraps the Azure team and shows a call through it.
pub(super) async fn foundry_team(stack: &Stack) -> anyhow::Result<()> {
    let team = stack
        .bootstrap_azure_team("Initech Labs", "owner@initech.example")
        .await?;
    say(&format!(
        "Azure emulator (Entra ID, AI Foundry): {} (tenant {AZURE_TENANT})",
        stack.sim.endpoint_url()
    ));
    say(&format!(
        "team \"Initech Labs\" bootstrapped: team {} (its API key stays hidden)",
        team.team_uid
    ));
    say(&format!(
        "identity       {AZURE_IDENTITY} (user-assigned managed identity, client id {AZURE_CLIENT_ID})"
    ));
    say(&format!(
        "  FIC          {}: issuer {}, subject {}, audience {}",
        team.fic.name,
        team.fic.issuer,
        team.fic.subject,
        team.fic.audiences.join(",")
    ));
    say(
        "               (granularity team: one exact subject admits every member and agent of the team)",
    );
    say(&format!(
        "  role         {AZURE_AI_USER} on {AZURE_RESOURCE}"
    ));
    say(&format!(
        "settings: Azure AI Foundry on ({AZURE_RESOURCE}.services.ai.azure.com, subject granularity team); Bedrock and the direct APIs off"
    ));
    let member = byollm_api::client::Client::new(&stack.base, Some(team.owner_key.clone()))?;
    let token = member
        .identity_token(&IdentityTokenRequest {
            audience: team.audience().to_owned(),
            requested_duration_seconds: 300,
        })
        .await?;
    let (header, claims) = byollm_doctor::decode_jwt(token.token.expose())
        .context("the server minted a token that is not a JWT")?;
    let text = |v: Option<&Value>| match v {
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => String::new(),
    };
    say("the owner's identity token for Entra (decoded; the token itself is not shown):");
    say(&format!("  alg = {}", text(header.get("alg"))));
    say(&format!("  sub = {}", text(claims.get("sub"))));
    say(&format!("  aud = {}", text(claims.get("aud"))));
    say(&format!("  actor = {}", text(claims.get("actor"))));
    let reply = stream_message(&member, PROMPT).await?;
    say(&format!("x-byollm-route: {}", reply.route));
    let first = stack.sim.call_count(TOKEN_OP);
    say(&format!("Entra token exchanges: {first}"));
    let again = send_message(&member, "And once more, please.", false).await?;
    say(&format!(
        "a second request (HTTP {}, route {}): exchanges still {} (the broker reuses the access token)",
        again.status,
        again.route,
        stack.sim.call_count(TOKEN_OP)
    ));
    if !reply.route.starts_with("azure_foundry:") || again.status != 200 {
        anyhow::bail!("the Azure team was not served by Azure AI Foundry");
    }
    Ok(())
}
