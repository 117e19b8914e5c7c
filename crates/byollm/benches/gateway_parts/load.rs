//! Open-loop load (S2, S6) and time to first token (S4) against any of the
//! three paths to the emulator's direct Anthropic API: the upstream alone,
//! nginx in front of it, and byollm (`/v1/messages` → the direct API), so
//! each byollm figure has the floor's beside it.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
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
    /// Another process on the path whose CPU time counts too (nginx).
    pub other_pid: Option<u32>,
}

/// CPU seconds (user + system) of a process so far, from `/proc/<pid>/stat`
/// (clock ticks of 1/100 s, Linux's USER_HZ).
fn cpu_seconds(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command's closing parenthesis; utime and stime are
    // the 14th and 15th of the line, the 12th and 13th after it.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<f64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0.0))
        .collect();
    (f.get(11).copied().unwrap_or(0.0) + f.get(12).copied().unwrap_or(0.0)) / 100.0
}

/// CPU seconds of this process and of `target`'s other process.
fn path_cpu_seconds(target: &Target) -> f64 {
    cpu_seconds("self")
        + target
            .other_pid
            .map_or(0.0, |p| cpu_seconds(&p.to_string()))
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

/// Constant arrival rate for `seconds`, from a load generator on a thread and
/// runtime of its own (as a separate load-generator process would be: it does
/// not share the gateway's worker threads). Latency is measured from each
/// request's scheduled send time, so queueing anywhere counts.
pub async fn open_loop(target: &Arc<Target>, body: &Value, rate: f64, seconds: f64) -> Value {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let cpu_before = path_cpu_seconds(target);
    let (target2, body) = (
        target.clone(),
        Bytes::from(serde_json::to_vec(body).unwrap()),
    );
    std::thread::Builder::new()
        .name("bench-load".into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let local = tokio::task::LocalSet::new();
            let _ = tx.send(local.block_on(&rt, generate(target2, body, rate, seconds)));
        })
        .unwrap();
    let Generated {
        mut lat,
        mut from_send,
        errors,
        elapsed,
        connections,
    } = rx.await.unwrap();
    let cpu = path_cpu_seconds(target) - cpu_before;
    let total = lat.len() + errors;
    lat.shrink_to_fit();
    from_send.shrink_to_fit();
    let mut s = summary(lat);
    s["path"] = json!(target.name);
    s["rate_target"] = json!(rate);
    s["achieved_rps"] = json!(total as f64 / elapsed);
    s["errors"] = json!(errors);
    s["connections_opened"] = json!(connections);
    // Everything on the path: the load generator, the emulator, byollm (all
    // in this process) and nginx's process when it is on the path; the
    // difference between two paths' figures is what the extra hop costs.
    s["cpu_seconds"] = json!(cpu);
    s["cpu_us_per_request"] = json!(cpu * 1e6 / total.max(1) as f64);
    // Latency counts from each request's scheduled time; this one from the
    // moment the request went to its connection (it hides queueing before
    // the send: the generator's own lag and waits for a free connection).
    s["from_send"] = summary(from_send);
    s
}

/// What one open-loop run measured.
struct Generated {
    lat: Vec<f64>,
    from_send: Vec<f64>,
    errors: usize,
    elapsed: f64,
    connections: usize,
}

/// Most connections the generator opens to one target; a request that finds
/// all of them busy waits for one (its wait counts in its latency, from its
/// scheduled time). 512, as a fleet of clients with keep-alive pools would
/// hold, rather than a new connection per late answer: thousands opened in a
/// burst overflow any listen backlog and turn into 1 s SYN retries.
const MAX_CONNECTIONS: usize = 512;

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

/// The generator's connections: a free list, no waiter queue to scan.
struct Conns {
    addr: String,
    free: RefCell<Vec<Sender>>,
    /// Open now (at most [`MAX_CONNECTIONS`]).
    opened: Cell<usize>,
    /// Opened in all.
    made: Cell<usize>,
    returned: tokio::sync::Notify,
}

impl Conns {
    async fn take(&self) -> Option<Sender> {
        loop {
            if let Some(s) = self.free.borrow_mut().pop() {
                return Some(s);
            }
            if self.opened.get() < MAX_CONNECTIONS {
                self.opened.set(self.opened.get() + 1);
                self.made.set(self.made.get() + 1);
                let connected = async {
                    let tcp = tokio::net::TcpStream::connect(&self.addr).await.ok()?;
                    tcp.set_nodelay(true).ok()?;
                    hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
                        .await
                        .ok()
                };
                let Some((sender, conn)) = connected.await else {
                    self.lost();
                    return None;
                };
                tokio::task::spawn_local(conn);
                return Some(sender);
            }
            self.returned.notified().await;
        }
    }

    /// A connection failed and is dropped: its slot is free.
    fn lost(&self) {
        self.opened.set(self.opened.get() - 1);
        self.returned.notify_one();
    }

    fn give_back(&self, s: Sender) {
        self.free.borrow_mut().push(s);
        self.returned.notify_one();
    }
}

