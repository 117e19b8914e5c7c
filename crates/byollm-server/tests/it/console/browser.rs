//! The console in a real browser (headless Chromium over WebDriver): an admin
//! signs in with an API key, turns Bedrock on with a role ARN, creates an
//! agent with its own role, adds a member, creates and revokes a key, signs out; a member
//! cannot open AI settings; a form without the CSRF token is refused; no key is
//! ever in the browser's cookies or storage.

use std::sync::Arc;

use serde_json::Value;

use byollm_api::clock::SystemClock;
use byollm_api::routes;

use super::Console;
use super::webdriver::Browser;

const TEAM_ROLE: &str = "arn:aws:iam::123456789012:role/byollm-bedrock";
const AGENT_ROLE: &str = "arn:aws:iam::123456789012:role/reviewer-agent";

/// Fails when `secret` is in any cookie (name or value) or in
/// `document.cookie`, `localStorage` or `sessionStorage`.
pub(super) async fn assert_not_stored(b: &Browser, secret: &str) {
    let cookies = b.cookies().await;
    assert!(
        !cookies.to_string().contains(secret),
        "in a cookie: {cookies}"
    );
    let storage = b
        .exec(
            "return JSON.stringify([document.cookie, Object.assign({}, localStorage), \
             Object.assign({}, sessionStorage)]);",
        )
        .await;
    let storage = storage.as_str().unwrap();
    assert!(!storage.contains(secret), "in page storage: {storage}");
    // The session cookie itself is HttpOnly: scripts cannot read it.
    assert!(!storage.contains("byollm_console"), "{storage}");
}

/// Saves a screenshot of the page as `docs/console/NAME.png` when
/// `BYOLLM_CONSOLE_SCREENSHOTS=1` (the command in docs/console.md); otherwise
/// takes it anyway, so the command cannot rot.
pub(super) async fn shot(b: &Browser, name: &str) {
    let png = b.screenshot().await;
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    #[expect(
        clippy::disallowed_methods,
        reason = "a test switch, not configuration: whether to refresh the committed screenshots"
    )]
    let save = std::env::var("BYOLLM_CONSOLE_SCREENSHOTS").is_ok_and(|v| v == "1");
    if save {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/console");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }
}

pub(super) async fn sign_in(b: &Browser, c: &Console, key: &str) {
    b.goto(&c.url("/console")).await;
    assert!(
        b.url().await.ends_with("/console/sign-in"),
        "sent to sign in"
    );
    assert_eq!(b.text("label[for=api_key]").await, "API key");
    shot(b, "sign-in").await;
    b.fill("#api_key", key).await;
    b.click_and_wait("form[action='/console/sign-in'] button[type=submit]")
        .await;
    assert!(b.url().await.ends_with("/console"), "{}", b.source().await);
}

