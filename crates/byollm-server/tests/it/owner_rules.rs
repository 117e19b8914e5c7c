//! No lock-out (issue 11, items 1 and 4): admins change members' roles but
//! cannot demote, remove or revoke the keys of owners (a 403 naming the rule);
//! the last owner keeps the role; a role change holds at once.

use axum::http::Method;
use serde_json::json;

use byollm_api::routes;

use crate::common::Harness;

#[tokio::test]
async fn admins_cannot_touch_owners_or_their_keys() {
    let h = Harness::new().await;
    let t = h.team("alpha").await;
    let owner = routes::fill(routes::TEAM_MEMBER, &t.owner.uid);

    let r = h
        .json(
            Method::PATCH,
            &owner,
            Some(&t.admin.key),
            &json!({"role": "member"}),
        )
        .await
        .expect(403);
    assert_eq!(
        r.body["error"]["message"],
        "only an owner can change an owner's role"
    );
    let r = h
        .send(Method::DELETE, &owner, Some(&t.admin.key), None)
        .await
        .expect(403);
    assert_eq!(
        r.body["error"]["message"],
        "only an owner can remove an owner"
    );
    // Every key of the owner, including the bootstrap one.
    let keys = h
        .get(routes::API_KEYS, Some(&t.admin.key))
        .await
        .expect(200);
    let owner_keys: Vec<String> = keys.body["api_keys"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["owner"]["uid"] == t.owner.uid.as_str())
        .map(|k| k["id"].as_str().unwrap().to_owned())
        .collect();
    assert!(!owner_keys.is_empty());
    for id in &owner_keys {
        let r = h
            .send(
                Method::DELETE,
                &routes::fill(routes::API_KEY, id),
                Some(&t.admin.key),
                None,
            )
            .await
            .expect(403);
        assert_eq!(
            r.body["error"]["message"],
            "only an owner can revoke an owner's key"
        );
    }
    h.get(routes::ME, Some(&t.owner.key)).await.expect(200);
    // Nor make anyone an owner.
    let r = h
        .json(
            Method::PATCH,
            &routes::fill(routes::TEAM_MEMBER, &t.member.uid),
            Some(&t.admin.key),
            &json!({"role": "owner"}),
        )
        .await
        .expect(403);
    assert_eq!(r.body["error"]["message"], "only an owner can add an owner");
}

#[tokio::test]
async fn roles_change_at_once_and_the_last_owner_stays() {
    let h = Harness::new().await;
    let t = h.team("alpha").await;
    // The admin works as an admin (and is cached as one)...
    h.get(routes::TEAM_MEMBERS, Some(&t.admin.key))
        .await
        .expect(200);
    let admin = routes::fill(routes::TEAM_MEMBER, &t.admin.uid);
    let r = h
        .json(
            Method::PATCH,
            &admin,
            Some(&t.owner.key),
            &json!({"role": "member"}),
        )
        .await
        .expect(200);
    assert_eq!(r.body["role"], "member");
    // ...and is a member on the very next request.
    h.get(routes::TEAM_MEMBERS, Some(&t.admin.key))
        .await
        .expect(403);
    let me = h.get(routes::ME, Some(&t.admin.key)).await.expect(200);
    assert_eq!(me.str("/role"), "member");

    // Bad bodies: unknown role, unknown field.
    let r = h
        .json(
            Method::PATCH,
            &admin,
            Some(&t.owner.key),
            &json!({"role": "boss"}),
        )
        .await
        .expect(400);
    assert_eq!(r.field(), Some("role"), "{}", r.body);
    h.json(
        Method::PATCH,
        &admin,
        Some(&t.owner.key),
        &json!({"role": "admin", "email": "x@y.z"}),
    )
    .await
    .expect(400);

    // The only owner can neither demote nor remove themselves.
    let owner = routes::fill(routes::TEAM_MEMBER, &t.owner.uid);
    let r = h
        .json(
            Method::PATCH,
            &owner,
            Some(&t.owner.key),
            &json!({"role": "admin"}),
        )
        .await
        .expect(409);
    assert_eq!(
        r.body["error"]["message"],
        "a team keeps at least one owner"
    );
    h.send(Method::DELETE, &owner, Some(&t.owner.key), None)
        .await
        .expect(409);

    // With a second owner, an owner may step down, and owners revoke owners' keys.
    h.json(
        Method::PATCH,
        &admin,
        Some(&t.owner.key),
        &json!({"role": "owner"}),
    )
    .await
    .expect(200);
    h.json(
        Method::PATCH,
        &owner,
        Some(&t.owner.key),
        &json!({"role": "admin"}),
    )
    .await
    .expect(200);
    let r = h
        .json(
            Method::PATCH,
            &admin,
            Some(&t.admin.key),
            &json!({"role": "member"}),
        )
        .await
        .expect(409);
    assert_eq!(
        r.body["error"]["message"],
        "a team keeps at least one owner"
    );
}
