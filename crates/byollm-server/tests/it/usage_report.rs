//! The usage report adds up (issue "billing that adds up"): the inference bucket
//! covers every row, not only the rows one page lists; a filter naming another
//! team's run, agent or member is a 404 like every other route; pages walked by
//! `next_cursor` list every request once, in order; a bad `limit` or `cursor`
//! is a 400 naming it.

use byollm_api::routes;
use byollm_api::types::{Actor, ActorType};
use byollm_core::store::UsageRow;
use serde_json::Value;

use crate::common::{Harness, TeamFx, two_teams};

/// More rows than one report listed before pages (its cap was 10,000).
const ROWS: i64 = 10_050;

fn direct_row(team: &TeamFx, n: i64) -> UsageRow {
    UsageRow {
        id: format!("u{n:06}"),
        team_uid: team.uid.clone(),
        run_id: None,
        actor: Actor {
            actor_type: ActorType::User,
            uid: team.member.uid.clone(),
        },
        member_uid: Some(team.member.uid.clone()),
        agent_uid: None,
        model: "claude-sonnet-4-6".into(),
        route: "direct_api:claude-sonnet-4-6".into(),
        attempts: "[]".into(),
        input_tokens: 1,
        output_tokens: 1,
        inference_microcredits: 3,
        created_at: 1_800_000_000 + n,
    }
}

#[tokio::test]
async fn the_inference_bucket_sums_every_row() {
    let h = Harness::new().await;
    let (a, _b) = two_teams(&h).await;
    let rows: Vec<UsageRow> = (0..ROWS).map(|n| direct_row(&a, n)).collect();
    for chunk in rows.chunks(2_000) {
        h.core.store().insert_usage(chunk).await.unwrap();
    }
    let report = h.get(routes::USAGE, Some(&a.admin.key)).await.expect(200);
    let inference = report.body["buckets"]["inference"].as_f64().unwrap();
    assert!(
        (inference - (ROWS * 3) as f64 / 1e6).abs() < 1e-9,
        "inference bucket {inference}, expected {} credits from {ROWS} rows",
        (ROWS * 3) as f64 / 1e6
    );
    // The member's own report (filtered to them) adds up the same way.
    let own = h.get(routes::USAGE, Some(&a.member.key)).await.expect(200);
    let inference = own.body["buckets"]["inference"].as_f64().unwrap();
    assert!((inference - (ROWS * 3) as f64 / 1e6).abs() < 1e-9);
}

#[tokio::test]
async fn filters_naming_another_teams_objects_are_404() {
    let h = Harness::new().await;
    let (a, b) = two_teams(&h).await;
    for (field, value, kind) in [
        ("run_id", &b.member_run, "run"),
        ("agent_uid", &b.agent_uid, "agent"),
        ("member_uid", &b.member.uid, "member"),
    ] {
        let path = format!("{}?{field}={value}", routes::USAGE);
        let resp = h.get(&path, Some(&a.admin.key)).await.expect(404);
        assert_eq!(
            resp.body["error"]["code"], "not_found",
            "{field}: {}",
            resp.body
        );
        assert!(
            resp.body.to_string().contains(kind),
            "{field}: the error names the {kind}: {}",
            resp.body
        );
    }
    // The team's own objects still answer.
    for (field, value) in [
        ("run_id", &a.member_run),
        ("agent_uid", &a.agent_uid),
        ("member_uid", &a.member.uid),
    ] {
        let path = format!("{}?{field}={value}", routes::USAGE);
        h.get(&path, Some(&a.admin.key)).await.expect(200);
    }
}

#[tokio::test]
async fn pages_list_every_request_once_in_order() {
    let h = Harness::new().await;
    let (a, b) = two_teams(&h).await;
    // Three rows per second, so the id breaks ties in the order.
    let rows: Vec<UsageRow> = (0..250)
        .map(|n| {
            let mut r = direct_row(&a, n / 3);
            r.id = format!("u{:06}", (n * 7919) % 1000);
            r
        })
        .collect();
    h.core.store().insert_usage(&rows).await.unwrap();
    h.core
        .store()
        .insert_usage(&[direct_row(&b, 0)])
        .await
        .unwrap();
    let mut expected: Vec<(i64, String)> =
        rows.iter().map(|r| (r.created_at, r.id.clone())).collect();
    expected.sort();
    let expected: Vec<String> = expected.into_iter().map(|(_, id)| id).collect();

    // Default page size 100: three pages, the last with a null cursor.
    let mut seen = Vec::new();
    let mut path = routes::USAGE.to_owned();
    let mut pages = 0;
    loop {
        let page = h.get(&path, Some(&a.admin.key)).await.expect(200);
        pages += 1;
        let requests = page.body["requests"].as_array().unwrap();
        assert!(requests.len() <= 100);
        seen.extend(
            requests
                .iter()
                .map(|r| r["id"].as_str().unwrap().to_owned()),
        );
        // The buckets cover every row on every page.
        let inference = page.body["buckets"]["inference"].as_f64().unwrap();
        assert!((inference - 250.0 * 3.0 / 1e6).abs() < 1e-9, "{inference}");
        match &page.body["next_cursor"] {
            Value::Null => break,
            Value::String(c) => path = format!("{}?cursor={c}", routes::USAGE),
            other => panic!("next_cursor {other}"),
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, expected);

    // An explicit limit, with a filter.
    let page = h
        .get(
            &format!("{}?member_uid={}&limit=250", routes::USAGE, a.member.uid),
            Some(&a.admin.key),
        )
        .await
        .expect(200);
    assert_eq!(page.body["requests"].as_array().unwrap().len(), 250);
    assert_eq!(page.body["next_cursor"], Value::Null);
    let page = h
        .get(&format!("{}?limit=1000", routes::USAGE), Some(&a.admin.key))
        .await
        .expect(200);
    assert_eq!(page.body["requests"].as_array().unwrap().len(), 250);
}

#[tokio::test]
async fn a_bad_limit_or_cursor_is_a_400_naming_it() {
    let h = Harness::new().await;
    let (a, _b) = two_teams(&h).await;
    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=ten", "limit"),
        ("limit=-1", "limit"),
        ("limit=", "limit"),
        ("cursor=nonsense", "cursor"),
        ("cursor=djI6MTp1c2VfYQ", "cursor"), // "v2:1:use_a"
        ("page=2", "page"),
    ] {
        let r = h
            .get(&format!("{}?{query}", routes::USAGE), Some(&a.admin.key))
            .await
            .expect(400);
        assert_eq!(r.field(), Some(field), "{query}: {}", r.body);
        let message = r.body["error"]["message"].as_str().unwrap();
        assert!(message.contains(field), "{query}: {message}");
    }
}
