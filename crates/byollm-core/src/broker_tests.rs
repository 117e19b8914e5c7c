//! The broker's tests: refresh, single flight, failure hold, and the
//! lifetimes of what it holds (issue 10), observed through its counters.

use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use byollm_api::clock::FakeClock;
use byollm_api::types::ActorType;
use byollm_federation::Exchange;
use byollm_federation::aws::AssumeRole;

use super::*;

const T0_MS: i64 = 1_800_000_000_000;
const LIFETIME_MS: i64 = 3_600_000;

/// STS on the broker's clock: hour-long credentials, or the failure set.
#[derive(Debug)]
struct FakeSts {
    clock: FakeClock,
    calls: AtomicU64,
    fail: parking_lot::Mutex<Option<ExchangeError>>,
    /// When set, each call waits for a permit (after signalling `entered`).
    gate: parking_lot::Mutex<Option<Arc<tokio::sync::Semaphore>>>,
    entered: tokio::sync::Notify,
}

#[async_trait]
impl Exchange for FakeSts {
    type Target = AssumeRole;
    type Credentials = TemporaryCredentials;

    async fn exchange(
        &self,
        _token: &SecretString,
        _target: &AssumeRole,
    ) -> Result<TemporaryCredentials, ExchangeError> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        let gate = self.gate.lock().clone();
        if let Some(gate) = gate {
            self.entered.notify_one();
            gate.acquire().await.unwrap().forget();
        }
        if let Some(e) = self.fail.lock().clone() {
            return Err(e);
        }
        Ok(TemporaryCredentials {
            access_key_id: format!("ASIA{n}"),
            secret_access_key: SecretString::from("secret"),
            session_token: SecretString::from("session"),
            expires_at_ms: self.clock.now_ms() + LIFETIME_MS,
        })
    }
}

fn setup() -> (FakeClock, Arc<FakeSts>, Arc<CredentialsBroker>, BrokerKey) {
    setup_with(MAX_ENTRIES)
}

fn setup_with(max_entries: u64) -> (FakeClock, Arc<FakeSts>, Arc<CredentialsBroker>, BrokerKey) {
    let clock = FakeClock::from_ms(T0_MS);
    let sts = Arc::new(FakeSts {
        clock: clock.clone(),
        calls: AtomicU64::new(0),
        fail: parking_lot::Mutex::new(None),
        gate: parking_lot::Mutex::new(None),
        entered: tokio::sync::Notify::new(),
    });
    let broker = Arc::new(CredentialsBroker::with_max_entries(
        sts.clone(),
        Arc::new(clock.clone()),
        100.0,
        100.0,
        max_entries,
    ));
    let key = BrokerKey {
        team_uid: "t1".into(),
        actor: Actor {
            actor_type: ActorType::ServiceAccount,
            uid: "a1".into(),
        },
        target: CloudTarget::Aws {
            role_arn: "arn:aws:iam::123456789012:role/r".into(),
            region: "us-east-1".into(),
        },
        run_id: Some("r1".into()),
    };
    (clock, sts, broker, key)
}

async fn get(broker: &Arc<CredentialsBroker>, key: &BrokerKey) -> Result<String, BrokerError> {
    broker
        .credentials(key, "byollm-run-r1", || async {
            Ok(SecretString::from("identity-token"))
        })
        .await
        .map(|c| c.aws().unwrap().access_key_id.clone())
}

