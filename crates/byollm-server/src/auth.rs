//! Authenticate by default: this layer wraps the whole router and lets only
//! [`PUBLIC_ROUTES`] through without a key or run token.

use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use byollm_api::routes::PUBLIC_ROUTES;

use crate::app::AppState;
use crate::error::ApiError;

/// Header some SDKs (Anthropic's) send the key in.
pub const X_API_KEY: &str = "x-api-key";

/// The credential in `Authorization: Bearer …` or `x-api-key: …`.
pub fn presented_credential(headers: &HeaderMap) -> Option<&str> {
    if let Some(value) = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let (scheme, rest) = value.split_once(' ')?;
        return scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim());
    }
    headers
        .get(X_API_KEY)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

/// The middleware.
pub async fn authenticate(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    if PUBLIC_ROUTES.contains(&req.uri().path()) {
        return next.run(req).await;
    }
    let Some(presented) = presented_credential(req.headers()) else {
        return ApiError::unauthenticated().into_response();
    };
    match state.core.authenticate(presented).await {
        Ok(principal) => {
            req.extensions_mut().insert(principal);
            next.run(req).await
        }
        Err(e) => ApiError::from(e).into_response(),
    }
}
