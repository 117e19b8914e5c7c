//! Load generator for the emulator's non-streaming `Converse` (the path the
//! gateway benchmarks lean on): SigV4 verified, session looked up, the role's
//! permission policy evaluated for every resource a global profile implies, the
//! body parsed and answered.
//!
//! Bounded and loopback only: `cargo bench -p byollm-cloudsim --bench converse`
//! runs (0) 500 sequential AssumeRoleWithWebIdentity calls (the client signs a
//! fresh ES256 token each time), (1) 3,000 sequential Converse requests (c=1), (2) an open-loop
//! constant-arrival run at 5,000 requests/s for 2 s with latency measured from
//! each request's *intended* send time (no coordinated omission; also from the
//! actual send, since tokio's timer paces arrivals on a 1 ms grid), and (3) a
//! closed loop of 32 connections for 3 s for the ceiling. It prints a JSON
//! summary on stdout (and writes it to `target/awsim-bench-converse.json`).
//!
//! The client is a bare reqwest re-sending one pre-signed request (a signature
//! stays valid for 15 minutes), so client cost stays small; the client shares
//! the machine's cores with the emulator.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    clippy::print_stderr,
    clippy::disallowed_methods,
    reason = "bench code"
)]

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
use axum::Json;
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use byollm_cloudsim::sigv4::{Signed, sign};
use byollm_cloudsim::{Cloudsim, CloudsimConfig};
use serde_json::{Value, json};

const ISSUER: &str = "https://bench.test";

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn percentiles(mut v: Vec<Duration>) -> Value {
    v.sort();
    let p = |q: f64| {
        let i = ((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1;
        v[i].as_secs_f64() * 1e6
    };
    json!({"count": v.len(), "p50_us": p(0.50), "p90_us": p(0.90), "p99_us": p(0.99),
           "p999_us": p(0.999), "max_us": p(1.0)})
}

async fn session(sim: &Cloudsim, key: &EcdsaKeyPair) -> (String, String, String) {
    let n = now();
    let header =
        URL_SAFE_NO_PAD.encode(json!({"alg": "ES256", "kid": "k1", "typ": "JWT"}).to_string());
    let claims = URL_SAFE_NO_PAD.encode(
        json!({"iss": ISSUER, "sub": "scoped_principal:t/user:u", "aud": "sts.amazonaws.com",
               "iat": n, "exp": n + 3600})
        .to_string(),
    );
    let input = format!("{header}.{claims}");
    let sig = key.sign(&SystemRandom::new(), input.as_bytes()).unwrap();
    let token = format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()));
    let url = format!(
        "{}/?Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn=arn:aws:iam::123456789012:role/bench&RoleSessionName=bench&WebIdentityToken={token}",
        sim.endpoint_url()
    );
    let xml = reqwest::get(url).await.unwrap().text().await.unwrap();
    let field = |name: &str| {
        let start = xml.find(&format!("<{name}>")).unwrap() + name.len() + 2;
        let end = xml.find(&format!("</{name}>")).unwrap();
        xml[start..end].to_owned()
    };
    (
        field("AccessKeyId"),
        field("SecretAccessKey"),
        field("SessionToken"),
    )
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run());
}

