//! The byollm HTTP server (axum): the OIDC issuer's discovery and JWKS, the
//! tenancy API and the identity-token endpoints (DESIGN §3, §6).
//!
//! Authentication wraps the whole router; only the routes in
//! [`byollm_api::routes::PUBLIC_ROUTES`] pass without credentials, and the web
//! console ([`console`], under `/console`) authenticates with its own session. Handlers are
//! thin: extract, call [`byollm_core::service::Core`], map the error.

pub mod app;
pub mod auth;
pub mod config;
pub mod conn;
pub mod console;
pub mod error;
pub mod extract;
pub mod routes;
pub mod telemetry;

pub use app::{App, AppState, Server, router, start};
pub use config::{FileConfig, ServerConfig};
