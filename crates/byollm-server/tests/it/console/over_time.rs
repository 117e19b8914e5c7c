//! Credits over time: runs and requests placed on days of last month and
//! this month (a fake clock on 2030-03-17 UTC). The usage API's run days,
//! the usage page's per-day table (all three buckets) and the overview's
//! buckets for this calendar month, which leave last month's credits out.

use std::sync::Arc;

use byollm_api::clock::FakeClock;
use byollm_api::routes;
use byollm_api::types::{Actor, ActorType, RunState};
use byollm_core::ids;
use byollm_core::store::{RunRow, UsageRow};

use super::Console;

/// 2030-03-17T12:00:00Z.
const NOW: i64 = 1_899_979_200;
/// 2030-02-27T10:00:00Z (last month).
const FEB_27: i64 = 1_898_416_800;
/// 2030-03-10T10:00:00Z.
const MAR_10: i64 = 1_899_367_200;
/// 2030-03-16T09:00:00Z.
const MAR_16: i64 = 1_899_882_000;

fn owner(c: &Console) -> Actor {
    Actor {
        actor_type: ActorType::User,
        uid: c.alpha.owner.uid.clone(),
    }
}

/// A run of 2 minutes 30 seconds (3 started minutes: 0.3 compute): its
/// token's end, which is when it stops counting.
async fn run_at(c: &Console, at: i64) {
    let row = RunRow {
        uid: ids::new_uid(),
        team_uid: c.alpha.uid.clone(),
        actor: owner(c),
        triggered_by: owner(c),
        state: RunState::Finished,
        model: None,
        prompt: None,
        token_hash: ids::hash_secret(&ids::new_uid()),
        token_expires_at: at + 150,
        created_at: at,
        finished_at: Some(at + 150),
        bedrock: None,
    };
    c.h.core.store().insert_run(&row, None).await.unwrap();
}

fn request_at(c: &Console, id: &str, at: i64, microcredits: i64) -> UsageRow {
    UsageRow {
        id: id.to_owned(),
        team_uid: c.alpha.uid.clone(),
        run_id: None,
        actor: owner(c),
        member_uid: Some(c.alpha.owner.uid.clone()),
        agent_uid: None,
        model: "claude-sonnet-4-6".into(),
        route: "direct_api:claude-sonnet-4-6".into(),
        attempts: "[]".into(),
        input_tokens: 1,
        output_tokens: 1,
        inference_microcredits: microcredits,
        created_at: at,
    }
}

fn day_row(day: &str, cells: &str) -> String {
    format!(r#"<th scope="row"><code>{day}</code></th>{cells}</tr>"#)
}

#[tokio::test]
async fn this_months_buckets_and_the_series_leave_last_month_out() {
    // The fixture's two runs (a member's, an agent's) start at NOW and are
    // still open: 1 platform and 0.1 compute (one started minute) each.
    let c = Console::start(Arc::new(FakeClock::new(NOW)), false).await;
    run_at(&c, FEB_27).await;
    run_at(&c, MAR_10).await;
    let rows = [
        request_at(&c, "use_feb", FEB_27 + 60, 5_000),
        request_at(&c, "use_mar10", MAR_10 + 60, 2_000),
        request_at(&c, "use_mar16", MAR_16, 1_000),
    ];
    c.h.core.store().insert_usage(&rows).await.unwrap();

    // The API: the run credits per day, summing to the buckets.
    let api =
        c.h.get(routes::USAGE, Some(&c.alpha.owner.key))
            .await
            .expect(200);
    let days = api.body["run_days"].as_array().unwrap().clone();
    let names: Vec<&str> = days.iter().map(|d| d["day"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        ["2030-02-27", "2030-03-10", "2030-03-17"],
        "{days:?}"
    );
    assert_eq!(days[0]["runs"], 1);
    assert_eq!(days[0]["platform"], 1.0);
    assert!(
        (days[0]["compute"].as_f64().unwrap() - 0.3).abs() < 1e-9,
        "{days:?}"
    );
    assert_eq!(days[2]["runs"], 2);
    let platform: f64 = days.iter().map(|d| d["platform"].as_f64().unwrap()).sum();
    assert_eq!(api.body["buckets"]["platform"].as_f64().unwrap(), platform);
    assert_eq!(platform, 4.0);

    let cookie = c.sign_in(&c.alpha.owner.key).await;

    // The overview: March only, labelled as such.
    let (status, page, _) = c.get("/console", Some(&cookie)).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Credits this month"), "{page}");
    assert!(page.contains("this month, 2030-03 (UTC"), "{page}");
    assert!(
        page.contains(r#"<td id="month-inference">0.0030</td>"#),
        "{page}"
    );
    assert!(
        page.contains(r#"<td id="month-platform">3.0000</td>"#),
        "{page}"
    );
    assert!(
        page.contains(r#"<td id="month-compute">0.5000</td>"#),
        "{page}"
    );
    assert!(page.contains(r#"<svg id="usage-chart""#), "{page}");
    assert!(page.contains(r#"class="bar platform""#), "{page}");
    for (day, cells) in [
        (
            "2030-03-10",
            "<td>1</td><td>0.0020</td><td>1</td><td>1.0000</td><td>0.3000</td>",
        ),
        (
            "2030-03-16",
            "<td>1</td><td>0.0010</td><td>0</td><td>0.0000</td><td>0.0000</td>",
        ),
        (
            "2030-03-17",
            "<td>0</td><td>0.0000</td><td>2</td><td>2.0000</td><td>0.2000</td>",
        ),
    ] {
        assert!(page.contains(&day_row(day, cells)), "{day}: {page}");
    }
    // (The last requests, listed below, may be last month's.)
    let month = page
        .split(r#"<table id="overview-days">"#)
        .nth(1)
        .and_then(|t| t.split("</table>").next())
        .unwrap();
    assert!(
        !month.contains("2030-02"),
        "last month in this month's days: {month}"
    );

    // The usage page: every day, the three buckets each.
    let (status, page, _) = c.get("/console/usage", Some(&cookie)).await;
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains(&day_row(
            "2030-02-27",
            "<td>1</td><td>0.0050</td><td>1</td><td>1.0000</td><td>0.3000</td>"
        )),
        "{page}"
    );
    assert!(
        page.contains(r#"<td id="credits-platform">4.0000</td>"#),
        "{page}"
    );
    assert!(
        page.contains(r#"<td id="credits-inference">0.0080</td>"#),
        "{page}"
    );
}
