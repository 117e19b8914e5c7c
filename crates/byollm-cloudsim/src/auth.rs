//! Who signed a request: the admin credentials or an STS session, checked with
//! SigV4 and the session token (aws-facts §5.7 for the refusals).

use std::sync::Arc;

use axum::http::HeaderMap;

use crate::Inner;
use crate::error::AwsError;
use crate::sigv4::{self, SigError, SigInfo, Signed};
use crate::state::Session;

/// An authenticated caller.
#[derive(Debug, Clone)]
pub enum Caller {
    /// The admin access key: the account's administrator.
    Admin,
    /// Temporary credentials from `AssumeRoleWithWebIdentity`.
    Session(Arc<Session>),
}

/// Why authentication failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthFailure {
    /// No signature at all.
    Missing,
    /// Unknown access key, or a session token that does not belong to it.
    InvalidToken,
    /// The session expired.
    Expired,
    /// Scoped to another service or an unknown region.
    Scope(String),
    /// The signature failed.
    Sig(SigError),
}

/// The two error vocabularies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// IAM/STS (query).
    Query,
    /// Bedrock (rest-json).
    Json,
}

impl AuthFailure {
    /// The AWS error for this failure.
    pub fn to_error(&self, d: Dialect) -> AwsError {
        let q = d == Dialect::Query;
        match self {
            AuthFailure::Missing if q => AwsError::new(
                403,
                "MissingAuthenticationToken",
                "Request is missing Authentication Token",
            ),
            AuthFailure::Missing => AwsError::new(
                403,
                "MissingAuthenticationTokenException",
                "Missing Authentication Token",
            ),
            AuthFailure::InvalidToken => AwsError::new(
                403,
                if q {
                    "InvalidClientTokenId"
                } else {
                    "UnrecognizedClientException"
                },
                "The security token included in the request is invalid.",
            ),
            AuthFailure::Expired => AwsError::new(
                403,
                if q {
                    "ExpiredToken"
                } else {
                    "ExpiredTokenException"
                },
                "The security token included in the request is expired",
            ),
            AuthFailure::Scope(m) => AwsError::new(
                403,
                if q {
                    "SignatureDoesNotMatch"
                } else {
                    "InvalidSignatureException"
                },
                m.clone(),
            ),
            AuthFailure::Sig(SigError::Malformed(m)) => AwsError::new(
                if q { 400 } else { 403 },
                if q {
                    "IncompleteSignature"
                } else {
                    "IncompleteSignatureException"
                },
                m.clone(),
            ),
            AuthFailure::Sig(e) => AwsError::new(
                403,
                if q {
                    "SignatureDoesNotMatch"
                } else {
                    "InvalidSignatureException"
                },
                e.to_string(),
            ),
        }
    }
}

impl Inner {
    /// Authenticates a signed request for `service` (the signing name); the
    /// scope's region must satisfy `region_ok`.
    pub(crate) fn authenticate(
        &self,
        req: Signed<'_>,
        service: &str,
        region_ok: impl Fn(&str) -> bool,
    ) -> Result<(Caller, SigInfo), AuthFailure> {
        let info = match sigv4::parse_authorization(req.headers) {
            Ok(Some(i)) => i,
            Ok(None) => return Err(AuthFailure::Missing),
            Err(e) => return Err(AuthFailure::Sig(e)),
        };
        if info.service != service {
            return Err(AuthFailure::Scope(format!(
                "Credential should be scoped to correct service: '{service}'. "
            )));
        }
        if !region_ok(&info.region) {
            return Err(AuthFailure::Scope(format!(
                "Credential should be scoped to a valid region, not '{}'. ",
                info.region
            )));
        }
        let now = self.clock.now();
        let (caller, secret) = if info.access_key_id == self.cfg.admin_access_key_id {
            (Caller::Admin, self.cfg.admin_secret_access_key.clone())
        } else {
            let session = self
                .account
                .sessions
                .read()
                .get(&info.access_key_id)
                .cloned()
                .ok_or(AuthFailure::InvalidToken)?;
            if token(req.headers) != Some(session.session_token.as_str()) {
                return Err(AuthFailure::InvalidToken);
            }
            let secret = session.secret_access_key.clone();
            (Caller::Session(session), secret)
        };
        sigv4::verify(req, &info, &secret, now).map_err(AuthFailure::Sig)?;
        if let Caller::Session(s) = &caller
            && now >= s.expiration
        {
            return Err(AuthFailure::Expired);
        }
        Ok((caller, info))
    }
}

fn token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get("x-amz-security-token")
        .and_then(|v| v.to_str().ok())
}
