//! One error type for every emulated service: an AWS error code, its HTTP status
//! and a message. Each protocol renders it in its own envelope (query XML for IAM
//! and STS, `x-amzn-ErrorType` + JSON for Bedrock, vendor JSON for direct APIs).

/// An AWS-shaped error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code} ({status}): {message}")]
pub struct AwsError {
    /// HTTP status.
    pub status: u16,
    /// The wire code (`InvalidIdentityToken`, `ValidationException`, …).
    pub code: String,
    /// The message.
    pub message: String,
}

impl AwsError {
    /// A new error.
    pub fn new(status: u16, code: &str, message: impl Into<String>) -> Self {
        AwsError {
            status,
            code: code.to_owned(),
            message: message.into(),
        }
    }

    /// Whether the fault is the caller's (`Sender`) rather than the service's.
    pub fn is_sender(&self) -> bool {
        self.status < 500
    }
}

/// `1 validation error detected: …` / `N validation errors detected: a; b`
/// (aws-facts §1.2; the joiner for several is our choice, not verified).
pub fn validation_message(violations: &[String]) -> String {
    match violations.len() {
        1 => format!("1 validation error detected: {}", violations[0]),
        n => format!("{n} validation errors detected: {}", violations.join("; ")),
    }
}

/// `Value '<v>' at '<field>' failed to satisfy constraint: <constraint>`.
pub fn violation(value: Option<&str>, field: &str, constraint: &str) -> String {
    match value {
        Some(v) => format!("Value '{v}' at '{field}' failed to satisfy constraint: {constraint}"),
        None => format!("Value null at '{field}' failed to satisfy constraint: {constraint}"),
    }
}
