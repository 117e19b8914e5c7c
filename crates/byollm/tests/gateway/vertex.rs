//! Claude on Vertex AI through the gateway (issue 17): members and agent runs
//! reach the emulated Vertex AI with access tokens the broker exchanges at
//! Google's (emulated) STS through the team's workload identity pool — the
//! emulator checks the identity token against the issuer's JWKS, evaluates
//! the provider's attribute condition (CEL) and the IAM binding on every
//! call —, one exchange per key per token lifetime; fallback between the
//! team's clouds in its `host_order`, and out of them only when allowed.

use std::collections::BTreeMap;
use std::time::Duration;

use byollm_api::routes;
use byollm_cloudsim::gcp::{AIPLATFORM_USER, Binding, GcpProvider};
use serde_json::{Value, json};

use crate::harness::{Env, ISSUER, messages_body};

const NUMBER: &str = "123456789012";
const POOL: &str =
    "//iam.googleapis.com/projects/123456789012/locations/global/workloadIdentityPools/byollm-pool";
const STS_OP: &str = "gcp:sts.token";
pub(crate) const RAW_PREDICT: &str = "gcp:vertex.rawPredict";

/// The team's Vertex host.
pub(crate) fn gcp_vertex() -> Value {
    json!({"enabled": true, "project_id": "acme-ml-prod", "project_number": NUMBER,
           "pool_id": "byollm-pool", "provider_id": "byollm-issuer", "location": "global"})
}

/// An emulator with the team's pool provider (the mapping and condition
/// byollm's setup writes, admitting `admitted_team`) and Vertex AI granted
/// to the team's principal set; the team's settings with Vertex AI on,
/// Bedrock on or off, and `extra` merged.
pub(crate) async fn vertex_env(admitted_team: Option<&str>, bedrock: bool, extra: Value) -> Env {
    let env = Env::start().await;
    let team = admitted_team.unwrap_or(&env.team).to_owned();
    env.sim
        .gcp()
        .create_provider(GcpProvider {
            project_number: NUMBER.into(),
            pool_id: "byollm-pool".into(),
            provider_id: "byollm-issuer".into(),
            issuer_uri: ISSUER.into(),
            allowed_audiences: vec![],
            attribute_mapping: BTreeMap::from([
                ("google.subject".into(), "assertion.sub".into()),
                ("attribute.team".into(), "assertion.team".into()),
                ("attribute.actor_type".into(), "assertion.actor_type".into()),
            ]),
            attribute_condition: Some(format!("assertion.team == '{team}'")),
            disabled: false,
        })
        .unwrap();
    env.sim.gcp().add_binding(Binding {
        resource: "projects/acme-ml-prod".into(),
        role: AIPLATFORM_USER.into(),
        member: format!("principalSet:{POOL}/attribute.team/{}", env.team),
    });
    let mut settings = json!({"hosts": {
        "aws_bedrock": {"enabled": bedrock, "role_arn": env.role_arn, "region": "us-east-1"},
        "gcp_vertex": gcp_vertex()}});
    byollm_core::merge_patch::merge_patch(&mut settings, &extra);
    env.put_settings(settings).await;
    env
}

pub(crate) fn attempts(body: &Value) -> Vec<String> {
    body["byollm"]["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            format!(
                "{} → {}",
                a["route"].as_str().unwrap(),
                a["outcome"].as_str().unwrap()
            )
        })
        .collect()
}

