//! The admin audit trail (issue 14): every administrative change is an event
//! naming who, what, which request and the changed fields; admins read their
//! own team's only, filtered and a page at a time; no credential appears.

use axum::http::Method;
use serde_json::{Value, json};

use byollm_api::routes;

use crate::common::{Harness, two_teams, worker_tokens_on};

fn events(page: &Value) -> Vec<Value> {
    page["events"].as_array().unwrap().clone()
}

#[tokio::test]
async fn admin_changes_are_audited_per_team_with_request_ids_and_no_secrets() {
    let h = Harness::new().await;
    let (a, b) = two_teams(&h).await;
    let removed = h
        .json(
            Method::DELETE,
            &routes::fill(routes::TEAM_MEMBER, &a.member.uid),
            Some(&a.owner.key),
            &json!(null),
        )
        .await
        .expect(204);
    let removal_request = removed.headers["x-request-id"].to_str().unwrap().to_owned();

    let all = h.get(routes::AUDIT, Some(&a.admin.key)).await.expect(200);
    let list = events(&all.body);
    let actions: Vec<&str> = list.iter().map(|e| e["action"].as_str().unwrap()).collect();
    for expected in [
        "member.create",
        "agent.create",
        "api_key.create",
        "run.create",
        "settings.update",
        "member.delete",
    ] {
        assert!(actions.contains(&expected), "{expected} not in {actions:?}");
    }
    assert_eq!(actions.iter().filter(|a| **a == "member.create").count(), 2);
    let deleted = list
        .iter()
        .find(|e| e["action"] == "member.delete")
        .unwrap();
    assert_eq!(deleted["target"], format!("member:{}", a.member.uid));
    assert_eq!(deleted["actor_uid"], a.owner.uid.as_str());
    assert_eq!(deleted["actor_type"], "user");
    assert_eq!(deleted["request_id"], removal_request.as_str());
    assert!(
        deleted["credential"]
            .as_str()
            .unwrap()
            .starts_with("member_key:")
    );
    assert_eq!(deleted["changes"]["role"], "member");
    let settings = list
        .iter()
        .find(|e| e["action"] == "settings.update")
        .unwrap();
    let changes = settings["changes"].as_object().unwrap();
    assert!(!changes.is_empty(), "{settings}");
    for (field, change) in changes {
        assert_ne!(change["before"], change["after"], "{field}");
    }
    let worker_field = worker_tokens_on()
        .as_object()
        .unwrap()
        .keys()
        .next()
        .unwrap()
        .clone();
    assert!(
        changes.keys().any(|k| k.starts_with(&worker_field)),
        "{worker_field} not in {changes:?}"
    );
    let text = all.body.to_string();
    for secret in [
        &a.owner.key,
        &a.admin.key,
        &a.agent_key,
        &a.member_run_token,
    ] {
        assert!(
            !text.contains(secret.as_str()),
            "a credential in the audit trail"
        );
    }

    // Another team's events are never visible.
    let theirs = h.get(routes::AUDIT, Some(&b.admin.key)).await.expect(200);
    let theirs_text = theirs.body.to_string();
    for uid in [&a.member.uid, &a.admin.uid, &a.agent_uid, &a.owner.uid] {
        assert!(
            !theirs_text.contains(uid.as_str()),
            "team a's {uid} seen by team b"
        );
    }
    assert!(
        !events(&theirs.body)
            .iter()
            .any(|e| e["action"] == "member.delete")
    );

    // Admins only (team a's member was removed above: team b's shows the rule).
    for key in [&b.member.key, &a.agent_key, &a.agent_run_token] {
        h.get(routes::AUDIT, Some(key)).await.expect(403);
    }

    // Filters.
    let created = h
        .get(
            &format!("{}?action=member.create", routes::AUDIT),
            Some(&a.admin.key),
        )
        .await
        .expect(200);
    let created = events(&created.body);
    assert_eq!(created.len(), 2);
    assert!(created.iter().all(|e| e["action"] == "member.create"));
    let by_owner = h
        .get(
            &format!(
                "{}?actor={}&target=member:{}",
                routes::AUDIT,
                a.owner.uid,
                a.member.uid
            ),
            Some(&a.admin.key),
        )
        .await
        .expect(200);
    assert_eq!(events(&by_owner.body).len(), 2, "{}", by_owner.body);
    let future = h
        .get(
            &format!("{}?since=2999-01-01T00:00:00Z", routes::AUDIT),
            Some(&a.admin.key),
        )
        .await
        .expect(200);
    assert!(events(&future.body).is_empty());

    // Pages walk every event once, in order.
    let mut walked = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let q = match &cursor {
            Some(c) => format!("{}?limit=2&cursor={c}", routes::AUDIT),
            None => format!("{}?limit=2", routes::AUDIT),
        };
        let page = h.get(&q, Some(&a.admin.key)).await.expect(200);
        assert!(events(&page.body).len() <= 2);
        walked.extend(events(&page.body).into_iter().map(|e| e["id"].clone()));
        match page.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    let ids: Vec<Value> = list.iter().map(|e| e["id"].clone()).collect();
    assert_eq!(walked, ids);

    // Bad values name their parameter.
    for (q, field) in [
        ("limit=0", "limit"),
        ("limit=x", "limit"),
        ("since=yesterday", "since"),
        ("cursor=zzz", "cursor"),
        ("colour=red", "colour"),
    ] {
        let r = h
            .get(&format!("{}?{q}", routes::AUDIT), Some(&a.admin.key))
            .await
            .expect(400);
        assert_eq!(r.field(), Some(field), "{q}: {}", r.body);
    }
}
