//! An automated accessibility check of every console page: axe-core (from
//! npm, installed by `.ci/run` into `~/.cache/byollm/axe-core`, or the file
//! `$BYOLLM_AXE_CORE`) injected into each page in headless Chromium; no
//! serious or critical violation is allowed.

use std::sync::Arc;

use serde_json::Value;

use byollm_api::clock::SystemClock;

use super::Console;
use super::webdriver::Browser;

/// Where `.ci/run` installs axe-core.
fn axe_source() -> Option<String> {
    #[expect(
        clippy::disallowed_methods,
        reason = "a test looks for a tool it needs, as the other tool checks do"
    )]
    let path = std::env::var("BYOLLM_AXE_CORE").ok().map_or_else(
        || {
            let cache = std::env::var("XDG_CACHE_HOME")
                .ok()
                .map(std::path::PathBuf::from)
                .or_else(|| {
                    std::env::var("HOME")
                        .ok()
                        .map(|h| std::path::Path::new(&h).join(".cache"))
                })
                .unwrap_or_default();
            cache.join("byollm/axe-core/node_modules/axe-core/axe.min.js")
        },
        std::path::PathBuf::from,
    );
    std::fs::read_to_string(path).ok()
}

/// The serious and critical violations axe finds on the current page.
async fn violations(b: &Browser, axe: &str) -> Vec<Value> {
    b.exec(&format!("{axe}\n;return true;")).await;
    let found = b
        .exec(
            "return axe.run(document, {resultTypes: ['violations']}).then(r => \
             JSON.stringify({passes: r.passes.length, violations: \
             r.violations.filter(v => v.impact === 'serious' || \
             v.impact === 'critical').map(v => ({id: v.id, impact: v.impact, help: v.help, \
             nodes: v.nodes.map(n => n.target.join(' '))}))}));",
        )
        .await;
    let found: Value = serde_json::from_str(found.as_str().unwrap()).unwrap();
    assert!(
        found["passes"].as_u64().unwrap() > 0,
        "axe checked nothing: {found}"
    );
    found["violations"].as_array().unwrap().clone()
}

#[tokio::test]
async fn every_console_page_passes_axe_core() {
    let axe = axe_source();
    if !byollm_core::testing::require(
        "console accessibility test",
        "axe-core (npm install --prefix ~/.cache/byollm/axe-core axe-core@4)",
        axe.is_some(),
    ) {
        return;
    }
    let Some(b) = Browser::start("console accessibility test").await else {
        return;
    };
    let axe = axe.unwrap_or_default();
    let c = Console::start(Arc::new(SystemClock), false).await;
    let mut failures = Vec::new();
    let link = byollm_core::service::create_sign_in_link(
        c.h.core.store(),
        c.h.core.clock().as_ref(),
        &c.alpha.uid,
        &c.alpha.member.uid,
    )
    .await
    .unwrap();
    let link = format!(
        "/console/sign-in/link/{}",
        secrecy::ExposeSecret::expose_secret(&link.token)
    );
    b.goto(&c.url(&link)).await;
    failures.push((link, violations(&b, &axe).await));
    b.goto(&c.url("/console/sign-in")).await;
    failures.push(("/console/sign-in".to_owned(), violations(&b, &axe).await));
    b.fill("#api_key", &c.alpha.owner.key).await;
    b.click_and_wait("form[action='/console/sign-in'] button[type=submit]")
        .await;
    let agent = format!("/console/agents/{}", c.alpha.agent_uid);
    let run = format!("/console/runs/{}", c.alpha.member_run);
    for path in [
        "/console",
        "/console/ai-settings",
        "/console/aws-setup?account_id=123456789012&role_name=byollm&region=us-east-1&scope=team",
        "/console/agents",
        &agent,
        "/console/members",
        "/console/keys",
        "/console/runs",
        &run,
        "/console/usage",
        "/console/audit",
        "/console/no-such-page",
        "/console/sign-in/link/bsl_unknown",
    ] {
        b.goto(&c.url(path)).await;
        failures.push((path.to_owned(), violations(&b, &axe).await));
    }
    failures.retain(|(_, v)| !v.is_empty());
    assert!(failures.is_empty(), "{failures:#?}");
    b.quit().await;
}
