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
use crate::extract::{Caller, query_pairs};

pub fn router() -> Router<AppState> {
    Router::new().route(AUDIT, get(audit))
}

async fn audit(
    State(state): State<AppState>,
    Caller(p): Caller,
    RawQuery(q): RawQuery,
) -> Result<Json<AuditPage>, ApiError> {
    let mut query = AuditQuery::default();
    for (k, v) in query_pairs(q.as_deref())? {
        let v = (!v.is_empty()).then_some(v);
        match k.as_str() {
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
            _ => {
                return Err(ApiError::invalid(
                    k,
                    "unknown query parameter; expected action, actor, target, since, until, limit or cursor",
                ));
            }
        }
    }
    Ok(Json(state.core.audit_events(&p, query).await?))
}
