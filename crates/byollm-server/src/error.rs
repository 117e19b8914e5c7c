//! The one error type at the HTTP edge: a status, a stable code, a safe message
//! and an optional hint (DESIGN §6). Internal detail is logged once, here, and
//! never sent.

use axum::Json;
use axum::http::header::RETRY_AFTER;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use byollm_api::{ErrorBody, ErrorDetail};
use byollm_core::CoreError;

/// An error response.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    detail: ErrorDetail,
}

impl ApiError {
    /// A new error.
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            detail: ErrorDetail {
                code: code.to_owned(),
                message: message.into(),
                field: None,
                hint: None,
            },
        }
    }

    /// Adds a hint.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.detail.hint = Some(hint.into());
        self
    }

    /// A 400 naming a field.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        let field = field.into();
        let mut e = Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            format!("{field}: {}", message.into()),
        );
        e.detail.field = Some(field);
        e
    }

    /// The message the caller is sent (safe: no internal detail).
    pub fn message(&self) -> &str {
        &self.detail.message
    }

    /// The status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// A 401.
    pub fn unauthenticated() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "missing or invalid credentials",
        )
        .with_hint(
            "send an API key or run workload token as `Authorization: Bearer …` or `x-api-key: …`",
        )
    }

    /// A 405 for a known route called with a method it does not serve.
    pub fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "this route does not serve that method",
        )
    }

    /// A 404 for an unknown route.
    pub fn no_route() -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", "no such route")
    }
}

impl From<CoreError> for ApiError {
    fn from(e: CoreError) -> Self {
        match e {
            CoreError::Invalid(f) => ApiError::invalid(f.field, f.message),
            CoreError::Unauthenticated => ApiError::unauthenticated(),
            CoreError::Forbidden { message, hint } => {
                let e = ApiError::new(StatusCode::FORBIDDEN, "forbidden", message);
                match hint {
                    Some(h) => e.with_hint(h),
                    None => e,
                }
            }
            CoreError::NotFound(what) => ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("{what} not found"),
            ),
            CoreError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, "conflict", m),
            CoreError::PreconditionFailed(m) => {
                ApiError::new(StatusCode::PRECONDITION_FAILED, "precondition_failed", m)
                    .with_hint("GET the resource again and retry with its new ETag in If-Match")
            }
            CoreError::Refused { message, hint } => {
                let e = ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "refused", message);
                match hint {
                    Some(h) => e.with_hint(h),
                    None => e,
                }
            }
            CoreError::Unavailable(detail) => {
                tracing::warn!(%detail, "store unavailable");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "store_unavailable",
                    "the store is unavailable; retry shortly",
                )
            }
            CoreError::Internal(detail) => {
                tracing::error!(%detail, "internal error");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal error",
                )
            }
        }
    }
}

impl IntoResponse for ApiError {
    /// A 503 carries `Retry-After` (the store's outage is transient).
    fn into_response(self) -> Response {
        let unavailable = self.status == StatusCode::SERVICE_UNAVAILABLE;
        let mut resp = (self.status, Json(ErrorBody { error: self.detail })).into_response();
        if unavailable {
            resp.headers_mut().insert(
                RETRY_AFTER,
                HeaderValue::from(byollm_core::error::RETRY_AFTER_SECONDS),
            );
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An unreachable store: 503 with `Retry-After` and a JSON error that does
    /// not carry the database's detail.
    #[tokio::test]
    async fn an_unavailable_store_is_a_503_with_retry_after() {
        let resp = ApiError::from(CoreError::Unavailable(
            "pool timed out while connecting to db.internal".into(),
        ))
        .into_response();
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            resp.headers()[RETRY_AFTER],
            byollm_core::error::RETRY_AFTER_SECONDS.to_string()
        );
        let body = axum::body::to_bytes(resp.into_body(), 1 << 16)
            .await
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["error"]["code"], "store_unavailable");
        assert!(!v.to_string().contains("db.internal"), "{v}");
    }

    /// Other errors carry no `Retry-After`.
    #[test]
    fn an_internal_error_has_no_retry_after() {
        let resp = ApiError::from(CoreError::Internal("x".into())).into_response();
        assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!resp.headers().contains_key(RETRY_AFTER));
    }
}
