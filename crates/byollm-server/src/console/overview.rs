//! The overview: who is signed in, the team (name and uid, with a copy
//! button), its Bedrock status and per-model table, read-only for every
//! member; and the
//! member's own settings (`aws_bedrock_opt_in`), which they change here
//! through the API's member-settings operation.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::LOCATION;
use axum::response::{IntoResponse, Response};

use byollm_api::types::MemberSettings;

use super::html::{self, esc};
use super::session::{Session, form_pairs};
use super::{AI_SETTINGS, KEYS, MY_SETTINGS, OVERVIEW};
use crate::app::AppState;

/// `GET /console`.
pub async fn show(State(state): State<AppState>, s: Session) -> Response {
    let p = &s.principal;
    let me = match state.core.me(p).await {
        Ok(me) => me,
        Err(e) => return html::core_error(e, Some(&s)),
    };
    let mine = match state.core.member_settings(p).await {
        Ok(v) => v.value,
        Err(e) => return html::core_error(e, Some(&s)),
    };
    let settings = match state.core.llm_settings(p).await {
        Ok(v) => v.value,
        Err(e) => return html::core_error(e, Some(&s)),
    };
    let credits = match super::usage::overview_section(&state, &s).await {
        Ok(c) => c,
        Err(resp) => return resp,
    };
    let bedrock = &settings.hosts.aws_bedrock;
    let or_unset = |v: &Option<String>| {
        v.as_deref().map_or_else(
            || "not set".to_owned(),
            |v| format!("<code>{}</code>", esc(v)),
        )
    };
    let role = me.role.map_or("member", |r| r.as_str());
    let edit = if p.is_admin() {
        format!(r#"<p><a href="{AI_SETTINGS}">Change the AI settings</a></p>"#)
    } else {
        r#"<p class="hint">Only the team's admins change these settings.</p>"#.to_owned()
    };
    let body = format!(
        r#"<section aria-labelledby="team-h">
<h2 id="team-h">Team</h2>
<dl>
<dt>Name</dt><dd id="team-name">{name}</dd>
<dt>Team uid</dt><dd><code id="team-uid">{uid}</code> <button type="button" class="secondary" data-copy="team-uid">Copy</button></dd>
<dt>Signed in as</dt><dd><code>{actor}</code> ({role})</dd>
</dl>
</section>
<section aria-labelledby="bedrock-h">
<h2 id="bedrock-h">Amazon Bedrock</h2>
<dl>
<dt>Bedrock host</dt><dd id="bedrock-status">{on}</dd>
<dt>Role ARN</dt><dd id="bedrock-role">{role_arn}</dd>
<dt>Region</dt><dd id="bedrock-region">{region}</dd>
<dt>Direct API fallback</dt><dd id="bedrock-fallback">{fallback}</dd>
</dl>
{models}
{edit}
</section>
<section aria-labelledby="mine-h">
<h2 id="mine-h">Your settings</h2>
<form method="post" action="{MY_SETTINGS}">{csrf}
<p><input type="checkbox" id="aws_bedrock_opt_in" name="aws_bedrock_opt_in"{opt_in}><label class="inline" for="aws_bedrock_opt_in">Use the team's Amazon Bedrock for my requests (when the team lets each member choose)</label></p>
<button type="submit" class="secondary">Save my settings</button></form>
</section>
{credits}
<p><a href="{KEYS}">Your API keys</a></p>"#,
        csrf = html::csrf_input(&s),
        models = super::models::read_only_table(&settings),
        opt_in = if mine.aws_bedrock_opt_in {
            " checked"
        } else {
            ""
        },
        name = esc(&me.team.name),
        uid = esc(&me.team.uid),
        actor = esc(&me.actor.uid),
        role = esc(role),
        on = if bedrock.enabled { "on" } else { "off" },
        role_arn = or_unset(&bedrock.role_arn),
        region = or_unset(&bedrock.region),
        fallback = if settings.allow_fallback_outside_cloud {
            "allowed"
        } else {
            "not allowed (requests never leave your cloud)"
        },
    );
    html::page(StatusCode::OK, "Overview", Some(&s), &body)
}

/// `POST /console/my-settings`: the member's own `aws_bedrock_opt_in`.
pub async fn save_my_settings(State(state): State<AppState>, s: Session, body: Bytes) -> Response {
    let pairs = match form_pairs(&body) {
        Ok(p) => p,
        Err(bad) => return bad.into_response(),
    };
    let opt_in = pairs
        .iter()
        .any(|(k, v)| k == "aws_bedrock_opt_in" && v == "on");
    let settings = MemberSettings {
        aws_bedrock_opt_in: opt_in,
    };
    match state
        .core
        .put_member_settings(&s.principal, settings, None)
        .await
    {
        Ok(_) => (StatusCode::SEE_OTHER, [(LOCATION, OVERVIEW)]).into_response(),
        Err(e) => html::core_error(e, Some(&s)),
    }
}
