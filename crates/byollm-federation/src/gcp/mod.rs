//! Google Cloud: Workload Identity Federation (gcp-facts §1.5, §1.6).
//!
//! One exchange is Google's STS token exchange (RFC 8693,
//! `POST https://sts.googleapis.com/v1/token`, our identity token as
//! `subject_token` for the team's pool provider), then, when the team names a
//! service account, `generateAccessToken` on IAM Credentials with the federated
//! token as the bearer (needed inside VPC Service Controls perimeters).
//!
//! - No ambient credentials, no `Authorization` header on the STS call
//!   ("using the header can cause the request to fail", gcp-facts §1.5), and
//!   the scope is always `cloud-platform` (without it STS answers "Scope(s)
//!   must be provided").
//! - Endpoints are overridable (the emulator, `byollm-cloudsim`'s GCP module).
//! - No retries here: the caller's refresh policy decides, as for AWS.
//! - `expires_in` is read, never assumed; absolute times come from the
//!   caller's clock ([`NowMs`]), so refresh is testable.
//! - The access token is a [`SecretString`] from the moment it is parsed.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use secrecy::{ExposeSecret as _, SecretString};
use serde::Deserialize;

use crate::aws::StsTimeouts;
use crate::{ErrorClass, Exchange, ExchangeError, Expiring};

/// Google's STS.
pub const STS_URL: &str = "https://sts.googleapis.com";
/// Google's IAM Credentials API.
pub const IAM_CREDENTIALS_URL: &str = "https://iamcredentials.googleapis.com";
/// The one scope byollm asks for (Vertex AI's).
pub const CLOUD_PLATFORM_SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";
/// RFC 8693 token exchange.
pub const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
/// The only `requested_token_type` Google's STS allows.
pub const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
/// Our identity token's type.
pub const JWT_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:jwt";

/// The caller's clock, Unix milliseconds (federation depends on no crate of
/// ours, so the clock comes in as a function).
pub type NowMs = Arc<dyn Fn() -> i64 + Send + Sync>;

/// The exchange as callers hold it.
pub type GcpExchange = dyn Exchange<Target = PoolTarget, Credentials = AccessToken>;

/// What to exchange for: the team's provider and, optionally, a service account.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PoolTarget {
    /// The provider's full resource name (`//iam.googleapis.com/projects/…/providers/…`),
    /// which is also the identity token's `aud`.
    pub audience: String,
    /// Impersonate this service account after the exchange.
    pub service_account: Option<String>,
}

/// A Google access token: ours, never persisted; `Debug` hides it. Not `Clone`
/// for the same reason as [`crate::aws::TemporaryCredentials`].
pub struct AccessToken {
    /// The bearer token.
    pub token: SecretString,
    /// Expiry, Unix milliseconds.
    pub expires_at_ms: i64,
    /// Whether it is a service account's token (impersonation) rather than
    /// the federated principal's.
    pub impersonated: bool,
}

impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessToken")
            .field("token", &"[REDACTED]")
            .field("expires_at_ms", &self.expires_at_ms)
            .field("impersonated", &self.impersonated)
            .finish()
    }
}

impl Expiring for AccessToken {
    fn expires_at_ms(&self) -> i64 {
        self.expires_at_ms
    }
}

/// Google's STS and IAM Credentials over HTTPS (or the emulator).
#[derive(Clone)]
pub struct GoogleSts {
    http: reqwest::Client,
    sts_url: String,
    iam_credentials_url: String,
    timeouts: StsTimeouts,
    now_ms: NowMs,
}

impl std::fmt::Debug for GoogleSts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GoogleSts")
            .field("sts_url", &self.sts_url)
            .field("iam_credentials_url", &self.iam_credentials_url)
            .finish_non_exhaustive()
    }
}

