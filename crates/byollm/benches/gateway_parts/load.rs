//! Open-loop load (S2, S6) and time to first token (S4) against any of the
//! three paths to the emulator's direct Anthropic API: the upstream alone,
//! nginx in front of it, and byollm (`/v1/messages` → the direct API), so
//! each byollm figure has the floor's beside it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use byollm_api::routes;

use crate::floor::{NGINX_HOWTO, Nginx};
use crate::harness::{Env, messages_body};
use crate::summary;

/// Where to send: a URL and its headers.
#[derive(Clone)]
pub struct Target {
    pub name: &'static str,
    pub url: String,
    pub headers: Vec<(&'static str, String)>,
}

impl Target {
    fn post(&self, http: &reqwest::Client) -> reqwest::RequestBuilder {
        let mut r = http.post(&self.url);
        for (k, v) in &self.headers {
            r = r.header(*k, v);
        }
        r
    }
}

/// A client for load: no Nagle, a pool big enough for every connection.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(4096)
        .build()
        .unwrap()
}

/// Constant arrival rate for `seconds`; latency from each request's scheduled
/// send time (queueing counted, not hidden).
pub async fn open_loop(target: &Arc<Target>, body: &Value, rate: f64, seconds: f64) -> Value {
    let http = client();
    let body = Arc::new(serde_json::to_vec(body).unwrap());
    let total = (rate * seconds) as usize;
    let start = Instant::now() + Duration::from_millis(50);
    let mut tasks = Vec::with_capacity(total);
    for i in 0..total {
        let scheduled = start + Duration::from_secs_f64(i as f64 / rate);
        let (http, target, body) = (http.clone(), target.clone(), body.clone());
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep_until(scheduled.into()).await;
            let sent = Instant::now();
            let req = target
                .post(&http)
                .header("content-type", "application/json")
                .body(body.to_vec());
            let ok = match req.send().await {
                Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
                Err(_) => false,
            };
            (
                ok,
                scheduled.elapsed().as_secs_f64() * 1e6,
                sent.elapsed().as_secs_f64() * 1e6,
            )
        }));
    }
    let mut lat = Vec::with_capacity(total);
    let mut from_send = Vec::with_capacity(total);
    let mut errors = 0;
    for t in tasks {
        let (ok, us, sent_us) = t.await.unwrap();
        if ok {
            lat.push(us);
            from_send.push(sent_us);
        } else {
            errors += 1;
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    let mut s = summary(lat);
    s["path"] = json!(target.name);
    s["rate_target"] = json!(rate);
    s["achieved_rps"] = json!(total as f64 / elapsed);
    s["errors"] = json!(errors);
    // tokio's timer releases scheduled sends on a 1 ms grid, so latency from the
    // scheduled time carries up to ~1 ms of generator slack; this one does not
    // (but hides queueing before the send).
    s["from_send"] = summary(from_send);
    s
}

/// One line of a sweep: byollm's p99 beside the others' and its ratio to nginx's.
pub fn print_rate(section: &str, rate: f64, rows: &[Value]) {
    let p99 = |name: &str| {
        rows.iter()
            .find(|r| r["path"] == name)
            .and_then(|r| r["p99_us"].as_f64())
    };
    let achieved = |name: &str| {
        rows.iter()
            .find(|r| r["path"] == name)
            .map(|r| {
                format!(
                    "{:.0}/s, {} errors",
                    r["achieved_rps"].as_f64().unwrap_or(0.0),
                    r["errors"]
                )
            })
            .unwrap_or_default()
    };
    let ms = |v: Option<f64>| v.map_or("-".into(), |v| format!("{:.2} ms", v / 1000.0));
    let ratio = match (p99("byollm"), p99("nginx")) {
        (Some(b), Some(n)) => format!("{:.2}×", b / n),
        _ => "-".into(),
    };
    println!(
        "{section} {rate} rps: p99 upstream {} | nginx {} | byollm {} ({}) | byollm/nginx {ratio}",
        ms(p99("upstream")),
        ms(p99("nginx")),
        ms(p99("byollm")),
        achieved("byollm"),
    );
}

/// The highest rate at which `name` kept p99 ≤ 2 ms with no errors.
pub fn best_rate(rows: &[Value], name: &str) -> Value {
    rows.iter()
        .filter(|r| {
            r["path"] == name
                && r["errors"] == 0
                && r["p99_us"].as_f64().is_some_and(|p| p <= 2000.0)
        })
        .filter_map(|r| r["rate_target"].as_f64())
        .fold(None, |m: Option<f64>, r| Some(m.map_or(r, |m| m.max(r))))
        .map_or(Value::Null, |r| json!(r))
}

/// Time to the first chunk of a streamed answer, `n` one at a time.
pub async fn ttft(target: &Target, body: &Value, n: usize) -> Vec<f64> {
    let http = client();
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let mut r = target.post(&http).json(body).send().await.unwrap();
        assert!(r.status().is_success(), "{}", r.status());
        assert!(r.chunk().await.unwrap().is_some());
        out.push(t.elapsed().as_secs_f64() * 1e6);
        while r.chunk().await.unwrap().is_some() {}
    }
    out
}

