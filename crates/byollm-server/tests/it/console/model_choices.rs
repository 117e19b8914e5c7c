//! The per-model settings and the AWS setup's model choices: an admin edits
//! one model's Bedrock reference in AI settings (it persists, as the API
//! shows; a bad value or an unknown model is refused in the API's words,
//! beside that model's row), members read the table on the overview and get
//! no form; the AWS setup page's chosen models narrow the permissions policy
//! and the scripts to their inference profiles.

use std::sync::Arc;

use axum::http::Method;
use serde_json::{Value, json};

use byollm_api::clock::SystemClock;
use byollm_api::routes;

use super::browser::{shot, sign_in};
use super::webdriver::Browser;
use super::{Console, csrf_of};

const MODEL: &str = "claude-sonnet-4-6";
const GOOD_REF: &str = "us.anthropic.claude-sonnet-4-6";
/// The reference input of [`MODEL`]'s row.
const REF_INPUT: &str = "#models-claude-sonnet-4-6-aws_bedrock-model_ref";

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// The API's 400 message for a PATCH of the team's settings.
async fn api_refusal(c: &Console, patch: &Value) -> String {
    c.h.json(
        Method::PATCH,
        routes::TEAM_LLM_SETTINGS,
        Some(&c.alpha.owner.key),
        patch,
    )
    .await
    .expect(400)
    .str("/error/message")
}

