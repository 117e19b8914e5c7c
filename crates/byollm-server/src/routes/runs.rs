//! Runs: create (workload token shown once), a paged list, get, finish, and the
//! run's own identity-token endpoint.

use axum::Json;
use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::routing::{get, post};

use byollm_api::routes::{RUN, RUN_FINISH, RUN_IDENTITY_TOKEN, RUNS};
use byollm_api::types::{
    IdentityTokenRequest, IdentityTokenResponse, RunCreate, RunCreated, RunFinish, RunInfo,
    RunList, RunListQuery, RunState,
};

use crate::app::AppState;
use crate::error::ApiError;
use crate::extract::{ApiJson, Caller, query_pairs};

pub fn router() -> Router<AppState> {
    Router::new()
        .route(RUNS, get(list).post(create))
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

async fn list(
    State(state): State<AppState>,
    Caller(p): Caller,
    RawQuery(q): RawQuery,
) -> Result<Json<RunList>, ApiError> {
    let mut query = RunListQuery::default();
    for (k, v) in query_pairs(q.as_deref())? {
        let value = (!v.is_empty()).then(|| v.clone());
        match k.as_str() {
            "cursor" => query.cursor = value,
            "actor" => query.actor = value,
            "since" => query.since = value,
            "until" => query.until = value,
            "state" => {
                query.state = Some(RunState::parse(&v).ok_or_else(|| {
                    ApiError::invalid(
                        "state",
                        "expected queued, running, finished, failed, cancelled or expired",
                    )
                })?);
            }
            "limit" => {
                query.limit = Some(v.parse::<u32>().map_err(|_| {
                    ApiError::invalid("limit", "expected a whole number of runs per page")
                })?);
            }
            _ => {
                return Err(ApiError::invalid(
                    k,
                    "unknown query parameter; expected limit, cursor, state, actor, since or until",
                ));
            }
        }
    }
    Ok(Json(state.core.list_runs(&p, query).await?))
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
