//! The console's session layer: the cookie, its CSRF token and the `Origin`
//! check.
//!
//! Invariants:
//! - The cookie is the only thing the browser holds; it is `HttpOnly`,
//!   `SameSite=Strict`, scoped to `/console`, and `Secure` when the issuer URL
//!   is https.
//! - The CSRF token is derived from the cookie (SHA-256 under a label of its
//!   own), so it is per session, never stored, and useless without the cookie;
//!   it is compared in constant time.
//! - Every POST behind a session carries an `Origin` of this server and the
//!   CSRF token in its form, or is refused (403 page) before any handler runs.
//! - A request with no live session is sent to the sign-in page (303), and a
//!   dead cookie is cleared.

use axum::body::Body;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::header::{COOKIE, HOST, LOCATION, ORIGIN, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use byollm_core::auth::Principal;

use super::{SIGN_IN, html};
use crate::app::AppState;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "byollm_console";
/// The form field that carries the CSRF token.
pub const CSRF_FIELD: &str = "csrf";
/// The Fetch Metadata header saying where a request comes from.
const SEC_FETCH_SITE: &str = "sec-fetch-site";
/// Largest console form body read (forms are small; the API has its own limit).
pub const FORM_LIMIT: usize = 64 * 1024;

/// The signed-in caller of a console request (put in the request by
/// [`require`]).
#[derive(Clone)]
pub struct Session {
    /// The key's caller: every operation runs as it.
    pub principal: Principal,
    /// This session's CSRF token, for the forms of the page (derived from the
    /// cookie: `Debug` leaves it out).
    pub csrf: String,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("principal", &self.principal)
            .field("csrf", &"…")
            .finish()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Session {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Session>()
            .cloned()
            .ok_or_else(to_sign_in)
    }
}

/// The session cookie of a request, if it sent one.
pub fn cookie_value(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.to_owned())
        .filter(|v| !v.is_empty())
}

/// The CSRF token of the session whose cookie is `cookie`.
pub fn csrf_token(cookie: &str) -> String {
    byollm_core::ids::hash_secret(&format!("byollm-console-csrf\n{cookie}"))
}

/// Constant-time equality, so the comparison does not leak the token.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// The `Set-Cookie` that opens a session for `max_age` seconds.
pub fn set_cookie(cookie: &str, secure: bool, max_age: i64) -> Option<HeaderValue> {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={cookie}; Path=/console; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"
    ))
    .ok()
}

/// The `Set-Cookie` that makes the browser forget the cookie.
pub fn clear_cookie() -> HeaderValue {
    HeaderValue::from_static("byollm_console=; Path=/console; HttpOnly; SameSite=Strict; Max-Age=0")
}

/// Whether the issuer is served over https (then the cookie is `Secure`).
pub fn secure(state: &AppState) -> bool {
    state.core.config().issuer_url.starts_with("https://")
}

/// A 303 to the sign-in page.
pub fn to_sign_in() -> Response {
    (StatusCode::SEE_OTHER, [(LOCATION, SIGN_IN)]).into_response()
}

/// `scheme://host[:port]` of a URL.
fn origin_of(url: &str) -> &str {
    let Some(at) = url.find("://") else {
        return url;
    };
    let rest = &url[at + 3..];
    match rest.find('/') {
        Some(end) => &url[..at + 3 + end],
        None => url,
    }
}

/// The refusal of a state-changing request that does not come from this server's
/// pages: its `Origin` must be the issuer URL's origin or the `Host` it was
/// sent to, and a browser's `Sec-Fetch-Site` (which pages cannot set), when
/// sent, must be `same-origin`.
///
/// Our own `Referrer-Policy: no-referrer` makes browsers send `Origin: null`
/// on form posts (Fetch standard, "serializing a request origin"), so a
/// `null` Origin passes only with `Sec-Fetch-Site: same-origin`.
pub fn check_origin(state: &AppState, headers: &HeaderMap) -> Option<Response> {
    let origin = headers.get(ORIGIN).and_then(|v| v.to_str().ok());
    let host = headers.get(HOST).and_then(|v| v.to_str().ok());
    let fetch_site = headers.get(SEC_FETCH_SITE).and_then(|v| v.to_str().ok());
    let issuer = origin_of(&state.core.config().issuer_url);
    let ours = |o: &str| {
        o.eq_ignore_ascii_case(issuer)
            || host.is_some_and(|h| {
                o.eq_ignore_ascii_case(&format!("http://{h}"))
                    || o.eq_ignore_ascii_case(&format!("https://{h}"))
            })
    };
    let same_site = fetch_site == Some("same-origin");
    let ok = match origin {
        _ if fetch_site.is_some() && !same_site => false,
        Some("null") => same_site,
        Some(o) => ours(o),
        None => false,
    };
    if ok {
        return None;
    }
    Some(html::message_page(
        StatusCode::FORBIDDEN,
        "Refused",
        "This form was not sent from this console (its Origin header is missing or names \
         another site).",
        None,
    ))
}

