//! The direct Anthropic and OpenAI emulators, over raw HTTP, and the control
//! endpoint.

use byollm_cloudsim::{Cloudsim, CloudsimConfig};
use serde_json::{Value, json};

async fn sim() -> Cloudsim {
    Cloudsim::start(CloudsimConfig::default()).await.unwrap()
}

#[tokio::test]
async fn anthropic_messages() {
    let sim = sim().await;
    let http = reqwest::Client::new();
    let url = format!("{}/anthropic/v1/messages", sim.endpoint_url());
    let body = json!({"model": "claude-sonnet-4-6", "max_tokens": 20,
                      "messages": [{"role": "user", "content": "hello direct api"}]});
    let send = |key: Option<&str>, version: Option<&str>, body: &Value| {
        let mut r = http.post(&url).json(body);
        if let Some(k) = key {
            r = r.header("x-api-key", k);
        }
        if let Some(v) = version {
            r = r.header("anthropic-version", v);
        }
        r.send()
    };
    let key = sim.direct_api_key().to_owned();
    let r = send(Some(&key), Some("2023-06-01"), &body).await.unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["content"][0]["text"], "hello direct api");
    assert_eq!(v["usage"], json!({"input_tokens": 3, "output_tokens": 3}));
    assert_eq!(v["model"], "claude-sonnet-4-6");

    let r = send(Some("wrong"), Some("2023-06-01"), &body)
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["type"], "authentication_error");
    let r = send(Some(&key), None, &body).await.unwrap();
    assert_eq!(r.status(), 400);
    let r = send(Some(&key), Some("latest"), &body).await.unwrap();
    assert_eq!(r.status(), 400);
    let mut unknown = body.clone();
    unknown["model"] = json!("claude-nope");
    assert_eq!(
        send(Some(&key), Some("2026-10-21"), &unknown)
            .await
            .unwrap()
            .status(),
        404
    );

    // Streaming: named SSE events in Anthropic's order.
    let mut streaming = body.clone();
    streaming["stream"] = json!(true);
    let r = send(Some(&key), Some("2023-06-01"), &streaming)
        .await
        .unwrap();
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    let text = r.text().await.unwrap();
    let events: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("event: "))
        .collect();
    assert_eq!(
        events,
        [
            "message_start",
            "content_block_start",
            "ping",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    // An overload in the middle of a stream.
    sim.faults().fail_stream_after("anthropic", 3, "529", 1);
    let text = send(Some(&key), Some("2023-06-01"), &streaming)
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.ends_with("event: error\ndata: {\"error\":{\"message\":\"Overloaded\",\"type\":\"overloaded_error\"},\"type\":\"error\"}\n\n"), "{text}");
    sim.faults().fail_next("anthropic:Messages", "429", 1);
    assert_eq!(
        send(Some(&key), Some("2023-06-01"), &body)
            .await
            .unwrap()
            .status(),
        429
    );
    assert_eq!(sim.call_count("anthropic:Messages"), 8);
}

