//! Onboarding through invitations (issue 11, item 1): adding a member returns a
//! one-time code, stored hashed, that the member redeems once, within 7 days,
//! for their own first API key; admins re-issue (the old code dies) or revoke
//! it, never see the key, and only owners touch an owner's invitation; failed
//! redemptions count against the per-source failure allowance.

use std::sync::Arc;

use axum::http::Method;
use serde_json::{Value, json};

use byollm_api::clock::FakeClock;
use byollm_api::routes;
use byollm_core::identity::keys::Algorithm;
use byollm_core::ids;
use byollm_core::store::InvitationRow;
use byollm_server::auth::FAILURE_BURST;

use crate::common::{Harness, Resp, config, now};

/// Adds a member as `by`; returns (uid, invitation code).
async fn invite(h: &Harness, by: &str, email: &str, role: &str) -> (String, String) {
    let r = h
        .post(
            routes::TEAM_MEMBERS,
            Some(by),
            &json!({"email": email, "role": role}),
        )
        .await
        .expect(201);
    (r.str("/uid"), r.str("/invitation/code"))
}

async fn redeem(h: &Harness, code: &str) -> Resp {
    h.post(routes::INVITATIONS_REDEEM, None, &json!({"code": code}))
        .await
}

#[tokio::test]
async fn a_new_member_redeems_their_code_once_for_their_own_key() {
    let h = Harness::new().await;
    let t = h.team("alpha").await;
    let r = h
        .post(
            routes::TEAM_MEMBERS,
            Some(&t.admin.key),
            &json!({"email": "new@alpha.test", "role": "member"}),
        )
        .await
        .expect(201);
    // The member's fields stay at the top level; the code comes with them.
    assert_eq!(r.body["email"], "new@alpha.test");
    assert_eq!(r.body["role"], "member");
    let uid = r.str("/uid");
    let code = r.str("/invitation/code");
    assert!(code.starts_with(ids::INVITATION_PREFIX), "{code}");
    let expires = r.str("/invitation/expires_at");
    assert!(
        r.body.get("key").is_none() && r.body.get("api_key").is_none(),
        "{}",
        r.body
    );

    // Stored as its SHA-256, never the code itself.
    let stored = h
        .core
        .store()
        .get_invitation(&t.uid, &uid)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.code_hash, ids::hash_secret(&code));
    assert_eq!(
        byollm_api::clock::rfc3339(stored.expires_at),
        expires,
        "valid 7 days"
    );
    assert_eq!(stored.expires_at - stored.created_at, 7 * 24 * 3600);

    // Redeemed (no credential needed) for the member's own key.
    let got = redeem(&h, &code).await.expect(201);
    assert_eq!(got.str("/member/uid"), uid);
    assert_eq!(got.str("/team/uid"), t.uid);
    assert_eq!(got.str("/api_key/owner/uid"), uid);
    let key = got.str("/api_key/key");
    let me = h.get(routes::ME, Some(&key)).await.expect(200);
    assert_eq!(me.str("/actor/uid"), uid);
    assert_eq!(me.str("/role"), "member");

    // Single use: the second redemption gets nothing, and says so.
    let again = redeem(&h, &code).await.expect(401);
    assert_eq!(again.body["error"]["code"], "invalid_invitation");
    assert!(
        h.core
            .store()
            .get_invitation(&t.uid, &uid)
            .await
            .unwrap()
            .is_none()
    );

    // Nothing lets the admin see the member's key: the list has its prefix only.
    let keys = h
        .get(routes::API_KEYS, Some(&t.admin.key))
        .await
        .expect(200);
    let text = keys.body.to_string();
    assert!(!text.contains(&key), "{text}");
    assert!(text.contains(&uid), "{text}");
}

#[tokio::test]
async fn reissue_kills_the_old_code_and_revoke_kills_the_live_one() {
    let h = Harness::new().await;
    let t = h.team("alpha").await;
    let (uid, first) = invite(&h, &t.admin.key, "new@alpha.test", "member").await;
    let path = routes::fill(routes::TEAM_MEMBER_INVITATION, &uid);

    let second = h
        .send(Method::POST, &path, Some(&t.admin.key), None)
        .await
        .expect(201)
        .str("/code");
    assert_ne!(first, second);
    redeem(&h, &first).await.expect(401);

    h.send(Method::DELETE, &path, Some(&t.admin.key), None)
        .await
        .expect(204);
    redeem(&h, &second).await.expect(401);
    // Nothing left to revoke.
    h.send(Method::DELETE, &path, Some(&t.admin.key), None)
        .await
        .expect(404);

    // A third code works; members cannot issue one.
    h.send(Method::POST, &path, Some(&t.member.key), None)
        .await
        .expect(403);
    let third = h
        .send(Method::POST, &path, Some(&t.admin.key), None)
        .await
        .expect(201)
        .str("/code");
    redeem(&h, &third).await.expect(201);

    // Now the member has a key: a new code would let the admin act as them.
    let r = h
        .send(Method::POST, &path, Some(&t.admin.key), None)
        .await
        .expect(409);
    let msg = r.body["error"]["message"].as_str().unwrap_or_default();
    assert!(msg.contains("already has an API key"), "{msg}");
}

