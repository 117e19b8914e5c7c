//! Runs: the list the API gives the caller (a member the runs they act as or
//! started, an admin the team's; paged with the API's cursors, optionally one
//! actor's) and a page per run (state, actor, who started it, model, prompt,
//! the Bedrock target it had, the routes its requests took and its credits,
//! times). Another team's run is the 404 page.

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;

use byollm_api::types::{Actor, RunInfo, RunListQuery, UsageQuery, UsageReport};

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

/// `GET /console/runs[?actor=…][&cursor=…]`.
pub async fn list(State(state): State<AppState>, s: Session, RawQuery(q): RawQuery) -> Response {
    let who = html::query_value(q.as_deref(), "actor");
    let query = RunListQuery {
        actor: who.clone(),
        cursor: html::query_value(q.as_deref(), "cursor"),
        ..RunListQuery::default()
    };
    let list = match state.core.list_runs(&s.principal, query).await {
        Ok(l) => l,
        Err(e) => return html::core_error(e, Some(&s)),
    };
    let body = format!(
        "{}{}",
        table(&list.runs),
        html::next_page(RUNS, &[("actor", who)], list.next_cursor.as_deref())
    );
    html::page(StatusCode::OK, "Runs", Some(&s), &body)
}

/// The runs as a table (the runs page, an agent's page).
pub fn table(runs: &[RunInfo]) -> String {
    let rows: String = runs
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
    if runs.is_empty() {
        "<p>No runs yet.</p>".to_owned()
    } else {
        format!(
            r#"<table><caption>Runs</caption><thead><tr><th scope="col">Run</th><th scope="col">State</th><th scope="col">Acts as</th><th scope="col">Started by</th><th scope="col">Created</th><th scope="col">Ended</th></tr></thead><tbody>{rows}</tbody></table>"#
        )
    }
}

fn detail(r: &RunInfo, usage: &UsageReport) -> String {
    let b = usage.buckets;
    let routes: String = usage
        .requests
        .iter()
        .map(|q| {
            format!(
                "<tr><td>{at}</td><td>{model}</td><td><code>{route}</code></td><td>{input}</td><td>{output}</td><td>{credits:.4}</td></tr>",
                at = esc(&q.created_at),
                model = esc(&q.model),
                route = esc(&q.route),
                input = q.input_tokens,
                output = q.output_tokens,
                credits = q.credits,
            )
        })
        .collect();
    let routes = if usage.requests.is_empty() {
        "<p>No requests.</p>".to_owned()
    } else {
        format!(
            r#"<table id="run-routes"><caption>Requests and the routes they took</caption><thead><tr><th scope="col">When</th><th scope="col">Model</th><th scope="col">Route</th><th scope="col">Input tokens</th><th scope="col">Output tokens</th><th scope="col">Credits</th></tr></thead><tbody>{routes}</tbody></table>"#
        )
    };
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
<dt>Credits</dt><dd id="run-credits">inference {inference:.4}, platform {platform:.4}, compute {compute:.4}</dd>
</dl>{routes}<p><a href="{RUNS}">All runs</a></p>"#,
        inference = b.inference,
        platform = b.platform,
        compute = b.compute,
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
    let run = match state.core.get_run(&s.principal, &id).await {
        Ok(r) => r,
        Err(e) => return html::core_error(e, Some(&s)),
    };
    let query = UsageQuery {
        run_id: Some(id),
        ..UsageQuery::default()
    };
    match state.core.usage(&s.principal, query).await {
        Ok(usage) => html::page(StatusCode::OK, "Run", Some(&s), &detail(&run, &usage)),
        Err(e) => html::core_error(e, Some(&s)),
    }
}
