//! Runs: create (workload token shown once), get, finish, and the run's own
//! identity-token endpoint.

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};

use byollm_api::routes::{RUN, RUN_FINISH, RUN_IDENTITY_TOKEN, RUNS};
use byollm_api::types::{
    IdentityTokenRequest, IdentityTokenResponse, RunCreate, RunCreated, RunFinish, RunInfo,
};

use crate::app::AppState;
use crate::error::ApiError;
use crate::extract::{ApiJson, Caller};

pub fn router() -> Router<AppState> {
    Router::new()
        .route(RUNS, post(create))
        .route(RUN, get(one))
        .route(RUN_FINISH, post(finish))
        .route(RUN_IDENTITY_TOKEN, post(identity_token))
}

async fn create(
    State(state): State<AppState>,
    Caller(p): Caller,
    ApiJson(body): ApiJson<RunCreate>,
) -> Result<(StatusCode, Json<RunCreated>), ApiError> {
    Ok((
        StatusCode::CREATED,
        Json(state.core.create_run(&p, body).await?),
    ))
}

async fn one(
    State(state): State<AppState>,
    Caller(p): Caller,
    Path(id): Path<String>,
) -> Result<Json<RunInfo>, ApiError> {
    Ok(Json(state.core.get_run(&p, &id).await?))
}

async fn finish(
    State(state): State<AppState>,
    Caller(p): Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<RunFinish>,
) -> Result<Json<RunInfo>, ApiError> {
    Ok(Json(state.core.finish_run(&p, &id, body).await?))
}

async fn identity_token(
    State(state): State<AppState>,
    Caller(p): Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<IdentityTokenRequest>,
) -> Result<Json<IdentityTokenResponse>, ApiError> {
    Ok(Json(state.core.mint_for_run(&p, &id, body).await?))
}
