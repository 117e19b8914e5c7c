//! API keys: the list the API gives the caller (never a key itself), create
//! (the key is shown once, on the answer to the form, never again and never
//! stored in the browser) and revoke.
//!
//! Revoking the key the session was opened with ends the session: the next
//! request finds the key gone and is sent to sign in.

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::http::header::LOCATION;
use axum::response::{IntoResponse, Response};
use secrecy::SecretString;

use byollm_api::types::{ApiKeyCreate, PageQuery};
use byollm_core::CoreError;

use super::html::{self, esc, field_error, form_errors};
use super::session::{Session, form_pairs};
use super::{KEY_REVOKE, KEYS};
use crate::app::AppState;

/// The key just created, shown on this page only.
struct Created {
    name: String,
    key: SecretString,
}

async fn page(
    state: &AppState,
    s: &Session,
    created: Option<Created>,
    errors: &[(String, String)],
    status: StatusCode,
    cursor: Option<String>,
) -> Response {
    let query = PageQuery {
        cursor,
        ..PageQuery::default()
    };
    let list = match state.core.list_api_keys(&s.principal, query).await {
        Ok(l) => l,
        Err(e) => return html::core_error(e, Some(s)),
    };
    let notice = created.map_or_else(String::new, |c| {
        use secrecy::ExposeSecret as _;
        format!(
            r#"<section class="notice" aria-labelledby="new-key-h"><h2 id="new-key-h">Your new key "{name}"</h2>
<p>Copy it now: it is shown this once and cannot be read again.</p>
<p><code class="secret" id="new-key">{key}</code> <button type="button" class="secondary" data-copy="new-key">Copy</button></p></section>"#,
            name = esc(&c.name),
            key = esc(c.key.expose_secret()),
        )
    });
    let rows: String = list
        .api_keys
        .iter()
        .map(|k| {
            format!(
                r#"<tr><td>{name}</td><td><code>{prefix}…</code></td><td><code>{owner}</code></td><td>{created}</td><td>{expires}</td><td><form method="post" action="{action}" class="inline-form">{csrf}<button type="submit" class="danger" aria-label="Revoke key {name}">Revoke</button></form></td></tr>"#,
                name = esc(&k.name),
                prefix = esc(&k.prefix),
                owner = esc(&k.owner.uid),
                created = esc(&k.created_at),
                expires = esc(k.expires_at.as_deref().unwrap_or("never")),
                action = esc(&KEY_REVOKE.replace("{id}", &k.id)),
                csrf = html::csrf_input(s),
            )
        })
        .collect();
    let body = format!(
        r#"{notice}<table><caption>API keys</caption><thead><tr><th scope="col">Name</th><th scope="col">Starts with</th><th scope="col">Owner</th><th scope="col">Created</th><th scope="col">Expires</th><th scope="col">Revoke</th></tr></thead><tbody>{rows}</tbody></table>{more}
<h2>Create a key</h2>{general}<form method="post" action="{KEYS}" novalidate>{csrf}
<label for="key-name">Name</label><input type="text" id="key-name" name="name" aria-describedby="name-error">{name_err}
<button type="submit">Create key</button></form>"#,
        general = form_errors(errors, &["name"]),
        csrf = html::csrf_input(s),
        name_err = field_error(errors, "name"),
        more = html::next_page(KEYS, &[], list.next_cursor.as_deref()),
    );
    let mut resp = html::page(status, "API keys", Some(s), &body);
    resp.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    resp
}

/// `GET /console/keys`.
pub async fn list(State(state): State<AppState>, s: Session, RawQuery(q): RawQuery) -> Response {
    let cursor = html::query_value(q.as_deref(), "cursor");
    page(&state, &s, None, &[], StatusCode::OK, cursor).await
}

/// `POST /console/keys`: creates a key for the caller and shows it once.
pub async fn create(State(state): State<AppState>, s: Session, body: Bytes) -> Response {
    let pairs = match form_pairs(&body) {
        Ok(p) => p,
        Err(bad) => return bad.into_response(),
    };
    let name = pairs
        .iter()
        .find(|(k, _)| k == "name")
        .map_or("", |(_, v)| v.trim())
        .to_owned();
    let req = ApiKeyCreate {
        name: name.clone(),
        agent_uid: None,
        expires_at: None,
    };
    match state.core.create_api_key(&s.principal, req).await {
        Ok(created) => {
            let created = Created {
                name,
                key: SecretString::from(created.key.expose().to_owned()),
            };
            page(&state, &s, Some(created), &[], StatusCode::CREATED, None).await
        }
        Err(CoreError::Invalid(f)) => {
            let message = format!("{}: {}", f.field, f.message);
            page(
                &state,
                &s,
                None,
                &[(f.field, message)],
                StatusCode::BAD_REQUEST,
                None,
            )
            .await
        }
        Err(e) => html::core_error(e, Some(&s)),
    }
}

/// `POST /console/keys/{id}/revoke`.
pub async fn revoke(State(state): State<AppState>, s: Session, Path(id): Path<String>) -> Response {
    match state.core.delete_api_key(&s.principal, &id).await {
        Ok(()) => (StatusCode::SEE_OTHER, [(LOCATION, KEYS)]).into_response(),
        Err(e) => html::core_error(e, Some(&s)),
    }
}
