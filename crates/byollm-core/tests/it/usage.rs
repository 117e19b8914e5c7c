//! The usage table on both stores: sums cover every matching row of the team
//! and nothing of another team's (PostgreSQL's `SUM(bigint)` is a numeric, so
//! the query casts it; this test is what proves the cast decodes there).

use byollm_api::types::{Actor, ActorType};
use byollm_core::store::{UsageFilter, UsageRow};

use crate::stores;

fn row(team: &str, run: Option<&str>, n: i64, microcredits: i64) -> UsageRow {
    UsageRow {
        id: format!("{team}-{n}"),
        team_uid: team.into(),
        run_id: run.map(str::to_owned),
        actor: Actor {
            actor_type: ActorType::User,
            uid: "m1".into(),
        },
        member_uid: Some("m1".into()),
        agent_uid: None,
        model: "claude-sonnet-4-6".into(),
        route: "direct_api:claude-sonnet-4-6".into(),
        attempts: "[]".into(),
        input_tokens: 1,
        output_tokens: 1,
        inference_microcredits: microcredits,
        created_at: 1_800_000_000 + n,
    }
}

#[tokio::test]
async fn inference_sums_cover_every_matching_row_of_the_team_only() {
    for t in stores::all().await {
        let s = &t.store;
        let empty = UsageFilter::default();
        assert_eq!(
            s.sum_inference_microcredits("ta", &empty).await.unwrap(),
            0,
            "{}: no rows sum to 0",
            t.name
        );
        let mut rows: Vec<UsageRow> = (0..50).map(|n| row("ta", None, n, 7)).collect();
        rows.extend((50..60).map(|n| row("ta", Some("r1"), n, 100)));
        rows.push(row("tb", None, 0, 1_000_000));
        s.insert_usage(&rows).await.unwrap();
        assert_eq!(
            s.sum_inference_microcredits("ta", &empty).await.unwrap(),
            50 * 7 + 10 * 100,
            "{}",
            t.name
        );
        let run = UsageFilter {
            run_id: Some("r1".into()),
            ..UsageFilter::default()
        };
        assert_eq!(
            s.sum_inference_microcredits("ta", &run).await.unwrap(),
            1_000,
            "{}",
            t.name
        );
        assert_eq!(
            s.sum_inference_microcredits("tb", &empty).await.unwrap(),
            1_000_000,
            "{}",
            t.name
        );
    }
}
