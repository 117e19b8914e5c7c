//! API keys: created (shown once), listed a page at a time (never shown), revoked.

use axum::Json;
use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::routing::{delete, get};

use byollm_api::routes::{API_KEY, API_KEYS};
use byollm_api::types::{ApiKeyCreate, ApiKeyCreated, ApiKeyList};

use super::paging::page_query;
use crate::app::AppState;
use crate::error::ApiError;
use crate::extract::{ApiJson, Caller};

pub fn router() -> Router<AppState> {
    Router::new()
        .route(API_KEYS, get(list).post(create))
        .route(API_KEY, delete(remove))
}

async fn list(
    State(state): State<AppState>,
    Caller(p): Caller,
    RawQuery(q): RawQuery,
) -> Result<Json<ApiKeyList>, ApiError> {
    let page = page_query(q.as_deref())?;
    Ok(Json(state.core.list_api_keys(&p, page).await?))
}

async fn create(
    State(state): State<AppState>,
    Caller(p): Caller,
    ApiJson(body): ApiJson<ApiKeyCreate>,
) -> Result<(StatusCode, Json<ApiKeyCreated>), ApiError> {
    Ok((
        StatusCode::CREATED,
        Json(state.core.create_api_key(&p, body).await?),
    ))
}

async fn remove(
    State(state): State<AppState>,
    Caller(p): Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.core.delete_api_key(&p, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
