//! `GET, PUT, PATCH /api/v1/team/llm-settings`: `PUT` takes the complete
//! document, `PATCH` a JSON Merge Patch; every response carries the `ETag` a
//! write may send back in `If-Match`.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;

use byollm_api::routes::TEAM_LLM_SETTINGS;

use crate::app::AppState;
use crate::error::ApiError;
use byollm_api::types::LlmSettings;

use crate::extract::{ApiJson, ApiJsonDoc, Caller, IfMatchHeader, with_etag};

pub fn router() -> Router<AppState> {
    Router::new().route(
        TEAM_LLM_SETTINGS,
        get(get_settings).put(put_settings).patch(patch_settings),
    )
}

async fn get_settings(
    State(state): State<AppState>,
    Caller(p): Caller,
) -> Result<Response, ApiError> {
    Ok(with_etag(
        StatusCode::OK,
        state.core.llm_settings(&p).await?,
    ))
}

async fn put_settings(
    State(state): State<AppState>,
    Caller(p): Caller,
    IfMatchHeader(if_match): IfMatchHeader,
    ApiJsonDoc(settings, doc): ApiJsonDoc<LlmSettings>,
) -> Result<Response, ApiError> {
    Ok(with_etag(
        StatusCode::OK,
        state
            .core
            .put_llm_settings(&p, settings, &doc, if_match)
            .await?,
    ))
}

async fn patch_settings(
    State(state): State<AppState>,
    Caller(p): Caller,
    IfMatchHeader(if_match): IfMatchHeader,
    ApiJson(body): ApiJson<serde_json::Value>,
) -> Result<Response, ApiError> {
    Ok(with_etag(
        StatusCode::OK,
        state.core.patch_llm_settings(&p, body, if_match).await?,
    ))
}