impl GoogleSts {
    /// Google's endpoints, or both at `endpoint_url` (the emulator serves STS
    /// and IAM Credentials on one port), with the default timeouts.
    pub fn new(endpoint_url: Option<String>, now_ms: NowMs) -> Self {
        let base = |default: &str| {
            endpoint_url
                .clone()
                .unwrap_or_else(|| default.to_owned())
                .trim_end_matches('/')
                .to_owned()
        };
        let timeouts = StsTimeouts::default();
        let http = reqwest::Client::builder()
            .connect_timeout(timeouts.connect)
            .timeout(timeouts.call)
            .tcp_nodelay(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        GoogleSts {
            http,
            sts_url: base(STS_URL),
            iam_credentials_url: base(IAM_CREDENTIALS_URL),
            timeouts,
            now_ms,
        }
    }

    /// The STS token exchange alone: the federated principal's token.
    pub async fn exchange_token(
        &self,
        identity_token: &SecretString,
        audience: &str,
    ) -> Result<AccessToken, ExchangeError> {
        let form = [
            ("grant_type", GRANT_TYPE),
            ("audience", audience),
            ("scope", CLOUD_PLATFORM_SCOPE),
            ("requested_token_type", ACCESS_TOKEN_TYPE),
            ("subject_token_type", JWT_TOKEN_TYPE),
            ("subject_token", identity_token.expose_secret()),
        ];
        let started = (self.now_ms)();
        let resp = self
            .http
            .post(format!("{}/v1/token", self.sts_url))
            .form(&form)
            .send()
            .await
            .map_err(|e| self.transport("STS", &e))?;
        let status = resp.status().as_u16();
        let body = resp.bytes().await.map_err(|e| self.transport("STS", &e))?;
        if status != 200 {
            return Err(classify_oauth(status, &body));
        }
        let ok: StsResponse = serde_json::from_slice(&body).map_err(|_| {
            ExchangeError::Unavailable("unreadable response from Google STS".into())
        })?;
        // `expires_in` is absent only when a Google token is re-exchanged;
        // ours never is, so its absence is a broken answer.
        let expires_in = ok.expires_in.ok_or_else(|| {
            ExchangeError::Unavailable("Google STS returned no expires_in".into())
        })?;
        Ok(AccessToken {
            token: ok.access_token,
            expires_at_ms: started.saturating_add(expires_in.saturating_mul(1000)),
            impersonated: false,
        })
    }

    /// `generateAccessToken` for `service_account` with the federated token.
    pub async fn impersonate(
        &self,
        federated: &AccessToken,
        service_account: &str,
    ) -> Result<AccessToken, ExchangeError> {
        let url = format!(
            "{}/v1/projects/-/serviceAccounts/{service_account}:generateAccessToken",
            self.iam_credentials_url
        );
        let mut bearer = reqwest::header::HeaderValue::try_from(format!(
            "Bearer {}",
            federated.token.expose_secret()
        ))
        .map_err(|_| ExchangeError::Unavailable("Google STS returned an unusable token".into()))?;
        bearer.set_sensitive(true);
        let resp = self
            .http
            .post(url)
            .header(reqwest::header::AUTHORIZATION, bearer)
            .json(&serde_json::json!({"scope": [CLOUD_PLATFORM_SCOPE], "lifetime": "3600s"}))
            .send()
            .await
            .map_err(|e| self.transport("IAM Credentials", &e))?;
        let status = resp.status().as_u16();
        let body = resp
            .bytes()
            .await
            .map_err(|e| self.transport("IAM Credentials", &e))?;
        if status != 200 {
            return Err(classify_google(status, &body));
        }
        let ok: GenerateResponse = serde_json::from_slice(&body).map_err(|_| {
            ExchangeError::Unavailable("unreadable response from IAM Credentials".into())
        })?;
        let expires = time::OffsetDateTime::parse(
            &ok.expire_time,
            &time::format_description::well_known::Rfc3339,
        )
        .map_err(|_| {
            ExchangeError::Unavailable("IAM Credentials returned a bad expireTime".into())
        })?;
        let ms = expires.unix_timestamp_nanos() / 1_000_000;
        Ok(AccessToken {
            token: ok.access_token,
            expires_at_ms: i64::try_from(ms).unwrap_or(i64::MAX),
            impersonated: true,
        })
    }

    fn transport(&self, service: &str, e: &reqwest::Error) -> ExchangeError {
        let t = |d: Duration| d.as_millis();
        if e.is_timeout() {
            ExchangeError::Unavailable(format!(
                "timed out: no answer from {service} within {} ms",
                t(self.timeouts.call)
            ))
        } else {
            ExchangeError::Unavailable(format!("could not reach {service}: {e}"))
        }
    }
}

#[async_trait]
impl Exchange for GoogleSts {
    type Target = PoolTarget;
    type Credentials = AccessToken;

