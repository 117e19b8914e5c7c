//! One issuer+gateway and one emulator, wired to each other.

use std::sync::Arc;

use byollm_api::routes;
use reqwest::StatusCode;
use serde_json::{Value, json};

use byollm_api::clock::{Clock, SystemClock};
use byollm_cloudsim::{Cloudsim, CloudsimConfig};
use byollm_core::config::CoreConfig;
use byollm_server::config::{GatewayLimits, ServerConfig};
use byollm_server::{Server, app};

pub const ISSUER_HOST: &str = "issuer.test";
pub const ISSUER: &str = "https://issuer.test";
pub const ACCOUNT: &str = "123456789012";

pub struct Env {
    pub server: Server,
    /// The server's domain (its metrics, for the benchmark's telemetry switch).
    #[allow(dead_code, reason = "read by the gateway benchmark, not by every test")]
    pub core: Arc<byollm_core::service::Core>,
    pub sim: Cloudsim,
    pub base: String,
    pub http: reqwest::Client,
    pub team: String,
    pub owner: String,
    pub owner_key: String,
    pub role_arn: String,
    pub dir: tempfile::TempDir,
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
    /// A team whose role admits every actor of the team, Bedrock on in us-east-1,
    /// the direct APIs configured (and allowed by default).
    pub async fn start() -> Env {
        Env::start_with(json!({})).await
    }

    /// The same, with `extra` merged into the team's LLM settings (top-level keys
    /// replace; `hosts.aws_bedrock` always points at the team role).
    pub async fn start_with(extra: Value) -> Env {
        Env::start_full(
            extra,
            GatewayLimits::default(),
            Arc::new(SystemClock),
            CoreConfig::new(ISSUER),
        )
        .await
    }

    /// [`Env::start_with`] with other `[gateway]` limits (short timeouts).
    pub async fn start_tuned(extra: Value, limits: GatewayLimits) -> Env {
        Env::start_full(
            extra,
            limits,
            Arc::new(SystemClock),
            CoreConfig::new(ISSUER),
        )
        .await
    }

    /// The same on `clock` (a `FakeClock` for tests of lifetimes) and `core`.
    pub async fn start_clocked(extra: Value, clock: Arc<dyn Clock>, core: CoreConfig) -> Env {
        Env::start_full(extra, GatewayLimits::default(), clock, core).await
    }

