//! STS `AssumeRoleWithWebIdentity` on `aws-sdk-sts`, for the worker and the
//! terminal client. Unsigned (the operation needs no credentials, aws-facts
//! §1.1), no ambient credentials, endpoint overridable (the emulator). SDK types
//! stay in this file; callers get [`AwsCredentials`] and [`StsError`].

use std::collections::HashMap;
use std::sync::Mutex;

use aws_sdk_sts::config::Region;
use aws_sdk_sts::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sts::operation::assume_role_with_web_identity::AssumeRoleWithWebIdentityError;
use secrecy::{ExposeSecret as _, SecretString};

use crate::creds::AwsCredentials;

/// STS failures, by what the caller can do about them (aws-facts §1.4).
#[derive(Debug, Clone, thiserror::Error)]
pub enum StsError {
    /// The identity token expired: mint a new one now (not a retryable 403).
    #[error("the identity token expired ({0})")]
    ExpiredToken(String),
    /// The role's trust policy refused the subject.
    #[error("the role's trust policy does not admit this subject ({0})")]
    AccessDenied(String),
    /// AWS refused the token (`InvalidIdentityToken`, `IDPRejectedClaim`).
    #[error("AWS refused the identity token ({0})")]
    InvalidIdentityToken(String),
    /// AWS could not reach the issuer's JWKS.
    #[error("AWS could not reach the issuer ({0})")]
    IdpCommunication(String),
    /// A parameter was refused (role ARN, session name, duration).
    #[error("STS refused a parameter ({0})")]
    Validation(String),
    /// Rate limited.
    #[error("STS throttled the request ({0})")]
    Throttled(String),
    /// Transport or service failure.
    #[error("STS is unavailable ({0})")]
    Unavailable(String),
}

impl StsError {
    /// Whether trying again later may help (as opposed to a configuration
    /// problem an admin must fix). Both are retried with backoff; this only
    /// changes what a person is told.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            StsError::Throttled(_) | StsError::Unavailable(_) | StsError::IdpCommunication(_)
        )
    }
}

/// One `AssumeRoleWithWebIdentity` request.
#[derive(Debug, Clone)]
pub struct AssumeRequest {
    /// The role.
    pub role_arn: String,
    /// `byollm-run-…` or `byollm-user-…`.
    pub role_session_name: String,
    /// The STS region.
    pub region: String,
    /// Requested session length (900–43200; the role's maximum applies).
    pub duration_seconds: Option<i32>,
}

/// STS on the AWS SDK, one client per region.
#[derive(Debug)]
pub struct Sts {
    endpoint_url: Option<String>,
    clients: Mutex<HashMap<String, aws_sdk_sts::Client>>,
}

impl Sts {
    /// STS at AWS's regional endpoints, or at `endpoint_url` (the emulator).
    pub fn new(endpoint_url: Option<String>) -> Self {
        Self {
            endpoint_url,
            clients: Mutex::new(HashMap::new()),
        }
    }

    /// The endpoint override, if any.
    pub fn endpoint_url(&self) -> Option<&str> {
        self.endpoint_url.as_deref()
    }

    fn client(&self, region: &str) -> aws_sdk_sts::Client {
        let mut clients = self
            .clients
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        clients
            .entry(region.to_owned())
            .or_insert_with(|| {
                let mut cfg = aws_sdk_sts::Config::builder()
                    .behavior_version(aws_sdk_sts::config::BehaviorVersion::latest())
                    .region(Region::new(region.to_owned()))
                    // The caller decides about retries (backoff, re-mint on expiry).
                    .retry_config(aws_sdk_sts::config::retry::RetryConfig::disabled());
                if let Some(url) = &self.endpoint_url {
                    cfg = cfg.endpoint_url(url);
                }
                aws_sdk_sts::Client::from_conf(cfg.build())
            })
            .clone()
    }

