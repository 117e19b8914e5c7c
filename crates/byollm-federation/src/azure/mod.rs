//! Microsoft Azure: Entra workload identity federation (azure-facts §3.3).
//!
//! One exchange is the OAuth client-credentials grant with our identity token
//! as a client assertion: `POST {authority}/{tenant}/oauth2/v2.0/token` with
//! `client_id`, `grant_type=client_credentials`, `scope`,
//! `client_assertion_type=…jwt-bearer` and `client_assertion=<our JWT>`.
//! Entra checks the assertion against a federated identity credential (FIC)
//! of the managed identity or app registration `client_id` names (exact
//! issuer, subject and audience) and answers a bearer access token and
//! `expires_in` (60–90 minutes).
//!
//! - Errors are `AADSTS` codes in an OAuth body; each maps onto an
//!   [`ErrorClass`] and keeps its code in the message
//!   (`Entra: AADSTS70021: …`, read back with [`aadsts_code`]).
//! - The one retry in this crate: `AADSTS70021` (no matching FIC) is tried
//!   again briefly ([`EntraRetry`]), because a new FIC "can take several
//!   minutes" to apply (azure-facts §3.1); everything else is the caller's
//!   refresh policy, as for the other clouds.
//! - The authority is overridable (the emulator, `byollm-cloudsim`'s Azure
//!   module); no ambient credentials are read.
//! - `expires_in` is read, never assumed; absolute times come from the
//!   caller's clock ([`NowMs`]). The access token is a [`SecretString`] from
//!   the moment it is parsed.

use std::time::Duration;

use async_trait::async_trait;
use secrecy::{ExposeSecret as _, SecretString};
use serde::Deserialize;

use crate::aws::StsTimeouts;
use crate::gcp::NowMs;
use crate::{ErrorClass, Exchange, ExchangeError, Expiring};

/// Entra's public-cloud authority.
pub const AUTHORITY_URL: &str = "https://login.microsoftonline.com";
/// The scope Azure OpenAI and Claude in Foundry accept (azure-facts §3.3).
pub const COGNITIVE_SERVICES_SCOPE: &str = "https://cognitiveservices.azure.com/.default";
/// RFC 7523 client assertion type.
pub const CLIENT_ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// The exchange as callers hold it.
pub type AzureExchange = dyn Exchange<Target = EntraTarget, Credentials = EntraToken>;

/// What to exchange for: the identity holding the FICs, in its tenant.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EntraTarget {
    /// The Entra tenant id (a GUID).
    pub tenant_id: String,
    /// The managed identity's or app registration's client id (a GUID).
    pub client_id: String,
    /// The scope asked for, [`COGNITIVE_SERVICES_SCOPE`] for Foundry.
    pub scope: String,
}

/// An Entra access token: ours, never persisted; `Debug` hides it. Not
/// `Clone` for the same reason as [`crate::aws::TemporaryCredentials`].
pub struct EntraToken {
    /// The bearer token.
    pub token: SecretString,
    /// Expiry, Unix milliseconds.
    pub expires_at_ms: i64,
}

impl std::fmt::Debug for EntraToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EntraToken")
            .field("token", &"[REDACTED]")
            .field("expires_at_ms", &self.expires_at_ms)
            .finish()
    }
}

impl Expiring for EntraToken {
    fn expires_at_ms(&self) -> i64 {
        self.expires_at_ms
    }
}

/// How often, and how far apart, an `AADSTS70021` (no matching FIC) is tried
/// again before it is reported: a new FIC takes minutes to apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntraRetry {
    /// Extra attempts after the first.
    pub attempts: u32,
    /// The pause before each.
    pub delay: Duration,
}

impl Default for EntraRetry {
    fn default() -> Self {
        EntraRetry {
            attempts: 2,
            delay: Duration::from_secs(2),
        }
    }
}

/// Entra's token endpoint over HTTPS (or the emulator).
#[derive(Clone)]
pub struct EntraTokenEndpoint {
    http: reqwest::Client,
    authority: String,
    timeouts: StsTimeouts,
    retry: EntraRetry,
    now_ms: NowMs,
}

impl std::fmt::Debug for EntraTokenEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EntraTokenEndpoint")
            .field("authority", &self.authority)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

