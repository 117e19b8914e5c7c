//! AWS credentials do not outlive their purpose (issue 10): they leave the
//! broker, and the SDK clients built from them leave the gateway, when their
//! run ends (finished, cancelled, expired at its maximum age), when their
//! agent or member is removed, when the settings that chose the role change,
//! and at their own expiry; a caller's own credentials leave nothing behind.
//! Observed through the broker's and gateway's counters, with a `FakeClock`
//! for time, never by sleeping.

use std::sync::Arc;

use byollm_api::clock::{Clock as _, FakeClock, SystemClock, parse_rfc3339_ms};
use byollm_api::routes;
use byollm_core::broker::BrokerStats;
use byollm_core::config::CoreConfig;
use byollm_core::ids;
use byollm_core::store::ApiKeyRow;
use byollm_server::app;
use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::{BROAD_PERMISSIONS, Env, ISSUER, Reply, messages_body, trust_policy};

/// `[runs] max_age_seconds` of these tests: ten minutes.
const MAX_AGE: i64 = 600;

async fn clocked() -> (Env, FakeClock) {
    let clock = FakeClock::new(SystemClock.now());
    let mut core = CoreConfig::new(ISSUER);
    core.run_max_age_seconds = MAX_AGE;
    let env = Env::start_clocked(json!({}), Arc::new(clock.clone()), core).await;
    (env, clock)
}

fn broker(env: &Env) -> BrokerStats {
    env.server.core.broker().stats()
}

fn clients(env: &Env) -> u64 {
    env.server.gateway.stats().bedrock_clients
}

