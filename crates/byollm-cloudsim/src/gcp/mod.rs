//! Google Cloud on the same port (`reference/gcp-facts.md` is the
//! specification): Security Token Service `POST /v1/token`, IAM Credentials
//! `generateAccessToken`, and Vertex AI `:rawPredict` / `:streamRawPredict`
//! for Claude and `:generateContent` / `:streamGenerateContent` for Gemini,
//! with workload identity pools and providers, IAM bindings and Google's
//! error bodies.
//!
//! | path | service |
//! |---|---|
//! | `POST /v1/token` | STS ([`sts`]) |
//! | `POST /v1/projects/-/serviceAccounts/{SA}:generateAccessToken` | IAM Credentials ([`sts`]) |
//! | `POST /v1/projects/{P}/locations/{L}/publishers/anthropic/models/{M}:rawPredict` (and `:streamRawPredict`) | Vertex AI, Claude ([`vertex`]) |
//! | `POST /v1/projects/{P}/locations/{L}/publishers/google/models/{M}:generateContent` (and `:streamGenerateContent?alt=sse`) | Vertex AI, Gemini ([`gemini`]) |
//! | `POST /_awsim/gcp/providers`, `POST /_awsim/gcp/bindings` | control: create a provider, grant a role |
//! | `POST /_awsim/gcp/projects` | control: register a project id and number (`{"projectId", "projectNumber"}`) |
//! | pools, providers, service accounts, IAM policies under Google's REST paths | the administrator's APIs gcloud calls ([`resources`], [`pools`], [`accounts`]) |
//!
//! Invariants: every Vertex call checks an IAM binding of `roles/aiplatform.user`
//! on the project for one of the caller's principals (never "any valid token");
//! tokens live in memory with their expiry on the emulator's clock; a provider
//! without an attribute condition admits every token of its issuer, exactly as
//! Google does (the setup byollm generates always writes one).

use byollm_policy::gcp::condition as cel;
mod accounts;
mod gemini;
mod pools;
pub(crate) mod resources;
mod sts;
mod vertex;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse as _, Response};
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use serde_json::json;

/// Counter and fault scope of the STS token exchange.
pub const STS_OP: &str = "gcp:sts.token";
/// Counter and fault scope of `generateAccessToken`.
pub const IMPERSONATE_OP: &str = "gcp:iamcredentials.generateAccessToken";
/// Counter and fault scope of `:rawPredict`.
pub const RAW_PREDICT_OP: &str = "gcp:vertex.rawPredict";
/// Counter and fault scope of `:streamRawPredict`.
pub const STREAM_RAW_PREDICT_OP: &str = "gcp:vertex.streamRawPredict";
/// Counter and fault scope of Gemini's `:generateContent`.
pub const GENERATE_CONTENT_OP: &str = "gcp:vertex.generateContent";
/// Counter and fault scope of Gemini's `:streamGenerateContent`.
pub const STREAM_GENERATE_CONTENT_OP: &str = "gcp:vertex.streamGenerateContent";

/// The role Vertex AI prediction needs (`aiplatform.endpoints.predict`).
pub const AIPLATFORM_USER: &str = "roles/aiplatform.user";
/// The role that lets a principal impersonate a service account.
pub const WORKLOAD_IDENTITY_USER: &str = "roles/iam.workloadIdentityUser";

/// Lifetime of issued access tokens unless the credential-lifetime knob is
/// set (Google's federated tokens live about an hour, gcp-facts §1.5).
pub const TOKEN_LIFETIME_SECS: i64 = 3600;

/// A workload identity pool OIDC provider, as `providers.create` takes it
/// (gcp-facts §1.1), plus where it lives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GcpProvider {
    /// The pool's project number.
    pub project_number: String,
    /// The pool id.
    pub pool_id: String,
    /// The provider id.
    pub provider_id: String,
    /// `https://…`, exactly the tokens' `iss`.
    pub issuer_uri: String,
    /// Allowed audiences; empty means the provider's own resource name.
    #[serde(default)]
    pub allowed_audiences: Vec<String>,
    /// `google.subject` / `google.groups` / `attribute.NAME` → CEL.
    pub attribute_mapping: BTreeMap<String, String>,
    /// CEL that must answer true; absent admits every token of the issuer.
    #[serde(default)]
    pub attribute_condition: Option<String>,
    /// A disabled provider exchanges nothing (`invalid_target`).
    #[serde(default)]
    pub disabled: bool,
}