impl EntraTokenEndpoint {
    /// Entra's public authority, or `authority_url` (the emulator), with the
    /// default timeouts and [`EntraRetry`].
    pub fn new(authority_url: Option<String>, now_ms: NowMs) -> Self {
        let timeouts = StsTimeouts::default();
        let http = reqwest::Client::builder()
            .connect_timeout(timeouts.connect)
            .timeout(timeouts.call)
            .tcp_nodelay(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        EntraTokenEndpoint {
            http,
            authority: authority_url
                .unwrap_or_else(|| AUTHORITY_URL.to_owned())
                .trim_end_matches('/')
                .to_owned(),
            timeouts,
            retry: EntraRetry::default(),
            now_ms,
        }
    }

    /// Retries `AADSTS70021` as `retry` says instead.
    pub fn with_retry(mut self, retry: EntraRetry) -> Self {
        self.retry = retry;
        self
    }

    /// The token endpoint for `tenant_id`.
    pub fn token_url(&self, tenant_id: &str) -> String {
        format!("{}/{tenant_id}/oauth2/v2.0/token", self.authority)
    }

    /// One token request, no retry.
    pub async fn request_token(
        &self,
        assertion: &SecretString,
        target: &EntraTarget,
    ) -> Result<EntraToken, ExchangeError> {
        let form = [
            ("client_id", target.client_id.as_str()),
            ("grant_type", "client_credentials"),
            ("scope", target.scope.as_str()),
            ("client_assertion_type", CLIENT_ASSERTION_TYPE),
            ("client_assertion", assertion.expose_secret()),
        ];
        let started = (self.now_ms)();
        let resp = self
            .http
            .post(self.token_url(&target.tenant_id))
            .form(&form)
            .send()
            .await
            .map_err(|e| self.transport(&e))?;
        let status = resp.status().as_u16();
        let body = resp.bytes().await.map_err(|e| self.transport(&e))?;
        if status != 200 {
            return Err(classify(status, &body));
        }
        let ok: TokenResponse = serde_json::from_slice(&body)
            .map_err(|_| ExchangeError::Unavailable("unreadable response from Entra".into()))?;
        Ok(EntraToken {
            token: ok.access_token,
            expires_at_ms: started.saturating_add(ok.expires_in.saturating_mul(1000)),
        })
    }

    fn transport(&self, e: &reqwest::Error) -> ExchangeError {
        if e.is_timeout() {
            ExchangeError::Unavailable(format!(
                "timed out: no answer from Entra within {} ms",
                self.timeouts.call.as_millis()
            ))
        } else {
            ExchangeError::Unavailable(format!("could not reach Entra: {e}"))
        }
    }
}

#[async_trait]
impl Exchange for EntraTokenEndpoint {
    type Target = EntraTarget;
    type Credentials = EntraToken;

