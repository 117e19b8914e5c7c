//! Lists past their first page (the API's cursors), usage summaries (per
//! day with a chart and its table, per model and route, per member and agent)
//! and the CSV download, a run's routes and credits, an agent's runs.

use std::sync::Arc;

use byollm_api::clock::SystemClock;
use byollm_api::types::{Actor, ActorType};
use byollm_core::store::UsageRow;

use super::Console;

/// `n` requests by the owner (one of them an agent's, in the member run),
/// a day apart from the 5th on.
async fn usage(c: &Console, n: i64) {
    let rows: Vec<UsageRow> = (0..n)
        .map(|i| UsageRow {
            id: format!("use_console{i:04}"),
            team_uid: c.alpha.uid.clone(),
            run_id: (i == 0).then(|| c.alpha.member_run.clone()),
            actor: Actor {
                actor_type: ActorType::User,
                uid: c.alpha.owner.uid.clone(),
            },
            member_uid: Some(c.alpha.owner.uid.clone()),
            agent_uid: None,
            model: "claude-sonnet-4-6".into(),
            route: if i % 2 == 0 {
                "direct_api:claude-sonnet-4-6".into()
            } else {
                "aws_bedrock:global.anthropic.claude-sonnet-4-6@us-east-1".into()
            },
            attempts: "[]".into(),
            input_tokens: 10,
            output_tokens: 5,
            inference_microcredits: if i % 2 == 0 { 1_000 } else { 0 },
            created_at: 1_900_000_000 + if i >= 5 { 86_400 } else { i },
        })
        .collect();
    c.h.core.store().insert_usage(&rows).await.unwrap();
}