/// The AI settings form's fields with one model row (`id`, its Bedrock
/// reference), the rest as a new team has them.
async fn form(c: &Console, cookie: &str, id: &str, model_ref: &str) -> String {
    let (status, page, _) = c.get("/console/ai-settings", Some(cookie)).await;
    assert_eq!(status, 200, "{page}");
    let version = page
        .split(r#"name="version" value=""#)
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap()
        .to_owned();
    let m = format!("models.{id}");
    format!(
        "csrf={csrf}&version={version}&opt_out=0&enforcement=enforce&direct_api_enabled=on\
         &token_audiences=sts.amazonaws.com&model_row={id}&{m}.aws_bedrock.enabled=on\
         &{m}.aws_bedrock.model_ref={model_ref}&{m}.gcp_vertex.enabled=on&{m}.direct_api.enabled=on",
        csrf = csrf_of(&page),
    )
}

#[tokio::test]
async fn the_model_table_saves_through_the_settings_and_refuses_in_the_apis_words() {
    let c = Console::start(Arc::new(SystemClock), false).await;
    let owner = c.sign_in(&c.alpha.owner.key).await;
    let (_, page, _) = c.get("/console/ai-settings", Some(&owner)).await;
    assert!(page.contains(r#"<table id="models-table">"#), "{page}");
    assert!(
        page.contains(r#"<tr id="model-claude-sonnet-4-6">"#),
        "{page}"
    );

    // One model's reference: saved, and only that model gets an entry.
    let body = form(&c, &owner, MODEL, GOOD_REF).await;
    let (status, page, _) = c
        .post("/console/ai-settings", &owner, Some(&c.base), &body)
        .await;
    assert_eq!(status, 303, "{page}");
    let api =
        c.h.get(routes::TEAM_LLM_SETTINGS, Some(&c.alpha.owner.key))
            .await
            .expect(200);
    assert_eq!(
        api.body["models"][MODEL]["aws_bedrock"]["model_ref"],
        GOOD_REF
    );
    assert_eq!(
        api.body["models"].as_object().unwrap().len(),
        1,
        "{}",
        api.body
    );
    let (_, page, _) = c.get("/console/ai-settings", Some(&owner)).await;
    assert!(page.contains(&format!(r#"value="{GOOD_REF}""#)), "{page}");
    assert!(page.contains(r#"name="model_stored" value="claude-sonnet-4-6""#));

    // A bad reference: the API's words beside the row, nothing saved.
    let message = api_refusal(
        &c,
        &json!({"models": {MODEL: {"aws_bedrock": {"model_ref": "has space"}}}}),
    )
    .await;
    assert!(
        message.contains("is not a Bedrock model reference"),
        "{message}"
    );
    let body = form(&c, &owner, MODEL, "has+space").await;
    let (status, page, _) = c
        .post("/console/ai-settings", &owner, Some(&c.base), &body)
        .await;
    assert_eq!(status, 400, "{page}");
    let row = page
        .split(r#"<tr id="model-claude-sonnet-4-6">"#)
        .nth(1)
        .and_then(|r| r.split("</tr>").next())
        .unwrap();
    assert!(
        row.contains(&format!(
            r#"<p class="field-error" id="models-claude-sonnet-4-6-aws_bedrock-model_ref-error" role="alert">{}</p>"#,
            esc(&message)
        )),
        "{row}"
    );
    let api =
        c.h.get(routes::TEAM_LLM_SETTINGS, Some(&c.alpha.owner.key))
            .await
            .expect(200);
    assert_eq!(
        api.body["models"][MODEL]["aws_bedrock"]["model_ref"],
        GOOD_REF
    );

    // An unknown model (a forged row): the API's words, above the form.
    let message = api_refusal(
        &c,
        &json!({"models": {"gpt-nothing": {
            "aws_bedrock": {"enabled": false, "model_ref": null},
            "gcp_vertex": {"enabled": true, "model_ref": null},
            "direct_api": {"enabled": true},
        }}}),
    )
    .await;
    // (A row as the defaults would be sends nothing: this one is off Bedrock.)
    let body = form(&c, &owner, "gpt-nothing", "")
        .await
        .replace("&models.gpt-nothing.aws_bedrock.enabled=on", "");
    let (status, page, _) = c
        .post("/console/ai-settings", &owner, Some(&c.base), &body)
        .await;
    assert_eq!(status, 400, "{page}");
    assert!(
        page.contains(&format!(
            r#"<p class="error" role="alert">{}</p>"#,
            esc(&message)
        )),
        "{message}: {page}"
    );

    // A member: the table read-only on the overview, no form anywhere.
    let member = c.sign_in(&c.alpha.member.key).await;
    let (_, page, _) = c.get("/console", Some(&member)).await;
    assert!(page.contains(r#"<table id="overview-models">"#), "{page}");
    assert!(page.contains(&format!("<code>{GOOD_REF}</code>")), "{page}");
    assert!(!page.contains(r#"name="models."#), "{page}");
    let (status, page, _) = c.get("/console/ai-settings", Some(&member)).await;
    assert_eq!(status, 403);
    assert!(!page.contains("models-table"), "{page}");
}

#[tokio::test]
async fn an_admin_changes_a_models_reference_in_the_browser() {
    let Some(b) = Browser::start("console model settings").await else {
        return;
    };
    let c = Console::start(Arc::new(SystemClock), false).await;
    sign_in(&b, &c, &c.alpha.owner.key).await;
    b.click_and_wait("a[href='/console/ai-settings']").await;
    b.fill(REF_INPUT, GOOD_REF).await;
    b.click_and_wait("form[action='/console/ai-settings'] button[type=submit]")
        .await;
    assert!(b.url().await.ends_with("/console"), "{}", b.source().await);
    let api =
        c.h.get(routes::TEAM_LLM_SETTINGS, Some(&c.alpha.owner.key))
            .await
            .expect(200);
    assert_eq!(
        api.body["models"][MODEL]["aws_bedrock"]["model_ref"],
        GOOD_REF
    );
    assert_eq!(
        api.body["models"].as_object().unwrap().len(),
        1,
        "{}",
        api.body
    );

    // A bad value: the API's message beside that row.
    let message = api_refusal(
        &c,
        &json!({"models": {MODEL: {"aws_bedrock": {"model_ref": "has space"}}}}),
    )
    .await;
    b.click_and_wait("a[href='/console/ai-settings']").await;
    b.fill(REF_INPUT, "has space").await;
    b.click_and_wait("form[action='/console/ai-settings'] button[type=submit]")
        .await;
    assert_eq!(
        b.text("#model-claude-sonnet-4-6 .field-error").await,
        message
    );
    b.exec("document.getElementById('model-claude-sonnet-4-6').scrollIntoView(); return true;")
        .await;
    shot(&b, "ai-settings-models").await;
    let api =
        c.h.get(routes::TEAM_LLM_SETTINGS, Some(&c.alpha.owner.key))
            .await
            .expect(200);
    assert_eq!(
        api.body["models"][MODEL]["aws_bedrock"]["model_ref"],
        GOOD_REF
    );

    // A member sees the table and no form.
    b.goto(&c.url("/console")).await;
    b.click_and_wait(".sign-out button[type=submit]").await;
    sign_in(&b, &c, &c.alpha.member.key).await;
    assert_eq!(b.count("#overview-models").await, 1);
    assert_eq!(b.count("input[name^='models.']").await, 0);
    b.goto(&c.url("/console/ai-settings")).await;
    assert_eq!(b.text("h1").await, "Not allowed");
    assert_eq!(b.count("#models-table").await, 0);
    b.quit().await;
}

/// The page's least-privilege documents for one chosen model: only its
/// profiles and foundation models; an unknown model is refused beside the
/// choices.
#[tokio::test]
async fn chosen_models_narrow_the_permissions_policy_and_the_scripts() {
    // AWS takes only an https issuer.
    let c = Console::start(Arc::new(SystemClock), true).await;
    let owner = c.sign_in(&c.alpha.admin.key).await;
    let query = "account_id=123456789012&role_name=byollm-bedrock&region=us-east-1&scope=team\
                 &agents=&model=claude-haiku-4-5";
    let (status, page, _) = c
        .get(&format!("/console/aws-setup?{query}"), Some(&owner))
        .await;
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains(
            r#"id="model-claude-haiku-4-5" name="model" value="claude-haiku-4-5" checked"#
        ),
        "{page}"
    );
    assert!(
        page.contains("&amp;model=claude%2Dhaiku%2D4%2D5&amp;format=bash"),
        "{page}"
    );
    let file = |format: &str| {
        c.http
            .get(c.url(&format!("/console/aws-setup/file?{query}&format={format}")))
            .header("cookie", format!("byollm_console={owner}"))
            .send()
    };
    let policy = file("permissions").await.unwrap().text().await.unwrap();
    let doc: Value = serde_json::from_str(&policy).unwrap();
    let resources: Vec<String> = doc["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| match &s["Resource"] {
            Value::Array(rs) => rs.clone(),
            one => vec![one.clone()],
        })
        .map(|r| r.as_str().unwrap().to_owned())
        .collect();
    assert!(!resources.is_empty(), "{policy}");
    for r in &resources {
        assert!(r.contains("anthropic.claude-haiku-4-5"), "{r} in {policy}");
        assert!(!r.contains('*'), "{r}: no wildcard");
    }
    assert!(
        resources
            .iter()
            .any(|r| r.contains(":inference-profile/global.anthropic.claude-haiku-4-5")),
        "{policy}"
    );
    assert!(
        resources.iter().any(|r| r.contains(":foundation-model/")),
        "{policy}"
    );
    let bash = file("bash").await.unwrap().text().await.unwrap();
    assert!(bash.contains("inference-profile/global.anthropic.claude-haiku-4-5"));
    assert!(!bash.contains("foundation-model/*"), "{bash}");
    assert!(!bash.contains("claude-sonnet"), "{bash}");

    // No model: the broad default, as before.
    let (_, page, _) = c
        .get(
            "/console/aws-setup?account_id=123456789012&region=us-east-1",
            Some(&owner),
        )
        .await;
    assert!(
        page.contains("arn:aws:bedrock:*::foundation-model/*"),
        "{page}"
    );

    // An unknown model: the catalog's words beside the choices.
    let (status, page, _) = c
        .get(
            "/console/aws-setup?account_id=123456789012&region=us-east-1&model=gpt-nothing",
            Some(&owner),
        )
        .await;
    assert_eq!(status, 400, "{page}");
    assert!(
        page.contains(r#"<p class="field-error" id="models-error" role="alert">gpt-nothing: unknown model (Bedrock models in the catalog: "#),
        "{page}"
    );
}
