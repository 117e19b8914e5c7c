//! Azure OpenAI on the emulator (`POST /_azure/{resource}/openai/v1/chat/completions`
//! and the classic `…/openai/deployments/{deployment}/chat/completions`):
//! the Entra bearer token and an OpenAI role assignment checked on every
//! call, deployments, Azure's error bodies, and OpenAI's Chat Completions
//! answers, whole, streamed and with tools — through raw HTTP and through
//! the official Python `openai` client (`AzureOpenAI` with
//! `azure_ad_token_provider`, and `OpenAI` on the v1 base with a callable
//! `api_key`), which posts the client assertion to the emulator's Entra
//! itself (azure-facts §5.4: azure-identity insists on https).

use byollm_cloudsim::azure::{
    AZURE_AI_USER, COGNITIVE_SERVICES_OPENAI_USER, Deployment, RoleAssignment,
};
use byollm_federation::Exchange as _;
use secrecy::ExposeSecret as _;
use serde_json::{Value, json};

use crate::azure::{Azure, CLIENT, TEAM};

const RESOURCE: &str = "acme-ai";
const OP: &str = "azure:openai.chat_completions";

fn assignment(role: &str) -> RoleAssignment {
    RoleAssignment {
        client_id: CLIENT.into(),
        role: role.into(),
        resource: RESOURCE.into(),
    }
}

async fn post(az: &Azure, path: &str, bearer: Option<&str>, body: &Value) -> reqwest::Response {
    let url = format!(
        "{}/_azure/{RESOURCE}/openai/{path}",
        az.w.sim.endpoint_url()
    );
    let mut req = reqwest::Client::new().post(url).json(body);
    if let Some(b) = bearer {
        req = req.bearer_auth(b);
    }
    req.send().await.unwrap()
}

async fn bearer(az: &Azure) -> String {
    let t = az
        .entra
        .exchange(&az.token(TEAM), &Azure::target())
        .await
        .unwrap();
    t.token.expose_secret().to_owned()
}

const V1: &str = "v1/chat/completions";
const CLASSIC: &str = "deployments/prod-gpt/chat/completions?api-version=2024-10-21";

