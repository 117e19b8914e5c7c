//! Members and roles (admins): the list, add (the one-time invitation code is
//! shown once, on the answer to the form), change a role, remove.
//!
//! Every operation is the API's: the rules (only owners add, demote or remove
//! owners; a team keeps one owner) refuse with the API's words on a 403 or 409
//! page, and a member who is not an admin gets the 403 page.

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::http::header::LOCATION;
use axum::response::{IntoResponse, Response};
use secrecy::{ExposeSecret as _, SecretString};

use byollm_api::types::{MemberCreate, MemberPatch, PageQuery, Role};
use byollm_core::CoreError;

use super::html::{self, esc, field_error, form_errors};
use super::session::{Session, form_pairs};
use super::{MEMBER_REMOVE, MEMBER_ROLE, MEMBERS};
use crate::app::AppState;

const ROLES: [Role; 3] = [Role::Member, Role::Admin, Role::Owner];

/// A member just added and their invitation code, shown on this page only.
struct Invited {
    email: String,
    code: SecretString,
    expires_at: String,
}

fn role_select(id: &str, current: Role) -> String {
    let options: String = ROLES
        .iter()
        .map(|r| {
            format!(
                r#"<option value="{v}"{sel}>{v}</option>"#,
                v = r.as_str(),
                sel = if *r == current { " selected" } else { "" }
            )
        })
        .collect();
    format!(r#"<select id="{id}" name="role">{options}</select>"#)
}

async fn page(
    state: &AppState,
    s: &Session,
    invited: Option<Invited>,
    errors: &[(String, String)],
    status: StatusCode,
    cursor: Option<String>,
) -> Response {
    let query = PageQuery {
        cursor,
        ..PageQuery::default()
    };
    let list = match state.core.list_members(&s.principal, query).await {
        Ok(l) => l,
        Err(e) => return html::core_error(e, Some(s)),
    };
    let notice = invited.map_or_else(String::new, |i| {
        format!(
            r#"<section class="notice" aria-labelledby="invite-h"><h2 id="invite-h">{email} was added</h2>
<p>Send them this one-time invitation code (valid until {until}); it is shown this once. They redeem it with <code>byollm login --invite CODE</code>.</p>
<p><code class="secret" id="invitation-code">{code}</code> <button type="button" class="secondary" data-copy="invitation-code">Copy</button></p></section>"#,
            email = esc(&i.email),
            until = esc(&i.expires_at),
            code = esc(i.code.expose_secret()),
        )
    });
    let csrf = html::csrf_input(s);
    let rows: String = list
        .members
        .iter()
        .map(|m| {
            let select_id = format!("role-{}", m.uid);
            format!(
                r#"<tr><td>{email}</td><td><code>{uid}</code></td><td><form method="post" action="{role_action}" class="inline-form">{csrf}<label class="inline" for="{select_id}">Role of {email}</label> {select} <button type="submit" class="secondary">Change role</button></form></td><td><form method="post" action="{remove_action}" class="inline-form">{csrf}<button type="submit" class="danger" aria-label="Remove {email}">Remove</button></form></td></tr>"#,
                email = esc(&m.email),
                uid = esc(&m.uid),
                role_action = esc(&MEMBER_ROLE.replace("{uid}", &m.uid)),
                remove_action = esc(&MEMBER_REMOVE.replace("{uid}", &m.uid)),
                select = role_select(&esc(&select_id), m.role),
                select_id = esc(&select_id),
            )
        })
        .collect();
    let body = format!(
        r#"{notice}<table><caption>Members</caption><thead><tr><th scope="col">Email</th><th scope="col">Uid</th><th scope="col">Role</th><th scope="col">Remove</th></tr></thead><tbody>{rows}</tbody></table>{more}
<h2>Add a member</h2>{general}<form method="post" action="{MEMBERS}" novalidate>{csrf}
<label for="email">Email</label><input type="text" id="email" name="email" aria-describedby="email-error">{email_err}
<label for="new-role">Role</label>{select}{role_err}
<button type="submit">Add member</button></form>"#,
        general = form_errors(errors, &["email", "role"]),
        email_err = field_error(errors, "email"),
        role_err = field_error(errors, "role"),
        select = role_select("new-role", Role::Member),
        more = html::next_page(MEMBERS, &[], list.next_cursor.as_deref()),
    );
    html::page(status, "Members", Some(s), &body)
}

fn value<'a>(pairs: &'a [(String, String)], key: &str) -> &'a str {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map_or("", |(_, v)| v.trim())
}

/// The role a form names, or the field's error in the API's words.
fn role_of(pairs: &[(String, String)]) -> Result<Role, (String, String)> {
    Role::parse(value(pairs, "role")).ok_or_else(|| {
        (
            "role".to_owned(),
            "role: expected member, admin or owner".to_owned(),
        )
    })
}

/// `GET /console/members`.
pub async fn list(State(state): State<AppState>, s: Session, RawQuery(q): RawQuery) -> Response {
    let cursor = html::query_value(q.as_deref(), "cursor");
    page(&state, &s, None, &[], StatusCode::OK, cursor).await
}

/// `POST /console/members`: adds a member and shows their invitation once.
pub async fn create(State(state): State<AppState>, s: Session, body: Bytes) -> Response {
    let pairs = match form_pairs(&body) {
        Ok(p) => p,
        Err(bad) => return bad.into_response(),
    };
    let role = match role_of(&pairs) {
        Ok(r) => r,
        Err(e) => return page(&state, &s, None, &[e], StatusCode::BAD_REQUEST, None).await,
    };
    let email = value(&pairs, "email").to_owned();
    let req = MemberCreate {
        email: email.clone(),
        role,
    };
    match state.core.create_member(&s.principal, req).await {
        Ok(created) => {
            let invited = Invited {
                email,
                code: SecretString::from(created.invitation.code.expose().to_owned()),
                expires_at: created.invitation.expires_at,
            };
            page(&state, &s, Some(invited), &[], StatusCode::CREATED, None).await
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

/// `POST /console/members/{uid}/role`.
pub async fn change_role(
    State(state): State<AppState>,
    s: Session,
    Path(uid): Path<String>,
    body: Bytes,
) -> Response {
    let pairs = match form_pairs(&body) {
        Ok(p) => p,
        Err(bad) => return bad.into_response(),
    };
    let role = match role_of(&pairs) {
        Ok(r) => r,
        Err(e) => return page(&state, &s, None, &[e], StatusCode::BAD_REQUEST, None).await,
    };
    match state
        .core
        .patch_member(&s.principal, &uid, MemberPatch { role })
        .await
    {
        Ok(_) => (StatusCode::SEE_OTHER, [(LOCATION, MEMBERS)]).into_response(),
        Err(e) => html::core_error(e, Some(&s)),
    }
}

/// `POST /console/members/{uid}/remove`.
pub async fn remove(
    State(state): State<AppState>,
    s: Session,
    Path(uid): Path<String>,
) -> Response {
    match state.core.delete_member(&s.principal, &uid).await {
        Ok(()) => (StatusCode::SEE_OTHER, [(LOCATION, MEMBERS)]).into_response(),
        Err(e) => html::core_error(e, Some(&s)),
    }
}
