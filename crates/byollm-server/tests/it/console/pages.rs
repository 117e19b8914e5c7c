//! The console's read-mostly pages over plain HTTP: usage, the member's own
//! settings, and the 404 page for a path that names no page.

use std::sync::Arc;

use byollm_api::clock::SystemClock;
use byollm_api::routes;

use super::{Console, csrf_of};

/// The member's `aws_bedrock_opt_in` as the API reads it.
async fn opt_in(c: &Console) -> serde_json::Value {
    c.h.get(routes::ME_SETTINGS, Some(&c.alpha.member.key))
        .await
        .expect(200)
        .body["aws_bedrock_opt_in"]
        .clone()
}

/// A member sees their own credits, an admin the team's; every member sets
/// their own `aws_bedrock_opt_in` through the API's operation.
#[tokio::test]
async fn usage_and_the_members_own_settings() {
    let c = Console::start(Arc::new(SystemClock), false).await;
    let member = c.sign_in(&c.alpha.member.key).await;
    let (status, page, _) = c.get("/console/usage", Some(&member)).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Credits (your)"), "{page}");
    assert!(page.contains(r#"id="credits-inference""#), "{page}");
    let admin = c.sign_in(&c.alpha.admin.key).await;
    let (status, page, _) = c.get("/console/usage", Some(&admin)).await;
    assert_eq!(status, 200);
    assert!(page.contains("Credits (the team's)"), "{page}");

    let (status, page, _) = c.get("/console", Some(&member)).await;
    assert_eq!(status, 200);
    assert!(!page.contains(r#"name="aws_bedrock_opt_in" checked"#));
    let csrf = csrf_of(&page);
    let (status, _, _) = c
        .post(
            "/console/my-settings",
            &member,
            Some(&c.base),
            &format!("csrf={csrf}&aws_bedrock_opt_in=on"),
        )
        .await;
    assert_eq!(status, 303);
    assert_eq!(opt_in(&c).await, true);
    let (_, page, _) = c.get("/console", Some(&member)).await;
    assert!(
        page.contains(r#"name="aws_bedrock_opt_in" checked"#),
        "{page}"
    );
    let (status, _, _) = c
        .post(
            "/console/my-settings",
            &member,
            Some(&c.base),
            &format!("csrf={csrf}"),
        )
        .await;
    assert_eq!(status, 303);
    assert_eq!(opt_in(&c).await, false);
}

/// A console path that names no page is an HTML 404 page with the console's
/// headers, signed in or not.
#[tokio::test]
async fn unknown_console_paths_are_404_pages() {
    let c = Console::start(Arc::new(SystemClock), false).await;
    let cookie = c.sign_in(&c.alpha.owner.key).await;
    for session in [None, Some(cookie.as_str())] {
        let (status, page, headers) = c.get("/console/nope/nothing", session).await;
        assert_eq!(status, 404, "{page}");
        assert!(page.contains("<h1>Not found</h1>"), "{page}");
        assert_eq!(headers["x-frame-options"], "DENY");
    }
}

/// Runs: the list and a run's page, as the API scopes them; another team's run
/// is a 404 page.
#[tokio::test]
async fn runs_list_and_detail() {
    let c = Console::start(Arc::new(SystemClock), false).await;
    let member = c.sign_in(&c.alpha.member.key).await;
    let (status, page, _) = c.get("/console/runs", Some(&member)).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains(&c.alpha.member_run), "{page}");
    let (status, page, _) = c
        .get(
            &format!("/console/runs/{}", c.alpha.member_run),
            Some(&member),
        )
        .await;
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains(&format!(
            r#"<code id="run-id">{}</code>"#,
            c.alpha.member_run
        )),
        "{page}"
    );
    assert!(
        page.contains(r#"<dd id="run-state">running</dd>"#),
        "{page}"
    );
    let beta = c.h.team("beta").await;
    let owner = c.sign_in(&c.alpha.owner.key).await;
    let (status, _, _) = c
        .get(&format!("/console/runs/{}", beta.member_run), Some(&owner))
        .await;
    assert_eq!(status, 404);
}

/// The audit trail (admins): the console's own changes are there, as the API
/// records them (sign-in included); filters are the API's; members get 403.
#[tokio::test]
async fn audit_shows_the_teams_changes_to_admins_only() {
    let c = Console::start(Arc::new(SystemClock), false).await;
    let member = c.sign_in(&c.alpha.member.key).await;
    assert_eq!(c.get("/console/audit", Some(&member)).await.0, 403);
    let owner = c.sign_in(&c.alpha.owner.key).await;
    let (status, page, _) = c.get("/console/audit", Some(&owner)).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("console.sign_in"), "{page}");
    assert!(page.contains("member.create"), "{page}");
    let (status, page, _) = c
        .get("/console/audit?action=console.sign_in", Some(&owner))
        .await;
    assert_eq!(status, 200);
    assert!(!page.contains("member.create"), "filtered: {page}");
    let (status, page, _) = c.get("/console/audit?since=yesterday", Some(&owner)).await;
    assert_eq!(status, 400, "{page}");
    assert!(page.contains(r#"id="since-error""#), "{page}");
}
