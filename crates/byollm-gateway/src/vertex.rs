//! Google Vertex AI (gcp-facts §2.1, §2.2): Claude through `:rawPredict` and
//! `:streamRawPredict`, Gemini through `:generateContent` and
//! `:streamGenerateContent?alt=sse`, with the team's brokered access token,
//! over one `reqwest` connection pool. The bodies' translation from Chat
//! Completions lives in [`crate::translate`]; the URL, auth and error
//! handling for both publishers live here.
//!
//! - The URL carries the model: `{base}/v1/projects/P/locations/L/publishers/anthropic/models/M:rawPredict`
//!   (`…/publishers/google/models/M:generateContent` for Gemini);
//!   the base is `https://aiplatform.googleapis.com` for `global`,
//!   `https://{region}-aiplatform.googleapis.com` otherwise, or the
//!   endpoint override (`--gcp-endpoint-url`, the emulator) for every location.
//! - The body is the caller's Anthropic Messages body without `model`, with
//!   `anthropic_version: vertex-2023-10-16` (and `stream: true` for a stream);
//!   `x-goog-user-project` goes with it when the team names a quota project.
//! - Google's errors ([`classify`]) become the same [`Failure`]s Bedrock's do:
//!   429 `RESOURCE_EXHAUSTED` and 5xx may pass (fall back, 503 with
//!   `Retry-After` at the end), 403 `PERMISSION_DENIED` and 400
//!   `FAILED_PRECONDITION` are permanent refusals (a 4xx no SDK retries),
//!   401 `UNAUTHENTICATED` renews the token once, any other 4xx is the
//!   caller's request.
//! - The access token is sent as a sensitive header and never logged.

use std::time::Duration;

use bytes::Bytes;
use http::HeaderValue;
use secrecy::{ExposeSecret as _, SecretString};
use serde_json::Value;

use byollm_core::settings::gcp::VertexTarget;

use crate::outcome::{FailReason, Failure};

/// The `anthropic_version` Vertex AI requires in the body (gcp-facts §2.1).
pub const VERTEX_ANTHROPIC_VERSION: &str = "vertex-2023-10-16";

/// Vertex AI's host for `global`.
pub const GLOBAL_BASE_URL: &str = "https://aiplatform.googleapis.com";

/// Vertex AI's endpoints (or the emulator's).
#[derive(Debug)]
pub struct Vertex {
    http: reqwest::Client,
    endpoint_url: Option<String>,
}

