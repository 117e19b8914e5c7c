//! The one error type at the HTTP edge: a status, a stable code, a safe message
//! and an optional hint (DESIGN §6). Internal detail is logged once, here, and
//! never sent.

use axum::Json;
use axum::http::StatusCode;
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
    fn into_response(self) -> Response {
        (self.status, Json(ErrorBody { error: self.detail })).into_response()
    }
}
