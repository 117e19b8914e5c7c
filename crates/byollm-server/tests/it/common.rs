//! Shared fixtures: an in-process harness (the router driven with `oneshot`), a
//! live server on `127.0.0.1:0`, and teams with every kind of caller.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::ExposeSecret as _;
use serde_json::{Value, json};
use tempfile::TempDir;
use tower::ServiceExt as _;

use byollm_api::clock::{Clock, SystemClock};
use byollm_api::routes;
use byollm_api::types::ActorType;
use byollm_core::config::CoreConfig;
use byollm_core::identity::keys::Algorithm;
use byollm_core::ids;
use byollm_core::service::{Bootstrapped, Core, bootstrap_team};
use byollm_core::store::ApiKeyRow;
use byollm_server::{App, AppState, ServerConfig};

/// The configured issuer: not where the test server listens, on purpose.
pub const ISSUER: &str = "https://issuer.test";
/// The default audience.
pub const STS: &str = "sts.amazonaws.com";

/// A server config on a fresh data directory.
pub fn config(dir: &std::path::Path, alg: Algorithm) -> ServerConfig {
    let mut core = CoreConfig::new(ISSUER);
    core.signing_algorithm = alg;
    ServerConfig {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        data_dir: dir.to_owned(),
        // SQLite, or a fresh PostgreSQL database (BYOLLM_TEST_STORE=postgres).
        store_url: byollm_core::testing::store_url(),
        kek: None,
        core,
        gateway: Default::default(),
        connections: Default::default(),
        upstreams: Default::default(),
        shutdown: Default::default(),
        telemetry: Default::default(),
    }
}

/// A response, body parsed as JSON (`Null` when empty or not JSON).
#[derive(Debug)]
pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
    pub raw: Vec<u8>,
}

impl Resp {
    /// `body[a][b]…` as a string, or panics naming the response.
    pub fn str(&self, pointer: &str) -> String {
        match self.body.pointer(pointer).and_then(Value::as_str) {
            Some(s) => s.to_owned(),
            None => panic!("no string at {pointer} in {} {}", self.status, self.body),
        }
    }

    /// Asserts the status, printing the body when it differs.
    #[track_caller]
    pub fn expect(self, status: u16) -> Self {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected status; body: {}",
            self.body
        );
        self
    }

    /// The `error.field` of an error body.
    pub fn field(&self) -> Option<&str> {
        self.body.pointer("/error/field").and_then(Value::as_str)
    }
}

/// The router driven in process.
pub struct Harness {
    /// Kept so the data directory lives as long as the harness.
    pub _dir: TempDir,
    pub core: Arc<Core>,
    pub router: axum::Router,
}

impl Harness {
    /// A harness on a fresh SQLite data directory with the real clock.
    pub async fn new() -> Harness {
        Harness::with_clock(Arc::new(SystemClock)).await
    }