#[tokio::test]
async fn openai_chat_completions() {
    let sim = sim().await;
    let http = reqwest::Client::new();
    let url = format!("{}/openai/v1/chat/completions", sim.endpoint_url());
    let body = json!({"model": "gpt-5", "messages": [
        {"role": "system", "content": "be nice"},
        {"role": "user", "content": "echo this back"}]});
    let r = http
        .post(&url)
        .bearer_auth(sim.direct_api_key())
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["choices"][0]["message"]["content"], "echo this back");
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert_eq!(
        v["usage"],
        json!({"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8})
    );

    let r = http
        .post(&url)
        .bearer_auth("nope")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "invalid_api_key");

    let mut streaming = body.clone();
    streaming["stream"] = json!(true);
    streaming["stream_options"] = json!({"include_usage": true});
    let text = http
        .post(&url)
        .bearer_auth(sim.direct_api_key())
        .json(&streaming)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let datas: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .collect();
    assert_eq!(datas.last(), Some(&"[DONE]"));
    let chunks: Vec<Value> = datas[..datas.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    let content: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(content, "echo this back");
    assert_eq!(chunks.last().unwrap()["usage"]["completion_tokens"], 3);
    // OpenAI models only.
    let mut claude = body.clone();
    claude["model"] = json!("claude-sonnet-4-6");
    assert_eq!(
        http.post(&url)
            .bearer_auth(sim.direct_api_key())
            .json(&claude)
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
}

#[tokio::test]
async fn control_endpoint() {
    let sim = sim().await;
    let http = reqwest::Client::new();
    let base = sim.endpoint_url();
    let r = http
        .post(format!("{base}/_awsim/faults"))
        .json(&json!({"latency": [{"scope": "bedrock", "ms": 5}],
                      "throttle": [{"scope": "sts", "rate_per_second": 1.0, "burst": 3}],
                      "fail": [{"scope": "bedrock:Converse", "error": "ThrottlingException", "remaining": 2}],
                      "disable_models": [{"region": "us-east-1", "model": "anthropic.claude-sonnet-4-6"}],
                      "credential_lifetime_seconds": 60, "jwks_unreachable": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["latency_ms"]["bedrock"], 5);
    assert_eq!(v["fail"][0]["remaining"], 2);
    assert_eq!(v["credential_lifetime_seconds"], 60);
    assert_eq!(v["jwks_unreachable"], true);
    let bad = http
        .post(format!("{base}/_awsim/faults"))
        .json(&json!({"nope": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let counts: Value = http
        .get(format!("{base}/_awsim/counts"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(counts, json!({}));
    http.post(format!("{base}/_awsim/reset"))
        .send()
        .await
        .unwrap();
    assert!(sim.faults().view().fail.is_empty());
    assert_eq!(
        http.get(format!("{base}/_awsim/health"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "ok"
    );
}

#[tokio::test]
async fn openai_tool_calls_and_results() {
    let sim = sim().await;
    let http = reqwest::Client::new();
    let url = format!("{}/openai/v1/chat/completions", sim.endpoint_url());
    let tools = json!([{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]);
    let body = json!({"model": "gpt-5", "tools": tools,
                      "messages": [{"role": "user", "content": "/tool lookup fog"}]});
    let v: Value = http
        .post(&url)
        .bearer_auth(sim.direct_api_key())
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
    let call = &v["choices"][0]["message"]["tool_calls"][0];
    assert_eq!(call["function"]["name"], "lookup");
    assert_eq!(call["function"]["arguments"], "{\"args\":\"fog\"}");
    // The tool's result is echoed next.
    let body = json!({"model": "gpt-5", "tools": tools, "messages": [
        {"role": "user", "content": "/tool lookup fog"},
        {"role": "assistant", "content": null, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": call["id"], "content": "thick fog"}]});
    let v: Value = http
        .post(&url)
        .bearer_auth(sim.direct_api_key())
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["choices"][0]["message"]["content"], "thick fog");
    // Streaming: the call arrives in tool_calls deltas.
    let body = json!({"model": "gpt-5", "tools": tools, "stream": true,
                      "messages": [{"role": "user", "content": "/tool lookup fog"}]});
    let text = http
        .post(&url)
        .bearer_auth(sim.direct_api_key())
        .json(&body)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let args: String = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str::<Value>(d).unwrap())
        .filter_map(|c| {
            c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(args, "{\"args\":\"fog\"}");
    assert!(text.contains("\"finish_reason\":\"tool_calls\""));
}

#[tokio::test]
async fn direct_api_key_near_misses_are_refused() {
    // The key is compared in constant time (over digests, so its length does
    // not show either); timing is not asserted here, only that no near miss
    // gets through on either API.
    let sim = sim().await;
    let http = reqwest::Client::new();
    let key = sim.direct_api_key().to_owned();
    let mut flipped = key.clone().into_bytes();
    flipped[key.len() / 2] ^= 1;
    let flipped = String::from_utf8(flipped).unwrap();
    let near = [
        key[..key.len() - 1].to_owned(),
        format!("{key}x"),
        flipped,
        key.to_uppercase(),
        String::new(),
    ];
    let anthropic = format!("{}/anthropic/v1/messages", sim.endpoint_url());
    let openai = format!("{}/openai/v1/chat/completions", sim.endpoint_url());
    let a_body = json!({"model": "claude-sonnet-4-6", "max_tokens": 5,
                        "messages": [{"role": "user", "content": "hi"}]});
    let o_body = json!({"model": "gpt-5", "messages": [{"role": "user", "content": "hi"}]});
    let status = |r: reqwest::Response| r.status().as_u16();
    for k in near.iter().map(String::as_str).chain([key.as_str()]) {
        let want = if k == key { 200 } else { 401 };
        let a = http
            .post(&anthropic)
            .header("x-api-key", k)
            .header("anthropic-version", "2023-06-01")
            .json(&a_body)
            .send()
            .await
            .unwrap();
        assert_eq!(status(a), want, "x-api-key {k:?}");
        let o = http
            .post(&openai)
            .bearer_auth(k)
            .json(&o_body)
            .send()
            .await
            .unwrap();
        assert_eq!(status(o), want, "bearer {k:?}");
    }
}
