//! Gateway overhead and load (performance targets S1, S1b, S2, S4, S5 of
//! `reference/performance.md`), everything on loopback in one process: the
//! emulator as upstream (real SigV4 and event-stream framing, zero added delay),
//! byollm's server with the gateway, and the load generator.
//!
//! Run: `cargo bench -p byollm --bench gateway` (about ten minutes;
//! `BENCH_QUICK=1` for a smoke run). One section alone: `BENCH_ONLY=floor`
//! (the floor and telemetry cost), `BENCH_ONLY=phases` (where one request's
//! time goes, [`phases`]), `BENCH_ONLY=s2` (the S2 sweep and S4's time to first
//! token beside nginx and the upstream; `BENCH_RATES=5000 BENCH_SECONDS=20`
//! override the sweep, e.g. to profile one rate with `perf`). Raw results go to
//! `target/bench-gateway.json` (`$CARGO_TARGET_DIR/bench-gateway.json` when set).
//! nginx is Debian's `nginx-light` (`apt-get install nginx-light`); without it
//! the floor columns are skipped with a message saying so.
//!
//! - FLOOR (issues 14 and 15, [`floor`]): the emulator's direct Anthropic API
//!   alone, through nginx (a bare keep-alive reverse proxy) and through byollm
//!   with metrics and the access log on and off, interleaved: byollm's added
//!   latency beside nginx's, their ratio, and what telemetry costs per
//!   request (p50 and p99, µs).
//! - S1/S1b: one request at a time, gateway and direct interleaved A B A B;
//!   added latency = gateway − direct per pair; median of 3 repetitions.
//!   Direct calls use the AWS SDK with the emulator's admin credentials.
//! - S2 ([`load`]): open-loop constant arrival rate (2,500, 5,000, 10,000/s,
//!   10 s each) on the upstream alone, nginx and byollm → the direct API in
//!   turn; latency from each request's scheduled send time (queueing counted,
//!   not hidden); byollm's p99 over nginx's, and the highest rate each keeps
//!   p99 ≤ 2 ms.
//! - S4: time to first token of a streamed answer, the three paths
//!   interleaved one at a time; then 1,024 idle streams held open through the
//!   gateway and the RSS growth per stream (S5; an upper bound: the process
//!   also holds the emulator's and the client's side of each stream).
//! - S6: the identity-token endpoint (ES256, an audit row per token) under
//!   the same open-loop generator, up to 20,000/s.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    clippy::print_stderr,
    clippy::disallowed_methods,
    reason = "benchmark code"
)]

#[path = "../tests/gateway/harness.rs"]
#[allow(dead_code, reason = "shared with the tests; the bench uses part of it")]
mod harness;

#[path = "gateway_parts/floor.rs"]
mod floor;
#[path = "gateway_parts/load.rs"]
mod load;
#[path = "gateway_parts/phases.rs"]
mod phases;

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_bedrockruntime::primitives::Blob;
use aws_sdk_bedrockruntime::types::{ContentBlock, ConversationRole, Message};
use byollm_api::routes;
use serde_json::{Value, json};

use harness::{Env, chat_body, messages_body};

/// The allocator `byollm serve` runs with (its `main.rs`), so the gateway in
/// this process allocates as the server does.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn summary(mut v: Vec<f64>) -> Value {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    json!({"n": v.len(), "p50_us": pct(&v, 0.5), "p90_us": pct(&v, 0.9), "p99_us": pct(&v, 0.99), "p999_us": pct(&v, 0.999)})
}

fn direct_client(env: &Env) -> aws_sdk_bedrockruntime::Client {
    let (ak, sk) = env.sim.admin_credentials();
    let cfg = aws_sdk_bedrockruntime::Config::builder()
        .behavior_version(aws_sdk_bedrockruntime::config::BehaviorVersion::latest())
        .region(aws_sdk_bedrockruntime::config::Region::new("us-east-1"))
        .endpoint_url(env.sim.endpoint_url())
        .credentials_provider(aws_credential_types::Credentials::new(
            ak, sk, None, None, "bench",
        ))
        .retry_config(aws_sdk_bedrockruntime::config::retry::RetryConfig::disabled())
        .build();
    aws_sdk_bedrockruntime::Client::from_conf(cfg)
}

async fn gateway_call(env: &Env, http: &reqwest::Client, path: &str, body: &Value) -> f64 {
    let t = Instant::now();
    let r = http
        .post(format!("{}{path}", env.base))
        .header("x-api-key", &env.owner_key)
        .json(body)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let _ = r.bytes().await.unwrap();
    t.elapsed().as_secs_f64() * 1e6
}

/// A user message of about `bytes` bytes ("hello" when 0).
fn prompt(bytes: usize) -> String {
    if bytes == 0 {
        return "hello".to_owned();
    }
    "lorem ipsum dolor sit amet ".repeat(bytes / 27 + 1)[..bytes].to_owned()
}

