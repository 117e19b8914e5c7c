//! `GET /api/v1/usage`: credit buckets and a page of requests (`limit`,
//! `cursor`; the domain checks their values).

use axum::Json;
use axum::Router;
use axum::extract::{RawQuery, State};
use axum::routing::get;

use byollm_api::routes::USAGE;
use byollm_api::types::{UsageQuery, UsageReport};

use crate::app::AppState;
use crate::error::ApiError;
use crate::extract::{Caller, query_pairs};

pub fn router() -> Router<AppState> {
    Router::new().route(USAGE, get(usage))
}

async fn usage(
    State(state): State<AppState>,
    Caller(p): Caller,
    RawQuery(q): RawQuery,
) -> Result<Json<UsageReport>, ApiError> {
    let mut query = UsageQuery::default();
    for (k, v) in query_pairs(q.as_deref())? {
        let v = (!v.is_empty()).then_some(v);
        match k.as_str() {
            "run_id" => query.run_id = v,
            "agent_uid" => query.agent_uid = v,
            "member_uid" => query.member_uid = v,
            "cursor" => query.cursor = v,
            "limit" => {
                let limit = v.as_deref().unwrap_or("").parse::<u32>().map_err(|_| {
                    ApiError::invalid("limit", "expected a whole number of requests per page")
                })?;
                query.limit = Some(limit);
            }
            _ => {
                return Err(ApiError::invalid(
                    k,
                    "unknown query parameter; expected run_id, agent_uid, member_uid, limit or cursor",
                ));
            }
        }
    }
    Ok(Json(state.core.usage(&p, query).await?))
}