impl GcpProvider {
    /// `projects/NUM/locations/global/workloadIdentityPools/POOL/providers/PROV`.
    pub fn name(&self) -> String {
        format!(
            "projects/{}/locations/global/workloadIdentityPools/{}/providers/{}",
            self.project_number, self.pool_id, self.provider_id
        )
    }

    /// `projects/NUM/locations/global/workloadIdentityPools/POOL`, the prefix
    /// of its principals.
    pub fn pool(&self) -> String {
        format!(
            "projects/{}/locations/global/workloadIdentityPools/{}",
            self.project_number, self.pool_id
        )
    }
}

/// An IAM binding: `member` has `role` on `resource` (`projects/PROJECT_ID`
/// or `serviceAccounts/EMAIL`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Binding {
    /// `projects/PROJECT_ID` or `serviceAccounts/EMAIL`.
    pub resource: String,
    /// E.g. `roles/aiplatform.user`.
    pub role: String,
    /// `principal://…`, `principalSet://…` or `serviceAccount:EMAIL`.
    pub member: String,
}

/// An access token the emulator issued.
#[derive(Debug, Clone)]
pub(crate) struct Issued {
    /// The IAM members this token acts as.
    pub members: Vec<String>,
    /// Expiry, Unix seconds.
    pub expires: i64,
    /// `principal://…/subject/SUB` or `serviceAccount:EMAIL`, for messages.
    pub principal: String,
}

/// Google's part of the emulator.
#[derive(Debug, Default)]
pub struct GcpState {
    providers: RwLock<BTreeMap<String, GcpProvider>>,
    bindings: RwLock<Vec<Binding>>,
    tokens: RwLock<HashMap<String, Issued>>,
    /// Workload identity pools ([`pools`]).
    pools: RwLock<BTreeMap<String, pools::Pool>>,
    /// Project id → number.
    projects: RwLock<BTreeMap<String, String>>,
    /// Names of deleted pools and providers: Google keeps them (undeletable
    /// for 30 days), and they exchange nothing ([`pools`]).
    deleted: RwLock<BTreeSet<String>>,
    /// Service accounts by email ([`accounts`]).
    accounts: RwLock<BTreeMap<String, accounts::Account>>,
}

impl GcpState {
    /// Creates (or replaces) a provider after checking its CEL parses.
    pub fn create_provider(&self, p: GcpProvider) -> Result<String, String> {
        if !p.issuer_uri.starts_with("https://") {
            return Err("oidc.issuerUri must be an HTTPS endpoint".into());
        }
        if !p.attribute_mapping.contains_key("google.subject") {
            return Err("attributeMapping must map google.subject".into());
        }
        for expr in p.attribute_mapping.values() {
            cel::parses(expr).map_err(|e| format!("invalid attribute mapping: {e}"))?;
        }
        if let Some(c) = &p.attribute_condition {
            if c.len() > 4096 {
                return Err("attributeCondition exceeds 4096 characters".into());
            }
            cel::parses(c).map_err(|e| format!("invalid attribute condition: {e}"))?;
        }
        let name = p.name();
        // A provider lives in a pool: one created through this library API
        // brings its (enabled) pool with it.
        self.pools.write().entry(p.pool()).or_default();
        self.providers.write().insert(name.clone(), p);
        Ok(name)
    }

    /// Changes a provider's condition (`providers.patch`).
    pub fn set_condition(&self, name: &str, condition: Option<String>) -> Result<(), String> {
        if let Some(c) = &condition {
            cel::parses(c)?;
        }
        let mut all = self.providers.write();
        let p = all.get_mut(name).ok_or("no such provider")?;
        p.attribute_condition = condition;
        Ok(())
    }

    /// Grants `role` on `resource` to `member`.
    pub fn add_binding(&self, b: Binding) {
        let mut all = self.bindings.write();
        if !all.contains(&b) {
            all.push(b);
        }
    }

    /// Revokes a binding.
    pub fn remove_binding(&self, b: &Binding) {
        self.bindings.write().retain(|x| x != b);
    }

    pub(crate) fn provider(&self, name: &str) -> Option<GcpProvider> {
        self.providers.read().get(name).cloned()
    }

    pub(crate) fn allowed(&self, resource: &str, role: &str, members: &[String]) -> bool {
        self.bindings
            .read()
            .iter()
            .any(|b| b.resource == resource && b.role == role && members.contains(&b.member))
    }

    pub(crate) fn issue(&self, token: String, issued: Issued) {
        self.tokens.write().insert(token, issued);
    }