/// Pairs of (gateway, direct) latencies, interleaved; the user message is
/// [`prompt`]`(bytes)`.
async fn pairs(env: &Env, n: usize, openai: bool, bytes: usize) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let http = reqwest::Client::builder()
        .tcp_nodelay(true)
        .build()
        .unwrap();
    let direct = direct_client(env);
    let text = prompt(bytes);
    let anth = messages_body("claude-sonnet-4-6", &text, false);
    let chat = chat_body("claude-sonnet-4-6", &text, false);
    let raw = serde_json::to_vec(
        &json!({"anthropic_version": "bedrock-2023-05-31", "max_tokens": 64,
        "messages": [{"role": "user", "content": text}]}),
    )
    .unwrap();
    let (mut g, mut d, mut added) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..n + 50 {
        let gw = if openai {
            gateway_call(env, &http, routes::CHAT_COMPLETIONS, &chat).await
        } else {
            gateway_call(env, &http, routes::MESSAGES, &anth).await
        };
        let t = Instant::now();
        if openai {
            direct
                .converse()
                .model_id("global.anthropic.claude-sonnet-4-6")
                .messages(
                    Message::builder()
                        .role(ConversationRole::User)
                        .content(ContentBlock::Text(text.clone()))
                        .build()
                        .unwrap(),
                )
                .send()
                .await
                .unwrap();
        } else {
            direct
                .invoke_model()
                .model_id("global.anthropic.claude-sonnet-4-6")
                .content_type("application/json")
                .body(Blob::new(raw.clone()))
                .send()
                .await
                .unwrap();
        }
        let dr = t.elapsed().as_secs_f64() * 1e6;
        if i >= 50 {
            g.push(gw);
            d.push(dr);
            added.push(gw - dr);
        }
    }
    (g, d, added)
}

fn rss_kb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

async fn idle_streams(env: &Arc<Env>, n: usize) -> Value {
    let http = reqwest::Client::builder()
        .tcp_nodelay(true)
        .build()
        .unwrap();
    let body = messages_body("claude-sonnet-4-6", "hold the line", true);
    // Streams held open and idle: the upstream waits before every event.
    env.sim
        .faults()
        .set_stream_event_delay(Duration::from_secs(30));
    // RSS is read with half the streams open and with all of them, both
    // after a settle, and the growth per stream is the slope between the two:
    // a baseline read before any stream opens would also count memory the
    // allocator gives back from earlier sections meanwhile (mimalloc returns
    // freed pages), which once made the difference negative.
    let open = |count: usize| -> Vec<_> {
        (0..count)
            .map(|_| {
                let (http, body, env) = (http.clone(), body.clone(), env.clone());
                tokio::spawn(async move {
                    http.post(format!("{}{}", env.base, routes::MESSAGES))
                        .header("x-api-key", &env.owner_key)
                        .json(&body)
                        .send()
                        .await
                })
            })
            .collect()
    };
    let mut held = open(n / 2);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let before = rss_kb();
    held.extend(open(n - n / 2));
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = rss_kb();
    let per_stream = (after.saturating_sub(before)) as f64 * 1024.0 / (n - n / 2) as f64;
    for h in held {
        h.abort();
    }
    env.sim.faults().set_stream_event_delay(Duration::ZERO);
    json!({"streams": n, "rss_at_half_kb": before, "rss_at_all_kb": after,
           "bytes_per_stream_upper_bound": per_stream})
}

/// The team's token audit rows now.
async fn audit_rows(env: &Env) -> i64 {
    let rows = env
        .core
        .store()
        .list_audit(&env.team, i64::MAX)
        .await
        .unwrap();
    i64::try_from(rows.len()).unwrap()
}

/// S6: the identity-token endpoint (ES256 signing, an audit row per token)
/// under the open-loop generator, up to 20,000/s; `BENCH_RATES` and
/// `BENCH_SECONDS` override the sweep.
async fn s6(env: &Env, quick: bool) -> Vec<Value> {
    let rates: Vec<f64> = match std::env::var("BENCH_RATES") {
        Ok(list) => list
            .split(',')
            .filter_map(|r| r.trim().parse().ok())
            .collect(),
        Err(_) if quick => vec![500.0],
        Err(_) => vec![2500.0, 5000.0, 10000.0, 20000.0],
    };
    let seconds: f64 = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if quick { 1.0 } else { 3.0 });
    let mint = Arc::new(load::Target {
        name: "byollm",
        url: format!("{}{}", env.base, routes::IDENTITY_TOKEN),
        headers: vec![("x-api-key", env.owner_key.clone())],
        other_pid: None,
    });
    let body = json!({"audience": "sts.amazonaws.com", "requested_duration_seconds": 900});
    let mut out = Vec::new();
    for rate in rates {
        let before = audit_rows(env).await;
        let mut r = load::open_loop(&mint, &body, rate, seconds).await;
        let after = audit_rows(env).await;
        r["audit_rows_written"] = json!(after - before);
        println!(
            "S6  {rate} mints/s: achieved {:.0}/s, p50 {:.2} ms, p99 {:.2} ms, {} errors, {} audit rows for {} tokens",
            r["achieved_rps"].as_f64().unwrap_or(0.0),
            r["p50_us"].as_f64().unwrap_or(f64::NAN) / 1000.0,
            r["p99_us"].as_f64().unwrap_or(f64::NAN) / 1000.0,
            r["errors"],
            r["audit_rows_written"],
            r["n"],
        );
        out.push(r);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    out
}

