//! `GET /api/v1/audit`: a page of the team's admin audit trail (filters
//! `action`, `actor`, `target`, `since`, `until`; `limit`, `cursor`; the domain
//! checks their values).

use axum::Json;
use axum::Router;
use axum::extract::{RawQuery, State};
use axum::routing::get;

use byollm_api::routes::AUDIT;
use byollm_api::types::{AuditPage, AuditQuery};

use crate::app::AppState;
use crate::error::ApiError;
use crate::extract::Caller;

pub fn router() -> Router<AppState> {
    Router::new().route(AUDIT, get(audit))
}

async fn audit(
    State(state): State<AppState>,
    Caller(p): Caller,
    RawQuery(q): RawQuery,
) -> Result<Json<AuditPage>, ApiError> {
    let mut query = AuditQuery::default();
    for pair in q
        .as_deref()
        .unwrap_or("")
        .split('&')
        .filter(|s| !s.is_empty())
    {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let v = percent_decode(v)?;
        let v = (!v.is_empty()).then_some(v);
        match k {
            "action" => query.action = v,
            "actor" => query.actor = v,
            "target" => query.target = v,
            "since" => query.since = v,
            "until" => query.until = v,
            "cursor" => query.cursor = v,
            "limit" => {
                let limit = v.as_deref().unwrap_or("").parse::<u32>().map_err(|_| {
                    ApiError::invalid("limit", "expected a whole number of events per page")
                })?;
                query.limit = Some(limit);
            }
            other => {
                return Err(ApiError::invalid(
                    other,
                    "unknown query parameter; expected action, actor, target, since, until, limit or cursor",
                ));
            }
        }
    }
    Ok(Json(state.core.audit_events(&p, query).await?))
}

/// A query value with `%XX` escapes (and `+` for space) decoded.
fn percent_decode(v: &str) -> Result<String, ApiError> {
    let plus = v.replace('+', " ");
    percent_encoding::percent_decode_str(&plus)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| ApiError::invalid("query", "not UTF-8 after percent-decoding"))
}
