//! Upstream timeouts (`[gateway]`): before the first byte, a hung Bedrock,
//! vendor API or STS is a fallback cause like any other failure (named in
//! `x-byollm-fallback` and the usage row), or a timely 504 in the caller's
//! format when nothing else may serve; after it, a stream that goes quiet ends
//! with the caller format's error event.
//!
//! The timeouts are 300 ms and the emulator hangs for [`HANG`]: without the
//! timeouts every request here would be answered by the hung upstream after
//! [`HANG`] (a 200 from Bedrock, no fallback), so each assertion below fails.

use std::time::Duration;

use byollm_api::routes;
use byollm_server::config::GatewayLimits;
use serde_json::{Value, json};

use crate::harness::{Env, chat_body, messages_body};

/// How long the emulator hangs: far past every timeout below, short enough
/// for its graceful shutdown to wait out the abandoned calls.
const HANG: Duration = Duration::from_secs(4);

const GLOBAL: &str = "aws_bedrock:global.anthropic.claude-sonnet-4-6@us-east-1";
const FIRST_BYTE: &str = "timed out: no first byte within 300 ms (first_byte_timeout_ms)";

fn short() -> GatewayLimits {
    let mut l = GatewayLimits::default();
    l.timeouts.first_byte = Duration::from_millis(300);
    l.timeouts.stream_idle = Duration::from_millis(300);
    l.sts.call = Duration::from_millis(300);
    l
}

fn no_fallback() -> Value {
    json!({"allow_fallback_outside_cloud": false})
}

/// The usage rows, once the writer has caught up with `n` of them.
async fn rows(env: &Env, n: usize) -> Vec<Value> {
    for _ in 0..100 {
        env.server.core.usage_sink().flush().await;
        let usage = env.usage("").await;
        let rows = usage["requests"].as_array().unwrap().clone();
        if rows.len() >= n {
            return rows;
        }
        // A stream's row is queued as its pump ends, just after the last byte.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("fewer than {n} usage rows");
}

#[tokio::test]
async fn hung_bedrock_falls_back_to_the_direct_api_naming_the_timeout() {
    let env = Env::start_tuned(json!({}), short()).await;
    env.sim.faults().set_latency("bedrock", HANG);
    let r = env
        .owner_asks(routes::MESSAGES, "claude-sonnet-4-6", false)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.header("x-byollm-route"),
        Some("direct_api:claude-sonnet-4-6")
    );
    assert_eq!(
        r.header("x-byollm-fallback"),
        Some(format!("{GLOBAL}={FIRST_BYTE}").as_str())
    );
    let rows = rows(&env, 1).await;
    assert_eq!(rows[0]["route"], "direct_api:claude-sonnet-4-6");
    assert_eq!(
        rows[0]["attempts"][0],
        json!({"route": GLOBAL, "outcome": FIRST_BYTE}),
        "{}",
        rows[0]
    );
    // A stream whose first event never comes falls back the same way.
    let r = env
        .infer(
            routes::CHAT_COMPLETIONS,
            &env.owner_key,
            chat_body("claude-sonnet-4-6", "y", true),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.header("x-byollm-route"),
        Some("direct_api:claude-sonnet-4-6")
    );
    assert!(
        r.header("x-byollm-fallback").unwrap().contains(FIRST_BYTE),
        "{:?}",
        r.headers
    );
    assert_eq!(r.events().last().unwrap().1, "[DONE]");
    env.stop().await;
}

#[tokio::test]
async fn hung_upstreams_with_nothing_else_allowed_are_a_timely_504_in_the_callers_format() {
    let env = Env::start_tuned(no_fallback(), short()).await;
    env.sim.faults().set_latency("bedrock", HANG);
    let r = env
        .owner_asks(routes::MESSAGES, "claude-sonnet-4-6", true)
        .await;
    assert_eq!(r.status, 504, "{}", r.text);
    let body = r.json();
    assert_eq!(body["type"], "error");
    assert_eq!(body["error"]["type"], "api_error");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains(FIRST_BYTE), "{message}");
    assert!(
        r.header("x-byollm-fallback").unwrap().contains(FIRST_BYTE),
        "{:?}",
        r.headers
    );
    let r = env
        .owner_asks(routes::CHAT_COMPLETIONS, "claude-sonnet-4-6", false)
        .await;
    assert_eq!(r.status, 504, "{}", r.text);
    let error = &r.json()["error"];
    assert_eq!(error["type"], "api_error");
    assert!(
        error["message"].as_str().unwrap().contains(FIRST_BYTE),
        "{error}"
    );
    assert_eq!(env.sim.call_count("anthropic:Messages"), 0);

    // The vendor API's host times out the same way.
    env.sim.faults().set_latency("bedrock", Duration::ZERO);
    env.sim.faults().set_latency("anthropic", HANG);
    env.put_settings(json!({"hosts": {"aws_bedrock": {"enabled": false}}}))
        .await;
    let r = env
        .owner_asks(routes::MESSAGES, "claude-sonnet-4-6", false)
        .await;
    assert_eq!(r.status, 504, "{}", r.text);
    let fb = r.header("x-byollm-fallback").unwrap();
    assert!(
        fb.starts_with(&format!("direct_api:claude-sonnet-4-6={FIRST_BYTE}")),
        "{fb}"
    );
    env.stop().await;
}

