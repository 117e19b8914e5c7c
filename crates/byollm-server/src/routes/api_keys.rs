//! API keys: created (shown once), listed (never shown), revoked.

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get};

use byollm_api::routes::{API_KEY, API_KEYS};
use byollm_api::types::{ApiKeyCreate, ApiKeyCreated, ApiKeyList};

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
) -> Result<Json<ApiKeyList>, ApiError> {
    Ok(Json(ApiKeyList {
        api_keys: state.core.list_api_keys(&p).await?,
    }))
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
