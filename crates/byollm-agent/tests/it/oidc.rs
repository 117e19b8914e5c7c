//! `OidcManaged` on a fake clock shared by the server, the emulator and the
//! agent: one STS call per refresh window over many lifetimes, backoff and
//! recovery, re-mint on `ExpiredToken`, the token file rewritten ahead of
//! expiry, and the plain refusal when the team keeps worker tokens off.

use std::os::unix::fs::PermissionsExt as _;
use std::sync::Arc;
use std::time::Duration;

use secrecy::{ExposeSecret as _, SecretString};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use byollm_agent::{CredentialState, OidcError};
use byollm_api::clock::{Clock as _, FakeClock};

use crate::harness::{Env, eventually, jwt_exp, real_now_ms};

async fn fake_env(worker_tokens: bool) -> (FakeClock, Env) {
    let clock = FakeClock::from_ms(real_now_ms());
    let env = Env::start(Some(clock.clone()), worker_tokens).await;
    (clock, env)
}

#[tokio::test]
async fn a_long_run_makes_one_sts_call_per_window_across_many_lifetimes() {
    let (clock, env) = fake_env(true).await;
    let (run_id, managed) = env.managed(Arc::new(clock.clone()), |_| {}).await;
    let tracker = TaskTracker::new();
    let stop = CancellationToken::new();
    let (m, s) = (managed.clone(), stop.clone());
    tracker.spawn(async move { m.run(s).await });
    let mut generation = managed.subscribe();
    generation.wait_for(|g| *g >= 1).await.unwrap();

    // Ten one-hour lifetimes: each window, the credentials in hand are live at
    // the emulator, and the refresh happens between refresh time and expiry.
    let mut seen = Vec::new();
    for window in 1..=10u64 {
        let c = managed.credentials().await.unwrap();
        let session = env.sim.session(&c.access_key_id).expect("issued by STS");
        assert!(session.expiration * 1000 > clock.now_ms());
        assert!(
            session
                .assumed_role_arn
                .ends_with(&format!("/byollm-run-{run_id}")),
            "{}",
            session.assumed_role_arn
        );
        assert_eq!(env.sts_calls(), window, "one STS call per window");
        assert_eq!(managed.status().state, CredentialState::Loaded);
        seen.push(c.access_key_id.clone());
        // Just before the refresh window nothing happens …
        let exp = c.expires_at_ms.unwrap();
        clock.set_ms(exp - 361_000);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(env.sts_calls(), window);
        assert_eq!(
            managed.credentials().await.unwrap().access_key_id,
            c.access_key_id
        );
        // … and inside it the background loop refreshes, before expiry.
        clock.set_ms(exp - 290_000);
        generation.wait_for(|g| *g > window).await.unwrap();
        assert!(clock.now_ms() < exp);
    }
    seen.dedup();
    assert_eq!(seen.len(), 10);
    assert_eq!(env.sts_calls(), 11);
    assert_eq!(managed.sts_calls(), 11);
    stop.cancel();
    tracker.close();
    tracker.wait().await;
    env.stop().await;
}

