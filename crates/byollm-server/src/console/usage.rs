//! Usage: the caller's credits in the three buckets (a member sees their own,
//! an admin the team's, as the API decides) and a page of gateway requests
//! with their routes, as text tables.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;

use byollm_api::types::UsageQuery;

use super::html::{self, esc};
use super::session::Session;
use crate::app::AppState;

/// `GET /console/usage`.
pub async fn show(State(state): State<AppState>, s: Session) -> Response {
    let report = match state.core.usage(&s.principal, UsageQuery::default()).await {
        Ok(r) => r,
        Err(e) => return html::core_error(e, Some(&s)),
    };
    let b = report.buckets;
    let rows: String = report
        .requests
        .iter()
        .map(|r| {
            format!(
                "<tr><td>{at}</td><td><code>{who}</code></td><td>{model}</td><td>{route}</td>\
                 <td>{input}</td><td>{output}</td><td>{credits:.4}</td></tr>",
                at = esc(&r.created_at),
                who = esc(&r.principal),
                model = esc(&r.model),
                route = esc(&r.route),
                input = r.input_tokens,
                output = r.output_tokens,
                credits = r.credits,
            )
        })
        .collect();
    let requests = if report.requests.is_empty() {
        "<p>No requests yet.</p>".to_owned()
    } else {
        format!(
            r#"<table><caption>Requests</caption><thead><tr><th scope="col">When</th><th scope="col">Who</th><th scope="col">Model</th><th scope="col">Route</th><th scope="col">Input tokens</th><th scope="col">Output tokens</th><th scope="col">Credits</th></tr></thead><tbody>{rows}</tbody></table>"#
        )
    };
    let scope = if s.principal.is_admin() {
        "the team's"
    } else {
        "your"
    };
    let body = format!(
        r#"<table><caption>Credits ({scope})</caption><thead><tr><th scope="col">Bucket</th><th scope="col">Credits</th></tr></thead><tbody>
<tr><th scope="row">Inference (direct APIs; Bedrock is billed by AWS)</th><td id="credits-inference">{inference:.4}</td></tr>
<tr><th scope="row">Platform (per cloud run)</th><td id="credits-platform">{platform:.4}</td></tr>
<tr><th scope="row">Compute (per started minute of a cloud run)</th><td id="credits-compute">{compute:.4}</td></tr>
</tbody></table>{requests}"#,
        inference = b.inference,
        platform = b.platform,
        compute = b.compute,
    );
    html::page(StatusCode::OK, "Usage", Some(&s), &body)
}
