//! The administrator's side of Google on the emulator: projects, IAM
//! policies (Resource Manager v1 for projects, IAM v1 for service accounts),
//! workload identity pools and providers ([`super::pools`]) and service
//! accounts ([`super::accounts`]) under Google's REST paths, so the real
//! `gcloud` — pointed here with `api_endpoint_overrides/iam` and
//! `…/cloudresourcemanager` — runs the script `byollm gcp setup-script`
//! writes (issue 17). The paths are those `gcloud --log-http` calls:
//!
//! | request | service |
//! |---|---|
//! | `…/v1/projects/{P}/locations/global/workloadIdentityPools…` | pools and providers ([`super::pools`]) |
//! | `…/v1/projects/{P or -}/serviceAccounts[/{EMAIL}]` | service accounts ([`super::accounts`]) |
//! | `GET /v1/projects/{P}` | a project (id and number) |
//! | `POST /v1/projects/{P}:getIamPolicy`, `:setIamPolicy` | the project's policy |
//! | `POST /v1/projects/{P}/serviceAccounts/{SA}:getIamPolicy`, `:setIamPolicy` | a service account's policy (404 when it does not exist) |
//!
//! Invariants: `{P}` is a project id registered with
//! [`GcpState::add_project`] (or `POST /_awsim/gcp/projects`) or a number;
//! unknown projects answer 403 as Google does. Pools and providers live under
//! the project's number, the name STS audiences use. The caller must carry a
//! bearer token, and it may not be one the emulator issued to a federated
//! principal or service account: those hold no administrative role. Policies
//! are the emulator's bindings (the ones Vertex AI and impersonation check),
//! with an etag that `setIamPolicy` compares, as Google does.

use std::collections::BTreeMap;

use axum::http::{HeaderMap, Method};
use axum::response::Response;
use base64::Engine as _;
use serde_json::{Value, json};

use super::{Binding, GcpState, accounts, google_error, json_response, pools};
use crate::util::{parse_form, random_chars};

pub(crate) fn not_found() -> Response {
    google_error(404, "NOT_FOUND", "Requested entity was not found.")
}

fn denied(permission: &str) -> Response {
    google_error(
        403,
        "PERMISSION_DENIED",
        &format!("Permission '{permission}' denied on resource (or it may not exist)."),
    )
}

pub(crate) fn invalid(message: &str) -> Response {
    google_error(400, "INVALID_ARGUMENT", message)
}

/// A done long-running operation carrying `resource`.
pub(crate) fn operation(name: &str, kind: &str, resource: Value) -> Response {
    let mut response = resource;
    if let Some(o) = response.as_object_mut() {
        o.insert(
            "@type".into(),
            Value::String(format!("type.googleapis.com/google.iam.v1.{kind}")),
        );
    }
    json_response(
        200,
        &json!({"name": format!("{name}/operations/{}", random_chars(16, b"abcdef0123456789")),
                "done": true, "response": response}),
    )
}

impl GcpState {
    /// Registers a project id and its number (for paths naming the id).
    pub fn add_project(&self, project_id: &str, project_number: &str) {
        self.projects
            .write()
            .insert(project_id.to_owned(), project_number.to_owned());
    }

    /// `(id, number)` of a project named by id or number.
    fn project(&self, p: &str) -> Option<(String, String)> {
        let all = self.projects.read();
        if let Some(n) = all.get(p) {
            return Some((p.to_owned(), n.clone()));
        }
        if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) {
            let id = all
                .iter()
                .find(|(_, n)| n.as_str() == p)
                .map_or_else(|| p.to_owned(), |(i, _)| i.clone());
            return Some((id, p.to_owned()));
        }
        None
    }

    /// The IAM policy of `resource`: its bindings grouped by role, and an
    /// etag that changes whenever they do.
    fn policy(&self, resource: &str) -> Value {
        let mut roles: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for b in self
            .bindings
            .read()
            .iter()
            .filter(|b| b.resource == resource)
        {
            roles
                .entry(b.role.clone())
                .or_default()
                .push(b.member.clone());
        }
        let bindings: Vec<Value> = roles
            .iter()
            .map(|(role, members)| json!({"role": role, "members": members}))
            .collect();
        let etag = etag(&bindings);
        json!({"version": 1, "etag": etag, "bindings": bindings})
    }

    /// `setIamPolicy`: replaces `resource`'s bindings, refusing a stale etag.
    fn set_policy(&self, resource: &str, body: &[u8]) -> Response {
        let Ok(req) = serde_json::from_slice::<Value>(body) else {
            return invalid("Invalid JSON payload received.");
        };
        let policy = &req["policy"];
        let current = self.policy(resource);
        // An etag is base64 bytes; gcloud (apitools) sends it back in the
        // URL-safe alphabet, which Google accepts as the same bytes.
        let same = |a: &str, b: &str| a.replace('-', "+").replace('_', "/") == b;
        if let Some(e) = policy["etag"].as_str()
            && !current["etag"].as_str().is_some_and(|c| same(e, c))
        {
            return google_error(
                409,
                "ABORTED",
                "There were concurrent policy changes. Please retry the whole read-modify-write with exponential backoff.",
            );
        }
        let mut new = Vec::new();
        for b in policy["bindings"].as_array().map_or(&[][..], Vec::as_slice) {
            if !b["condition"].is_null() {
                return invalid("The emulator does not model conditional role bindings.");
            }
            let Some(role) = b["role"].as_str().filter(|r| r.starts_with("roles/")) else {
                return invalid("Role must be of the form roles/NAME.");
            };
            for m in b["members"].as_array().map_or(&[][..], Vec::as_slice) {
                let Some(member) = m.as_str() else {
                    return invalid("Members must be strings.");
                };
                new.push(Binding {
                    resource: resource.to_owned(),
                    role: role.to_owned(),
                    member: member.to_owned(),
                });
            }
        }
        {
            let mut all = self.bindings.write();
            all.retain(|b| b.resource != resource);
            for b in new {
                if !all.contains(&b) {
                    all.push(b);
                }
            }
        }
        json_response(200, &self.policy(resource))
    }
}

