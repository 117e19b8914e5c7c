//! GPT on Azure OpenAI through the gateway (issue 18): members and agent
//! runs reach the emulated Foundry resource's Azure OpenAI v1 endpoint from
//! `/v1/chat/completions`, whole, streamed and with tools, with the Entra
//! access token the broker exchanges through the team's FIC — the emulator
//! checks the bearer token, a "Cognitive Services OpenAI User" role
//! assignment and the deployment on every call —; fallback to the direct
//! API only when the team allows it; a missing role named to the caller;
//! and the official `openai` Python SDK through the gateway.

use byollm_api::routes;
use byollm_cloudsim::azure::{COGNITIVE_SERVICES_OPENAI_USER, Deployment, RoleAssignment};
use serde_json::{Value, json};

use crate::azure_side::{self, CLIENT, RESOURCE, TENANT};
use crate::harness::{Env, chat_body};

const ENTRA_OP: &str = "azure:entra.token";
const CHAT_OP: &str = "azure:openai.chat_completions";
const DIRECT_OP: &str = "openai:ChatCompletions";

fn role() -> RoleAssignment {
    azure_side::role(COGNITIVE_SERVICES_OPENAI_USER)
}

/// The team's Azure settings (the other clouds off), with `extra` merged in.
fn settings(env: &Env, direct: bool, allow_outside: bool, models: Value) -> Value {
    json!({"hosts": {
        "aws_bedrock": {"enabled": false, "role_arn": env.role_arn, "region": "us-east-1"},
        "direct_api": {"enabled": direct},
        "azure_foundry": {"enabled": true, "tenant_id": TENANT, "client_id": CLIENT,
                          "resource": format!("{RESOURCE}.openai.azure.com"),
                          "subject_granularity": "team"}},
        "allow_fallback_outside_cloud": allow_outside,
        "models": models})
}

/// An emulator with the team's managed identity, one FIC for the team's
/// subject, deployments `gpt-5` (named like the catalog model, the default)
/// and `prod-gpt41` (of gpt-4.1) on the resource and, when `granted`, the
/// OpenAI role; the team's settings with Azure on and the other hosts off.
async fn gpt_env(granted: bool) -> Env {
    let env = Env::start().await;
    azure_side::identity(&env, &[azure_side::team_subject(&env)], &[]);
    let az = env.sim.azure();
    for (name, model) in [("gpt-5", "gpt-5"), ("prod-gpt41", "gpt-4.1")] {
        az.create_deployment(Deployment {
            resource: RESOURCE.into(),
            name: name.into(),
            model: model.into(),
        })
        .unwrap();
    }
    if granted {
        az.assign_role(role()).unwrap();
    }
    // A PUT is a whole document: the model's entry in full.
    let mut gpt41 = serde_json::to_value(byollm_api::types::ModelHosts::default()).unwrap();
    gpt41["azure_foundry"]["deployment"] = json!("prod-gpt41");
    env.put_settings(settings(&env, false, false, json!({ "gpt-4.1": gpt41 })))
        .await;
    env
}

fn tool_body(model: &str, stream: bool) -> Value {
    json!({"model": model, "stream": stream,
           "messages": [{"role": "user", "content": "/tool get_weather Paris"}],
           "tools": [{"type": "function", "function": {"name": "get_weather",
                      "parameters": {"type": "object", "properties": {}}}}]})
}