/// One request served by Bedrock with `key`.
async fn through_bedrock(env: &Env, key: &str) {
    let r = env
        .infer(
            routes::MESSAGES,
            key,
            messages_body("claude-sonnet-4-6", "hi", false),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(
        r.header("x-byollm-route")
            .is_some_and(|h| h.starts_with("aws_bedrock:")),
        "{:?}",
        r.header("x-byollm-route")
    );
}

async fn inference_status(env: &Env, key: &str) -> u16 {
    env.infer(
        routes::MESSAGES,
        key,
        messages_body("claude-sonnet-4-6", "hi", false),
    )
    .await
    .status
    .as_u16()
}

async fn run_info(env: &Env, run: &str) -> Value {
    let (s, v) = env
        .api(
            Method::GET,
            &routes::RUN.replace("{id}", run),
            &env.owner_key,
            None,
        )
        .await;
    assert_eq!(s, 200, "{v}");
    v
}

async fn finish(env: &Env, run: &str, body: Value) -> Value {
    let (s, v) = env
        .api(
            Method::POST,
            &routes::RUN_FINISH.replace("{id}", run),
            &env.owner_key,
            Some(body),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    v
}

fn seconds(rfc3339: &Value) -> i64 {
    parse_rfc3339_ms(rfc3339.as_str().unwrap()).unwrap() / 1000
}

#[tokio::test]
async fn ended_runs_leave_no_credentials_and_their_tokens_die() {
    let (env, clock) = clocked().await;
    let agent = env.create_agent("worker", None).await;
    let mut runs = Vec::new();
    for _ in 0..4 {
        runs.push(env.start_run(Some(&agent)).await);
    }
    for (_, token) in &runs {
        through_bedrock(&env, token).await;
    }
    let s = broker(&env);
    assert_eq!((s.entries, s.with_credentials), (4, 4), "{s:?}");
    assert_eq!(clients(&env), 4);

    // Finished and cancelled: gone at once, tokens refused.
    finish(&env, &runs[0].0, json!({})).await;
    let v = finish(&env, &runs[1].0, json!({"state": "cancelled"})).await;
    assert_eq!(v["state"], "cancelled");
    let s = broker(&env);
    assert_eq!((s.entries, s.evictions.run_ended), (2, 2), "{s:?}");
    assert_eq!(clients(&env), 2);
    for (_, token) in &runs[..2] {
        assert_eq!(inference_status(&env, token).await, 401);
    }
    // `expired` is the server's word, not the caller's.
    let (s, v) = env
        .api(
            Method::POST,
            &routes::RUN_FINISH.replace("{id}", &runs[2].0),
            &env.owner_key,
            Some(json!({"state": "expired"})),
        )
        .await;
    assert_eq!(s, 400, "{v}");

    // Past the maximum age with nobody calling the API: the token dies at once,
    // a lookup sees the run expired, the maintenance sweep ends the others.
    clock.advance(MAX_AGE + 120);
    assert_eq!(inference_status(&env, &runs[3].1).await, 401);
    // Compute stops at the maximum age (ten started minutes, not twelve), even
    // before anything marked the run.
    let compute = |usage: Value| usage["buckets"]["compute"].as_f64().unwrap();
    let before_sweep = compute(env.usage(&format!("?run_id={}", runs[3].0)).await);
    assert!((before_sweep - 1.0).abs() < 1e-9, "{before_sweep}");
    assert_eq!(run_info(&env, &runs[2].0).await["state"], "expired");
    assert!(broker(&env).entries <= 1, "{:?}", broker(&env));
    app::maintain(&env.server.core).await;
    let s = broker(&env);
    assert_eq!((s.entries, s.with_credentials), (0, 0), "{s:?}");
    assert_eq!(s.evictions.run_ended, 4, "{s:?}");
    assert_eq!(
        clients(&env),
        0,
        "the SDK clients left with the credentials"
    );
    for (run, token) in &runs[2..] {
        let info = run_info(&env, run).await;
        assert_eq!(info["state"], "expired", "{info}");
        assert_eq!(
            seconds(&info["finished_at"]),
            seconds(&info["created_at"]) + MAX_AGE,
            "ended at its maximum age: {info}"
        );
        assert_eq!(inference_status(&env, token).await, 401);
    }

    // And however late anyone looks after.
    clock.advance(3600);
    let after = compute(env.usage(&format!("?run_id={}", runs[3].0)).await);
    assert!((after - 1.0).abs() < 1e-9, "{after}");
    env.stop().await;
}

#[tokio::test]
async fn removing_an_agent_or_a_member_drops_their_credentials_and_ends_their_runs() {
    let (env, _clock) = clocked().await;
    let (s, m) = env
        .api(
            Method::POST,
            routes::TEAM_MEMBERS,
            &env.owner_key,
            Some(json!({"email": "dev@acme.example", "role": "member"})),
        )
        .await;
    assert_eq!(s, 201, "{m}");
    let member = m["uid"].as_str().unwrap().to_owned();
    let member_key = ids::new_api_key();
    let member_key = secrecy::ExposeSecret::expose_secret(&member_key).to_owned();
    env.server
        .core
        .store()
        .insert_api_key(
            &ApiKeyRow {
                id: ids::new_id("key"),
                team_uid: env.team.clone(),
                owner_type: byollm_api::types::ActorType::User,
                owner_uid: member.clone(),
                name: "dev".into(),
                key_hash: ids::hash_secret(&member_key),
                prefix: ids::visible_prefix(&member_key),
                created_at: 0,
                expires_at: None,
                last_used_at: None,
            },
            None,
        )
        .await
        .unwrap();

    // The member uses Bedrock and starts a run of an agent; another agent runs.
    let helper = env.create_agent("helper", None).await;
    through_bedrock(&env, &member_key).await;
    let (s, v) = env
        .api(
            Method::POST,
            routes::RUNS,
            &member_key,
            Some(json!({"agent_uid": helper})),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let (their_run, their_token) = (
        v["run_id"].as_str().unwrap().to_owned(),
        v["workload_token"].as_str().unwrap().to_owned(),
    );
    through_bedrock(&env, &their_token).await;
    let other = env.create_agent("other", None).await;
    let (other_run, other_token) = env.start_run(Some(&other)).await;
    through_bedrock(&env, &other_token).await;
    assert_eq!(broker(&env).entries, 3);
    assert_eq!(clients(&env), 3);

    let (s, _) = env
        .api(
            Method::DELETE,
            &routes::AGENT_IDENTITY.replace("{uid}", &other),
            &env.owner_key,
            None,
        )
        .await;
    assert!(s.is_success(), "{s}");
    let s = broker(&env);
    assert_eq!((s.entries, s.evictions.removed), (2, 1), "{s:?}");
    assert_eq!(clients(&env), 2);
    assert_eq!(run_info(&env, &other_run).await["state"], "cancelled");
    assert_eq!(inference_status(&env, &other_token).await, 401);

    let (s, _) = env
        .api(
            Method::DELETE,
            &routes::TEAM_MEMBER.replace("{uid}", &member),
            &env.owner_key,
            None,
        )
        .await;
    assert!(s.is_success(), "{s}");
    let s = broker(&env);
    assert_eq!((s.entries, s.with_credentials), (0, 0), "{s:?}");
    assert_eq!(clients(&env), 0);
    assert_eq!(
        run_info(&env, &their_run).await["state"],
        "cancelled",
        "the run the member started ends with them"
    );
    assert_eq!(inference_status(&env, &their_token).await, 401);
    assert_eq!(inference_status(&env, &member_key).await, 401);
    env.stop().await;
}

#[tokio::test]
async fn changing_the_team_role_drops_credentials_chosen_with_the_old_one() {
    let env = Env::start().await;
    through_bedrock(&env, &env.owner_key).await;
    assert_eq!(broker(&env).with_credentials, 1);

    // A change that does not choose credentials keeps them.
    let bedrock = json!({"enabled": true, "role_arn": env.role_arn, "region": "us-east-1"});
    env.put_settings(
        json!({"hosts": {"aws_bedrock": bedrock}, "allow_fallback_outside_cloud": false}),
    )
    .await;
    assert_eq!(broker(&env).with_credentials, 1);

    let new_role = env
        .sim
        .create_role(
            "byollm-team-2",
            &trust_policy(&format!("scoped_principal:{}/*", env.team)),
            None,
        )
        .unwrap();
    env.sim
        .put_role_policy("byollm-team-2", "bedrock", BROAD_PERMISSIONS)
        .unwrap();
    env.put_settings(json!({"hosts": {"aws_bedrock":
        {"enabled": true, "role_arn": new_role, "region": "us-east-1"}}}))
        .await;
    let s = broker(&env);
    assert_eq!((s.entries, s.evictions.settings_changed), (0, 1), "{s:?}");
    assert_eq!(clients(&env), 0);
    through_bedrock(&env, &env.owner_key).await;
    assert_eq!(env.sts_calls(), 2, "the new role was assumed");
    env.stop().await;
}

#[tokio::test]
async fn credentials_past_their_expiration_leave_at_the_sweep() {
    let (env, clock) = clocked().await;
    through_bedrock(&env, &env.owner_key).await;
    assert_eq!((broker(&env).with_credentials, clients(&env)), (1, 1));
    // The emulator's sessions last an hour.
    clock.advance(3600 + 60);
    app::maintain(&env.server.core).await;
    let s = broker(&env);
    assert_eq!((s.entries, s.evictions.expired), (0, 1), "{s:?}");
    assert_eq!(clients(&env), 0);
    env.stop().await;
}

#[tokio::test]
async fn caller_credentials_leave_nothing_behind() {
    let env = Env::start().await;
    let (ak, sk) = env.sim.admin_credentials();
    let (ak, sk) = (ak.to_owned(), sk.to_owned());
    let r = env
        .infer_with(
            routes::MESSAGES,
            &env.owner_key,
            messages_body("claude-sonnet-4-6", "with my own keys", false),
            &[
                ("x-byollm-aws-access-key-id", &ak),
                ("x-byollm-aws-secret-access-key", &sk),
            ],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(broker(&env).entries, 0);
    assert_eq!(clients(&env), 0, "the request's SDK client died with it");
    env.stop().await;
}

#[tokio::test]
async fn an_unavailable_agent_gets_a_403_in_the_callers_format() {
    let env = Env::start().await;
    let agent = env.create_agent("paused", None).await;
    let (s, v) = env
        .api(
            Method::POST,
            routes::API_KEYS,
            &env.owner_key,
            Some(json!({"name": "k", "agent_uid": agent})),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let key = v["key"].as_str().unwrap().to_owned();
    let (_run, token) = env.start_run(Some(&agent)).await;
    through_bedrock(&env, &key).await;
    through_bedrock(&env, &token).await;
    assert_eq!(broker(&env).with_credentials, 2);

    let (s, v) = env
        .api(
            Method::PATCH,
            &routes::AGENT_IDENTITY.replace("{uid}", &agent),
            &env.owner_key,
            Some(json!({"available": false})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let s = broker(&env);
    assert_eq!((s.entries, s.evictions.settings_changed), (0, 2), "{s:?}");

    let r = env
        .infer(
            routes::MESSAGES,
            &key,
            messages_body("claude-sonnet-4-6", "hi", false),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.text);
    let body = r.json();
    assert_eq!(body["type"], "error", "{body}");
    assert_eq!(body["error"]["type"], "permission_error", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("not available")),
        "{body}"
    );
    let r: Reply = env
        .infer(
            routes::CHAT_COMPLETIONS,
            &token,
            crate::harness::chat_body("claude-sonnet-4-6", "hi", false),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.text);
    assert_eq!(r.json()["error"]["type"], "permission_error", "{}", r.text);
    assert_eq!(broker(&env).entries, 0, "nothing was brokered");

    let (s, v) = env
        .api(
            Method::POST,
            routes::RUNS,
            &env.owner_key,
            Some(json!({"agent_uid": agent})),
        )
        .await;
    assert_eq!(s, 422, "no new runs either: {v}");
    env.stop().await;
}