#[tokio::test]
async fn a_stream_that_goes_quiet_after_its_first_event_ends_with_an_error_event() {
    let mut limits = short();
    // Every event, the first included, comes a second late: the first byte is
    // in time, the second event is not.
    limits.timeouts.first_byte = Duration::from_secs(10);
    let env = Env::start_tuned(json!({}), limits).await;
    env.sim
        .faults()
        .set_stream_event_delay(Duration::from_millis(1000));
    let idle = "timed out: no chunk within 300 ms (stream_idle_timeout_ms)";
    let r = env
        .infer(
            routes::MESSAGES,
            &env.owner_key,
            messages_body("claude-sonnet-4-6", "three more words", true),
        )
        .await;
    assert_eq!(r.status, 200, "committed at the first event");
    let events = r.events();
    assert_eq!(events[0].0.as_deref(), Some("message_start"), "{}", r.text);
    let (name, data) = events.last().unwrap();
    assert_eq!(name.as_deref(), Some("error"), "{}", r.text);
    let data: Value = serde_json::from_str(data).unwrap();
    assert_eq!(data["type"], "error");
    assert_eq!(data["error"]["type"], "api_error");
    assert!(
        data["error"]["message"].as_str().unwrap().contains(idle),
        "{data}"
    );

    let r = env
        .infer(
            routes::CHAT_COMPLETIONS,
            &env.owner_key,
            chat_body("claude-sonnet-4-6", "three more words", true),
        )
        .await;
    assert_eq!(r.status, 200);
    let (_, data) = r.events().last().unwrap().clone();
    let data: Value = serde_json::from_str(&data).unwrap();
    assert!(
        data["error"]["message"].as_str().unwrap().contains(idle),
        "{}",
        r.text
    );
    // Nothing else was tried after the first byte, and the rows say why the
    // streams ended.
    assert_eq!(env.sim.call_count("anthropic:Messages"), 0);
    assert_eq!(env.sim.call_count("anthropic:ChatCompletions"), 0);
    let rows = rows(&env, 2).await;
    for row in &rows {
        let outcome = row["attempts"][0]["outcome"].as_str().unwrap();
        assert_eq!(outcome, format!("failed mid-stream: {idle}"), "{row}");
    }
    env.stop().await;
}

#[tokio::test]
async fn hung_sts_falls_back_and_holds_no_other_request_for_the_same_role() {
    let env = Env::start_tuned(json!({}), short()).await;
    env.sim
        .faults()
        .set_latency("sts:AssumeRoleWithWebIdentity", HANG);
    let body = messages_body("claude-sonnet-4-6", "x", false);
    // Two requests for the same role at once: one STS call (single flight),
    // and when it times out both fall back.
    let (a, b) = tokio::join!(
        env.infer(routes::MESSAGES, &env.owner_key, body.clone()),
        env.infer(routes::MESSAGES, &env.owner_key, body),
    );
    for r in [&a, &b] {
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(
            r.header("x-byollm-route"),
            Some("direct_api:claude-sonnet-4-6")
        );
        let fb = r.header("x-byollm-fallback").unwrap();
        assert!(
            fb.starts_with(&format!("{GLOBAL}=role assumption failed: STS is unavailable: timed out: no answer within 300 ms")),
            "{fb}"
        );
    }
    assert_eq!(env.sts_calls(), 1);
    // Without a route out of the cloud, a timely error instead.
    env.put_settings(
        json!({"hosts": {"aws_bedrock": {"enabled": true, "role_arn": env.role_arn,
        "region": "us-east-1"}}, "allow_fallback_outside_cloud": false}),
    )
    .await;
    let r = env
        .owner_asks(routes::CHAT_COMPLETIONS, "claude-sonnet-4-6", false)
        .await;
    // A hung STS may answer later: 503 with Retry-After, which SDKs retry.
    assert_eq!(r.status, 503, "{}", r.text);
    let message = r.json()["error"]["message"].as_str().unwrap().to_owned();
    assert!(message.contains("timed out"), "{message}");
    env.stop().await;
}