    pub(crate) fn token(&self, token: &str) -> Option<Issued> {
        self.tokens.read().get(token).cloned()
    }

    /// Expires every access token issued so far.
    pub fn expire_tokens(&self) {
        for t in self.tokens.write().values_mut() {
            t.expires = i64::MIN;
        }
    }

    /// Forgets tokens that expired more than an hour before `now`.
    pub(crate) fn prune(&self, now: i64) {
        self.tokens
            .write()
            .retain(|_, t| t.expires.saturating_add(3600) > now);
    }
}

/// A Google API error body, `{"error": {"code", "message", "status"}}`.
pub(crate) fn google_error(code: u16, status: &str, message: &str) -> Response {
    json_response(
        code,
        &json!({"error": {"code": code, "message": message, "status": status}}),
    )
}

/// An OAuth error body, as Google's STS answers (gcp-facts §1.5).
pub(crate) fn oauth_error(code: u16, error: &str, description: &str) -> Response {
    json_response(
        code,
        &json!({"error": error, "error_description": description}),
    )
}

pub(crate) fn json_response(code: u16, v: &serde_json::Value) -> Response {
    let mut r = (
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        v.to_string(),
    )
        .into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=UTF-8"),
    );
    r
}

/// Routes a request under `/v1/` that is Google's; `None` when the path is not.
pub(crate) async fn dispatch(
    inner: &Arc<crate::Inner>,
    method: &axum::http::Method,
    path: &str,
    query: &str,
    headers: &axum::http::HeaderMap,
    body: &[u8],
) -> Option<Response> {
    if method != axum::http::Method::POST {
        return None;
    }
    if path == "/v1/token" {
        return Some(inner.gcp_sts_token(headers, body).await);
    }
    if let Some(rest) = path.strip_prefix("/v1/projects/-/serviceAccounts/")
        && let Some(sa) = rest.strip_suffix(":generateAccessToken")
    {
        return Some(inner.gcp_generate_access_token(sa, headers, body).await);
    }
    let rest = path.strip_prefix("/v1/projects/")?;
    let (model_path, verb) = rest.rsplit_once(':')?;
    let parts: Vec<&str> = model_path.split('/').collect();
    match parts.as_slice() {
        [
            project,
            "locations",
            location,
            "publishers",
            "anthropic",
            "models",
            model,
        ] => {
            let stream = match verb {
                "rawPredict" => false,
                "streamRawPredict" => true,
                _ => return None,
            };
            Some(
                inner
                    .vertex_raw_predict(project, location, model, stream, headers, body)
                    .await,
            )
        }
        [
            project,
            "locations",
            location,
            "publishers",
            "google",
            "models",
            model,
        ] => {
            let stream = match verb {
                "generateContent" => false,
                "streamGenerateContent" => true,
                _ => return None,
            };
            let sse = query.split('&').any(|kv| kv == "alt=sse");
            Some(
                inner
                    .vertex_generate_content(project, location, model, stream, sse, headers, body)
                    .await,
            )
        }
        _ => None,
    }
}

/// `POST /_awsim/gcp/providers` and `/_awsim/gcp/bindings`.
pub(crate) fn control(state: &GcpState, what: &str, body: &[u8]) -> Response {
    match what {
        "providers" => match serde_json::from_slice::<GcpProvider>(body) {
            Ok(p) => match state.create_provider(p) {
                Ok(name) => json_response(200, &json!({"name": name})),
                Err(e) => google_error(400, "INVALID_ARGUMENT", &e),
            },
            Err(e) => google_error(400, "INVALID_ARGUMENT", &e.to_string()),
        },
        "bindings" => match serde_json::from_slice::<Binding>(body) {
            Ok(b) => {
                state.add_binding(b);
                json_response(200, &json!({}))
            }
            Err(e) => google_error(400, "INVALID_ARGUMENT", &e.to_string()),
        },
        "projects" => match serde_json::from_slice::<serde_json::Value>(body) {
            Ok(v) => match (v["projectId"].as_str(), v["projectNumber"].as_str()) {
                (Some(id), Some(n)) => {
                    state.add_project(id, n);
                    json_response(200, &json!({}))
                }
                _ => google_error(400, "INVALID_ARGUMENT", "projectId and projectNumber"),
            },
            Err(e) => google_error(400, "INVALID_ARGUMENT", &e.to_string()),
        },
        _ => google_error(404, "NOT_FOUND", "unknown control resource"),
    }
}