/// The `key=value` pairs of a urlencoded form body.
pub fn form_pairs(body: &[u8]) -> Result<Vec<(String, String)>, BadForm> {
    let text = std::str::from_utf8(body).map_err(|_| BadForm)?;
    crate::extract::query_pairs(Some(text)).map_err(|_| BadForm)
}

/// A form body that is not urlencoded UTF-8 (a 400 page).
#[derive(Debug)]
pub struct BadForm;

impl IntoResponse for BadForm {
    fn into_response(self) -> Response {
        html::message_page(
            StatusCode::BAD_REQUEST,
            "Bad form",
            "The form could not be read.",
            None,
        )
    }
}

/// The middleware in front of every console route but sign-in and assets.
pub async fn require(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let Some(cookie) = cookie_value(req.headers()) else {
        return to_sign_in();
    };
    let session = match state.core.console_session(&cookie).await {
        Ok(Some(s)) => s,
        Ok(None) => {
            let mut resp = to_sign_in();
            resp.headers_mut().insert(SET_COOKIE, clear_cookie());
            return resp;
        }
        Err(e) => return html::core_error(e, None),
    };
    let csrf = csrf_token(&cookie);
    if req.method() == Method::POST {
        if let Some(refused) = check_origin(&state, req.headers()) {
            return refused;
        }
        let (parts, body) = req.into_parts();
        let Ok(bytes) = axum::body::to_bytes(body, FORM_LIMIT).await else {
            return html::message_page(
                StatusCode::PAYLOAD_TOO_LARGE,
                "Form too large",
                "The form is larger than the console accepts.",
                None,
            );
        };
        let pairs = match form_pairs(&bytes) {
            Ok(p) => p,
            Err(bad) => return bad.into_response(),
        };
        let sent = pairs
            .iter()
            .filter(|(k, _)| k == CSRF_FIELD)
            .map(|(_, v)| v.as_str())
            .collect::<Vec<_>>();
        if !matches!(sent.as_slice(), [one] if same(one, &csrf)) {
            return html::message_page(
                StatusCode::FORBIDDEN,
                "Refused",
                "The form's security token is missing or out of date.",
                Some("Reload the page and send the form again."),
            );
        }
        req = Request::from_parts(parts, Body::from(bytes));
    }
    req.extensions_mut().insert(Session {
        principal: session.principal,
        csrf,
    });
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_and_cookies_parse() {
        assert_eq!(origin_of("https://issuer.test/base"), "https://issuer.test");
        assert_eq!(origin_of("http://127.0.0.1:8080"), "http://127.0.0.1:8080");
        let mut h = HeaderMap::new();
        h.append(COOKIE, HeaderValue::from_static("a=b; byollm_console=xyz"));
        assert_eq!(cookie_value(&h).as_deref(), Some("xyz"));
        assert!(same("abc", "abc") && !same("abc", "abd") && !same("abc", "ab"));
        assert_ne!(csrf_token("one"), csrf_token("two"));
    }

    #[test]
    fn debug_leaves_the_csrf_token_out() {
        let csrf = csrf_token("cookie");
        let s = Session {
            principal: Principal {
                team_uid: "t".into(),
                kind: byollm_core::auth::CredentialKind::MemberKey,
                actor: byollm_api::types::Actor {
                    actor_type: byollm_api::types::ActorType::User,
                    uid: "u".into(),
                },
                role: None,
                run_id: None,
                credential_hash: "h".into(),
            },
            csrf: csrf.clone(),
        };
        assert!(!format!("{s:?}").contains(&csrf));
    }
}