/// The three paths to the emulator's direct Anthropic API (nginx when installed).
pub fn targets(env: &Env, nginx: Option<&Nginx>) -> Vec<Arc<Target>> {
    let key = env.sim.direct_api_key().to_owned();
    let upstream = |name, base: &str| Target {
        name,
        url: format!("{base}/anthropic/v1/messages"),
        headers: vec![
            ("x-api-key", key.clone()),
            ("anthropic-version", "2023-06-01".to_owned()),
        ],
    };
    let mut v = vec![Arc::new(upstream("upstream", &env.sim.endpoint_url()))];
    if let Some(n) = nginx {
        v.push(Arc::new(upstream("nginx", &n.base)));
    }
    v.push(Arc::new(Target {
        name: "byollm",
        url: format!("{}{}", env.base, routes::MESSAGES),
        headers: vec![("x-api-key", env.owner_key.clone())],
    }));
    v
}

/// S2 (open loop at each rate, the three paths in turn, the order rotated per
/// rate) and S4's time to first token (interleaved, one at a time), on an
/// `env` whose team routes to the direct API. `BENCH_RATES` (comma-separated)
/// and `BENCH_SECONDS` override the sweep; `BENCH_NO_TTFT=1` skips S4.
pub async fn floor_sections(env: &Env, quick: bool) -> (Value, Value) {
    let upstream = env.sim.endpoint_url();
    let nginx = Nginx::start(upstream.trim_start_matches("http://").trim_end_matches('/'));
    if nginx.is_none() {
        eprintln!("\n*** S2/S4 without nginx: {NGINX_HOWTO} ***\n");
    }
    // `BENCH_PATHS=byollm` (comma-separated names): only those paths, e.g.
    // to profile byollm alone under one rate.
    let only: Option<Vec<String>> = std::env::var("BENCH_PATHS")
        .ok()
        .map(|v| v.split(',').map(|p| p.trim().to_owned()).collect());
    let targets: Vec<_> = targets(env, nginx.as_ref())
        .into_iter()
        .filter(|t| only.as_ref().is_none_or(|o| o.iter().any(|p| p == t.name)))
        .collect();
    let rates: Vec<f64> = match std::env::var("BENCH_RATES") {
        Ok(list) => list
            .split(',')
            .filter_map(|r| r.trim().parse().ok())
            .collect(),
        Err(_) if quick => vec![500.0, 1000.0],
        Err(_) => vec![2500.0, 5000.0, 10000.0],
    };
    let seconds: f64 = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if quick { 1.0 } else { 10.0 });
    let body = messages_body("claude-sonnet-4-6", "hello", false);
    let mut rows = Vec::new();
    for (i, &rate) in rates.iter().enumerate() {
        let mut at_rate = Vec::new();
        for k in 0..targets.len() {
            let t = &targets[(i + k) % targets.len()];
            at_rate.push(open_loop(t, &body, rate, seconds).await);
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        print_rate("S2 ", rate, &at_rate);
        rows.extend(at_rate);
    }
    let best = json!({
        "upstream": best_rate(&rows, "upstream"),
        "nginx": best_rate(&rows, "nginx"),
        "byollm": best_rate(&rows, "byollm"),
    });
    println!("S2  highest rate with p99 <= 2 ms and no errors: {best}");
    if std::env::var_os("BENCH_NO_TTFT").is_some() {
        return (
            json!({"rows": rows, "best_rate_p99_le_2ms": best}),
            Value::Null,
        );
    }
    // S4: time to first token, the paths interleaved one request at a time.
    let stream_body = messages_body("claude-sonnet-4-6", "hold the line", true);
    let n = if quick { 50 } else { 500 };
    let mut ttfts: Vec<Vec<f64>> = vec![Vec::new(); targets.len()];
    for i in 0..n {
        for k in 0..targets.len() {
            let j = (i + k) % targets.len();
            ttfts[j].extend(ttft(&targets[j], &stream_body, 1).await);
        }
    }
    let mut s4 = json!({});
    for (t, v) in targets.iter().zip(ttfts) {
        s4[t.name] = summary(v);
    }
    let p99 = |name: &str| s4[name]["p99_us"].as_f64();
    let added = match (p99("byollm"), p99("nginx")) {
        (Some(b), Some(n)) => json!(b - n),
        _ => Value::Null,
    };
    s4["byollm_over_nginx_p99_us"] = added;
    println!("S4  time to first token: {s4}");
    drop(nginx);
    (json!({"rows": rows, "best_rate_p99_le_2ms": best}), s4)
}
