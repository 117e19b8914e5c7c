//! Team members.

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get};

use byollm_api::routes::{TEAM_MEMBER, TEAM_MEMBERS};
use byollm_api::types::{Member, MemberCreate, MemberList};

use crate::app::AppState;
use crate::error::ApiError;
use crate::extract::{ApiJson, Caller};

pub fn router() -> Router<AppState> {
    Router::new()
        .route(TEAM_MEMBERS, get(list).post(create))
        .route(TEAM_MEMBER, delete(remove))
}

async fn list(
    State(state): State<AppState>,
    Caller(p): Caller,
) -> Result<Json<MemberList>, ApiError> {
    Ok(Json(MemberList {
        members: state.core.list_members(&p).await?,
    }))
}

async fn create(
    State(state): State<AppState>,
    Caller(p): Caller,
    ApiJson(body): ApiJson<MemberCreate>,
) -> Result<(StatusCode, Json<Member>), ApiError> {
    Ok((
        StatusCode::CREATED,
        Json(state.core.create_member(&p, body).await?),
    ))
}

async fn remove(
    State(state): State<AppState>,
    Caller(p): Caller,
    Path(uid): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.core.delete_member(&p, &uid).await?;
    Ok(StatusCode::NO_CONTENT)
}
