//! Claude in Azure AI Foundry on the emulator
//! (`POST /_azure/{resource}/anthropic/v1/messages`): the Entra bearer token
//! and the "Azure AI User" role assignment checked on every call, Azure's
//! error bodies, and Anthropic's Messages answers, plain and streamed —
//! through raw HTTP and through Anthropic's own `AnthropicFoundry` client
//! (with `azure_ad_token_provider`, posting the client assertion to the
//! emulator's Entra itself: azure-identity insists on https).

use byollm_cloudsim::azure::{AZURE_AI_USER, RoleAssignment};
use byollm_federation::Exchange as _;
use secrecy::ExposeSecret as _;
use serde_json::{Value, json};

use crate::azure::{Azure, CLIENT, TEAM};

const RESOURCE: &str = "acme-ai";

fn assignment(role: &str) -> RoleAssignment {
    RoleAssignment {
        client_id: CLIENT.into(),
        role: role.into(),
        resource: RESOURCE.into(),
    }
}

async fn post(az: &Azure, bearer: Option<&str>, body: &Value) -> reqwest::Response {
    let url = format!(
        "{}/_azure/{RESOURCE}/anthropic/v1/messages",
        az.w.sim.endpoint_url()
    );
    let mut req = reqwest::Client::new()
        .post(url)
        .header("anthropic-version", "2023-06-01")
        .json(body);
    if let Some(b) = bearer {
        req = req.bearer_auth(b);
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn foundry_checks_the_token_and_the_role_then_answers_as_anthropic() {
    let az = Azure::new(&[TEAM]).await;
    let t = az
        .entra
        .exchange(&az.token(TEAM), &Azure::target())
        .await
        .unwrap();
    let bearer = t.token.expose_secret().to_owned();
    let body = json!({"model": "claude-sonnet-4-6", "max_tokens": 20,
                      "messages": [{"role": "user", "content": "hello"}]});

    // No token, an unknown token: Azure's 401.
    for b in [None, Some("not-a-token")] {
        let r = post(&az, b, &body).await;
        assert_eq!(r.status().as_u16(), 401);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"]["code"], "401");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("Unauthorized. Access token is missing, invalid")
        );
    }
    // A valid token without the role: PermissionDenied naming the principal.
    let r = post(&az, Some(&bearer), &body).await;
    assert_eq!(r.status().as_u16(), 401);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "PermissionDenied");
    assert!(v["error"]["message"].as_str().unwrap().contains(CLIENT));
    // The role on another resource does not count; the OpenAI role does not either.
    let sim = az.w.sim.azure();
    sim.assign_role(RoleAssignment {
        resource: "other-ai".into(),
        ..assignment(AZURE_AI_USER)
    })
    .unwrap();
    sim.assign_role(assignment("Cognitive Services OpenAI User"))
        .unwrap();
    let r = post(&az, Some(&bearer), &body).await;
    assert_eq!(r.status().as_u16(), 401);

    // Granted through the control route, as a setup script's emulator would.
    let r = reqwest::Client::new()
        .post(format!(
            "{}/_awsim/azure/role-assignments",
            az.w.sim.endpoint_url()
        ))
        .json(&json!({"clientId": CLIENT, "role": AZURE_AI_USER, "resource": RESOURCE}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let r = post(&az, Some(&bearer), &body).await;
    assert_eq!(r.status().as_u16(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["type"], "message");
    assert_eq!(v["model"], "claude-sonnet-4-6");
    assert!(v["id"].as_str().unwrap().starts_with("msg_"));
    assert!(v["usage"]["input_tokens"].as_u64().unwrap() > 0);

    // Streamed: Anthropic's named SSE events.
    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    let r = post(&az, Some(&bearer), &streamed).await;
    assert_eq!(r.status().as_u16(), 200);
    let text = r.text().await.unwrap();
    assert!(text.starts_with("event: message_start\n"), "{text}");
    assert!(text.contains("event: content_block_delta\n"));
    assert!(
        text.trim_end()
            .ends_with(r#"data: {"type":"message_stop"}"#),
        "{text}"
    );

    // An unknown deployment; a missing anthropic-version header.
    let mut unknown = body.clone();
    unknown["model"] = json!("claude-nope");
    let r = post(&az, Some(&bearer), &unknown).await;
    assert_eq!(r.status().as_u16(), 404);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "DeploymentNotFound");
    let r = reqwest::Client::new()
        .post(format!(
            "{}/_azure/{RESOURCE}/anthropic/v1/messages",
            az.w.sim.endpoint_url()
        ))
        .bearer_auth(&bearer)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);

    // An expired token is refused again with 401.
    sim.expire_tokens();
    let r = post(&az, Some(&bearer), &body).await;
    assert_eq!(r.status().as_u16(), 401);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "401");
    assert_eq!(az.w.sim.call_count("azure:foundry.messages"), 9);
}

/// Anthropic's `AnthropicFoundry` client against the emulator: a plain and a
/// streamed Messages call with the Entra token from a provider callable.
const FOUNDRY_SCRIPT: &str = r#"
import anthropic
from anthropic import AnthropicFoundry
c = AnthropicFoundry(base_url=f"{sim}/_azure/acme-ai/anthropic/", azure_ad_token_provider=token,
                     max_retries=0)
done = c.messages.create(model="claude-sonnet-4-6", max_tokens=64,
    messages=[{"role": "user", "content": "hello foundry"}])
assert done.content[0].text == "hello foundry", done
text = ""
with c.messages.stream(model="claude-sonnet-4-6", max_tokens=64,
        messages=[{"role": "user", "content": "streamed foundry"}]) as s:
    for t in s.text_stream:
        text += t
assert text == "streamed foundry", text
print("foundry ok")
"#;

fn have_anthropic_foundry() -> bool {
    std::process::Command::new("python3")
        .args(["-c", "from anthropic import AnthropicFoundry"])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[tokio::test]
async fn anthropics_foundry_client_reaches_the_emulated_foundry() {
    if !byollm_core::testing::require(
        "anthropics_foundry_client_reaches_the_emulated_foundry",
        "Anthropic's Python SDK with AnthropicFoundry (pip install anthropic)",
        have_anthropic_foundry(),
    ) {
        return;
    }
    let az = Azure::new(&[TEAM]).await;
    az.w.sim
        .azure()
        .assign_role(assignment(AZURE_AI_USER))
        .unwrap();
    let stdout = az.run_python(TEAM, FOUNDRY_SCRIPT).await;
    assert!(stdout.contains("foundry ok"), "{stdout}");
    assert_eq!(az.w.sim.call_count("azure:foundry.messages"), 2);
}
