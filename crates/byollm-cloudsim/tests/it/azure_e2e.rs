//! End to end with byollm's own issuer on Azure's side: the team's settings
//! turn Azure on at `team` granularity, a member and an agent's run mint
//! Azure tokens over HTTP (RS256, `sub` = `scoped_principal:<team>`), and the
//! emulated Entra verifies them against the issuer's JWKS (fetched through
//! `--resolve`) and exchanges them through the team's one FIC; the same
//! team's ES256 (AWS) token and another team's Azure token are refused with
//! Entra's codes.

use std::sync::Arc;

use byollm_api::clock::{Clock as _, SystemClock};
use byollm_cloudsim::azure::{AzureIdentity, Fic};
use byollm_cloudsim::{Cloudsim, CloudsimConfig};
use byollm_core::config::CoreConfig;
use byollm_federation::Exchange as _;
use byollm_federation::azure::{
    COGNITIVE_SERVICES_SCOPE, EntraRetry, EntraTarget, EntraTokenEndpoint, aadsts_code,
};
use byollm_server::ServerConfig;
use secrecy::{ExposeSecret as _, SecretString};
use serde_json::{Value, json};

const ISSUER: &str = "https://issuer.test";
const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const CLIENT: &str = "0d3c1f2e-5b6a-4c8d-9e0f-1a2b3c4d5e6f";
const AUD: &str = "api://AzureADTokenExchange";

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
async fn byollm_tokens_exchange_at_entra_through_the_teams_fic() {
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
    let settings = json!({
        "worker_identity_tokens": true,
        "hosts": {"azure_foundry": {
            "enabled": true, "tenant_id": TENANT, "client_id": CLIENT,
            "resource": "acme-ai", "subject_granularity": "team"}}});
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
        call(
            &http,
            reqwest::Method::PATCH,
            format!("{base}/api/v1/team/llm-settings"),
            &key,
            &settings,
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
    let agent_key = call(
        &http,
        reqwest::Method::POST,
        format!("{base}/api/v1/api-keys"),
        &acme_key,
        &json!({"name": "ci", "agent_uid": agent}),
    )
    .await["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let run = call(
        &http,
        reqwest::Method::POST,
        format!("{base}/api/v1/runs"),
        &agent_key,
        &json!({}),
    )
    .await;
    let (run_id, run_token) = (
        run["run_id"].as_str().unwrap().to_owned(),
        run["workload_token"].as_str().unwrap().to_owned(),
    );
    let mint = |path: String, key: String, audience: &'static str| {
        let http = http.clone();
        async move {
            let v = call(
                &http,
                reqwest::Method::POST,
                path,
                &key,
                &json!({"audience": audience, "requested_duration_seconds": 900}),
            )
            .await;
            SecretString::from(v["token"].as_str().unwrap().to_owned())
        }
    };
    let member_token = mint(
        format!("{base}/api/v1/identity-token"),
        acme_key.clone(),
        AUD,
    )
    .await;
    let run_azure = mint(
        format!("{base}/api/v1/runs/{run_id}/identity-token"),
        run_token,
        AUD,
    )
    .await;
    let aws_token = mint(
        format!("{base}/api/v1/identity-token"),
        acme_key.clone(),
        "sts.amazonaws.com",
    )
    .await;
    let intruder_token = mint(format!("{base}/api/v1/identity-token"), intruder_key, AUD).await;

    let sim = Cloudsim::start(CloudsimConfig {
        resolve: vec![("issuer.test".to_owned(), server.addr)],
        ..CloudsimConfig::default()
    })
    .await
    .unwrap();
    // What the setup writes at `team` granularity: one FIC for the team.
    sim.azure()
        .create_identity(AzureIdentity {
            tenant_id: TENANT.into(),
            client_id: CLIENT.into(),
            name: "byollm-acme".into(),
        })
        .unwrap();
    sim.azure()
        .add_fic(
            Fic {
                client_id: CLIENT.into(),
                name: "byollm-team".into(),
                issuer: ISSUER.into(),
                subject: format!("scoped_principal:{acme}"),
                audiences: vec![AUD.into()],
            },
            SystemClock.now(),
        )
        .unwrap();
    let entra =
        EntraTokenEndpoint::new(Some(sim.endpoint_url()), Arc::new(|| SystemClock.now_ms()))
            .with_retry(EntraRetry {
                attempts: 0,
                delay: std::time::Duration::ZERO,
            });
    let target = EntraTarget {
        tenant_id: TENANT.into(),
        client_id: CLIENT.into(),
        scope: COGNITIVE_SERVICES_SCOPE.into(),
    };
    for token in [&member_token, &run_azure] {
        let access = entra.exchange(token, &target).await.unwrap();
        let issued = sim.azure().token(access.token.expose_secret()).unwrap();
        assert_eq!(issued.subject, format!("scoped_principal:{acme}"));
        assert_eq!(issued.client_id, CLIENT);
    }
    assert_eq!(sim.call_count("azure:entra.token"), 2);

    // The AWS token of the same team: ES256, refused as Entra refuses it.
    let e = entra.exchange(&aws_token, &target).await.unwrap_err();
    assert_eq!(aadsts_code(&e), Some(5_002_738), "{e}");
    // Another team's Azure token: its subject is not the FIC's.
    let e = entra.exchange(&intruder_token, &target).await.unwrap_err();
    assert_eq!(aadsts_code(&e), Some(700_213), "{e}");
    sim.shutdown().await;
    server.shutdown().await;
}