impl Vertex {
    /// Vertex AI at Google, or at `endpoint_url` for every location, giving
    /// up on a connection after `connect_timeout` (the wait for the answer is
    /// bounded by the caller, [`crate::limits`]).
    pub fn new(
        endpoint_url: Option<String>,
        connect_timeout: Duration,
    ) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .tcp_nodelay(true)
            .pool_idle_timeout(Duration::from_secs(90))
            .connect_timeout(connect_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self {
            http,
            endpoint_url: endpoint_url.map(|u| u.trim_end_matches('/').to_owned()),
        })
    }

    /// The base URL serving `location`.
    pub fn base_url(&self, location: &str) -> String {
        match &self.endpoint_url {
            Some(url) => url.clone(),
            None if location == "global" => GLOBAL_BASE_URL.to_owned(),
            None => format!("https://{location}-aiplatform.googleapis.com"),
        }
    }

    /// The `rawPredict` (or `streamRawPredict`) URL of `model_ref` for `target`.
    pub fn url(&self, target: &VertexTarget, model_ref: &str, stream: bool) -> String {
        let verb = if stream {
            "streamRawPredict"
        } else {
            "rawPredict"
        };
        self.model_url(target, "anthropic", model_ref, verb)
    }

    /// The `generateContent` (or `streamGenerateContent?alt=sse`: without
    /// `alt=sse` Google streams one JSON array) URL of Gemini `model_ref`.
    pub fn gemini_url(&self, target: &VertexTarget, model_ref: &str, stream: bool) -> String {
        let verb = if stream {
            "streamGenerateContent?alt=sse"
        } else {
            "generateContent"
        };
        self.model_url(target, "google", model_ref, verb)
    }

    fn model_url(
        &self,
        target: &VertexTarget,
        publisher: &str,
        model_ref: &str,
        verb: &str,
    ) -> String {
        format!(
            "{}/v1/projects/{}/locations/{}/publishers/{publisher}/models/{model_ref}:{verb}",
            self.base_url(&target.location),
            target.project_id,
            target.location,
        )
    }

    /// Sends a Gemini `GenerateContentRequest` body to `model_ref`; returns the
    /// response (JSON, or SSE when `stream`) once its status is a success.
    pub async fn generate_content(
        &self,
        target: &VertexTarget,
        model_ref: &str,
        token: &SecretString,
        body: serde_json::Map<String, Value>,
        stream: bool,
    ) -> Result<reqwest::Response, Failure> {
        let bytes = serde_json::to_vec(&body).map_err(|e| FailReason::Encode(e.to_string()))?;
        let url = self.gemini_url(target, model_ref, stream);
        self.send(target, url, token, bytes, None).await
    }

    /// Sends an Anthropic Messages body (the caller's, `model` and `stream`
    /// already removed) to Claude on Vertex; returns the response once its
    /// status is a success.
    pub async fn raw_predict(
        &self,
        target: &VertexTarget,
        model_ref: &str,
        token: &SecretString,
        mut body: serde_json::Map<String, Value>,
        stream: bool,
        anthropic_beta: Option<&str>,
    ) -> Result<reqwest::Response, Failure> {
        body.remove("model");
        body.insert(
            "anthropic_version".into(),
            Value::String(VERTEX_ANTHROPIC_VERSION.into()),
        );
        if stream {
            body.insert("stream".into(), Value::Bool(true));
        }
        let bytes = serde_json::to_vec(&body).map_err(|e| FailReason::Encode(e.to_string()))?;
        let url = self.url(target, model_ref, stream);
        self.send(target, url, token, bytes, anthropic_beta).await
    }

    /// POSTs `bytes` to `url` with the access token (and the quota project,
    /// the trace context); the response once its status is a success, else
    /// Google's error as a [`Failure`].
    async fn send(
        &self,
        target: &VertexTarget,
        url: String,
        token: &SecretString,
        bytes: Vec<u8>,
        anthropic_beta: Option<&str>,
    ) -> Result<reqwest::Response, Failure> {
        let mut bearer = HeaderValue::from_str(&format!("Bearer {}", token.expose_secret()))
            .map_err(|_| FailReason::CredentialsRefused("unusable access token".into()))?;
        bearer.set_sensitive(true);
        let mut req = self
            .http
            .post(url)
            .header(http::header::AUTHORIZATION, bearer)
            .header(http::header::CONTENT_TYPE, "application/json");
        if let Some(project) = &target.quota_project {
            req = req.header("x-goog-user-project", project.as_str());
        }
        if let Some(beta) = anthropic_beta {
            req = req.header("anthropic-beta", beta);
        }
        if let Some(tp) = byollm_telemetry::trace::current_traceparent() {
            req = req.header(crate::HDR_TRACEPARENT, tp);
        }
        let resp = req.body(bytes).send().await.map_err(|e| {
            if e.is_timeout() {
                crate::limits::connect_timed_out()
            } else {
                FailReason::Sdk(format!("Vertex AI unreachable: {}", without_url(&e)))
            }
        })?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status().as_u16();
        let text = resp.bytes().await.unwrap_or_default();
        Err(classify(status, &text))
    }
}

/// The first chunk of a Vertex stream: the commit point.
pub(crate) async fn first_chunk(resp: &mut reqwest::Response) -> Result<Bytes, Failure> {
    match resp.chunk().await {
        Ok(Some(b)) => Ok(b),
        Ok(None) => Err(FailReason::NoFirstChunk.into()),
        Err(e) => Err(FailReason::Sdk(format!("Vertex AI stream: {e}")).into()),
    }
}

/// Maps a Vertex AI error answer to what the gateway does next. Google's
/// bodies are `{"error": {"code", "message", "status"}}`, sometimes wrapped
/// in an array; Anthropic's (the body itself refused) are
/// `{"type": "error", "error": {"type", "message"}}`.
pub fn classify(status: u16, body: &[u8]) -> Failure {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let v = match v {
        Value::Array(mut items) if !items.is_empty() => items.swap_remove(0),
        other => other,
    };
    let err = &v["error"];
    let code = err["status"]
        .as_str()
        .or_else(|| err["type"].as_str())
        .unwrap_or("")
        .to_owned();
    let message = match err["message"].as_str() {
        Some(m) => m.to_owned(),
        None => String::from_utf8_lossy(body).chars().take(300).collect(),
    };
    let text = if code.is_empty() {
        format!("Vertex AI {status}: {message}")
    } else {
        format!("{code}: {message}")
    };
    let reason = match (status, code.as_str()) {
        (429, _) | (_, "RESOURCE_EXHAUSTED") => FailReason::Throttled(text),
        (401, _) | (_, "UNAUTHENTICATED") => FailReason::CredentialsRefused(text),
        (403, _) | (_, "PERMISSION_DENIED") => FailReason::AccessDenied(text),
        (_, "FAILED_PRECONDITION") => FailReason::ModelNotAvailable(text),
        (404, _) => FailReason::NotFound(text),
        (500.., _) => FailReason::Unavailable {
            code: if code.is_empty() {
                format!("Vertex AI {status}")
            } else {
                code
            },
            message,
        },
        _ => return Failure::Client { status, message },
    };
    Failure::Fallback(reason)
}

