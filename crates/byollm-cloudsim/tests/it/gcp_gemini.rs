//! Gemini on the emulator's Vertex AI (`:generateContent`,
//! `:streamGenerateContent?alt=sse`) with an access token from its STS, as
//! strict as Claude's `:rawPredict`: IAM on every call, the model a Gemini
//! model of the catalog, Google's error bodies naming the field; and Claude
//! on the emulator's Vertex AI through Anthropic's own `AnthropicVertex`
//! client (gcp-facts §5.2).

use std::process::Command;

use byollm_federation::Exchange as _;
use byollm_federation::gcp::PoolTarget;
use secrecy::ExposeSecret as _;
use serde_json::{Value, json};

use crate::common::ALICE;
use crate::gcp::{AUD, Gcp};

const PROJECT: &str = "acme-ml-prod";

fn url(g: &Gcp, location: &str, publisher: &str, model: &str, verb: &str) -> String {
    format!(
        "{}/v1/projects/{PROJECT}/locations/{location}/publishers/{publisher}/models/{model}:{verb}",
        g.w.sim.endpoint_url()
    )
}

async fn post(g: &Gcp, url: &str, bearer: &str, body: &Value) -> (u16, String) {
    let r = g
        .http
        .post(url)
        .bearer_auth(bearer)
        .json(body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

fn error(text: &str) -> (String, String) {
    let v: Value = serde_json::from_str(text).unwrap_or_else(|_| panic!("{text}"));
    (
        v["error"]["status"].as_str().unwrap_or_default().to_owned(),
        v["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    )
}

async fn bearer(g: &Gcp) -> String {
    let target = PoolTarget {
        audience: AUD.into(),
        service_account: None,
    };
    let t = g.sts.exchange(&g.token(ALICE), &target).await.unwrap();
    t.token.expose_secret().to_owned()
}

#[tokio::test]
async fn gemini_answers_whole_streamed_and_with_function_calls() {
    let g = Gcp::new().await;
    let token = bearer(&g).await;
    let body = json!({"contents": [{"role": "user", "parts": [{"text": "hello gemini"}]}],
        "systemInstruction": {"parts": [{"text": "be brief"}]},
        "generationConfig": {"maxOutputTokens": 64, "temperature": 0.2}});
    let generate = url(&g, "global", "google", "gemini-2.5-pro", "generateContent");
    let (s, text) = post(&g, &generate, &token, &body).await;
    assert_eq!(s, 200, "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    let c = &v["candidates"][0];
    assert_eq!(c["content"]["role"], "model");
    assert_eq!(c["content"]["parts"][0]["text"], "hello gemini");
    assert_eq!(c["finishReason"], "STOP");
    assert_eq!(v["usageMetadata"]["promptTokenCount"], 4);
    assert_eq!(v["usageMetadata"]["candidatesTokenCount"], 2);
    assert_eq!(v["usageMetadata"]["totalTokenCount"], 6);
    assert_eq!(v["modelVersion"], "gemini-2.5-pro");

    // Streamed as SSE: one chunk per word, the last with the finish and usage.
    let stream = format!(
        "{}?alt=sse",
        url(
            &g,
            "us-central1",
            "google",
            "gemini-2.5-flash",
            "streamGenerateContent"
        )
    );
    let (s, text) = post(&g, &stream, &token, &body).await;
    assert_eq!(s, 200, "{text}");
    let chunks: Vec<Value> = text
        .split("\r\n\r\n")
        .filter_map(|f| f.strip_prefix("data: "))
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    assert_eq!(chunks.len(), 2, "{text}");
    let words: String = chunks
        .iter()
        .map(|c| {
            c["candidates"][0]["content"]["parts"][0]["text"]
                .as_str()
                .unwrap()
        })
        .collect();
    assert_eq!(words, "hello gemini");
    assert!(chunks[0]["candidates"][0].get("finishReason").is_none());
    assert_eq!(chunks[1]["candidates"][0]["finishReason"], "STOP");
    assert_eq!(chunks[1]["usageMetadata"]["candidatesTokenCount"], 2);
    // Without alt=sse Google streams one JSON array.
    let (s, text) = post(
        &g,
        &url(
            &g,
            "global",
            "google",
            "gemini-2.5-pro",
            "streamGenerateContent",
        ),
        &token,
        &body,
    )
    .await;
    assert_eq!(s, 200, "{text}");
    assert_eq!(
        serde_json::from_str::<Value>(&text)
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // Declared functions: the model calls one, with Gemini's finish reason.
    let tools = json!({"contents": [{"role": "user", "parts": [{"text": "/tool lookup weather"}]}],
        "tools": [{"functionDeclarations": [{"name": "lookup", "description": "look up",
            "parameters": {"type": "object", "properties": {"args": {"type": "string"}}}}]}],
        "toolConfig": {"functionCallingConfig": {"mode": "AUTO"}}});
    let (s, text) = post(&g, &generate, &token, &tools).await;
    assert_eq!(s, 200, "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    let call = &v["candidates"][0]["content"]["parts"][0]["functionCall"];
    assert_eq!(call["name"], "lookup");
    assert_eq!(call["args"], json!({"args": "weather"}));
    assert_eq!(v["candidates"][0]["finishReason"], "STOP");
    // ... and reads the function's answer in the next turn.
    let answer = json!({"contents": [
        {"role": "user", "parts": [{"text": "/tool lookup weather"}]},
        {"role": "model", "parts": [{"functionCall": {"name": "lookup", "args": {"args": "weather"}}}]},
        {"role": "user", "parts": [{"functionResponse": {"name": "lookup", "response": {"output": "cold"}}}]}],
        "tools": tools["tools"]});
    let (s, text) = post(&g, &generate, &token, &answer).await;
    assert_eq!(s, 200, "{text}");
    assert_eq!(g.w.sim.call_count("gcp:vertex.generateContent"), 3);
    assert_eq!(g.w.sim.call_count("gcp:vertex.streamGenerateContent"), 2);
}

#[tokio::test]
async fn gemini_is_as_strict_as_claude() {
    let g = Gcp::new().await;
    let token = bearer(&g).await;
    let generate = url(&g, "global", "google", "gemini-2.5-pro", "generateContent");
    let ok = json!({"contents": [{"role": "user", "parts": [{"text": "x"}]}]});
    // No token, or not one of ours: 401.
    let (s, text) = post(&g, &generate, "ya29.forged", &ok).await;
    assert_eq!(
        (s, error(&text).0.as_str()),
        (401, "UNAUTHENTICATED"),
        "{text}"
    );
    // Not a Gemini model of the catalog, a Claude model under Google's
    // publisher, a location that does not serve it: 404.
    for u in [
        url(
            &g,
            "global",
            "google",
            "gemini-0-unknown",
            "generateContent",
        ),
        url(
            &g,
            "global",
            "google",
            "claude-sonnet-4-6",
            "generateContent",
        ),
        url(
            &g,
            "southamerica-east1",
            "google",
            "gemini-2.5-pro",
            "generateContent",
        ),
        url(&g, "global", "anthropic", "gemini-2.5-pro", "rawPredict"),
    ] {
        let (s, text) = post(&g, &u, &token, &ok).await;
        assert_eq!(s, 404, "{u}: {text}");
        assert_eq!(error(&text).0, "NOT_FOUND");
    }
    // Without the IAM binding: 403, before the body is read.
    g.w.sim
        .gcp()
        .remove_binding(&byollm_cloudsim::gcp::Binding {
            resource: format!("projects/{PROJECT}"),
            role: byollm_cloudsim::gcp::AIPLATFORM_USER.into(),
            member: format!("principalSet:{}/attribute.team/team1", crate::gcp::POOL),
        });
    let (s, text) = post(&g, &generate, &token, &json!({"bogus": 1})).await;
    assert_eq!(s, 403, "{text}");
    let (status, message) = error(&text);
    assert_eq!(status, "PERMISSION_DENIED");
    assert!(
        message.contains("aiplatform.endpoints.predict")
            && message.contains("publishers/google/models/gemini-2.5-pro"),
        "{message}"
    );
    g.w.sim.gcp().add_binding(byollm_cloudsim::gcp::Binding {
        resource: format!("projects/{PROJECT}"),
        role: byollm_cloudsim::gcp::AIPLATFORM_USER.into(),
        member: format!("principalSet:{}/attribute.team/team1", crate::gcp::POOL),
    });
    // A bad body: 400 INVALID_ARGUMENT naming the field.
    for (bad, field) in [
        (json!({"contents": [], "messages": []}), "\"messages\""),
        (json!({"contents": []}), "contents"),
        (
            json!({"contents": [{"role": "assistant", "parts": [{"text": "x"}]}]}),
            "contents[0].role",
        ),
        (
            json!({"contents": [{"role": "user", "parts": [{"text": "x"}]}],
                   "generationConfig": {"maxOutputTokens": -1}}),
            "max_output_tokens",
        ),
    ] {
        let (s, text) = post(&g, &generate, &token, &bad).await;
        assert_eq!(s, 400, "{bad}: {text}");
        let (status, message) = error(&text);
        assert_eq!(status, "INVALID_ARGUMENT");
        assert!(message.contains(field), "{field}: {message}");
    }
    // Quota and a model not enabled, through the fault knobs.
    g.w.sim
        .faults()
        .fail_next("gcp:vertex.generateContent", "RESOURCE_EXHAUSTED", 1);
    let (s, text) = post(&g, &generate, &token, &ok).await;
    assert_eq!(s, 429, "{text}");
    let (status, message) = error(&text);
    assert_eq!(status, "RESOURCE_EXHAUSTED");
    assert!(message.contains("base model: gemini-2.5-pro"), "{message}");
    g.w.sim
        .faults()
        .fail_next("gcp:vertex.generateContent", "FAILED_PRECONDITION", 1);
    let (s, text) = post(&g, &generate, &token, &ok).await;
    assert_eq!(
        (s, error(&text).0.as_str()),
        (400, "FAILED_PRECONDITION"),
        "{text}"
    );
    assert_eq!(post(&g, &generate, &token, &ok).await.0, 200);
}

const ANTHROPIC_VERTEX: &str = r#"
import json, sys
import anthropic
from anthropic import AnthropicVertex
a = json.loads(sys.argv[1])
client = AnthropicVertex(region=a["region"], project_id=a["project"],
                         access_token=a["token"], base_url=a["base_url"], max_retries=0)
out = {}
m = client.messages.create(model=a["model"], max_tokens=64,
                           messages=[{"role": "user", "content": "hello from AnthropicVertex"}])
out["text"] = m.content[0].text
out["model"] = m.model
with client.messages.stream(model=a["model"], max_tokens=64,
                            messages=[{"role": "user", "content": "streamed words"}]) as s:
    out["stream"] = "".join(s.text_stream)
m = client.messages.create(model=a["model"], max_tokens=64,
                           tools=[{"name": "lookup", "description": "look up", "input_schema": {"type": "object"}}],
                           messages=[{"role": "user", "content": "/tool lookup weather"}])
out["stop_reason"] = m.stop_reason
out["tool"] = m.content[0].name
try:
    client.messages.create(model="claude-unknown", max_tokens=8,
                           messages=[{"role": "user", "content": "x"}])
except anthropic.NotFoundError as e:
    out["not_found"] = e.status_code
print(json.dumps(out))
"#;

/// Runs Anthropic's `AnthropicVertex` client with `args`; its JSON summary.
pub(crate) fn anthropic_vertex(args: &Value) -> Value {
    let out = Command::new("python3")
        .args(["-c", ANTHROPIC_VERTEX, &args.to_string()])
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON line")
}

/// Anthropic's Vertex client and google-auth (its dependency) are installed.
pub(crate) fn have_anthropic_vertex() -> bool {
    Command::new("python3")
        .args([
            "-c",
            "import google.auth; from anthropic import AnthropicVertex",
        ])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[tokio::test]
async fn anthropic_vertex_client_reaches_claude_on_the_emulator() {
    if !byollm_core::testing::require(
        "anthropic_vertex_client_reaches_claude_on_the_emulator",
        "Anthropic's Vertex client (pip install 'anthropic[vertex]')",
        have_anthropic_vertex(),
    ) {
        return;
    }
    let g = Gcp::new().await;
    let token = bearer(&g).await;
    let args = json!({"region": "us-east5", "project": PROJECT, "token": token,
        "base_url": format!("{}/v1", g.w.sim.endpoint_url()),
        "model": "claude-sonnet-4-5@20250929"});
    let out = tokio::task::spawn_blocking(move || anthropic_vertex(&args))
        .await
        .unwrap();
    assert_eq!(out["text"], "hello from AnthropicVertex", "{out}");
    assert_eq!(out["model"], "claude-sonnet-4-5@20250929");
    assert_eq!(out["stream"], "streamed words", "{out}");
    assert_eq!(out["stop_reason"], "tool_use", "{out}");
    assert_eq!(out["tool"], "lookup");
    assert_eq!(out["not_found"], 404, "{out}");
    // The client called the URLs Google serves: rawPredict and streamRawPredict.
    assert_eq!(g.w.sim.call_count("gcp:vertex.rawPredict"), 3);
    assert_eq!(g.w.sim.call_count("gcp:vertex.streamRawPredict"), 1);
}
