//! The inference routes (DESIGN §5): thin handlers over [`byollm_gateway::Gateway`].

use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::{get, post};
use byollm_api::routes::{CHAT_COMPLETIONS, MESSAGES, MODELS};
use bytes::Bytes;

use crate::app::AppState;
use crate::extract::Caller;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(MESSAGES, post(messages))
        .route(CHAT_COMPLETIONS, post(chat_completions))
        .route(MODELS, get(models))
}

async fn messages(
    State(state): State<AppState>,
    Caller(p): Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    state.gateway.messages(p, &headers, body).await
}

async fn chat_completions(
    State(state): State<AppState>,
    Caller(p): Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    state.gateway.chat_completions(p, &headers, body).await
}

async fn models(State(state): State<AppState>, Caller(p): Caller, headers: HeaderMap) -> Response {
    state.gateway.models(p, &headers).await
}
