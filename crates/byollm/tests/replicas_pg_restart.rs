//! PostgreSQL restarted under load (issue 13): three `byollm serve` replicas
//! behind HAProxy (replicas_support/cluster.rs) on a PRIVATE PostgreSQL
//! (replicas_support/private_pg.rs), which the test stops with
//! `pg_ctl stop -m fast` mid-load and starts again:
//!
//! - while it is down, every replica's `/readyz` answers 503, and `/api` and
//!   `/v1` answer 503 with a JSON error body and `Retry-After`, each within
//!   [`PROBE_TIMEOUT`] (bounded by the client: an outage must not hang callers);
//! - once it is back, every replica is ready and serves `/api` and `/v1` again
//!   within [`RECOVER`], by itself;
//! - every request answered 2xx (through the balancer or directly) has exactly
//!   one usage row: rows the writer could not commit during the outage are
//!   retried, not lost.
//!
//! Prints the measured time to 503, time to recover and the usage accounting.
//! Needs `haproxy` and the PostgreSQL server binaries (initdb, pg_ctl): without
//! them it fails when CI=true and says SKIPPED loudly otherwise.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr,
    clippy::disallowed_methods,
    reason = "test code: a failed unwrap is a failed test"
)]

use std::time::{Duration, Instant};

use byollm_api::routes;
use serde_json::{Value, json};

#[path = "replicas_support/cluster.rs"]
#[expect(dead_code, reason = "the propagation helpers serve replicas.rs")]
mod cluster;
#[path = "gateway/harness.rs"]
#[expect(dead_code, reason = "the cluster uses only the issuer's host name")]
mod harness;
#[path = "replicas_support/private_pg.rs"]
mod private_pg;

use cluster::{Cluster, MODEL, free_port, haproxy_present, one_usage_row_each, start_load};

const TEST: &str = "the PostgreSQL restart test";
/// Longest any single probe may take to be answered, outage or not: the
/// store's connection wait (3 s) plus margin.
const PROBE_TIMEOUT: Duration = Duration::from_secs(8);
/// Longest from the store going away to every replica answering 503.
const TO_503: Duration = Duration::from_secs(15);
/// Longest from the store being back to every replica serving again.
const RECOVER: Duration = Duration::from_secs(20);

/// What one probe got back.
struct Answer {
    status: u16,
    retry_after: bool,
    body: Option<Value>,
    /// The id of a billed request (`/v1`): its usage row's id.
    request_id: Option<String>,
}