#[tokio::test]
async fn only_owners_touch_an_owners_invitation() {
    let h = Harness::new().await;
    let t = h.team("alpha").await;
    // Only an owner adds an owner (and so gets the owner's code).
    h.post(
        routes::TEAM_MEMBERS,
        Some(&t.admin.key),
        &json!({"email": "o2@alpha.test", "role": "owner"}),
    )
    .await
    .expect(403);
    let (uid, _) = invite(&h, &t.owner.key, "o2@alpha.test", "owner").await;
    let path = routes::fill(routes::TEAM_MEMBER_INVITATION, &uid);
    for method in [Method::POST, Method::DELETE] {
        let r = h
            .send(method.clone(), &path, Some(&t.admin.key), None)
            .await
            .expect(403);
        assert_eq!(
            r.body["error"]["message"], "only an owner can issue or revoke an owner's invitation",
            "{method}"
        );
    }
    h.send(Method::POST, &path, Some(&t.owner.key), None)
        .await
        .expect(201);
}

#[tokio::test]
async fn an_expired_or_foreign_code_redeems_nothing() {
    let h = Harness::new().await;
    let t = h.team("alpha").await;
    let (uid, _) = invite(&h, &t.admin.key, "late@alpha.test", "member").await;
    // A code issued 7 days and a second ago.
    let code = ids::new_invitation_code();
    let code = secrecy::ExposeSecret::expose_secret(&code).to_owned();
    let issued = now() - 7 * 24 * 3600 - 1;
    h.core
        .store()
        .put_invitation(&InvitationRow {
            member_uid: uid.clone(),
            team_uid: t.uid.clone(),
            code_hash: ids::hash_secret(&code),
            expires_at: issued + 7 * 24 * 3600,
            created_at: issued,
        })
        .await
        .unwrap();
    redeem(&h, &code).await.expect(401);
    // Not a code at all, an API key, or a body with more than the code.
    redeem(&h, "hello").await.expect(401);
    redeem(&h, &t.member.key).await.expect(401);
    let r = h
        .post(
            routes::INVITATIONS_REDEEM,
            None,
            &json!({"code": code, "team": "x"}),
        )
        .await
        .expect(400);
    assert_eq!(r.field(), Some("team"), "{}", r.body);
}

#[tokio::test]
async fn failed_redemptions_are_limited_per_source_like_failed_authentication() {
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
    let http = reqwest::Client::new();
    let base = format!("http://{}", server.addr);
    let member: Value = http
        .post(format!("{base}{}", routes::TEAM_MEMBERS))
        .bearer_auth(team.api_key.expose())
        .json(&json!({"email": "m@example.com", "role": "member"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let good = member["invitation"]["code"].as_str().unwrap().to_owned();
    let redeem = |code: String| {
        let http = http.clone();
        let url = format!("{base}{}", routes::INVITATIONS_REDEEM);
        async move {
            let r = http
                .post(url)
                .json(&json!({ "code": code }))
                .send()
                .await
                .unwrap();
            let retry = r.headers().get("retry-after").is_some();
            (r.status().as_u16(), retry)
        }
    };
    for i in 0..FAILURE_BURST {
        assert_eq!(
            redeem(format!("byollm_inv_guess{i}")).await,
            (401, false),
            "{i}"
        );
    }
    // Past the allowance: 429 with Retry-After, even for the good code...
    assert_eq!(redeem("byollm_inv_guess".into()).await, (429, true));
    assert_eq!(redeem(good.clone()).await, (429, true));
    // ...and the same allowance covers authentication from this source.
    let me = http
        .get(format!("{base}{}", routes::ME))
        .bearer_auth("byollm_key_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")
        .send()
        .await
        .unwrap();
    assert_eq!(me.status().as_u16(), 429);
    // Once it refills, the good code still works: the throttled attempt did
    // not consume it.
    clock.advance(3600);
    assert_eq!(redeem(good).await, (201, false));
    server.shutdown().await;
}