async fn generate(target: Arc<Target>, body: Bytes, rate: f64, seconds: f64) -> Generated {
    let rest = target
        .url
        .strip_prefix("http://")
        .expect("an http:// target");
    let (addr, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let conns = Rc::new(Conns {
        addr: addr.to_owned(),
        free: RefCell::new(Vec::new()),
        opened: Cell::new(0),
        made: Cell::new(0),
        returned: tokio::sync::Notify::new(),
    });
    let request = {
        let (host, path, target) = (addr.to_owned(), path.to_owned(), target.clone());
        move |body: Bytes| {
            let mut r = hyper::Request::post(&path)
                .header("host", &host)
                .header("content-type", "application/json");
            for (k, v) in &target.headers {
                r = r.header(*k, v);
            }
            r.body(Full::new(body)).unwrap()
        }
    };
    let total = (rate * seconds) as usize;
    let start = Instant::now() + Duration::from_millis(50);
    // The pacer: a thread of its own that sleeps until each request's time
    // (nanosleep: tens of µs late, where tokio's timer is up to ~2 ms late)
    // and releases every request due, by index.
    let (due_tx, mut due_rx) = tokio::sync::mpsc::unbounded_channel::<usize>();
    std::thread::Builder::new()
        .name("bench-pacer".into())
        .spawn(move || {
            let mut released = 0usize;
            while released < total {
                let next = start + Duration::from_secs_f64(released as f64 / rate);
                let now = Instant::now();
                if next > now {
                    std::thread::sleep(next - now);
                }
                let elapsed = start.elapsed().as_secs_f64();
                let due = ((elapsed * rate).floor() as usize + 1).min(total);
                if due_tx.send(due).is_err() {
                    return;
                }
                released = due;
            }
        })
        .unwrap();
    let mut tasks = Vec::with_capacity(total);
    let mut released = 0usize;
    while let Some(due) = due_rx.recv().await {
        for i in released..due {
            let scheduled = start + Duration::from_secs_f64(i as f64 / rate);
            let (conns, req) = (conns.clone(), request(body.clone()));
            tasks.push(tokio::task::spawn_local(async move {
                let Some(mut sender) = conns.take().await else {
                    return (false, 0.0, 0.0);
                };
                let sent = Instant::now();
                let ok = match sender.send_request(req).await {
                    Ok(r) => {
                        let status = r.status();
                        r.into_body().collect().await.is_ok() && status.is_success()
                    }
                    Err(_) => false,
                };
                let done = (
                    ok,
                    scheduled.elapsed().as_secs_f64() * 1e6,
                    sent.elapsed().as_secs_f64() * 1e6,
                );
                if ok {
                    conns.give_back(sender);
                } else {
                    drop(sender);
                    conns.lost();
                }
                done
            }));
        }
        released = due;
    }
    let mut out = Generated {
        lat: Vec::with_capacity(total),
        from_send: Vec::with_capacity(total),
        errors: 0,
        elapsed: 0.0,
        connections: 0,
    };
    // `BENCH_TIMELINE=path`: each request's scheduled time (ms from the
    // start) and latency (µs) as lines, to see stalls over time.
    let mut timeline = std::env::var_os("BENCH_TIMELINE").map(|_| String::new());
    for (i, t) in tasks.into_iter().enumerate() {
        let (ok, us, sent_us) = t.await.unwrap();
        if let Some(tl) = timeline.as_mut() {
            use std::fmt::Write as _;
            let _ = writeln!(tl, "{:.3} {us:.0} {ok}", i as f64 * 1000.0 / rate);
        }
        if ok {
            out.lat.push(us);
            out.from_send.push(sent_us);
        } else {
            out.errors += 1;
        }
    }
    if let (Some(tl), Some(path)) = (timeline, std::env::var_os("BENCH_TIMELINE")) {
        std::fs::write(path, tl).unwrap();
    }
    out.elapsed = start.elapsed().as_secs_f64();
    out.connections = conns.made.get();
    out
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
    let cpu = |name: &str| {
        rows.iter()
            .find(|r| r["path"] == name)
            .and_then(|r| r["cpu_us_per_request"].as_f64())
            .map_or("-".into(), |c| format!("{c:.0}"))
    };
    let ratio = match (p99("byollm"), p99("nginx")) {
        (Some(b), Some(n)) => format!("{:.2}×", b / n),
        _ => "-".into(),
    };
    println!(
        "{section} {rate} rps: p99 upstream {} | nginx {} | byollm {} ({}) | byollm/nginx {ratio} | CPU µs/request upstream {} nginx {} byollm {}",
        ms(p99("upstream")),
        ms(p99("nginx")),
        ms(p99("byollm")),
        achieved("byollm"),
        cpu("upstream"),
        cpu("nginx"),
        cpu("byollm"),
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
    let upstream = |name, base: &str, other_pid| Target {
        name,
        url: format!("{base}/anthropic/v1/messages"),
        headers: vec![
            ("x-api-key", key.clone()),
            ("anthropic-version", "2023-06-01".to_owned()),
        ],
        other_pid,
    };
    let mut v = vec![Arc::new(upstream(
        "upstream",
        &env.sim.endpoint_url(),
        None,
    ))];
    if let Some(n) = nginx {
        v.push(Arc::new(upstream("nginx", &n.base, Some(n.pid()))));
    }
    v.push(Arc::new(Target {
        name: "byollm",
        url: format!("{}{}", env.base, routes::MESSAGES),
        headers: vec![("x-api-key", env.owner_key.clone())],
        other_pid: None,
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
