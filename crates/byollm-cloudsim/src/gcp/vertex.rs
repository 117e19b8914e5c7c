//! Vertex AI for Claude (gcp-facts §2.1): `:rawPredict` (a Messages response)
//! and `:streamRawPredict` (Anthropic's SSE events), the model in the URL, the
//! body an Anthropic Messages body with `anthropic_version: vertex-2023-10-16`
//! and no `model` (Anthropic's Vertex client from 2.x sends its dated API
//! version, e.g. `2026-10-21`, which is accepted too).
//!
//! Order of checks ([`Inner::vertex_gate`], shared with Gemini's
//! `generateContent` in `gemini.rs`): the bearer token (401 `UNAUTHENTICATED`); the model and
//! location (404 `NOT_FOUND`); the IAM binding of `roles/aiplatform.user` on
//! `projects/{P}` for one of the token's principals (403 `PERMISSION_DENIED`);
//! injected faults (Google's bodies: 429 `RESOURCE_EXHAUSTED`, 400
//! `FAILED_PRECONDITION`, …); the body (Anthropic's `invalid_request_error`,
//! since Anthropic's service reads it).

use axum::http::HeaderMap;
use axum::response::Response;
use byollm_api::catalog::{Catalog, Family};
use serde_json::Value;

use super::{AIPLATFORM_USER, RAW_PREDICT_OP, STREAM_RAW_PREDICT_OP, google_error, json_response};
use crate::Inner;
use crate::bedrock::invoke::{anthropic_events, anthropic_reply, message_json};
use crate::direct::{anthropic_error, sse};
use crate::util::{UPPER_ALNUM, random_chars};

/// The one `anthropic_version` Vertex AI takes in a body.
pub const VERTEX_ANTHROPIC_VERSION: &str = "vertex-2023-10-16";

/// Google's answer to an injected fault on `resource` (a publisher model),
/// whose quota is counted against `base_model` (`anthropic-claude`, `gemini`).
fn fault(code: &str, message: Option<String>, resource: &str, base_model: &str) -> Response {
    match code {
        "RESOURCE_EXHAUSTED" => google_error(
            429,
            code,
            &message.unwrap_or_else(|| format!("Quota exceeded for aiplatform.googleapis.com/online_prediction_requests_per_base_model with base model: {base_model}. Please submit a quota increase request. https://cloud.google.com/vertex-ai/docs/generative-ai/quotas-genai.")),
        ),
        "FAILED_PRECONDITION" => google_error(
            400,
            code,
            &message.unwrap_or_else(|| format!("Project is not allowed to use Publisher Model `{resource}`")),
        ),
        "UNAVAILABLE" => google_error(503, code, &message.unwrap_or_else(|| "The service is currently unavailable.".to_owned())),
        other => google_error(500, other, &message.unwrap_or_else(|| "Internal error encountered.".to_owned())),
    }
}

/// Where a Vertex AI call goes: `projects/{P}/locations/{L}/publishers/{publisher}/models/{model}`.
pub(crate) struct PublisherModel<'a> {
    pub project: &'a str,
    pub location: &'a str,
    /// `anthropic` (Claude) or `google` (Gemini).
    pub publisher: &'a str,
    pub model: &'a str,
}

impl PublisherModel<'_> {
    fn resource(&self) -> String {
        format!(
            "projects/{}/locations/{}/publishers/{}/models/{}",
            self.project, self.location, self.publisher, self.model
        )
    }

    /// A catalog model of this publisher's family serves it in this location.
    fn served(&self) -> bool {
        let family = match self.publisher {
            "anthropic" => Family::Anthropic,
            "google" => Family::Google,
            _ => return false,
        };
        Catalog::builtin()
            .models
            .iter()
            .filter(|m| m.family == family)
            .filter_map(|m| m.vertex.as_ref())
            .any(|v| v.model_id == self.model && v.serves(self.location))
    }
}

