//! One issuer+gateway and one emulator wired to each other, on a given clock
//! (adapted from crates/byollm/tests/gateway/harness.rs).

use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use secrecy::SecretString;
use serde_json::{Value, json};

use byollm_agent::{OidcConfig, OidcManaged, TokenSource};
use byollm_api::client::Client;
use byollm_api::clock::{Clock, FakeClock, SystemClock};
use byollm_cloudsim::{Cloudsim, CloudsimConfig};
use byollm_core::config::CoreConfig;
use byollm_federation::aws::run_session_name;
use byollm_server::config::{ServerConfig, Upstreams};
use byollm_server::{Server, app};

pub const ISSUER_HOST: &str = "issuer.test";
pub const ISSUER: &str = "https://issuer.test";
pub const ACCOUNT: &str = "123456789012";

pub fn real_now_ms() -> i64 {
    SystemClock.now_ms()
}

pub struct Env {
    pub server: Server,
    pub sim: Cloudsim,
    pub base: String,
    pub http: reqwest::Client,
    pub owner_key: String,
    pub role_arn: String,
    _dir: tempfile::TempDir,
}

pub fn trust_policy(sub_pattern: &str) -> String {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"Federated": format!("arn:aws:iam::{ACCOUNT}:oidc-provider/{ISSUER_HOST}")},
            "Action": ["sts:AssumeRoleWithWebIdentity", "sts:TagSession", "sts:SetSourceIdentity"],
            "Condition": {
                "StringEquals": {format!("{ISSUER_HOST}:aud"): "sts.amazonaws.com"},
                "StringLike": {format!("{ISSUER_HOST}:sub"): sub_pattern}
            }
        }]
    })
    .to_string()
}

pub const BROAD_PERMISSIONS: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow",
 "Action":["bedrock:InvokeModel","bedrock:InvokeModelWithResponseStream"],
 "Resource":["arn:aws:bedrock:*::foundation-model/*","arn:aws:bedrock:*:*:inference-profile/*"]}]}"#;

impl Env {
    /// A team whose role admits every actor of the team, Bedrock on in
    /// us-east-1, worker identity tokens as given. `clock` (one clock for the
    /// server, the emulator and the agent) drives the server and the emulator;
    /// `None` is the real clock.
    pub async fn start(clock: Option<FakeClock>, worker_tokens: bool) -> Env {
        let dir = tempfile::tempdir().unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let clock: Arc<dyn Clock> = match clock {
            Some(c) => Arc::new(c),
            None => Arc::new(SystemClock),
        };
        let (sim_clock, core_clock) = (clock.clone(), clock);
        let sim = Cloudsim::start(CloudsimConfig {
            resolve: vec![(ISSUER_HOST.into(), addr)],
            clock: sim_clock,
            ..CloudsimConfig::default()
        })
        .await
        .unwrap();
        let cfg = ServerConfig {
            upstreams: Upstreams {
                aws_endpoint_url: Some(sim.endpoint_url()),
                gcp_endpoint_url: None,
                azure_endpoint_url: None,
                direct_anthropic_url: None,
                direct_anthropic_key: None,
                direct_openai_url: None,
                direct_openai_key: None,
            },
            ..ServerConfig::new(addr, dir.path().join("data"), CoreConfig::new(ISSUER))
        };
        let gw = app::gateway_config(&cfg).unwrap();
        let core = app::build_core(&cfg, core_clock.clone()).await.unwrap();
        let boot = byollm_core::service::bootstrap_team(
            core.store(),
            core_clock.as_ref(),
            "Acme",
            "owner@acme.example",
        )
        .await
        .unwrap();
        let server = app::serve_on(listener, core, gw).await.unwrap();
        sim.create_oidc_provider(ISSUER, &["sts.amazonaws.com"])
            .unwrap();
        let role_arn = sim
            .create_role(
                "byollm-team",
                &trust_policy(&format!("scoped_principal:{}/*", boot.team_uid)),
                None,
            )
            .unwrap();
        sim.put_role_policy("byollm-team", "bedrock", BROAD_PERMISSIONS)
            .unwrap();
        let env = Env {
            base: format!("http://{addr}"),
            server,
            sim,
            http: reqwest::Client::new(),
            owner_key: boot.api_key.expose().to_owned(),
            role_arn,
            _dir: dir,
        };
        let r = env
            .http
            .patch(format!("{}/api/v1/team/llm-settings", env.base))
            .bearer_auth(&env.owner_key)
            .json(&json!({
                "hosts": {"aws_bedrock": {"enabled": true, "role_arn": env.role_arn, "region": "us-east-1"},
                          "direct_api": {"enabled": false}},
                "worker_identity_tokens": worker_tokens,
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
        env
    }

    /// Starts a run for a new named agent; returns (run id, workload token).
    pub async fn start_run(&self) -> (String, SecretString) {
        let r = self
            .http
            .post(format!("{}/api/v1/agent/identities", self.base))
            .bearer_auth(&self.owner_key)
            .json(&json!({"name": format!("worker-{}", real_now_ms())}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
        let agent: Value = r.json().await.unwrap();
        let r = self
            .http
            .post(format!("{}/api/v1/runs", self.base))
            .bearer_auth(&self.owner_key)
            .json(&json!({"agent_uid": agent["uid"], "prompt": "hi"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
        let v: Value = r.json().await.unwrap();
        (
            v["run_id"].as_str().unwrap().to_owned(),
            SecretString::from(v["workload_token"].as_str().unwrap().to_owned()),
        )
    }

    /// An `OidcManaged` for a new run, with `edit` applied to its config.
    pub async fn managed(
        &self,
        clock: Arc<dyn Clock>,
        edit: impl FnOnce(&mut OidcConfig),
    ) -> (String, OidcManaged) {
        let (run_id, token) = self.start_run().await;
        let mut cfg = OidcConfig::new(&self.role_arn, "us-east-1", &run_session_name(&run_id));
        cfg.sts_endpoint_url = Some(self.sim.endpoint_url());
        edit(&mut cfg);
        let client = Client::new(&self.base, Some(token)).unwrap();
        let managed = OidcManaged::new(
            client,
            TokenSource::Run {
                run_id: run_id.clone(),
            },
            cfg,
            clock,
        );
        (run_id, managed)
    }

    pub fn sts_calls(&self) -> u64 {
        self.sim.call_count("sts:AssumeRoleWithWebIdentity")
    }

    pub async fn stop(self) {
        self.server.shutdown().await;
        self.sim.shutdown().await;
    }
}

/// Waits (in real time, bounded) until `cond` holds.
pub async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The `exp` claim of a JWT, in Unix seconds (no verification: the emulator
/// verifies).
pub fn jwt_exp(token: &str) -> i64 {
    use base64::Engine as _;
    let payload = token.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    v["exp"].as_i64().unwrap()
}
