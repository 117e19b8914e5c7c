//! Runs: the list the API gives the caller (a member the runs they act as or
//! started, an admin the team's) and a page per run (state, actor, who started
//! it, model, prompt, the Bedrock target it had, times). Another team's run is
//! the 404 page.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;

use byollm_api::types::{Actor, RunInfo, RunListQuery};

use super::html::{self, esc};
use super::session::Session;
use super::{RUN, RUNS};
use crate::app::AppState;

fn actor(a: &Actor) -> String {
    format!("<code>{}:{}</code>", a.actor_type.as_str(), esc(&a.uid))
}

fn run_path(id: &str) -> String {
    RUN.replace("{id}", id)
}

/// `GET /console/runs`.
pub async fn list(State(state): State<AppState>, s: Session) -> Response {
    let list = match state
        .core
        .list_runs(&s.principal, RunListQuery::default())
        .await
    {
        Ok(l) => l,
        Err(e) => return html::core_error(e, Some(&s)),
    };
    let rows: String = list
        .runs
        .iter()
        .map(|r| {
            format!(
                r#"<tr><td><a href="{href}"><code>{id}</code></a></td><td>{state}</td><td>{actor}</td><td>{by}</td><td>{created}</td><td>{finished}</td></tr>"#,
                href = esc(&run_path(&r.run_id)),
                id = esc(&r.run_id),
                state = r.state.as_str(),
                actor = actor(&r.actor),
                by = actor(&r.triggered_by),
                created = esc(&r.created_at),
                finished = esc(r.finished_at.as_deref().unwrap_or("—")),
            )
        })
        .collect();
    let body = if list.runs.is_empty() {
        "<p>No runs yet.</p>".to_owned()
    } else {
        format!(
            r#"<table><caption>Runs</caption><thead><tr><th scope="col">Run</th><th scope="col">State</th><th scope="col">Acts as</th><th scope="col">Started by</th><th scope="col">Created</th><th scope="col">Ended</th></tr></thead><tbody>{rows}</tbody></table>"#
        )
    };
    html::page(StatusCode::OK, "Runs", Some(&s), &body)
}

fn detail(r: &RunInfo) -> String {
    let bedrock = r.bedrock.as_ref().map_or_else(
        || "none".to_owned(),
        |b| format!("<code>{}</code> in {}", esc(&b.role_arn), esc(&b.region)),
    );
    format!(
        r#"<dl>
<dt>Run</dt><dd><code id="run-id">{id}</code></dd>
<dt>State</dt><dd id="run-state">{state}</dd>
<dt>Acts as</dt><dd>{actor}</dd>
<dt>Started by</dt><dd>{by}</dd>
<dt>Model</dt><dd>{model}</dd>
<dt>Prompt</dt><dd>{prompt}</dd>
<dt>Bedrock</dt><dd>{bedrock}</dd>
<dt>Created</dt><dd>{created}</dd>
<dt>Ended</dt><dd>{finished}</dd>
</dl><p><a href="{RUNS}">All runs</a></p>"#,
        id = esc(&r.run_id),
        state = r.state.as_str(),
        actor = actor(&r.actor),
        by = actor(&r.triggered_by),
        model = esc(r.model.as_deref().unwrap_or("—")),
        prompt = esc(r.prompt.as_deref().unwrap_or("—")),
        created = esc(&r.created_at),
        finished = esc(r.finished_at.as_deref().unwrap_or("—")),
    )
}

/// `GET /console/runs/{id}`.
pub async fn show(State(state): State<AppState>, s: Session, Path(id): Path<String>) -> Response {
    match state.core.get_run(&s.principal, &id).await {
        Ok(r) => html::page(StatusCode::OK, "Run", Some(&s), &detail(&r)),
        Err(e) => html::core_error(e, Some(&s)),
    }
}
