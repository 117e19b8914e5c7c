//! Sign-in with an API key or a one-time sign-in link, and sign-out.
//!
//! A link (`/console/sign-in/link/{token}`, minted by `byollm admin
//! login-link`) is spent only by the POST of its page's button: a GET shows
//! whether it still works and never uses it up (a chat app's link preview
//! must not sign anyone in). A used, expired or unknown link gets a page
//! saying which, and how to get a new one.
//!
//! Invariants: the key is read from the form into a [`SecretString`] and
//! never leaves the server (not in the cookie, the page or a redirect); a
//! failed sign-in counts against the source's failure allowance like a failed
//! API authentication ([`crate::auth::FailureLimiter`]); sign-in checks the
//! `Origin` (there is no session, hence no CSRF token, yet).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::header::{LOCATION, SET_COOKIE};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use secrecy::{ExposeSecret as _, SecretString};

use byollm_core::CoreError;
use byollm_core::service::{ConsoleSignIn, LinkRefusal};

use super::html::{self, esc};
use super::session::{self, Session, check_origin, form_pairs};
use super::{OVERVIEW, SIGN_IN, SIGN_IN_LINK_PREFIX};
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
        Ok(Ok(signed_in)) => signed_in_response(&state, &signed_in),
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

/// The 303 to the overview that sets a new session's cookie.
fn signed_in_response(state: &AppState, signed_in: &ConsoleSignIn) -> Response {
    let max_age = signed_in.expires_at - state.core.clock().now();
    let Some(cookie) = session::set_cookie(
        signed_in.cookie.expose_secret(),
        session::secure(state),
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

/// The page of a link that signs no one in.
fn link_refused(refusal: LinkRefusal) -> Response {
    let (status, title, text) = match refusal {
        LinkRefusal::Used => (
            StatusCode::GONE,
            "Sign-in link already used",
            "This sign-in link was used already: each link signs in once.",
        ),
        LinkRefusal::Expired => (
            StatusCode::GONE,
            "Sign-in link expired",
            "This sign-in link has expired: a link works for 10 minutes after it is made.",
        ),
        LinkRefusal::MemberGone => (
            StatusCode::GONE,
            "Sign-in link no longer valid",
            "The member this link was made for is no longer in the team.",
        ),
        LinkRefusal::Unknown => (
            StatusCode::NOT_FOUND,
            "Unknown sign-in link",
            "This sign-in link is not valid: check that it was copied whole.",
        ),
    };
    html::message_page(
        status,
        title,
        text,
        Some(
            "Ask your operator for a new one (byollm admin login-link --team T --member M),              or sign in with your API key.",
        ),
    )
}

/// `GET /console/sign-in/link/{token}`: a button that spends the link, or the
/// page saying why it does not work. Uses nothing up.
pub async fn link_page(State(state): State<AppState>, Path(token): Path<String>) -> Response {
    match state.core.sign_in_link_refusal(&token).await {
        Ok(None) => {
            let action = format!("{SIGN_IN_LINK_PREFIX}{}", esc(&token));
            html::page(
                StatusCode::OK,
                "Sign in",
                None,
                &format!(
                    r#"<p>This one-time link signs you in to the console. It works once, for 10 minutes after it was made.</p>
<form method="post" action="{action}">
<button type="submit">Sign in with this link</button>
</form>"#
                ),
            )
        }
        Ok(Some(refusal)) => link_refused(refusal),
        Err(e) => html::core_error(e, None),
    }
}

/// `POST /console/sign-in/link/{token}`: spends the link and opens a session
/// (the `Origin` is checked: there is no session, hence no CSRF token, yet).
pub async fn link_submit(
    State(state): State<AppState>,
    Path(token): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Some(refused) = check_origin(&state, &headers) {
        return refused;
    }
    match state.core.open_console_session_with_link(&token).await {
        Ok(Ok(signed_in)) => signed_in_response(&state, &signed_in),
        Ok(Err(refusal)) => link_refused(refusal),
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
