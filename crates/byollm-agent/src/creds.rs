//! AWS credentials as this crate hands them out, and the state a person sees.

use std::fmt;

use reqwest::header::{HeaderName, HeaderValue};
use secrecy::{ExposeSecret as _, SecretString};

use byollm_api::clock::rfc3339_ms;
use byollm_federation::aws::TemporaryCredentials;

/// The gateway's caller-credential headers (DESIGN §5, flow 4).
pub const HDR_ACCESS_KEY: &str = "x-byollm-aws-access-key-id";
/// See [`HDR_ACCESS_KEY`].
pub const HDR_SECRET_KEY: &str = "x-byollm-aws-secret-access-key";
/// See [`HDR_ACCESS_KEY`].
pub const HDR_SESSION_TOKEN: &str = "x-byollm-aws-session-token";
/// See [`HDR_ACCESS_KEY`].
pub const HDR_REGION: &str = "x-byollm-aws-region";

/// A set of AWS credentials. `Debug` shows only the access key id.
#[derive(Clone)]
pub struct AwsCredentials {
    /// `ASIA…` for temporary credentials.
    pub access_key_id: String,
    /// The secret key.
    pub secret_access_key: SecretString,
    /// The session token (temporary credentials).
    pub session_token: Option<SecretString>,
    /// Expiry in Unix milliseconds, when the credentials expire.
    pub expires_at_ms: Option<i64>,
}

impl fmt::Debug for AwsCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("expires_at_ms", &self.expires_at_ms)
            .finish_non_exhaustive()
    }
}

impl AwsCredentials {
    /// AWS's `credential_process` output (Version 1). `Expiration` is present
    /// whenever the credentials expire, so the SDK or CLI calls again in time.
    pub fn credential_process_json(&self) -> String {
        let mut doc = serde_json::Map::new();
        doc.insert("Version".into(), 1.into());
        doc.insert("AccessKeyId".into(), self.access_key_id.clone().into());
        doc.insert(
            "SecretAccessKey".into(),
            self.secret_access_key.expose_secret().into(),
        );
        if let Some(token) = &self.session_token {
            doc.insert("SessionToken".into(), token.expose_secret().into());
        }
        if let Some(exp) = self.expires_at_ms {
            doc.insert("Expiration".into(), rfc3339_ms(exp).into());
        }
        serde_json::Value::Object(doc).to_string()
    }

    /// Adds the caller-credential headers to a gateway request, marked sensitive
    /// so no logging layer prints them.
    pub fn apply_headers(
        &self,
        mut req: reqwest::RequestBuilder,
        region: Option<&str>,
    ) -> reqwest::RequestBuilder {
        let mut pairs: Vec<(&'static str, &str)> = vec![
            (HDR_ACCESS_KEY, &self.access_key_id),
            (HDR_SECRET_KEY, self.secret_access_key.expose_secret()),
        ];
        if let Some(t) = &self.session_token {
            pairs.push((HDR_SESSION_TOKEN, t.expose_secret()));
        }
        if let Some(r) = region {
            pairs.push((HDR_REGION, r));
        }
        for (name, value) in pairs {
            if let Ok(mut v) = HeaderValue::from_str(value) {
                v.set_sensitive(true);
                req = req.header(HeaderName::from_static(name), v);
            }
        }
        req
    }

    /// Whether these credentials are still good for `margin_ms` from `now_ms`.
    pub fn valid_for(&self, now_ms: i64, margin_ms: i64) -> bool {
        self.expires_at_ms.is_none_or(|e| e - margin_ms > now_ms)
    }
}

impl From<TemporaryCredentials> for AwsCredentials {
    fn from(c: TemporaryCredentials) -> Self {
        Self {
            access_key_id: c.access_key_id,
            secret_access_key: c.secret_access_key,
            session_token: Some(c.session_token),
            expires_at_ms: Some(c.expires_at_ms),
        }
    }
}

/// Where a credential source stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialState {
    /// No credentials were found (and none could be obtained).
    Missing,
    /// This source is not in use.
    Disabled,
    /// Credentials are being obtained or refreshed.
    Refreshing,
    /// Credentials are loaded and valid.
    Loaded,
    /// The last attempt failed (the message says how, and what happens next).
    Failed,
}

impl CredentialState {
    /// A short lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            CredentialState::Missing => "missing",
            CredentialState::Disabled => "disabled",
            CredentialState::Refreshing => "refreshing",
            CredentialState::Loaded => "loaded",
            CredentialState::Failed => "failed",
        }
    }
}

/// A state and a plain sentence about it (never a secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialStatus {
    /// The state.
    pub state: CredentialState,
    /// What it means, for a person.
    pub message: String,
}

impl CredentialStatus {
    /// A status.
    pub fn new(state: CredentialState, message: impl Into<String>) -> Self {
        Self {
            state,
            message: message.into(),
        }
    }
}

impl fmt::Display for CredentialStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.state.as_str(), self.message)
    }
}

/// "in 59 min", "in 42 s", "expired" for a person.
pub fn humanize_remaining(now_ms: i64, expires_at_ms: i64) -> String {
    let left = (expires_at_ms - now_ms) / 1000;
    if left <= 0 {
        "expired".to_owned()
    } else if left < 120 {
        format!("expire in {left} s")
    } else {
        format!("expire in {} min", left / 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_process_json_has_version_and_expiration_and_debug_hides_secrets() {
        let c = AwsCredentials {
            access_key_id: "ASIAEXAMPLE".into(),
            secret_access_key: SecretString::from("s3cr3t"),
            session_token: Some(SecretString::from("t0k3n")),
            expires_at_ms: Some(0),
        };
        let v: serde_json::Value = serde_json::from_str(&c.credential_process_json()).unwrap();
        assert_eq!(v["Version"], 1);
        assert_eq!(v["SecretAccessKey"], "s3cr3t");
        assert_eq!(v["SessionToken"], "t0k3n");
        assert_eq!(v["Expiration"], "1970-01-01T00:00:00Z");
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("s3cr3t") && !dbg.contains("t0k3n"), "{dbg}");
    }
}
