//! The metrics as operators consume them: a real Prometheus (Debian
//! `prometheus`) scrapes byollm's metrics listener while the gateway serves a
//! Bedrock request and falls back from a refused role, and its HTTP query API
//! shows the series move. Also: `promtool check rules` accepts the shipped
//! alerting rules, whose metric names must exist.
//!
//! Without the binaries: a failure when `CI` is set, a loud SKIP otherwise.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use byollm_api::routes;
use serde_json::Value;

use crate::harness::{Env, messages_body, trust_policy};

const ALERTS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../deploy/prometheus/alerts.yml"
);

/// Whether `tool` runs; `false` (after a loud SKIP line) when it is missing
/// outside CI.
fn have(tool: &str) -> bool {
    match Command::new(tool).arg("--version").output() {
        Ok(_) => true,
        Err(e) if std::env::var_os("CI").is_some() => {
            panic!("{tool} is required in CI: {e} (apt-get install -y prometheus)")
        }
        Err(e) => {
            eprintln!(
                "\n*** SKIP {tool}: not installed ({e}); apt-get install -y prometheus ***\n"
            );
            false
        }
    }
}

#[test]
fn promtool_accepts_the_shipped_alerting_rules() {
    if !have("promtool") {
        return;
    }
    let out = Command::new("promtool")
        .args(["check", "rules", ALERTS])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "promtool refuses {ALERTS}:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Every series the rules read is one byollm exports.
    let rules = std::fs::read_to_string(ALERTS).unwrap();
    for name in [
        "byollm_sts_calls_total",
        "byollm_gateway_fallbacks_total",
        "byollm_gateway_requests_total",
        "byollm_usage_rows_dropped_total",
        "byollm_usage_queue_depth",
        "byollm_signing_key_active_age_seconds",
    ] {
        assert!(rules.contains(name), "{name}");
    }
}

/// The Prometheus server, killed when dropped.
struct Prometheus {
    child: Child,
    base: String,
    _dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    /// Starts Prometheus scraping `target` every second, on a free port.
    fn start(target: std::net::SocketAddr) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
                 scrape_configs:\n  - job_name: byollm\n    static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .unwrap();
        // Prometheus takes an address, not a listener: a port free a moment ago.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Prometheus {
            child,
            base: format!("http://127.0.0.1:{port}"),
            _dir: dir,
        }
    }

    /// The value of an instant query that returns one sample (0 when empty).
    async fn value(&self, http: &reqwest::Client, query: &str) -> Option<f64> {
        let r = http
            .get(format!("{}/api/v1/query", self.base))
            .query(&[("query", query)])
            .send()
            .await
            .ok()?;
        let body: Value = r.json().await.ok()?;
        if body["status"] != "success" {
            return None;
        }
        let result = body["data"]["result"].as_array()?;
        match result.first() {
            None => Some(0.0),
            Some(sample) => sample["value"][1].as_str()?.parse().ok(),
        }
    }

    /// Polls `query` until `ok` holds of its value (scrapes come every
    /// second); panics with the last value after 20 s.
    async fn until(&self, http: &reqwest::Client, query: &str, ok: impl Fn(f64) -> bool) {
        let mut last = None;
        for _ in 0..80 {
            last = self.value(http, query).await;
            if last.is_some_and(&ok) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        panic!("Prometheus: `{query}` stayed at {last:?}");
    }
}

#[tokio::test]
async fn a_real_prometheus_sees_requests_fallbacks_and_sts_outcomes() {
    if !have("prometheus") {
        return;
    }
    let mut env = Env::start().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    env.server.serve_metrics(listener).unwrap();
    let metrics = env.server.metrics_addr.unwrap();
    let prom = Prometheus::start(metrics);
    let http = reqwest::Client::new();
    // Scraped, before any inference: nothing counted yet.
    prom.until(&http, r#"up{job="byollm"}"#, |v| v == 1.0).await;
    let requests = "sum(byollm_gateway_requests_total)";
    assert_eq!(prom.value(&http, requests).await, Some(0.0));

    // A refused role: the trust policy admits another team only, so the
    // owner's request falls back to the direct API.
    env.sim
        .update_assume_role_policy(
            "byollm-team",
            &trust_policy("scoped_principal:someoneelse/*"),
        )
        .unwrap();
    let r = env
        .owner_asks(routes::MESSAGES, "claude-sonnet-4-6", false)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.header("x-byollm-route"),
        Some("direct_api:claude-sonnet-4-6")
    );
    // One id names the request and its usage row.
    let id = r.header("x-request-id").unwrap();
    assert!(id.starts_with("req_"), "{id}");
    assert_eq!(r.header("x-byollm-request-id"), Some(id));
    // A caller's own id is echoed, and the caller formats' error bodies carry it.
    let r = env
        .infer_with(
            routes::MESSAGES,
            &env.owner_key,
            serde_json::json!({"model": "claude-sonnet-4-6"}),
            &[("x-request-id", "caller-7")],
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(r.header("x-request-id"), Some("caller-7"));
    assert_eq!(r.json()["error"]["request_id"], "caller-7", "{}", r.text);
    // A Bedrock request: the policy admits the team again; a run's token is a
    // credential the broker has not seen fail.
    env.sim
        .update_assume_role_policy(
            "byollm-team",
            &trust_policy(&format!("scoped_principal:{}/*", env.team)),
        )
        .unwrap();
    let (_, token) = env.start_run(None).await;
    let r = env
        .infer(
            routes::MESSAGES,
            &token,
            messages_body("claude-sonnet-4-6", "x", false),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(
        r.header("x-byollm-route")
            .unwrap()
            .starts_with("aws_bedrock:"),
        "{:?}",
        r.header("x-byollm-route")
    );

    for (query, expected) in [
        (
            r#"sum(byollm_gateway_requests_total{host="aws_bedrock",outcome="ok",format="anthropic",model="claude-sonnet-4-6"})"#,
            1.0,
        ),
        (
            r#"sum(byollm_gateway_requests_total{host="direct_api",outcome="ok"})"#,
            1.0,
        ),
        (
            r#"sum(byollm_gateway_fallbacks_total{from="aws_bedrock",to="direct_api",reason="role_refused"})"#,
            1.0,
        ),
        (
            r#"sum(byollm_sts_calls_total{outcome="access_denied"})"#,
            1.0,
        ),
        (r#"sum(byollm_sts_calls_total{outcome="ok"})"#, 1.0),
        (
            r#"sum(byollm_http_requests_total{route="/v1/messages",method="POST",status_class="2xx"})"#,
            2.0,
        ),
        (
            r#"sum(byollm_http_requests_total{route="/v1/messages",method="POST",status_class="4xx"})"#,
            1.0,
        ),
        (r#"sum(byollm_credential_cache_total{event="miss"})"#, 2.0),
        (
            r#"sum(byollm_identity_tokens_issued_total{actor_type="user"})"#,
            2.0,
        ),
    ] {
        prom.until(&http, query, |v| v == expected).await;
    }
    for query in [
        r#"sum(byollm_gateway_tokens_total{host="aws_bedrock",direction="output"})"#,
        r#"sum(byollm_gateway_tokens_total{host="direct_api",direction="input"})"#,
        r#"sum(byollm_upstream_duration_seconds_count{host="aws_bedrock"})"#,
        "sum(byollm_sts_call_duration_seconds_count)",
        "byollm_usage_rows_written_total",
        "process_resident_memory_bytes",
    ] {
        prom.until(&http, query, |v| v > 0.0).await;
    }
    drop(prom);
    env.stop().await;
}
