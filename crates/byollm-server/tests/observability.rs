//! What operators see (issue 14): the metrics listener, request ids on every
//! response, log line and error body, and the access log line — with no key in
//! any of them.
//!
//! Its own test binary, apart from `it`: it reads INFO lines through the
//! process-wide log subscriber it installs, and `tracing`'s level cache is
//! process-wide too — next to `it`'s tests running on other threads with and
//! without their own subscribers, INFO events here were filtered out at random.

#![expect(clippy::unwrap_used, clippy::panic, reason = "tests fail loudly")]

#[path = "it/common.rs"]
#[expect(
    dead_code,
    reason = "the shared fixtures; this binary uses two of them"
)]
mod common;

use std::net::SocketAddr;
use std::sync::Arc;

use serde_json::Value;

use byollm_api::clock::SystemClock;
use byollm_api::routes;
use byollm_core::identity::keys::Algorithm;
use byollm_server::config::MetricsListen;

use crate::common::{Capture, config};

async fn get(
    http: &reqwest::Client,
    url: &str,
    key: Option<&str>,
    request_id: Option<&str>,
) -> reqwest::Response {
    let mut req = http.get(url);
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    if let Some(id) = request_id {
        req = req.header("x-request-id", id);
    }
    req.send().await.unwrap()
}

fn header(r: &reqwest::Response, name: &str) -> String {
    r.headers()
        .get(name)
        .unwrap_or_else(|| panic!("no {name}"))
        .to_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn request_ids_access_log_and_metrics_listener() {
    let logs = Capture::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(true)
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::set_global_default(subscriber).expect("the only test of this binary");

    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), Algorithm::Es256);
    cfg.telemetry.metrics_listen = MetricsListen::At(SocketAddr::from(([127, 0, 0, 1], 0)));
    let server = byollm_server::start(&cfg, Arc::new(SystemClock))
        .await
        .unwrap();
    let metrics_addr = server.metrics_addr.expect("a metrics listener");
    assert_ne!(metrics_addr, server.addr, "never the public listener");
    let team = byollm_core::service::bootstrap_team(
        server.core.store(),
        &SystemClock,
        "Acme",
        "owner@example.com",
    )
    .await
    .unwrap();
    let key = team.api_key.expose().to_owned();
    let http = reqwest::Client::new();
    let base = format!("http://{}", server.addr);
    let me = format!("{base}{}", routes::ME);

    // The caller's sane id is kept.
    let r = get(&http, &me, Some(&key), Some("trace-abc_123")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-request-id"), "trace-abc_123");

    // No id, or one that is not a sane token: a generated one, also in the
    // error body.
    let too_long = "x".repeat(129);
    for sent in [None, Some(too_long.as_str()), Some("has space")] {
        let r = get(&http, &me, None, sent).await;
        assert_eq!(r.status(), 401);
        let id = header(&r, "x-request-id");
        assert!(id.starts_with("req_"), "{id}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["request_id"], id.as_str(), "{body}");
        assert_eq!(body["error"]["code"], "unauthenticated");
    }
    // An unknown route's 404 carries it too.
    let r = get(&http, &format!("{base}/nope/123"), Some(&key), None).await;
    assert_eq!(r.status(), 404);
    let id = header(&r, "x-request-id");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["request_id"], id.as_str());

    // The public listener does not serve metrics.
    let r = get(&http, &format!("{base}/metrics"), None, None).await;
    assert_ne!(r.status(), 200);
    let text = get(&http, &format!("http://{metrics_addr}/metrics"), None, None)
        .await
        .text()
        .await
        .unwrap();
    for series in [
        r#"byollm_http_requests_total{method="GET",route="/api/v1/me",status_class="2xx"} 1"#,
        r#"byollm_http_requests_total{method="GET",route="/api/v1/me",status_class="4xx"} 3"#,
        r#"byollm_http_requests_total{method="GET",route="unmatched",status_class="4xx"} 2"#,
        r#"byollm_auth_failures_total{reason="missing"} 4"#,
        "byollm_http_request_duration_seconds_bucket{le=\"0.00005\",method=\"GET\",route=\"/api/v1/me\"}",
        "byollm_usage_rows_dropped_total 0",
        "byollm_signing_key_active_age_seconds ",
        "process_resident_memory_bytes ",
        "process_open_fds ",
    ] {
        assert!(text.contains(series), "{series} missing:\n{text}");
    }
    assert!(!text.contains(&team.team_uid), "no team ids by default");
    assert!(!text.contains("/nope/123"), "paths are never labels");
    server.shutdown().await;

    let text = logs.text();
    assert!(!text.contains(&key), "a key reached the log");
    let access: Vec<Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["target"] == "byollm::access")
        .collect();
    assert_eq!(access.len(), 6, "one line per request:\n{text}");
    let ok = access
        .iter()
        .find(|l| l["span"]["request_id"] == "trace-abc_123")
        .unwrap_or_else(|| panic!("no access line for the first request:\n{text}"));
    assert_eq!(ok["level"], "INFO");
    assert_eq!(ok["method"], "GET");
    assert_eq!(ok["route"], "/api/v1/me");
    assert_eq!(ok["status"], 200);
    assert!(ok["latency_ms"].as_f64().unwrap() >= 0.0);
    assert_eq!(ok["team"], team.team_uid.as_str());
    assert_eq!(ok["actor_type"], "user");
    let refused = access.iter().find(|l| l["status"] == 401).unwrap();
    assert!(refused.get("team").is_none(), "{refused}");
    assert!(
        refused["span"]["request_id"]
            .as_str()
            .unwrap()
            .starts_with("req_")
    );
}
