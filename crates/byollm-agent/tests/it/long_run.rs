//! Real time, short sessions: a worker (flow 2) keeps sending inference with its
//! own credentials across several credential lifetimes, every request served by
//! Bedrock, with one STS call per refresh window.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use byollm_agent::gateway::{CallerCredentials, Message, stream_turn};
use byollm_api::client::Client;
use byollm_api::clock::SystemClock;
use byollm_federation::aws::run_session_name;

use crate::harness::Env;

#[tokio::test]
async fn a_worker_keeps_inferring_across_short_sessions_with_one_sts_call_per_window() {
    let env = Env::start(None, true).await;
    // 8-second sessions: each refresh is due 20–30 % of the lifetime ahead.
    env.sim
        .faults()
        .set_credential_lifetime(Some(Duration::from_secs(8)));
    let (run_id, token) = env.start_run().await;
    let mut cfg =
        byollm_agent::OidcConfig::new(&env.role_arn, "us-east-1", &run_session_name(&run_id));
    cfg.sts_endpoint_url = Some(env.sim.endpoint_url());
    let client = Client::new(&env.base, Some(token)).unwrap();
    let managed = byollm_agent::OidcManaged::new(
        client.clone(),
        byollm_agent::TokenSource::Run { run_id },
        cfg,
        Arc::new(SystemClock),
    );
    let tracker = TaskTracker::new();
    let stop = CancellationToken::new();
    let (m, s) = (managed.clone(), stop.clone());
    tracker.spawn(async move { m.run(s).await });

    let start = tokio::time::Instant::now();
    let mut n = 0;
    let mut keys = Vec::new();
    while start.elapsed() < Duration::from_secs(15) {
        let creds = managed.credentials().await.unwrap();
        keys.push(creds.access_key_id.clone());
        let caller = CallerCredentials {
            creds,
            region: Some("us-east-1".into()),
        };
        let conversation = [Message {
            role: "user",
            text: format!("tick {n}"),
        }];
        let reply = stream_turn(
            &client,
            "claude-haiku-4-5",
            &conversation,
            Some(&caller),
            |_| {},
        )
        .await
        .unwrap_or_else(|e| panic!("request {n}: {e}"));
        let route = reply.route.clone().unwrap_or_default();
        assert!(
            route.starts_with("aws_bedrock:") && route.ends_with("@us-east-1"),
            "request {n}: {route}"
        );
        assert!(
            reply.fallback.is_none(),
            "request {n}: {:?}",
            reply.fallback
        );
        assert!(reply.text.contains(&format!("tick {n}")), "{}", reply.text);
        n += 1;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(n > 30, "only {n} requests");
    stop.cancel();
    tracker.close();
    tracker.wait().await;
    // Whatever the last refresh produced is in hand too.
    keys.push(managed.credentials().await.unwrap().access_key_id);
    keys.dedup();
    // 15 s of 7–8 s sessions (STS expirations are whole seconds) refreshed
    // 20–30 % ahead: at least three windows, at most four, and every STS call
    // made credentials that requests then used — none wasted, none repeated.
    assert!((3..=4).contains(&keys.len()), "{} windows", keys.len());
    assert_eq!(
        env.sts_calls(),
        keys.len() as u64,
        "one STS call per window"
    );
    // The gateway used the worker's credentials: its own broker never called STS.
    assert!(env.server.core.broker().is_empty());
    env.stop().await;
}
