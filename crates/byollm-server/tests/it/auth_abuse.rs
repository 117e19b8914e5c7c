//! Authentication abuse on a real socket (issue 10): a flood of bad keys from
//! one address is answered 429 with `Retry-After` past the allowance, in each
//! route's own error format, at no store cost; a key this replica knows still
//! works; malformed and repeated unknown keys cost no query; the key never
//! reaches the log.

use std::sync::Arc;

use secrecy::ExposeSecret as _;
use serde_json::{Value, json};

use byollm_api::clock::FakeClock;
use byollm_api::routes;
use byollm_core::identity::keys::Algorithm;
use byollm_core::ids;
use byollm_server::auth::FAILURE_BURST;

use crate::common::{Capture, config, now};

async fn get(http: &reqwest::Client, url: &str, key: &str) -> (u16, Option<String>, Value) {
    let r = http.get(url).bearer_auth(key).send().await.unwrap();
    let status = r.status().as_u16();
    let retry = r
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, retry, r.json().await.unwrap_or(Value::Null))
}

async fn post(http: &reqwest::Client, url: &str, key: &str) -> (u16, Option<String>, Value) {
    let r = http
        .post(url)
        .bearer_auth(key)
        .json(&json!({"model": "m", "max_tokens": 1, "messages": []}))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let retry = r
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, retry, r.json().await.unwrap_or(Value::Null))
}

fn unknown_key() -> String {
    ids::new_api_key().expose_secret().to_owned()
}

// Current-thread runtime: the server's tasks run on this thread, so the
// thread-local log capture sees their lines.
#[tokio::test(flavor = "current_thread")]
async fn bad_key_floods_are_throttled_sampled_and_cost_no_queries() {
    let logs = Capture::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::WARN)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    // A fixed clock: no failure allowance refills while the test runs.
    let clock = Arc::new(FakeClock::new(now()));
    let dir = tempfile::tempdir().unwrap();
    let server = byollm_server::start(&config(dir.path(), Algorithm::Es256), clock.clone())
        .await
        .unwrap();
    let core = server.core.clone();
    let team = byollm_core::service::bootstrap_team(
        core.store(),
        clock.as_ref(),
        "Acme",
        "owner@example.com",
    )
    .await
    .unwrap();
    let good = team.api_key.expose().to_owned();
    let http = reqwest::Client::new();
    let base = format!("http://{}", server.addr);
    let me = format!("{base}{}", routes::ME);
    let lookups = || core.auth_cache().store_lookups();

    assert_eq!(get(&http, &me, &good).await.0, 200);
    assert_eq!(lookups(), 1);

    // A key with a broken checksum costs no query.
    let mut broken = good.clone();
    broken.pop();
    broken.push(if good.ends_with('a') { 'b' } else { 'a' });
    assert_eq!(get(&http, &me, &broken).await.0, 401);
    assert_eq!(lookups(), 1);
    // The same unknown key, again and again, costs one query.
    let repeated = unknown_key();
    for _ in 0..3 {
        assert_eq!(get(&http, &me, &repeated).await.0, 401);
    }
    assert_eq!(lookups(), 2);

    // Distinct well-formed bad keys: 401 up to the allowance (4 used above)...
    let mut keys_sent = vec![broken, repeated];
    for _ in 4..FAILURE_BURST {
        let k = unknown_key();
        assert_eq!(get(&http, &me, &k).await.0, 401);
        keys_sent.push(k);
    }
    let before_throttle = lookups();
    // ...then 429 with Retry-After, and no more store queries.
    for _ in 0..20 {
        let k = unknown_key();
        let (status, retry, body) = get(&http, &me, &k).await;
        assert_eq!(status, 429, "{body}");
        assert!(retry.unwrap().parse::<u64>().unwrap() >= 1);
        assert_eq!(body["error"]["code"], "rate_limited", "{body}");
        keys_sent.push(k);
    }
    assert_eq!(
        lookups(),
        before_throttle,
        "throttled lookups never reach the store"
    );

    // The caller's own format on the inference routes.
    let (status, retry, body) = post(
        &http,
        &format!("{base}{}", routes::MESSAGES),
        &unknown_key(),
    )
    .await;
    assert_eq!((status, retry.is_some()), (429, true));
    assert_eq!(body["type"], "error", "{body}");
    assert_eq!(body["error"]["type"], "rate_limit_error", "{body}");
    let (status, _, body) = post(
        &http,
        &format!("{base}{}", routes::CHAT_COMPLETIONS),
        &unknown_key(),
    )
    .await;
    assert_eq!(status, 429);
    assert_eq!(body["error"]["code"], "rate_limited", "{body}");
    assert!(body.get("type").is_none(), "OpenAI format: {body}");

    // A key this replica has verified still works from the throttled address.
    assert_eq!(get(&http, &me, &good).await.0, 200);

    // Failures are logged with the source and reason, never the key (the
    // sampling itself is tested in `auth.rs`, where no other test's subscriber
    // can take the lines).
    let text = logs.text();
    for k in keys_sent.iter().chain([&good]) {
        assert!(!text.contains(k.as_str()), "a key reached the log");
    }
    server.shutdown().await;
}