async fn probe(req: reqwest::RequestBuilder, what: &str, billed: bool) -> Answer {
    let resp = req
        .send()
        .await
        .unwrap_or_else(|e| panic!("{what}: no answer within {PROBE_TIMEOUT:?}: {e}"));
    let status = resp.status().as_u16();
    let retry_after = resp.headers().contains_key("retry-after");
    let request_id = resp
        .headers()
        .get("x-byollm-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|_| billed)
        .map(str::to_owned);
    let text = resp
        .text()
        .await
        .unwrap_or_else(|e| panic!("{what}: body not read within {PROBE_TIMEOUT:?}: {e}"));
    Answer {
        status,
        retry_after,
        body: serde_json::from_str(&text).ok(),
        request_id,
    }
}

struct Probes {
    http: reqwest::Client,
    owner: String,
    bases: Vec<String>,
}

impl Probes {
    async fn ready(&self, r: usize) -> Answer {
        let url = format!("{}{}", self.bases[r], routes::READYZ);
        probe(self.http.get(url), "GET /readyz", false).await
    }

    async fn me(&self, r: usize) -> Answer {
        let url = format!("{}{}", self.bases[r], routes::ME);
        probe(
            self.http.get(url).bearer_auth(&self.owner),
            "GET /api/v1/me",
            false,
        )
        .await
    }

    async fn message(&self, r: usize) -> Answer {
        let url = format!("{}{}", self.bases[r], routes::MESSAGES);
        let body = json!({"model": MODEL, "max_tokens": 16,
            "messages": [{"role": "user", "content": "hello"}]});
        probe(
            self.http
                .post(url)
                .header("x-api-key", &self.owner)
                .json(&body),
            "POST /v1/messages",
            true,
        )
        .await
    }
}

/// A 503 the way the issue wants it: a JSON error body and `Retry-After`.
fn assert_unavailable(a: &Answer, what: &str) {
    assert_eq!(a.status, 503, "{what}");
    assert!(a.retry_after, "{what}: 503 without Retry-After");
    let body = a
        .body
        .as_ref()
        .unwrap_or_else(|| panic!("{what}: not JSON"));
    assert!(body["error"].is_object(), "{what}: no JSON error: {body}");
}

/// Polls `probe` until `done` holds (each probe bounded by the client), up to
/// `patience` from `since`; returns the last answer and how long that one
/// probe took. Ids of requests answered 2xx meanwhile go to `answered`.
async fn poll<F, Fut>(
    what: &str,
    since: Instant,
    patience: Duration,
    answered: &mut Vec<String>,
    probe: F,
    done: impl Fn(&Answer) -> bool,
) -> (Answer, Duration)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Answer>,
{
    loop {
        let sent = Instant::now();
        let a = probe().await;
        let took = sent.elapsed();
        if (200..300).contains(&a.status)
            && let Some(id) = &a.request_id
        {
            answered.push(id.clone());
        }
        if done(&a) {
            return (a, took);
        }
        assert!(
            since.elapsed() < patience,
            "{what}: still {} after {patience:?}",
            a.status
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_answer_503_while_postgres_is_down_and_recover_without_losing_usage() {
    use byollm_core::testing::require;
    let bin = private_pg::bin_dir();
    if !require(TEST, "haproxy", haproxy_present())
        || !require(
            TEST,
            "PostgreSQL server binaries (/usr/lib/postgresql/*/bin/initdb, pg_ctl; runuser as root)",
            bin.is_some(),
        )
    {
        return;
    }
    let pg =
        tokio::task::block_in_place(|| private_pg::PrivatePg::start(bin.unwrap(), free_port()));
    let c = Cluster::start(pg.url()).await;
    let p = Probes {
        http: reqwest::Client::builder()
            .timeout(PROBE_TIMEOUT)
            .build()
            .unwrap(),
        owner: c.owner.clone(),
        bases: c.replicas.iter().map(cluster::Replica::base).collect(),
    };
    let mut answered = Vec::new();
    for r in 0..3 {
        let a = p.message(r).await;
        assert_eq!(a.status, 200, "replica {r} before the stop");
        answered.extend(a.request_id);
    }

    let load = start_load(&c, 12);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let stopped = Instant::now();
    tokio::task::block_in_place(|| pg.stop());
    let stop_took = stopped.elapsed();
    // Readiness goes false on every replica (the replicas are probed in turn,
    // each probe waiting out the store's connection wait, so the bound runs
    // from each replica's first probe).
    let mut unready = Vec::new();
    let mut slowest_503 = Duration::ZERO;
    for r in 0..3 {
        let (a, took) = poll(
            "readiness",
            Instant::now(),
            TO_503,
            &mut answered,
            || p.ready(r),
            |a| a.status != 200,
        )
        .await;
        assert_eq!(a.status, 503, "replica {r}'s /readyz");
        unready.push(stopped.elapsed());
        slowest_503 = slowest_503.max(took);
    }
    // /api and /v1 answer 503 with a JSON error, not a hang.
    let mut refusing = Vec::new();
    for r in 0..3 {
        let (a, took_api) = poll(
            "/api",
            Instant::now(),
            TO_503,
            &mut answered,
            || p.me(r),
            |a| a.status != 200,
        )
        .await;
        assert_unavailable(&a, &format!("replica {r}'s /api/v1/me"));
        let (a, took_v1) = poll(
            "/v1",
            Instant::now(),
            TO_503,
            &mut answered,
            || p.message(r),
            |a| a.status != 200,
        )
        .await;
        assert_unavailable(&a, &format!("replica {r}'s /v1/messages"));
        refusing.push(stopped.elapsed());
        slowest_503 = slowest_503.max(took_api).max(took_v1);
    }
    let outage = stopped.elapsed();

    let restarted = Instant::now();
    tokio::task::block_in_place(|| pg.start_again());
    let start_took = restarted.elapsed();
    let mut recovered = Vec::new();
    for r in 0..3 {
        poll(
            "recovery: /readyz",
            restarted,
            RECOVER,
            &mut answered,
            || p.ready(r),
            |a| a.status == 200,
        )
        .await;
        poll(
            "recovery: /api",
            restarted,
            RECOVER,
            &mut answered,
            || p.me(r),
            |a| a.status == 200,
        )
        .await;
        poll(
            "recovery: /v1",
            restarted,
            RECOVER,
            &mut answered,
            || p.message(r),
            |a| a.status == 200,
        )
        .await;
        recovered.push(restarted.elapsed());
    }

    let (sent, through_lb) = load.await.unwrap();
    let direct = answered.len();
    let all: Vec<String> = through_lb.iter().chain(&answered).cloned().collect();
    let rows = one_usage_row_each(&c, &all, Duration::from_secs(30)).await;
    eprintln!(
        "pg restart: pg_ctl stop -m fast took {stop_took:?}; /readyz 503 on each replica at {unready:?}; \
         /api and /v1 503 (JSON, Retry-After) on each at {refusing:?} (probed in turn); the slowest 503 \
         took {slowest_503:?} to answer; store down for {outage:?} (+ {start_took:?} for pg_ctl start)"
    );
    eprintln!(
        "pg restart: after the start, each replica ready and serving /api and /v1 at {recovered:?}"
    );
    eprintln!(
        "pg restart: usage: {sent} sent through the balancer, {} answered 200; {direct} direct probes \
         answered 2xx; {} answered requests, each with exactly one usage row ({rows} rows for the team)",
        through_lb.len(),
        all.len(),
    );
}
