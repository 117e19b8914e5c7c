//! The usage table on both stores: sums cover every matching row of the team
//! and nothing of another team's (PostgreSQL's `SUM(bigint)` is a numeric, so
//! the query casts it; this test is what proves the cast decodes there); pages
//! cover every row once, in order; inserts are idempotent; and the ledger's
//! writer retries a failing commit until the row is stored.

use byollm_api::types::{Actor, ActorType};
use byollm_core::store::{UsageFilter, UsageKey, UsageRow};

use crate::stores;

/// A usage row of `team` (id `<team>-<n>`), one token each way.
pub fn row(team: &str, run: Option<&str>, n: i64, microcredits: i64) -> UsageRow {
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

/// `n` rows per second for a few seconds, ids shuffled against time so the
/// `(created_at, id)` order differs from insertion order.
fn paging_rows(team: &str) -> Vec<UsageRow> {
    let mut rows = Vec::new();
    for n in 0..53 {
        let mut r = row(team, if n % 3 == 0 { Some("r1") } else { None }, n, 1);
        r.id = format!("use_{:03}", (n * 37) % 101);
        r.created_at = 1_800_000_000 + n / 5;
        rows.push(r);
    }
    rows
}

#[tokio::test]
async fn pages_cover_every_row_once_in_order() {
    for t in stores::all().await {
        let s = &t.store;
        let mut rows = paging_rows("ta");
        s.insert_usage(&rows).await.unwrap();
        s.insert_usage(&paging_rows("tb")).await.unwrap();
        rows.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        for (filter, expected) in [
            (UsageFilter::default(), rows.clone()),
            (
                UsageFilter {
                    run_id: Some("r1".into()),
                    ..UsageFilter::default()
                },
                rows.iter()
                    .filter(|r| r.run_id.is_some())
                    .cloned()
                    .collect(),
            ),
        ] {
            for limit in [1, 7, 53, 1000] {
                let mut seen = Vec::new();
                let mut after: Option<UsageKey> = None;
                loop {
                    let page = s
                        .list_usage("ta", &filter, after.as_ref(), limit)
                        .await
                        .unwrap();
                    assert!(page.len() as i64 <= limit, "{}", t.name);
                    let Some(last) = page.last() else { break };
                    after = Some(UsageKey {
                        created_at: last.created_at,
                        id: last.id.clone(),
                    });
                    seen.extend(page);
                }
                let ids = |v: &[UsageRow]| v.iter().map(|r| r.id.clone()).collect::<Vec<_>>();
                assert_eq!(
                    ids(&seen),
                    ids(&expected),
                    "{}: limit {limit}, filter {filter:?}",
                    t.name
                );
                assert!(seen.iter().all(|r| r.team_uid == "ta"));
            }
        }
    }
}

#[tokio::test]
async fn inserting_a_row_twice_stores_it_once() {
    for t in stores::all().await {
        let s = &t.store;
        let rows: Vec<UsageRow> = (0..3).map(|n| row("ta", None, n, 5)).collect();
        s.insert_usage(&rows).await.unwrap();
        // A retry of a commit whose answer was lost.
        s.insert_usage(&rows).await.unwrap();
        let all = UsageFilter::default();
        assert_eq!(
            s.list_usage("ta", &all, None, 100).await.unwrap().len(),
            3,
            "{}",
            t.name
        );
        assert_eq!(
            s.sum_inference_microcredits("ta", &all).await.unwrap(),
            15,
            "{}",
            t.name
        );
    }
}

/// The run index holds only rows that have a run (an interactive request's
/// commit writes one B-tree page fewer), and a page of a run's usage comes
/// from it in order, without scanning the team's rows or sorting.
#[tokio::test]
async fn the_run_index_holds_only_rows_with_a_run_and_serves_queries_by_run() {
    use sqlx::{Connection as _, Row as _};
    sqlx::any::install_default_drivers();
    for t in stores::all().await {
        let mut c = sqlx::AnyConnection::connect(&t.url).await.unwrap();
        let def: String = if t.name == "sqlite" {
            sqlx::query("SELECT sql FROM sqlite_master WHERE type = 'index' AND name = 'usage_run'")
        } else {
            sqlx::query("SELECT indexdef FROM pg_indexes WHERE indexname = 'usage_run'")
        }
        .fetch_one(&mut c)
        .await
        .unwrap()
        .get(0);
        assert!(
            def.to_lowercase()
                .replace(['(', ')'], "")
                .contains("where run_id is not null"),
            "{}: {def}",
            t.name
        );
        if t.name == "sqlite" {
            let plan: Vec<String> = sqlx::query(
                "EXPLAIN QUERY PLAN SELECT id FROM usage_requests \
                 WHERE team_uid = 'ta' AND run_id = 'r1' ORDER BY created_at, id LIMIT 10",
            )
            .fetch_all(&mut c)
            .await
            .unwrap()
            .iter()
            .map(|r| r.get::<String, _>(3))
            .collect();
            assert!(
                plan.iter().any(|d| d.contains("INDEX usage_run"))
                    && !plan.iter().any(|d| d.contains("TEMP B-TREE")),
                "a run's page of usage should come from the run index, in order: {plan:?}"
            );
        }
        c.close().await.unwrap();
    }
}
