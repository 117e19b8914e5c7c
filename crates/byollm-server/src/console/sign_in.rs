//! Sign-in with an API key, and sign-out.
//!
//! Invariants: the key is read from the form into a [`SecretString`] and
//! never leaves the server (not in the cookie, the page or a redirect); a
//! failed sign-in counts against the source's failure allowance like a failed
//! API authentication ([`crate::auth::FailureLimiter`]); sign-in checks the
//! `Origin` (there is no session, hence no CSRF token, yet).

use axum::body::Bytes;
use axum::extract::State;
use axum::http::header::{LOCATION, SET_COOKIE};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use secrecy::{ExposeSecret as _, SecretString};

use byollm_core::CoreError;

use super::html::{self, esc};
use super::session::{self, Session, check_origin, form_pairs};
use super::{OVERVIEW, SIGN_IN};
use crate::app::AppState;
use crate::auth::FailureLimiter;

/// The sign-in form's key field.
const KEY_FIELD: &str = "api_key";

fn form(status: StatusCode, error: Option<&str>) -> Response {
    let error = error.map_or_else(String::new, |e| {
        format!(
            r#"<p class="field-error" id="api_key-error" role="alert">{}</p>"#,
            esc(e)
        )
    });
    let body = format!(
        r#"<form method="post" action="{SIGN_IN}">
<label for="api_key">API key</label>
<input type="password" id="api_key" name="{KEY_FIELD}" autocomplete="off" required aria-describedby="api_key-hint api_key-error">
{error}<p class="hint" id="api_key-hint">Your member API key (byollm_key_…). It is checked by the server and not kept in this browser.</p>
<button type="submit">Sign in</button>
</form>"#
    );
    html::page(status, "Sign in", None, &body)
}

/// `GET /console/sign-in`.
pub async fn form_page() -> Response {
    form(StatusCode::OK, None)
}

/// `POST /console/sign-in`: opens a session and sends the browser to the
/// overview.
pub async fn submit(
    State(state): State<AppState>,
    limiter: Option<axum::Extension<FailureLimiter>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(refused) = check_origin(&state, &headers) {
        return refused;
    }
    let limiter = limiter.map(|axum::Extension(l)| l);
    if limiter
        .as_ref()
        .and_then(|l| l.refuse_if_throttled(SIGN_IN))
        .is_some()
    {
        return form(
            StatusCode::TOO_MANY_REQUESTS,
            Some("Too many failed sign-ins from this address; wait a minute and try again."),
        );
    }
    let pairs = match form_pairs(&body) {
        Ok(p) => p,
        Err(bad) => return bad.into_response(),
    };
    let key = pairs
        .into_iter()
        .find(|(k, _)| k == KEY_FIELD)
        .map(|(_, v)| SecretString::from(v.trim().to_owned()));
    let Some(key) = key.filter(|k| !k.expose_secret().is_empty()) else {
        return form(StatusCode::BAD_REQUEST, Some("Enter your API key."));
    };
    match state
        .core
        .open_console_session(key.expose_secret(), &|| true)
        .await
    {
        Ok(Ok(signed_in)) => {
            let max_age = signed_in.expires_at - state.core.clock().now();
            let Some(cookie) = session::set_cookie(
                signed_in.cookie.expose_secret(),
                session::secure(&state),
                max_age,
            ) else {
                return html::core_error(CoreError::Internal("session cookie".into()), None);
            };
            (
                StatusCode::SEE_OTHER,
                [(LOCATION, OVERVIEW.to_owned())],
                [(SET_COOKIE, cookie)],
            )
                .into_response()
        }
        Ok(Err(failure)) => {
            if let Some(l) = &limiter {
                let _ = l.failed(failure.as_str(), SIGN_IN);
            }
            form(
                StatusCode::UNAUTHORIZED,
                Some("That API key is not valid: it is mistyped, revoked or expired."),
            )
        }
        Err(CoreError::Forbidden { message, .. }) => form(StatusCode::FORBIDDEN, Some(&message)),
        Err(e) => html::core_error(e, None),
    }
}

/// `POST /console/sign-out`: ends the session (the CSRF token was checked by
/// the session layer) and forgets the cookie.
pub async fn sign_out(State(state): State<AppState>, _: Session, headers: HeaderMap) -> Response {
    if let Some(cookie) = session::cookie_value(&headers)
        && let Err(e) = state.core.close_console_session(&cookie).await
    {
        return html::core_error(e, None);
    }
    (
        StatusCode::SEE_OTHER,
        [(LOCATION, SIGN_IN)],
        [(SET_COOKIE, session::clear_cookie())],
    )
        .into_response()
}
