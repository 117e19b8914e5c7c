//! Team members: listed a page at a time, added (with a one-time invitation),
//! their role changed, removed; their invitation re-issued or revoked.

use axum::Json;
use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::routing::{get, post};

use byollm_api::routes::{TEAM_MEMBER, TEAM_MEMBER_INVITATION, TEAM_MEMBERS};
use byollm_api::types::{
    InvitationIssued, Member, MemberCreate, MemberCreated, MemberList, MemberPatch,
};

use super::paging::page_query;
use crate::app::AppState;
use crate::error::ApiError;
use crate::extract::{ApiJson, Caller};

pub fn router() -> Router<AppState> {
    Router::new()
        .route(TEAM_MEMBERS, get(list).post(create))
        .route(TEAM_MEMBER, axum::routing::delete(remove).patch(patch))
        .route(TEAM_MEMBER_INVITATION, post(reissue).delete(revoke))
}

async fn list(
    State(state): State<AppState>,
    Caller(p): Caller,
    RawQuery(q): RawQuery,
) -> Result<Json<MemberList>, ApiError> {
    let page = page_query(q.as_deref())?;
    Ok(Json(state.core.list_members(&p, page).await?))
}

async fn create(
    State(state): State<AppState>,
    Caller(p): Caller,
    ApiJson(body): ApiJson<MemberCreate>,
) -> Result<(StatusCode, Json<MemberCreated>), ApiError> {
    Ok((
        StatusCode::CREATED,
        Json(state.core.create_member(&p, body).await?),
    ))
}

async fn patch(
    State(state): State<AppState>,
    Caller(p): Caller,
    Path(uid): Path<String>,
    ApiJson(body): ApiJson<MemberPatch>,
) -> Result<Json<Member>, ApiError> {
    Ok(Json(state.core.patch_member(&p, &uid, body).await?))
}

async fn remove(
    State(state): State<AppState>,
    Caller(p): Caller,
    Path(uid): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.core.delete_member(&p, &uid).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn reissue(
    State(state): State<AppState>,
    Caller(p): Caller,
    Path(uid): Path<String>,
) -> Result<(StatusCode, Json<InvitationIssued>), ApiError> {
    Ok((
        StatusCode::CREATED,
        Json(state.core.reissue_invitation(&p, &uid).await?),
    ))
}

async fn revoke(
    State(state): State<AppState>,
    Caller(p): Caller,
    Path(uid): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.core.revoke_invitation(&p, &uid).await?;
    Ok(StatusCode::NO_CONTENT)
}