    async fn exchange(
        &self,
        identity_token: &SecretString,
        target: &PoolTarget,
    ) -> Result<AccessToken, ExchangeError> {
        let federated = self
            .exchange_token(identity_token, &target.audience)
            .await?;
        match &target.service_account {
            None => Ok(federated),
            Some(sa) => self.impersonate(&federated, sa).await,
        }
    }
}

#[derive(Deserialize)]
struct StsResponse {
    access_token: SecretString,
    #[serde(default)]
    expires_in: Option<i64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GenerateResponse {
    access_token: SecretString,
    expire_time: String,
}

/// Maps an STS OAuth error body (`{"error", "error_description"}`,
/// gcp-facts §1.5) to what the caller can do.
fn classify_oauth(status: u16, body: &[u8]) -> ExchangeError {
    #[derive(Deserialize)]
    struct OAuth {
        error: String,
        #[serde(default)]
        error_description: String,
    }
    let Ok(e) = serde_json::from_slice::<OAuth>(body) else {
        return by_status(status, "Google STS", &String::from_utf8_lossy(body));
    };
    let message = format!("Google STS: {}: {}", e.error, e.error_description);
    let class = match (status, e.error.as_str()) {
        (429, _) => ErrorClass::RetryLater,
        (500.., _) => ErrorClass::Transport,
        // An expired subject token: mint again.
        (_, "invalid_grant") if e.error_description.contains("expired") => ErrorClass::ReMint,
        // invalid_grant, unauthorized_client (the attribute condition),
        // invalid_target (pool or provider missing or disabled), invalid_request.
        _ => ErrorClass::Refused,
    };
    ExchangeError::Cloud { class, message }
}

/// Maps a Google API error body (`{"error": {"code", "message", "status"}}`).
fn classify_google(status: u16, body: &[u8]) -> ExchangeError {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let err = &v["error"];
    match (err["status"].as_str(), err["message"].as_str()) {
        (Some(s), Some(m)) => ExchangeError::Cloud {
            class: status_class(status),
            message: format!("IAM Credentials: {s}: {m}"),
        },
        _ => by_status(status, "IAM Credentials", &String::from_utf8_lossy(body)),
    }
}

fn status_class(status: u16) -> ErrorClass {
    match status {
        429 => ErrorClass::RetryLater,
        500.. => ErrorClass::Transport,
        _ => ErrorClass::Refused,
    }
}

fn by_status(status: u16, service: &str, text: &str) -> ExchangeError {
    let text: String = text.chars().take(200).collect();
    ExchangeError::Cloud {
        class: status_class(status),
        message: format!("{service}: HTTP {status}: {text}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oauth_errors_map_to_what_the_caller_can_do() {
        let cond = br#"{"error":"unauthorized_client","error_description":"The given credential is rejected by the attribute condition."}"#;
        let e = classify_oauth(400, cond);
        assert_eq!(e.class(), ErrorClass::Refused);
        assert_eq!(
            e.to_string(),
            "Google STS: unauthorized_client: The given credential is rejected by the attribute condition."
        );
        let expired =
            br#"{"error":"invalid_grant","error_description":"The access token has expired."}"#;
        assert_eq!(classify_oauth(400, expired).class(), ErrorClass::ReMint);
        assert_eq!(classify_oauth(503, b"oops").class(), ErrorClass::Transport);
        assert_eq!(classify_oauth(429, b"{}").class(), ErrorClass::RetryLater);
        let denied = br#"{"error":{"code":403,"message":"Permission 'iam.serviceAccounts.getAccessToken' denied on resource (or it may not exist).","status":"PERMISSION_DENIED"}}"#;
        let e = classify_google(403, denied);
        assert_eq!(e.class(), ErrorClass::Refused);
        assert!(
            e.to_string()
                .starts_with("IAM Credentials: PERMISSION_DENIED: Permission"),
            "{e}"
        );
    }

    #[test]
    fn access_token_debug_hides_the_token() {
        let t = AccessToken {
            token: SecretString::from("ya29.secret"),
            expires_at_ms: 5,
            impersonated: false,
        };
        let dbg = format!("{t:?}");
        assert!(!dbg.contains("ya29"), "{dbg}");
    }
}
