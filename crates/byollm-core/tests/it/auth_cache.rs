//! The credential cache: malformed and badly checksummed keys cost no query, an
//! unknown key is asked once within the negative TTL, and a revocation that
//! races a lookup can never leave the revoked key cached (issue 10).

use std::sync::Arc;

use byollm_api::clock::FakeClock;
use byollm_core::auth::{AuthCache, AuthFailure, LookupPause, NEGATIVE_TTL_SECONDS};
use byollm_core::ids::{self, LEGACY_FORMAT_ACCEPTED_UNTIL};
use byollm_core::service::bootstrap_team;
use secrecy::ExposeSecret as _;

use crate::stores;

const NOW: i64 = 1_800_000_000;

fn yes() -> bool {
    true
}

#[tokio::test]
async fn refusals_by_shape_and_the_negative_cache_spare_the_store() {
    let t = stores::sqlite().await;
    let clock = FakeClock::new(NOW);
    let team = bootstrap_team(&t.store, &clock, "Team A", "owner@a.example")
        .await
        .unwrap();
    let cache = AuthCache::default();
    let auth = |k: String| {
        let (cache, store, clock) = (&cache, &t.store, &clock);
        async move { cache.authenticate(store, clock, &k, &yes).await.unwrap() }
    };

    // A key with a broken checksum, and garbage, are refused with no lookup.
    let good = team.api_key.expose().to_owned();
    let mut broken = good.clone().into_bytes();
    let last = broken.len() - 1;
    broken[last] = if broken[last] == b'a' { b'b' } else { b'a' };
    let broken = String::from_utf8(broken).unwrap();
    assert_eq!(auth(broken).await, Err(AuthFailure::BadChecksum));
    assert_eq!(auth("sk-nope".into()).await, Err(AuthFailure::Malformed));
    assert_eq!(cache.store_lookups(), 0);

    // A well-formed unknown key is looked up once within the negative TTL.
    let unknown = ids::new_api_key().expose_secret().to_owned();
    for _ in 0..5 {
        assert_eq!(auth(unknown.clone()).await, Err(AuthFailure::Unknown));
    }
    assert_eq!(cache.store_lookups(), 1);
    clock.advance(NEGATIVE_TTL_SECONDS);
    assert_eq!(auth(unknown.clone()).await, Err(AuthFailure::Unknown));
    assert_eq!(cache.store_lookups(), 2, "asked again after the TTL");

    // A throttled caller's uncached key is refused without a lookup; a cached
    // valid key needs no gate.
    let no = || false;
    let other = ids::new_api_key().expose_secret().to_owned();
    assert_eq!(
        cache
            .authenticate(&t.store, &clock, &other, &no)
            .await
            .unwrap(),
        Err(AuthFailure::Throttled)
    );
    assert_eq!(cache.store_lookups(), 2);
    assert!(auth(good.clone()).await.is_ok());
    assert_eq!(cache.store_lookups(), 3);
    assert!(
        cache
            .authenticate(&t.store, &clock, &good, &no)
            .await
            .unwrap()
            .is_ok()
    );
    assert_eq!(cache.len(), 1);
}

#[tokio::test]
async fn legacy_keys_work_until_the_documented_date() {
    let t = stores::sqlite().await;
    let clock = FakeClock::new(NOW);
    let team = bootstrap_team(&t.store, &clock, "Team A", "owner@a.example")
        .await
        .unwrap();
    // A pre-checksum key (63 characters) stored as it was before.
    let legacy = &team.api_key.expose()[..63];
    let row = t
        .store
        .find_api_key(&ids::hash_secret(team.api_key.expose()))
        .await
        .unwrap()
        .unwrap();
    let mut legacy_row = row.clone();
    legacy_row.id = ids::new_id("key");
    legacy_row.key_hash = ids::hash_secret(legacy);
    t.store.insert_api_key(&legacy_row, None).await.unwrap();

    let cache = AuthCache::default();
    assert!(
        cache
            .authenticate(&t.store, &clock, legacy, &yes)
            .await
            .unwrap()
            .is_ok()
    );
    clock.set(LEGACY_FORMAT_ACCEPTED_UNTIL);
    assert_eq!(
        cache
            .authenticate(&t.store, &clock, legacy, &yes)
            .await
            .unwrap(),
        Err(AuthFailure::LegacyFormatRetired)
    );
}