#[tokio::test]
async fn members_and_agent_runs_reach_claude_on_vertex_through_the_teams_pool() {
    let env = vertex_env(
        None,
        false,
        json!({"hosts": {"direct_api": {"enabled": false}}}),
    )
    .await;
    let route = "gcp_vertex:claude-sonnet-4-6@global";
    // A member (interactive), whole and streamed.
    let r = env
        .infer(
            routes::MESSAGES,
            &env.owner_key,
            messages_body("claude-sonnet-4-6", "from the pool", false),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("x-byollm-route"), Some(route));
    assert_eq!(r.json()["content"][0]["text"], "from the pool");
    let r = env
        .infer(
            routes::MESSAGES,
            &env.owner_key,
            messages_body("claude-sonnet-4-6", "streamed", true),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("x-byollm-route"), Some(route));
    let names: Vec<_> = r.events().into_iter().filter_map(|(n, _)| n).collect();
    assert_eq!(names.first().map(String::as_str), Some("message_start"));
    assert_eq!(names.last().map(String::as_str), Some("message_stop"));
    assert!(r.text.contains("streamed"), "{}", r.text);
    // Tools pass through: the model calls the declared tool.
    let r = env
        .infer(
            routes::MESSAGES,
            &env.owner_key,
            json!({"model": "claude-sonnet-4-6", "max_tokens": 64,
                   "tools": [{"name": "lookup", "description": "look up",
                              "input_schema": {"type": "object"}}],
                   "messages": [{"role": "user", "content": "/tool lookup weather"}]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let v = r.json();
    assert_eq!(v["stop_reason"], "tool_use", "{v}");
    assert_eq!(v["content"][0]["name"], "lookup");
    // An agent's run, through the same pool.
    let agent = env.create_agent("vertex-builder", None).await;
    let (run_id, token) = env.start_run(Some(&agent)).await;
    for stream in [false, true] {
        let r = env
            .infer(
                routes::MESSAGES,
                &token,
                messages_body("claude-sonnet-4-6", "run", stream),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.header("x-byollm-route"), Some(route));
    }
    // One exchange per key (the member, the run), not one per request.
    assert_eq!(env.sim.call_count(STS_OP), 2);
    assert_eq!(env.sim.call_count(RAW_PREDICT), 3);
    assert_eq!(env.sim.call_count("gcp:vertex.streamRawPredict"), 2);
    assert_eq!(env.sts_calls(), 0, "AWS untouched");
    // Usage rows name the route; the customer's cloud costs no credits.
    let usage = env.usage("").await;
    let reqs = usage["requests"].as_array().unwrap();
    assert_eq!(reqs.len(), 5, "{usage}");
    assert!(reqs.iter().all(|r| r["route"] == route), "{usage}");
    assert!(reqs.iter().all(|r| r["credits"] == 0.0), "{usage}");
    assert_eq!(usage["buckets"]["inference"].as_f64(), Some(0.0), "{usage}");
    // The run's token leaves the broker when the run ends; the member's stays.
    assert_eq!(env.server.core.broker().stats().with_credentials, 2);
    let (s, v) = env
        .api(
            reqwest::Method::POST,
            &format!("{}/{run_id}/finish", routes::RUNS),
            &env.owner_key,
            Some(json!({"state": "finished"})),
        )
        .await;
    assert!(s.is_success(), "{v}");
    assert_eq!(env.server.core.broker().stats().with_credentials, 1);
    env.stop().await;
}

#[tokio::test]
async fn vertex_tokens_refresh_once_per_lifetime_without_failures() {
    let env = vertex_env(None, false, json!({})).await;
    // 12-second tokens: a refresh is due 2–3 s before each expires.
    env.sim
        .faults()
        .set_credential_lifetime(Some(Duration::from_secs(12)));
    let agent = env.create_agent("long-vertex", None).await;
    let (_, token) = env.start_run(Some(&agent)).await;
    let start = tokio::time::Instant::now();
    let mut n = 0;
    // Over two token lifetimes.
    let mut last_sent = Duration::ZERO;
    while start.elapsed() < Duration::from_secs(25) {
        last_sent = start.elapsed();
        let r = env
            .infer(
                routes::MESSAGES,
                &token,
                messages_body("claude-haiku-4-5", "tick", false),
            )
            .await;
        assert_eq!(r.status, 200, "request {n}: {}", r.text);
        assert_eq!(
            r.header("x-byollm-route"),
            Some("gcp_vertex:claude-haiku-4-5@20251001@global")
        );
        assert!(r.header("x-byollm-fallback").is_none(), "request {n}");
        n += 1;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // Requests kept coming until the end (however slow the machine), so the
    // last token lifetime was exercised too; no throughput is asserted.
    assert!(
        last_sent + Duration::from_secs(5) > Duration::from_secs(25),
        "the last request left at {last_sent:?} after {n} requests"
    );
    // The first exchange and one refresh per lifetime that ran out.
    assert_eq!(env.sim.call_count(STS_OP), 3, "after {n} requests");
    env.stop().await;
}

#[tokio::test]
async fn bedrock_falls_back_to_vertex_when_throttled_or_denied() {
    let env = vertex_env(None, true, json!({"allow_fallback_outside_cloud": false})).await;
    // Throttled on the global profile: the next in-cloud host serves.
    env.sim
        .faults()
        .fail_next("bedrock:InvokeModel", "ThrottlingException", 1);
    let r = env
        .owner_asks(routes::MESSAGES, "claude-sonnet-4-6", false)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.header("x-byollm-route"),
        Some("gcp_vertex:claude-sonnet-4-6@global")
    );
    let fb = r.header("x-byollm-fallback").unwrap();
    assert!(fb.contains("throttled"), "{fb}");
    // Denied on both profiles: Vertex AI again.
    env.sim
        .faults()
        .fail_next("bedrock:InvokeModel", "AccessDeniedException", 2);
    let r = env
        .owner_asks(routes::MESSAGES, "claude-sonnet-4-6", false)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.header("x-byollm-route"),
        Some("gcp_vertex:claude-sonnet-4-6@global")
    );
    assert!(
        r.header("x-byollm-fallback")
            .unwrap()
            .contains("access denied")
    );
    // The admin puts Vertex AI first: Bedrock is not asked at all.
    env.put_settings(json!({"hosts": {
        "aws_bedrock": {"enabled": true, "role_arn": env.role_arn, "region": "us-east-1"},
        "gcp_vertex": gcp_vertex()},
        "host_order": ["gcp_vertex", "aws_bedrock"]}))
        .await;
    let before = env.sim.call_count("bedrock:InvokeModel");
    let r = env
        .owner_asks(routes::MESSAGES, "claude-sonnet-4-6", false)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.header("x-byollm-route"),
        Some("gcp_vertex:claude-sonnet-4-6@global")
    );
    assert!(r.header("x-byollm-fallback").is_none());
    assert_eq!(env.sim.call_count("bedrock:InvokeModel"), before);
    // ... and Vertex AI's quota running out sends it back to Bedrock.
    env.sim
        .faults()
        .fail_next(RAW_PREDICT, "RESOURCE_EXHAUSTED", 1);
    let r = env
        .owner_asks(routes::MESSAGES, "claude-sonnet-4-6", false)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.header("x-byollm-route"),
        Some("aws_bedrock:global.anthropic.claude-sonnet-4-6@us-east-1")
    );
    assert!(
        r.header("x-byollm-fallback")
            .unwrap()
            .contains("RESOURCE_EXHAUSTED")
    );
    // A duplicated host is refused, naming the field.
    let (s, v) = env
        .api(
            reqwest::Method::PATCH,
            "/api/v1/team/llm-settings",
            &env.owner_key,
            Some(json!({"host_order": ["gcp_vertex", "gcp_vertex"]})),
        )
        .await;
    assert_eq!(s, 400, "{v}");
    assert_eq!(v["error"]["field"], "host_order", "{v}");
    env.stop().await;
}

