//! `byollm serve` (the built binary) on its SQLite store, against the emulator's
//! direct APIs, killed and stopped the ways production does it:
//!
//! - `kill -9` during 200 concurrent requests: after a restart, every request
//!   that got a complete 200 response has its usage row (matched by its
//!   `x-byollm-request-id`).
//! - SIGTERM with a slow stream in flight: no new connections, the stream
//!   completes, its row is stored, the process exits 0.
//! - SIGTERM with a stream slower than the grace period: the stream ends with
//!   an error event, its row says so, the process exits 0.
//!
//! Every server here takes its direct upstream from `byollm.toml`'s
//! `[upstreams]` (no flag), and its piped log carries no ANSI colour.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr,
    clippy::disallowed_methods,
    reason = "test code: a failed unwrap is a failed test"
)]

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use byollm_api::clock::SystemClock;
use byollm_api::routes;
use byollm_cloudsim::{Cloudsim, CloudsimConfig};
use byollm_core::store::{Store, UsageFilter, UsageRow};
use byollm_server::config::Upstreams;
use futures::StreamExt as _;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};

const MODEL: &str = "claude-sonnet-4-6";

/// A data directory with a bootstrapped team, and the emulator as upstream.
struct Fixture {
    sim: Cloudsim,
    upstreams: Upstreams,
    data: PathBuf,
    team: String,
    key: String,
    dir: tempfile::TempDir,
}

impl Fixture {
    async fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let sim = Cloudsim::start(CloudsimConfig::default()).await.unwrap();
        let upstreams =
            byollm_stack::emulator_upstreams(&sim, &dir.path().join("direct-key")).unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        // The team is made offline, as `byollm admin bootstrap` does; its
        // settings default to the direct APIs (Bedrock off).
        let store = Store::open_data_dir(&data).await.unwrap();
        let boot =
            byollm_core::service::bootstrap_team(&store, &SystemClock, "Acme", "o@acme.example")
                .await
                .unwrap();
        Fixture {
            sim,
            upstreams,
            data,
            team: boot.team_uid,
            key: boot.api_key.expose().to_owned(),
            dir,
        }
    }

    /// Starts `byollm serve` with `shutdown_grace_seconds`.
    async fn serve(&self, grace_seconds: u64) -> Serve {
        let config = self.dir.path().join("byollm.toml");
        // The direct upstream comes from the config file's `[upstreams]`.
        let u = &self.upstreams;
        std::fs::write(
            &config,
            format!(
                "version = 1\n[server]\nshutdown_grace_seconds = {grace_seconds}\n\
                 [upstreams]\ndirect_anthropic_url = {:?}\ndirect_anthropic_key = {:?}\n",
                u.direct_anthropic_url.as_deref().unwrap(),
                u.direct_anthropic_key.as_deref().unwrap(),
            ),
        )
        .unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_byollm"))
            .arg("serve")
            .args(["--listen", "127.0.0.1:0"])
            .args(["--issuer-url", "https://issuer.test"])
            .arg("--data-dir")
            .arg(&self.data)
            .arg("--config")
            .arg(&config)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let base = tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                let line = lines
                    .next_line()
                    .await
                    .unwrap()
                    .expect("byollm serve exited before listening");
                // Stderr is a pipe, not a terminal: logs carry no ANSI colour.
                assert!(
                    !line.contains('\x1b'),
                    "ANSI escape in a piped log: {line:?}"
                );
                if let Some(rest) = line.strip_prefix("byollm listening on ") {
                    break rest.split_whitespace().next().unwrap().to_owned();
                }
            }
        })
        .await
        .expect("byollm serve did not start");
        // Keep draining stderr so the server never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Serve { child, base }
    }

    /// The usage rows in the store, read without a server.
    async fn stored_rows(&self) -> Vec<UsageRow> {
        let store = Store::open_data_dir(&self.data).await.unwrap();
        store
            .list_usage(&self.team, &UsageFilter::default(), None, 100_000)
            .await
            .unwrap()
    }
}

struct Serve {
    child: Child,
    base: String,
}

impl Serve {
    fn post(&self, http: &reqwest::Client, key: &str, stream: bool) -> reqwest::RequestBuilder {
        http.post(format!("{}{}", self.base, routes::MESSAGES))
            .header("x-api-key", key)
            .json(&json!({"model": MODEL, "max_tokens": 64, "stream": stream,
                "messages": [{"role": "user", "content": "hello there"}]}))
    }

    fn signal(&self, sig: &str) {
        let pid = self.child.id().unwrap().to_string();
        let ok = std::process::Command::new("kill")
            .args([sig, &pid])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {sig} {pid}");
    }

    async fn exit_code(mut self) -> Option<i32> {
        let status = tokio::time::timeout(Duration::from_secs(15), self.child.wait())
            .await
            .expect("byollm serve did not exit")
            .unwrap();
        status.code()
    }
}

