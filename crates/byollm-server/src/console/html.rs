//! The console's HTML: escaping, the page layout (navigation, sign-out form)
//! and error pages.
//!
//! Invariants: every value that did not come from this file goes through
//! [`esc`]; pages load only the vendored assets and carry no inline script or
//! style (the CSP forbids them); navigation shows admin pages to admins only
//! (the server refuses them to others anyway).

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

use byollm_core::CoreError;

use super::session::{CSRF_FIELD, Session};
use super::{
    AGENTS, AI_SETTINGS, AUDIT, AWS_SETUP, KEYS, MEMBERS, OVERVIEW, RUNS, SIGN_OUT, USAGE,
};

/// HTML-escapes text for an element's content or a quoted attribute.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The hidden CSRF input every form behind a session carries.
pub fn csrf_input(s: &Session) -> String {
    format!(
        r#"<input type="hidden" name="{CSRF_FIELD}" value="{}">"#,
        esc(&s.csrf)
    )
}

/// A full page: head with the vendored assets, navigation for a signed-in
/// caller, then `body`.
pub fn page(status: StatusCode, title: &str, session: Option<&Session>, body: &str) -> Response {
    let nav = session.map_or_else(String::new, nav);
    let html = format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · byollm console</title>
<link rel="stylesheet" href="/console/assets/console.css">
<script src="/console/assets/console.js" defer></script>
</head>
<body>
<header><span class="brand">byollm console</span>{nav}</header>
<main>
<h1>{title}</h1>
{body}
</main>
</body>
</html>
"#,
        title = esc(title),
    );
    (status, Html(html)).into_response()
}

fn nav(s: &Session) -> String {
    let admin = s.principal.is_admin();
    let mut links = vec![(OVERVIEW, "Overview")];
    if admin {
        links.push((AI_SETTINGS, "AI settings"));
        links.push((AWS_SETUP, "AWS setup"));
    }
    links.push((AGENTS, "Agents"));
    if admin {
        links.push((MEMBERS, "Members"));
    }
    links.push((KEYS, "API keys"));
    links.push((RUNS, "Runs"));
    links.push((USAGE, "Usage"));
    if admin {
        links.push((AUDIT, "Audit"));
    }
    let items: String = links
        .iter()
        .map(|(href, label)| format!(r#"<li><a href="{href}">{label}</a></li>"#))
        .collect();
    format!(
        r#"<nav aria-label="Console"><ul>{items}</ul>
<form method="post" action="{SIGN_OUT}" class="sign-out">{csrf}<button type="submit">Sign out</button></form></nav>"#,
        csrf = csrf_input(s),
    )
}

/// A page that only says something (errors, refusals).
pub fn message_page(
    status: StatusCode,
    title: &str,
    message: &str,
    hint: Option<&str>,
) -> Response {
    message_page_for(status, title, message, hint, None)
}

/// [`message_page`] with the navigation of a signed-in caller.
pub fn message_page_for(
    status: StatusCode,
    title: &str,
    message: &str,
    hint: Option<&str>,
    session: Option<&Session>,
) -> Response {
    let hint = hint.map_or_else(String::new, |h| {
        format!(r#"<p class="hint">{}</p>"#, esc(h))
    });
    let body = format!(
        r#"<p class="error" role="alert">{}</p>{hint}<p><a href="{OVERVIEW}">Back to the overview</a></p>"#,
        esc(message)
    );
    page(status, title, session, &body)
}

/// The page for a domain error: 404 for another team's or a missing object,
/// 403 for what the rules refuse, the API's words for the rest.
pub fn core_error(e: CoreError, session: Option<&Session>) -> Response {
    let (status, title) = match &e {
        CoreError::NotFound(_) => (StatusCode::NOT_FOUND, "Not found"),
        CoreError::Forbidden { .. } => (StatusCode::FORBIDDEN, "Not allowed"),
        CoreError::Invalid(_) => (StatusCode::BAD_REQUEST, "Invalid input"),
        CoreError::Unauthenticated => (StatusCode::UNAUTHORIZED, "Not signed in"),
        CoreError::Conflict(_) => (StatusCode::CONFLICT, "Conflict"),
        CoreError::PreconditionFailed(_) => (StatusCode::PRECONDITION_FAILED, "Changed meanwhile"),
        CoreError::Refused { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "Refused"),
        CoreError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "Unavailable"),
        CoreError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "Error"),
    };
    let hint = match &e {
        CoreError::Forbidden { hint, .. } | CoreError::Refused { hint, .. } => hint.clone(),
        _ => None,
    };
    // The API's error (it logs internal detail once and sends a safe message).
    let message = match e {
        CoreError::Invalid(f) => format!("{}: {}", f.field, f.message),
        other => api_message(other),
    };
    message_page_for(status, title, &message, hint.as_deref(), session)
}

/// The safe message the API would send for `e`.
fn api_message(e: CoreError) -> String {
    let resp = crate::error::ApiError::from(e);
    resp.message().to_owned()
}

/// A field's error next to it: the API's words (`field: message`).
pub fn field_error(errors: &[(String, String)], field: &str) -> String {
    errors
        .iter()
        .filter(|(f, _)| f == field)
        .map(|(_, m)| {
            format!(
                r#"<p class="field-error" id="{id}-error" role="alert">{}</p>"#,
                esc(m),
                id = esc(&field.replace('.', "-"))
            )
        })
        .collect()
}

/// A page saying a form could not be saved, for an error no field shows.
pub fn form_errors(errors: &[(String, String)], shown: &[&str]) -> String {
    errors
        .iter()
        .filter(|(f, _)| !shown.contains(&f.as_str()))
        .map(|(_, m)| format!(r#"<p class="error" role="alert">{}</p>"#, esc(m)))
        .collect()
}

/// The value of `name` in a request's raw query (`None`: absent, empty or
/// unreadable).
pub fn query_value(q: Option<&str>, name: &str) -> Option<String> {
    crate::extract::query_pairs(q)
        .ok()?
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// A "Next page" link to `path` with the API's `next` cursor and the `keep`
/// pairs (the page's filters); nothing on the last page.
pub fn next_page(path: &str, keep: &[(&str, Option<String>)], next: Option<&str>) -> String {
    let Some(next) = next else {
        return String::new();
    };
    let enc = |s: &str| {
        percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
    };
    let mut query: String = keep
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={}&", enc(v))))
        .collect();
    query.push_str(&format!("cursor={}", enc(next)));
    format!(
        r#"<nav aria-label="Pages" class="pages"><a href="{}" rel="next" id="next-page">Next page</a></nav>"#,
        esc(&format!("{path}?{query}"))
    )
}