    async fn exchange(
        &self,
        identity_token: &SecretString,
        target: &EntraTarget,
    ) -> Result<EntraToken, ExchangeError> {
        let mut left = self.retry.attempts;
        loop {
            match self.request_token(identity_token, target).await {
                Err(e) if left > 0 && aadsts_code(&e) == Some(NO_MATCHING_FIC) => {
                    left -= 1;
                    tokio::time::sleep(self.retry.delay).await;
                }
                other => return other,
            }
        }
    }
}

/// No FIC matches the assertion's issuer, subject and audience.
pub const NO_MATCHING_FIC: u32 = 70021;

#[derive(Deserialize)]
struct TokenResponse {
    access_token: SecretString,
    expires_in: i64,
}

/// The `AADSTS` code an Entra failure carries (`Entra: AADSTS70021: …`).
pub fn aadsts_code(err: &ExchangeError) -> Option<u32> {
    let ExchangeError::Cloud { message, .. } = err else {
        return None;
    };
    let rest = message.strip_prefix("Entra: AADSTS")?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// What the caller can do about an `AADSTS` code (azure-facts §3.4).
pub fn class_of(code: u32) -> ErrorClass {
    match code {
        // The assertion is outside its valid time range: a fresh one helps
        // unless the clock is wrong (the doctor says which).
        700_024 => ErrorClass::ReMint,
        // The kid is not in the issuer's JWKS as Entra last fetched it: a
        // key published moments ago shows up once Entra fetches again.
        7_000_272 => ErrorClass::RetryLater,
        // No matching FIC (70021 and its issuer/audience/subject forms), an
        // algorithm Entra refuses (5002738, 5002730), a bad client
        // (7000215, 700016), an unknown tenant (90002): an admin's fix.
        _ => ErrorClass::Refused,
    }
}

/// Maps an Entra OAuth error body (`{"error", "error_description",
/// "error_codes"}`) to what the caller can do, keeping the `AADSTS` code.
fn classify(status: u16, body: &[u8]) -> ExchangeError {
    #[derive(Deserialize)]
    struct OAuth {
        error: String,
        #[serde(default)]
        error_description: String,
        #[serde(default)]
        error_codes: Vec<u32>,
    }
    let Ok(e) = serde_json::from_slice::<OAuth>(body) else {
        let text: String = String::from_utf8_lossy(body).chars().take(200).collect();
        return ExchangeError::Cloud {
            class: by_status(status),
            message: format!("Entra: HTTP {status}: {text}"),
        };
    };
    // The description's first line, without Entra's trace and correlation
    // ids (one per request, noise in a held error).
    let description = e
        .error_description
        .split("\r\n")
        .next()
        .unwrap_or_default()
        .split(" Trace ID:")
        .next()
        .unwrap_or_default()
        .trim();
    let code = e.error_codes.first().copied().or_else(|| {
        let digits: String = description
            .strip_prefix("AADSTS")?
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse().ok()
    });
    let (class, message) = match code {
        Some(code) if status < 500 && status != 429 => {
            let text = description
                .strip_prefix(&format!("AADSTS{code}:"))
                .unwrap_or(description)
                .trim();
            (
                class_of(code),
                format!("Entra: AADSTS{code}: {text} ({})", e.error),
            )
        }
        _ => (
            by_status(status),
            format!("Entra: {}: {description}", e.error),
        ),
    };
    ExchangeError::Cloud { class, message }
}

fn by_status(status: u16) -> ErrorClass {
    match status {
        429 => ErrorClass::RetryLater,
        500.. => ErrorClass::Transport,
        _ => ErrorClass::Refused,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(code: u32, text: &str) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "error": "invalid_client",
            "error_description": format!("AADSTS{code}: {text} Trace ID: 0f1e Correlation ID: 9a8b Timestamp: 2026-01-01 00:00:00Z"),
            "error_codes": [code],
            "error_uri": format!("https://login.microsoftonline.com/error?code={code}"),
        }))
        .unwrap()
    }

    #[test]
    fn aadsts_codes_keep_their_code_and_class() {
        let e = classify(
            401,
            &body(
                70021,
                "No matching federated identity record found for presented assertion.",
            ),
        );
        assert_eq!(aadsts_code(&e), Some(70021));
        assert_eq!(e.class(), ErrorClass::Refused);
        assert_eq!(
            e.to_string(),
            "Entra: AADSTS70021: No matching federated identity record found for presented assertion. (invalid_client)"
        );
        for (code, class) in [
            (700_211, ErrorClass::Refused),
            (700_212, ErrorClass::Refused),
            (700_213, ErrorClass::Refused),
            (700_024, ErrorClass::ReMint),
            (5_002_738, ErrorClass::Refused),
            (7_000_272, ErrorClass::RetryLater),
            (7_000_215, ErrorClass::Refused),
        ] {
            let e = classify(400, &body(code, "text"));
            assert_eq!(aadsts_code(&e), Some(code), "{e}");
            assert_eq!(e.class(), class, "{code}");
        }
        assert_eq!(classify(503, b"down").class(), ErrorClass::Transport);
        assert_eq!(aadsts_code(&classify(503, b"down")), None);
        assert_eq!(
            classify(429, &body(50196, "loop")).class(),
            ErrorClass::RetryLater
        );
    }

    #[test]
    fn entra_token_debug_hides_the_token() {
        let t = EntraToken {
            token: SecretString::from("eyJ0eXAi.secret"),
            expires_at_ms: 5,
        };
        assert!(!format!("{t:?}").contains("secret"));
    }
}
