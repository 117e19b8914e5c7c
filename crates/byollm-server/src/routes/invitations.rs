//! `POST /api/v1/invitations/redeem`: the public route where a new member
//! trades their one-time invitation code for their first API key.
//!
//! Invariants: it takes no credential, so it is limited like authentication —
//! a throttled source is answered 429 before any hash or query, and a failed
//! redemption counts against the source's allowance
//! ([`crate::auth::FailureLimiter`]). A failure never says which of "unknown",
//! "used", "revoked" or "expired" it was.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse as _, Response};
use axum::routing::post;
use axum::{Extension, Json, Router};

use byollm_api::routes::INVITATIONS_REDEEM;
use byollm_api::types::InvitationRedeem;

use crate::app::AppState;
use crate::auth::FailureLimiter;
use crate::error::ApiError;
use crate::extract::ApiJson;

pub fn router() -> Router<AppState> {
    Router::new().route(INVITATIONS_REDEEM, post(redeem))
}

async fn redeem(
    State(state): State<AppState>,
    limiter: Option<Extension<FailureLimiter>>,
    ApiJson(body): ApiJson<InvitationRedeem>,
) -> Response {
    if let Some(Extension(l)) = &limiter
        && let Some(refusal) = l.refuse_if_throttled(INVITATIONS_REDEEM)
    {
        return refusal;
    }
    match state.core.redeem_invitation(body.code.expose()).await {
        Ok(Some(redeemed)) => (StatusCode::CREATED, Json(redeemed)).into_response(),
        Ok(None) => {
            if let Some(Extension(l)) = &limiter
                && let Some(refusal) = l.failed("invitation_invalid", INVITATIONS_REDEEM)
            {
                return refusal;
            }
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_invitation",
                "the invitation code is not valid",
            )
            .with_hint(
                "the invitation code is not valid: unknown, already used, revoked or \
                 expired; ask a team admin to re-issue your invitation",
            )
            .into_response()
        }
        Err(e) => ApiError::from(e).into_response(),
    }
}
