//! A named agent's cloud run through the team role (flow 1), and the per-agent
//! override.

use byollm_api::routes;
use serde_json::json;

use crate::harness::{BROAD_PERMISSIONS, Env, chat_body, messages_body, trust_policy};

#[tokio::test]
async fn agent_run_streams_through_bedrock_with_one_sts_call_and_no_inference_credits() {
    let env = Env::start().await;
    let agent = env.create_agent("reviewer", None).await;
    let (run, token) = env.start_run(Some(&agent)).await;

    let first = env
        .infer(
            routes::MESSAGES,
            &token,
            messages_body("claude-sonnet-4-6", "hello bedrock", true),
        )
        .await;
    assert_eq!(first.status, 200, "{}", first.text);
    assert_eq!(
        first.header("x-byollm-route"),
        Some("aws_bedrock:global.anthropic.claude-sonnet-4-6@us-east-1")
    );
    assert!(first.header("x-byollm-fallback").is_none());
    let events = first.events();
    let names: Vec<&str> = events.iter().filter_map(|(n, _)| n.as_deref()).collect();
    assert_eq!(names.first(), Some(&"message_start"), "{names:?}");
    assert_eq!(names.last(), Some(&"message_stop"), "{names:?}");
    assert!(names.contains(&"content_block_delta"));
    let text: String = events
        .iter()
        .filter(|(n, _)| n.as_deref() == Some("content_block_delta"))
        .map(|(_, d)| {
            serde_json::from_str::<serde_json::Value>(d).unwrap()["delta"]["text"]
                .as_str()
                .unwrap_or("")
                .to_owned()
        })
        .collect();
    assert!(
        text.contains("hello bedrock"),
        "the emulator echoes the prompt: {text:?}"
    );

    // More requests in the same run, both formats: still one role assumption.
    for _ in 0..3 {
        let r = env
            .infer(
                routes::MESSAGES,
                &token,
                messages_body("claude-sonnet-4-6", "again", false),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        let r = env
            .infer(
                routes::CHAT_COMPLETIONS,
                &token,
                chat_body("claude-sonnet-4-6", "again", false),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.json()["choices"][0]["message"]["role"], "assistant");
    }
    assert_eq!(
        env.sts_calls(),
        1,
        "one AssumeRoleWithWebIdentity for the whole run"
    );

    // The session the emulator issued is the agent's, for this run.
    let usage = env.usage(&format!("?run_id={run}")).await;
    assert_eq!(usage["buckets"]["inference"], 0.0, "{usage}");
    assert_eq!(usage["buckets"]["platform"], 1.0);
    let requests = usage["requests"].as_array().unwrap();
    assert_eq!(requests.len(), 7);
    assert!(
        requests
            .iter()
            .all(|r| r["principal"] == format!("service_account:{agent}"))
    );
    assert!(
        requests
            .iter()
            .all(|r| r["route"].as_str().unwrap().starts_with("aws_bedrock:"))
    );
    assert!(
        requests[0]["input_tokens"].as_i64().unwrap() > 0
            && requests[0]["output_tokens"].as_i64().unwrap() > 0
    );

    // The audit log shows the broker minted for this run with the agent's subject.
    let audit = env
        .server
        .core
        .store()
        .list_audit(&env.team, 10)
        .await
        .unwrap();
    assert_eq!(audit.len(), 1);
    assert_eq!(
        audit[0].sub,
        format!("scoped_principal:{}/service_account:{agent}", env.team)
    );
    assert_eq!(audit[0].requested_by, format!("broker:run:{run}"));

    // Finishing the run drops its credentials: a new run assumes again.
    let (s, _) = env
        .api(
            reqwest::Method::POST,
            &routes::fill(routes::RUN_FINISH, &run),
            &env.owner_key,
            None,
        )
        .await;
    assert_eq!(s, 200);
    let r = env
        .infer(
            routes::MESSAGES,
            &token,
            messages_body("claude-sonnet-4-6", "after", false),
        )
        .await;
    assert_eq!(r.status, 401, "a finished run's token is dead");
    env.stop().await;
}

#[tokio::test]
async fn agent_override_uses_its_own_role_and_region_and_disabled_keeps_it_off_bedrock() {
    let env = Env::start().await;
    let own = env
        .sim
        .create_role(
            "agent-own",
            &trust_policy(&format!("scoped_principal:{}/service_account:*", env.team)),
            None,
        )
        .unwrap();
    env.sim
        .put_role_policy("agent-own", "bedrock", BROAD_PERMISSIONS)
        .unwrap();
    let special = env
        .create_agent(
            "special",
            Some(json!({"role_arn": own, "region": "eu-west-1"})),
        )
        .await;
    let plain = env.create_agent("plain", None).await;

    let (_, t_special) = env.start_run(Some(&special)).await;
    let r = env
        .infer(
            routes::MESSAGES,
            &t_special,
            messages_body("claude-sonnet-4-6", "x", false),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.header("x-byollm-route"),
        Some("aws_bedrock:global.anthropic.claude-sonnet-4-6@eu-west-1")
    );
    let (_, t_plain) = env.start_run(Some(&plain)).await;
    let r = env
        .infer(
            routes::MESSAGES,
            &t_plain,
            messages_body("claude-sonnet-4-6", "x", false),
        )
        .await;
    assert_eq!(
        r.header("x-byollm-route"),
        Some("aws_bedrock:global.anthropic.claude-sonnet-4-6@us-east-1")
    );

    // Disabled: the direct API when allowed (billed), else a clear 422.
    let (s, _) = env
        .api(
            reqwest::Method::PATCH,
            &routes::fill(routes::AGENT_IDENTITY, &special),
            &env.owner_key,
            Some(json!({"inference_providers": {"aws": {"disabled": true}}})),
        )
        .await;
    assert_eq!(s, 200);
    let r = env
        .infer(
            routes::MESSAGES,
            &t_special,
            messages_body("claude-sonnet-4-6", "x", false),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.header("x-byollm-route"),
        Some("direct_api:claude-sonnet-4-6")
    );
    env.put_settings(json!({
        "hosts": {"aws_bedrock": {"enabled": true, "role_arn": env.role_arn, "region": "us-east-1"},
                  "direct_api": {"enabled": false}}
    }))
    .await;
    let r = env
        .infer(
            routes::MESSAGES,
            &t_special,
            messages_body("claude-sonnet-4-6", "x", false),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.text);
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("override is disabled"),
        "{}",
        r.text
    );
    env.stop().await;
}
