//! `POST /api/v1/identity-token`: a member mints a token for themselves;
//! `POST /api/v1/agent/identities/{uid}/identity-token`: an admin mints a named
//! agent's, to check its cloud setup.

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::routing::post;

use byollm_api::routes::{AGENT_IDENTITY_TOKEN, IDENTITY_TOKEN};
use byollm_api::types::{IdentityTokenRequest, IdentityTokenResponse};

use crate::app::AppState;
use crate::error::ApiError;
use crate::extract::{ApiJson, Caller};

pub fn router() -> Router<AppState> {
    Router::new()
        .route(IDENTITY_TOKEN, post(mint))
        .route(AGENT_IDENTITY_TOKEN, post(mint_for_agent))
}

async fn mint(
    State(state): State<AppState>,
    Caller(p): Caller,
    ApiJson(body): ApiJson<IdentityTokenRequest>,
) -> Result<Json<IdentityTokenResponse>, ApiError> {
    Ok(Json(state.core.mint_for_member(&p, body).await?))
}

async fn mint_for_agent(
    State(state): State<AppState>,
    Caller(p): Caller,
    Path(uid): Path<String>,
    ApiJson(body): ApiJson<IdentityTokenRequest>,
) -> Result<Json<IdentityTokenResponse>, ApiError> {
    Ok(Json(state.core.mint_for_agent(&p, &uid, body).await?))
}
