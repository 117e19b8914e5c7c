//! The inference routes (DESIGN §5): thin handlers over [`byollm_gateway::Gateway`].
//! They take the raw body: the gateway reads it up to `[gateway] max_body_bytes`
//! (not the API's 1 MiB) and refuses more in the caller's error format.

use axum::Router;
use axum::body::Body;
use axum::extract::Path;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::{get, post};
use byollm_api::routes::{CHAT_COMPLETIONS, MESSAGES, MODELS, VERTEX_RAW_PREDICT};

use crate::app::AppState;
use crate::extract::Caller;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(MESSAGES, post(messages))
        .route(CHAT_COMPLETIONS, post(chat_completions))
        .route(MODELS, get(models))
        .route(VERTEX_RAW_PREDICT, post(vertex_raw_predict))
}

async fn vertex_raw_predict(
    State(state): State<AppState>,
    Caller(p): Caller,
    Path((_project, _location, model_verb)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    state
        .gateway
        .vertex_raw_predict(p, &headers, &model_verb, body)
        .await
}

async fn messages(
    State(state): State<AppState>,
    Caller(p): Caller,
    headers: HeaderMap,
    body: Body,
) -> Response {
    state.gateway.messages(p, &headers, body).await
}

async fn chat_completions(
    State(state): State<AppState>,
    Caller(p): Caller,
    headers: HeaderMap,
    body: Body,
) -> Response {
    state.gateway.chat_completions(p, &headers, body).await
}

async fn models(State(state): State<AppState>, Caller(p): Caller, headers: HeaderMap) -> Response {
    state.gateway.models(p, &headers).await
}
