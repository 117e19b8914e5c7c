//! The multi-replica tests' cluster (issue 13): three `byollm serve`
//! processes (the built binary) on one PostgreSQL database behind HAProxy, run
//! with deploy/haproxy/haproxy.cfg (the file compose.yaml uses), the emulator
//! as upstream, and the bounded open-loop load through the balancer. Shared by
//! the test binaries that need a cluster, not copied.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use byollm_api::clock::SystemClock;
use byollm_api::routes;
use byollm_cloudsim::{Cloudsim, CloudsimConfig};
use byollm_core::store::{Store, UsageFilter};
use byollm_server::config::Upstreams;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};
use tokio::task::JoinSet;

use super::harness;

pub const MODEL: &str = "claude-sonnet-4-6";
/// The bound the issue sets on propagation to other replicas.
pub const WITHIN: Duration = Duration::from_secs(1);
/// Open-loop load: requests per second through the balancer.
pub const RATE: u64 = 15;

pub const TEST: &str = "the multi-replica test";

pub fn haproxy_present() -> bool {
    std::process::Command::new("haproxy")
        .arg("-v")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

pub fn haproxy_cfg() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/haproxy/haproxy.cfg")
}

/// A free port on 127.0.0.1 for HAProxy, which cannot report one it chose
/// itself (the one place this test picks a port).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub struct Cluster {
    pub sim: Cloudsim,
    pub upstreams: Upstreams,
    pub dir: tempfile::TempDir,
    pub url: String,
    pub kek: String,
    pub replicas: Vec<Replica>,
    pub haproxy: Child,
    pub lb: String,
    pub owner: String,
    pub team: String,
    pub http: reqwest::Client,
}

pub struct Replica {
    pub child: Child,
    pub addr: String,
    /// Its metrics listener (`--metrics-listen 127.0.0.1:0`).
    pub metrics: String,
}

impl Replica {
    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Cluster {
    pub async fn start(url: String) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        // The emulator's STS fetches the issuer's JWKS through the balancer.
        let port = free_port();
        let sim = Cloudsim::start(CloudsimConfig {
            resolve: vec![(
                harness::ISSUER_HOST.into(),
                std::net::SocketAddr::from(([127, 0, 0, 1], port)),
            )],
            ..CloudsimConfig::default()
        })
        .await
        .unwrap();
        // Streams take a while, so the kill may land among requests in flight.
        sim.faults()
            .set_stream_event_delay(Duration::from_millis(100));
        let upstreams =
            byollm_stack::emulator_upstreams(&sim, &dir.path().join("direct-key")).unwrap();
        // Replicas share one KEK (and one store), nothing else.
        let kek_path = dir.path().join("kek");
        byollm_core::identity::kek::Kek::load_or_create_file(&kek_path).unwrap();
        let kek = format!("file:{}", kek_path.display());
        let store = Store::connect(&url).await.unwrap();
        let boot =
            byollm_core::service::bootstrap_team(&store, &SystemClock, "Acme", "o@acme.example")
                .await
                .unwrap();
        let mut c = Cluster {
            sim,
            upstreams,
            dir,
            url,
            kek,
            replicas: Vec::new(),
            haproxy: Command::new("true").spawn().unwrap(),
            lb: String::new(),
            owner: boot.api_key.expose().to_owned(),
            team: boot.team_uid,
            http: reqwest::Client::new(),
        };
        for i in 0..3 {
            let r = c.serve(i, "127.0.0.1:0").await;
            c.replicas.push(r);
        }
        c.lb = format!("http://127.0.0.1:{port}");
        c.haproxy = Command::new("haproxy")
            .arg("-f")
            .arg(haproxy_cfg())
            .env("HAPROXY_BIND", format!("127.0.0.1:{port}"))
            .env("BYOLLM_REPLICA_1", &c.replicas[0].addr)
            .env("BYOLLM_REPLICA_2", &c.replicas[1].addr)
            .env("BYOLLM_REPLICA_3", &c.replicas[2].addr)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        c.until("HAProxy answers", Duration::from_secs(10), || async {
            c.http
                .get(format!("{}{}", c.lb, routes::READYZ))
                .send()
                .await
                .is_ok_and(|r| r.status() == 200)
        })
        .await;
        c
    }

