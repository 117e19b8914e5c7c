//! The usage report adds up (issue "billing that adds up"): the inference bucket
//! covers every row, not only the rows one report lists, and a filter naming
//! another team's run, agent or member is a 404 like every other route.

use byollm_api::routes;
use byollm_api::types::{Actor, ActorType};
use byollm_core::store::UsageRow;

use crate::common::{Harness, TeamFx, two_teams};

/// More rows than one report lists (its cap is 10,000).
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
