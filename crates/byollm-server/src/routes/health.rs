//! Liveness and readiness.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;

use byollm_api::routes::{HEALTHZ, READYZ};
use byollm_api::types::Health;

use crate::app::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(HEALTHZ, get(healthz))
        .route(READYZ, get(readyz))
}

async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
    })
}

/// Ready when the store answers and a signing key is loaded.
async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Health>) {
    if state.core.store().ping().await.is_err() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(Health {
                status: "store unavailable".into(),
            }),
        );
    }
    if state.core.keyring().signer().is_none() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(Health {
                status: "no active signing key".into(),
            }),
        );
    }
    (
        StatusCode::OK,
        Json(Health {
            status: "ok".into(),
        }),
    )
}