    /// Every knob: settings, `[gateway]` limits, the clock and the core config.
    pub async fn start_full(
        extra: Value,
        limits: GatewayLimits,
        clock: Arc<dyn Clock>,
        core: CoreConfig,
    ) -> Env {
        let dir = tempfile::tempdir().unwrap();
        let listener = byollm_server::conn::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = listener.local_addr().unwrap();
        let sim = Cloudsim::start(CloudsimConfig {
            resolve: vec![(ISSUER_HOST.into(), addr)],
            ..CloudsimConfig::default()
        })
        .await
        .unwrap();
        let cfg = ServerConfig {
            listen: addr,
            data_dir: dir.path().join("data"),
            // SQLite, or a fresh PostgreSQL database (BYOLLM_TEST_STORE=postgres).
            store_url: byollm_core::testing::store_url(),
            kek: None,
            core,
            gateway: limits,
            connections: Default::default(),
            upstreams: byollm_stack::emulator_upstreams(&sim, &dir.path().join("direct-key"))
                .unwrap(),
            shutdown: Default::default(),
            telemetry: Default::default(),
        };
        let gw = app::gateway_config(&cfg).unwrap();
        let core = app::build_core(&cfg, clock).await.unwrap();
        let boot = byollm_core::service::bootstrap_team(
            core.store(),
            &SystemClock,
            "Acme",
            "owner@acme.example",
        )
        .await
        .unwrap();
        let server = app::serve_on(listener, core.clone(), gw).await.unwrap();
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
            core,
            sim,
            http: reqwest::Client::new(),
            team: boot.team_uid,
            owner: boot.owner_uid,
            owner_key: boot.api_key.expose().to_owned(),
            role_arn,
            dir,
        };
        let mut settings = json!({
            "hosts": {"aws_bedrock": {"enabled": true, "role_arn": env.role_arn, "region": "us-east-1"}}
        });
        if let (Some(doc), Value::Object(extra)) = (settings.as_object_mut(), extra) {
            for (k, v) in extra {
                if k == "hosts" {
                    if let Some(direct) = v.get("direct_api") {
                        doc["hosts"]["direct_api"] = direct.clone();
                    }
                } else {
                    doc.insert(k, v);
                }
            }
        }
        env.put_settings(settings).await;
        env
    }

    /// Replaces the team's settings with `settings` merged (RFC 7396) into a
    /// new team's defaults plus `allow_fallback_outside_cloud: true`: the
    /// fallback these tests exercise, which a new team no longer starts with.
    pub async fn put_settings(&self, settings: Value) {
        let mut doc = serde_json::to_value(byollm_api::types::LlmSettings::default()).unwrap();
        doc["allow_fallback_outside_cloud"] = Value::Bool(true);
        byollm_core::merge_patch::merge_patch(&mut doc, &settings);
        let r = self
            .http
            .put(format!("{}/api/v1/team/llm-settings", self.base))
            .bearer_auth(&self.owner_key)
            .json(&doc)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
    }

    pub async fn api(
        &self,
        method: reqwest::Method,
        path: &str,
        key: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(key);
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

    pub async fn create_agent(&self, name: &str, aws: Option<Value>) -> String {
        let mut body = json!({"name": name});
        if let Some(aws) = aws {
            body["inference_providers"] = json!({"aws": aws});
        }
        let (s, v) = self
            .api(
                reqwest::Method::POST,
                routes::AGENT_IDENTITIES,
                &self.owner_key,
                Some(body),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        v["uid"].as_str().unwrap().to_owned()
    }

    /// Starts a run for an agent; returns (run id, workload token).
    pub async fn start_run(&self, agent: Option<&str>) -> (String, String) {
        let body = match agent {
            Some(a) => json!({"agent_uid": a, "prompt": "hi"}),
            None => json!({"prompt": "hi"}),
        };
        let (s, v) = self
            .api(
                reqwest::Method::POST,
                routes::RUNS,
                &self.owner_key,
                Some(body),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        (
            v["run_id"].as_str().unwrap().to_owned(),
            v["workload_token"].as_str().unwrap().to_owned(),
        )
    }

    /// POSTs an inference request; returns status, headers and body text.
    /// The owner's one-word request for `model` on `path` (`MESSAGES` or
    /// `CHAT_COMPLETIONS`, the body in that route's format).
    pub async fn owner_asks(&self, path: &str, model: &str, stream: bool) -> Reply {
        let body = if path == routes::MESSAGES {
            messages_body(model, "x", stream)
        } else {
            chat_body(model, "x", stream)
        };
        self.infer(path, &self.owner_key, body).await
    }

    pub async fn infer(&self, path: &str, key: &str, body: Value) -> Reply {
        self.infer_with(path, key, body, &[]).await
    }

    pub async fn infer_with(
        &self,
        path: &str,
        key: &str,
        body: Value,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut req = self
            .http
            .post(format!("{}{path}", self.base))
            .header("x-api-key", key)
            .json(&body);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let r = req.send().await.unwrap();
        let status = r.status();
        let headers = r.headers().clone();
        let text = r.text().await.unwrap();
        Reply {
            status,
            headers,
            text,
        }
    }

    pub async fn usage(&self, query: &str) -> Value {
        let (s, v) = self
            .api(
                reqwest::Method::GET,
                &format!("{}{query}", routes::USAGE),
                &self.owner_key,
                None,
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        v
    }

    pub fn sts_calls(&self) -> u64 {
        self.sim.call_count("sts:AssumeRoleWithWebIdentity")
    }

    pub async fn stop(self) {
        self.server.shutdown().await;
        self.sim.shutdown().await;
    }
}

#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }

    /// SSE events as (event name, data JSON).
    pub fn events(&self) -> Vec<(Option<String>, String)> {
        let mut out = Vec::new();
        for block in self.text.split("\n\n").filter(|b| !b.trim().is_empty()) {
            let mut name = None;
            let mut data = String::new();
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("event: ") {
                    name = Some(v.to_owned());
                } else if let Some(v) = line.strip_prefix("data: ") {
                    data.push_str(v);
                }
            }
            out.push((name, data));
        }
        out
    }
}

pub fn messages_body(model: &str, text: &str, stream: bool) -> Value {
    json!({"model": model, "max_tokens": 64, "stream": stream,
           "messages": [{"role": "user", "content": text}]})
}

pub fn chat_body(model: &str, text: &str, stream: bool) -> Value {
    json!({"model": model, "stream": stream, "messages": [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": text}]})
}