#[tokio::test]
async fn a_failed_refresh_backs_off_serves_the_old_credentials_and_recovers() {
    let (clock, env) = fake_env(true).await;
    let (_, managed) = env.managed(Arc::new(clock.clone()), |_| {}).await;
    let tracker = TaskTracker::new();
    let stop = CancellationToken::new();
    let (m, s) = (managed.clone(), stop.clone());
    tracker.spawn(async move { m.run(s).await });
    let mut generation = managed.subscribe();
    generation.wait_for(|g| *g >= 1).await.unwrap();
    let first = managed.credentials().await.unwrap();
    assert_eq!(env.sts_calls(), 1);

    env.sim
        .faults()
        .fail_next("sts:AssumeRoleWithWebIdentity", "ServiceUnavailable", 3);
    clock.set_ms(first.expires_at_ms.unwrap() - 290_000);
    eventually("the first failed refresh", || managed.failures() == 1).await;
    assert_eq!(env.sts_calls(), 2);
    assert!(managed.status().message.contains("last refresh failed"));
    // The old credentials still serve; no retry before the backoff ends.
    let status = managed.status();
    assert_eq!(status.state, CredentialState::Loaded, "{status}");
    assert_eq!(
        managed.credentials().await.unwrap().access_key_id,
        first.access_key_id
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(env.sts_calls(), 2, "retried before the backoff ended");

    // 1 s, then 2 s, then 4 s of backoff (each drawn from its upper half).
    clock.advance_ms(1_000);
    eventually("the second attempt", || managed.failures() == 2).await;
    assert_eq!(env.sts_calls(), 3);
    clock.advance_ms(2_000);
    eventually("the third attempt", || managed.failures() == 3).await;
    assert_eq!(env.sts_calls(), 4);
    clock.advance_ms(1_500);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(env.sts_calls(), 4, "the third backoff is at least 2 s");
    clock.advance_ms(2_500);
    eventually("the recovery", || {
        env.sts_calls() == 5 && managed.failures() == 0
    })
    .await;
    generation.wait_for(|g| *g >= 2).await.unwrap();
    let fresh = managed.credentials().await.unwrap();
    assert_ne!(fresh.access_key_id, first.access_key_id);
    assert!(fresh.expires_at_ms > first.expires_at_ms);
    let status = managed.status();
    assert_eq!(status.state, CredentialState::Loaded);
    assert!(!status.message.contains("failed"), "{status}");
    stop.cancel();
    tracker.close();
    tracker.wait().await;
    env.stop().await;
}

#[tokio::test]
async fn an_expired_token_is_re_minted_at_once_not_retried() {
    let (clock, env) = fake_env(true).await;
    let (_, managed) = env.managed(Arc::new(clock.clone()), |_| {}).await;
    env.sim
        .faults()
        .fail_next("sts:AssumeRoleWithWebIdentity", "ExpiredTokenException", 1);
    // No clock movement: the second STS call follows the refusal at once.
    let c = managed.credentials().await.unwrap();
    assert!(env.sim.session(&c.access_key_id).is_some());
    assert_eq!(env.sts_calls(), 2);
    assert_eq!(
        managed.mints(),
        2,
        "a new identity token for the second call"
    );
    env.stop().await;
}

#[tokio::test]
async fn the_token_file_is_rewritten_before_it_expires_and_stays_usable() {
    let (clock, env) = fake_env(true).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("token");
    let (run_id, managed) = env
        .managed(Arc::new(clock.clone()), |cfg| {
            cfg.token_file = Some(path.clone());
            cfg.token_duration_seconds = 120;
            cfg.keep_credentials = false;
        })
        .await;
    let tracker = TaskTracker::new();
    let stop = CancellationToken::new();
    let (m, s) = (managed.clone(), stop.clone());
    tracker.spawn(async move { m.run(s).await });
    let mut generation = managed.subscribe();
    generation.wait_for(|g| *g >= 1).await.unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);

    let sts = aws_sdk_sts::Client::from_conf(
        aws_sdk_sts::Config::builder()
            .behavior_version(aws_sdk_sts::config::BehaviorVersion::latest())
            .region(aws_sdk_sts::config::Region::new("us-east-1"))
            .endpoint_url(env.sim.endpoint_url())
            .build(),
    );
    let mut previous = String::new();
    for round in 1..=5u64 {
        let token = std::fs::read_to_string(&path).unwrap();
        assert_ne!(token, previous, "round {round}: the file was not rewritten");
        let exp_ms = jwt_exp(&token) * 1000;
        assert!(
            exp_ms > clock.now_ms(),
            "round {round}: the file holds an expired token"
        );
        // What any AWS SDK does with the file: the emulator accepts it.
        let out = sts
            .assume_role_with_web_identity()
            .role_arn(&env.role_arn)
            .role_session_name(format!("byollm-run-{run_id}"))
            .web_identity_token(&token)
            .send()
            .await
            .unwrap();
        assert!(out.credentials.is_some());
        previous = token;
        // 120 s tokens are rewritten 24–36 s before expiry.
        clock.set_ms(exp_ms - 37_000);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(std::fs::read_to_string(&path).unwrap(), previous);
        clock.set_ms(exp_ms - 20_000);
        generation.wait_for(|g| *g > round).await.unwrap();
        assert!(clock.now_ms() < exp_ms);
    }
    assert_eq!(managed.token_writes(), 6);
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "no temp files left"
    );
    let env_vars = managed.child_env();
    let get = |k: &str| {
        env_vars
            .iter()
            .find(|(name, _)| name == k)
            .map(|(_, v)| v.clone())
            .unwrap()
    };
    assert_eq!(get("AWS_ROLE_ARN"), env.role_arn);
    assert_eq!(
        get("AWS_WEB_IDENTITY_TOKEN_FILE"),
        path.display().to_string()
    );
    assert_eq!(get("AWS_ROLE_SESSION_NAME"), format!("byollm-run-{run_id}"));
    assert_eq!(get("AWS_REGION"), "us-east-1");
    assert_eq!(get("AWS_ENDPOINT_URL_STS"), env.sim.endpoint_url());
    stop.cancel();
    tracker.close();
    tracker.wait().await;
    env.stop().await;
}

#[tokio::test]
async fn without_worker_identity_tokens_the_worker_is_told_plainly() {
    let (clock, env) = fake_env(false).await;
    let (_, managed) = env.managed(Arc::new(clock.clone()), |_| {}).await;
    let err = managed.credentials().await.unwrap_err();
    assert!(matches!(err, OidcError::WorkerTokensDisabled), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("worker_identity_tokens"), "{text}");
    assert!(text.contains("server-side broker"), "{text}");
    assert_eq!(env.sts_calls(), 0);
    assert_eq!(managed.status().state, CredentialState::Failed);
    // The background loop stops rather than retrying forever.
    let stop = CancellationToken::new();
    let out = managed.run(stop).await;
    assert!(matches!(out, Err(OidcError::WorkerTokensDisabled)));
    env.stop().await;
}

#[tokio::test]
async fn debug_and_errors_never_show_secrets() {
    let (clock, env) = fake_env(true).await;
    let (_, managed) = env.managed(Arc::new(clock.clone()), |_| {}).await;
    let c = managed.credentials().await.unwrap();
    let token: SecretString = managed.identity_token().await.unwrap();
    let texts = [
        format!("{managed:?}"),
        format!("{c:?}"),
        managed.status().to_string(),
    ];
    for t in texts {
        assert!(!t.contains(c.secret_access_key.expose_secret()), "{t}");
        assert!(
            !t.contains(c.session_token.as_ref().unwrap().expose_secret()),
            "{t}"
        );
        assert!(!t.contains(token.expose_secret()), "{t}");
    }
    env.stop().await;
}
