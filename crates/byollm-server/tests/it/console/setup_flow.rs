//! Issue 16's "done when", in a real browser: an admin who never used a
//! terminal signs in with a one-time link, turns Bedrock on with a role ARN
//! in AI settings, gets the AWS setup documents, runs Check setup and sees the
//! refused step and the fix, (the emulator's admin API stands in for "ran the
//! documents in AWS") runs it again and sees it healthy, then gives an agent
//! its own role and checks that too.

use byollm_api::routes;
use byollm_core::service::create_sign_in_link;
use secrecy::ExposeSecret as _;

use super::browser::{assert_not_stored, shot};
use super::check::Cloud;
use super::webdriver::Browser;

/// The AWS setup page's documents for `scope` (`agents`: chosen agents' uids),
/// as the admin would copy them: (trust policy, permissions policy).
async fn documents(
    b: &Browser,
    account: &str,
    role: &str,
    scope: &str,
    agents: &str,
) -> (String, String) {
    b.click_and_wait("a[href='/console/aws-setup']").await;
    b.fill("#account_id", account).await;
    b.fill("#role_name", role).await;
    b.fill("#region", "us-east-1").await;
    b.exec(&format!(
        "document.getElementById('scope').value = '{scope}'; return true;"
    ))
    .await;
    b.fill("#agents", agents).await;
    b.click_and_wait("form[action='/console/aws-setup'] button[type=submit]")
        .await;
    (b.text("#trust-doc").await, b.text("#permissions-doc").await)
}

/// Clicks Check setup and returns the verdict's text.
async fn check(b: &Browser, action: &str) -> String {
    b.click_and_wait(&format!("form[action='{action}'] button[type=submit]"))
        .await;
    b.text("#check-verdict").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_sets_up_bedrock_for_the_team_and_an_agent_in_the_console_alone() {
    let Some(b) = Browser::start("console setup browser test").await else {
        return;
    };
    let cloud = Cloud::start().await;
    let c = &cloud.c;
    let account = cloud.sim.account_id().to_owned();
    let team_role = cloud.role_arn("byollm-team");

    // Sign in with the operator's one-time link.
    let link = create_sign_in_link(
        c.h.core.store(),
        c.h.core.clock().as_ref(),
        &c.alpha.uid,
        &c.alpha.owner.uid,
    )
    .await
    .unwrap();
    let path = format!("/console/sign-in/link/{}", link.token.expose_secret());
    b.goto(&c.url(&path)).await;
    b.click_and_wait("button[type=submit]").await;
    assert!(b.url().await.ends_with("/console"), "{}", b.source().await);
    assert_eq!(b.text("#team-uid").await, c.alpha.uid);
    assert_not_stored(&b, link.token.expose_secret()).await;

    // AI settings: Bedrock on with the team's role.
    b.click_and_wait("a[href='/console/ai-settings']").await;
    if !b.selected("#aws_bedrock_enabled").await {
        b.click("#aws_bedrock_enabled").await;
    }
    b.fill("#role_arn", &team_role).await;
    b.fill("#region", "us-east-1").await;
    b.click_and_wait("form[action='/console/ai-settings'] button[type=submit]")
        .await;
    assert_eq!(b.text("#bedrock-status").await, "on");

    // AWS setup: the documents; Check setup before they ran in AWS is refused.
    let (trust, permissions) = documents(&b, &account, "byollm-team", "team", "").await;
    let verdict = check(&b, "/console/aws-setup/check").await;
    assert!(verdict.contains("Refused at the sts step"), "{verdict}");
    assert!(verdict.contains("Fix:"), "{verdict}");
    shot(&b, "check-setup").await;

    // The admin runs them in AWS (the emulator's admin API stands in): healthy.
    cloud.sim.create_role("byollm-team", &trust, None).unwrap();
    cloud
        .sim
        .put_role_policy("byollm-team", "byollm-bedrock", &permissions)
        .unwrap();
    b.click_and_wait("a[href='/console/aws-setup']").await;
    let verdict = check(&b, "/console/aws-setup/check").await;
    assert!(
        verdict.starts_with("Healthy"),
        "{verdict}\n{}",
        b.source().await
    );

    // An agent with its own role, created and checked from its page.
    let agent_role = cloud.role_arn("byollm-reviewer");
    b.click_and_wait("a[href='/console/agents']").await;
    b.fill("#name", "reviewer").await;
    b.fill("#role_arn", &agent_role).await;
    b.click_and_wait("form[action='/console/agents'] button[type=submit]")
        .await;
    let url = b.url().await;
    let uid = url.rsplit_once("/console/agents/").unwrap().1.to_owned();
    let agent_check = format!("/console/agents/{uid}/check");
    let verdict = check(&b, &agent_check).await;
    assert!(verdict.contains("Refused at the sts step"), "{verdict}");
    let (trust, permissions) = documents(&b, &account, "byollm-reviewer", "chosen", &uid).await;
    cloud
        .sim
        .create_role("byollm-reviewer", &trust, None)
        .unwrap();
    cloud
        .sim
        .put_role_policy("byollm-reviewer", "byollm-bedrock", &permissions)
        .unwrap();
    b.goto(&c.url(&format!("/console/agents/{uid}"))).await;
    let verdict = check(&b, &agent_check).await;
    assert!(
        verdict.starts_with("Healthy"),
        "{verdict}\n{}",
        b.source().await
    );
    let api =
        c.h.get(
            &routes::fill(routes::AGENT_IDENTITY, &uid),
            Some(&c.alpha.owner.key),
        )
        .await
        .expect(200);
    assert_eq!(
        api.body["inference_providers"]["aws"]["role_arn"],
        agent_role.as_str()
    );

    // Usage once requests went through: the chart with its table.
    let now = c.h.core.clock().now();
    let rows: Vec<byollm_core::store::UsageRow> = (0..12)
        .map(|i| byollm_core::store::UsageRow {
            id: format!("use_shot{i:02}"),
            team_uid: c.alpha.uid.clone(),
            run_id: None,
            actor: byollm_api::types::Actor {
                actor_type: byollm_api::types::ActorType::ServiceAccount,
                uid: uid.clone(),
            },
            member_uid: None,
            agent_uid: Some(uid.clone()),
            model: "claude-sonnet-4-6".into(),
            route: if i % 3 == 0 {
                "direct_api:claude-sonnet-4-6".into()
            } else {
                "aws_bedrock:global.anthropic.claude-sonnet-4-6@us-east-1".into()
            },
            attempts: "[]".into(),
            input_tokens: 100,
            output_tokens: 50,
            inference_microcredits: if i % 3 == 0 { 3_000 + i * 500 } else { 0 },
            created_at: now - (i % 4) * 86_400,
        })
        .collect();
    c.h.core.store().insert_usage(&rows).await.unwrap();
    b.click_and_wait("a[href='/console/usage']").await;
    assert_eq!(b.count("#usage-chart").await, 1);
    assert_eq!(b.count("#usage-days").await, 1);
    shot(&b, "usage").await;
    b.quit().await;
}
