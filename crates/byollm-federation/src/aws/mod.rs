//! AWS: STS `AssumeRoleWithWebIdentity` through `aws-sdk-sts`, the one STS code
//! path of the workspace (the server's broker, the agent runtime and the doctor
//! all come here).
//!
//! - No ambient credentials: the operation is unsigned (aws-facts §1.1), so the
//!   client is built from scratch, never from the environment's chain.
//! - The endpoint is overridable (the emulator, `byollm-cloudsim`).
//! - SDK retries are off: the caller's refresh policy decides (single flight,
//!   backoff, re-mint on `ExpiredToken`, fallback).
//! - Every call is bounded ([`StsTimeouts`]): a hung STS fails the exchange
//!   (`Unavailable`, "timed out") instead of holding the caller, and with it
//!   every request waiting on the same single flight.
//! - SDK types stay in this module: callers get [`TemporaryCredentials`] and
//!   [`ExchangeError`].
//!
//! The names AWS sees (`RoleSessionName`, source identity) are in [`names`].

pub mod names;

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sts::config::Region;
use aws_sdk_sts::config::timeout::TimeoutConfig;
use aws_sdk_sts::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sts::operation::assume_role_with_web_identity::AssumeRoleWithWebIdentityError;
use parking_lot::Mutex;
use secrecy::{ExposeSecret as _, SecretString};

use crate::{Exchange, ExchangeError, Expiring};

pub use names::{run_session_name, source_identity, sts_name, user_session_name};

/// The exchange as callers hold it: `Arc<AwsExchange>`, the SDK's [`Sts`] in
/// production, anything else in tests.
pub type AwsExchange = dyn Exchange<Target = AssumeRole, Credentials = TemporaryCredentials>;

/// What to assume: one `AssumeRoleWithWebIdentity` besides the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssumeRole {
    /// The role's ARN.
    pub role_arn: String,
    /// `byollm-run-…` or `byollm-user-…` ([`names`]): CloudTrail's name for
    /// the session.
    pub role_session_name: String,
    /// The STS region (regional endpoint).
    pub region: String,
    /// Requested session length, 900–43200 s; `None` takes STS's default
    /// (3600 s); the role's maximum applies.
    pub duration_seconds: Option<i32>,
}

/// Temporary AWS credentials: ours, never SDK types, never persisted. `Debug`
/// shows the access key id only.
///
/// The secret key and session token are [`SecretString`]s, zeroized when
/// dropped; STS's strings are moved into them, never copied. Not `Clone`: a
/// holder shares them behind an `Arc` (the broker does), so no copy outlives
/// its holder unseen.
#[derive(Debug)]
pub struct TemporaryCredentials {
    /// `ASIA…`.
    pub access_key_id: String,
    /// The secret key.
    pub secret_access_key: SecretString,
    /// The session token.
    pub session_token: SecretString,
    /// Expiry, Unix milliseconds.
    pub expires_at_ms: i64,
}

impl TemporaryCredentials {
    /// Expiry, whole Unix seconds (rounded down).
    pub fn expires_at(&self) -> i64 {
        self.expires_at_ms.div_euclid(1000)
    }
}

impl Expiring for TemporaryCredentials {
    fn expires_at_ms(&self) -> i64 {
        self.expires_at_ms
    }
}

/// How long one exchange may take.
///
/// Defaults: `connect` 5 s, like the gateway's upstreams (above the AWS SDK's
/// 3.1 s, so one lost SYN is survived); `call` 10 s for the whole call. STS
/// answers in well under a second, but it fetches the issuer's JWKS while it
/// decides, and gives up on that itself within a few seconds
/// (`IDPCommunicationError`): 10 s lets a slow but working call finish and
/// still bounds how long requests can queue behind one hung call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StsTimeouts {
    /// TCP and TLS connection to STS.
    pub connect: Duration,
    /// The whole call, connection included.
    pub call: Duration,
}

impl Default for StsTimeouts {
    fn default() -> Self {
        StsTimeouts {
            connect: Duration::from_secs(5),
            call: Duration::from_secs(10),
        }
    }
}

/// STS on the AWS SDK, one client per region.
#[derive(Debug)]
pub struct Sts {
    endpoint_url: Option<String>,
    timeouts: StsTimeouts,
    clients: Mutex<HashMap<String, aws_sdk_sts::Client>>,
}

