//! Two replicas on one PostgreSQL database (issue 13): a revocation, a member's
//! removal and a run's end made through replica A are refused by replica B
//! long before its 30-second cache TTL, because A's write announces itself
//! (`NOTIFY`) and B drops the cached entry; after B's listening connection is
//! killed, B re-subscribes and keeps hearing changes.
//!
//! PostgreSQL only, by nature: SQLite is the single-node store and has no
//! notifications. Without `BYOLLM_TEST_POSTGRES_URL` this says SKIPPED loudly
//! (and fails when CI=true).

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use byollm_api::clock::SystemClock;
use byollm_api::routes;
use byollm_core::auth::CACHE_TTL_SECONDS;
use byollm_core::identity::keys::Algorithm;
use byollm_core::testing;

use crate::common::config;

/// Longest a test waits for a change to arrive: far below the cache TTL, so
/// an arrival proves the notification, not the TTL.
const PATIENCE: Duration = Duration::from_secs(10);

fn postgres_or_skip() -> Option<String> {
    testing::require(
        "the replica change-notification test",
        testing::POSTGRES_ENV,
        testing::postgres_configured(),
    )
    .then(testing::fresh_postgres_database)
}

struct Replicas {
    _dir: tempfile::TempDir,
    a: byollm_server::Server,
    b: byollm_server::Server,
    http: reqwest::Client,
}

impl Replicas {
    async fn start(url: &str) -> Replicas {
        // One data directory: the replicas share its KEK file, as replicas
        // share one KEK in production.
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = config(dir.path(), Algorithm::Es256);
        cfg.store_url = Some(url.to_owned());
        let a = byollm_server::start(&cfg, Arc::new(SystemClock))
            .await
            .unwrap();
        let b = byollm_server::start(&cfg, Arc::new(SystemClock))
            .await
            .unwrap();
        let r = Replicas {
            _dir: dir,
            a,
            b,
            http: reqwest::Client::new(),
        };
        r.until("both replicas listen", || async {
            r.a.core.caches_trusted() && r.b.core.caches_trusted()
        })
        .await;
        r
    }

    async fn call(
        &self,
        on: &byollm_server::Server,
        method: reqwest::Method,
        path: &str,
        cred: &str,
        body: Option<Value>,
    ) -> u16 {
        let mut req = self
            .http
            .request(method, format!("http://{}{path}", on.addr))
            .bearer_auth(cred);
        if let Some(b) = body {
            req = req.json(&b);
        }
        req.send().await.unwrap().status().as_u16()
    }

    async fn me(&self, on: &byollm_server::Server, cred: &str) -> u16 {
        self.call(on, reqwest::Method::GET, routes::ME, cred, None)
            .await
    }

    /// Polls `cond` until it holds, failing after [`PATIENCE`].
    async fn until<F, Fut>(&self, what: &str, cond: F)
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let waited = tokio::time::timeout(PATIENCE, async {
            while !cond().await {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        assert!(
            waited.is_ok(),
            "{what}: not within {PATIENCE:?} (the cache TTL is {CACHE_TTL_SECONDS} s)"
        );
    }
}

#[tokio::test]
async fn a_revocation_through_one_replica_is_refused_by_the_other() {
    let Some(url) = postgres_or_skip() else {
        return;
    };
    let r = Replicas::start(&url).await;
    let core = &r.a.core;
    let team = byollm_core::service::bootstrap_team(
        core.store(),
        core.clock().as_ref(),
        "Acme",
        "owner@acme.test",
    )
    .await
    .unwrap();
    let owner = team.api_key.expose().to_owned();
    let post = |path: String, body: Value| {
        let r = &r;
        let owner = owner.clone();
        async move {
            let resp = r
                .http
                .post(format!("http://{}{path}", r.a.addr))
                .bearer_auth(owner)
                .json(&body)
                .send()
                .await
                .unwrap();
            assert!(resp.status().is_success(), "{path}: {}", resp.status());
            resp.json::<Value>().await.unwrap()
        }
    };

    // A second key of the owner, cached on B, revoked through A.
    let key = post(routes::API_KEYS.to_owned(), json!({"name": "laptop"})).await;
    let (key_id, secret) = (key["id"].as_str().unwrap(), key["key"].as_str().unwrap());
    assert_eq!(r.me(&r.b, secret).await, 200);
    assert_eq!(
        r.call(
            &r.a,
            reqwest::Method::DELETE,
            &routes::fill(routes::API_KEY, key_id),
            &owner,
            None
        )
        .await,
        204
    );
    r.until("B refuses the revoked key", || async {
        r.me(&r.b, secret).await == 401
    })
    .await;

    // A run's token, cached on B, finished through A.
    let run = post(routes::RUNS.to_owned(), json!({})).await;
    let (run_id, token) = (
        run["run_id"].as_str().unwrap(),
        run["workload_token"].as_str().unwrap(),
    );
    assert_eq!(r.me(&r.b, token).await, 200);
    post(routes::fill(routes::RUN_FINISH, run_id), json!({})).await;
    r.until("B refuses the finished run's token", || async {
        r.me(&r.b, token).await == 401
    })
    .await;

    // B's listening connection dies: B re-subscribes and still hears changes.
    let subscribed = r.b.core.subscriptions();
    let killed = sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'LISTEN%'")
        .execute(&sqlx::AnyPool::connect(&url).await.unwrap())
        .await
        .unwrap()
        .rows_affected();
    assert!(killed >= 1, "the listeners' connections were found");
    let key = post(routes::API_KEYS.to_owned(), json!({"name": "second"})).await;
    let (key_id, secret) = (key["id"].as_str().unwrap(), key["key"].as_str().unwrap());
    r.until("B listens again", || async {
        r.b.core.subscriptions() > subscribed && r.b.core.caches_trusted()
    })
    .await;
    assert_eq!(r.me(&r.b, secret).await, 200);
    assert_eq!(
        r.call(
            &r.a,
            reqwest::Method::DELETE,
            &routes::fill(routes::API_KEY, key_id),
            &owner,
            None
        )
        .await,
        204
    );
    r.until("B refuses a key revoked after it re-subscribed", || async {
        r.me(&r.b, secret).await == 401
    })
    .await;
    r.a.shutdown().await;
    r.b.shutdown().await;
}
