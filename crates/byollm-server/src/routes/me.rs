//! `GET /api/v1/me` and the member's own settings.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::routing::get;

use byollm_api::routes::{ME, ME_SETTINGS};
use byollm_api::types::{Me, MemberSettings};

use crate::app::AppState;
use crate::error::ApiError;
use crate::extract::{ApiJson, Caller};

pub fn router() -> Router<AppState> {
    Router::new()
        .route(ME, get(me))
        .route(ME_SETTINGS, get(get_settings).put(put_settings))
}

async fn me(State(state): State<AppState>, Caller(p): Caller) -> Result<Json<Me>, ApiError> {
    Ok(Json(state.core.me(&p).await?))
}

async fn get_settings(
    State(state): State<AppState>,
    Caller(p): Caller,
) -> Result<Json<MemberSettings>, ApiError> {
    Ok(Json(state.core.member_settings(&p).await?))
}

async fn put_settings(
    State(state): State<AppState>,
    Caller(p): Caller,
    ApiJson(body): ApiJson<MemberSettings>,
) -> Result<Json<MemberSettings>, ApiError> {
    Ok(Json(state.core.put_member_settings(&p, body).await?))
}