    /// A harness on the test store (SQLite, or a fresh PostgreSQL database
    /// under `BYOLLM_TEST_STORE=postgres`) reading time from `clock`.
    pub async fn with_clock(clock: Arc<dyn Clock>) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(dir.path(), Algorithm::Es256);
        Harness::build(dir, cfg, clock).await
    }

    /// A harness on `store_url` (PostgreSQL), or on a fresh SQLite data
    /// directory when `None`, whatever the test store is.
    pub async fn on_store(store_url: Option<String>) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = config(dir.path(), Algorithm::Es256);
        cfg.store_url = store_url;
        Harness::build(dir, cfg, Arc::new(SystemClock)).await
    }

    async fn build(dir: tempfile::TempDir, cfg: ServerConfig, clock: Arc<dyn Clock>) -> Harness {
        let core = byollm_server::app::build_core(&cfg, clock).await.unwrap();
        let gateway_cfg = byollm_server::app::gateway_config(&cfg).unwrap();
        let gateway = Arc::new(byollm_gateway::Gateway::new(core.clone(), gateway_cfg).unwrap());
        let router = byollm_server::router(AppState(Arc::new(App {
            core: core.clone(),
            gateway,
        })));
        Harness {
            _dir: dir,
            core,
            router,
        }
    }

    /// Sends raw bytes (or nothing) with an optional bearer credential.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        cred: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> Resp {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(c) = cred {
            req = req.header("authorization", format!("Bearer {c}"));
        }
        let req = match body {
            Some(b) => req
                .header("content-type", "application/json")
                .body(Body::from(b)),
            None => req.body(Body::empty()),
        }
        .unwrap();
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let raw = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap()
            .to_vec();
        let body = serde_json::from_slice(&raw).unwrap_or(Value::Null);
        Resp {
            status,
            headers,
            body,
            raw,
        }
    }

    /// Sends a JSON body.
    pub async fn json(&self, method: Method, path: &str, cred: Option<&str>, body: &Value) -> Resp {
        self.send(method, path, cred, Some(serde_json::to_vec(body).unwrap()))
            .await
    }

    pub async fn get(&self, path: &str, cred: Option<&str>) -> Resp {
        self.send(Method::GET, path, cred, None).await
    }

    /// Sends raw bytes with extra headers.
    pub async fn send_with(
        &self,
        method: Method,
        path: &str,
        cred: &str,
        headers: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Resp {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", format!("Bearer {cred}"))
            .header("content-type", "application/json");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let body = body.map_or_else(Body::empty, |b| Body::from(serde_json::to_vec(b).unwrap()));
        let resp = self
            .router
            .clone()
            .oneshot(req.body(body).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let raw = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap()
            .to_vec();
        let body = serde_json::from_slice(&raw).unwrap_or(Value::Null);
        Resp {
            status,
            headers,
            body,
            raw,
        }
    }

    pub async fn post(&self, path: &str, cred: Option<&str>, body: &Value) -> Resp {
        self.json(Method::POST, path, cred, body).await
    }

    /// Inserts an API key for a member directly on the store: a newly added
    /// member has no key, and only they could create one over HTTP.
    pub async fn insert_member_key(&self, team_uid: &str, member_uid: &str) -> String {
        let key = ids::new_api_key().expose_secret().to_owned();
        self.core
            .store()
            .insert_api_key(
                &ApiKeyRow {
                    id: ids::new_id("key"),
                    team_uid: team_uid.to_owned(),
                    owner_type: ActorType::User,
                    owner_uid: member_uid.to_owned(),
                    name: "test key".to_owned(),
                    key_hash: ids::hash_secret(&key),
                    prefix: ids::visible_prefix(&key),
                    created_at: self.core.clock().now(),
                    expires_at: None,
                    last_used_at: None,
                },
                None,
            )
            .await
            .unwrap();
        key
    }

    /// Adds a member over HTTP (as `by`) and gives them a key.
    pub async fn add_member(&self, team_uid: &str, by: &str, email: &str, role: &str) -> Cred {
        let m = self
            .post(
                routes::TEAM_MEMBERS,
                Some(by),
                &json!({"email": email, "role": role}),
            )
            .await
            .expect(201);
        let uid = m.str("/uid");
        let key = self.insert_member_key(team_uid, &uid).await;
        Cred { uid, key }
    }

    /// Creates a run over HTTP; returns (run id, workload token).
    pub async fn run(&self, by: &str, body: &Value) -> (String, String) {
        let r = self.post(routes::RUNS, Some(by), body).await.expect(201);
        (r.str("/run_id"), r.str("/workload_token"))
    }

    /// Replaces the team's settings (as an admin) with the defaults and
    /// `settings` merged in ([`complete_settings`]).
    pub async fn put_settings(&self, admin: &str, settings: &Value) -> Resp {
        self.json(
            Method::PUT,
            routes::TEAM_LLM_SETTINGS,
            Some(admin),
            &complete_settings(settings),
        )
        .await
    }

    /// A team with an owner, an admin, a member, a named agent with a key, a run
    /// of the member and a run of the agent.
    pub async fn team(&self, name: &str) -> TeamFx {
        let b = bootstrap_team(
            self.core.store(),
            self.core.clock().as_ref(),
            name,
            &format!("owner@{name}.test"),
        )
        .await
        .unwrap();
        let owner = Cred {
            uid: b.owner_uid.clone(),
            key: b.api_key.expose().to_owned(),
        };
        let admin = self
            .add_member(
                &b.team_uid,
                &owner.key,
                &format!("admin@{name}.test"),
                "admin",
            )
            .await;
        let member = self
            .add_member(
                &b.team_uid,
                &owner.key,
                &format!("member@{name}.test"),
                "member",
            )
            .await;
        let agent_uid = self
            .post(
                routes::AGENT_IDENTITIES,
                Some(&admin.key),
                &json!({"name": "builder"}),
            )
            .await
            .expect(201)
            .str("/uid");
        let agent_key = self
            .post(
                routes::API_KEYS,
                Some(&admin.key),
                &json!({"name": "ci", "agent_uid": agent_uid}),
            )
            .await
            .expect(201)
            .str("/key");
        let (member_run, member_run_token) = self.run(&member.key, &json!({})).await;
        let (agent_run, agent_run_token) = self.run(&agent_key, &json!({})).await;
        TeamFx {
            uid: b.team_uid,
            owner,
            admin,
            member,
            agent_uid,
            agent_key,
            member_run,
            member_run_token,
            agent_run,
            agent_run_token,
        }
    }
}

/// A member (or owner) and their key.
#[derive(Debug, Clone)]
pub struct Cred {
    pub uid: String,
    pub key: String,
}

/// A team with one of each kind of caller.
#[derive(Debug, Clone)]
pub struct TeamFx {
    pub uid: String,
    pub owner: Cred,
    pub admin: Cred,
    pub member: Cred,
    pub agent_uid: String,
    pub agent_key: String,
    pub member_run: String,
    pub member_run_token: String,
    pub agent_run: String,
    pub agent_run_token: String,
}

/// Two teams with worker identity tokens on.
pub async fn two_teams(h: &Harness) -> (TeamFx, TeamFx) {
    let a = h.team("alpha").await;
    let b = h.team("beta").await;
    for t in [&a, &b] {
        h.put_settings(&t.admin.key, &worker_tokens_on())
            .await
            .expect(200);
    }
    (a, b)
}

/// An identity-token request body.
pub fn mint_body(audience: &str, seconds: i64) -> Value {
    json!({"audience": audience, "requested_duration_seconds": seconds})
}

/// The claims of a compact JWS, unverified (for checking what a caller got).
pub fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

/// Settings with worker identity tokens on (everything else default).
/// A complete settings document: a new team's defaults with `partial` merged
/// in (RFC 7396), as the tests' `PUT`s meant before `PUT` required every field.
pub fn complete_settings(partial: &Value) -> Value {
    let mut doc = serde_json::to_value(byollm_api::types::LlmSettings::default()).unwrap();
    byollm_core::merge_patch::merge_patch(&mut doc, partial);
    doc
}

pub fn worker_tokens_on() -> Value {
    json!({"worker_identity_tokens": true})
}

/// Snapshot settings for this thread's scope: maps sorted, so a serde_json
/// feature (`preserve_order`) turned on elsewhere in the workspace cannot
/// reorder a snapshot.
pub fn sorted_snapshots() -> insta::internals::SettingsBindDropGuard {
    let mut settings = insta::Settings::clone_current();
    settings.set_sort_maps(true);
    settings.bind_to_scope()
}

/// Now, from the real clock (tests may not read `SystemTime` directly).
pub fn now() -> i64 {
    SystemClock.now()
}

/// A live server on a real socket.
pub struct Live {
    pub dir: TempDir,
    pub server: byollm_server::Server,
    pub base: String,
    pub http: reqwest::Client,
}

impl Live {
    /// Bootstraps team "Acme" with owner owner@example.com on the live store.
    pub async fn bootstrap_acme(&self) -> Bootstrapped {
        let core = &self.server.core;
        bootstrap_team(
            core.store(),
            core.clock().as_ref(),
            "Acme",
            "owner@example.com",
        )
        .await
        .unwrap()
    }

    pub async fn start(alg: Algorithm) -> Live {
        let dir = tempfile::tempdir().unwrap();
        Live::start_in(dir, alg).await
    }

    pub async fn start_in(dir: TempDir, alg: Algorithm) -> Live {
        let cfg = config(dir.path(), alg);
        Live::start_cfg(dir, &cfg).await
    }

    /// On SQLite whatever `BYOLLM_TEST_STORE` says, for a test of the SQLite
    /// files themselves.
    pub async fn start_sqlite(alg: Algorithm) -> Live {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = config(dir.path(), alg);
        cfg.store_url = None;
        Live::start_cfg(dir, &cfg).await
    }

    async fn start_cfg(dir: TempDir, cfg: &ServerConfig) -> Live {
        let server = byollm_server::start(cfg, Arc::new(SystemClock))
            .await
            .unwrap();
        let base = format!("http://{}", server.addr);
        Live {
            dir,
            server,
            base,
            http: reqwest::Client::new(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// POSTs JSON with a bearer credential; returns (status, body).
    pub async fn post(&self, path: &str, cred: &str, body: &Value) -> (u16, Value) {
        let r = self
            .http
            .post(self.url(path))
            .bearer_auth(cred)
            .json(body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn put(&self, path: &str, cred: &str, body: &Value) -> (u16, Value) {
        let r = self
            .http
            .put(self.url(path))
            .bearer_auth(cred)
            .json(body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }
}

/// A log sink shared by every thread: sqlx's SQLite driver logs from its own
/// worker threads, which a thread-local subscriber would not see.
#[derive(Clone, Default)]
pub struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Capture {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}