    /// Starts replica `i` listening on `listen`; returns once it listens.
    pub async fn serve(&self, i: usize, listen: &str) -> Replica {
        let data = self.dir.path().join(format!("data{i}"));
        let u = &self.upstreams;
        let mut child = Command::new(env!("CARGO_BIN_EXE_byollm"))
            .arg("serve")
            .args(["--listen", listen])
            .args(["--issuer-url", "https://issuer.test"])
            .arg("--data-dir")
            .arg(&data)
            .args(["--store-url", &self.url])
            .args(["--aws-endpoint-url", u.aws_endpoint_url.as_deref().unwrap()])
            .args([
                "--direct-anthropic-url",
                u.direct_anthropic_url.as_deref().unwrap(),
            ])
            .args([
                "--direct-anthropic-key",
                u.direct_anthropic_key.as_deref().unwrap(),
            ])
            .args(["--metrics-listen", "127.0.0.1:0"])
            .env("BYOLLM_KEK", &self.kek)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        // It prints where it listens, then where its metrics are.
        let (addr, metrics) = tokio::time::timeout(Duration::from_secs(20), async {
            let mut addr = None;
            loop {
                let line = lines
                    .next_line()
                    .await
                    .unwrap()
                    .expect("byollm serve exited before listening");
                if let Some(rest) = line.strip_prefix("byollm listening on ") {
                    let url = rest.split_whitespace().next().unwrap();
                    addr = Some(url.trim_start_matches("http://").to_owned());
                }
                if let Some(rest) = line.strip_prefix("metrics on http://") {
                    let at = rest.trim_end_matches("/metrics").to_owned();
                    break (addr.expect("the listen line comes first"), at);
                }
            }
        })
        .await
        .expect("byollm serve did not start");
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let r = Replica {
            child,
            addr,
            metrics,
        };
        self.until("the replica is ready", Duration::from_secs(10), || async {
            self.http
                .get(format!("{}{}", r.base(), routes::READYZ))
                .send()
                .await
                .is_ok_and(|r| r.status() == 200)
        })
        .await;
        r
    }

