//! One team on all three clouds (issue 18): the gateway tries Azure AI
//! Foundry, Vertex AI and Bedrock in the admin's `host_order`, falls back
//! from each to the next when it refuses or runs out of quota, and out of
//! the customer's clouds not at all while `allow_fallback_outside_cloud` is
//! false; an FIC that does not match the team's subject is refused with
//! Entra's exact `AADSTS` code in the caller's error.

use byollm_api::routes;
use byollm_cloudsim::azure::{AZURE_AI_USER, RoleAssignment};
use serde_json::{Value, json};

use crate::azure_side::{self, CLIENT, RESOURCE, TENANT};
use crate::harness::Env;
use crate::vertex::{RAW_PREDICT, attempts, gcp_vertex, vertex_env};

const FOUNDRY: &str = "azure_foundry:claude-sonnet-4-6@acme-ai";
const VERTEX: &str = "gcp_vertex:claude-sonnet-4-6@global";
const BEDROCK: &str = "aws_bedrock:global.anthropic.claude-sonnet-4-6@us-east-1";

fn role() -> RoleAssignment {
    azure_side::role(AZURE_AI_USER)
}

/// Bedrock (the harness's role), Vertex AI (the team's pool) and Azure (the
/// team's identity with an FIC for `fic_subject` and "Azure AI User"), all
/// on, in `order`; nothing outside the customer's clouds.
async fn three_clouds(order: &[&str], fic_subject: Option<&str>) -> Env {
    let env = vertex_env(None, true, json!({})).await;
    let subject = fic_subject.map_or_else(|| azure_side::team_subject(&env), str::to_owned);
    azure_side::identity(&env, &[subject], &[AZURE_AI_USER]);
    env.put_settings(json!({"hosts": {
        "aws_bedrock": {"enabled": true, "role_arn": env.role_arn, "region": "us-east-1"},
        "gcp_vertex": gcp_vertex(),
        "direct_api": {"enabled": true},
        "azure_foundry": {"enabled": true, "tenant_id": TENANT, "client_id": CLIENT,
                          "resource": format!("{RESOURCE}.services.ai.azure.com"),
                          "subject_granularity": "team"}},
        "host_order": order,
        "allow_fallback_outside_cloud": false}))
        .await;
    env
}

/// The hosts of `body`'s attempts for `claude-sonnet-4-6`, in order.
fn hosts_tried(body: &Value) -> Vec<String> {
    attempts(body)
        .iter()
        .filter(|a| a.contains("claude-sonnet-4-6"))
        .map(|a| a.split(':').next().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test]
async fn fallback_runs_across_the_three_clouds_in_the_admins_order() {
    let env = three_clouds(&["azure_foundry", "gcp_vertex", "aws_bedrock"], None).await;
    let ask = || env.owner_asks(routes::MESSAGES, "claude-sonnet-4-6", false);
    // First in the order serves.
    let r = ask().await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("x-byollm-route"), Some(FOUNDRY));
    assert!(r.header("x-byollm-fallback").is_none());
    assert_eq!(env.sts_calls(), 0, "AWS untouched");
    // Azure's role is gone: Vertex AI, second in the order, serves.
    env.sim.azure().remove_role(&role());
    let r = ask().await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("x-byollm-route"), Some(VERTEX));
    assert!(
        r.header("x-byollm-fallback")
            .is_some_and(|f| f.contains("azure_foundry")),
        "{:?}",
        r.header("x-byollm-fallback")
    );
    // ... and Vertex AI's quota runs out: Bedrock, third, serves.
    env.sim
        .faults()
        .fail_next(RAW_PREDICT, "RESOURCE_EXHAUSTED", 1);
    let r = ask().await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("x-byollm-route"), Some(BEDROCK));
    // Every cloud refuses: the direct API is not asked (the team keeps its
    // requests in its clouds), and the attempts follow the admin's order.
    env.sim
        .faults()
        .fail_next(RAW_PREDICT, "RESOURCE_EXHAUSTED", 20);
    env.sim
        .faults()
        .fail_next("bedrock:InvokeModel", "AccessDeniedException", 20);
    let direct_before = env.sim.call_count("anthropic:Messages");
    let r = ask().await;
    assert!(r.status.as_u16() >= 400, "{}", r.text);
    let tried = hosts_tried(&r.json());
    let first = |h: &str| tried.iter().position(|t| t == h);
    assert_eq!(
        tried.first().map(String::as_str),
        Some("azure_foundry"),
        "{tried:?}"
    );
    assert!(
        first("gcp_vertex") < first("aws_bedrock") && first("aws_bedrock").is_some(),
        "{tried:?}"
    );
    assert!(
        r.text.contains("allow_fallback_outside_cloud"),
        "{}",
        r.text
    );
    assert_eq!(env.sim.call_count("anthropic:Messages"), direct_before);
    env.stop().await;
}

#[tokio::test]
async fn the_admins_order_puts_bedrock_first_and_azure_last() {
    let env = three_clouds(&["aws_bedrock", "gcp_vertex", "azure_foundry"], None).await;
    let ask = || env.owner_asks(routes::MESSAGES, "claude-sonnet-4-6", false);
    let r = ask().await;
    assert_eq!(r.header("x-byollm-route"), Some(BEDROCK), "{}", r.text);
    // Bedrock denied on every profile, Vertex AI out of quota: Azure serves.
    env.sim
        .faults()
        .fail_next("bedrock:InvokeModel", "AccessDeniedException", 20);
    env.sim
        .faults()
        .fail_next(RAW_PREDICT, "RESOURCE_EXHAUSTED", 20);
    let r = ask().await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("x-byollm-route"), Some(FOUNDRY));
    env.stop().await;
}

#[tokio::test]
async fn an_fic_for_another_subject_is_refused_with_entras_code() {
    // The identity's one FIC names another team's subject.
    let env = three_clouds(
        &["azure_foundry"],
        Some("scoped_principal:someoneelse00000000"),
    )
    .await;
    env.put_settings(json!({"hosts": {
        "aws_bedrock": {"enabled": false, "role_arn": env.role_arn, "region": "us-east-1"},
        "direct_api": {"enabled": false},
        "azure_foundry": {"enabled": true, "tenant_id": TENANT, "client_id": CLIENT,
                          "resource": format!("{RESOURCE}.services.ai.azure.com"),
                          "subject_granularity": "team"}},
        "allow_fallback_outside_cloud": false}))
        .await;
    let r = env
        .owner_asks(routes::MESSAGES, "claude-sonnet-4-6", false)
        .await;
    assert_eq!(r.status, 403, "{}", r.text);
    assert!(r.text.contains("AADSTS700213"), "{}", r.text);
    assert!(
        r.text.contains(&format!("scoped_principal:{}", env.team)),
        "the refusal names the subject Entra saw: {}",
        r.text
    );
    env.stop().await;
}
