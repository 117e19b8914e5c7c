//! The seam for the STS exchange (`AssumeRoleWithWebIdentity`). The broker that
//! implements it on `aws-sdk-sts` arrives with the gateway; the server holds it as
//! `Arc<dyn StsExchange>` so tests and the emulator can stand in.

use async_trait::async_trait;
use secrecy::SecretString;

/// Temporary credentials: ours, never SDK types, and never persisted.
#[derive(Debug, Clone)]
pub struct TemporaryCredentials {
    /// `ASIA…`.
    pub access_key_id: String,
    /// The secret key.
    pub secret_access_key: SecretString,
    /// The session token.
    pub session_token: SecretString,
    /// Expiry, Unix seconds.
    pub expires_at: i64,
}

/// One `AssumeRoleWithWebIdentity` request.
#[derive(Debug, Clone)]
pub struct AssumeRequest {
    /// The role.
    pub role_arn: String,
    /// `byollm-run-…` or `byollm-user-…`.
    pub role_session_name: String,
    /// The identity token.
    pub web_identity_token: SecretString,
    /// The STS region.
    pub region: String,
    /// Requested session length.
    pub duration_seconds: Option<i32>,
}

/// STS failures, by what the caller can do about them (aws-facts §1.4).
#[derive(Debug, Clone, thiserror::Error)]
pub enum StsError {
    /// The trust policy refused the subject (`AccessDenied`).
    #[error("the role's trust policy does not admit this subject: {0}")]
    AccessDenied(String),
    /// The token was refused (`InvalidIdentityToken`, `IDPRejectedClaim`).
    #[error("AWS refused the identity token: {0}")]
    InvalidIdentityToken(String),
    /// The token expired (`ExpiredTokenException`): mint again.
    #[error("the identity token expired: {0}")]
    ExpiredToken(String),
    /// AWS could not reach the issuer (`IDPCommunicationError`).
    #[error("AWS could not reach the issuer: {0}")]
    IdpCommunication(String),
    /// A parameter was refused (`ValidationError`).
    #[error("STS refused a parameter: {0}")]
    Validation(String),
    /// Rate limited (`Throttling`).
    #[error("STS throttled the request: {0}")]
    Throttled(String),
    /// Transport or service failure.
    #[error("STS is unavailable: {0}")]
    Unavailable(String),
}

/// Exchanges an identity token for temporary credentials.
#[async_trait]
pub trait StsExchange: Send + Sync + std::fmt::Debug {
    /// Calls `AssumeRoleWithWebIdentity`.
    async fn assume_role_with_web_identity(
        &self,
        request: AssumeRequest,
    ) -> Result<TemporaryCredentials, StsError>;
}
