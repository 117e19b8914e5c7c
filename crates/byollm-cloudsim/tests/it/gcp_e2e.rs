//! End to end with byollm's own issuer on Google's side: the team's settings
//! name its workload identity provider, a member and a named agent mint
//! tokens for it over HTTP, the emulator verifies them against the issuer's
//! JWKS (fetched through `--resolve`), maps `team` and `actor_type` claims
//! into attributes, and Vertex AI answers; another team that points its
//! settings at the same provider is refused by the attribute condition.

use std::collections::BTreeMap;
use std::sync::Arc;

use byollm_api::clock::{Clock as _, SystemClock};
use byollm_cloudsim::gcp::{AIPLATFORM_USER, Binding, GcpProvider};
use byollm_cloudsim::{Cloudsim, CloudsimConfig};
use byollm_core::config::CoreConfig;
use byollm_federation::gcp::{GoogleSts, PoolTarget};
use byollm_federation::{ErrorClass, Exchange as _};
use byollm_server::ServerConfig;
use secrecy::{ExposeSecret as _, SecretString};
use serde_json::{Value, json};

const ISSUER: &str = "https://issuer.test";
const AUD: &str = "//iam.googleapis.com/projects/123456789012/locations/global/workloadIdentityPools/byollm-pool/providers/byollm-issuer";
const POOL: &str =
    "//iam.googleapis.com/projects/123456789012/locations/global/workloadIdentityPools/byollm-pool";

fn host_settings() -> Value {
    json!({"hosts": {"gcp_vertex": {
        "enabled": true, "project_id": "acme-ml-prod", "project_number": "123456789012",
        "pool_id": "byollm-pool", "provider_id": "byollm-issuer", "location": "global"}}})
}

async fn call(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    key: &str,
    body: &Value,
) -> Value {
    let r = http
        .request(method, url)
        .bearer_auth(key)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = r.status();
    let v: Value = r.json().await.unwrap();
    assert!(status.is_success(), "{status}: {v}");
    v
}

#[tokio::test]
async fn byollm_tokens_reach_claude_on_vertex_through_the_teams_pool() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = ServerConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        dir.path().to_owned(),
        CoreConfig::new(ISSUER),
    );
    let server = byollm_server::start(&cfg, Arc::new(SystemClock))
        .await
        .unwrap();
    let base = format!("http://{}", server.addr);
    let http = reqwest::Client::new();
    let mut teams = vec![];
    for name in ["acme", "intruder"] {
        let made = byollm_core::service::bootstrap_team(
            server.core.store(),
            server.core.clock().as_ref(),
            name,
            &format!("owner@{name}.test"),
        )
        .await
        .unwrap();
        let key = made.api_key.expose().to_owned();
        // Both teams' settings name the same provider: only its condition
        // keeps the second one out.
        call(
            &http,
            reqwest::Method::PATCH,
            format!("{base}/api/v1/team/llm-settings"),
            &key,
            &host_settings(),
        )
        .await;
        teams.push((made.team_uid, key));
    }
    let (acme, acme_key) = teams[0].clone();
    let (_, intruder_key) = teams[1].clone();
    let agent = call(
        &http,
        reqwest::Method::POST,
        format!("{base}/api/v1/agent/identities"),
        &acme_key,
        &json!({"name": "builder"}),
    )
    .await["uid"]
        .as_str()
        .unwrap()
        .to_owned();
    let mint = |path: String, key: String| {
        let http = http.clone();
        async move {
            let v = call(
                &http,
                reqwest::Method::POST,
                path,
                &key,
                &json!({"audience": AUD, "requested_duration_seconds": 900}),
            )
            .await;
            SecretString::from(v["token"].as_str().unwrap().to_owned())
        }
    };
    let member_token = mint(format!("{base}/api/v1/identity-token"), acme_key.clone()).await;
    let agent_token = mint(
        format!("{base}/api/v1/agent/identities/{agent}/identity-token"),
        acme_key.clone(),
    )
    .await;
    let intruder_token = mint(format!("{base}/api/v1/identity-token"), intruder_key).await;

    let sim = Cloudsim::start(CloudsimConfig {
        resolve: vec![("issuer.test".to_owned(), server.addr)],
        ..CloudsimConfig::default()
    })
    .await
    .unwrap();
    // The provider byollm's setup would write: the team claim mapped, and a
    // condition admitting that team only.
    sim.gcp()
        .create_provider(GcpProvider {
            project_number: "123456789012".into(),
            pool_id: "byollm-pool".into(),
            provider_id: "byollm-issuer".into(),
            issuer_uri: ISSUER.into(),
            allowed_audiences: vec![],
            attribute_mapping: BTreeMap::from([
                ("google.subject".into(), "assertion.sub".into()),
                ("attribute.team".into(), "assertion.team".into()),
                ("attribute.actor_type".into(), "assertion.actor_type".into()),
            ]),
            attribute_condition: Some(format!("assertion.team == '{acme}'")),
            disabled: false,
        })
        .unwrap();
    sim.gcp().add_binding(Binding {
        resource: "projects/acme-ml-prod".into(),
        role: AIPLATFORM_USER.into(),
        member: format!("principalSet:{POOL}/attribute.team/{acme}"),
    });
    let sts = GoogleSts::new(Some(sim.endpoint_url()), Arc::new(|| SystemClock.now_ms()));
    let target = PoolTarget {
        audience: AUD.into(),
        service_account: None,
    };
    for token in [&member_token, &agent_token] {
        let access = sts.exchange(token, &target).await.unwrap();
        let r = http
            .post(format!(
                "{}/v1/projects/acme-ml-prod/locations/global/publishers/anthropic/models/claude-sonnet-4-6:rawPredict",
                sim.endpoint_url()
            ))
            .bearer_auth(access.token.expose_secret())
            .json(&json!({"anthropic_version": "vertex-2023-10-16", "max_tokens": 32,
                          "messages": [{"role": "user", "content": "from the pool"}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["content"][0]["text"], "from the pool");
    }
    assert_eq!(sim.call_count("gcp:sts.token"), 2);

    let e = sts.exchange(&intruder_token, &target).await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::Refused);
    assert_eq!(
        e.to_string(),
        "Google STS: unauthorized_client: The given credential is rejected by the attribute condition."
    );
    sim.shutdown().await;
    server.shutdown().await;
}