#[tokio::test]
async fn an_admin_sets_up_bedrock_an_agent_and_keys_in_the_browser() {
    let Some(b) = Browser::start("console browser test").await else {
        return;
    };
    let c = Console::start(Arc::new(SystemClock), false).await;
    let owner = c.alpha.owner.key.clone();

    sign_in(&b, &c, &owner).await;
    assert_eq!(b.text("#team-uid").await, c.alpha.uid);
    assert_eq!(b.text("#bedrock-status").await, "off");
    let cookies = b.cookies().await;
    let session = cookies
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "byollm_console")
        .unwrap_or_else(|| panic!("no session cookie: {cookies}"));
    assert_eq!(session["httpOnly"], true);
    assert_eq!(session["sameSite"], "Strict");
    assert_not_stored(&b, &owner).await;

    // AI settings: an invalid ARN is refused next to its field, then Bedrock on.
    b.click_and_wait("a[href='/console/ai-settings']").await;
    if !b.selected("#aws_bedrock_enabled").await {
        b.click("#aws_bedrock_enabled").await;
    }
    b.fill("#role_arn", "not-a-role").await;
    b.fill("#region", "us-east-1").await;
    b.click_and_wait("form[action='/console/ai-settings'] button[type=submit]")
        .await;
    let error = b.text("#hosts-aws_bedrock-role_arn-error").await;
    assert!(
        error.starts_with("hosts.aws_bedrock.role_arn: `not-a-role` is not an IAM role ARN"),
        "{error}"
    );
    shot(&b, "ai-settings").await;
    b.fill("#role_arn", TEAM_ROLE).await;
    b.click_and_wait("form[action='/console/ai-settings'] button[type=submit]")
        .await;
    assert!(b.url().await.ends_with("/console"), "{}", b.source().await);
    assert_eq!(b.text("#bedrock-status").await, "on");
    assert_eq!(b.text("#bedrock-role").await, TEAM_ROLE);
    shot(&b, "overview").await;
    let api =
        c.h.get(routes::TEAM_LLM_SETTINGS, Some(&owner))
            .await
            .expect(200);
    assert_eq!(api.body["hosts"]["aws_bedrock"]["enabled"], true);
    assert_eq!(api.body["hosts"]["aws_bedrock"]["role_arn"], TEAM_ROLE);
    assert_eq!(api.body["hosts"]["aws_bedrock"]["region"], "us-east-1");

    // An agent with its own role: its page's URL carries its uid.
    b.click_and_wait("a[href='/console/agents']").await;
    b.fill("#name", "reviewer").await;
    b.fill("#role_arn", AGENT_ROLE).await;
    b.click_and_wait("form[action='/console/agents'] button[type=submit]")
        .await;
    let url = b.url().await;
    let uid = url
        .rsplit_once("/console/agents/")
        .map(|(_, uid)| uid.to_owned())
        .unwrap_or_else(|| panic!("not an agent page: {url}"));
    assert_eq!(b.text("#agent-uid").await, uid);
    assert!(b.text("#agent-aws").await.contains(AGENT_ROLE));
    let agent =
        c.h.get(&routes::fill(routes::AGENT_IDENTITY, &uid), Some(&owner))
            .await
            .expect(200);
    assert_eq!(agent.body["name"], "reviewer");
    assert_eq!(
        agent.body["inference_providers"]["aws"]["role_arn"],
        AGENT_ROLE
    );
    // Its override edited from its page.
    b.fill("#region", "eu-west-1").await;
    b.click_and_wait(&format!(
        "form[action='/console/agents/{uid}'] button[type=submit]"
    ))
    .await;
    assert!(b.text("#agent-aws").await.contains("eu-west-1"));
    shot(&b, "agent").await;

    // A member added: their one-time invitation code is shown once.
    b.click_and_wait("a[href='/console/members']").await;
    b.fill("#email", "new@alpha.test").await;
    b.click_and_wait("form[action='/console/members'] button[type=submit]")
        .await;
    let code = b.text("#invitation-code").await;
    assert!(code.starts_with("byollm_inv_"), "{code}");
    assert_not_stored(&b, &code).await;

    // A key: shown once, works on the API, then revoked.
    b.click_and_wait("a[href='/console/keys']").await;
    b.fill("#key-name", "laptop").await;
    b.click_and_wait("form[action='/console/keys'] button[type=submit]")
        .await;
    let key = b.text("#new-key").await;
    assert!(key.starts_with("byollm_key_"), "{key}");
    c.h.get(routes::ME, Some(&key)).await.expect(200);
    assert_not_stored(&b, &key).await;
    assert_not_stored(&b, &owner).await;
    b.click_and_wait("button[aria-label='Revoke key laptop']")
        .await;
    assert!(b.url().await.ends_with("/console/keys"));
    assert_eq!(b.count("#new-key").await, 0, "shown once only");
    assert_eq!(b.count("button[aria-label='Revoke key laptop']").await, 0);
    c.h.get(routes::ME, Some(&key)).await.expect(401);
    shot(&b, "api-keys").await;

    // A form without the CSRF token (built by a script in the page) is refused.
    let refused = b
        .exec(
            "const f = document.createElement('form'); f.method = 'post'; \
             f.action = '/console/keys'; const i = document.createElement('input'); \
             i.name = 'name'; i.value = 'sneaky'; f.appendChild(i); \
             document.body.appendChild(f); f.submit(); return true;",
        )
        .await;
    assert_eq!(refused, Value::Bool(true));
    // Wait for the navigation the script started.
    for _ in 0..50 {
        if b.count("h1").await == 1 && b.text("h1").await == "Refused" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(b.text("h1").await, "Refused", "{}", b.source().await);
    let keys = c.h.get(routes::API_KEYS, Some(&owner)).await.expect(200);
    assert!(!keys.body.to_string().contains("sneaky"), "{}", keys.body);

    // Sign out: the session is over in this browser.
    b.goto(&c.url("/console")).await;
    b.click_and_wait(".sign-out button[type=submit]").await;
    assert!(b.url().await.ends_with("/console/sign-in"));
    b.goto(&c.url("/console/keys")).await;
    assert!(b.url().await.ends_with("/console/sign-in"));
    assert_not_stored(&b, &owner).await;

    // A member who is not an admin: no AI settings link, and a 403 page.
    sign_in(&b, &c, &c.alpha.member.key).await;
    assert_eq!(b.count("a[href='/console/ai-settings']").await, 0);
    b.goto(&c.url("/console/ai-settings")).await;
    assert_eq!(b.text("h1").await, "Not allowed");
    shot(&b, "member-refused").await;
    assert_eq!(b.count("#role_arn").await, 0, "no settings form");
    assert_not_stored(&b, &c.alpha.member.key).await;
    b.quit().await;
}
