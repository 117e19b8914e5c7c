//! Issue 18's "done when" on the emulated Azure: a member and an agent run
//! reach GPT (Azure OpenAI) and Claude (Foundry) through the team's FICs at
//! each subject granularity — the identity holds only that granularity's
//! FICs, so a token with another subject would be refused —, and with
//! short-lived Entra tokens a run makes one exchange per token lifetime.

use std::time::Duration;

use byollm_api::routes;
use byollm_cloudsim::azure::{AZURE_AI_USER, COGNITIVE_SERVICES_OPENAI_USER, Deployment};
use serde_json::json;

use crate::azure_side::{self, CLIENT, RESOURCE, TENANT};
use crate::harness::{Env, chat_body, messages_body};

const ENTRA_OP: &str = "azure:entra.token";

/// The emulated identity with both roles on the resource and a `gpt-5`
/// deployment, but no FIC yet.
async fn azure_world() -> Env {
    let env = Env::start().await;
    azure_side::identity(&env, &[], &[AZURE_AI_USER, COGNITIVE_SERVICES_OPENAI_USER]);
    let az = env.sim.azure();
    az.create_deployment(Deployment {
        resource: RESOURCE.into(),
        name: "gpt-5".into(),
        model: "gpt-5".into(),
    })
    .unwrap();
    env
}

/// Replaces the identity's FICs with one per subject in `subjects`, and the
/// team's settings with Azure alone at `granularity`.
async fn use_granularity(env: &Env, granularity: &str, subjects: &[String]) {
    let az = env.sim.azure();
    for f in az.fics(CLIENT) {
        az.remove_fic(CLIENT, &f.name);
    }
    azure_side::add_fics(env, &format!("byollm-{granularity}"), subjects);
    env.put_settings(json!({"hosts": {
        "aws_bedrock": {"enabled": false, "role_arn": env.role_arn, "region": "us-east-1"},
        "direct_api": {"enabled": false},
        "azure_foundry": {"enabled": true, "tenant_id": TENANT, "client_id": CLIENT,
                          "resource": RESOURCE, "subject_granularity": granularity}}}))
        .await;
}

#[tokio::test]
async fn members_and_agent_runs_reach_gpt_and_claude_at_each_subject_granularity() {
    let env = azure_world().await;
    let agent = env.create_agent("azure-agent", None).await;
    let team = format!("scoped_principal:{}", env.team);
    let cases = [
        ("team", vec![team.clone()]),
        (
            "actor_type",
            vec![format!("{team}/user"), format!("{team}/service_account")],
        ),
        (
            "actor",
            vec![
                format!("{team}/user:{}", env.owner),
                format!("{team}/service_account:{agent}"),
            ],
        ),
    ];
    for (granularity, subjects) in cases {
        use_granularity(&env, granularity, &subjects).await;
        let before = env.sim.call_count(ENTRA_OP);
        let (_run, run_token) = env.start_run(Some(&agent)).await;
        for (who, key) in [
            ("member", env.owner_key.as_str()),
            ("agent run", &run_token),
        ] {
            for (path, body, route) in [
                (
                    routes::CHAT_COMPLETIONS,
                    chat_body("gpt-5", "gpt", who == "agent run"),
                    "azure_foundry:gpt-5@acme-ai",
                ),
                (
                    routes::MESSAGES,
                    messages_body("claude-sonnet-4-6", "claude", false),
                    "azure_foundry:claude-sonnet-4-6@acme-ai",
                ),
                (
                    routes::CHAT_COMPLETIONS,
                    chat_body("claude-sonnet-4-6", "claude chat", true),
                    "azure_foundry:claude-sonnet-4-6@acme-ai",
                ),
            ] {
                let r = env.infer(path, key, body).await;
                assert_eq!(r.status, 200, "{granularity} {who} {path}: {}", r.text);
                assert_eq!(
                    r.header("x-byollm-route"),
                    Some(route),
                    "{granularity} {who}"
                );
                assert!(r.header("x-byollm-fallback").is_none());
            }
        }
        // One exchange for the member's key and one for the run's, each
        // serving its three requests on both endpoints.
        assert_eq!(
            env.sim.call_count(ENTRA_OP) - before,
            2,
            "{granularity}: {subjects:?}"
        );
    }
    assert_eq!(env.sts_calls(), 0, "AWS untouched");
    env.stop().await;
}

#[tokio::test]
async fn short_lived_entra_tokens_are_exchanged_once_per_window() {
    let env = azure_world().await;
    let team = format!("scoped_principal:{}", env.team);
    use_granularity(&env, "team", &[team]).await;
    // 12-second Entra tokens: a refresh is due 2–3 s before each expires.
    env.sim
        .faults()
        .set_credential_lifetime(Some(Duration::from_secs(12)));
    let agent = env.create_agent("long-azure", None).await;
    let (_, token) = env.start_run(Some(&agent)).await;
    let start = tokio::time::Instant::now();
    let mut n = 0;
    // Over two token lifetimes, alternating GPT and Claude (one token serves both).
    let mut last_sent = Duration::ZERO;
    while start.elapsed() < Duration::from_secs(25) {
        last_sent = start.elapsed();
        let (path, body) = if n % 2 == 0 {
            (routes::CHAT_COMPLETIONS, chat_body("gpt-5", "tick", false))
        } else {
            (
                routes::MESSAGES,
                messages_body("claude-haiku-4-5", "tock", false),
            )
        };
        let r = env.infer(path, &token, body).await;
        assert_eq!(r.status, 200, "request {n}: {}", r.text);
        assert!(
            r.header("x-byollm-route")
                .unwrap()
                .starts_with("azure_foundry:"),
            "request {n}"
        );
        assert!(r.header("x-byollm-fallback").is_none(), "request {n}");
        n += 1;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // Requests kept coming until the end (however slow the machine), so the
    // last token lifetime was exercised too; no throughput is asserted.
    assert!(
        last_sent + Duration::from_secs(5) > Duration::from_secs(25),
        "the last request left at {last_sent:?} after {n} requests"
    );
    // The first exchange and one refresh per lifetime that ran out.
    assert_eq!(env.sim.call_count(ENTRA_OP), 3, "after {n} requests");
    env.stop().await;
}
