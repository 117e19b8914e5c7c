//! The few byollm server calls the runtime makes: mint an identity token (for a
//! run or a member), read the run, the caller and the team's settings, finish
//! the run. The credential (workload token or API key) is a [`SecretString`]
//! sent as a sensitive header.

use std::fmt;

use reqwest::header::{AUTHORIZATION, HeaderValue};
use secrecy::{ExposeSecret as _, SecretString};
use serde::de::DeserializeOwned;

use byollm_api::ErrorBody;
use byollm_api::routes::{self, fill};
use byollm_api::types::{
    IdentityTokenRequest, IdentityTokenResponse, LlmSettings, Me, RunFinish, RunInfo, RunState,
};

use crate::clock::parse_rfc3339;

/// A server call that failed, in words safe to show.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ServerError {
    /// The server answered with an error body.
    #[error("{message}{}", hint.as_ref().map(|h| format!(" (hint: {h})")).unwrap_or_default())]
    Api {
        /// HTTP status.
        status: u16,
        /// The stable error code.
        code: String,
        /// What went wrong.
        message: String,
        /// What to do.
        hint: Option<String>,
    },
    /// The server could not be reached.
    #[error("cannot reach the byollm server at {base}: {detail}")]
    Unreachable {
        /// The server URL.
        base: String,
        /// Why.
        detail: String,
    },
    /// The answer was not what the API promises.
    #[error("unexpected answer from the byollm server: {0}")]
    Decode(String),
}

impl ServerError {
    /// The HTTP status, when the server answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            ServerError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// A minted identity token.
#[derive(Debug, Clone)]
pub struct IdentityToken {
    /// The JWT.
    pub token: SecretString,
    /// Its expiry, Unix milliseconds.
    pub expires_at_ms: i64,
}

/// A client of one byollm server with one credential.
#[derive(Clone)]
pub struct ServerClient {
    base: String,
    http: reqwest::Client,
    credential: SecretString,
}

impl fmt::Debug for ServerClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerClient")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl ServerClient {
    /// A client of the server at `base` (e.g. `http://127.0.0.1:8080`), sending
    /// `credential` (an API key or a run's workload token).
    pub fn new(base: &str, credential: SecretString) -> Result<Self, ServerError> {
        let http = reqwest::Client::builder()
            .tcp_nodelay(true)
            .build()
            .map_err(|e| ServerError::Unreachable {
                base: base.to_owned(),
                detail: e.to_string(),
            })?;
        Ok(Self {
            base: base.trim_end_matches('/').to_owned(),
            http,
            credential,
        })
    }

    /// The server URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The shared HTTP client.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// `Authorization: Bearer …`, marked sensitive.
    pub fn auth_header(&self) -> Option<HeaderValue> {
        let mut v =
            HeaderValue::from_str(&format!("Bearer {}", self.credential.expose_secret())).ok()?;
        v.set_sensitive(true);
        Some(v)
    }

    /// A request to `path` with the credential attached.
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(auth) = self.auth_header() {
            req = req.header(AUTHORIZATION, auth);
        }
        req
    }

    async fn send<T: DeserializeOwned>(
        &self,
        req: reqwest::RequestBuilder,
    ) -> Result<T, ServerError> {
        let resp = req.send().await.map_err(|e| ServerError::Unreachable {
            base: self.base.clone(),
            detail: without_url(&e),
        })?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|e| ServerError::Unreachable {
            base: self.base.clone(),
            detail: without_url(&e),
        })?;
        if !status.is_success() {
            return Err(api_error(status.as_u16(), &bytes));
        }
        serde_json::from_slice(&bytes).map_err(|e| ServerError::Decode(e.to_string()))
    }

    /// `POST /api/v1/runs/{id}/identity-token` (the run's workload token).
    pub async fn mint_for_run(
        &self,
        run_id: &str,
        audience: &str,
        duration_seconds: i64,
    ) -> Result<IdentityToken, ServerError> {
        let path = fill(routes::RUN_IDENTITY_TOKEN, run_id);
        self.mint(&path, audience, duration_seconds).await
    }

    /// `POST /api/v1/identity-token` (a member's API key).
    pub async fn mint_for_member(
        &self,
        audience: &str,
        duration_seconds: i64,
    ) -> Result<IdentityToken, ServerError> {
        self.mint(routes::IDENTITY_TOKEN, audience, duration_seconds)
            .await
    }

    async fn mint(
        &self,
        path: &str,
        audience: &str,
        duration_seconds: i64,
    ) -> Result<IdentityToken, ServerError> {
        let body = IdentityTokenRequest {
            audience: audience.to_owned(),
            requested_duration_seconds: duration_seconds,
        };
        let out: IdentityTokenResponse = self
            .send(self.request(reqwest::Method::POST, path).json(&body))
            .await?;
        let expires_at_ms = parse_rfc3339(&out.expires_at)
            .ok_or_else(|| ServerError::Decode("expires_at is not RFC 3339".into()))?;
        Ok(IdentityToken {
            token: SecretString::from(out.token.expose().to_owned()),
            expires_at_ms,
        })
    }

    /// `GET /api/v1/runs/{id}`.
    pub async fn run(&self, run_id: &str) -> Result<RunInfo, ServerError> {
        self.send(self.request(reqwest::Method::GET, &fill(routes::RUN, run_id)))
            .await
    }

    /// `POST /api/v1/runs/{id}/finish`.
    pub async fn finish_run(&self, run_id: &str, state: RunState) -> Result<RunInfo, ServerError> {
        let body = RunFinish { state: Some(state) };
        self.send(
            self.request(reqwest::Method::POST, &fill(routes::RUN_FINISH, run_id))
                .json(&body),
        )
        .await
    }

    /// `GET /api/v1/me`.
    pub async fn me(&self) -> Result<Me, ServerError> {
        self.send(self.request(reqwest::Method::GET, routes::ME))
            .await
    }

    /// `GET /api/v1/team/llm-settings`.
    pub async fn llm_settings(&self) -> Result<LlmSettings, ServerError> {
        self.send(self.request(reqwest::Method::GET, routes::TEAM_LLM_SETTINGS))
            .await
    }
}

/// An error body as a [`ServerError`].
pub fn api_error(status: u16, body: &[u8]) -> ServerError {
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(b) => ServerError::Api {
            status,
            code: b.error.code,
            message: b.error.message,
            hint: b.error.hint,
        },
        Err(_) => ServerError::Api {
            status,
            code: "http_error".into(),
            message: format!("the server answered HTTP {status}"),
            hint: None,
        },
    }
}

/// A transport error's text without the URL (which is known already).
fn without_url(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    if let Some(url) = e.url() {
        text = text.replace(url.as_str(), "");
    }
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text = s.to_string();
        source = s.source();
    }
    text
}