#[tokio::test]
async fn refreshes_in_the_background_when_due_and_in_the_foreground_when_unusable() {
    let (clock, sts, broker, key) = setup();
    assert_eq!(get(&broker, &key).await.unwrap(), "ASIA1");
    // Not yet due (the refresh is at most 6 min before expiry): cached.
    clock.advance_ms(LIFETIME_MS - 361_000);
    assert_eq!(get(&broker, &key).await.unwrap(), "ASIA1");
    assert_eq!(sts.calls.load(Ordering::SeqCst), 1);
    // Due but usable: the current credentials serve, a refresh runs behind.
    clock.advance_ms(71_000);
    assert_eq!(get(&broker, &key).await.unwrap(), "ASIA1");
    broker.close().await;
    assert_eq!(sts.calls.load(Ordering::SeqCst), 2);
    assert_eq!(get(&broker, &key).await.unwrap(), "ASIA2");
    // Past the hand-out limit (15 s before expiry) with no refresh done
    // yet: the caller waits for new credentials.
    broker.invalidate(&key);
    assert_eq!(get(&broker, &key).await.unwrap(), "ASIA3");
    clock.advance_ms(LIFETIME_MS - 14_000);
    assert_eq!(get(&broker, &key).await.unwrap(), "ASIA4");
    assert_eq!(sts.calls.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn a_failure_is_held_then_tried_again() {
    let (clock, sts, broker, key) = setup();
    *sts.fail.lock() = Some(ExchangeError::AccessDenied("AccessDenied: no".into()));
    let e = get(&broker, &key).await.unwrap_err();
    assert!(
        matches!(&e, BrokerError::Sts(ExchangeError::AccessDenied(_))),
        "{e}"
    );
    clock.advance(FAILURE_HOLD_SECONDS - 1);
    assert!(get(&broker, &key).await.is_err());
    assert_eq!(sts.calls.load(Ordering::SeqCst), 1, "held, not retried");
    clock.advance(1);
    *sts.fail.lock() = None;
    assert_eq!(get(&broker, &key).await.unwrap(), "ASIA2");
    broker.drop_run("t1", "r1");
    assert!(broker.is_empty());
}

/// `key` with another actor, run or team.
fn other(key: &BrokerKey, team: &str, actor: (ActorType, &str), run: Option<&str>) -> BrokerKey {
    BrokerKey {
        team_uid: team.into(),
        actor: Actor {
            actor_type: actor.0,
            uid: actor.1.into(),
        },
        run_id: run.map(str::to_owned),
        ..key.clone()
    }
}

#[tokio::test]
async fn credentials_leave_when_their_run_ends_their_actor_goes_or_their_settings_change() {
    let (_clock, _sts, broker, run_key) = setup();
    let agent_key = other(&run_key, "t1", (ActorType::ServiceAccount, "a1"), None);
    let agent_run2 = other(
        &run_key,
        "t1",
        (ActorType::ServiceAccount, "a1"),
        Some("r2"),
    );
    let member_key = other(&run_key, "t1", (ActorType::User, "u1"), None);
    let other_team = other(&run_key, "t2", (ActorType::User, "u9"), None);
    for k in [&run_key, &agent_key, &agent_run2, &member_key, &other_team] {
        get(&broker, k).await.unwrap();
    }
    assert_eq!(broker.stats().with_credentials, 5);

    assert_eq!(broker.drop_run("t1", "r1"), 1);
    assert_eq!(broker.drop_run("t2", "r2"), 0, "runs are per team");
    let actor = agent_key.actor.clone();
    assert_eq!(
        broker.drop_actor("t1", &actor, Cause::Removed),
        2,
        "its runs too"
    );
    assert_eq!(broker.drop_team("t1"), 1);
    let stats = broker.stats();
    assert_eq!(
        (stats.evictions.run_ended, stats.evictions.removed),
        (1, 2),
        "{stats:?}"
    );
    assert_eq!(stats.evictions.settings_changed, 1, "{stats:?}");
    assert_eq!((stats.entries, stats.with_credentials), (1, 1), "{stats:?}");
    assert!(get(&broker, &other_team).await.is_ok());
}

#[tokio::test]
async fn credentials_past_their_expiration_leave_on_our_clock() {
    let (clock, sts, broker, key) = setup();
    assert_eq!(get(&broker, &key).await.unwrap(), "ASIA1");
    clock.advance_ms(LIFETIME_MS - 1_000);
    assert_eq!(broker.evict_expired(), 0, "not yet");
    clock.advance_ms(1_000);
    // The maintenance sweep drops them.
    assert_eq!(broker.evict_expired(), 1);
    let stats = broker.stats();
    assert_eq!(
        (stats.entries, stats.evictions.expired),
        (0, 1),
        "{stats:?}"
    );

    // A lookup drops expired ones it meets before asking STS again.
    assert_eq!(get(&broker, &key).await.unwrap(), "ASIA2");
    clock.advance_ms(LIFETIME_MS);
    assert_eq!(get(&broker, &key).await.unwrap(), "ASIA3");
    assert_eq!(broker.stats().evictions.expired, 2);

    // A held failure leaves once it is no longer held.
    let failing = other(&key, "t1", (ActorType::User, "u1"), None);
    *sts.fail.lock() = Some(ExchangeError::AccessDenied("AccessDenied: no".into()));
    assert!(get(&broker, &failing).await.is_err());
    assert_eq!(broker.evict_expired(), 0, "held");
    clock.advance(FAILURE_HOLD_SECONDS);
    assert_eq!(broker.evict_expired(), 1);
    assert_eq!(broker.stats().entries, 1, "only the live credentials stay");
}

#[tokio::test]
async fn an_sts_answer_for_an_entry_dropped_meanwhile_is_not_kept() {
    let (_clock, sts, broker, key) = setup();
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    *sts.gate.lock() = Some(gate.clone());
    let (b, k) = (broker.clone(), key.clone());
    let tasks = TaskTracker::new();
    let pending = tasks.spawn(async move { get(&b, &k).await });
    sts.entered.notified().await;
    // The run ends while STS is answering.
    assert_eq!(broker.drop_run("t1", "r1"), 1);
    gate.add_permits(1);
    assert_eq!(
        pending.await.unwrap().unwrap(),
        "ASIA1",
        "the request in flight is served"
    );
    let stats = broker.stats();
    assert_eq!((stats.entries, stats.with_credentials), (0, 0), "{stats:?}");
}

#[tokio::test]
async fn a_full_broker_evicts_the_least_recently_used() {
    let (_clock, _sts, broker, key) = setup_with(2);
    for run in ["r1", "r2", "r3"] {
        let k = other(&key, "t1", (ActorType::ServiceAccount, "a1"), Some(run));
        get(&broker, &k).await.unwrap();
    }
    let stats = broker.stats();
    assert_eq!(stats.entries, 2, "{stats:?}");
    assert_eq!(stats.evictions.size, 1, "{stats:?}");
}

#[tokio::test]
async fn what_is_built_from_credentials_dies_with_them() {
    /// Stands for the gateway's SDK client: says when it is dropped.
    struct Built(Arc<std::sync::atomic::AtomicBool>);
    impl Drop for Built {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }
    let (_clock, _sts, broker, key) = setup();
    let dropped = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let creds = broker
        .credentials(&key, "byollm-run-r1", || async {
            Ok(SecretString::from("identity-token"))
        })
        .await
        .unwrap();
    let built = creds.attached(|| Built(dropped.clone())).unwrap();
    assert!(
        creds.attached(|| 0_u8).is_none(),
        "one thing per credentials"
    );
    drop((built, creds));
    assert!(
        !dropped.load(Ordering::SeqCst),
        "the broker still holds them"
    );
    broker.drop_run("t1", "r1");
    assert!(dropped.load(Ordering::SeqCst), "gone with the entry");
}

/// Google's STS on the broker's clock: hour-long access tokens numbered by
/// call, or the failure set.
#[derive(Debug)]
struct FakeGoogle {
    clock: FakeClock,
    calls: AtomicU64,
    fail: parking_lot::Mutex<Option<ExchangeError>>,
}

#[async_trait]
impl Exchange for FakeGoogle {
    type Target = byollm_federation::gcp::PoolTarget;
    type Credentials = byollm_federation::gcp::AccessToken;

    async fn exchange(
        &self,
        _token: &SecretString,
        target: &byollm_federation::gcp::PoolTarget,
    ) -> Result<byollm_federation::gcp::AccessToken, ExchangeError> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        if let Some(e) = self.fail.lock().clone() {
            return Err(e);
        }
        Ok(byollm_federation::gcp::AccessToken {
            token: SecretString::from(format!("ya29.{n}")),
            expires_at_ms: self.clock.now_ms() + LIFETIME_MS,
            impersonated: target.service_account.is_some(),
        })
    }
}

/// Google keys follow the AWS rules: one exchange per key per window, a
/// refresh ahead of expiry, held failures, dropped with their run; another
/// service account (a settings change) is another key.
#[tokio::test]
async fn google_tokens_follow_the_same_rules() {
    use secrecy::ExposeSecret as _;
    let (clock, sts, broker, aws_key) = setup();
    let google = Arc::new(FakeGoogle {
        clock: clock.clone(),
        calls: AtomicU64::new(0),
        fail: parking_lot::Mutex::new(None),
    });
    let broker = Arc::new(Arc::try_unwrap(broker).unwrap().with_gcp(google.clone()));
    let target = byollm_federation::gcp::PoolTarget {
        audience:
            "//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/providers/q"
                .into(),
        service_account: None,
    };
    let key = BrokerKey {
        target: CloudTarget::Gcp(target.clone()),
        ..aws_key.clone()
    };
    let token = |broker: Arc<CredentialsBroker>, key: BrokerKey| async move {
        broker
            .credentials(&key, "unused", || async {
                Ok(SecretString::from("identity-token"))
            })
            .await
            .map(|c| match c.credentials() {
                CloudCredentials::Gcp(t) => t.token.expose_secret().to_owned(),
                other => panic!("{other:?} for a Google key"),
            })
    };
    // Many requests in one window: one exchange.
    for _ in 0..5 {
        assert_eq!(token(broker.clone(), key.clone()).await.unwrap(), "ya29.1");
    }
    assert_eq!(google.calls.load(Ordering::SeqCst), 1);
    assert_eq!(sts.calls.load(Ordering::SeqCst), 0, "AWS's STS untouched");
    // Due: served from the cache while a refresh runs behind.
    clock.advance_ms(LIFETIME_MS - 300_000);
    assert_eq!(token(broker.clone(), key.clone()).await.unwrap(), "ya29.1");
    broker.close().await;
    assert_eq!(token(broker.clone(), key.clone()).await.unwrap(), "ya29.2");
    assert_eq!(google.calls.load(Ordering::SeqCst), 2);
    // Another service account is another key: a fresh exchange.
    let impersonating = BrokerKey {
        target: CloudTarget::Gcp(byollm_federation::gcp::PoolTarget {
            service_account: Some("sa@p.iam.gserviceaccount.com".into()),
            ..target
        }),
        ..aws_key.clone()
    };
    assert_eq!(
        token(broker.clone(), impersonating.clone()).await.unwrap(),
        "ya29.3"
    );
    // A refusal is held like AWS's.
    broker.invalidate(&impersonating);
    *google.fail.lock() = Some(ExchangeError::Cloud {
        class: byollm_federation::ErrorClass::Refused,
        message: "Google STS: unauthorized_client: no".into(),
    });
    assert!(token(broker.clone(), impersonating.clone()).await.is_err());
    assert!(token(broker.clone(), impersonating.clone()).await.is_err());
    assert_eq!(google.calls.load(Ordering::SeqCst), 4, "held, not retried");
    // Both leave with their run.
    assert_eq!(broker.drop_run("t1", "r1"), 2);
    assert!(broker.is_empty());
}
