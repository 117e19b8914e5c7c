//! API keys expire (issue 11, item 8): `expires_at` on creation (never in the
//! past, never past the team's `api_key_max_lifetime_days`, which a key without
//! one gets), an expired key is refused like a revoked one even while cached,
//! and the list shows each key's coarse last use.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use byollm_api::clock::{Clock as _, FakeClock, rfc3339};
use byollm_api::routes;

use crate::common::{Harness, now};

fn key_info<'a>(list: &'a Value, id: &str) -> &'a Value {
    list["api_keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == id)
        .unwrap_or_else(|| panic!("{id} not in {list}"))
}

#[tokio::test]
async fn expires_at_is_checked_and_an_expired_key_is_refused_even_cached() {
    let clock = Arc::new(FakeClock::new(now()));
    let h = Harness::with_clock(clock.clone()).await;
    let t = h.team("alpha").await;
    let start = clock.now();

    for (at, why) in [
        (rfc3339(start - 1), "in the past"),
        (rfc3339(start), "in the past"),
        ("tomorrow".to_owned(), "RFC 3339"),
    ] {
        let r = h
            .post(
                routes::API_KEYS,
                Some(&t.member.key),
                &json!({"name": "k", "expires_at": at}),
            )
            .await
            .expect(400);
        assert_eq!(r.field(), Some("expires_at"), "{}", r.body);
        let message = r.body["error"]["message"].as_str().unwrap();
        assert!(message.contains(why), "{message}");
    }

    let r = h
        .post(
            routes::API_KEYS,
            Some(&t.member.key),
            &json!({"name": "short", "expires_at": rfc3339(start + 60)}),
        )
        .await
        .expect(201);
    assert_eq!(r.str("/expires_at"), rfc3339(start + 60));
    let (id, key) = (r.str("/id"), r.str("/key"));
    // Used (and so cached) while it lives...
    h.get(routes::ME, Some(&key)).await.expect(200);
    clock.advance(59);
    h.get(routes::ME, Some(&key)).await.expect(200);
    // ...refused the second it expires, though the cache entry is younger than
    // the cache's own TTL.
    clock.advance(1);
    h.get(routes::ME, Some(&key)).await.expect(401);
    let list = h
        .get(routes::API_KEYS, Some(&t.member.key))
        .await
        .expect(200);
    assert_eq!(key_info(&list.body, &id)["expires_at"], rfc3339(start + 60));
    // Keys without expiry say so.
    assert!(
        list.body["api_keys"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["expires_at"].is_null())
    );
}

#[tokio::test]
async fn a_team_maximum_bounds_every_new_key() {
    let clock = Arc::new(FakeClock::new(now()));
    let h = Harness::with_clock(clock.clone()).await;
    let t = h.team("alpha").await;
    let r = h
        .put_settings(&t.admin.key, &json!({"api_key_max_lifetime_days": 0}))
        .await
        .expect(400);
    assert_eq!(r.field(), Some("api_key_max_lifetime_days"));
    let s = h
        .put_settings(&t.admin.key, &json!({"api_key_max_lifetime_days": 30}))
        .await
        .expect(200);
    assert_eq!(s.body["api_key_max_lifetime_days"], 30);
    let start = clock.now();
    let max = start + 30 * 24 * 3600;

    let r = h
        .post(routes::API_KEYS, Some(&t.member.key), &json!({"name": "k"}))
        .await
        .expect(201);
    assert_eq!(r.str("/expires_at"), rfc3339(max), "gets the maximum");
    let r = h
        .post(
            routes::API_KEYS,
            Some(&t.member.key),
            &json!({"name": "k", "expires_at": rfc3339(max + 1)}),
        )
        .await
        .expect(400);
    assert_eq!(r.field(), Some("expires_at"));
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("api_key_max_lifetime_days")
    );
    h.post(
        routes::API_KEYS,
        Some(&t.member.key),
        &json!({"name": "k", "expires_at": rfc3339(max)}),
    )
    .await
    .expect(201);

    // A redeemed invitation's first key too.
    let code = h
        .post(
            routes::TEAM_MEMBERS,
            Some(&t.admin.key),
            &json!({"email": "new@alpha.test", "role": "member"}),
        )
        .await
        .expect(201)
        .str("/invitation/code");
    let got = h
        .post(routes::INVITATIONS_REDEEM, None, &json!({"code": code}))
        .await
        .expect(201);
    assert_eq!(got.str("/api_key/expires_at"), rfc3339(max));
}

#[tokio::test]
async fn keys_list_their_last_use_coarsely() {
    let clock = Arc::new(FakeClock::new(now()));
    let h = Harness::with_clock(clock.clone()).await;
    let t = h.team("alpha").await;
    let r = h
        .post(routes::API_KEYS, Some(&t.member.key), &json!({"name": "k"}))
        .await
        .expect(201);
    let (id, key) = (r.str("/id"), r.str("/key"));
    let listed = || {
        let (h, member, id) = (&h, t.member.key.clone(), id.clone());
        async move {
            let list = h.get(routes::API_KEYS, Some(&member)).await.expect(200);
            key_info(&list.body, &id)["last_used_at"].clone()
        }
    };
    assert!(listed().await.is_null(), "not used yet");
    let used_at = clock.now();
    h.get(routes::ME, Some(&key)).await.expect(200);
    // Written off the request path: wait for it (bounded), not for a time.
    let mut seen = Value::Null;
    for _ in 0..200 {
        seen = listed().await;
        if !seen.is_null() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(seen, rfc3339(used_at));
}