#[tokio::test]
async fn vertex_falls_back_to_the_direct_api_only_when_allowed() {
    let env = vertex_env(None, false, json!({"allow_fallback_outside_cloud": false})).await;
    // Three models are tried (`max_fallback_attempts`), each on Vertex AI.
    env.sim
        .faults()
        .fail_next(RAW_PREDICT, "RESOURCE_EXHAUSTED", 3);
    let r = env
        .owner_asks(routes::MESSAGES, "claude-sonnet-4-6", false)
        .await;
    // Quota may come back: 503 with Retry-After, nothing sent out of the cloud.
    assert_eq!(r.status, 503, "{}", r.text);
    assert!(r.header("retry-after").is_some());
    let a = attempts(&r.json());
    assert!(
        a[0].starts_with(
            "gcp_vertex:claude-sonnet-4-6@global → throttled: RESOURCE_EXHAUSTED: Quota exceeded"
        ),
        "{a:?}"
    );
    assert_eq!(
        a[1],
        "direct_api:claude-sonnet-4-6 → skipped: allow_fallback_outside_cloud is false"
    );
    // The model not enabled in Model Garden: permanent, a 4xx no SDK retries.
    env.sim
        .faults()
        .fail_next(RAW_PREDICT, "FAILED_PRECONDITION", 3);
    let r = env
        .owner_asks(routes::MESSAGES, "claude-sonnet-4-6", false)
        .await;
    assert_eq!(r.status, 422, "{}", r.text);
    assert!(attempts(&r.json())[0].contains("model not available: FAILED_PRECONDITION"));
    // Allowed out of the cloud: the direct API serves.
    let mut doc = json!({"hosts": {"aws_bedrock": {"enabled": false, "role_arn": env.role_arn,
        "region": "us-east-1"}, "gcp_vertex": gcp_vertex()}});
    doc["allow_fallback_outside_cloud"] = json!(true);
    env.put_settings(doc).await;
    env.sim
        .faults()
        .fail_next(RAW_PREDICT, "RESOURCE_EXHAUSTED", 1);
    let r = env
        .owner_asks(routes::MESSAGES, "claude-sonnet-4-6", false)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.header("x-byollm-route"),
        Some("direct_api:claude-sonnet-4-6")
    );
    assert!(
        r.header("x-byollm-fallback")
            .unwrap()
            .contains("RESOURCE_EXHAUSTED")
    );
    env.stop().await;
}