/// The `href` of the page's "Next page" link, if any.
fn next_of(page: &str) -> Option<String> {
    let at = page.find(r#"<a href=""#).and(page.find(r#"rel="next""#))?;
    let start = page[..at].rfind(r#"href=""#)? + 6;
    let end = start + page[start..].find('"')?;
    Some(page[start..end].replace("&amp;", "&"))
}

#[tokio::test]
async fn usage_pages_summaries_csv_and_a_runs_routes() {
    let c = Console::start(Arc::new(SystemClock), false).await;
    usage(&c, 120).await;
    let owner = c.sign_in(&c.alpha.owner.key).await;
    let (status, page, _) = c.get("/console/usage", Some(&owner)).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains(r#"<svg id="usage-chart""#), "{page}");
    assert!(page.contains(r#"<table id="usage-days">"#), "{page}");
    assert!(
        page.contains(r#"<th scope="row"><code>2030-03-17</code></th><td>5</td><td>0.0030</td>"#),
        "{page}"
    );
    assert!(
        page.contains(
            r#"<th scope="row"><code>claude-sonnet-4-6 / direct_api:claude-sonnet-4-6</code></th><td>60</td><td>0.0600</td>"#
        ),
        "{page}"
    );
    assert!(
        page.contains(&format!(
            r#"<th scope="row"><code>user:{}</code></th><td>120</td>"#,
            c.alpha.owner.uid
        )),
        "{page}"
    );
    // Page two of the requests, through the API's cursor.
    let next = next_of(&page).expect("a next page");
    assert!(next.starts_with("/console/usage?cursor="), "{next}");
    let (status, two, _) = c.get(&next, Some(&owner)).await;
    assert_eq!(status, 200);
    assert!(two.contains("use_console") || two.contains("<td>"), "{two}");
    assert_ne!(two, page);
    assert!(next_of(&two).is_none(), "120 requests are two pages of 100");

    // The CSV: every request, an attachment.
    let resp = c
        .http
        .get(c.url("/console/usage/requests.csv"))
        .header("cookie", format!("byollm_console={owner}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.headers()["content-type"], "text/csv; charset=utf-8");
    assert!(
        resp.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment;")
    );
    let csv = resp.text().await.unwrap();
    assert!(
        csv.starts_with("id,created_at,principal,run_id,model,route,"),
        "{csv}"
    );
    assert_eq!(csv.lines().count(), 121, "a header and every request");
    assert!(csv.contains("use_console0119,"), "{csv}");

    // A run's page: the route its request took and its credits.
    let (status, page, _) = c
        .get(
            &format!("/console/runs/{}", c.alpha.member_run),
            Some(&owner),
        )
        .await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains(r#"<table id="run-routes">"#), "{page}");
    assert!(
        page.contains("<code>direct_api:claude-sonnet-4-6</code>"),
        "{page}"
    );
    assert!(
        page.contains(r#"<dd id="run-credits">inference 0.0010"#),
        "{page}"
    );

    // An agent's page lists its runs.
    let (status, page, _) = c
        .get(
            &format!("/console/agents/{}", c.alpha.agent_uid),
            Some(&owner),
        )
        .await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains(&c.alpha.agent_run), "{page}");
    assert!(!page.contains(&c.alpha.member_run), "{page}");
}

/// The audit trail past its first page keeps its filters; so does the runs
/// list (one actor's runs).
#[tokio::test]
async fn audit_and_runs_pages_keep_their_filters() {
    let c = Console::start(Arc::new(SystemClock), false).await;
    for n in 0..101 {
        c.h.json(
            axum::http::Method::POST,
            byollm_api::routes::API_KEYS,
            Some(&c.alpha.admin.key),
            &serde_json::json!({"name": format!("k{n}")}),
        )
        .await
        .expect(201);
    }
    let owner = c.sign_in(&c.alpha.owner.key).await;
    let (status, page, _) = c
        .get("/console/audit?action=api_key.create", Some(&owner))
        .await;
    assert_eq!(status, 200, "{page}");
    let next = next_of(&page).expect("a second page");
    assert!(
        next.starts_with("/console/audit?action=api%5Fkey%2Ecreate&cursor="),
        "the filter is kept: {next}"
    );
    let (status, two, _) = c.get(&next, Some(&owner)).await;
    assert_eq!(status, 200);
    assert_eq!(page.matches("<td>api_key.create</td>").count(), 100);
    let rest = two.matches("<td>api_key.create</td>").count();
    assert!(
        (1..100).contains(&rest),
        "the rest of the 101 (and the fixture's): {rest}"
    );
    assert!(next_of(&two).is_none());

    let actor = format!("service_account:{}", c.alpha.agent_uid);
    let (status, page, _) = c
        .get(&format!("/console/runs?actor={actor}"), Some(&owner))
        .await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains(&c.alpha.agent_run) && !page.contains(&c.alpha.member_run));
}

/// The overview: this month's buckets, its credits per day (chart
/// and table) and the last requests with their routes.
#[tokio::test]
async fn the_overview_shows_credits_this_month_and_the_last_requests() {
    let c = Console::start(Arc::new(SystemClock), false).await;
    let owner = c.sign_in(&c.alpha.owner.key).await;
    let (_, page, _) = c.get("/console", Some(&owner)).await;
    // The fixture's two runs started this month: no requests yet, but runs.
    assert!(
        page.contains(r#"<td id="month-inference">0.0000</td><td id="month-platform">2.0000</td>"#),
        "{page}"
    );
    let now = c.h.core.clock().now();
    let rows: Vec<UsageRow> = (0..3)
        .map(|i| UsageRow {
            id: format!("use_over{i}"),
            team_uid: c.alpha.uid.clone(),
            run_id: None,
            actor: Actor {
                actor_type: ActorType::User,
                uid: c.alpha.owner.uid.clone(),
            },
            member_uid: Some(c.alpha.owner.uid.clone()),
            agent_uid: None,
            model: "claude-sonnet-4-6".into(),
            route: format!("direct_api:route{i}"),
            attempts: "[]".into(),
            input_tokens: 1,
            output_tokens: 1,
            inference_microcredits: 2_000,
            created_at: now - i,
        })
        .collect();
    c.h.core.store().insert_usage(&rows).await.unwrap();
    let (status, page, _) = c.get("/console", Some(&owner)).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains(r#"<table id="overview-buckets">"#), "{page}");
    assert!(
        page.contains(r#"<td id="month-inference">0.0060</td>"#),
        "{page}"
    );
    assert!(page.contains(r#"<svg id="usage-chart""#), "{page}");
    assert!(page.contains(r#"<table id="overview-days">"#), "{page}");
    assert!(page.contains("<code>direct_api:route2</code>"), "{page}");
}

/// Agents, API keys and members past their first page.
#[tokio::test]
async fn agents_keys_and_members_have_next_pages() {
    let c = Console::start(Arc::new(SystemClock), false).await;
    let admin = &c.alpha.admin.key;
    for n in 0..100 {
        for (path, body) in [
            (
                byollm_api::routes::AGENT_IDENTITIES,
                serde_json::json!({"name": format!("bot{n:03}")}),
            ),
            (
                byollm_api::routes::API_KEYS,
                serde_json::json!({"name": format!("k{n:03}")}),
            ),
            (
                byollm_api::routes::TEAM_MEMBERS,
                serde_json::json!({"email": format!("m{n:03}@alpha.test"), "role": "member"}),
            ),
        ] {
            c.h.json(axum::http::Method::POST, path, Some(admin), &body)
                .await
                .expect(201);
        }
    }
    let owner = c.sign_in(&c.alpha.admin.key).await;
    for (path, last) in [
        ("/console/agents", "bot099"),
        ("/console/keys", "k099"),
        ("/console/members", "m099@alpha.test"),
    ] {
        let (status, page, _) = c.get(path, Some(&owner)).await;
        assert_eq!(status, 200, "{page}");
        let next = next_of(&page).unwrap_or_else(|| panic!("{path}: no next page"));
        assert!(next.starts_with(&format!("{path}?cursor=")), "{next}");
        let (status, two, _) = c.get(&next, Some(&owner)).await;
        assert_eq!(status, 200, "{two}");
        assert!(
            page.contains(last) || two.contains(last),
            "{path}: {last} on neither page"
        );
        assert!(!two.is_empty() && two != page);
    }
}
