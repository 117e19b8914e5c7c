//! Gateway errors, rendered in the caller's own API error format so SDKs parse
//! them: Anthropic `{"type":"error","error":{"type","message"}}`, OpenAI
//! `{"error":{"message","type","code"}}`. Every error that ends a request lists
//! the attempts made and their causes.

use axum::Json;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::json;

use byollm_core::CoreError;

use crate::outcome::OK;

/// Which API the caller speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiFormat {
    /// Anthropic Messages.
    Anthropic,
    /// OpenAI Chat Completions.
    OpenAi,
}

impl ApiFormat {
    /// The `format` label of the gateway's metrics.
    pub fn as_label(self) -> &'static str {
        match self {
            ApiFormat::Anthropic => "anthropic",
            ApiFormat::OpenAi => "openai",
        }
    }
}

/// One try of one route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Attempt {
    /// `aws_bedrock:<ref>@<region>` or `direct_api:<model>`.
    pub route: String,
    /// [`OK`], or why it failed or was skipped (words from [`crate::outcome`]).
    pub outcome: String,
}

/// Why a request ended without an answer.
#[derive(Debug, Clone)]
pub struct GatewayError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable code (`invalid_request`, `no_route`, `upstream_failed`, …).
    pub code: &'static str,
    /// What happened.
    pub message: String,
    /// What the admin or caller can change.
    pub hint: Option<String>,
    /// Every attempt so far.
    pub attempts: Vec<Attempt>,
}

/// `Retry-After` on a transient failure of every route (503, 504): long enough
/// for a throttle's bucket or a brief outage to pass, short for an interactive
/// caller.
pub const RETRY_AFTER_SECONDS: u64 = 5;

impl GatewayError {
    /// A caller error (400), never retried elsewhere.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            code: "invalid_request",
            message: message.into(),
            hint: None,
            attempts: Vec::new(),
        }
    }

    /// The request body is over the gateway's limit (413): the message names the
    /// limit and the config key that sets it.
    pub fn body_too_large(limit: usize) -> Self {
        Self {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            code: "request_too_large",
            message: format!(
                "request body is larger than this gateway's limit of {limit} bytes ({}).",
                crate::limits::MAX_BODY_KEY
            ),
            hint: Some(
                "Send a smaller request (fewer or smaller images and documents), or ask the operator to \
                 raise the limit."
                    .into(),
            ),
            attempts: Vec::new(),
        }
    }

    /// Settings allow no route (422).
    pub fn no_route(message: impl Into<String>, hint: impl Into<String>) -> Self {
        Self {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: "no_route",
            message: message.into(),
            hint: Some(hint.into()),
            attempts: Vec::new(),
        }
    }

    /// A domain error met while resolving the caller: a refusal of any kind
    /// means this caller may not proceed (403, with the domain's message), except
    /// an unreachable store (503, retried after `Retry-After`) and an internal
    /// failure (500, detail logged here, never sent). Not a general
    /// `From<CoreError>`: elsewhere a `CoreError` category has its own status.
    pub fn forbidden_or_internal(e: CoreError) -> Self {
        match e {
            CoreError::Unavailable(detail) => {
                tracing::warn!(%detail, "gateway: store unavailable");
                Self {
                    status: StatusCode::SERVICE_UNAVAILABLE,
                    code: "store_unavailable",
                    message: "the store is unavailable; retry shortly.".into(),
                    hint: None,
                    attempts: Vec::new(),
                }
            }
            CoreError::Internal(detail) => {
                tracing::error!(%detail, "gateway internal error");
                Self {
                    status: StatusCode::INTERNAL_SERVER_ERROR,
                    code: "internal",
                    message: "internal error".into(),
                    hint: None,
                    attempts: Vec::new(),
                }
            }
            other => Self {
                status: StatusCode::FORBIDDEN,
                code: "forbidden",
                message: other.to_string(),
                hint: None,
                attempts: Vec::new(),
            },
        }
    }

    /// The upstream rejected the request itself (its status, 400 when that is
    /// not a valid status): nothing else was tried after it.
    pub fn upstream_rejected(status: u16, message: String, attempts: Vec<Attempt>) -> Self {
        Self {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
            code: "upstream_rejected_request",
            message,
            hint: None,
            attempts,
        }
    }

    fn full_message(&self) -> String {
        let mut m = self.message.clone();
        if !self.attempts.is_empty() {
            m.push_str(" Attempts: ");
            let list: Vec<String> = self
                .attempts
                .iter()
                .enumerate()
                .map(|(i, a)| format!("{}. {} → {}", i + 1, a.route, a.outcome))
                .collect();
            m.push_str(&list.join("; "));
            m.push('.');
        }
        if let Some(h) = &self.hint {
            m.push(' ');
            m.push_str(h);
        }
        m
    }

    /// The body in the caller's format.
    pub fn body(&self, format: ApiFormat) -> serde_json::Value {
        let message = self.full_message();
        match format {
            ApiFormat::Anthropic => json!({
                "type": "error",
                "error": {"type": anthropic_type(self.status), "message": message},
                "byollm": {"code": self.code, "attempts": self.attempts},
            }),
            ApiFormat::OpenAi => json!({
                "error": {
                    "message": message,
                    "type": openai_type(self.status),
                    "code": self.code,
                    "param": null,
                },
                "byollm": {"attempts": self.attempts},
            }),
        }
    }

    /// The response in the caller's format, with `x-byollm-fallback`.
    pub fn into_response(self, format: ApiFormat) -> Response {
        let mut resp = (self.status, Json(self.body(format))).into_response();
        if matches!(self.status.as_u16(), 503 | 504 | 529) {
            resp.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                HeaderValue::from(RETRY_AFTER_SECONDS),
            );
        }
        if let Some(v) = fallback_header(&self.attempts) {
            resp.headers_mut().insert("x-byollm-fallback", v);
        }
        resp
    }
}

/// `x-byollm-fallback`: the failed attempts, `route=cause` joined by `, `.
pub fn fallback_header(attempts: &[Attempt]) -> Option<HeaderValue> {
    let failed: Vec<String> = attempts
        .iter()
        .filter(|a| a.outcome != OK)
        .map(|a| format!("{}={}", a.route, a.outcome))
        .collect();
    if failed.is_empty() {
        return None;
    }
    // Header values are visible ASCII; causes are our own words but may quote
    // upstream text, so anything else is replaced.
    let text: String = failed
        .join(", ")
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .take(2000)
        .collect();
    HeaderValue::from_str(&text).ok()
}

/// Anthropic's error `type` for a status (docs.claude.com/en/api/errors).
fn anthropic_type(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 | 422 => "invalid_request_error",
        413 => "request_too_large",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        429 => "rate_limit_error",
        503 | 529 => "overloaded_error",
        _ => "api_error",
    }
}

fn openai_type(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 | 413 | 422 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        429 => "rate_limit_error",
        _ => "api_error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The SDKs parse these: Anthropic's 413 type, OpenAI's four members.
    #[test]
    fn too_large_in_each_callers_format() {
        let e = GatewayError::body_too_large(33);
        let a = e.body(ApiFormat::Anthropic);
        assert_eq!(a["type"], "error");
        assert_eq!(a["error"]["type"], "request_too_large");
        let message = a["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("33 bytes") && message.contains("[gateway] max_body_bytes"),
            "{message}"
        );
        let o = e.body(ApiFormat::OpenAi);
        assert_eq!(o["error"]["type"], "invalid_request_error");
        assert_eq!(o["error"]["code"], "request_too_large");
        assert!(o["error"]["param"].is_null());
        assert_eq!(o["error"]["message"], a["error"]["message"]);
    }
}
