//! The audit trail (admins): the team's administrative changes, oldest first,
//! filtered by action, actor, target and time exactly as `GET /api/v1/audit`
//! filters them (a GET form: nothing changes, so no CSRF token). A member who
//! is not an admin gets the 403 page; a bad filter the API's words.

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use byollm_api::types::AuditQuery;
use byollm_core::CoreError;

use super::AUDIT;
use super::html::{self, esc, form_errors};
use super::session::{BadForm, Session};
use crate::app::AppState;

const FILTERS: [(&str, &str); 5] = [
    ("action", "Action (e.g. settings.update)"),
    ("actor", "Actor uid"),
    ("target", "Target (e.g. member:UID)"),
    ("since", "Since (RFC 3339)"),
    ("until", "Until (RFC 3339)"),
];

/// `GET /console/audit`.
pub async fn show(State(state): State<AppState>, s: Session, RawQuery(q): RawQuery) -> Response {
    let Ok(pairs) = crate::extract::query_pairs(q.as_deref()) else {
        return BadForm.into_response();
    };
    let get = |k: &str| {
        pairs
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    let query = AuditQuery {
        action: get("action"),
        actor: get("actor"),
        target: get("target"),
        since: get("since"),
        until: get("until"),
        limit: None,
        cursor: get("cursor"),
    };
    let (events, next, errors, status) = match state.core.audit_events(&s.principal, query).await {
        Ok(page) => (page.events, page.next_cursor, Vec::new(), StatusCode::OK),
        Err(CoreError::Invalid(f)) => {
            let message = format!("{}: {}", f.field, f.message);
            (
                Vec::new(),
                None,
                vec![(f.field, message)],
                StatusCode::BAD_REQUEST,
            )
        }
        Err(e) => return html::core_error(e, Some(&s)),
    };
    let inputs: String = FILTERS
        .iter()
        .map(|(name, label)| {
            format!(
                r#"<label for="f-{name}">{label}</label><input type="text" id="f-{name}" name="{name}" value="{value}">{err}"#,
                value = esc(get(name).as_deref().unwrap_or("")),
                err = html::field_error(&errors, name),
            )
        })
        .collect();
    let rows: String = events
        .iter()
        .map(|e| {
            format!(
                "<tr><td>{at}</td><td><code>{who}</code></td><td>{action}</td><td><code>{target}</code></td><td><code>{changes}</code></td></tr>",
                at = esc(&e.at),
                who = esc(&format!("{}:{}", e.actor_type, e.actor_uid)),
                action = esc(&e.action),
                target = esc(&e.target),
                changes = esc(&e.changes.to_string()),
            )
        })
        .collect();
    let body = format!(
        r#"{general}<form method="get" action="{AUDIT}">{inputs}<button type="submit">Filter</button></form>
<table><caption>Audit events (oldest first)</caption><thead><tr><th scope="col">When</th><th scope="col">Who</th><th scope="col">Action</th><th scope="col">Target</th><th scope="col">Changes</th></tr></thead><tbody>{rows}</tbody></table>{more}"#,
        general = form_errors(&errors, &["action", "actor", "target", "since", "until"]),
        more = html::next_page(
            AUDIT,
            &FILTERS
                .iter()
                .map(|(k, _)| (*k, get(k)))
                .collect::<Vec<_>>(),
            next.as_deref(),
        ),
    );
    html::page(status, "Audit", Some(&s), &body)
}