    /// Calls `AssumeRoleWithWebIdentity`.
    pub async fn assume(
        &self,
        req: &AssumeRequest,
        token: &SecretString,
    ) -> Result<AwsCredentials, StsError> {
        let out = self
            .client(&req.region)
            .assume_role_with_web_identity()
            .role_arn(&req.role_arn)
            .role_session_name(&req.role_session_name)
            .web_identity_token(token.expose_secret())
            .set_duration_seconds(req.duration_seconds)
            .send()
            .await
            .map_err(classify)?;
        let creds = out
            .credentials
            .ok_or_else(|| StsError::Unavailable("STS returned no credentials".into()))?;
        let expires_at_ms = creds
            .expiration
            .secs()
            .saturating_mul(1000)
            .saturating_add(i64::from(creds.expiration.subsec_nanos() / 1_000_000));
        Ok(AwsCredentials {
            access_key_id: creds.access_key_id,
            secret_access_key: SecretString::from(creds.secret_access_key),
            session_token: Some(SecretString::from(creds.session_token)),
            expires_at_ms: Some(expires_at_ms),
        })
    }
}

fn message(e: &impl ProvideErrorMetadata) -> String {
    match (e.code(), e.message()) {
        (Some(code), Some(msg)) => format!("{code}: {msg}"),
        (Some(code), None) => code.to_owned(),
        (None, Some(msg)) => msg.to_owned(),
        (None, None) => "no detail".to_owned(),
    }
}

/// Maps an SDK error to what the caller can do about it (aws-facts §1.4).
fn classify(err: SdkError<AssumeRoleWithWebIdentityError>) -> StsError {
    match err {
        SdkError::ServiceError(ctx) => {
            let e = ctx.into_err();
            let text = message(&e);
            match &e {
                AssumeRoleWithWebIdentityError::ExpiredTokenException(_) => {
                    StsError::ExpiredToken(text)
                }
                AssumeRoleWithWebIdentityError::InvalidIdentityTokenException(_)
                | AssumeRoleWithWebIdentityError::IdpRejectedClaimException(_) => {
                    StsError::InvalidIdentityToken(text)
                }
                AssumeRoleWithWebIdentityError::IdpCommunicationErrorException(_) => {
                    StsError::IdpCommunication(text)
                }
                AssumeRoleWithWebIdentityError::MalformedPolicyDocumentException(_)
                | AssumeRoleWithWebIdentityError::PackedPolicyTooLargeException(_) => {
                    StsError::Validation(text)
                }
                _ => match e.code() {
                    Some("ExpiredToken" | "ExpiredTokenException") => StsError::ExpiredToken(text),
                    Some("AccessDenied") => StsError::AccessDenied(text),
                    Some("ValidationError" | "InvalidParameterValue" | "MissingParameter") => {
                        StsError::Validation(text)
                    }
                    Some("Throttling" | "ThrottlingException" | "RequestLimitExceeded") => {
                        StsError::Throttled(text)
                    }
                    _ => StsError::Unavailable(text),
                },
            }
        }
        SdkError::TimeoutError(_) => StsError::Unavailable("timed out".to_owned()),
        SdkError::DispatchFailure(_) => StsError::Unavailable("could not reach STS".to_owned()),
        SdkError::ResponseError(_) => {
            StsError::Unavailable("unreadable response from STS".to_owned())
        }
        other => StsError::Unavailable(other.to_string()),
    }
}

/// A valid `RoleSessionName` (2–64 characters of `[\w+=,.@-]`, aws-facts §1.2)
/// from `raw`, exactly as the server makes it: other characters become `-`; a
/// longer name keeps its start and ends with a hash of the whole.
pub fn sts_name(raw: &str) -> String {
    let allowed =
        |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '+' | '=' | ',' | '.' | '@' | '-');
    let mut name: String = raw
        .chars()
        .map(|c| if allowed(c) { c } else { '-' })
        .collect();
    if name.len() > 64 {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, raw.as_bytes());
        let hash = hex::encode(&digest.as_ref()[..6]);
        name.truncate(64 - 1 - hash.len());
        name.push('-');
        name.push_str(&hash);
    }
    while name.len() < 2 {
        name.push('-');
    }
    name
}

/// `byollm-run-<run-id>`.
pub fn run_session_name(run_id: &str) -> String {
    sts_name(&format!("byollm-run-{run_id}"))
}

/// `byollm-user-<user-uid>`.
pub fn user_session_name(user_uid: &str) -> String {
    sts_name(&format!("byollm-user-{user_uid}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_names_are_valid() {
        assert_eq!(run_session_name("abc"), "byollm-run-abc");
        let long = run_session_name(&"x".repeat(80));
        assert_eq!(long.len(), 64);
        assert_eq!(sts_name("a"), "a-");
        assert_eq!(sts_name("a/b:c"), "a-b-c");
    }
}
