//! Three `byollm serve` processes on one PostgreSQL database behind HAProxy
//! (the cluster of replicas_support/cluster.rs), under a bounded open-loop
//! load through the balancer (streaming and not) (issue 13):
//!
//! - a key revoked through replica A is refused by B and C within 1 s;
//! - a run finished through A: its token is refused by B and C within 1 s;
//! - `byollm keys rotate` (the CLI, on the store): every replica publishes the
//!   new key in its JWKS within 1 s, long before it signs; once the
//!   pre-publication window has passed (the test moves the key's
//!   `activate_after` into the past, then `byollm keys list` runs the
//!   lifecycle), a token minted through each replica is signed by the new key
//!   and verifies against every replica's JWKS, which never lacks the key that
//!   signs;
//! - replica C killed with SIGKILL mid-load: every answered request has exactly
//!   one usage row, requests after the kill succeed through A and B, and C
//!   restarts, answers and hears changes again.
//!
//! - Bedrock through the emulator's STS: N replicas make at most N STS calls
//!   for one role (each replica caches its credentials);
//! - a run served by every replica: when it is finished through A, its AWS
//!   credentials leave every replica (each replica's `byollm_credentials_cached`
//!   gauge, read from its own metrics listener, drops).
//!
//! Measured propagation times (revocation or run end to refusal) are printed
//! as p50/p99, with the usage accounting of the kill.
//!
//! Needs PostgreSQL (`BYOLLM_TEST_POSTGRES_URL`) and `haproxy` on the PATH:
//! without them it fails when CI=true and says SKIPPED loudly otherwise.
//! PostgreSQL restarted mid-load is replicas_pg_restart.rs (on a private
//! PostgreSQL: restarting the shared one would disturb other tests).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr,
    clippy::disallowed_methods,
    reason = "test code: a failed unwrap is a failed test"
)]

use std::time::{Duration, Instant};

use byollm_api::routes;
use serde_json::json;

