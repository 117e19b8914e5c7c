//! Named agents (`/api/v1/agent/identities`): a paged list, PATCH as a JSON
//! Merge Patch; an agent's responses carry its `ETag`, and a PATCH or DELETE may
//! send `If-Match`.

use axum::Json;
use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;

use byollm_api::routes::{AGENT_IDENTITIES, AGENT_IDENTITY};
use byollm_api::types::{AgentCreate, AgentList, AgentListQuery};
use byollm_core::versioned::Versioned;

use crate::app::AppState;
use crate::error::ApiError;
use crate::extract::{ApiJson, Caller, IfMatchHeader, query_pairs, with_etag};

pub fn router() -> Router<AppState> {
    Router::new()
        .route(AGENT_IDENTITIES, get(list).post(create))
        .route(AGENT_IDENTITY, get(one).patch(patch).delete(remove))
}

fn on_off(key: &str, v: &str) -> Result<bool, ApiError> {
    match v {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(ApiError::invalid(key, "expected true or false")),
    }
}

async fn list(
    State(state): State<AppState>,
    Caller(p): Caller,
    RawQuery(q): RawQuery,
) -> Result<Json<AgentList>, ApiError> {
    let mut query = AgentListQuery::default();
    for (k, v) in query_pairs(q.as_deref())? {
        let value = (!v.is_empty()).then(|| v.clone());
        match k.as_str() {
            "cursor" => query.cursor = value,
            "name_prefix" => query.name_prefix = value,
            "available" => query.available = Some(on_off(&k, &v)?),
            "limit" => {
                query.limit = Some(v.parse::<u32>().map_err(|_| {
                    ApiError::invalid("limit", "expected a whole number of agents per page")
                })?);
            }
            _ => {
                return Err(ApiError::invalid(
                    k,
                    "unknown query parameter; expected limit, cursor, name_prefix or available",
                ));
            }
        }
    }
    Ok(Json(state.core.list_agents(&p, query).await?))
}

async fn create(
    State(state): State<AppState>,
    Caller(p): Caller,
    ApiJson(body): ApiJson<AgentCreate>,
) -> Result<Response, ApiError> {
    let agent = state.core.create_agent(&p, body).await?;
    // A new agent is at version 0.
    Ok(with_etag(
        StatusCode::CREATED,
        Versioned {
            value: agent,
            version: 0,
        },
    ))
}

async fn one(
    State(state): State<AppState>,
    Caller(p): Caller,
    Path(uid): Path<String>,
) -> Result<Response, ApiError> {
    Ok(with_etag(
        StatusCode::OK,
        state.core.get_agent(&p, &uid).await?,
    ))
}

async fn patch(
    State(state): State<AppState>,
    Caller(p): Caller,
    Path(uid): Path<String>,
    IfMatchHeader(if_match): IfMatchHeader,
    ApiJson(body): ApiJson<serde_json::Value>,
) -> Result<Response, ApiError> {
    Ok(with_etag(
        StatusCode::OK,
        state.core.patch_agent(&p, &uid, body, if_match).await?,
    ))
}

async fn remove(
    State(state): State<AppState>,
    Caller(p): Caller,
    Path(uid): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.core.delete_agent(&p, &uid).await?;
    Ok(StatusCode::NO_CONTENT)
}
