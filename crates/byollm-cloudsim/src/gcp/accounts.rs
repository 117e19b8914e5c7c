//! Service accounts (IAM v1), as `gcloud iam service-accounts …` calls them
//! (paths read from `gcloud --log-http`):
//!
//! | request | gcloud |
//! |---|---|
//! | `POST /v1/projects/{P}/serviceAccounts` (`{"accountId", "serviceAccount": {…}}`) | `create` |
//! | `GET /v1/projects/{P}/serviceAccounts` | `list` |
//! | `GET`, `DELETE` `/v1/projects/{P or -}/serviceAccounts/{EMAIL}` | `describe`, `delete` |
//! | `POST …/serviceAccounts/{EMAIL}:getIamPolicy`, `:setIamPolicy` | `add-iam-policy-binding` (in [`super::resources`]) |
//!
//! Invariants: an account's email is `ID@PROJECT_ID.iam.gserviceaccount.com`;
//! a policy read or written on an account that does not exist is 404, and
//! impersonating one (`generateAccessToken`) is refused with the same 403 as a
//! missing grant — Google's message says "(or it may not exist)" and tells the
//! caller nothing more. Deleting an account drops its own policy. The 404
//! wordings ("Unknown service account", "… does not exist.") are those gcloud
//! prints against Google; they are not in gcp-facts.

use axum::http::Method;
use axum::response::Response;
use serde_json::{Value, json};

use super::resources::invalid;
use super::{GcpState, google_error, json_response};
use crate::util::random_chars;

/// A service account.
#[derive(Debug, Clone)]
pub(crate) struct Account {
    project_id: String,
    unique_id: String,
    display_name: String,
    description: String,
}

/// The domain of a project's service accounts.
const DOMAIN: &str = "iam.gserviceaccount.com";

impl GcpState {
    /// Creates service account `account_id` in `project_id` (idempotent);
    /// returns its email. Impersonation needs the account to exist.
    pub fn add_service_account(&self, project_id: &str, account_id: &str) -> String {
        let email = format!("{account_id}@{project_id}.{DOMAIN}");
        self.accounts
            .write()
            .entry(email.clone())
            .or_insert_with(|| Account {
                project_id: project_id.to_owned(),
                unique_id: format!("1{}", random_chars(20, b"0123456789")),
                display_name: String::new(),
                description: String::new(),
            });
        email
    }

    /// Whether the service account `email` exists.
    pub fn service_account_exists(&self, email: &str) -> bool {
        self.accounts.read().contains_key(email)
    }

    /// The project id of the service account `email`.
    pub(crate) fn account_project(&self, email: &str) -> Option<String> {
        self.accounts
            .read()
            .get(email)
            .map(|a| a.project_id.clone())
    }

    fn account_json(&self, email: &str) -> Option<Value> {
        let all = self.accounts.read();
        let a = all.get(email)?;
        Some(json!({
            "name": format!("projects/{}/serviceAccounts/{email}", a.project_id),
            "projectId": a.project_id, "uniqueId": a.unique_id, "email": email,
            "displayName": a.display_name, "description": a.description,
            "etag": "MDEwMjE5MjA=", "oauth2ClientId": a.unique_id}))
    }
}

/// The 404 for a policy read or written on an account that does not exist.
pub(crate) fn missing(project: &str, email: &str) -> Response {
    google_error(
        404,
        "NOT_FOUND",
        &format!("Service account projects/{project}/serviceAccounts/{email} does not exist."),
    )
}

/// `…/serviceAccounts[/EMAIL]` in project `project_id` (`-` for any).
pub(crate) fn dispatch(
    state: &GcpState,
    method: &Method,
    project_id: &str,
    email: Option<&str>,
    body: &[u8],
) -> Response {
    let unknown = || google_error(404, "NOT_FOUND", "Unknown service account");
    match (method.as_str(), email) {
        ("POST", None) => {
            let Ok(req) = serde_json::from_slice::<Value>(body) else {
                return invalid("Invalid JSON payload received.");
            };
            let Some(id) = req["accountId"].as_str().filter(|id| valid_account_id(id)) else {
                return invalid(
                    "accountId must be 6-30 characters of [a-z0-9-], starting with a letter and not ending with a hyphen.",
                );
            };
            let email = format!("{id}@{project_id}.{DOMAIN}");
            if state.service_account_exists(&email) {
                return google_error(
                    409,
                    "ALREADY_EXISTS",
                    &format!(
                        "Service account {id} already exists within project projects/{project_id}."
                    ),
                );
            }
            state.add_service_account(project_id, id);
            if let Some(a) = state.accounts.write().get_mut(&email) {
                let text = |f: &str| {
                    req["serviceAccount"][f]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned()
                };
                a.display_name = text("displayName");
                a.description = text("description");
            }
            json_response(200, &state.account_json(&email).unwrap_or(Value::Null))
        }
        ("GET", None) => {
            let accounts: Vec<Value> = state
                .accounts
                .read()
                .iter()
                .filter(|(_, a)| a.project_id == project_id)
                .map(|(e, _)| e.clone())
                .collect::<Vec<_>>()
                .iter()
                .filter_map(|e| state.account_json(e))
                .collect();
            json_response(
                200,
                &match accounts.is_empty() {
                    true => json!({}),
                    false => json!({ "accounts": accounts }),
                },
            )
        }
        ("GET", Some(email)) => state
            .account_json(email)
            .map_or_else(unknown, |v| json_response(200, &v)),
        ("DELETE", Some(email)) => {
            if state.accounts.write().remove(email).is_none() {
                return unknown();
            }
            let resource = format!("serviceAccounts/{email}");
            state.bindings.write().retain(|b| b.resource != resource);
            json_response(200, &json!({}))
        }
        _ => google_error(404, "NOT_FOUND", "Requested entity was not found."),
    }
}

/// Google's account id rule: 6-30 characters, `[a-z]([-a-z0-9]*[a-z0-9])`.
fn valid_account_id(id: &str) -> bool {
    (6..=30).contains(&id.len())
        && id.starts_with(|c: char| c.is_ascii_lowercase())
        && !id.ends_with('-')
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}
