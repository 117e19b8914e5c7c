//! The one STS code path: `AssumeRoleWithWebIdentity` through `aws-sdk-sts`, with
//! no ambient credentials (the operation is unsigned) and an overridable
//! endpoint (the emulator). SDK types stay in this file; callers get
//! [`TemporaryCredentials`] and [`StsError`].

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_sts::config::Region;
use aws_sdk_sts::error::{ProvideErrorMetadata as _, SdkError};
use aws_sdk_sts::operation::assume_role_with_web_identity::AssumeRoleWithWebIdentityError;
use parking_lot::Mutex;
use secrecy::{ExposeSecret as _, SecretString};

use crate::sts::{AssumeRequest, StsError, StsExchange, TemporaryCredentials};

/// STS on the AWS SDK.
#[derive(Debug)]
pub struct SdkSts {
    endpoint_url: Option<String>,
    clients: Mutex<HashMap<String, aws_sdk_sts::Client>>,
}

impl SdkSts {
    /// STS at AWS's regional endpoints, or at `endpoint_url` (the emulator).
    pub fn new(endpoint_url: Option<String>) -> Self {
        Self {
            endpoint_url,
            clients: Mutex::new(HashMap::new()),
        }
    }

    fn client(&self, region: &str) -> aws_sdk_sts::Client {
        let mut clients = self.clients.lock();
        clients
            .entry(region.to_owned())
            .or_insert_with(|| {
                let mut cfg = aws_sdk_sts::Config::builder()
                    .behavior_version(aws_sdk_sts::config::BehaviorVersion::latest())
                    .region(Region::new(region.to_owned()))
                    // The broker decides about retries (single flight, fallback).
                    .retry_config(aws_sdk_sts::config::retry::RetryConfig::disabled());
                if let Some(url) = &self.endpoint_url {
                    cfg = cfg.endpoint_url(url);
                }
                aws_sdk_sts::Client::from_conf(cfg.build())
            })
            .clone()
    }
}

fn message(e: &impl aws_sdk_sts::error::ProvideErrorMetadata) -> String {
    match (e.code(), e.message()) {
        (Some(code), Some(msg)) => format!("{code}: {msg}"),
        (Some(code), None) => code.to_owned(),
        (None, Some(msg)) => msg.to_owned(),
        (None, None) => "no detail".to_owned(),
    }
}

/// Maps an STS error to what the caller can do about it (aws-facts §1.4).
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
                AssumeRoleWithWebIdentityError::RegionDisabledException(_) => {
                    StsError::Unavailable(text)
                }
                _ => match e.code() {
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
        SdkError::DispatchFailure(f) => {
            StsError::Unavailable(format!("could not reach STS: {f:?}"))
        }
        SdkError::ResponseError(_) => {
            StsError::Unavailable("unreadable response from STS".to_owned())
        }
        other => StsError::Unavailable(format!("{other}")),
    }
}

#[async_trait]
impl StsExchange for SdkSts {
    async fn assume_role_with_web_identity(
        &self,
        req: AssumeRequest,
    ) -> Result<TemporaryCredentials, StsError> {
        let out = self
            .client(&req.region)
            .assume_role_with_web_identity()
            .role_arn(req.role_arn)
            .role_session_name(req.role_session_name)
            .web_identity_token(req.web_identity_token.expose_secret())
            .set_duration_seconds(req.duration_seconds)
            .send()
            .await
            .map_err(classify)?;
        let creds = out
            .credentials
            .ok_or_else(|| StsError::Unavailable("STS returned no credentials".into()))?;
        Ok(TemporaryCredentials {
            access_key_id: creds.access_key_id,
            secret_access_key: SecretString::from(creds.secret_access_key),
            session_token: SecretString::from(creds.session_token),
            expires_at: creds.expiration.secs(),
        })
    }
}