#[tokio::test]
async fn members_and_agent_runs_reach_gpt_on_azure_openai() {
    let env = gpt_env(true).await;
    let route = "azure_foundry:gpt-5@acme-ai";
    // A member: whole, streamed, and a tool call.
    let r = env
        .infer(
            routes::CHAT_COMPLETIONS,
            &env.owner_key,
            chat_body("gpt-5", "gpt on azure", false),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("x-byollm-route"), Some(route));
    let v = r.json();
    assert_eq!(v["choices"][0]["message"]["content"], "gpt on azure");
    assert_eq!(
        v["model"], "gpt-5-2025-08-07",
        "Azure's answer passes through"
    );
    let r = env
        .infer(
            routes::CHAT_COMPLETIONS,
            &env.owner_key,
            chat_body("gpt-5", "streamed from azure", true),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("x-byollm-route"), Some(route));
    let text: String = r
        .events()
        .iter()
        .filter(|(_, d)| d != "[DONE]")
        .filter_map(|(_, d)| serde_json::from_str::<Value>(d).ok())
        .filter_map(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(text, "streamed from azure");
    assert!(
        !r.text.contains("\"usage\":{"),
        "usage the caller did not ask for is dropped: {}",
        r.text
    );
    assert!(r.text.trim_end().ends_with("data: [DONE]"), "{}", r.text);
    for stream in [false, true] {
        let r = env
            .infer(
                routes::CHAT_COMPLETIONS,
                &env.owner_key,
                tool_body("gpt-5", stream),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert!(r.text.contains("get_weather"), "{}", r.text);
        assert!(r.text.contains("tool_calls"), "{}", r.text);
    }
    // The model's own deployment setting names the deployment.
    let r = env
        .infer(
            routes::CHAT_COMPLETIONS,
            &env.owner_key,
            chat_body("gpt-4.1", "a named deployment", false),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.header("x-byollm-route"),
        Some("azure_foundry:prod-gpt41@acme-ai")
    );
    assert_eq!(r.json()["model"], "gpt-4.1-2025-04-14");
    // The member's five requests took one Entra exchange.
    assert_eq!(env.sim.call_count(ENTRA_OP), 1);

    // An agent's run, through the same FIC (team granularity).
    let agent = env.create_agent("gpt-builder", None).await;
    let (_run_id, token) = env.start_run(Some(&agent)).await;
    for stream in [false, true] {
        let r = env
            .infer(
                routes::CHAT_COMPLETIONS,
                &token,
                chat_body("gpt-5", "agent run", stream),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.header("x-byollm-route"), Some(route));
        assert!(r.text.contains("agent"), "{}", r.text);
    }
    assert_eq!(env.sim.call_count(ENTRA_OP), 2);
    assert_eq!(env.sim.call_count(CHAT_OP), 7);
    assert_eq!(env.sim.call_count(DIRECT_OP), 0);
    assert_eq!(env.sts_calls(), 0, "AWS untouched");
    // GPT does not speak Anthropic Messages, on Azure or anywhere.
    let r = env
        .infer(
            routes::MESSAGES,
            &env.owner_key,
            crate::harness::messages_body("gpt-5", "x", false),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    // Usage rows name the route, with tokens; the customer's cloud costs no credits.
    let usage = env.usage("").await;
    let reqs = usage["requests"].as_array().unwrap();
    assert_eq!(reqs.len(), 7, "{usage}");
    assert!(
        reqs.iter()
            .all(|r| r["route"].as_str().unwrap().starts_with("azure_foundry:")),
        "{usage}"
    );
    assert!(reqs.iter().all(|r| r["credits"] == 0.0), "{usage}");
    assert!(
        reqs.iter().all(|r| r["output_tokens"].as_u64() > Some(0)),
        "{usage}"
    );
    assert_eq!(usage["buckets"]["inference"].as_f64(), Some(0.0), "{usage}");
    env.stop().await;
}

#[tokio::test]
async fn a_missing_role_is_named_and_falls_back_to_the_direct_api_only_when_allowed() {
    let env = gpt_env(false).await;
    // Kept inside the cloud: the caller learns the role its identity lacks.
    env.put_settings(settings(&env, true, false, json!({})))
        .await;
    let r = env
        .infer(
            routes::CHAT_COMPLETIONS,
            &env.owner_key,
            chat_body("gpt-5", "denied", false),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.text);
    let v = r.json();
    let all = v.to_string();
    assert!(all.contains("PermissionDenied"), "{v}");
    assert!(
        all.contains(r#"the role \"Cognitive Services OpenAI User\""#),
        "{v}"
    );
    assert!(all.contains("allow_fallback_outside_cloud is false"), "{v}");
    assert_eq!(env.sim.call_count(DIRECT_OP), 0, "nothing left the cloud");

    // Allowed out: the direct API serves after Azure's refusal.
    env.put_settings(settings(&env, true, true, json!({})))
        .await;
    let r = env
        .infer(
            routes::CHAT_COMPLETIONS,
            &env.owner_key,
            chat_body("gpt-5", "fell back", false),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("x-byollm-route"), Some("direct_api:gpt-5"));
    assert!(r.header("x-byollm-fallback").is_some());
    assert_eq!(env.sim.call_count(DIRECT_OP), 1);

    // Granted: Azure serves again, and the direct API is not asked.
    env.sim.azure().assign_role(role()).unwrap();
    let r = env
        .infer(
            routes::CHAT_COMPLETIONS,
            &env.owner_key,
            chat_body("gpt-5", "back on azure", true),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.header("x-byollm-route"),
        Some("azure_foundry:gpt-5@acme-ai")
    );
    assert_eq!(env.sim.call_count(DIRECT_OP), 1);
    // An expired Entra token is renewed once and the request served.
    let before = env.sim.call_count(ENTRA_OP);
    env.sim.azure().expire_tokens();
    let r = env
        .infer(
            routes::CHAT_COMPLETIONS,
            &env.owner_key,
            chat_body("gpt-5", "renewed", false),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(env.sim.call_count(ENTRA_OP), before + 1);
    env.stop().await;
}

/// The official `openai` SDK pointed at the gateway, asking for GPT: the
/// gateway serves it from the emulated Azure OpenAI.
const SCRIPT: &str = r#"
import os, openai
base, key = os.environ["BYOLLM_GW"], os.environ["BYOLLM_KEY"]
oc = openai.OpenAI(base_url=base + "/v1", api_key=key, max_retries=0)
done = oc.chat.completions.with_raw_response.create(model="gpt-5",
    messages=[{"role": "user", "content": "hello gpt on azure"}])
assert done.headers["x-byollm-route"] == "azure_foundry:gpt-5@acme-ai", done.headers
done = done.parse()
assert done.choices[0].message.content == "hello gpt on azure", done
assert done.usage.completion_tokens > 0, done.usage
text, usage = "", None
for chunk in oc.chat.completions.create(model="gpt-5", stream=True,
        stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "streamed gpt on azure"}]):
    if chunk.choices:
        text += chunk.choices[0].delta.content or ""
    if chunk.usage:
        usage = chunk.usage
assert text == "streamed gpt on azure", text
assert usage is not None and usage.prompt_tokens > 0, usage
called = oc.chat.completions.create(model="gpt-5",
    messages=[{"role": "user", "content": "/tool get_weather Paris"}],
    tools=[{"type": "function", "function": {"name": "get_weather",
            "parameters": {"type": "object", "properties": {}}}}])
call = called.choices[0].message.tool_calls[0]
assert call.function.name == "get_weather" and "Paris" in call.function.arguments, call
print("openai sdk on azure ok")
"#;

#[tokio::test]
async fn the_openai_python_sdk_reaches_gpt_on_azure_through_the_gateway() {
    if !crate::python_sdks::sdks_or_skip("the openai SDK reaches GPT on Azure") {
        return;
    }
    let env = gpt_env(true).await;
    let stdout = crate::python_sdks::run_python(&env, SCRIPT).await;
    assert!(stdout.contains("openai sdk on azure ok"), "{stdout}");
    assert_eq!(env.sim.call_count(CHAT_OP), 3);
    assert_eq!(env.sim.call_count(ENTRA_OP), 1);
    env.stop().await;
}