#[tokio::test]
async fn azure_openai_checks_the_token_the_role_and_the_deployment() {
    let az = Azure::new(&[TEAM]).await;
    let bearer = bearer(&az).await;
    let sim = az.w.sim.azure();
    let body = json!({"model": "prod-gpt", "messages": [{"role": "user", "content": "hello"}]});

    // No token, an unknown token: Azure's 401, on both paths.
    for path in [V1, CLASSIC] {
        for b in [None, Some("not-a-token")] {
            let r = post(&az, path, b, &body).await;
            assert_eq!(r.status().as_u16(), 401, "{path}");
            let v: Value = r.json().await.unwrap();
            assert_eq!(v["error"]["code"], "401");
        }
    }
    // A valid token with no role, with Foundry's role, with the role on
    // another resource: PermissionDenied (401) naming the principal.
    sim.assign_role(assignment(AZURE_AI_USER)).unwrap();
    sim.assign_role(RoleAssignment {
        resource: "other-ai".into(),
        ..assignment(COGNITIVE_SERVICES_OPENAI_USER)
    })
    .unwrap();
    for path in [V1, CLASSIC] {
        let r = post(&az, path, Some(&bearer), &body).await;
        assert_eq!(r.status().as_u16(), 401, "{path}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"]["code"], "PermissionDenied", "{v}");
        let msg = v["error"]["message"].as_str().unwrap();
        assert!(msg.contains(CLIENT) && msg.contains("OpenAI/deployments/chat/completions"));
    }
    // Each of the three roles admits; the deployment does not exist yet.
    for role in [
        "Cognitive Services OpenAI User",
        "Cognitive Services OpenAI Contributor",
        "Cognitive Services User",
    ] {
        sim.assign_role(assignment(role)).unwrap();
        for path in [V1, CLASSIC] {
            let r = post(&az, path, Some(&bearer), &body).await;
            assert_eq!(r.status().as_u16(), 404, "{role} {path}");
            let v: Value = r.json().await.unwrap();
            assert_eq!(v["error"]["code"], "DeploymentNotFound", "{v}");
        }
        sim.remove_role(&assignment(role));
    }
    sim.assign_role(assignment(COGNITIVE_SERVICES_OPENAI_USER))
        .unwrap();

    // Deployments through the control route; bad ones name the field.
    let control = |d: Value| {
        let url = format!("{}/_awsim/azure/deployments", az.w.sim.endpoint_url());
        async move {
            let r = reqwest::Client::new()
                .post(url)
                .json(&d)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    let (s, t) =
        control(json!({"resource": RESOURCE, "name": "prod-gpt", "model": "claude-sonnet-4-6"}))
            .await;
    assert_eq!(s, 400, "{t}");
    assert!(t.contains("model:"), "{t}");
    let (s, t) = control(json!({"resource": RESOURCE, "name": "a/b", "model": "gpt-4.1"})).await;
    assert_eq!(s, 400, "{t}");
    assert!(t.contains("name:"), "{t}");
    let (s, t) =
        control(json!({"resource": RESOURCE, "name": "prod-gpt", "model": "gpt-4.1"})).await;
    assert_eq!(s, 200, "{t}");

    // Served: OpenAI's answer, naming the deployed model as Azure does.
    for path in [V1, CLASSIC] {
        let r = post(&az, path, Some(&bearer), &body).await;
        assert_eq!(r.status().as_u16(), 200, "{path}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["object"], "chat.completion");
        assert_eq!(v["model"], "gpt-4.1-2025-04-14");
        assert_eq!(v["choices"][0]["message"]["content"], "hello");
        assert!(v["usage"]["prompt_tokens"].as_u64().unwrap() > 0);
    }
    // The classic path needs api-version; v1 needs a model.
    let r = post(
        &az,
        "deployments/prod-gpt/chat/completions",
        Some(&bearer),
        &body,
    )
    .await;
    assert_eq!(r.status().as_u16(), 404);
    assert!(r.text().await.unwrap().contains("api-version"));
    let r = post(
        &az,
        V1,
        Some(&bearer),
        &json!({"messages": body["messages"]}),
    )
    .await;
    assert_eq!(r.status().as_u16(), 400);
    assert!(r.text().await.unwrap().contains("model"));

    // Streamed, with usage: OpenAI's chunks ending [DONE].
    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    streamed["stream_options"] = json!({"include_usage": true});
    let r = post(&az, V1, Some(&bearer), &streamed).await;
    assert_eq!(r.status().as_u16(), 200);
    let text = r.text().await.unwrap();
    assert!(
        text.contains("\"object\":\"chat.completion.chunk\""),
        "{text}"
    );
    assert!(text.contains("\"prompt_tokens\""), "{text}");
    assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");

    // Tools: a call the caller asked for comes back as tool_calls.
    let tools = json!({"model": "prod-gpt",
        "messages": [{"role": "user", "content": "/tool get_weather Paris"}],
        "tools": [{"type": "function", "function": {"name": "get_weather",
                   "parameters": {"type": "object", "properties": {}}}}]});
    let r = post(&az, CLASSIC, Some(&bearer), &tools).await;
    assert_eq!(r.status().as_u16(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls", "{v}");
    assert_eq!(
        v["choices"][0]["message"]["tool_calls"][0]["function"]["name"],
        "get_weather"
    );

    // A deleted deployment, an expired token.
    sim.remove_deployment(RESOURCE, "prod-gpt");
    let r = post(&az, V1, Some(&bearer), &body).await;
    assert_eq!(r.status().as_u16(), 404);
    sim.expire_tokens();
    let r = post(&az, V1, Some(&bearer), &body).await;
    assert_eq!(r.status().as_u16(), 401);
    assert!(az.w.sim.call_count(OP) > 10);
}

/// The official `openai` Python client against the emulator: the script
/// posts the client assertion to the emulator's Entra itself and hands the
/// access token to each client through a callable.
const SCRIPT: &str = r#"
import openai

az = openai.AzureOpenAI(azure_endpoint=f"{sim}/_azure/acme-ai", api_version="2024-10-21",
                        azure_ad_token_provider=token, max_retries=0)
done = az.chat.completions.create(model="prod-gpt",
    messages=[{"role": "user", "content": "hello azure"}])
assert done.choices[0].message.content == "hello azure", done
assert done.model == "gpt-5-2025-08-07", done.model
text, usage = "", None
for chunk in az.chat.completions.create(model="prod-gpt", stream=True,
        stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "streamed azure"}]):
    if chunk.choices:
        text += chunk.choices[0].delta.content or ""
    if chunk.usage:
        usage = chunk.usage
assert "streamed azure" in text, text
assert usage is not None and usage.completion_tokens > 0, usage
called = az.chat.completions.create(model="prod-gpt",
    messages=[{"role": "user", "content": "/tool get_weather Paris"}],
    tools=[{"type": "function", "function": {"name": "get_weather",
            "parameters": {"type": "object", "properties": {}}}}])
assert called.choices[0].message.tool_calls[0].function.name == "get_weather", called

v1 = openai.OpenAI(base_url=f"{sim}/_azure/acme-ai/openai/v1/", api_key=token, max_retries=0)
done = v1.chat.completions.create(model="prod-gpt",
    messages=[{"role": "user", "content": "hello v1"}])
assert done.choices[0].message.content == "hello v1", done
try:
    v1.chat.completions.create(model="no-such-deployment",
        messages=[{"role": "user", "content": "x"}])
    raise SystemExit("an unknown deployment served")
except openai.NotFoundError as e:
    assert e.body["code"] == "DeploymentNotFound", e.body
print("azure openai ok", len(calls))
"#;

fn have_openai() -> bool {
    std::process::Command::new("python3")
        .args(["-c", "import openai"])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[tokio::test]
async fn the_official_openai_python_client_reaches_the_emulated_azure_openai() {
    if !byollm_core::testing::require(
        "the_official_openai_python_client_reaches_the_emulated_azure_openai",
        "the Python openai client (pip install openai)",
        have_openai(),
    ) {
        return;
    }
    let az = Azure::new(&[TEAM]).await;
    let sim = az.w.sim.azure();
    sim.assign_role(assignment(COGNITIVE_SERVICES_OPENAI_USER))
        .unwrap();
    sim.create_deployment(Deployment {
        resource: RESOURCE.into(),
        name: "prod-gpt".into(),
        model: "gpt-5".into(),
    })
    .unwrap();
    let stdout = az.run_python(TEAM, SCRIPT).await;
    assert!(stdout.contains("azure openai ok"), "{stdout}");
    // Three classic calls (AzureOpenAI) and two v1 calls, all checked.
    assert_eq!(az.w.sim.call_count(OP), 5);
    assert!(az.w.sim.call_count("azure:entra.token") >= 1);
}
