//! `POST /api/v1/identity-token`: a member mints a token for themselves.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::routing::post;

use byollm_api::routes::IDENTITY_TOKEN;
use byollm_api::types::{IdentityTokenRequest, IdentityTokenResponse};

use crate::app::AppState;
use crate::error::ApiError;
use crate::extract::{ApiJson, Caller};

pub fn router() -> Router<AppState> {
    Router::new().route(IDENTITY_TOKEN, post(mint))
}

async fn mint(
    State(state): State<AppState>,
    Caller(p): Caller,
    ApiJson(body): ApiJson<IdentityTokenRequest>,
) -> Result<Json<IdentityTokenResponse>, ApiError> {
    Ok(Json(state.core.mint_for_member(&p, body).await?))
}
