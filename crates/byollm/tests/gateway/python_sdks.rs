//! The official Python `openai` and `anthropic` SDKs, pointed at the gateway,
//! stream a reply and read usage (CI installs them from PyPI).

use serde_json::json;

use crate::harness::{Env, trust_policy};

const SCRIPT: &str = r#"
import os, openai, anthropic
base, key = os.environ["BYOLLM_GW"], os.environ["BYOLLM_KEY"]

oc = openai.OpenAI(base_url=base + "/v1", api_key=key, max_retries=0)
stream = oc.chat.completions.create(
    model="claude-sonnet-4-6",
    messages=[{"role": "user", "content": "hello from the openai sdk"}],
    stream=True, stream_options={"include_usage": True})
text, usage = "", None
for chunk in stream:
    if chunk.choices:
        text += chunk.choices[0].delta.content or ""
    if chunk.usage:
        usage = chunk.usage
assert "hello from the openai sdk" in text, text
assert usage is not None and usage.prompt_tokens > 0 and usage.completion_tokens > 0, usage
done = oc.chat.completions.create(model="claude-sonnet-4-6",
    messages=[{"role": "user", "content": "plain"}])
assert done.usage.completion_tokens > 0 and done.choices[0].message.content

ac = anthropic.Anthropic(base_url=base, api_key=key, max_retries=0)
with ac.messages.stream(model="claude-sonnet-4-6", max_tokens=64,
        messages=[{"role": "user", "content": "hello from the anthropic sdk"}]) as s:
    streamed = "".join(s.text_stream)
    final = s.get_final_message()
assert "hello from the anthropic sdk" in streamed, streamed
assert final.usage.input_tokens > 0 and final.usage.output_tokens > 0, final.usage
print("python sdks ok")
"#;

/// A body over the gateway's 32 MiB limit, as each SDK sees the 413.
const TOO_LARGE: &str = r#"
import os, openai, anthropic
base, key = os.environ["BYOLLM_GW"], os.environ["BYOLLM_KEY"]
big = "A" * (33 * 1024 * 1024)

ac = anthropic.Anthropic(base_url=base, api_key=key, max_retries=0)
try:
    ac.messages.create(model="claude-sonnet-4-6", max_tokens=16, messages=[{"role": "user", "content": [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": big}}]}])
    raise SystemExit("anthropic: a 33 MiB body was accepted")
except anthropic.RequestTooLargeError as e:
    assert e.status_code == 413, e
    assert e.body["error"]["type"] == "request_too_large", e.body
    assert "[gateway] max_body_bytes" in e.body["error"]["message"], e.body

oc = openai.OpenAI(base_url=base + "/v1", api_key=key, max_retries=0)
try:
    oc.chat.completions.create(model="claude-sonnet-4-6", messages=[{"role": "user", "content": big}])
    raise SystemExit("openai: a 33 MiB body was accepted")
except openai.APIStatusError as e:
    assert e.status_code == 413, e
    assert e.type == "invalid_request_error" and e.code == "request_too_large", e.body
    assert e.param is None and "[gateway] max_body_bytes" in e.message, e.body
print("413 ok")
"#;

/// A request the team's role refuses, with the SDKs' default retries on: a
/// permanent refusal is a 4xx they do not retry.
const REFUSED: &str = r#"
import os, openai, anthropic
base, key = os.environ["BYOLLM_GW"], os.environ["BYOLLM_KEY"]
oc = openai.OpenAI(base_url=base + "/v1", api_key=key)
try:
    oc.chat.completions.create(model="claude-sonnet-4-6", messages=[{"role": "user", "content": "hi"}])
    raise SystemExit("openai: a refused role served")
except openai.PermissionDeniedError as e:
    assert e.status_code == 403, e
ac = anthropic.Anthropic(base_url=base, api_key=key)
try:
    ac.messages.create(model="claude-sonnet-4-6", max_tokens=16, messages=[{"role": "user", "content": "hi"}])
    raise SystemExit("anthropic: a refused role served")
except anthropic.PermissionDeniedError as e:
    assert e.status_code == 403, e
print("refused ok")
"#;

/// Runs a script with the SDKs against `env`; its stdout.
pub(crate) async fn run_python(env: &Env, script: &'static str) -> String {
    let base = env.base.clone();
    let key = env.owner_key.clone();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("python3")
            .args(["-c", script])
            .env("BYOLLM_GW", base)
            .env("BYOLLM_KEY", key)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "python failed:\n{stdout}\n{stderr}");
    stdout
}

pub(crate) fn sdks_or_skip(test: &str) -> bool {
    super::tools::present_or_skip(
        test,
        &["python3", "-c", "import openai, anthropic"],
        "pip install openai anthropic",
    )
}

#[tokio::test]
async fn openai_and_anthropic_python_sdks_stream_and_read_usage() {
    if !sdks_or_skip("the Python SDKs stream and read usage") {
        return;
    }
    let env = Env::start().await;
    let stdout = run_python(&env, SCRIPT).await;
    assert!(stdout.contains("python sdks ok"));
    let usage = env.usage("").await;
    let requests = usage["requests"].as_array().unwrap();
    assert_eq!(requests.len(), 3, "{usage}");
    assert!(
        requests
            .iter()
            .all(|r| r["route"].as_str().unwrap().starts_with("aws_bedrock:"))
    );
    env.stop().await;
}

#[tokio::test]
async fn python_sdks_read_an_oversized_body_refusal_as_their_own_413() {
    if !sdks_or_skip("the Python SDKs read a 413") {
        return;
    }
    let env = Env::start().await;
    let stdout = run_python(&env, TOO_LARGE).await;
    assert!(stdout.contains("413 ok"), "{stdout}");
    assert_eq!(env.sim.call_count("bedrock:InvokeModel"), 0);
    assert_eq!(env.sim.call_count("bedrock:Converse"), 0);
    env.stop().await;
}

#[tokio::test]
async fn a_permanent_refusal_is_one_request_for_the_sdks_not_three() {
    if !sdks_or_skip("the Python SDKs do not retry a refused role") {
        return;
    }
    let env = Env::start().await;
    env.sim
        .update_assume_role_policy(
            "byollm-team",
            &trust_policy("scoped_principal:someoneelse/*"),
        )
        .unwrap();
    env.put_settings(json!({"hosts": {"aws_bedrock": {"enabled": true, "role_arn": env.role_arn, "region": "us-east-1"}},
        "allow_fallback_outside_cloud": false}))
    .await;
    let stdout = run_python(&env, REFUSED).await;
    assert!(stdout.contains("refused ok"), "{stdout}");
    // One usage row per SDK call: neither SDK retried (a 5xx would be 3 each).
    let usage = env.usage("").await;
    let requests = usage["requests"].as_array().unwrap();
    assert_eq!(requests.len(), 2, "{usage}");
    env.stop().await;
}