impl Sts {
    /// STS at AWS's regional endpoints, or at `endpoint_url` (the emulator),
    /// with the default [`StsTimeouts`].
    pub fn new(endpoint_url: Option<String>) -> Self {
        Self::with_timeouts(endpoint_url, StsTimeouts::default())
    }

    /// [`Sts::new`] with other timeouts.
    pub fn with_timeouts(endpoint_url: Option<String>, timeouts: StsTimeouts) -> Self {
        Self {
            endpoint_url,
            timeouts,
            clients: Mutex::new(HashMap::new()),
        }
    }

    /// The endpoint override, if any.
    pub fn endpoint_url(&self) -> Option<&str> {
        self.endpoint_url.as_deref()
    }

    fn client(&self, region: &str) -> aws_sdk_sts::Client {
        let mut clients = self.clients.lock();
        clients
            .entry(region.to_owned())
            .or_insert_with(|| {
                let mut cfg = aws_sdk_sts::Config::builder()
                    .behavior_version(aws_sdk_sts::config::BehaviorVersion::latest())
                    .region(Region::new(region.to_owned()))
                    // The caller decides about retries (single flight, backoff,
                    // re-mint on expiry, fallback).
                    .retry_config(aws_sdk_sts::config::retry::RetryConfig::disabled())
                    .timeout_config(
                        TimeoutConfig::builder()
                            .connect_timeout(self.timeouts.connect)
                            .operation_timeout(self.timeouts.call)
                            .build(),
                    );
                if let Some(url) = &self.endpoint_url {
                    cfg = cfg.endpoint_url(url);
                }
                aws_sdk_sts::Client::from_conf(cfg.build())
            })
            .clone()
    }
}

#[async_trait]
impl Exchange for Sts {
    type Target = AssumeRole;
    type Credentials = TemporaryCredentials;

    async fn exchange(
        &self,
        identity_token: &SecretString,
        target: &AssumeRole,
    ) -> Result<TemporaryCredentials, ExchangeError> {
        let out = self
            .client(&target.region)
            .assume_role_with_web_identity()
            .role_arn(&target.role_arn)
            .role_session_name(&target.role_session_name)
            .web_identity_token(identity_token.expose_secret())
            .set_duration_seconds(target.duration_seconds)
            .send()
            .await
            .map_err(|e| classify(e, &self.timeouts))?;
        let creds = out
            .credentials
            .ok_or_else(|| ExchangeError::Unavailable("STS returned no credentials".into()))?;
        let expires_at_ms = creds
            .expiration
            .secs()
            .saturating_mul(1000)
            .saturating_add(i64::from(creds.expiration.subsec_nanos() / 1_000_000));
        Ok(TemporaryCredentials {
            access_key_id: creds.access_key_id,
            secret_access_key: SecretString::from(creds.secret_access_key),
            session_token: SecretString::from(creds.session_token),
            expires_at_ms,
        })
    }
}

/// `CODE: message`, whichever parts AWS sent.
fn message(e: &impl ProvideErrorMetadata) -> String {
    match (e.code(), e.message()) {
        (Some(code), Some(msg)) => format!("{code}: {msg}"),
        (Some(code), None) => code.to_owned(),
        (None, Some(msg)) => msg.to_owned(),
        (None, None) => "no detail".to_owned(),
    }
}

/// Maps an STS error to what the caller can do about it (aws-facts §1.4).
fn classify(
    err: SdkError<AssumeRoleWithWebIdentityError>,
    timeouts: &StsTimeouts,
) -> ExchangeError {
    match err {
        SdkError::ServiceError(ctx) => classify_service(&ctx.into_err()),
        SdkError::TimeoutError(_) => ExchangeError::Unavailable(format!(
            "timed out: no answer within {} ms",
            timeouts.call.as_millis()
        )),
        SdkError::DispatchFailure(f) if f.is_timeout() => ExchangeError::Unavailable(format!(
            "timed out: no connection within {} ms",
            timeouts.connect.as_millis()
        )),
        SdkError::DispatchFailure(f) => {
            ExchangeError::Unavailable(format!("could not reach STS: {f:?}"))
        }
        SdkError::ResponseError(_) => {
            ExchangeError::Unavailable("unreadable response from STS".to_owned())
        }
        other => ExchangeError::Unavailable(format!("{other}")),
    }
}

