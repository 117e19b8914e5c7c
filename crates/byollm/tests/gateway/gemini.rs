//! Gemini on Vertex AI through the gateway (issue 17): Chat Completions
//! callers (the official `openai` Python SDK among them) reach the emulated
//! `generateContent` / `streamGenerateContent?alt=sse` with the team's
//! brokered access token, translated both ways (tools included); usage rows
//! name `gcp_vertex:MODEL@LOCATION` at 0 inference credits, for members and
//! agent runs alike; a Gemini model has no route outside Vertex AI, and the
//! errors say so.

use byollm_api::routes;
use serde_json::{Value, json};

use crate::harness::{Env, chat_body, messages_body};
use crate::python_sdks::{run_python, sdks_or_skip};
use crate::vertex::{attempts, vertex_env};

const GENERATE: &str = "gcp:vertex.generateContent";
const STREAM: &str = "gcp:vertex.streamGenerateContent";
const ROUTE: &str = "gcp_vertex:gemini-2.5-pro@global";

async fn gemini_env() -> Env {
    vertex_env(
        None,
        false,
        json!({"hosts": {"direct_api": {"enabled": false}}}),
    )
    .await
}

fn chunks(r: &crate::harness::Reply) -> Vec<Value> {
    r.events()
        .iter()
        .filter_map(|(_, d)| serde_json::from_str::<Value>(d).ok())
        .collect()
}