/// reqwest errors name the URL; keep messages short.
fn without_url(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    if let Some(url) = e.url() {
        s = s.replace(url.as_str(), "");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn google_errors_become_failures() {
        let quota = br#"[{"error":{"code":429,"message":"Quota exceeded for aiplatform.googleapis.com/online_prediction_requests_per_base_model","status":"RESOURCE_EXHAUSTED"}}]"#;
        let Failure::Fallback(r) = classify(429, quota) else {
            panic!("a quota error falls back")
        };
        assert!(r.is_transient());
        assert_eq!(
            r.to_string(),
            "throttled: RESOURCE_EXHAUSTED: Quota exceeded for aiplatform.googleapis.com/online_prediction_requests_per_base_model"
        );
        let denied = br#"{"error":{"code":403,"message":"Permission 'aiplatform.endpoints.predict' denied","status":"PERMISSION_DENIED"}}"#;
        let Failure::Fallback(r) = classify(403, denied) else {
            panic!("a refusal falls back")
        };
        assert!(!r.is_transient() && r.is_permission(), "{r}");
        let not_enabled = br#"{"error":{"code":400,"message":"Project is not allowed to use Publisher Model","status":"FAILED_PRECONDITION"}}"#;
        let Failure::Fallback(r) = classify(400, not_enabled) else {
            panic!("a model not enabled falls back")
        };
        assert_eq!(r.kind(), "model_not_available");
        assert!(!r.is_transient());
        let Failure::Fallback(r) = classify(503, b"upstream connect error") else {
            panic!("an outage falls back")
        };
        assert!(r.is_transient());
        assert!(matches!(
            classify(
                401,
                br#"{"error":{"code":401,"message":"x","status":"UNAUTHENTICATED"}}"#
            ),
            Failure::Fallback(FailReason::CredentialsRefused(_))
        ));
        let bad = br#"{"type":"error","error":{"type":"invalid_request_error","message":"max_tokens: Field required"}}"#;
        assert_eq!(
            classify(400, bad),
            Failure::Client {
                status: 400,
                message: "max_tokens: Field required".into()
            }
        );
    }

    #[test]
    fn urls_per_location_and_override() {
        let target = VertexTarget {
            project_id: "acme-ml-prod".into(),
            location: "global".into(),
            quota_project: None,
            pool: byollm_federation::gcp::PoolTarget {
                audience: "a".into(),
                service_account: None,
            },
        };
        let google = Vertex::new(None, Duration::from_secs(1)).unwrap();
        assert_eq!(
            google.url(&target, "claude-sonnet-4-5@20250929", false),
            "https://aiplatform.googleapis.com/v1/projects/acme-ml-prod/locations/global/publishers/anthropic/models/claude-sonnet-4-5@20250929:rawPredict"
        );
        let regional = VertexTarget {
            location: "us-east5".into(),
            ..target.clone()
        };
        assert_eq!(
            google.url(&regional, "claude-opus-4-6", true),
            "https://us-east5-aiplatform.googleapis.com/v1/projects/acme-ml-prod/locations/us-east5/publishers/anthropic/models/claude-opus-4-6:streamRawPredict"
        );
        let sim = Vertex::new(
            Some("http://127.0.0.1:4566/".into()),
            Duration::from_secs(1),
        )
        .unwrap();
        assert!(
            sim.url(&regional, "m", false)
                .starts_with("http://127.0.0.1:4566/v1/projects/acme-ml-prod/locations/us-east5/")
        );
        assert_eq!(
            google.gemini_url(&target, "gemini-2.5-pro", false),
            "https://aiplatform.googleapis.com/v1/projects/acme-ml-prod/locations/global/publishers/google/models/gemini-2.5-pro:generateContent"
        );
        assert_eq!(
            google.gemini_url(&regional, "gemini-2.5-flash", true),
            "https://us-east5-aiplatform.googleapis.com/v1/projects/acme-ml-prod/locations/us-east5/publishers/google/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
        );
    }
}