/// One request to the end: its id when the response was a complete 200 (a
/// stream read to its `message_stop`, a whole body that parses).
async fn complete(req: reqwest::RequestBuilder, stream: bool) -> Option<String> {
    let resp = req.send().await.ok()?;
    if resp.status() != 200 {
        return None;
    }
    let id = resp
        .headers()
        .get("x-byollm-request-id")?
        .to_str()
        .ok()?
        .to_owned();
    let body = resp.text().await.ok()?;
    let whole = if stream {
        body.trim_end().ends_with(r#"{"type":"message_stop"}"#)
            || body.contains("event: message_stop")
    } else {
        serde_json::from_str::<Value>(&body).is_ok_and(|v| v["type"] == "message")
    };
    whole.then_some(id)
}

/// Every request id the usage API lists, following the pages.
async fn listed_ids(serve: &Serve, http: &reqwest::Client, key: &str) -> Vec<String> {
    let mut ids = Vec::new();
    let mut url = format!("{}{}?limit=50", serve.base, routes::USAGE);
    loop {
        let page: Value = http
            .get(&url)
            .bearer_auth(key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        for r in page["requests"].as_array().unwrap() {
            ids.push(r["id"].as_str().unwrap().to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(c) => url = format!("{}{}?limit=50&cursor={c}", serve.base, routes::USAGE),
            None => return ids,
        }
    }
}

fn outcome(row: &UsageRow) -> String {
    let attempts: Value = serde_json::from_str(&row.attempts).unwrap();
    attempts[attempts.as_array().unwrap().len() - 1]["outcome"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_loses_no_row_of_an_answered_request() {
    const REQUESTS: usize = 200;
    /// Answers before the kill: about half, so many are in flight at that moment.
    const KILL_AFTER: usize = 100;
    let fx = Fixture::new().await;
    // Streams take a while, so the kill lands among answers being sent.
    fx.sim
        .faults()
        .set_stream_event_delay(Duration::from_millis(10));
    let serve = fx.serve(20).await;
    let http = reqwest::Client::new();
    let mut pending: futures::stream::FuturesUnordered<_> = (0..REQUESTS)
        .map(|i| {
            let stream = i % 2 == 0;
            complete(serve.post(&http, &fx.key, stream), stream)
        })
        .collect();
    let mut answered = HashSet::new();
    let mut serve = serve;
    while let Some(done) = pending.next().await {
        if let Some(id) = done {
            answered.insert(id);
            if answered.len() == KILL_AFTER {
                serve.child.start_kill().unwrap();
            }
        }
    }
    let status = serve.child.wait().await.unwrap();
    assert_eq!(status.code(), None, "killed by a signal, not exited");
    assert!(answered.len() >= KILL_AFTER, "{}", answered.len());
    assert!(
        answered.len() < REQUESTS,
        "the kill came after every request was answered; nothing was in flight"
    );

    let serve = fx.serve(20).await;
    let listed: HashSet<String> = listed_ids(&serve, &http, &fx.key)
        .await
        .into_iter()
        .collect();
    let missing: Vec<&String> = answered.difference(&listed).collect();
    assert!(
        missing.is_empty(),
        "{} of {} answered requests have no usage row after kill -9 ({} rows), e.g. {:?}",
        missing.len(),
        answered.len(),
        listed.len(),
        &missing[..missing.len().min(5)]
    );
    serve.signal("-TERM");
    assert_eq!(serve.exit_code().await, Some(0));
}

/// Reads SSE events from a streaming response until `stop` says so; returns
/// the text read.
async fn read_until(resp: &mut reqwest::Response, text: &mut String, stop: impl Fn(&str) -> bool) {
    while !stop(text) {
        match resp.chunk().await.unwrap() {
            Some(chunk) => text.push_str(&String::from_utf8_lossy(&chunk)),
            None => return,
        }
    }
}

async fn refuses_connections(addr: &str) -> bool {
    for _ in 0..500 {
        if tokio::net::TcpStream::connect(addr).await.is_err() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_a_stream_in_flight_finish_then_exits_0() {
    let fx = Fixture::new().await;
    fx.sim
        .faults()
        .set_stream_event_delay(Duration::from_millis(150));
    let serve = fx.serve(15).await;
    let http = reqwest::Client::new();
    let mut resp = serve.post(&http, &fx.key, true).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let id = resp.headers()["x-byollm-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let mut text = String::new();
    read_until(&mut resp, &mut text, |t| t.contains("message_start")).await;

    serve.signal("-TERM");
    // No new connections while the stream runs on.
    let addr = serve.base.trim_start_matches("http://").to_owned();
    assert!(
        refuses_connections(&addr).await,
        "still accepting after SIGTERM"
    );
    read_until(&mut resp, &mut text, |_| false).await;
    assert!(text.contains("event: message_stop"), "{text}");
    assert!(!text.contains("event: error"), "{text}");
    assert_eq!(serve.exit_code().await, Some(0));

    let rows = fx.stored_rows().await;
    let row = rows
        .iter()
        .find(|r| r.id == id)
        .expect("the drained stream's row");
    assert_eq!(outcome(row), "ok");
    assert!(row.output_tokens > 1, "{row:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_past_the_grace_ends_the_stream_with_an_error_event_and_its_row() {
    let fx = Fixture::new().await;
    // Slower than the grace period: the stream cannot finish in time.
    fx.sim
        .faults()
        .set_stream_event_delay(Duration::from_millis(700));
    let serve = fx.serve(1).await;
    let http = reqwest::Client::new();
    let mut resp = serve.post(&http, &fx.key, true).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let id = resp.headers()["x-byollm-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let mut text = String::new();
    read_until(&mut resp, &mut text, |t| t.contains("message_start")).await;

    serve.signal("-TERM");
    read_until(&mut resp, &mut text, |_| false).await;
    assert!(!text.contains("event: message_stop"), "{text}");
    let last = text.trim_end().rsplit("\n\n").next().unwrap();
    assert!(
        last.starts_with("event: error") && last.contains("shutting down"),
        "the stream ends with an error event: {last}"
    );
    assert_eq!(serve.exit_code().await, Some(0));

    let rows = fx.stored_rows().await;
    let row = rows
        .iter()
        .find(|r| r.id == id)
        .expect("the ended stream's row");
    assert_eq!(outcome(row), "ended by server shutdown");
}
