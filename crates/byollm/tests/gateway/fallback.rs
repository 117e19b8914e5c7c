//! Fallback (DESIGN §5): before the first byte, within Bedrock (global →
//! geographic profile) and then to the direct API only as the team allows; a
//! client error in the request never falls back; after the first byte the stream
//! ends with an error event and no second upstream call.

use byollm_api::routes;
use serde_json::json;

use crate::harness::{Env, messages_body, trust_policy};

fn direct_calls(env: &Env) -> u64 {
    env.sim.call_count("anthropic:Messages")
}

#[tokio::test]
async fn refused_role_assumption_falls_back_to_the_direct_api_only_when_allowed() {
    let env = Env::start().await;
    // The role admits another team only.
    env.sim
        .update_assume_role_policy(
            "byollm-team",
            &trust_policy("scoped_principal:someoneelse/*"),
        )
        .unwrap();
    let r = env
        .owner_asks(routes::MESSAGES, "claude-sonnet-4-6", false)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.header("x-byollm-route"),
        Some("direct_api:claude-sonnet-4-6")
    );
    let fb = r.header("x-byollm-fallback").unwrap();
    assert!(
        fb.contains("role assumption failed") && fb.contains("AccessDenied"),
        "{fb}"
    );
    assert_eq!(direct_calls(&env), 1);
    // The refused role is tried once per request, not once per fallback model.
    assert_eq!(env.sts_calls(), 1);
    // Direct-API fallback is billed in inference credits.
    let usage = env.usage("").await;
    assert!(
        usage["buckets"]["inference"].as_f64().unwrap() > 0.0,
        "{usage}"
    );

    env.put_settings(json!({"hosts": {"aws_bedrock": {"enabled": true, "role_arn": env.role_arn, "region": "us-east-1"}},
        "allow_fallback_outside_cloud": false}))
    .await;
    let r = env
        .owner_asks(routes::MESSAGES, "claude-sonnet-4-6", false)
        .await;
    // The trust policy refuses: no retry can help, so a 4xx SDKs do not retry.
    assert_eq!(r.status, 403, "{}", r.text);
    let body = r.json();
    assert_eq!(body["type"], "error");
    assert_eq!(body["error"]["type"], "permission_error");
    let msg = body["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("allow_fallback_outside_cloud is false"),
        "{msg}"
    );
    assert!(msg.contains("role assumption failed"), "{msg}");
    assert_eq!(direct_calls(&env), 1, "nothing reached the direct API");
    // Within the failure hold the broker answers from its last failure: steady
    // traffic on a misconfigured role is not steady STS traffic.
    assert_eq!(env.sts_calls(), 1);
    env.stop().await;
}

#[tokio::test]
async fn denied_global_profile_tries_the_geographic_profile_first() {
    let env = Env::start().await;
    // A region-deny policy: the global profile's region-less model ARN carries
    // aws:RequestedRegion = "unspecified", which the deny does not list.
    env.sim
        .put_role_policy(
            "byollm-team",
            "region-deny",
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"bedrock:*","Resource":"*",
               "Condition":{"StringNotEquals":{"aws:RequestedRegion":["us-east-1","us-east-2","us-west-2"]}}}]}"#,
        )
        .unwrap();
    let r = env
        .owner_asks(routes::MESSAGES, "claude-sonnet-4-6", true)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.header("x-byollm-route"),
        Some("aws_bedrock:us.anthropic.claude-sonnet-4-6@us-east-1")
    );
    let fb = r.header("x-byollm-fallback").unwrap();
    assert!(
        fb.starts_with("aws_bedrock:global.anthropic.claude-sonnet-4-6@us-east-1=access denied"),
        "{fb}"
    );
    assert_eq!(
        direct_calls(&env),
        0,
        "the geographic profile came before the direct API"
    );
    env.stop().await;
}

#[tokio::test]
async fn throttling_and_5xx_fall_back_but_client_errors_do_not() {
    let env = Env::start().await;
    for (error, cause) in [
        ("ThrottlingException", "throttled"),
        ("ServiceUnavailableException", "ServiceUnavailableException"),
        ("InternalServerException", "InternalServerException"),
    ] {
        env.sim.faults().fail_next("bedrock:InvokeModel", error, 1);
        let before = direct_calls(&env);
        let r = env
            .owner_asks(routes::MESSAGES, "claude-sonnet-4-6", false)
            .await;
        assert_eq!(r.status, 200, "{error}: {}", r.text);
        assert_eq!(
            r.header("x-byollm-route"),
            Some("direct_api:claude-sonnet-4-6"),
            "{error}"
        );
        let fb = r.header("x-byollm-fallback").unwrap();
        assert!(
            fb.starts_with("aws_bedrock:global.anthropic.claude-sonnet-4-6@us-east-1=")
                && fb.contains(cause),
            "{fb}"
        );
        assert_eq!(direct_calls(&env), before + 1);
    }
    // A request Bedrock rejects as malformed is the caller's problem.
    let before = direct_calls(&env);
    let bad = json!({"model": "claude-sonnet-4-6", "max_tokens": 10,
                     "messages": [{"role": "robot", "content": "beep"}]});
    let r = env.infer(routes::MESSAGES, &env.owner_key, bad).await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(r.json()["type"], "error");
    assert_eq!(direct_calls(&env), before, "no fallback on a client error");
    env.stop().await;
}

#[tokio::test]
async fn failure_after_the_first_byte_ends_the_stream_without_a_second_call() {
    let env = Env::start().await;
    env.sim.faults().fail_stream_after(
        "bedrock:InvokeModelWithResponseStream",
        2,
        "ThrottlingException",
        1,
    );
    let r = env
        .infer(
            routes::MESSAGES,
            &env.owner_key,
            messages_body("claude-sonnet-4-6", "a longer reply please", true),
        )
        .await;
    assert_eq!(r.status, 200, "committed at the first chunk");
    let events = r.events();
    let last = events.last().unwrap();
    assert_eq!(last.0.as_deref(), Some("error"), "{}", r.text);
    assert!(last.1.contains("mid-stream"));
    assert_eq!(
        env.sim.call_count("bedrock:InvokeModelWithResponseStream"),
        1
    );
    assert_eq!(
        direct_calls(&env),
        0,
        "no second upstream call after the first byte"
    );
    env.stop().await;
}

#[tokio::test]
async fn openai_format_claude_falls_back_to_anthropics_openai_compatible_endpoint() {
    let env = Env::start().await;
    env.sim
        .faults()
        .fail_next("bedrock:ConverseStream", "ServiceUnavailableException", 1);
    let r = env
        .infer(
            routes::CHAT_COMPLETIONS,
            &env.owner_key,
            crate::harness::chat_body("claude-sonnet-4-6", "compat please", true),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.header("x-byollm-route"),
        Some("direct_api:claude-sonnet-4-6")
    );
    assert!(
        r.text.contains("\"compat \"") && r.text.contains("\"please\""),
        "{}",
        r.text
    );
    assert_eq!(r.events().last().unwrap().1, "[DONE]");
    assert_eq!(env.sim.call_count("anthropic:ChatCompletions"), 1);
    env.stop().await;
}
