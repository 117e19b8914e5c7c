//! `GET, PUT /api/v1/team/llm-settings`.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::routing::get;

use byollm_api::routes::TEAM_LLM_SETTINGS;
use byollm_api::types::LlmSettings;

use crate::app::AppState;
use crate::error::ApiError;
use crate::extract::{ApiJson, Caller};

pub fn router() -> Router<AppState> {
    Router::new().route(TEAM_LLM_SETTINGS, get(get_settings).put(put_settings))
}

async fn get_settings(
    State(state): State<AppState>,
    Caller(p): Caller,
) -> Result<Json<LlmSettings>, ApiError> {
    Ok(Json(state.core.llm_settings(&p).await?))
}

async fn put_settings(
    State(state): State<AppState>,
    Caller(p): Caller,
    ApiJson(body): ApiJson<LlmSettings>,
) -> Result<Json<LlmSettings>, ApiError> {
    Ok(Json(state.core.put_llm_settings(&p, body).await?))
}
