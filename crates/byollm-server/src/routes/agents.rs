//! Named agents (`/api/v1/agent/identities`), PATCH as a JSON Merge Patch.

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;

use byollm_api::routes::{AGENT_IDENTITIES, AGENT_IDENTITY};
use byollm_api::types::{Agent, AgentCreate, AgentList};

use crate::app::AppState;
use crate::error::ApiError;
use crate::extract::{ApiJson, Caller};

pub fn router() -> Router<AppState> {
    Router::new()
        .route(AGENT_IDENTITIES, get(list).post(create))
        .route(AGENT_IDENTITY, get(one).patch(patch).delete(remove))
}

async fn list(
    State(state): State<AppState>,
    Caller(p): Caller,
) -> Result<Json<AgentList>, ApiError> {
    Ok(Json(AgentList {
        agents: state.core.list_agents(&p).await?,
    }))
}

async fn create(
    State(state): State<AppState>,
    Caller(p): Caller,
    ApiJson(body): ApiJson<AgentCreate>,
) -> Result<(StatusCode, Json<Agent>), ApiError> {
    Ok((
        StatusCode::CREATED,
        Json(state.core.create_agent(&p, body).await?),
    ))
}

async fn one(
    State(state): State<AppState>,
    Caller(p): Caller,
    Path(uid): Path<String>,
) -> Result<Json<Agent>, ApiError> {
    Ok(Json(state.core.get_agent(&p, &uid).await?))
}

async fn patch(
    State(state): State<AppState>,
    Caller(p): Caller,
    Path(uid): Path<String>,
    ApiJson(body): ApiJson<serde_json::Value>,
) -> Result<Json<Agent>, ApiError> {
    Ok(Json(state.core.patch_agent(&p, &uid, body).await?))
}

async fn remove(
    State(state): State<AppState>,
    Caller(p): Caller,
    Path(uid): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.core.delete_agent(&p, &uid).await?;
    Ok(StatusCode::NO_CONTENT)
}
