//! One issuer+gateway and one emulator wired to each other, for the agent
//! runtime's command-line tests (adapted from tests/gateway/harness.rs).

use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;

use reqwest::StatusCode;
use serde_json::{Value, json};

use byollm_awsim::{Awsim, AwsimConfig};
use byollm_core::clock::SystemClock;
use byollm_core::config::CoreConfig;
use byollm_server::config::{ServerConfig, Upstreams};
use byollm_server::{Server, app};

pub const ISSUER_HOST: &str = "issuer.test";
pub const ISSUER: &str = "https://issuer.test";
pub const ACCOUNT: &str = "123456789012";
pub const BIN: &str = env!("CARGO_BIN_EXE_byollm");

pub struct Env {
    pub server: Server,
    pub sim: Awsim,
    pub base: String,
    pub http: reqwest::Client,
    pub owner: String,
    pub owner_key: String,
    pub role_arn: String,
    pub dir: tempfile::TempDir,
}

fn trust_policy(sub_pattern: &str) -> String {
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

const BROAD_PERMISSIONS: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow",
 "Action":["bedrock:InvokeModel","bedrock:InvokeModelWithResponseStream"],
 "Resource":["arn:aws:bedrock:*::foundation-model/*","arn:aws:bedrock:*:*:inference-profile/*"]}]}"#;

impl Env {
    /// A team whose role admits every actor of the team, Bedrock on in
    /// us-east-1, no direct API, worker identity tokens as given.
    pub async fn start(worker_tokens: bool) -> Env {
        let dir = tempfile::tempdir().unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let sim = Awsim::start(AwsimConfig {
            resolve: vec![(ISSUER_HOST.into(), addr)],
            ..AwsimConfig::default()
        })
        .await
        .unwrap();
        let cfg = ServerConfig {
            listen: addr,
            data_dir: dir.path().join("data"),
            store_url: None,
            kek: None,
            core: CoreConfig::new(ISSUER),
            upstreams: Upstreams {
                aws_endpoint_url: Some(sim.endpoint_url()),
                direct_anthropic_url: None,
                direct_anthropic_key: None,
                direct_openai_url: None,
                direct_openai_key: None,
            },
        };
        let gw = app::gateway_config(&cfg).unwrap();
        let core = app::build_core(&cfg, Arc::new(SystemClock)).await.unwrap();
        let boot = byollm_core::service::bootstrap_team(
            &core.store,
            &SystemClock,
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
            owner: boot.owner_uid,
            owner_key: boot.api_key.expose().to_owned(),
            role_arn,
            dir,
        };
        let (s, v) = env
            .api(
                reqwest::Method::PUT,
                "/api/v1/team/llm-settings",
                Some(json!({
                    "hosts": {"aws_bedrock": {"enabled": true, "role_arn": env.role_arn, "region": "us-east-1"},
                              "direct_api": {"enabled": false}},
                    "worker_identity_tokens": worker_tokens,
                })),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        env
    }

    pub async fn api(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.owner_key);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        let status = r.status();
        let text = r.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// Starts a run for a new named agent; returns (run id, workload token).
    pub async fn start_run(&self, prompt: Option<&str>) -> (String, String) {
        let (s, agent) = self
            .api(
                reqwest::Method::POST,
                "/api/v1/agent/identities",
                Some(json!({"name": format!("worker-{}", rand_suffix())})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{agent}");
        let mut body = json!({"agent_uid": agent["uid"], "model": "claude-haiku-4-5"});
        if let Some(p) = prompt {
            body["prompt"] = json!(p);
        }
        let (s, v) = self
            .api(reqwest::Method::POST, "/api/v1/runs", Some(body))
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        (
            v["run_id"].as_str().unwrap().to_owned(),
            v["workload_token"].as_str().unwrap().to_owned(),
        )
    }

    pub async fn run_state(&self, run_id: &str) -> String {
        let (s, v) = self
            .api(
                reqwest::Method::GET,
                &format!("/api/v1/runs/{run_id}"),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        v["state"].as_str().unwrap().to_owned()
    }

    /// A `byollm` command with a clean AWS environment: no ambient AWS
    /// credentials or config files of this machine, endpoints at the emulator.
    pub fn byollm(&self, args: &[&str]) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(BIN);
        cmd.args(args);
        clean_aws_env(&mut cmd, self.dir.path());
        cmd.env("AWS_ENDPOINT_URL", self.sim.endpoint_url())
            .env("BYOLLM_SERVER", &self.base)
            .env_remove("BYOLLM_API_KEY")
            .env_remove("BYOLLM_WORKLOAD_TOKEN")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }

    pub fn sts_calls(&self) -> u64 {
        self.sim.call_count("sts:AssumeRoleWithWebIdentity")
    }

    pub async fn stop(self) {
        self.server.shutdown().await;
        self.sim.shutdown().await;
    }
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::SeqCst)
}

/// Removes this machine's AWS settings from `cmd`'s environment and points the
/// shared files at empty ones in `dir`.
pub fn clean_aws_env(cmd: &mut tokio::process::Command, dir: &Path) {
    for (k, _) in std::env::vars() {
        if k.starts_with("AWS_") {
            cmd.env_remove(k);
        }
    }
    let empty = dir.join("empty-aws-file");
    std::fs::write(&empty, "").unwrap();
    cmd.env("AWS_CONFIG_FILE", &empty)
        .env("AWS_SHARED_CREDENTIALS_FILE", &empty)
        .env("AWS_EC2_METADATA_DISABLED", "true");
}

/// Whether the AWS CLI is on PATH. Missing with `CI` set is a failure; missing
/// elsewhere is a loud skip.
pub fn aws_cli_or_skip(test: &str) -> bool {
    let found = std::process::Command::new("aws")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "{test}: the AWS CLI is missing (pip install awscli); CI must have it"
        );
        eprintln!(
            "\n!!!!!!!! SKIP {test}: the AWS CLI is not installed (pip install awscli) !!!!!!!!\n"
        );
    }
    found
}