/// The race of issue 10: a lookup reads the key, the key is revoked (store
/// delete, then eviction), and only then does the lookup insert. Before the
/// generation check the revoked key stayed cached for the TTL.
#[tokio::test]
async fn a_lookup_that_raced_a_revocation_does_not_repopulate_the_cache() {
    let t = stores::sqlite().await;
    let clock = FakeClock::new(NOW);
    let team = bootstrap_team(&t.store, &clock, "Team A", "owner@a.example")
        .await
        .unwrap();
    let key = team.api_key.expose().to_owned();
    let hash = ids::hash_secret(&key);
    let row = t.store.find_api_key(&hash).await.unwrap().unwrap();
    let cache = Arc::new(AuthCache::default());
    let pause = Arc::new(LookupPause::default());
    cache.pause_lookups(Some(pause.clone()));

    let in_flight = {
        let (cache, store, clock, key) =
            (cache.clone(), t.store.clone(), clock.clone(), key.clone());
        tokio::spawn(async move { cache.authenticate(&store, &clock, &key, &yes).await })
    };
    pause.reached.notified().await;
    // Revoke while the lookup holds its stale read.
    assert!(
        t.store
            .delete_api_key(&row.team_uid, &row.id, None)
            .await
            .unwrap()
    );
    cache.evict(&[hash]);
    pause.resume.notify_one();
    let answered = in_flight.await.unwrap().unwrap();
    assert!(answered.is_ok(), "the request in flight used its own read");

    cache.pause_lookups(None);
    assert_eq!(cache.len(), 0, "the stale read was not cached");
    assert_eq!(
        cache
            .authenticate(&t.store, &clock, &key, &yes)
            .await
            .unwrap(),
        Err(AuthFailure::Unknown),
        "revocation is final at once"
    );
}

/// What another replica's change notification does here: evicting by the key's
/// id (not its hash) makes the next request ask the store; while the caches are
/// not trusted (notifications may be missed) every request asks the store.
#[tokio::test]
async fn eviction_by_key_id_and_untrusted_caches_ask_the_store() {
    let t = stores::sqlite().await;
    let clock = FakeClock::new(NOW);
    let team = bootstrap_team(&t.store, &clock, "Team A", "owner@a.example")
        .await
        .unwrap();
    let key = team.api_key.expose().to_owned();
    let key_id = t.store.list_api_keys(&team.team_uid).await.unwrap()[0]
        .id
        .clone();
    let cache = AuthCache::default();
    let auth = || async {
        cache
            .authenticate(&t.store, &clock, &key, &yes)
            .await
            .unwrap()
    };
    assert!(auth().await.is_ok());
    assert!(auth().await.is_ok());
    assert_eq!(cache.store_lookups(), 1, "cached");

    // Another team's key id, or another id, evicts nothing.
    assert_eq!(cache.evict_where(|c| c.key_id == Some("key_other")), 0);
    assert!(auth().await.is_ok());
    assert_eq!(cache.store_lookups(), 1);
    assert_eq!(
        cache.evict_where(|c| c.principal.team_uid == team.team_uid && c.key_id == Some(&key_id)),
        1
    );
    assert!(auth().await.is_ok());
    assert_eq!(
        cache.store_lookups(),
        2,
        "asked the store after the eviction"
    );

    cache.set_trusted(false);
    assert!(auth().await.is_ok());
    assert!(auth().await.is_ok());
    assert_eq!(cache.store_lookups(), 4, "untrusted: every request asks");
    cache.set_trusted(true);
    assert!(auth().await.is_ok());
    assert_eq!(cache.store_lookups(), 4, "trusted again: cached");
}
