//! The floor and the cost of telemetry (issues 14 and 15): the emulator's
//! direct Anthropic API called alone, through nginx as a bare keep-alive
//! reverse proxy, and through byollm (`/v1/messages` → the direct API) with
//! metrics and the access log at the default level on and off, one request at
//! a time, interleaved, the order rotated each iteration. Added latency is a
//! path's time minus the direct call's in the same iteration.
//!
//! "Telemetry off" pauses metric recording (`Metrics::set_recording`) and sets
//! the log filter to `off`; "on" records metrics and logs at `info` (what
//! `byollm serve` does by default: an access line per request, text format)
//! to a file, as an operator's stderr would go to a file or journald.

use std::io::Write as _;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use byollm_api::routes;
use serde_json::{Value, json};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Registry, reload};

use crate::harness::{Env, messages_body};
use crate::{pct, summary};

/// Turns the process's log output (what `byollm serve` installs) on and off.
pub struct LogSwitch {
    handle: reload::Handle<EnvFilter, Registry>,
    pub path: String,
}

impl LogSwitch {
    /// Installs the global subscriber, off, writing text lines to `path`,
    /// filtered as `byollm serve` filters its log lines; with `phases`, also
    /// the phase marks' layer ([`crate::phases`]).
    pub fn install(path: String, phases: bool) -> LogSwitch {
        use tracing_subscriber::Layer as _;
        use tracing_subscriber::filter::{FilterExt as _, filter_fn};
        let file = std::fs::File::create(&path).unwrap();
        let (filter, handle) = reload::Layer::new(EnvFilter::new("off"));
        tracing_subscriber::registry()
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(false)
                    .with_writer(std::sync::Mutex::new(file))
                    .with_filter(filter.and(filter_fn(byollm_telemetry::logged))),
            )
            .with(phases.then(crate::phases::layer))
            .init();
        LogSwitch { handle, path }
    }

    /// `info` (the default level of `byollm serve`) or `off`.
    pub fn set(&self, on: bool) {
        let level = if on { "info" } else { "off" };
        self.handle.reload(EnvFilter::new(level)).unwrap();
    }
}

/// nginx as a bare keep-alive reverse proxy to one upstream; stopped on drop.
pub struct Nginx {
    child: Child,
    pub base: String,
    _dir: tempfile::TempDir,
}

/// What to do when nginx is missing.
pub const NGINX_HOWTO: &str = "nginx not found: install it with `apt-get install nginx-light` \
     (Debian; the benchmark runs /usr/sbin/nginx or `nginx` on PATH, or $BENCH_NGINX)";

fn nginx_binary() -> Option<String> {
    if let Some(p) = std::env::var_os("BENCH_NGINX") {
        return Some(p.to_string_lossy().into_owned());
    }
    if std::path::Path::new("/usr/sbin/nginx").exists() {
        return Some("/usr/sbin/nginx".into());
    }
    let ok = Command::new("nginx")
        .arg("-v")
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    ok.then(|| "nginx".into())
}

