//! One module per resource, each with its `router()`.

mod agents;
mod api_keys;
mod gateway;
mod health;
mod identity;
mod me;
mod members;
mod oidc;
mod runs;
mod settings;
mod usage;

use axum::Router;

use crate::app::AppState;

/// Every route.
pub fn router() -> Router<AppState> {
    Router::new()
        .merge(oidc::router())
        .merge(health::router())
        .merge(me::router())
        .merge(settings::router())
        .merge(members::router())
        .merge(api_keys::router())
        .merge(agents::router())
        .merge(runs::router())
        .merge(identity::router())
        .merge(usage::router())
        .merge(gateway::router())
}
