//! Safe writes (issue 11 items 2, 3, 5, 7), on SQLite and, when
//! `BYOLLM_TEST_POSTGRES_URL` is set, PostgreSQL: a settings `PUT` is a complete
//! document and `PATCH` merges; concurrent PATCHes of one agent never lose an
//! update; ETag / If-Match; bodies are JSON objects without repeated keys;
//! emails and agent names are unique case-insensitively; the data files are
//! owner-only.

use axum::http::Method;
use serde_json::json;

use byollm_api::routes;

use crate::common::{Harness, complete_settings};

/// A harness per engine: SQLite always, PostgreSQL (a fresh database) when
/// configured (required in CI).
pub async fn engines() -> Vec<(&'static str, Harness)> {
    let mut all = vec![("sqlite", Harness::on_store(None).await)];
    if byollm_core::testing::require(
        "safe writes on PostgreSQL",
        "BYOLLM_TEST_POSTGRES_URL",
        byollm_core::testing::postgres_configured(),
    ) {
        let url = byollm_core::testing::fresh_postgres_database();
        all.push(("postgres", Harness::on_store(Some(url)).await));
    }
    all
}

fn agent_path(uid: &str) -> String {
    routes::fill(routes::AGENT_IDENTITY, uid)
}

#[tokio::test]
async fn settings_put_needs_a_complete_document_and_patch_merges() {
    for (engine, h) in engines().await {
        let t = h.team("alpha").await;
        let admin = t.admin.key.as_str();
        // A new team: Bedrock off, direct API on, no fallback out of the cloud.
        let s = h
            .get(routes::TEAM_LLM_SETTINGS, Some(admin))
            .await
            .expect(200);
        assert_eq!(s.body["allow_fallback_outside_cloud"], false, "{engine}");
        assert_eq!(s.body["hosts"]["direct_api"]["enabled"], true, "{engine}");
        let bedrock = json!({"hosts": {"aws_bedrock": {"enabled": true,
            "role_arn": "arn:aws:iam::123456789012:role/team", "region": "us-east-1"},
            "direct_api": {"enabled": false}}});
        h.put_settings(admin, &bedrock).await.expect(200);
        for body in [&b""[..], b"[]", b"{}", b"null", b"1"] {
            let r = h
                .send(
                    Method::PUT,
                    routes::TEAM_LLM_SETTINGS,
                    Some(admin),
                    Some(body.to_vec()),
                )
                .await
                .expect(400);
            assert!(r.field().is_some(), "{engine} {r:?}");
        }
        // A missing field is named.
        let mut partial = complete_settings(&bedrock);
        partial
            .as_object_mut()
            .unwrap()
            .remove("allow_fallback_outside_cloud");
        let r = h
            .json(
                Method::PUT,
                routes::TEAM_LLM_SETTINGS,
                Some(admin),
                &partial,
            )
            .await
            .expect(400);
        assert_eq!(r.field(), Some("allow_fallback_outside_cloud"), "{engine}");
        let mut partial = complete_settings(&bedrock);
        partial["hosts"]["direct_api"]
            .as_object_mut()
            .unwrap()
            .remove("enabled");
        let r = h
            .json(
                Method::PUT,
                routes::TEAM_LLM_SETTINGS,
                Some(admin),
                &partial,
            )
            .await
            .expect(400);
        assert_eq!(r.field(), Some("hosts.direct_api.enabled"), "{engine}");
        // Nothing above changed the team: Bedrock on, direct API off.
        let s = h
            .get(routes::TEAM_LLM_SETTINGS, Some(admin))
            .await
            .expect(200);
        assert_eq!(s.body["hosts"]["aws_bedrock"]["enabled"], true, "{engine}");
        assert_eq!(s.body["hosts"]["direct_api"]["enabled"], false, "{engine}");
        // PATCH changes only what it names.
        let r = h
            .json(
                Method::PATCH,
                routes::TEAM_LLM_SETTINGS,
                Some(admin),
                &json!({"session_tags": true}),
            )
            .await
            .expect(200);
        assert_eq!(r.body["session_tags"], true);
        assert_eq!(r.body["hosts"]["aws_bedrock"]["enabled"], true, "{engine}");
        assert_eq!(r.body["hosts"]["direct_api"]["enabled"], false, "{engine}");
        // `null` may not clear a required field back to a default.
        let r = h
            .json(
                Method::PATCH,
                routes::TEAM_LLM_SETTINGS,
                Some(admin),
                &json!({"hosts": {"direct_api": null}}),
            )
            .await
            .expect(400);
        assert_eq!(r.field(), Some("hosts.direct_api"), "{engine}");
        // An empty PATCH changes nothing; a non-object one is a 400.
        let r = h
            .json(
                Method::PATCH,
                routes::TEAM_LLM_SETTINGS,
                Some(admin),
                &json!({}),
            )
            .await
            .expect(200);
        assert_eq!(r.body["hosts"]["direct_api"]["enabled"], false, "{engine}");
        h.json(
            Method::PATCH,
            routes::TEAM_LLM_SETTINGS,
            Some(admin),
            &json!([]),
        )
        .await
        .expect(400);
        // Members may not PATCH.
        h.json(
            Method::PATCH,
            routes::TEAM_LLM_SETTINGS,
            Some(&t.member.key),
            &json!({"session_tags": false}),
        )
        .await
        .expect(403);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_agent_patches_never_lose_an_update() {
    for (engine, h) in engines().await {
        let t = h.team("alpha").await;
        let admin = t.admin.key.clone();
        let mut lost = 0;
        for trial in 0..30 {
            let uid = h
                .post(
                    routes::AGENT_IDENTITIES,
                    Some(&admin),
                    &json!({"name": format!("racer-{trial}")}),
                )
                .await
                .expect(201)
                .str("/uid");
            let path = agent_path(&uid);
            let description = json!({"description": format!("trial {trial}")});
            let region = json!({"inference_providers": {"aws": {"region": "eu-west-1"}}});
            let (a, b) = tokio::join!(
                h.json(Method::PATCH, &path, Some(&admin), &description),
                h.json(Method::PATCH, &path, Some(&admin), &region),
            );
            a.expect(200);
            b.expect(200);
            let now = h.get(&path, Some(&admin)).await.expect(200);
            if now.body["description"] != format!("trial {trial}")
                || now.body["inference_providers"]["aws"]["region"] != "eu-west-1"
            {
                lost += 1;
            }
        }
        assert_eq!(lost, 0, "{engine}: {lost} of 30 trials lost an update");
    }
}

#[tokio::test]
async fn etags_and_if_match() {
    for (engine, h) in engines().await {
        let t = h.team("alpha").await;
        let admin = t.admin.key.as_str();
        let path = agent_path(&t.agent_uid);
        let got = h.get(&path, Some(admin)).await.expect(200);
        let tag = got.headers["etag"].to_str().unwrap().to_owned();
        let patch = json!({"description": "first"});
        let first = h
            .send_with(
                Method::PATCH,
                &path,
                admin,
                &[("if-match", &tag)],
                Some(&patch),
            )
            .await
            .expect(200);
        let new_tag = first.headers["etag"].to_str().unwrap().to_owned();
        assert_ne!(tag, new_tag, "{engine}");
        // The old ETag is stale now: 412, and nothing changes.
        let stale = h
            .send_with(
                Method::PATCH,
                &path,
                admin,
                &[("if-match", &tag)],
                Some(&json!({"description": "lost"})),
            )
            .await
            .expect(412);
        assert_eq!(
            stale.body["error"]["code"], "precondition_failed",
            "{engine}"
        );
        assert!(
            stale.body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("re-read"),
            "{}",
            stale.body
        );
        let now = h.get(&path, Some(admin)).await.expect(200);
        assert_eq!(now.body["description"], "first", "{engine}");
        assert_eq!(now.headers["etag"].to_str().unwrap(), new_tag, "{engine}");
        h.send_with(
            Method::PATCH,
            &path,
            admin,
            &[("if-match", "*")],
            Some(&json!({"description": "any"})),
        )
        .await
        .expect(200);
        h.send_with(
            Method::PATCH,
            &path,
            admin,
            &[("if-match", "not-an-etag")],
            Some(&json!({"description": "x"})),
        )
        .await
        .expect(400);

        // Team settings carry an ETag too.
        let s = h
            .get(routes::TEAM_LLM_SETTINGS, Some(admin))
            .await
            .expect(200);
        let tag = s.headers["etag"].to_str().unwrap().to_owned();
        let doc = complete_settings(&json!({"session_tags": true}));
        let put = h
            .send_with(
                Method::PUT,
                routes::TEAM_LLM_SETTINGS,
                admin,
                &[("if-match", &tag)],
                Some(&doc),
            )
            .await
            .expect(200);
        assert!(put.headers.contains_key("etag"), "{engine}");
        h.send_with(
            Method::PATCH,
            routes::TEAM_LLM_SETTINGS,
            admin,
            &[("if-match", &tag)],
            Some(&json!({"session_tags": false})),
        )
        .await
        .expect(412);
    }
}

#[tokio::test]
async fn member_settings_carry_an_etag() {
    for (engine, h) in engines().await {
        let t = h.team("alpha").await;
        let member = t.member.key.as_str();
        let got = h.get(routes::ME_SETTINGS, Some(member)).await.expect(200);
        let tag = got.headers["etag"].to_str().unwrap().to_owned();
        let on = json!({"aws_bedrock_opt_in": true});
        h.send_with(
            Method::PUT,
            routes::ME_SETTINGS,
            member,
            &[("if-match", &tag)],
            Some(&on),
        )
        .await
        .expect(200);
        let r = h
            .send_with(
                Method::PUT,
                routes::ME_SETTINGS,
                member,
                &[("if-match", &tag)],
                Some(&json!({"aws_bedrock_opt_in": false})),
            )
            .await
            .expect(412);
        assert_eq!(r.body["error"]["code"], "precondition_failed", "{engine}");
        let now = h.get(routes::ME_SETTINGS, Some(member)).await.expect(200);
        assert_eq!(now.body["aws_bedrock_opt_in"], true, "{engine}");
    }
}

#[tokio::test]
async fn bodies_must_be_json_objects_without_repeated_keys() {
    let (_, h) = engines().await.remove(0);
    let t = h.team("alpha").await;
    for body in [&b"[]"[..], b"[null,\"p\",null]", b"1", b"\"x\"", b"null"] {
        let r = h
            .send(
                Method::POST,
                routes::RUNS,
                Some(&t.member.key),
                Some(body.to_vec()),
            )
            .await
            .expect(400);
        assert_eq!(r.field(), Some("body"), "{}", String::from_utf8_lossy(body));
    }
    let dup = br#"{"description": "a", "description": "b"}"#.to_vec();
    let r = h
        .send(
            Method::PATCH,
            &agent_path(&t.agent_uid),
            Some(&t.admin.key),
            Some(dup),
        )
        .await
        .expect(400);
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("duplicate key"),
        "{}",
        r.body
    );
    let nested =
        br#"{"inference_providers": {"aws": {"region": "us-east-1", "region": "eu-west-1"}}}"#;
    let r = h
        .send(
            Method::PATCH,
            &agent_path(&t.agent_uid),
            Some(&t.admin.key),
            Some(nested.to_vec()),
        )
        .await
        .expect(400);
    assert_eq!(
        r.field(),
        Some("inference_providers.aws.region"),
        "{}",
        r.body
    );
    let r = h
        .send(
            Method::PATCH,
            routes::TEAM_LLM_SETTINGS,
            Some(&t.admin.key),
            Some(br#"{"session_tags": true, "session_tags": false}"#.to_vec()),
        )
        .await
        .expect(400);
    assert!(r.body.to_string().contains("duplicate key"), "{}", r.body);
}

#[tokio::test]
async fn emails_and_agent_names_are_unique_case_insensitively() {
    for (engine, h) in engines().await {
        let t = h.team("alpha").await;
        let owner = t.owner.key.as_str();
        let admin = t.admin.key.as_str();
        h.post(
            routes::TEAM_MEMBERS,
            Some(owner),
            &json!({"email": "Ada@Example.com", "role": "member"}),
        )
        .await
        .expect(201);
        h.post(
            routes::TEAM_MEMBERS,
            Some(owner),
            &json!({"email": "ada@example.COM", "role": "member"}),
        )
        .await
        .expect(409);

        let created = h
            .post(
                routes::AGENT_IDENTITIES,
                Some(admin),
                &json!({"name": "  ci-bot  "}),
            )
            .await
            .expect(201);
        assert_eq!(created.body["name"], "ci-bot", "{engine}");
        for near in ["ci-bot ", "CI-Bot", "ci-bot\u{0009}"] {
            h.post(
                routes::AGENT_IDENTITIES,
                Some(admin),
                &json!({"name": near}),
            )
            .await
            .expect(409);
        }
        // NFC: "é" spelled as e + combining acute is the same name.
        h.post(
            routes::AGENT_IDENTITIES,
            Some(admin),
            &json!({"name": "caf\u{e9}"}),
        )
        .await
        .expect(201);
        h.post(
            routes::AGENT_IDENTITIES,
            Some(admin),
            &json!({"name": "CAFE\u{301}"}),
        )
        .await
        .expect(409);
        // Look-alike hyphens are refused, naming the character.
        let r = h
            .post(
                routes::AGENT_IDENTITIES,
                Some(admin),
                &json!({"name": "ci\u{2010}bot"}),
            )
            .await
            .expect(400);
        assert!(r.body.to_string().contains("U+2010"), "{}", r.body);
        // A rename onto another agent's name (other case) is a 409 too.
        h.json(
            Method::PATCH,
            &agent_path(&t.agent_uid),
            Some(admin),
            &json!({"name": "CI-BOT"}),
        )
        .await
        .expect(409);
        // Messages quote the value as received: a NUL shows, escaped.
        let r = h
            .json(
                Method::PATCH,
                &agent_path(&t.agent_uid),
                Some(admin),
                &json!({"inference_providers": {"aws": {"region": "us-east-1\u{0}"}}}),
            )
            .await
            .expect(400);
        let message = r.body["error"]["message"].as_str().unwrap();
        assert!(message.contains("us-east-1\\u0000"), "{message}");
    }
}

#[cfg(unix)]
#[tokio::test]
async fn data_directory_is_0700_and_database_0600() {
    use std::os::unix::fs::PermissionsExt as _;
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("data");
    let store = byollm_core::store::Store::open_data_dir(&dir)
        .await
        .unwrap();
    store.ping().await.unwrap();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join("byollm.db")), 0o600);
    for side in ["byollm.db-wal", "byollm.db-shm"] {
        let p = dir.join(side);
        if p.exists() {
            assert_eq!(mode(&p), 0o600, "{side}");
        }
    }
    drop(store);
    // A database left readable by others is narrowed when opened.
    std::fs::set_permissions(
        dir.join("byollm.db"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let _store = byollm_core::store::Store::open_data_dir(&dir)
        .await
        .unwrap();
    assert_eq!(mode(&dir.join("byollm.db")), 0o600);
}
