//! Vertex AI for Claude (gcp-facts §2.1): `:rawPredict` (a Messages response)
//! and `:streamRawPredict` (Anthropic's SSE events), the model in the URL, the
//! body an Anthropic Messages body with `anthropic_version: vertex-2023-10-16`
//! and no `model`.
//!
//! Order of checks: the bearer token (401 `UNAUTHENTICATED`); the model and
//! location (404 `NOT_FOUND`); the IAM binding of `roles/aiplatform.user` on
//! `projects/{P}` for one of the token's principals (403 `PERMISSION_DENIED`);
//! injected faults (Google's bodies: 429 `RESOURCE_EXHAUSTED`, 400
//! `FAILED_PRECONDITION`, …); the body (Anthropic's `invalid_request_error`,
//! since Anthropic's service reads it).

use axum::http::HeaderMap;
use axum::response::Response;
use byollm_api::catalog::Catalog;
use serde_json::Value;

use super::{AIPLATFORM_USER, RAW_PREDICT_OP, STREAM_RAW_PREDICT_OP, google_error, json_response};
use crate::Inner;
use crate::bedrock::invoke::{anthropic_events, anthropic_reply, message_json};
use crate::direct::{anthropic_error, sse};
use crate::util::{UPPER_ALNUM, random_chars};

/// The one `anthropic_version` Vertex AI takes in a body.
pub const VERTEX_ANTHROPIC_VERSION: &str = "vertex-2023-10-16";

fn fault(code: &str, message: Option<String>, resource: &str) -> Response {
    match code {
        "RESOURCE_EXHAUSTED" => google_error(
            429,
            code,
            &message.unwrap_or_else(|| "Quota exceeded for aiplatform.googleapis.com/online_prediction_requests_per_base_model with base model: anthropic-claude. Please submit a quota increase request. https://cloud.google.com/vertex-ai/docs/generative-ai/quotas-genai.".to_owned()),
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

impl Inner {
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
        self.faults.count(op);
        let Some(caller) = self.gcp_caller(headers) else {
            return super::sts::unauthenticated();
        };
        let resource =
            format!("projects/{project}/locations/{location}/publishers/anthropic/models/{model}");
        let served = Catalog::builtin()
            .models
            .iter()
            .filter_map(|m| m.vertex.as_ref())
            .any(|v| v.model_id == model && v.serves(location));
        if !served {
            return google_error(
                404,
                "NOT_FOUND",
                &format!("Publisher Model `{resource}` not found."),
            );
        }
        if !self.gcp.allowed(
            &format!("projects/{project}"),
            AIPLATFORM_USER,
            &caller.members,
        ) {
            tracing::debug!(principal = %caller.principal, %resource, "no roles/aiplatform.user");
            return google_error(
                403,
                "PERMISSION_DENIED",
                &format!(
                    "Permission 'aiplatform.endpoints.predict' denied on resource '//aiplatform.googleapis.com/{resource}' (or it may not exist)."
                ),
            );
        }
        if !self.faults.admit(op) {
            return fault("RESOURCE_EXHAUSTED", None, &resource);
        }
        if let Some(rule) = self.faults.take_failure(op, false) {
            return fault(&rule.error, rule.message, &resource);
        }
        let Ok(v) = serde_json::from_slice::<Value>(body) else {
            return google_error(400, "INVALID_ARGUMENT", "Invalid JSON payload received.");
        };
        match v.get("anthropic_version").and_then(Value::as_str) {
            Some(VERTEX_ANTHROPIC_VERSION) => {}
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