    pub async fn until<F, Fut>(&self, what: &str, patience: Duration, cond: F)
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let waited = tokio::time::timeout(patience, async {
            while !cond().await {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        assert!(waited.is_ok(), "{what}: not within {patience:?}");
    }

    pub async fn me(&self, on: usize, cred: &str) -> u16 {
        self.http
            .get(format!("{}{}", self.replicas[on].base(), routes::ME))
            .bearer_auth(cred)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    pub async fn post_on(&self, on: usize, path: &str, body: Value) -> Value {
        let r = self
            .http
            .post(format!("{}{path}", self.replicas[on].base()))
            .bearer_auth(&self.owner)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{path}: {}", r.status());
        r.json().await.unwrap()
    }

    /// Waits until every replica in `others` refuses `cred`; the time from the
    /// call to the last refusal, which must be within [`WITHIN`].
    pub async fn refused_by(&self, others: &[usize], cred: &str, what: &str) -> Vec<Duration> {
        let start = Instant::now();
        let mut took = Vec::new();
        for &o in others {
            loop {
                if self.me(o, cred).await == 401 {
                    took.push(start.elapsed());
                    break;
                }
                assert!(
                    start.elapsed() < WITHIN,
                    "{what}: replica {o} still accepts after {WITHIN:?}"
                );
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        took
    }

    /// Revokes a fresh key through replica 0 that replicas 1 and 2 had cached.
    pub async fn revocation(&self) -> Vec<Duration> {
        let key = self
            .post_on(0, routes::API_KEYS, json!({"name": "probe"}))
            .await;
        let (id, secret) = (key["id"].as_str().unwrap(), key["key"].as_str().unwrap());
        for o in [1, 2] {
            assert_eq!(self.me(o, secret).await, 200);
        }
        let done = self
            .http
            .delete(format!(
                "{}{}",
                self.replicas[0].base(),
                routes::fill(routes::API_KEY, id)
            ))
            .bearer_auth(&self.owner)
            .send()
            .await
            .unwrap();
        assert_eq!(done.status(), 204);
        self.refused_by(&[1, 2], secret, "revoked key").await
    }

    /// Finishes a run through replica 0 whose token 1 and 2 had cached.
    pub async fn run_end(&self) -> Vec<Duration> {
        let run = self.post_on(0, routes::RUNS, json!({})).await;
        let (id, token) = (
            run["run_id"].as_str().unwrap(),
            run["workload_token"].as_str().unwrap(),
        );
        for o in [1, 2] {
            assert_eq!(self.me(o, token).await, 200);
        }
        self.post_on(0, &routes::fill(routes::RUN_FINISH, id), json!({}))
            .await;
        self.refused_by(&[1, 2], token, "finished run's token")
            .await
    }

    /// How many actors' AWS credentials replica `on` holds (its
    /// `byollm_credentials_cached` gauge, read from its metrics listener).
    pub async fn credentials_cached(&self, on: usize) -> u64 {
        let text = self
            .http
            .get(format!("http://{}/metrics", self.replicas[on].metrics))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix("byollm_credentials_cached "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no byollm_credentials_cached in:\n{text}"))
    }

    pub async fn jwks_kids(&self, on: usize) -> Vec<String> {
        let doc: Value = self
            .http
            .get(format!("{}{}", self.replicas[on].base(), routes::JWKS))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        doc["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap().to_owned())
            .collect()
    }

    /// `byollm keys rotate` on the store, as an operator runs it.
    pub async fn rotate_keys(&self) -> String {
        let out = Command::new(env!("CARGO_BIN_EXE_byollm"))
            .args(["keys", "rotate", "--store-url", &self.url])
            .env("BYOLLM_KEK", &self.kek)
            .output()
            .await
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let text = String::from_utf8(out.stdout).unwrap();
        let kid = text
            .strip_prefix("published ")
            .and_then(|t| t.split(';').next())
            .unwrap_or_else(|| panic!("unexpected output: {text}"));
        kid.to_owned()
    }
}

/// `byollm keys list` on the store: opening the keyring runs its lifecycle
/// (a pending key past its window starts signing, and replicas hear it).
impl Cluster {
    pub async fn keys_list(&self) {
        let out = Command::new(env!("CARGO_BIN_EXE_byollm"))
            .args(["keys", "list", "--store-url", &self.url])
            .env("BYOLLM_KEK", &self.kek)
            .output()
            .await
            .unwrap();
        assert!(out.status.success(), "{out:?}");
    }
}

/// One request through the balancer: its id when it was answered with a
/// complete 200.
pub async fn one_request(
    http: reqwest::Client,
    lb: String,
    key: String,
    stream: bool,
) -> Option<String> {
    let resp = http
        .post(format!("{lb}{}", routes::MESSAGES))
        .header("x-api-key", key)
        .json(&json!({"model": MODEL, "max_tokens": 32, "stream": stream,
            "messages": [{"role": "user", "content": "hello"}]}))
        .send()
        .await
        .ok()?;
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
        body.contains("event: message_stop")
    } else {
        serde_json::from_str::<Value>(&body).is_ok_and(|v| v["type"] == "message")
    };
    whole.then_some(id)
}

/// Open-loop load through the balancer for `seconds`: a request every
/// 1/[`RATE`] s whatever the answers do, half of them streams. Resolves to
/// (requests sent, ids of the answered ones).
pub fn start_load(c: &Cluster, seconds: u64) -> tokio::task::JoinHandle<(u64, Vec<String>)> {
    let (http, lb, key) = (c.http.clone(), c.lb.clone(), c.owner.clone());
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(1000 / RATE));
        let n = seconds * RATE;
        let mut set = JoinSet::new();
        for i in 0..n {
            tick.tick().await;
            set.spawn(one_request(
                http.clone(),
                lb.clone(),
                key.clone(),
                i % 2 == 0,
            ));
        }
        let mut ids = Vec::new();
        while let Some(r) = set.join_next().await {
            if let Ok(Some(id)) = r {
                ids.push(id);
            }
        }
        (n, ids)
    })
}

/// Waits (up to `patience`) until every id in `answered` has a usage row and
/// asserts none has two; returns how many rows the team has.
pub async fn one_usage_row_each(c: &Cluster, answered: &[String], patience: Duration) -> usize {
    let store = Store::connect(&c.url).await.unwrap();
    let deadline = Instant::now() + patience;
    let rows = loop {
        let mut rows: HashMap<String, usize> = HashMap::new();
        for r in store
            .list_usage(&c.team, &UsageFilter::default(), None, 100_000)
            .await
            .unwrap()
        {
            *rows.entry(r.id).or_default() += 1;
        }
        let missing: Vec<_> = answered
            .iter()
            .filter(|id| !rows.contains_key(*id))
            .collect();
        if missing.is_empty() {
            break rows;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {} answered requests have no usage row, e.g. {:?}",
            missing.len(),
            answered.len(),
            &missing[..missing.len().min(3)]
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let doubled: Vec<_> = rows.iter().filter(|(_, n)| **n > 1).collect();
    assert!(doubled.is_empty(), "usage rows doubled: {doubled:?}");
    rows.len()
}

pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}