async fn run() {
    // Issuer and emulator.
    let key = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
    let point = key.public_key().as_ref().to_vec();
    let jwk = json!({"kty": "EC", "crv": "P-256", "alg": "ES256", "kid": "k1", "use": "sig",
                     "x": URL_SAFE_NO_PAD.encode(&point[1..33]), "y": URL_SAFE_NO_PAD.encode(&point[33..])});
    let app = axum::Router::new()
        .route("/.well-known/openid-configuration", get(|| async {
            Json(json!({"issuer": ISSUER, "jwks_uri": format!("{ISSUER}/.well-known/jwks.json")}))
        }))
        .route("/.well-known/jwks.json", get(move || { let j = jwk.clone(); async move { Json(json!({"keys": [j]})) } }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer_addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let sim = Cloudsim::start(CloudsimConfig {
        resolve: vec![("bench.test".into(), issuer_addr)],
        ..CloudsimConfig::default()
    })
    .await
    .unwrap();
    sim.create_oidc_provider(ISSUER, &["sts.amazonaws.com"])
        .unwrap();
    sim.create_role(
        "bench",
        &json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Principal": {"Federated": "arn:aws:iam::123456789012:oidc-provider/bench.test"},
        "Action": "sts:AssumeRoleWithWebIdentity",
        "Condition": {"StringEquals": {"bench.test:aud": "sts.amazonaws.com"}}}]})
        .to_string(),
        None,
    )
    .unwrap();
    // The least-privilege shape the generator writes for a global profile.
    let profile = "arn:aws:bedrock:us-east-1:123456789012:inference-profile/global.anthropic.claude-sonnet-4-6";
    sim.put_role_policy("bench", "invoke", &json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream"], "Resource": profile,
         "Condition": {"StringEquals": {"aws:RequestedRegion": "us-east-1"}}},
        {"Effect": "Allow", "Action": ["bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream"],
         "Resource": "arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-sonnet-4-6",
         "Condition": {"StringEquals": {"aws:RequestedRegion": "us-east-1", "bedrock:InferenceProfileArn": profile}}},
        {"Effect": "Allow", "Action": ["bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream"],
         "Resource": "arn:aws:bedrock:::foundation-model/anthropic.claude-sonnet-4-6",
         "Condition": {"StringEquals": {"aws:RequestedRegion": "unspecified", "bedrock:InferenceProfileArn": profile}}}]}).to_string()).unwrap();
    let (akid, secret, token) = session(&sim, &key).await;

    // AssumeRoleWithWebIdentity, one at a time: ES256 verification against the
    // cached JWKS and the trust policy (the JWKS is fetched once, above).
    let mut sts_lat = Vec::with_capacity(500);
    for _ in 0..500 {
        let t = Instant::now();
        let _ = session(&sim, &key).await;
        sts_lat.push(t.elapsed());
    }
    let sts_sequential = percentiles(sts_lat);

    // One signed Converse request (a ~1 KiB body).
    let path = "/model/global.anthropic.claude-sonnet-4-6/converse";
    let text = "lorem ipsum dolor sit amet ".repeat(36);
    let body = json!({"messages": [{"role": "user", "content": [{"text": text}]}],
                      "inferenceConfig": {"maxTokens": 256}})
    .to_string();
    let host = sim.addr.to_string();
    let mut headers = http::HeaderMap::new();
    headers.insert("host", host.parse().unwrap());
    headers.insert("content-type", "application/json".parse().unwrap());
    let signed = sign(
        Signed {
            method: "POST",
            raw_path: path,
            raw_query: "",
            headers: &headers,
            body: body.as_bytes(),
        },
        &akid,
        &secret,
        Some(&token),
        "us-east-1",
        "bedrock",
        now(),
    );
    let url = format!("{}{path}", sim.endpoint_url());
    let client = reqwest::Client::builder()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(256)
        .build()
        .unwrap();
    let make = {
        let (client, url, body, signed) =
            (client.clone(), url.clone(), body.clone(), signed.clone());
        Arc::new(move || {
            let mut r = client
                .post(&url)
                .header("content-type", "application/json")
                .body(body.clone());
            for (k, v) in &signed {
                r = r.header(k, v);
            }
            r
        })
    };
    // Warm up and check it is a success.
    for _ in 0..200 {
        let resp = make().send().await.unwrap();
        assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
        resp.bytes().await.unwrap();
    }

    // (1) c=1.
    let mut lat = Vec::with_capacity(3000);
    for _ in 0..3000 {
        let t = Instant::now();
        let resp = make().send().await.unwrap();
        assert_eq!(resp.status(), 200);
        resp.bytes().await.unwrap();
        lat.push(t.elapsed());
    }
    let sequential = percentiles(lat);

    // (2) Open loop at a constant arrival rate.
    let rate = 5000.0;
    let total = 10_000usize;
    let start = Instant::now() + Duration::from_millis(10);
    let mut handles = Vec::with_capacity(total);
    for i in 0..total {
        let intended = start + Duration::from_secs_f64(i as f64 / rate);
        tokio::time::sleep_until(intended.into()).await;
        let make = make.clone();
        handles.push(tokio::spawn(async move {
            let sent = Instant::now();
            let ok = match make().send().await {
                Ok(r) => r.status() == 200 && r.bytes().await.is_ok(),
                Err(_) => false,
            };
            (intended.elapsed(), sent.elapsed(), ok)
        }));
    }
    let mut open = Vec::with_capacity(total);
    let mut from_send = Vec::with_capacity(total);
    let mut open_errors = 0;
    for h in handles {
        let (d, s, ok) = h.await.unwrap();
        open.push(d);
        from_send.push(s);
        if !ok {
            open_errors += 1;
        }
    }
    let open_elapsed = start.elapsed().as_secs_f64();
    let mut open_loop = percentiles(open);
    open_loop["target_rps"] = json!(rate);
    open_loop["achieved_rps"] = json!(total as f64 / open_elapsed);
    open_loop["errors"] = json!(open_errors);
    // The same requests timed from their actual send: tokio's timer releases
    // arrivals on a 1 ms grid, which the corrected figures above include.
    open_loop["from_actual_send"] = percentiles(from_send);

    // (3) Closed loop for the ceiling.
    let conns = 32;
    let until = Instant::now() + Duration::from_secs(3);
    let t0 = Instant::now();
    let mut workers = vec![];
    for _ in 0..conns {
        let make = make.clone();
        workers.push(tokio::spawn(async move {
            let (mut n, mut errors) = (0u64, 0u64);
            while Instant::now() < until {
                match make().send().await {
                    Ok(r) if r.status() == 200 => {
                        let _ = r.bytes().await;
                        n += 1;
                    }
                    _ => errors += 1,
                }
            }
            (n, errors)
        }));
    }
    let (mut done, mut errors) = (0, 0);
    for w in workers {
        let (n, e) = w.await.unwrap();
        done += n;
        errors += e;
    }
    let closed = json!({"connections": conns, "requests": done, "errors": errors,
                        "rps": done as f64 / t0.elapsed().as_secs_f64()});

    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_default();
    let summary = json!({
        "bench": "awsim non-streaming Converse (global profile, 3-statement least-privilege policy, ~1 KiB body)",
        "nproc": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "cpu": cpu,
        "sequential_c1": sequential,
        "assume_role_with_web_identity_c1_including_token_signing": sts_sequential,
        "open_loop": open_loop,
        "closed_loop": closed,
        "converse_calls": sim.call_count("bedrock:Converse"),
    });
    let text = serde_json::to_string_pretty(&summary).unwrap();
    println!("{text}");
    let _ = std::fs::write(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../target/awsim-bench-converse.json"
        ),
        &text,
    );
    sim.shutdown().await;
}
// Last recorded run (2026-11-26, 2-core AMD EPYC shared with other builds; load
// average ≈ 2.3): `benches/converse-results.json`.