fn classify_service(e: &AssumeRoleWithWebIdentityError) -> ExchangeError {
    let text = message(e);
    match e {
        AssumeRoleWithWebIdentityError::ExpiredTokenException(_) => {
            ExchangeError::ExpiredToken(text)
        }
        AssumeRoleWithWebIdentityError::InvalidIdentityTokenException(_)
        | AssumeRoleWithWebIdentityError::IdpRejectedClaimException(_) => {
            ExchangeError::InvalidIdentityToken(text)
        }
        AssumeRoleWithWebIdentityError::IdpCommunicationErrorException(_) => {
            ExchangeError::IdpCommunication(text)
        }
        AssumeRoleWithWebIdentityError::MalformedPolicyDocumentException(_)
        | AssumeRoleWithWebIdentityError::PackedPolicyTooLargeException(_) => {
            ExchangeError::Validation(text)
        }
        AssumeRoleWithWebIdentityError::RegionDisabledException(_) => {
            ExchangeError::Unavailable(text)
        }
        // Codes the SDK does not model as variants.
        _ => match e.code() {
            Some("ExpiredToken" | "ExpiredTokenException") => ExchangeError::ExpiredToken(text),
            Some("AccessDenied") => ExchangeError::AccessDenied(text),
            Some("ValidationError" | "InvalidParameterValue" | "MissingParameter") => {
                ExchangeError::Validation(text)
            }
            Some("Throttling" | "ThrottlingException" | "RequestLimitExceeded") => {
                ExchangeError::Throttled(text)
            }
            _ => ExchangeError::Unavailable(text),
        },
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_sts::error::ErrorMetadata;
    use aws_sdk_sts::types::error::{ExpiredTokenException, InvalidIdentityTokenException};

    use super::*;

    fn generic(code: &str) -> AssumeRoleWithWebIdentityError {
        AssumeRoleWithWebIdentityError::generic(
            ErrorMetadata::builder().code(code).message("words").build(),
        )
    }

    #[test]
    fn service_errors_map_to_what_the_caller_can_do() {
        let expired = AssumeRoleWithWebIdentityError::ExpiredTokenException(
            ExpiredTokenException::builder().message("old").build(),
        );
        assert!(matches!(
            classify_service(&expired),
            ExchangeError::ExpiredToken(_)
        ));
        let invalid = AssumeRoleWithWebIdentityError::InvalidIdentityTokenException(
            InvalidIdentityTokenException::builder()
                .message("Incorrect token audience")
                .meta(
                    ErrorMetadata::builder()
                        .code("InvalidIdentityToken")
                        .message("Incorrect token audience")
                        .build(),
                )
                .build(),
        );
        assert!(matches!(
            classify_service(&invalid),
            ExchangeError::InvalidIdentityToken(m) if m == "InvalidIdentityToken: Incorrect token audience"
        ));
        for (code, class) in [
            ("AccessDenied", crate::ErrorClass::Refused),
            ("ValidationError", crate::ErrorClass::Refused),
            ("Throttling", crate::ErrorClass::RetryLater),
            ("ExpiredToken", crate::ErrorClass::ReMint),
            ("ServiceUnavailable", crate::ErrorClass::Transport),
        ] {
            let e = classify_service(&generic(code));
            assert_eq!(e.class(), class, "{code}: {e}");
            assert!(e.to_string().contains(&format!("{code}: words")), "{e}");
        }
    }

    #[test]
    fn credentials_secrets_are_zeroized_on_drop() {
        fn zeroized_on_drop<T: secrecy::zeroize::ZeroizeOnDrop + ?Sized>(_: &T) {}
        let c = TemporaryCredentials {
            access_key_id: "ASIAEXAMPLE".into(),
            secret_access_key: SecretString::from("s3cr3t"),
            session_token: SecretString::from("t0k3n"),
            expires_at_ms: 0,
        };
        zeroized_on_drop(&c.secret_access_key);
        zeroized_on_drop(&c.session_token);
    }

    #[test]
    fn credentials_debug_hides_secrets() {
        let c = TemporaryCredentials {
            access_key_id: "ASIAEXAMPLE".into(),
            secret_access_key: SecretString::from("s3cr3t"),
            session_token: SecretString::from("t0k3n"),
            expires_at_ms: 1_999,
        };
        let dbg = format!("{c:?}");
        assert!(dbg.contains("ASIAEXAMPLE"), "{dbg}");
        assert!(!dbg.contains("s3cr3t") && !dbg.contains("t0k3n"), "{dbg}");
        assert_eq!(c.expires_at(), 1);
    }
}
