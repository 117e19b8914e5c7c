//! Claude on Azure AI Foundry through the gateway (issue 18): members and
//! agent runs reach the emulated Foundry resource with Entra access tokens
//! the broker exchanges at the (emulated) Entra token endpoint through the
//! team's federated identity credential — the emulator checks the RS256
//! identity token against the issuer's JWKS, the FIC's exact subject, then
//! the bearer token and the "Azure AI User" role assignment on every call —,
//! one exchange per key per token lifetime, from `/v1/messages` and
//! `/v1/chat/completions`, streamed and whole.

use byollm_api::routes;
use byollm_cloudsim::azure::{AZURE_AI_USER, RoleAssignment};
use serde_json::{Value, json};

use crate::azure_side::{self, CLIENT, RESOURCE, TENANT};
use crate::harness::{Env, chat_body, messages_body};

const ENTRA_OP: &str = "azure:entra.token";
const FOUNDRY_OP: &str = "azure:foundry.messages";

/// An emulator with the team's managed identity, one FIC for the team's
/// subject (`team` granularity) and, when `role`, "Azure AI User" on the
/// resource; the team's settings with Azure on and the other hosts off.
async fn azure_env(role: bool) -> Env {
    let env = Env::start().await;
    let roles: &[&str] = if role { &[AZURE_AI_USER] } else { &[] };
    azure_side::identity(&env, &[azure_side::team_subject(&env)], roles);
    env.put_settings(json!({"hosts": {
        "aws_bedrock": {"enabled": false, "role_arn": env.role_arn, "region": "us-east-1"},
        "direct_api": {"enabled": false},
        "azure_foundry": {"enabled": true, "tenant_id": TENANT, "client_id": CLIENT,
                          "resource": format!("{RESOURCE}.services.ai.azure.com"),
                          "subject_granularity": "team"}}}))
        .await;
    env
}

#[tokio::test]
async fn members_and_agent_runs_reach_claude_on_foundry_through_the_teams_fic() {
    let env = azure_env(true).await;
    let route = "azure_foundry:claude-sonnet-4-6@acme-ai";
    // A member, Messages whole and streamed, and Chat Completions.
    let r = env
        .infer(
            routes::MESSAGES,
            &env.owner_key,
            messages_body("claude-sonnet-4-6", "from foundry", false),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("x-byollm-route"), Some(route));
    assert_eq!(r.json()["content"][0]["text"], "from foundry");
    let r = env
        .infer(
            routes::MESSAGES,
            &env.owner_key,
            messages_body("claude-sonnet-4-6", "streamed", true),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("x-byollm-route"), Some(route));
    let names: Vec<_> = r.events().into_iter().filter_map(|(n, _)| n).collect();
    assert_eq!(names.first().map(String::as_str), Some("message_start"));
    assert_eq!(names.last().map(String::as_str), Some("message_stop"));
    assert!(r.text.contains("streamed"), "{}", r.text);
    let r = env
        .infer(
            routes::CHAT_COMPLETIONS,
            &env.owner_key,
            chat_body("claude-sonnet-4-6", "chat on azure", false),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("x-byollm-route"), Some(route));
    assert_eq!(
        r.json()["choices"][0]["message"]["content"],
        "chat on azure"
    );
    // The member's three requests took one Entra exchange.
    assert_eq!(env.sim.call_count(ENTRA_OP), 1);
    // An agent's run, through the same FIC (team granularity): its own key,
    // one exchange for its two requests.
    let agent = env.create_agent("azure-builder", None).await;
    let (_run_id, token) = env.start_run(Some(&agent)).await;
    for (path, body) in [
        (
            routes::MESSAGES,
            messages_body("claude-sonnet-4-6", "run", false),
        ),
        (
            routes::CHAT_COMPLETIONS,
            chat_body("claude-sonnet-4-6", "run streamed", true),
        ),
    ] {
        let r = env.infer(path, &token, body).await;
        assert_eq!(r.status, 200, "{path}: {}", r.text);
        assert_eq!(r.header("x-byollm-route"), Some(route));
        assert!(r.text.contains("run"), "{}", r.text);
    }
    assert_eq!(env.sim.call_count(ENTRA_OP), 2);
    assert_eq!(env.sim.call_count(FOUNDRY_OP), 5);
    assert_eq!(env.sts_calls(), 0, "AWS untouched");
    // Usage rows name the route; the customer's cloud costs no credits.
    let usage = env.usage("").await;
    let reqs = usage["requests"].as_array().unwrap();
    assert_eq!(reqs.len(), 5, "{usage}");
    assert!(reqs.iter().all(|r| r["route"] == route), "{usage}");
    assert!(reqs.iter().all(|r| r["credits"] == 0.0), "{usage}");
    assert_eq!(usage["buckets"]["inference"].as_f64(), Some(0.0), "{usage}");
    env.stop().await;
}

#[tokio::test]
async fn a_missing_role_is_a_permission_refusal_and_an_expired_token_is_renewed() {
    let env = azure_env(false).await;
    let r = env
        .infer(
            routes::MESSAGES,
            &env.owner_key,
            messages_body("claude-sonnet-4-6", "denied", false),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.text);
    let v: Value = r.json();
    assert!(r.text.contains("PermissionDenied"), "{v}");
    // Granted now; an Entra token the emulator forgot to honour (expired)
    // is exchanged afresh once and the request served.
    env.sim
        .azure()
        .assign_role(RoleAssignment {
            client_id: CLIENT.into(),
            role: AZURE_AI_USER.into(),
            resource: RESOURCE.into(),
        })
        .unwrap();
    let before = env.sim.call_count(ENTRA_OP);
    env.sim.azure().expire_tokens();
    let r = env
        .infer(
            routes::MESSAGES,
            &env.owner_key,
            messages_body("claude-sonnet-4-6", "renewed", false),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(env.sim.call_count(ENTRA_OP), before + 1);
    env.stop().await;
}
