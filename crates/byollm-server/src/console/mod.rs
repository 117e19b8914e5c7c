//! The web console at `/console` (issue 16): server-rendered HTML pages over
//! the same [`byollm_core::service::Core`] operations as the API, so
//! authorization, validation and audit are the API's.
//!
//! Invariants:
//! - The API's authentication layer lets `/console` through
//!   ([`crate::auth`]); here every route but [`SIGN_IN`], the assets and the
//!   404 page for paths that name no page needs a session
//!   ([`session::require`]), which acts as the member's API key.
//! - A one-time sign-in link ([`SIGN_IN_LINK`]) opens a session acting as its
//!   member, with no key ([`byollm_core::service::create_sign_in_link`]).
//! - The browser never holds the key: sign-in trades it for a random,
//!   `HttpOnly`, `SameSite=Strict` cookie (`Secure` under an https issuer) whose
//!   session lives in the store (hashed, [`byollm_core::service::ConsoleSession`]).
//! - Every POST carries the session's CSRF token and an `Origin` of this server
//!   ([`session`]); sign-in, with no session yet, the `Origin` check.
//! - Every response carries a Content-Security-Policy with no inline script,
//!   `X-Frame-Options: DENY` and `Referrer-Policy: no-referrer`
//!   ([`security_headers`]); pages are never cached.
//! - Scripts and styles are vendored into the binary ([`assets`]): no CDN, no
//!   build step.
//! - Another team's object is a 404 page (the domain says `NotFound`); an
//!   action the rules refuse is a 403 page.

mod agents;
mod assets;
mod audit;
mod aws_setup;
mod check;
mod html;
mod keys;
mod members;
mod models;
mod overview;
mod runs;
mod session;
mod settings;
mod sign_in;
mod usage;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::{get, post};

use crate::app::AppState;

pub use check::{CHECK_SECONDS, CheckEnv};
pub use session::{CSRF_FIELD, SESSION_COOKIE};

/// Everything the console serves is under this prefix.
pub const PREFIX: &str = "/console";
/// The overview (the console's home).
pub const OVERVIEW: &str = "/console";
/// Sign-in form (public).
pub const SIGN_IN: &str = "/console/sign-in";
/// A one-time sign-in link's page (GET asks, POST signs in).
pub const SIGN_IN_LINK: &str = "/console/sign-in/link/{token}";
/// [`SIGN_IN_LINK`] without its token: what `byollm admin login-link` prints
/// after the server's URL.
pub const SIGN_IN_LINK_PREFIX: &str = "/console/sign-in/link/";
/// Sign-out (POST).
pub const SIGN_OUT: &str = "/console/sign-out";
/// Vendored scripts and styles (public).
pub const ASSET: &str = "/console/assets/{name}";
/// The team's AI settings.
pub const AI_SETTINGS: &str = "/console/ai-settings";
/// Agents: list and create.
pub const AGENTS: &str = "/console/agents";
/// One agent: its page (the URL carries its uid) and its edit form.
pub const AGENT: &str = "/console/agents/{uid}";
/// Deletes an agent (POST).
pub const AGENT_DELETE: &str = "/console/agents/{uid}/delete";
/// The caller's API keys: list and create.
pub const KEYS: &str = "/console/keys";
/// Revokes a key (POST).
pub const KEY_REVOKE: &str = "/console/keys/{id}/revoke";
/// AWS setup (admins): policies and setup scripts out.
pub const AWS_SETUP: &str = "/console/aws-setup";
/// Runs the doctor for the team (POST).
pub const AWS_SETUP_CHECK: &str = "/console/aws-setup/check";
/// Runs the doctor for one agent (POST).
pub const AGENT_CHECK: &str = "/console/agents/{uid}/check";
/// One generated AWS setup document, as a download.
pub const AWS_SETUP_FILE: &str = "/console/aws-setup/file";
/// The audit trail (admins).
pub const AUDIT: &str = "/console/audit";
/// Runs: the list.
pub const RUNS: &str = "/console/runs";
/// One run's page.
pub const RUN: &str = "/console/runs/{id}";
/// Credits and requests.
pub const USAGE: &str = "/console/usage";
/// Every request of the usage page's filters, as CSV.
pub const USAGE_CSV: &str = "/console/usage/requests.csv";
/// The member's own settings (POST).
pub const MY_SETTINGS: &str = "/console/my-settings";
/// Members and roles (admins): list and add.
pub const MEMBERS: &str = "/console/members";
/// Changes a member's role (POST).
pub const MEMBER_ROLE: &str = "/console/members/{uid}/role";
/// Removes a member (POST).
pub const MEMBER_REMOVE: &str = "/console/members/{uid}/remove";

/// Whether a path is the console's (the API's auth layer lets it through).
pub fn is_console_path(path: &str) -> bool {
    path == PREFIX || path.starts_with("/console/")
}

/// The console's routes: those behind a session, then the public ones.
pub fn router(state: AppState) -> Router<AppState> {
    let private = Router::new()
        .route(OVERVIEW, get(overview::show))
        .route(SIGN_OUT, post(sign_in::sign_out))
        .route(AI_SETTINGS, get(settings::show).post(settings::save))
        .route(AGENTS, get(agents::list).post(agents::create))
        .route(AGENT, get(agents::show).post(agents::save))
        .route(AGENT_DELETE, post(agents::delete))
        .route(KEYS, get(keys::list).post(keys::create))
        .route(KEY_REVOKE, post(keys::revoke))
        .route(AUDIT, get(audit::show))
        .route(RUNS, get(runs::list))
        .route(RUN, get(runs::show))
        .route(USAGE, get(usage::show))
        .route(USAGE_CSV, get(usage::csv))
        .route(MY_SETTINGS, post(overview::save_my_settings))
        .route(AWS_SETUP, get(aws_setup::show))
        .route(AWS_SETUP_FILE, get(aws_setup::file))
        .route(AWS_SETUP_CHECK, post(check::team))
        .route(AGENT_CHECK, post(check::agent))
        .route(MEMBERS, get(members::list).post(members::create))
        .route(MEMBER_ROLE, post(members::change_role))
        .route(MEMBER_REMOVE, post(members::remove))
        .route_layer(axum::middleware::from_fn_with_state(
            state,
            session::require,
        ));
    Router::new()
        .merge(private)
        .route(SIGN_IN, get(sign_in::form_page).post(sign_in::submit))
        .route(
            SIGN_IN_LINK,
            get(sign_in::link_page).post(sign_in::link_submit),
        )
        .route(ASSET, get(assets::serve))
        .route("/console/{*rest}", get(not_found).post(not_found))
        .layer(axum::middleware::from_fn(security_headers))
}

/// A console path that names no page: the 404 page (not the API's JSON).
async fn not_found() -> Response {
    html::message_page(
        axum::http::StatusCode::NOT_FOUND,
        "Not found",
        "No such page.",
        None,
    )
}

/// The Content-Security-Policy of every console response: only this origin's
/// scripts, styles and images, no inline script or style, no framing, forms
/// post only here.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; \
    base-uri 'none'";

/// Adds the console's security headers to every response.
async fn security_headers(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    resp
}
