//! One issuer+gateway and one emulator wired to each other, for the agent
//! runtime's command-line tests (adapted from tests/gateway/harness.rs).

use std::ops::Deref;
use std::path::Path;
use std::process::Stdio;

use byollm_api::routes;
use reqwest::StatusCode;
use serde_json::{Value, json};

#[path = "../gateway/harness.rs"]
mod base;
#[path = "../support/tools.rs"]
pub mod tools;

pub const BIN: &str = env!("CARGO_BIN_EXE_byollm");

/// The gateway tests' stack, with the calls the command-line tests need.
pub struct Env(base::Env);

impl Deref for Env {
    type Target = base::Env;
    fn deref(&self) -> &base::Env {
        &self.0
    }
}

impl Env {
    /// A team whose role admits every actor of the team, Bedrock on in
    /// us-east-1, no direct API, worker identity tokens as given.
    pub async fn start(worker_tokens: bool) -> Env {
        Env(base::Env::start_with(json!({
            "hosts": {"direct_api": {"enabled": false}},
            "worker_identity_tokens": worker_tokens,
        }))
        .await)
    }

    /// An owner-authenticated API call.
    pub async fn api(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        self.0.api(method, path, &self.0.owner_key, body).await
    }

    /// Starts a run for a new named agent; returns (run id, workload token).
    pub async fn start_run(&self, prompt: Option<&str>) -> (String, String) {
        let (s, agent) = self
            .api(
                reqwest::Method::POST,
                routes::AGENT_IDENTITIES,
                Some(json!({"name": format!("worker-{}", rand_suffix())})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{agent}");
        let mut body = json!({"agent_uid": agent["uid"], "model": "claude-haiku-4-5"});
        if let Some(p) = prompt {
            body["prompt"] = json!(p);
        }
        let (s, v) = self
            .api(reqwest::Method::POST, routes::RUNS, Some(body))
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
                &routes::fill(routes::RUN, run_id),
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

    pub async fn stop(self) {
        self.0.stop().await;
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

/// Whether the AWS CLI is on PATH (a failure in CI, a loud skip elsewhere).
pub fn aws_cli_or_skip(test: &str) -> bool {
    tools::present_or_skip(test, &["aws", "--version"], "pip install awscli")
}