/// S1b on Bedrock: three rounds of `n` pairs for each path (InvokeModel from
/// an Anthropic body, Converse from an OpenAI body) and body size (a short
/// prompt, 1 KiB and 32 KiB), each against the same call made with the AWS SDK
/// straight to the emulator.
async fn s1b(env: &Env, n: usize) -> Vec<Value> {
    let mut out = Vec::new();
    for rep in 0..3 {
        for (path, openai) in [("invoke_model", false), ("converse", true)] {
            for bytes in [0, 1024, 32 * 1024] {
                let (g, d, a) = pairs(env, n, openai, bytes).await;
                let r = json!({"rep": rep, "path": path, "body_bytes": bytes,
                    "gateway": summary(g), "direct": summary(d), "added": summary(a)});
                println!("S1b rep {rep} {path} {bytes} B: added {}", r["added"]);
                out.push(r);
            }
        }
    }
    out
}

/// S1, S1b, S2, S6, S4/S5 (everything but the floor).
async fn sections(quick: bool, n: usize) -> Value {
    let env = Arc::new(Env::start().await);
    let s1b = s1b(&env, n).await;
    // S2 and S4 on the floor's upstream: byollm → the direct API, beside nginx
    // and the upstream alone.
    env.put_settings(json!({"hosts": {"aws_bedrock": {"enabled": false}}}))
        .await;
    let (s2, s4) = load::floor_sections(&env, quick).await;
    let s6 = s6(&env, quick).await;
    let s5 = idle_streams(&env, if quick { 100 } else { 1024 }).await;
    println!("S4/S5: {s5}");
    json!({"s1b": s1b, "s2": s2, "s4_ttft": s4, "s4_s5": s5, "s6": s6})
}

fn main() {
    let quick = std::env::var_os("BENCH_QUICK").is_some();
    // `BENCH_ONLY=floor|phases|s1b|s2|s5|s6`: one section alone (the floor and
    // telemetry cost; the phase breakdown; the S2 sweep and S4's time to first
    // token; RSS per held stream; the identity-token endpoint).
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = std::env::var("CARGO_TARGET_DIR")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../../target").to_owned());
    std::fs::create_dir_all(&dir).unwrap();
    // The log subscriber `byollm serve` installs, off except where FLOOR turns
    // it on; the phase marks' layer only in the phase section.
    let log =
        floor::LogSwitch::install(format!("{dir}/bench-gateway-access.log"), only == "phases");
    rt.block_on(async {
        let n = if quick { 200 } else { 2000 };
        let mut report = json!({});
        match only.as_str() {
            "floor" => report["floor"] = floor::floor(&log, n).await,
            "phases" => report["phases"] = phases::phases(n).await,
            "s6" => report["s6"] = json!(s6(&Env::start().await, quick).await),
            "s1b" => report["s1b"] = json!(s1b(&Env::start().await, n).await),
            "s5" => {
                let env = Arc::new(Env::start().await);
                let s5 = idle_streams(&env, if quick { 100 } else { 1024 }).await;
                println!("S4/S5: {s5}");
                report["s4_s5"] = s5;
            }
            "s2" => {
                let env = Env::start().await;
                env.put_settings(json!({"hosts": {"aws_bedrock": {"enabled": false}}}))
                    .await;
                let (s2, s4) = load::floor_sections(&env, quick).await;
                report["s2"] = s2;
                report["s4_ttft"] = s4;
            }
            _ => {
                report["floor"] = floor::floor(&log, n).await;
                if let (Some(r), Value::Object(rest)) =
                    (report.as_object_mut(), sections(quick, n).await)
                {
                    r.extend(rest);
                }
            }
        }
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .unwrap_or_default()
            .lines()
            .find_map(|l| {
                l.strip_prefix("model name")
                    .map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned())
            })
            .unwrap_or_default();
        report["nproc"] = json!(
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(0)
        );
        report["cpu"] = json!(cpu);
        report["quick"] = json!(quick);
        let path = format!("{dir}/bench-gateway.json");
        std::fs::write(&path, serde_json::to_string_pretty(&report).unwrap()).unwrap();
        println!("raw results: {path}");
    });
}
