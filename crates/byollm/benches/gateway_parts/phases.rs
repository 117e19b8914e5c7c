//! Where one request's time goes (issue 15), `BENCH_ONLY=phases`: the hot
//! path's phase marks (`byollm_telemetry::phase`, `trace` events with target
//! `byollm::phase`, free when nothing listens) timestamped by a layer this
//! mode alone installs, for requests sent one at a time to `/v1/messages` →
//! the emulator's direct Anthropic API, interleaved with the same call made
//! directly. Each interval between consecutive marks is summarised over the
//! requests (p50/p99, µs), beside the direct call's own intervals, so the
//! added time splits into accept-to-handler, auth, body, context, plan,
//! upstream send and answer, usage commit and the response's way out.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use byollm_api::routes;
use serde_json::{Value, json};
use tracing::field::{Field, Visit};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;

use crate::harness::{Env, messages_body};
use crate::{pct, summary};

static RECORDING: AtomicBool = AtomicBool::new(false);
static MARKS: Mutex<Vec<(String, Instant)>> = Mutex::new(Vec::new());

/// Timestamps phase marks while [`RECORDING`].
pub struct PhaseLayer;

struct PhaseName(Option<String>);

impl Visit for PhaseName {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "phase" {
            self.0 = Some(value.to_owned());
        }
    }
    fn record_debug(&mut self, _: &Field, _: &dyn std::fmt::Debug) {}
}

impl<S: tracing::Subscriber> Layer<S> for PhaseLayer {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        if !RECORDING.load(Ordering::Relaxed) {
            return;
        }
        let at = Instant::now();
        let mut name = PhaseName(None);
        event.record(&mut name);
        if let Some(n) = name.0 {
            MARKS.lock().unwrap().push((n, at));
        }
    }
}

/// The layer, filtered to phase marks only (so nothing else gets formatted).
pub fn layer<S>() -> impl Layer<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    use tracing_subscriber::filter::filter_fn;
    PhaseLayer.with_filter(filter_fn(|m| m.target() == byollm_telemetry::PHASE_TARGET))
}

fn mark(name: &str) {
    MARKS
        .lock()
        .unwrap()
        .push((name.to_owned(), Instant::now()));
}

fn take() -> Vec<(String, Instant)> {
    std::mem::take(&mut *MARKS.lock().unwrap())
}

/// One call with its marks: client.send … client.done.
async fn call(req: reqwest::RequestBuilder) -> Vec<(String, Instant)> {
    take();
    mark("client.send");
    let r = req.send().await.unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let _ = r.bytes().await.unwrap();
    mark("client.done");
    take()
}

/// Intervals between consecutive marks, keyed `a → b`, in order of first sight.
fn intervals(marks: &[(String, Instant)], into: &mut Vec<(String, Vec<f64>)>) {
    for w in marks.windows(2) {
        let key = format!("{} → {}", w[0].0, w[1].0);
        let us = w[1].1.duration_since(w[0].1).as_secs_f64() * 1e6;
        match into.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => v.push(us),
            None => into.push((key, vec![us])),
        }
    }
}

fn total(marks: &[(String, Instant)]) -> f64 {
    let (first, last) = (marks.first().unwrap().1, marks.last().unwrap().1);
    last.duration_since(first).as_secs_f64() * 1e6
}

/// The phase section: `n` pairs (after 100 of warm-up) of a direct call and a
/// byollm call, marks recorded; printed as a table and returned for the JSON.
pub async fn phases(n: usize) -> Value {
    let env = Env::start().await;
    env.put_settings(json!({"hosts": {"aws_bedrock": {"enabled": false}}}))
        .await;
    let http = reqwest::Client::builder()
        .tcp_nodelay(true)
        .build()
        .unwrap();
    let body = messages_body("claude-sonnet-4-6", "hello", false);
    let direct_url = format!("{}/anthropic/v1/messages", env.sim.endpoint_url());
    let byollm_url = format!("{}{}", env.base, routes::MESSAGES);
    let key = env.sim.direct_api_key().to_owned();
    let (mut g, mut d) = (Vec::new(), Vec::new());
    let (mut g_total, mut d_total) = (Vec::new(), Vec::new());
    RECORDING.store(true, Ordering::Relaxed);
    for i in 0..n + 100 {
        let dm = call(
            http.post(&direct_url)
                .header("x-api-key", &key)
                .header("anthropic-version", "2023-06-01")
                .json(&body),
        )
        .await;
        let gm = call(
            http.post(&byollm_url)
                .header("x-api-key", &env.owner_key)
                .json(&body),
        )
        .await;
        if i >= 100 {
            d_total.push(total(&dm));
            g_total.push(total(&gm));
            intervals(&dm, &mut d);
            intervals(&gm, &mut g);
        }
    }
    RECORDING.store(false, Ordering::Relaxed);
    let table = |rows: Vec<(String, Vec<f64>)>| -> Vec<Value> {
        rows.into_iter()
            .map(|(k, mut v)| {
                v.sort_by(|a, b| a.partial_cmp(b).unwrap());
                json!({"interval": k, "n": v.len(), "p50_us": pct(&v, 0.5), "p99_us": pct(&v, 0.99)})
            })
            .collect()
    };
    let (g, d) = (table(g), table(d));
    println!("PHASES direct call ({n} requests, c=1):");
    for r in &d {
        println!(
            "  {:<40} p50 {:>7.1} µs  p99 {:>7.1} µs",
            r["interval"].as_str().unwrap(),
            r["p50_us"].as_f64().unwrap(),
            r["p99_us"].as_f64().unwrap()
        );
    }
    println!("PHASES byollm /v1/messages → direct API:");
    for r in &g {
        println!(
            "  {:<40} p50 {:>7.1} µs  p99 {:>7.1} µs",
            r["interval"].as_str().unwrap(),
            r["p50_us"].as_f64().unwrap(),
            r["p99_us"].as_f64().unwrap()
        );
    }
    let (gs, ds) = (summary(g_total), summary(d_total));
    println!("PHASES total: byollm {gs} | direct {ds}");
    env.stop().await;
    json!({"what": "phase marks, c=1, direct and byollm interleaved", "byollm": g, "direct": d,
           "byollm_total": gs, "direct_total": ds})
}