impl Inner {
    /// The checks every Vertex AI call passes before its body is read, in
    /// Google's order: the bearer token (401), the publisher model in the
    /// location (404), `roles/aiplatform.user` on the project for one of the
    /// token's principals (403), then the injected faults (429 quota, 400
    /// `FAILED_PRECONDITION`, …). Counts the call under `op`; the refusal, if any.
    pub(crate) fn vertex_gate(
        &self,
        op: &str,
        target: &PublisherModel<'_>,
        headers: &HeaderMap,
    ) -> Option<Response> {
        self.faults.count(op);
        let Some(caller) = self.gcp_caller(headers) else {
            return Some(super::sts::unauthenticated());
        };
        let resource = target.resource();
        if !target.served() {
            return Some(google_error(
                404,
                "NOT_FOUND",
                &format!("Publisher Model `{resource}` not found."),
            ));
        }
        if !self.gcp.allowed(
            &format!("projects/{}", target.project),
            AIPLATFORM_USER,
            &caller.members,
        ) {
            tracing::debug!(principal = %caller.principal, %resource, "no roles/aiplatform.user");
            return Some(google_error(
                403,
                "PERMISSION_DENIED",
                &format!(
                    "Permission 'aiplatform.endpoints.predict' denied on resource '//aiplatform.googleapis.com/{resource}' (or it may not exist)."
                ),
            ));
        }
        let base_model = if target.publisher == "anthropic" {
            "anthropic-claude".to_owned()
        } else {
            target.model.to_owned()
        };
        if !self.faults.admit(op) {
            return Some(fault("RESOURCE_EXHAUSTED", None, &resource, &base_model));
        }
        if let Some(rule) = self.faults.take_failure(op, false) {
            return Some(fault(&rule.error, rule.message, &resource, &base_model));
        }
        None
    }

    /// `POST /v1/projects/{P}/locations/{L}/publishers/anthropic/models/{M}:(stream)rawPredict`.
    pub(crate) async fn vertex_raw_predict(
        &self,
        project: &str,
        location: &str,
        model: &str,
        stream: bool,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Response {
        let op = if stream {
            STREAM_RAW_PREDICT_OP
        } else {
            RAW_PREDICT_OP
        };
        let target = PublisherModel {
            project,
            location,
            publisher: "anthropic",
            model,
        };
        if let Some(refused) = self.vertex_gate(op, &target, headers) {
            return refused;
        }
        let Ok(v) = serde_json::from_slice::<Value>(body) else {
            return google_error(400, "INVALID_ARGUMENT", "Invalid JSON payload received.");
        };
        match v.get("anthropic_version").and_then(Value::as_str) {
            // Anthropic's own Vertex client (anthropic 2.x) sends its dated
            // API version here rather than the documented `vertex-2023-10-16`,
            // and Vertex AI serves it: both are accepted, nothing else.
            Some(VERTEX_ANTHROPIC_VERSION) => {}
            Some(v) if crate::direct::is_version(v) => {}
            Some(other) => {
                return anthropic_error(
                    400,
                    "invalid_request_error",
                    &format!(
                        "anthropic_version: invalid version '{other}' (expected {VERTEX_ANTHROPIC_VERSION})"
                    ),
                );
            }
            None => {
                return anthropic_error(
                    400,
                    "invalid_request_error",
                    "anthropic_version: Field required",
                );
            }
        }
        if v.get("model").is_some() {
            return anthropic_error(
                400,
                "invalid_request_error",
                "model: Extra inputs are not permitted (on Vertex AI the model is in the URL)",
            );
        }
        let mut rest = v.clone();
        if let Some(o) = rest.as_object_mut() {
            o.remove("anthropic_version");
            o.remove("stream");
            o.remove("metadata");
        }
        let reply = match anthropic_reply(&rest, None) {
            Ok(r) => r,
            Err(e) => return anthropic_error(400, "invalid_request_error", &e.message),
        };
        let id = format!("msg_vrtx_{}", random_chars(24, UPPER_ALNUM));
        if !stream {
            return json_response(200, &message_json(&id, model, &reply));
        }
        let mut chunks: Vec<String> = anthropic_events(&id, model, &reply)
            .into_iter()
            .map(|(name, data)| format!("event: {name}\ndata: {data}\n\n"))
            .collect();
        chunks.insert(2, "event: ping\ndata: {\"type\": \"ping\"}\n\n".to_owned());
        sse(chunks, self.faults.stream_event_delay())
    }
}
