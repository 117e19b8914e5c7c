//! Billing at the end of a response: a request's usage row is in the store
//! before the caller has the last byte (read straight from the store, with no
//! flush); a caller that disconnects mid-stream cancels the upstream call, leaves
//! no stream task behind, and its row records what was streamed.

use std::time::Duration;

use byollm_api::routes;
use byollm_core::store::{UsageFilter, UsageRow};
use serde_json::Value;

use crate::harness::{Env, chat_body, messages_body};

/// The stored row of a request, read from the store without flushing the
/// writer's queue.
async fn stored_row(env: &Env, id: &str) -> Option<UsageRow> {
    env.server
        .core
        .store()
        .list_usage(&env.team, &UsageFilter::default(), None, 1000)
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.id == id)
}

fn last_outcome(row: &UsageRow) -> String {
    let attempts: Value = serde_json::from_str(&row.attempts).unwrap();
    attempts
        .as_array()
        .and_then(|a| a.last())
        .and_then(|a| a["outcome"].as_str())
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn the_row_is_stored_before_the_last_byte() {
    let env = Env::start().await;
    // Bedrock (InvokeModel and Converse, whole and streamed), then the direct
    // APIs' own streams, passed through.
    let cases = [
        (routes::MESSAGES, false, "aws_bedrock"),
        (routes::MESSAGES, true, "aws_bedrock"),
        (routes::CHAT_COMPLETIONS, false, "aws_bedrock"),
        (routes::CHAT_COMPLETIONS, true, "aws_bedrock"),
        (routes::MESSAGES, true, "direct_api"),
        (routes::CHAT_COMPLETIONS, true, "direct_api"),
    ];
    for (path, stream, host) in cases {
        if host == "direct_api" {
            env.put_settings(serde_json::json!({"hosts": {"aws_bedrock": {"enabled": false}}}))
                .await;
        }
        let model = if path == routes::MESSAGES || host == "aws_bedrock" {
            "claude-sonnet-4-6"
        } else {
            "gpt-5"
        };
        let body = if path == routes::MESSAGES {
            messages_body(model, "hi", stream)
        } else {
            chat_body(model, "hi", stream)
        };
        let r = env.infer(path, &env.owner_key, body).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let route = r.header("x-byollm-route").unwrap_or_default();
        assert!(route.starts_with(host), "{path}: {route}");
        if stream {
            let last = r.events().pop().unwrap();
            assert!(
                last.0.as_deref() == Some("message_stop") || last.1 == "[DONE]",
                "{path} via {route}: the stream ends with its final event: {last:?}"
            );
        }
        let id = r.header("x-byollm-request-id").expect("request id header");
        let row = stored_row(&env, id).await.unwrap_or_else(|| {
            panic!("{path} via {route} (stream {stream}): no stored row for {id} once the response was read")
        });
        assert_eq!(last_outcome(&row), "ok");
        assert!(row.input_tokens > 0 && row.output_tokens > 0, "{row:?}");
    }
    let stats = env.server.core.usage_sink().stats();
    assert_eq!(stats.rows_written, 6, "{stats:?}");
    assert_eq!((stats.queue_depth, stats.rows_lost), (0, 0), "{stats:?}");
    env.stop().await;
}

/// Polls until no stream task is left (bounded; no fixed sleep).
async fn until_no_streams(env: &Env) {
    for _ in 0..500 {
        if env.server.gateway.streams().in_flight() == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "{} stream task(s) still running after the caller left",
        env.server.gateway.streams().in_flight()
    );
}

#[tokio::test]
async fn a_caller_leaving_mid_stream_cancels_the_upstream_and_is_billed_for_what_was_streamed() {
    let env = Env::start().await;
    // A complete stream, for its token counts.
    let full = env
        .infer(
            routes::MESSAGES,
            &env.owner_key,
            messages_body("claude-sonnet-4-6", "tell me a long story", true),
        )
        .await;
    let full_row = stored_row(&env, full.header("x-byollm-request-id").unwrap())
        .await
        .unwrap();
    // Slow upstream events: the stream is still going when the caller leaves.
    env.sim
        .faults()
        .set_stream_event_delay(Duration::from_millis(150));
    for (path, body) in [
        (
            routes::MESSAGES,
            messages_body("claude-sonnet-4-6", "tell me a long story", true),
        ),
        (
            routes::CHAT_COMPLETIONS,
            chat_body("claude-sonnet-4-6", "tell me a long story", true),
        ),
    ] {
        let mut resp = env
            .http
            .post(format!("{}{path}", env.base))
            .header("x-api-key", &env.owner_key)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let id = resp.headers()["x-byollm-request-id"]
            .to_str()
            .unwrap()
            .to_owned();
        let mut text = String::new();
        while text.matches("\n\n").count() < 2 {
            let chunk = resp.chunk().await.unwrap().expect("the stream goes on");
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
        assert_eq!(env.server.gateway.streams().in_flight(), 1);
        drop(resp);
        until_no_streams(&env).await;
        let row = stored_row(&env, &id)
            .await
            .expect("the row of a stream the caller left");
        assert_eq!(last_outcome(&row), "client disconnected", "{path}: {row:?}");
        if path == routes::MESSAGES {
            // message_start's counts: the prompt, and fewer output tokens than
            // the complete reply.
            assert_eq!(row.input_tokens, full_row.input_tokens, "{row:?}");
            assert!(
                row.output_tokens < full_row.output_tokens,
                "{row:?} vs {full_row:?}"
            );
        }
    }
    env.sim.faults().set_stream_event_delay(Duration::ZERO);
    env.stop().await;
}