#[tokio::test]
async fn chat_completions_reach_gemini_whole_streamed_and_with_tools() {
    let env = gemini_env().await;
    // Whole.
    let r = env
        .infer(
            routes::CHAT_COMPLETIONS,
            &env.owner_key,
            chat_body("gemini-2.5-pro", "hello gemini", false),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("x-byollm-route"), Some(ROUTE));
    let v = r.json();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["model"], "gemini-2.5-pro");
    assert_eq!(v["choices"][0]["message"]["role"], "assistant");
    assert_eq!(v["choices"][0]["message"]["content"], "hello gemini");
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    // "be brief" and "hello gemini": 4 words in, 2 out.
    assert_eq!(v["usage"]["prompt_tokens"], 4, "{v}");
    assert_eq!(v["usage"]["completion_tokens"], 2, "{v}");
    // Cut at max_tokens: `length`.
    let mut body = chat_body("gemini-2.5-pro", "one two three", false);
    body["max_tokens"] = json!(2);
    let v = env
        .infer(routes::CHAT_COMPLETIONS, &env.owner_key, body)
        .await
        .json();
    assert_eq!(v["choices"][0]["finish_reason"], "length", "{v}");
    assert_eq!(v["choices"][0]["message"]["content"], "one two");
    // Streamed, with usage asked for.
    let mut body = chat_body("gemini-2.5-pro", "streamed gemini words", true);
    body["stream_options"] = json!({"include_usage": true});
    let r = env
        .infer(routes::CHAT_COMPLETIONS, &env.owner_key, body)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("x-byollm-route"), Some(ROUTE));
    assert_eq!(r.events().last().unwrap().1, "[DONE]");
    let cs = chunks(&r);
    assert!(cs.iter().all(|c| c["object"] == "chat.completion.chunk"));
    assert_eq!(cs[0]["choices"][0]["delta"]["role"], "assistant");
    let text: String = cs
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, "streamed gemini words");
    assert!(
        cs.iter()
            .any(|c| c["choices"][0]["finish_reason"] == "stop")
    );
    assert_eq!(cs.last().unwrap()["usage"]["completion_tokens"], 3);
    // Tools: Gemini's function call comes back as an OpenAI tool call ...
    let tools = json!([{"type": "function", "function": {"name": "lookup",
        "description": "look up", "parameters": {"type": "object",
        "properties": {"args": {"type": "string"}}}}}]);
    let r = env
        .infer(
            routes::CHAT_COMPLETIONS,
            &env.owner_key,
            json!({"model": "gemini-2.5-pro", "tools": tools,
                   "messages": [{"role": "user", "content": "/tool lookup weather"}]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let v = r.json();
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls", "{v}");
    let call = v["choices"][0]["message"]["tool_calls"][0].clone();
    assert_eq!(call["type"], "function");
    assert_eq!(call["function"]["name"], "lookup");
    assert_eq!(call["function"]["arguments"], "{\"args\":\"weather\"}");
    let id = call["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("call_"), "{id}");
    // ... streamed too ...
    let r = env
        .infer(
            routes::CHAT_COMPLETIONS,
            &env.owner_key,
            json!({"model": "gemini-2.5-pro", "tools": tools, "stream": true,
                   "messages": [{"role": "user", "content": "/tool lookup weather"}]}),
        )
        .await;
    let cs = chunks(&r);
    assert!(
        cs.iter()
            .any(|c| c["choices"][0]["delta"]["tool_calls"][0]["function"]["name"] == "lookup"),
        "{}",
        r.text
    );
    assert!(
        cs.iter()
            .any(|c| c["choices"][0]["finish_reason"] == "tool_calls")
    );
    // ... and the tool's result goes back as a functionResponse (the emulator
    // refuses one without the function's name).
    let r = env
        .infer(
            routes::CHAT_COMPLETIONS,
            &env.owner_key,
            json!({"model": "gemini-2.5-pro", "tools": tools, "messages": [
                {"role": "user", "content": "/tool lookup weather"},
                {"role": "assistant", "content": null, "tool_calls": [call]},
                {"role": "tool", "tool_call_id": id, "content": "cold"},
                {"role": "user", "content": "thanks"}]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["choices"][0]["message"]["content"], "thanks");
    assert_eq!(env.sim.call_count(GENERATE), 4);
    assert_eq!(env.sim.call_count(STREAM), 2);
    assert_eq!(env.sim.call_count("gcp:sts.token"), 1, "one exchange");
    // Usage rows: the route, and no inference credits on the customer's cloud.
    let usage = env.usage("").await;
    let reqs = usage["requests"].as_array().unwrap();
    assert_eq!(reqs.len(), 6, "{usage}");
    assert!(reqs.iter().all(|r| r["route"] == ROUTE), "{usage}");
    assert!(reqs.iter().all(|r| r["credits"] == 0.0), "{usage}");
    assert!(reqs[0]["input_tokens"].as_i64().unwrap() > 0, "{usage}");
    assert_eq!(usage["buckets"]["inference"].as_f64(), Some(0.0), "{usage}");
    env.stop().await;
}

#[tokio::test]
async fn gemini_is_refused_on_messages_and_has_no_route_outside_vertex() {
    let env = gemini_env().await;
    // The Anthropic Messages API does not speak Gemini: a 400 naming the route.
    let r = env
        .infer(
            routes::MESSAGES,
            &env.owner_key,
            messages_body("gemini-2.5-pro", "x", false),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    let msg = r.json()["error"]["message"].as_str().unwrap().to_owned();
    assert!(msg.contains("POST /v1/chat/completions"), "{msg}");
    assert_eq!(env.sim.call_count(GENERATE), 0);
    // A bad body is the caller's, named by Google's field: no fallback.
    let mut body = chat_body("gemini-2.5-pro", "x", false);
    body["max_tokens"] = json!(0);
    let r = env
        .infer(routes::CHAT_COMPLETIONS, &env.owner_key, body)
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    // Quota on both Gemini models (the next by rank is tried): 503 with
    // Retry-After, and the error says Gemini has nowhere else to go.
    env.sim
        .faults()
        .fail_next(GENERATE, "RESOURCE_EXHAUSTED", 2);
    let r = env
        .owner_asks(routes::CHAT_COMPLETIONS, "gemini-2.5-pro", false)
        .await;
    assert_eq!(r.status, 503, "{}", r.text);
    assert!(r.header("retry-after").is_some());
    let v = r.json();
    let a = attempts(&v);
    assert!(
        a[0].starts_with(&format!(
            "{ROUTE} → throttled: RESOURCE_EXHAUSTED: Quota exceeded"
        )),
        "{a:?}"
    );
    assert!(
        a[1].starts_with("gcp_vertex:gemini-2.5-flash@global → throttled"),
        "{a:?}"
    );
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(msg.contains("has no direct-API route"), "{msg}");
    // One quota error: the next Gemini model serves, said in the header.
    env.sim
        .faults()
        .fail_next(GENERATE, "RESOURCE_EXHAUSTED", 1);
    let r = env
        .owner_asks(routes::CHAT_COMPLETIONS, "gemini-2.5-pro", false)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.header("x-byollm-route"),
        Some("gcp_vertex:gemini-2.5-flash@global")
    );
    assert!(
        r.header("x-byollm-fallback")
            .unwrap()
            .contains("RESOURCE_EXHAUSTED")
    );
    // Vertex AI off (and no other host): no route at all, and the error
    // names the only host that could serve it.
    env.put_settings(json!({"hosts": {"gcp_vertex": {"enabled": false},
        "direct_api": {"enabled": false}}}))
        .await;
    let r = env
        .owner_asks(routes::CHAT_COMPLETIONS, "gemini-2.5-pro", false)
        .await;
    assert_eq!(r.status, 422, "{}", r.text);
    let msg = r.json()["error"]["message"].as_str().unwrap().to_owned();
    assert!(msg.contains("only Vertex AI serves it"), "{msg}");
    env.stop().await;
}

#[tokio::test]
async fn an_agent_run_on_gemini_records_the_vertex_route_at_no_credits() {
    let env = gemini_env().await;
    let agent = env.create_agent("gemini-runner", None).await;
    let (run, token) = env.start_run(Some(&agent)).await;
    for stream in [false, true] {
        let r = env
            .infer(
                routes::CHAT_COMPLETIONS,
                &token,
                chat_body("gemini-2.5-flash", "run words", stream),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(
            r.header("x-byollm-route"),
            Some("gcp_vertex:gemini-2.5-flash@global")
        );
    }
    let usage = env.usage(&format!("?run_id={run}")).await;
    let reqs = usage["requests"].as_array().unwrap();
    assert_eq!(reqs.len(), 2, "{usage}");
    assert!(
        reqs.iter()
            .all(|r| r["route"] == "gcp_vertex:gemini-2.5-flash@global"
                && r["credits"] == 0.0
                && r["principal"] == format!("service_account:{agent}")),
        "{usage}"
    );
    assert_eq!(usage["buckets"]["inference"].as_f64(), Some(0.0), "{usage}");
    env.stop().await;
}

const OPENAI_GEMINI: &str = r#"
import os, json, openai
base, key = os.environ["BYOLLM_GW"], os.environ["BYOLLM_KEY"]
oc = openai.OpenAI(base_url=base + "/v1", api_key=key, max_retries=0)
done = oc.chat.completions.create(model="gemini-2.5-pro",
    messages=[{"role": "user", "content": "hello from the openai sdk"}])
assert done.choices[0].message.content == "hello from the openai sdk", done
assert done.usage.prompt_tokens > 0 and done.usage.completion_tokens > 0, done.usage
text, usage = "", None
for chunk in oc.chat.completions.create(model="gemini-2.5-pro", stream=True,
        stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "streamed by gemini"}]):
    if chunk.choices:
        text += chunk.choices[0].delta.content or ""
    if chunk.usage:
        usage = chunk.usage
assert text == "streamed by gemini", text
assert usage is not None and usage.completion_tokens == 3, usage
tools = [{"type": "function", "function": {"name": "lookup", "description": "look up",
          "parameters": {"type": "object", "properties": {"args": {"type": "string"}}}}}]
msgs = [{"role": "user", "content": "/tool lookup weather"}]
called = oc.chat.completions.create(model="gemini-2.5-pro", tools=tools, messages=msgs)
choice = called.choices[0]
assert choice.finish_reason == "tool_calls", choice
call = choice.message.tool_calls[0]
assert call.function.name == "lookup" and json.loads(call.function.arguments) == {"args": "weather"}, call
msgs += [choice.message.model_dump(exclude_none=True),
         {"role": "tool", "tool_call_id": call.id, "content": "cold"},
         {"role": "user", "content": "and tomorrow"}]
after = oc.chat.completions.create(model="gemini-2.5-pro", tools=tools, messages=msgs)
assert after.choices[0].message.content == "and tomorrow", after
print("openai sdk on gemini ok")
"#;

#[tokio::test]
async fn the_openai_python_sdk_talks_to_gemini_through_the_gateway() {
    if !sdks_or_skip("the openai SDK talks to Gemini on Vertex AI") {
        return;
    }
    let env = gemini_env().await;
    let stdout = run_python(&env, OPENAI_GEMINI).await;
    assert!(stdout.contains("openai sdk on gemini ok"), "{stdout}");
    assert_eq!(env.sim.call_count(GENERATE), 3);
    assert_eq!(env.sim.call_count(STREAM), 1);
    let usage = env.usage("").await;
    let reqs = usage["requests"].as_array().unwrap();
    assert_eq!(reqs.len(), 4, "{usage}");
    assert!(reqs.iter().all(|r| r["route"] == ROUTE), "{usage}");
    env.stop().await;
}
