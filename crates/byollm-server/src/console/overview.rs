//! The overview: who is signed in, the team (name and uid, with a copy
//! button) and its Bedrock status, read-only for every member.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;

use super::html::{self, esc};
use super::session::Session;
use super::{AI_SETTINGS, KEYS};
use crate::app::AppState;

/// `GET /console`.
pub async fn show(State(state): State<AppState>, s: Session) -> Response {
    let p = &s.principal;
    let me = match state.core.me(p).await {
        Ok(me) => me,
        Err(e) => return html::core_error(e, Some(&s)),
    };
    let settings = match state.core.llm_settings(p).await {
        Ok(v) => v.value,
        Err(e) => return html::core_error(e, Some(&s)),
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
{edit}
</section>
<p><a href="{KEYS}">Your API keys</a></p>"#,
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
