//! OIDC discovery and JWKS (DESIGN §3), served from memory with a deliberate
//! `Cache-Control` whose max-age is shorter than the key pre-publication window.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::header::CACHE_CONTROL;
use axum::response::IntoResponse;
use axum::routing::get;
use serde_json::json;

use byollm_api::routes::{DISCOVERY, JWKS};
use byollm_core::identity::JWKS_MAX_AGE_SECONDS;

use crate::app::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(DISCOVERY, get(discovery))
        .route(JWKS, get(jwks))
}

fn cache_control() -> (axum::http::HeaderName, String) {
    (
        CACHE_CONTROL,
        format!("public, max-age={JWKS_MAX_AGE_SECONDS}"),
    )
}

async fn discovery(State(state): State<AppState>) -> impl IntoResponse {
    let issuer = &state.core.config().issuer_url;
    let keys = state.core.keyring().keys();
    let mut algs: Vec<&str> = keys.jwks.iter().map(|k| k.alg.as_str()).collect();
    algs.sort_unstable();
    algs.dedup();
    (
        [cache_control()],
        Json(json!({
            "issuer": issuer,
            "jwks_uri": format!("{issuer}{JWKS}"),
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": algs,
            "claims_supported": [
                "iss", "sub", "aud", "iat", "nbf", "exp", "jti",
                "team_uid", "actor_type", "principal_uid", "run_id",
                "https://aws.amazon.com/tags", "https://aws.amazon.com/source_identity",
                "actor"
            ],
        })),
    )
}

async fn jwks(State(state): State<AppState>) -> impl IntoResponse {
    let keys = state.core.keyring().keys();
    ([cache_control()], Json(json!({ "keys": keys.jwks })))
}
