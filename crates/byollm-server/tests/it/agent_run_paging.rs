//! Paged lists (issue 11 item 9, agents and runs) on both engines: `limit`
//! (default 100, 1 to 1,000) and an opaque `cursor` in a stable order, agent
//! filters by name prefix and availability, run filters by state, actor and
//! time; members list their own runs, admins the team's.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use byollm_api::routes;

use crate::common::Harness;
use crate::safe_writes::engines;

/// Every item of a list, following `next_cursor` with pages of `limit`.
async fn walk(h: &Harness, path: &str, key: &str, cred: &str, limit: u32) -> Vec<Value> {
    let sep = if path.contains('?') { '&' } else { '?' };
    let mut all = Vec::new();
    let mut url = format!("{path}{sep}limit={limit}");
    loop {
        let page = h.get(&url, Some(cred)).await.expect(200);
        let items = page.body[key].as_array().unwrap().clone();
        assert!(items.len() <= limit as usize);
        all.extend(items);
        match page.body["next_cursor"].as_str() {
            Some(c) => url = format!("{path}{sep}limit={limit}&cursor={c}"),
            None => return all,
        }
    }
}

#[tokio::test]
async fn agents_page_and_filter() {
    for (engine, h) in engines().await {
        let t = h.team("alpha").await;
        let admin = t.admin.key.as_str();
        for i in 0..7 {
            h.post(
                routes::AGENT_IDENTITIES,
                Some(admin),
                &json!({"name": format!("Worker {i}"), "available": i % 2 == 0}),
            )
            .await
            .expect(201);
        }
        // 8 agents (the fixture's "builder" too), in a stable order.
        let all = walk(&h, routes::AGENT_IDENTITIES, "agents", admin, 3).await;
        assert_eq!(all.len(), 8, "{engine}");
        let uids: BTreeSet<_> = all.iter().map(|a| a["uid"].as_str().unwrap()).collect();
        assert_eq!(uids.len(), 8, "{engine}: an agent listed twice");
        let again = walk(&h, routes::AGENT_IDENTITIES, "agents", admin, 1000).await;
        assert_eq!(all, again, "{engine}: the order is not stable");
        let first = h
            .get(routes::AGENT_IDENTITIES, Some(admin))
            .await
            .expect(200);
        assert!(first.body["next_cursor"].is_null(), "{engine}");

        let workers = walk(
            &h,
            &format!("{}?name_prefix=worker", routes::AGENT_IDENTITIES),
            "agents",
            admin,
            2,
        )
        .await;
        assert_eq!(workers.len(), 7, "{engine}");
        let off = walk(
            &h,
            &format!(
                "{}?name_prefix=WORK&available=false",
                routes::AGENT_IDENTITIES
            ),
            "agents",
            admin,
            2,
        )
        .await;
        assert_eq!(off.len(), 3, "{engine}");
        assert!(off.iter().all(|a| a["available"] == false));
        // `%` and `_` in a prefix match themselves.
        let none = h
            .get(
                &format!("{}?name_prefix=%25", routes::AGENT_IDENTITIES),
                Some(admin),
            )
            .await
            .expect(200);
        assert_eq!(none.body["agents"], json!([]), "{engine}");

        for bad in [
            "limit=0",
            "limit=1001",
            "limit=x",
            "cursor=nope",
            "available=yes",
            "colour=red",
        ] {
            let r = h
                .get(&format!("{}?{bad}", routes::AGENT_IDENTITIES), Some(admin))
                .await
                .expect(400);
            let field = bad.split('=').next().unwrap();
            assert_eq!(r.field(), Some(field), "{engine} {bad}");
        }
    }
}

#[tokio::test]
async fn runs_page_filter_and_follow_who_may_see_them() {
    for (engine, h) in engines().await {
        let t = h.team("alpha").await;
        let other = h
            .add_member(&t.uid, &t.owner.key, "other@alpha.test", "member")
            .await;
        // The fixture made one member run and one agent run.
        for _ in 0..4 {
            h.run(&t.member.key, &json!({})).await;
        }
        let (other_run, _) = h.run(&other.key, &json!({})).await;
        h.post(
            &routes::fill(routes::RUN_FINISH, &other_run),
            Some(&other.key),
            &json!({"state": "failed"}),
        )
        .await
        .expect(200);

        let all = walk(&h, routes::RUNS, "runs", &t.admin.key, 2).await;
        assert_eq!(all.len(), 7, "{engine}");
        let ids: BTreeSet<_> = all.iter().map(|r| r["run_id"].as_str().unwrap()).collect();
        assert_eq!(ids.len(), 7, "{engine}");

        // A member lists the runs they act as or started, no one else's.
        let mine = walk(&h, routes::RUNS, "runs", &t.member.key, 2).await;
        assert_eq!(mine.len(), 5, "{engine}");
        assert!(
            mine.iter()
                .all(|r| r["triggered_by"]["uid"] == t.member.uid.as_str()),
            "{engine}"
        );
        let theirs = walk(&h, routes::RUNS, "runs", &other.key, 2).await;
        assert_eq!(theirs.len(), 1, "{engine}");
        // Agent keys and run tokens cannot list.
        h.get(routes::RUNS, Some(&t.agent_key)).await.expect(403);
        h.get(routes::RUNS, Some(&t.member_run_token))
            .await
            .expect(403);

        let failed = walk(
            &h,
            &format!("{}?state=failed", routes::RUNS),
            "runs",
            &t.admin.key,
            5,
        )
        .await;
        assert_eq!(failed.len(), 1, "{engine}");
        assert_eq!(failed[0]["run_id"], other_run.as_str());
        let agent_runs = walk(
            &h,
            &format!("{}?actor=service_account:{}", routes::RUNS, t.agent_uid),
            "runs",
            &t.admin.key,
            5,
        )
        .await;
        assert_eq!(agent_runs.len(), 1, "{engine}");
        let future = walk(
            &h,
            &format!("{}?since=2999-01-01T00:00:00Z", routes::RUNS),
            "runs",
            &t.admin.key,
            5,
        )
        .await;
        assert!(future.is_empty(), "{engine}");
        let past = walk(
            &h,
            &format!("{}?until=2999-01-01T00:00:00Z", routes::RUNS),
            "runs",
            &t.admin.key,
            5,
        )
        .await;
        assert_eq!(past.len(), 7, "{engine}");
        for bad in [
            "since=yesterday",
            "until=2026-13-01T00:00:00Z",
            "state=done",
            "actor=bob",
            "limit=1001",
        ] {
            let r = h
                .get(&format!("{}?{bad}", routes::RUNS), Some(&t.admin.key))
                .await
                .expect(400);
            assert_eq!(
                r.field(),
                Some(bad.split('=').next().unwrap()),
                "{engine} {bad}"
            );
        }
        // Another team's runs never show.
        let b = h.team("beta").await;
        let beta = walk(&h, routes::RUNS, "runs", &b.admin.key, 100).await;
        assert_eq!(beta.len(), 2, "{engine}");
    }
}
