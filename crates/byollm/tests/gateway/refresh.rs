//! Credentials refresh: a run that outlives its credentials keeps working with one
//! STS call per refresh window; a burst of first requests makes one STS call.

use std::time::Duration;

use byollm_api::routes;

use crate::harness::{Env, messages_body};

#[tokio::test]
async fn a_thousand_concurrent_first_requests_make_one_sts_call() {
    let env = Env::start().await;
    let agent = env.create_agent("burst", None).await;
    let (_, token) = env.start_run(Some(&agent)).await;
    let body = messages_body("claude-haiku-4-5", "x", false);
    let replies = futures::future::join_all(
        (0..1000).map(|_| env.infer(routes::MESSAGES, &token, body.clone())),
    )
    .await;
    let failed: Vec<_> = replies.iter().filter(|r| r.status != 200).collect();
    assert!(
        failed.is_empty(),
        "{} failed, first: {:?}",
        failed.len(),
        failed.first()
    );
    assert_eq!(env.sts_calls(), 1);
    env.stop().await;
}

#[tokio::test]
async fn a_run_outliving_its_credentials_refreshes_once_per_window_without_failures() {
    let env = Env::start().await;
    // 12-second sessions: refresh is due 2–3 s before expiry.
    env.sim
        .faults()
        .set_credential_lifetime(Some(Duration::from_secs(12)));
    let agent = env.create_agent("long", None).await;
    let (_, token) = env.start_run(Some(&agent)).await;
    let start = tokio::time::Instant::now();
    let mut n = 0;
    let mut last_sent = Duration::ZERO;
    while start.elapsed() < Duration::from_secs(17) {
        last_sent = start.elapsed();
        let r = env
            .infer(
                routes::MESSAGES,
                &token,
                messages_body("claude-haiku-4-5", "tick", false),
            )
            .await;
        assert_eq!(r.status, 200, "request {n}: {}", r.text);
        assert!(
            r.header("x-byollm-fallback").is_none(),
            "request {n} fell back: {:?}",
            r.header("x-byollm-fallback")
        );
        n += 1;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // Requests kept coming until the end (however slow the machine), so the
    // last token lifetime was exercised too; no throughput is asserted.
    assert!(
        last_sent + Duration::from_secs(5) > Duration::from_secs(17),
        "the last request left at {last_sent:?} after {n} requests"
    );
    // One assumption at the start, one refresh before the first credentials expired.
    assert_eq!(env.sts_calls(), 2, "after {n} requests");
    env.stop().await;
}

#[tokio::test]
async fn credentials_aws_says_expired_are_replaced_at_once() {
    let env = Env::start().await;
    let agent = env.create_agent("expiring", None).await;
    let (_, token) = env.start_run(Some(&agent)).await;
    let r = env
        .infer(
            routes::MESSAGES,
            &token,
            messages_body("claude-haiku-4-5", "one", false),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(env.sts_calls(), 1);
    // AWS now says the session expired (clock skew, revoked session…): the
    // gateway assumes the role again and the request still succeeds on Bedrock.
    env.sim.expire_sessions();
    let r = env
        .infer(
            routes::MESSAGES,
            &token,
            messages_body("claude-haiku-4-5", "two", false),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(
        r.header("x-byollm-route")
            .unwrap()
            .starts_with("aws_bedrock:"),
        "{:?}",
        r.header("x-byollm-route")
    );
    assert!(r.header("x-byollm-fallback").is_none());
    assert_eq!(env.sts_calls(), 2);
    env.stop().await;
}
