//! `GET /api/v1/me` and the member's own settings (with their `ETag`; a `PUT`
//! may send `If-Match`).

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;

use byollm_api::routes::{ME, ME_SETTINGS};
use byollm_api::types::{Me, MemberSettings};

use crate::app::AppState;
use crate::error::ApiError;
use crate::extract::{ApiJson, Caller, IfMatchHeader, with_etag};

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
) -> Result<Response, ApiError> {
    Ok(with_etag(
        StatusCode::OK,
        state.core.member_settings(&p).await?,
    ))
}

async fn put_settings(
    State(state): State<AppState>,
    Caller(p): Caller,
    IfMatchHeader(if_match): IfMatchHeader,
    ApiJson(body): ApiJson<MemberSettings>,
) -> Result<Response, ApiError> {
    Ok(with_etag(
        StatusCode::OK,
        state.core.put_member_settings(&p, body, if_match).await?,
    ))
}