#[tokio::test]
async fn a_condition_that_excludes_the_team_refuses_with_the_cause() {
    let env = vertex_env(
        Some("some-other-team"),
        false,
        json!({"allow_fallback_outside_cloud": false}),
    )
    .await;
    let agent = env.create_agent("excluded", None).await;
    let (_, token) = env.start_run(Some(&agent)).await;
    for key in [env.owner_key.clone(), token] {
        let r = env
            .infer(
                routes::MESSAGES,
                &key,
                messages_body("claude-sonnet-4-6", "x", false),
            )
            .await;
        // A refusal no retry fixes: 403, naming Google's words and the fix.
        assert_eq!(r.status, 403, "{}", r.text);
        let v = r.json();
        assert_eq!(v["error"]["type"], "permission_error");
        assert_eq!(
            attempts(&v)[0],
            "gcp_vertex:claude-sonnet-4-6@global → token exchange failed: Google STS: \
             unauthorized_client: The given credential is rejected by the attribute condition."
        );
        let msg = v["error"]["message"].as_str().unwrap();
        assert!(msg.contains("attribute condition"), "{msg}");
    }
    assert_eq!(env.sim.call_count(RAW_PREDICT), 0, "no token, no call");
    env.stop().await;
}

#[tokio::test]
async fn chat_completions_reach_claude_on_vertex_translated() {
    let env = vertex_env(
        None,
        false,
        json!({"hosts": {"direct_api": {"enabled": false}}}),
    )
    .await;
    let route = "gcp_vertex:claude-sonnet-4-6@global";
    let r = env
        .owner_asks(routes::CHAT_COMPLETIONS, "claude-sonnet-4-6", false)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("x-byollm-route"), Some(route));
    let v = r.json();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["choices"][0]["message"]["content"], "x");
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert!(v["usage"]["prompt_tokens"].as_u64().unwrap() > 0, "{v}");
    // Streamed, with usage asked for.
    let mut body = crate::harness::chat_body("claude-sonnet-4-6", "streamed words", true);
    body["stream_options"] = json!({"include_usage": true});
    let r = env
        .infer(routes::CHAT_COMPLETIONS, &env.owner_key, body)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("x-byollm-route"), Some(route));
    let events = r.events();
    assert_eq!(events.last().unwrap().1, "[DONE]");
    let text: String = events
        .iter()
        .filter_map(|(_, d)| serde_json::from_str::<Value>(d).ok())
        .filter_map(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(text, "streamed words");
    assert!(
        events
            .iter()
            .filter_map(|(_, d)| serde_json::from_str::<Value>(d).ok())
            .any(|c| c["usage"]["completion_tokens"].as_u64().is_some())
    );
    // Tools: the model's call comes back as an OpenAI tool call.
    let r = env
        .infer(
            routes::CHAT_COMPLETIONS,
            &env.owner_key,
            json!({"model": "claude-sonnet-4-6", "messages": [
                {"role": "user", "content": "/tool lookup weather"}],
                "tools": [{"type": "function", "function": {"name": "lookup",
                    "parameters": {"type": "object"}}}]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let v = r.json();
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls", "{v}");
    assert_eq!(
        v["choices"][0]["message"]["tool_calls"][0]["function"]["name"],
        "lookup"
    );
    assert_eq!(env.sim.call_count(STS_OP), 1);
    env.stop().await;
}

#[tokio::test]
async fn an_agents_gcp_override_routes_it_on_its_own_terms() {
    let env = vertex_env(
        None,
        false,
        json!({"hosts": {"direct_api": {"enabled": false}}}),
    )
    .await;
    // A second provider in the team's pool, for agents.
    env.sim
        .gcp()
        .create_provider(GcpProvider {
            project_number: NUMBER.into(),
            pool_id: "byollm-pool".into(),
            provider_id: "agents-issuer".into(),
            issuer_uri: ISSUER.into(),
            allowed_audiences: vec![],
            attribute_mapping: BTreeMap::from([
                ("google.subject".into(), "assertion.sub".into()),
                ("attribute.team".into(), "assertion.team".into()),
            ]),
            attribute_condition: Some(format!(
                "assertion.team == '{}' && assertion.actor_type == 'service_account'",
                env.team
            )),
            disabled: false,
        })
        .unwrap();
    let agent = |name: &str, gcp: Value| {
        let body = json!({"name": name, "inference_providers": {"gcp": gcp}});
        env.api(
            reqwest::Method::POST,
            routes::AGENT_IDENTITIES,
            &env.owner_key,
            Some(body),
        )
    };
    let (s, v) = agent(
        "regional",
        json!({"location": "us-east5", "provider_id": "agents-issuer"}),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["inference_providers"]["gcp"]["location"], "us-east5");
    let (_, token) = env.start_run(Some(v["uid"].as_str().unwrap())).await;
    let r = env
        .infer(
            routes::MESSAGES,
            &token,
            messages_body("claude-sonnet-4-6", "regional", false),
        )
        .await;
    // Its token's audience is its own provider, which the emulator checks.
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.header("x-byollm-route"),
        Some("gcp_vertex:claude-sonnet-4-6@us-east5")
    );
    // Disabled: no route left for it.
    let (s, v) = agent("grounded", json!({"disabled": true})).await;
    assert_eq!(s, 201, "{v}");
    let (_, token) = env.start_run(Some(v["uid"].as_str().unwrap())).await;
    let r = env
        .infer(
            routes::MESSAGES,
            &token,
            messages_body("claude-sonnet-4-6", "x", false),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.text);
    // Members keep the team's provider and location.
    let r = env
        .owner_asks(routes::MESSAGES, "claude-sonnet-4-6", false)
        .await;
    assert_eq!(
        r.header("x-byollm-route"),
        Some("gcp_vertex:claude-sonnet-4-6@global")
    );
    // A bad override names its field.
    let (s, v) = agent("bad", json!({"pool_id": "gcp-reserved"})).await;
    assert_eq!(s, 400, "{v}");
    assert_eq!(
        v["error"]["field"], "inference_providers.gcp.pool_id",
        "{v}"
    );
    env.stop().await;
}

const ANTHROPIC_VERTEX: &str = r#"
import os, json, anthropic
from anthropic import AnthropicVertex
base, key = os.environ["BYOLLM_GW"], os.environ["BYOLLM_KEY"]
# The byollm key is the client's access token; the gateway's Vertex-shaped route.
client = AnthropicVertex(region="global", project_id="acme-ml-prod", access_token=key,
                         base_url=base + "/vertex/v1", max_retries=0)
m = client.messages.create(model="claude-sonnet-4-6", max_tokens=64,
                           messages=[{"role": "user", "content": "hello through the gateway"}])
assert m.content[0].text == "hello through the gateway", m
with client.messages.stream(model="claude-haiku-4-5@20251001", max_tokens=64,
                            messages=[{"role": "user", "content": "streamed via vertex shape"}]) as s:
    assert "".join(s.text_stream) == "streamed via vertex shape"
t = client.messages.create(model="claude-sonnet-4-6", max_tokens=64,
                           tools=[{"name": "lookup", "description": "look up", "input_schema": {"type": "object"}}],
                           messages=[{"role": "user", "content": "/tool lookup weather"}])
assert t.stop_reason == "tool_use" and t.content[0].name == "lookup", t
try:
    client.messages.create(model="gemini-2.5-pro", max_tokens=8, messages=[{"role": "user", "content": "x"}])
    raise SystemExit("a Gemini model was served as Claude")
except anthropic.BadRequestError as e:
    assert "/v1/chat/completions" in str(e), e
print("anthropic vertex ok")
"#;

#[tokio::test]
async fn anthropic_vertex_client_reaches_claude_through_the_gateway() {
    if !crate::tools::present_or_skip(
        "AnthropicVertex through the gateway",
        &[
            "python3",
            "-c",
            "import google.auth; from anthropic import AnthropicVertex",
        ],
        "pip install 'anthropic[vertex]'",
    ) {
        return;
    }
    let env = vertex_env(
        None,
        false,
        json!({"hosts": {"direct_api": {"enabled": false}}}),
    )
    .await;
    let stdout = crate::python_sdks::run_python(&env, ANTHROPIC_VERTEX).await;
    assert!(stdout.contains("anthropic vertex ok"), "{stdout}");
    // Routed like /v1/messages: to the team's Vertex AI, one usage row per
    // served request (the refused Gemini one never reached a plan).
    assert_eq!(env.sim.call_count(RAW_PREDICT), 2);
    assert_eq!(env.sim.call_count("gcp:vertex.streamRawPredict"), 1);
    let usage = env.usage("").await;
    let routes: Vec<&str> = usage["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["route"].as_str().unwrap())
        .collect();
    assert_eq!(routes.len(), 3, "{usage}");
    assert!(
        routes.contains(&"gcp_vertex:claude-haiku-4-5@20251001@global"),
        "{routes:?}"
    );
    env.stop().await;
}

/// A change to `hosts.gcp_vertex` drops the team's brokered Google tokens:
/// the next request exchanges again instead of using a token obtained under
/// the old settings.
#[tokio::test]
async fn changing_the_vertex_host_drops_the_teams_google_tokens() {
    let env = vertex_env(None, false, json!({})).await;
    for _ in 0..2 {
        let r = env
            .owner_asks(routes::MESSAGES, "claude-sonnet-4-6", false)
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
    assert_eq!(env.sim.call_count(STS_OP), 1, "the token is reused");
    let mut host = gcp_vertex();
    host["location"] = json!("us-east5");
    env.put_settings(json!({"hosts": {
        "aws_bedrock": {"enabled": false, "role_arn": env.role_arn, "region": "us-east-1"},
        "gcp_vertex": host}}))
        .await;
    let r = env
        .owner_asks(routes::MESSAGES, "claude-sonnet-4-6", false)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.header("x-byollm-route"),
        Some("gcp_vertex:claude-sonnet-4-6@us-east5")
    );
    assert_eq!(env.sim.call_count(STS_OP), 2, "exchanged again");
    env.stop().await;
}