fn etag(bindings: &[Value]) -> String {
    // FNV-1a over the canonical JSON: stable, changes with any binding.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in Value::Array(bindings.to_vec()).to_string().bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    base64::engine::general_purpose::STANDARD.encode(h.to_be_bytes())
}

/// The bearer must be present and not a token the emulator issued; the
/// refusal otherwise.
fn refuse_non_admin(state: &GcpState, headers: &HeaderMap) -> Option<Response> {
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .filter(|t| !t.trim().is_empty());
    match bearer {
        None => Some(super::sts::unauthenticated()),
        Some(t) if state.token(t.trim()).is_some() => {
            Some(denied("iam.workloadIdentityPools.create"))
        }
        Some(_) => None,
    }
}

/// Routes one administrative request; `None` when the path is not one.
pub(crate) fn dispatch(
    state: &GcpState,
    method: &Method,
    path: &str,
    query: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Option<Response> {
    let rest = path.strip_prefix("/v1/projects/")?;
    let (resource, verb) = match rest.rsplit_once(':') {
        Some((r, v)) if !r.contains("/publishers/") && !v.contains('/') => (r, Some(v)),
        _ => (rest, None),
    };
    let parts: Vec<&str> = resource.split('/').collect();
    let q = parse_form(query);
    let param = |k: &str| q.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let route = match (parts.as_slice(), verb) {
        ([_], Some("getIamPolicy" | "setIamPolicy")) => Route::ProjectPolicy,
        ([_], None) if method == Method::GET => Route::Project,
        ([_, "serviceAccounts", sa], Some(v @ ("getIamPolicy" | "setIamPolicy"))) => {
            Route::AccountPolicy(sa, v == "setIamPolicy")
        }
        ([_, "serviceAccounts"], None) => Route::Accounts(None),
        ([_, "serviceAccounts", sa], None) => Route::Accounts(Some(sa)),
        ([_, "locations", "global", "workloadIdentityPools", ..], None | Some("undelete")) => {
            Route::Pools
        }
        _ => return None,
    };
    if let Some(r) = refuse_non_admin(state, headers) {
        return Some(r);
    }
    // `projects/-/serviceAccounts/EMAIL`: the project is the account's.
    let project = match (parts[0], &route) {
        ("-", Route::Accounts(Some(sa)) | Route::AccountPolicy(sa, _)) => {
            match state.account_project(sa) {
                Some(p) => state.project(&p).or(Some((p, String::new()))),
                None => {
                    return Some(match &route {
                        Route::Accounts(_) => {
                            accounts::dispatch(state, method, "-", Some(sa), body)
                        }
                        _ => accounts::missing("-", sa),
                    });
                }
            }
        }
        (p, _) => state.project(p),
    };
    let Some((project_id, number)) = project else {
        return Some(denied("resourcemanager.projects.get"));
    };
    Some(match route {
        Route::Project => json_response(
            200,
            &json!({"projectId": project_id, "projectNumber": number,
                    "lifecycleState": "ACTIVE", "name": project_id}),
        ),
        Route::ProjectPolicy => {
            let resource = format!("projects/{project_id}");
            match verb {
                Some("setIamPolicy") => state.set_policy(&resource, body),
                _ => json_response(200, &state.policy(&resource)),
            }
        }
        Route::AccountPolicy(sa, _) if !state.service_account_exists(sa) => {
            accounts::missing(&project_id, sa)
        }
        Route::AccountPolicy(sa, set) => {
            let resource = format!("serviceAccounts/{sa}");
            match set {
                true => state.set_policy(&resource, body),
                false => json_response(200, &state.policy(&resource)),
            }
        }
        Route::Accounts(sa) => accounts::dispatch(state, method, &project_id, sa, body),
        Route::Pools => {
            let tail: Vec<&str> = parts[4..].to_vec();
            let prefix = format!("projects/{number}/locations/global/workloadIdentityPools");
            pools::dispatch(state, method, verb, &prefix, &tail, &param, body)
        }
    })
}

enum Route<'a> {
    Project,
    ProjectPolicy,
    AccountPolicy(&'a str, bool),
    Accounts(Option<&'a str>),
    Pools,
}