impl Nginx {
    /// Starts nginx (one worker, no access log, HTTP/1.1 keep-alive to the
    /// upstream) in front of `upstream` (`host:port`); `None` when nginx is
    /// not installed.
    pub fn start(upstream: &str) -> Option<Nginx> {
        let bin = nginx_binary()?;
        let dir = tempfile::tempdir().unwrap();
        // A free port, handed to nginx (which binds it itself).
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let conf = format!(
            "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\n\
             error_log {d}/error.log warn;\n\
             events {{ worker_connections 4096; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
               fastcgi_temp_path {d}/fcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
               upstream up {{ server {upstream}; keepalive 64; }}\n\
               server {{\n    listen 127.0.0.1:{port} backlog=8192;\n    tcp_nodelay on;\n    keepalive_requests 1000000;\n\
                 location / {{\n      proxy_pass http://up;\n      proxy_http_version 1.1;\n\
                   proxy_set_header Connection \"\";\n      proxy_buffering off;\n    }}\n  }}\n}}\n",
            d = dir.path().display()
        );
        let path = dir.path().join("nginx.conf");
        std::fs::File::create(&path)
            .unwrap()
            .write_all(conf.as_bytes())
            .unwrap();
        let child = Command::new(&bin)
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("{bin}: {e}"));
        let addr = format!("127.0.0.1:{port}");
        let started = Instant::now();
        while std::net::TcpStream::connect(&addr).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "nginx did not listen on {addr}; see {}/error.log",
                dir.path().display()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(Nginx {
            child,
            base: format!("http://{addr}"),
            _dir: dir,
        })
    }

    /// The nginx process (one, `master_process off`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `nginx -v`'s answer.
    pub fn version() -> String {
        nginx_binary()
            .and_then(|b| Command::new(b).arg("-v").output().ok())
            .map(|o| String::from_utf8_lossy(&o.stderr).trim().to_owned())
            .unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Path {
    Direct,
    Nginx,
    TelemetryOn,
    TelemetryOff,
}

async fn timed(req: reqwest::RequestBuilder) -> f64 {
    let t = Instant::now();
    let r = req.send().await.unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let _ = r.bytes().await.unwrap();
    t.elapsed().as_secs_f64() * 1e6
}

/// One round of `n` iterations (after 50 of warm-up) of every path.
async fn round(env: &Env, nginx: Option<&Nginx>, log: &LogSwitch, key: &str, n: usize) -> Value {
    let http = reqwest::Client::builder()
        .tcp_nodelay(true)
        .build()
        .unwrap();
    let body = messages_body("claude-sonnet-4-6", "hello", false);
    let direct_url = format!("{}/anthropic/v1/messages", env.sim.endpoint_url());
    let nginx_url = nginx.map(|x| format!("{}/anthropic/v1/messages", x.base));
    let byollm_url = format!("{}{}", env.base, routes::MESSAGES);
    let mut paths = vec![Path::Direct, Path::TelemetryOn, Path::TelemetryOff];
    if nginx.is_some() {
        paths.push(Path::Nginx);
    }
    let mut added: Vec<(Path, Vec<f64>)> = paths.iter().map(|p| (*p, Vec::new())).collect();
    for i in 0..n + 50 {
        let mut took = Vec::with_capacity(paths.len());
        for k in 0..paths.len() {
            let path = paths[(i + k) % paths.len()];
            let upstream = |url: &str| {
                http.post(url)
                    .header("x-api-key", key)
                    .header("anthropic-version", "2023-06-01")
                    .json(&body)
            };
            let us = match path {
                Path::Direct => timed(upstream(&direct_url)).await,
                Path::Nginx => timed(upstream(nginx_url.as_deref().unwrap())).await,
                Path::TelemetryOn | Path::TelemetryOff => {
                    let on = path == Path::TelemetryOn;
                    let (metrics, access_log) = telemetry_parts();
                    env.core.metrics().set_recording(on && metrics);
                    log.set(on && access_log);
                    let us = timed(
                        http.post(&byollm_url)
                            .header("x-api-key", &env.owner_key)
                            .json(&body),
                    )
                    .await;
                    env.core.metrics().set_recording(true);
                    log.set(false);
                    us
                }
            };
            took.push((path, us));
        }
        if i < 50 {
            continue;
        }
        let direct = took.iter().find(|(p, _)| *p == Path::Direct).unwrap().1;
        for (p, us) in took {
            let slot = &mut added.iter_mut().find(|(q, _)| *q == p).unwrap().1;
            slot.push(if p == Path::Direct { us } else { us - direct });
        }
    }
    let get = |p: Path| added.iter().find(|(q, _)| *q == p).map(|(_, v)| v.clone());
    let sorted = |mut v: Vec<f64>| {
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        v
    };
    let direct = sorted(get(Path::Direct).unwrap());
    let on = sorted(get(Path::TelemetryOn).unwrap());
    let off = sorted(get(Path::TelemetryOff).unwrap());
    let cost = json!({
        "p50_us": pct(&on, 0.5) - pct(&off, 0.5),
        "p99_us": pct(&on, 0.99) - pct(&off, 0.99),
    });
    let mut r = json!({
        "direct": summary(direct.clone()),
        "byollm_added": summary(on.clone()),
        "byollm_added_telemetry_off": summary(off.clone()),
        "telemetry_cost": cost,
        "samples_us": {"direct": direct, "byollm_added": on, "byollm_added_telemetry_off": off},
    });
    if let Some(ng) = get(Path::Nginx) {
        let ng = sorted(ng);
        r["nginx_added"] = summary(ng.clone());
        r["ratio_to_nginx"] = json!({
            "p50": r["byollm_added"]["p50_us"].as_f64().unwrap() / pct(&ng, 0.5),
            "p99": r["byollm_added"]["p99_us"].as_f64().unwrap() / pct(&ng, 0.99),
        });
        r["samples_us"]["nginx_added"] = json!(ng);
    }
    r
}

fn ratio(v: &Value) -> String {
    v.as_f64().map_or("-".to_owned(), |r| format!("{r:.2}×"))
}

/// The median over rounds of `f(round)`.
fn median_of(rounds: &[Value], f: impl Fn(&Value) -> Option<f64>) -> Value {
    let mut v: Vec<f64> = rounds.iter().filter_map(&f).collect();
    if v.is_empty() {
        return Value::Null;
    }
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    json!(v[v.len() / 2])
}

/// What "telemetry on" turns on: both (default), or only one part to see
/// what each costs (`BENCH_TELEMETRY=metrics|log`).
fn telemetry_parts() -> (bool, bool) {
    match std::env::var("BENCH_TELEMETRY").as_deref() {
        Ok("metrics") => (true, false),
        Ok("log") => (false, true),
        _ => (true, true),
    }
}

/// The floor section: three rounds of `n`, printed and returned for the JSON.
pub async fn floor(log: &LogSwitch, n: usize) -> Value {
    let env = Env::start().await;
    // byollm → the emulator's direct Anthropic API (no Bedrock route).
    env.put_settings(json!({"hosts": {"aws_bedrock": {"enabled": false}}}))
        .await;
    let probe = env
        .infer(
            routes::MESSAGES,
            &env.owner_key,
            messages_body("claude-sonnet-4-6", "x", false),
        )
        .await;
    assert_eq!(
        probe.header("x-byollm-route"),
        Some("direct_api:claude-sonnet-4-6"),
        "{}",
        probe.text
    );
    let upstream = env.sim.endpoint_url();
    let upstream = upstream.trim_start_matches("http://").trim_end_matches('/');
    let nginx = Nginx::start(upstream);
    let missing = nginx.is_none();
    if missing {
        eprintln!("\n*** FLOOR SKIPPED: {NGINX_HOWTO} ***\n");
    }
    let key = env.sim.direct_api_key().to_owned();
    let mut rounds = Vec::new();
    for rep in 0..3 {
        let r = round(&env, nginx.as_ref(), log, &key, n).await;
        let line = |name: &str| {
            let s = &r[name];
            if s.is_null() {
                "-".to_owned()
            } else {
                format!(
                    "p50 {:.0} µs p99 {:.0} µs",
                    s["p50_us"].as_f64().unwrap(),
                    s["p99_us"].as_f64().unwrap()
                )
            }
        };
        println!(
            "FLOOR rep {rep}: nginx added {} | byollm added {} (telemetry off: {}) | telemetry costs p50 {:.1} µs p99 {:.1} µs | ratio to nginx p50 {} p99 {}",
            line("nginx_added"),
            line("byollm_added"),
            line("byollm_added_telemetry_off"),
            r["telemetry_cost"]["p50_us"].as_f64().unwrap(),
            r["telemetry_cost"]["p99_us"].as_f64().unwrap(),
            ratio(&r["ratio_to_nginx"]["p50"]),
            ratio(&r["ratio_to_nginx"]["p99"]),
        );
        rounds.push(r);
    }
    let med = |a: &'static str, b: &'static str| median_of(&rounds, move |r| r[a][b].as_f64());
    let median = json!({
        "nginx_added_p50_us": med("nginx_added", "p50_us"),
        "nginx_added_p99_us": med("nginx_added", "p99_us"),
        "byollm_added_p50_us": med("byollm_added", "p50_us"),
        "byollm_added_p99_us": med("byollm_added", "p99_us"),
        "byollm_added_telemetry_off_p50_us": med("byollm_added_telemetry_off", "p50_us"),
        "byollm_added_telemetry_off_p99_us": med("byollm_added_telemetry_off", "p99_us"),
        "telemetry_cost_p50_us": med("telemetry_cost", "p50_us"),
        "telemetry_cost_p99_us": med("telemetry_cost", "p99_us"),
        "ratio_to_nginx_p50": med("ratio_to_nginx", "p50"),
        "ratio_to_nginx_p99": med("ratio_to_nginx", "p99"),
    });
    println!("FLOOR median of 3 rounds: {median}");
    let log_lines = std::fs::read_to_string(&log.path)
        .map(|t| t.lines().count())
        .unwrap_or(0);
    drop(nginx);
    env.stop().await;
    json!({
        "what": "c=1, interleaved, order rotated; added = path - direct call in the same iteration",
        "upstream": "byollm-cloudsim direct Anthropic API (POST /anthropic/v1/messages)",
        "nginx": Nginx::version(),
        "nginx_missing": missing.then_some(NGINX_HOWTO),
        "access_log_lines_written": log_lines,
        "requests_per_round": n,
        "median": median,
        "rounds": rounds,
    })
}