/// Steps the pending key `kid` past its pre-publication window (its
/// `activate_after` moved into the past in the store; waiting out the real
/// window would take 15 minutes), lets `byollm keys list` run the lifecycle,
/// and waits until a token minted through each replica carries `kid`. Every
/// token minted meanwhile, by either key, verifies against every replica's
/// JWKS, which still publishes the keys in `before` (tokens they signed stay
/// valid). Returns the time from the CLI to the last replica signing with `kid`.
async fn new_key_signs_everywhere(c: &Cluster, kid: &str, before: &[String]) -> Duration {
    use sqlx::Connection as _;
    let mut db = sqlx::PgConnection::connect(&c.url).await.unwrap();
    let moved = sqlx::query(
        "UPDATE signing_keys SET activate_after = activate_after - 86400 \
         WHERE kid = $1 AND state = 'pending'",
    )
    .bind(kid)
    .execute(&mut db)
    .await
    .unwrap();
    assert_eq!(moved.rows_affected(), 1, "{kid} is pending");
    let start = Instant::now();
    c.keys_list().await;
    for r in 0..3 {
        loop {
            let token = mint(c, r).await;
            let signed_by = verify_everywhere(c, &token).await;
            if signed_by == kid {
                break;
            }
            assert!(
                start.elapsed() < WITHIN,
                "replica {r} still signs with {signed_by} {WITHIN:?} after the switch"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let took = start.elapsed();
    for r in 0..3 {
        let kids = c.jwks_kids(r).await;
        for old in before {
            assert!(
                kids.contains(old),
                "replica {r} dropped {old} at the switch"
            );
        }
    }
    took
}

/// An identity token (a JWT for STS) minted through replica `on`.
async fn mint(c: &Cluster, on: usize) -> String {
    let minted = c
        .post_on(
            on,
            routes::IDENTITY_TOKEN,
            json!({"audience": byollm_api::types::STS_AUDIENCE, "requested_duration_seconds": 900}),
        )
        .await;
    minted["token"].as_str().unwrap().to_owned()
}

/// Verifies `token`'s signature, issuer and audience against each replica's
/// JWKS; returns the kid that signed it.
async fn verify_everywhere(c: &Cluster, token: &str) -> String {
    use jsonwebtoken::{DecodingKey, Validation, jwk::JwkSet};
    let header = jsonwebtoken::decode_header(token).unwrap();
    let kid = header.kid.clone().expect("a kid in the header");
    for r in 0..3 {
        let set: JwkSet = c
            .http
            .get(format!("{}{}", c.replicas[r].base(), routes::JWKS))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let jwk = set
            .find(&kid)
            .unwrap_or_else(|| panic!("replica {r} serves a JWKS without {kid}, which signs"));
        let mut v = Validation::new(header.alg);
        v.set_issuer(&["https://issuer.test"]);
        v.set_audience(&[byollm_api::types::STS_AUDIENCE]);
        jsonwebtoken::decode::<serde_json::Value>(token, &DecodingKey::from_jwk(jwk).unwrap(), &v)
            .unwrap_or_else(|e| panic!("replica {r}'s JWKS does not verify a token by {kid}: {e}"));
    }
    kid
}

#[path = "replicas_support/cluster.rs"]
mod cluster;
/// The gateway suite's emulator wiring (trust policy, permissions), shared
/// rather than copied.
#[path = "gateway/harness.rs"]
#[expect(dead_code, reason = "only the IAM helpers are used here")]
mod harness;

use cluster::{
    Cluster, TEST, WITHIN, haproxy_present, one_request, one_usage_row_each, percentile, start_load,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_behind_haproxy_share_changes_and_survive_a_kill() {
    use byollm_core::testing::{POSTGRES_ENV, postgres_configured, require};
    if !require(TEST, POSTGRES_ENV, postgres_configured())
        || !require(TEST, "haproxy", haproxy_present())
    {
        return;
    }
    let mut c = Cluster::start(byollm_core::testing::fresh_postgres_database()).await;
    assert!(
        one_request(c.http.clone(), c.lb.clone(), c.owner.clone(), false)
            .await
            .is_some(),
        "a request through the balancer"
    );

    // Propagation under load.
    let load = start_load(&c, 6);
    let mut revocations = Vec::new();
    let mut run_ends = Vec::new();
    for _ in 0..10 {
        revocations.extend(c.revocation().await);
        run_ends.extend(c.run_end().await);
    }
    let before = c.jwks_kids(0).await;
    let kid = c.rotate_keys().await;
    let start = Instant::now();
    for r in 0..3 {
        c.until("the rotated key is published", WITHIN, || async {
            c.jwks_kids(r).await.contains(&kid)
        })
        .await;
    }
    let rotation = start.elapsed();
    let switch = new_key_signs_everywhere(&c, &kid, &before).await;
    let (sent, answered) = load.await.unwrap();
    assert!(
        answered.len() as u64 * 10 >= sent * 9,
        "with every replica up, nearly all requests are answered: {} of {sent}",
        answered.len()
    );

    // SIGKILL replica C (index 2) mid-load.
    let load = start_load(&c, 4);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    c.replicas[2].child.start_kill().unwrap();
    c.replicas[2].child.wait().await.unwrap();
    let (sent_k, answered_k) = load.await.unwrap();
    // Quick streams from here on: the kill is over.
    c.sim.faults().set_stream_event_delay(Duration::ZERO);
    // After the kill, new requests succeed through A and B.
    for i in 0..10 {
        assert!(
            one_request(c.http.clone(), c.lb.clone(), c.owner.clone(), i % 2 == 0)
                .await
                .is_some(),
            "request {i} after the kill"
        );
    }
    // C restarts on its address (HAProxy's config names it) and rejoins.
    let addr = c.replicas[2].addr.clone();
    c.replicas[2] = c.serve(2, &addr).await;
    assert_eq!(c.me(2, &c.owner).await, 200);
    let after_restart = c.revocation().await;

    // Every answered request has exactly one usage row.
    let all: Vec<String> = answered.iter().chain(&answered_k).cloned().collect();
    let rows = one_usage_row_each(&c, &all, Duration::from_secs(10)).await;

    // STS calls across replicas: the team moves to Bedrock (the emulator).
    c.sim
        .create_oidc_provider(harness::ISSUER, &["sts.amazonaws.com"])
        .unwrap();
    let role = c
        .sim
        .create_role(
            "byollm-team",
            &harness::trust_policy(&format!("scoped_principal:{}/*", c.team)),
            None,
        )
        .unwrap();
    c.sim
        .put_role_policy("byollm-team", "bedrock", harness::BROAD_PERMISSIONS)
        .unwrap();
    // PUT takes the complete document: a new team's defaults with Bedrock on.
    let mut settings = serde_json::to_value(byollm_api::types::LlmSettings::default()).unwrap();
    byollm_core::merge_patch::merge_patch(
        &mut settings,
        &json!({"hosts": {"aws_bedrock": {"enabled": true, "role_arn": role, "region": "us-east-1"}},
            "allow_fallback_outside_cloud": false}),
    );
    let put = c
        .http
        .put(format!(
            "{}{}",
            c.replicas[0].base(),
            routes::TEAM_LLM_SETTINGS
        ))
        .bearer_auth(&c.owner)
        .json(&settings)
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 200, "{}", put.text().await.unwrap());
    let sts_before = c.sim.call_count("sts:AssumeRoleWithWebIdentity");
    const BEDROCK_REQUESTS: usize = 30;
    for i in 0..BEDROCK_REQUESTS {
        assert!(
            one_request(c.http.clone(), c.lb.clone(), c.owner.clone(), i % 2 == 0)
                .await
                .is_some(),
            "Bedrock request {i}"
        );
    }
    let sts = c.sim.call_count("sts:AssumeRoleWithWebIdentity") - sts_before;
    assert!(
        (1..=3).contains(&sts),
        "{sts} STS calls for {BEDROCK_REQUESTS} requests over 3 replicas"
    );

    // A run's AWS credentials, held by every replica that served it, leave
    // every replica when the run is finished through one of them.
    let run = c.post_on(0, routes::RUNS, json!({})).await;
    let (run_id, run_token) = (
        run["run_id"].as_str().unwrap().to_owned(),
        run["workload_token"].as_str().unwrap().to_owned(),
    );
    let mut held = Vec::new();
    for i in 0..3 {
        assert!(
            one_request(
                c.http.clone(),
                c.replicas[i].base(),
                run_token.clone(),
                false
            )
            .await
            .is_some(),
            "the run's Bedrock request on replica {i}"
        );
        held.push(c.credentials_cached(i).await);
    }
    c.post_on(0, &routes::fill(routes::RUN_FINISH, &run_id), json!({}))
        .await;
    let finished = Instant::now();
    for (i, before) in held.iter().enumerate() {
        c.until(
            "the finished run's credentials leave the replica",
            Duration::from_secs(5),
            || async { c.credentials_cached(i).await < *before },
        )
        .await;
    }
    eprintln!(
        "run finished: its AWS credentials left all 3 replicas within {:?}",
        finished.elapsed()
    );

    let mut times: Vec<Duration> = revocations.iter().chain(&after_restart).copied().collect();
    times.sort();
    let mut runs = run_ends.clone();
    runs.sort();
    eprintln!(
        "replicas: revocation → refusal p50 {:?} p99 {:?} ({} samples); run end → refusal p50 {:?} p99 {:?} ({} samples); \
         rotation published everywhere in {rotation:?}, signing with it everywhere {switch:?} after the window",
        percentile(&times, 0.5),
        percentile(&times, 0.99),
        times.len(),
        percentile(&runs, 0.5),
        percentile(&runs, 0.99),
        runs.len(),
    );
    eprintln!(
        "replicas: kill accounting: before the kill {} sent / {} answered; during the kill {sent_k} sent / {} answered \
         ({} failed at the client); {} usage rows for {} answered ids, none doubled",
        sent,
        answered.len(),
        answered_k.len(),
        sent_k - answered_k.len() as u64,
        rows,
        all.len(),
    );
    eprintln!(
        "replicas: {sts} STS calls for {BEDROCK_REQUESTS} Bedrock requests over 3 replicas (one role)"
    );
    let _ = c.haproxy.start_kill();
}
