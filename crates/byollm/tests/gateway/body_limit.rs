//! Request size (`[gateway] max_body_bytes`, default 32 MiB): `/v1/*` takes
//! long contexts and big images through to Bedrock and refuses anything larger
//! with 413 in the caller's own error format; `/api/v1/*` stays at 1 MiB.

use byollm_api::routes;
use serde_json::json;

use crate::harness::{Env, Reply};

const MIB: usize = 1024 * 1024;

/// An Anthropic message with a base64 "image" of `size` bytes and a short text
/// (the emulator echoes the text). Written as text, not through `serde_json`:
/// escaping tens of MiB in a debug build costs seconds.
fn image_message(size: usize) -> String {
    format!(
        r#"{{"model": "claude-sonnet-4-6", "max_tokens": 16, "messages": [{{"role": "user", "content": [
        {{"type": "image", "source": {{"type": "base64", "media_type": "image/png", "data": "{}"}}}},
        {{"type": "text", "text": "describe this"}}]}}]}}"#,
        "A".repeat(size)
    )
}

/// An OpenAI chat request whose one message is `words` words of text.
fn long_chat(words: usize) -> String {
    format!(
        r#"{{"model": "claude-sonnet-4-6", "messages": [{{"role": "user", "content": "{}"}}]}}"#,
        "word ".repeat(words)
    )
}

/// POSTs a JSON body given as text.
async fn post(env: &Env, path: &str, body: String) -> Reply {
    let r = env
        .http
        .post(format!("{}{path}", env.base))
        .header("x-api-key", &env.owner_key)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    Reply {
        status: r.status(),
        headers: r.headers().clone(),
        text: r.text().await.unwrap(),
    }
}

/// The start of a reply, for assertion messages.
fn head(r: &Reply) -> String {
    r.text.chars().take(300).collect()
}

#[tokio::test]
async fn bodies_up_to_the_limit_reach_bedrock_and_larger_ones_get_413_in_the_callers_format() {
    let env = Env::start().await;
    for size in [2 * MIB, 20 * MIB] {
        let r = post(&env, routes::MESSAGES, image_message(size)).await;
        assert_eq!(r.status, 200, "{size} bytes: {}", head(&r));
        assert!(
            r.header("x-byollm-route")
                .is_some_and(|route| route.starts_with("aws_bedrock:")),
            "{:?}",
            r.headers
        );
        assert_eq!(r.json()["content"][0]["text"], "describe this");
    }
    // A long context in the OpenAI format (Converse).
    let r = post(&env, routes::CHAT_COMPLETIONS, long_chat(2 * MIB / 5 + 1)).await;
    assert_eq!(r.status, 200, "{}", head(&r));
    assert!(r.json()["usage"]["prompt_tokens"].as_u64().unwrap() > 400_000);
    assert_eq!(env.sim.call_count("bedrock:InvokeModel"), 2);
    assert_eq!(env.sim.call_count("bedrock:Converse"), 1);

    // Over the limit: Anthropic's 413 (`request_too_large`) …
    let r = post(&env, routes::MESSAGES, image_message(33 * MIB)).await;
    assert_eq!(r.status, 413, "{}", head(&r));
    assert_eq!(r.header("content-type"), Some("application/json"));
    let body = r.json();
    assert_eq!(body["type"], "error");
    assert_eq!(body["error"]["type"], "request_too_large");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("33554432 bytes") && message.contains("[gateway] max_body_bytes"),
        "{message}"
    );
    // … and OpenAI's error object.
    let r = post(&env, routes::CHAT_COMPLETIONS, long_chat(33 * MIB / 5 + 1)).await;
    assert_eq!(r.status, 413, "{}", head(&r));
    let body = r.json();
    let error = &body["error"];
    assert_eq!(error["type"], "invalid_request_error");
    assert_eq!(error["code"], "request_too_large");
    assert!(error["param"].is_null());
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("[gateway] max_body_bytes"),
        "{error}"
    );
    assert_eq!(env.sim.call_count("bedrock:InvokeModel"), 2, "nothing sent");
    assert_eq!(env.sim.call_count("bedrock:Converse"), 1, "nothing sent");

    // The API keeps its own 1 MiB limit and error shape.
    let settings = json!({"hosts": {"aws_bedrock": {"enabled": true, "role_arn": env.role_arn,
        "region": "us-east-1"}}, "token_audiences": ["x".repeat(2 * MIB)]});
    let (status, body) = env
        .api(
            reqwest::Method::PUT,
            routes::TEAM_LLM_SETTINGS,
            &env.owner_key,
            Some(settings),
        )
        .await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["error"]["code"], "payload_too_large", "{body}");
    env.stop().await;
}
