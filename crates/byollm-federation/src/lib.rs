//! Federation: exchange byollm's identity token (a JWT our issuer signed) for a
//! cloud's short-lived credentials, and decide when to do it again.
//!
//! One home for that concern, used by both the server's credentials broker
//! (`byollm_core::broker`) and the agent runtime (`byollm_agent::oidc`):
//! - [`Exchange`]: the seam, one implementation per cloud, each in its own
//!   module ([`aws`]: STS `AssumeRoleWithWebIdentity` through the official SDK;
//!   [`gcp`]: Google's STS token exchange and optional service-account
//!   impersonation; [`azure`]: Entra's client-credentials grant with our
//!   token as the client assertion);
//! - [`ExchangeError`]: failures by what the caller can do about them
//!   ([`ErrorClass`]);
//! - [`refresh`]: refresh ahead of expiry with jitter, the backoff schedule,
//!   and what to do per error class.
//!
//! Invariants: credentials are our own types whose secrets are
//! [`secrecy::SecretString`] (so `Debug` never shows them), never SDK types;
//! they are never persisted; no exchange reads ambient credentials or retries
//! on its own (the caller's policy decides, single flight), save Entra's
//! brief retry of a federated credential still being applied
//! ([`azure::EntraRetry`]).

pub mod aws;
pub mod azure;
pub mod gcp;
pub mod refresh;

use async_trait::async_trait;
use secrecy::SecretString;

/// Exchanges an identity token for a cloud's short-lived credentials.
///
/// Object-safe with its associated types named, e.g.
/// `Arc<dyn Exchange<Target = aws::AssumeRole, Credentials = aws::TemporaryCredentials>>`
/// ([`aws::AwsExchange`]), so tests and the emulator can stand in.
///
/// A second cloud is a sibling module implementing this same trait, not a new
/// code path: Google Cloud's STS token exchange (`POST sts.googleapis.com/v1/token`,
/// RFC 8693, our JWT as `subject_token` for a workload identity pool provider)
/// would be `gcp.rs` with a pool/provider/service-account target and an access
/// token as its credentials; Microsoft Entra's client-assertion grant
/// (`client_credentials` with our JWT as `client_assertion`, federated identity
/// credential on an app registration) is [`azure`] with a
/// tenant/client/scope target. Each maps its errors onto [`ExchangeError`] so
/// [`refresh`] drives them all the same way.
#[async_trait]
pub trait Exchange: Send + Sync + std::fmt::Debug {
    /// What to exchange for besides the token (for AWS: role, session name,
    /// region, session length).
    type Target: Send + Sync;
    /// What comes back: our own secret-holding type, never an SDK type.
    type Credentials: Expiring + Send + Sync;

    /// One exchange, no retries: the caller's policy decides about those.
    async fn exchange(
        &self,
        identity_token: &SecretString,
        target: &Self::Target,
    ) -> Result<Self::Credentials, ExchangeError>;
}

/// Credentials with an end, which is what the refresh policy schedules from.
pub trait Expiring {
    /// When they stop working, Unix milliseconds.
    fn expires_at_ms(&self) -> i64;
}

/// How the caller should react to a failed exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Throttled, or the cloud could not reach our issuer: the same exchange
    /// may succeed later; back off.
    RetryLater,
    /// The identity token expired: mint a new one and exchange at once, never
    /// retry the same token.
    ReMint,
    /// Refused until an admin changes something (trust policy, identity
    /// provider, a parameter): still retried with backoff, since a fix may land,
    /// but a person is told it needs fixing.
    Refused,
    /// The cloud's token service was not reached or failed: back off.
    Transport,
}

/// Exchange failures, by cause (for AWS, aws-facts §1.4). The texts are the
/// ones the gateway, the doctor and the docs show (`role assumption failed: …`),
/// so they keep naming STS and AWS, the one cloud wired today.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ExchangeError {
    /// The role's trust policy refused the subject (`AccessDenied`).
    #[error("the role's trust policy does not admit this subject: {0}")]
    AccessDenied(String),
    /// The token was refused (`InvalidIdentityToken`, `IDPRejectedClaim`).
    #[error("AWS refused the identity token: {0}")]
    InvalidIdentityToken(String),
    /// The token expired (`ExpiredTokenException`): mint again.
    #[error("the identity token expired: {0}")]
    ExpiredToken(String),
    /// The cloud could not reach our issuer (`IDPCommunicationError`).
    #[error("AWS could not reach the issuer: {0}")]
    IdpCommunication(String),
    /// A parameter was refused (`ValidationError`, a role's maximum session).
    #[error("STS refused a parameter: {0}")]
    Validation(String),
    /// Rate limited (`Throttling`).
    #[error("STS throttled the request: {0}")]
    Throttled(String),
    /// Transport or service failure.
    #[error("STS is unavailable: {0}")]
    Unavailable(String),
    /// Another cloud's refusal or failure, worded by its module with the
    /// service and the cloud's own code (`Google STS: unauthorized_client: …`),
    /// and classed there.
    #[error("{message}")]
    Cloud {
        /// What the caller can do about it.
        class: ErrorClass,
        /// The cloud's service, code and message.
        message: String,
    },
}

impl ExchangeError {
    /// What the caller can do about it.
    pub fn class(&self) -> ErrorClass {
        match self {
            ExchangeError::Cloud { class, .. } => *class,
            ExchangeError::ExpiredToken(_) => ErrorClass::ReMint,
            ExchangeError::Throttled(_) | ExchangeError::IdpCommunication(_) => {
                ErrorClass::RetryLater
            }
            ExchangeError::Unavailable(_) => ErrorClass::Transport,
            ExchangeError::AccessDenied(_)
            | ExchangeError::InvalidIdentityToken(_)
            | ExchangeError::Validation(_) => ErrorClass::Refused,
        }
    }

    /// Whether trying again later may help (as opposed to a configuration
    /// problem an admin must fix, or a token to re-mint).
    pub fn is_transient(&self) -> bool {
        matches!(self.class(), ErrorClass::RetryLater | ErrorClass::Transport)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_drive_behaviour() {
        let s = String::new;
        assert_eq!(ExchangeError::ExpiredToken(s()).class(), ErrorClass::ReMint);
        assert_eq!(
            ExchangeError::AccessDenied(s()).class(),
            ErrorClass::Refused
        );
        assert_eq!(
            ExchangeError::InvalidIdentityToken(s()).class(),
            ErrorClass::Refused
        );
        assert_eq!(
            ExchangeError::Throttled(s()).class(),
            ErrorClass::RetryLater
        );
        assert_eq!(
            ExchangeError::Unavailable(s()).class(),
            ErrorClass::Transport
        );
        assert!(ExchangeError::IdpCommunication(s()).is_transient());
        assert!(!ExchangeError::Validation(s()).is_transient());
        assert!(!ExchangeError::ExpiredToken(s()).is_transient());
    }

    #[test]
    fn texts_are_the_documented_ones() {
        // docs/troubleshooting.md quotes these after "role assumption failed: ".
        assert_eq!(
            ExchangeError::AccessDenied("AccessDenied: Not authorized".into()).to_string(),
            "the role's trust policy does not admit this subject: AccessDenied: Not authorized"
        );
        assert_eq!(
            ExchangeError::InvalidIdentityToken("InvalidIdentityToken: x".into()).to_string(),
            "AWS refused the identity token: InvalidIdentityToken: x"
        );
    }
}
