//! The vendors' own APIs over `reqwest`: Anthropic Messages (and Anthropic's
//! OpenAI-compatible Chat Completions) and OpenAI Chat Completions. Billed in
//! inference credits; used only as the team's settings allow.
//!
//! Per-request work is kept off the hot path: each endpoint's URLs (parsed,
//! IDNA and all) and its key's header values are built once, when the
//! gateway starts, and cloned per request.

use std::time::Duration;

use byollm_api::catalog::Family;
use bytes::Bytes;
use http::HeaderValue;
use secrecy::{ExposeSecret as _, SecretString};
use serde_json::Value;

use crate::error::ApiFormat;
use crate::outcome::{FailReason, Failure};

/// Default `anthropic-version` when the caller sends none.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";

/// One vendor endpoint.
#[derive(Debug, Clone)]
pub struct DirectEndpoint {
    /// Base URL without `/v1`.
    pub base_url: String,
    /// The platform's key for it.
    pub key: SecretString,
}

/// The direct APIs this server can reach.
#[derive(Debug)]
pub struct Direct {
    http: reqwest::Client,
    anthropic: Option<Prepared>,
    openai: Option<Prepared>,
}

/// One endpoint's request parts, built once.
#[derive(Debug)]
struct Prepared {
    /// `{base}/v1/messages`, or the unparsable string (reqwest then fails the
    /// request with its own error, as it would have per request).
    messages: Target,
    /// `{base}/v1/chat/completions`, likewise.
    chat: Target,
    /// The key as `x-api-key` (sensitive); `None` when it is not a valid
    /// header value ([`FailReason::DirectKeyInvalid`] at send time).
    x_api_key: Option<HeaderValue>,
    /// `Bearer {key}` (sensitive), likewise.
    bearer: Option<HeaderValue>,
}

#[derive(Debug)]
enum Target {
    Url(reqwest::Url),
    Raw(String),
}

impl Target {
    fn new(url: String) -> Target {
        match reqwest::Url::parse(&url) {
            Ok(u) => Target::Url(u),
            Err(_) => Target::Raw(url),
        }
    }
}

impl Prepared {
    fn new(e: DirectEndpoint) -> Prepared {
        let base = e.base_url.trim_end_matches('/');
        let sensitive = |v: &str| {
            HeaderValue::from_str(v).ok().map(|mut h| {
                h.set_sensitive(true);
                h
            })
        };
        Prepared {
            messages: Target::new(format!("{base}/v1/messages")),
            chat: Target::new(format!("{base}/v1/chat/completions")),
            x_api_key: sensitive(e.key.expose_secret()),
            bearer: sensitive(&format!("Bearer {}", e.key.expose_secret())),
        }
    }
}

impl Direct {
    /// Clients for the configured endpoints, giving up on a connection after
    /// `connect_timeout` (the wait for the answer is bounded by the caller,
    /// [`crate::limits`]).
    pub fn new(
        anthropic: Option<DirectEndpoint>,
        openai: Option<DirectEndpoint>,
        connect_timeout: Duration,
    ) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .tcp_nodelay(true)
            .pool_idle_timeout(Duration::from_secs(90))
            .connect_timeout(connect_timeout)
            .build()?;
        Ok(Self {
            http,
            anthropic: anthropic.map(Prepared::new),
            openai: openai.map(Prepared::new),
        })
    }

    /// Whether a vendor is configured.
    pub fn has(&self, family: Family) -> bool {
        match family {
            Family::Anthropic => self.anthropic.is_some(),
            Family::Openai => self.openai.is_some(),
            // Gemini has no direct API: Vertex AI is its only host.
            Family::Google => false,
        }
    }

    /// Sends a request body in `format` to `family`'s API; returns the response
    /// once its status is a success.
    pub async fn send(
        &self,
        family: Family,
        format: ApiFormat,
        body: Vec<u8>,
        anthropic_version: Option<&str>,
        anthropic_beta: Option<&str>,
    ) -> Result<reqwest::Response, Failure> {
        let endpoint = match family {
            Family::Anthropic => self.anthropic.as_ref(),
            Family::Openai => self.openai.as_ref(),
            Family::Google => None,
        }
        .ok_or(FailReason::DirectNotConfigured)?;
        let post = |t: &Target| match t {
            Target::Url(u) => self.http.post(u.clone()),
            Target::Raw(s) => self.http.post(s.as_str()),
        };
        let req = match (family, format) {
            (Family::Anthropic, ApiFormat::Anthropic) => {
                let key = endpoint
                    .x_api_key
                    .clone()
                    .ok_or(FailReason::DirectKeyInvalid)?;
                let mut r = post(&endpoint.messages).header("x-api-key", key).header(
                    "anthropic-version",
                    anthropic_version.unwrap_or(ANTHROPIC_VERSION),
                );
                if let Some(beta) = anthropic_beta {
                    r = r.header("anthropic-beta", beta);
                }
                r
            }
            // Anthropic's OpenAI-compatible endpoint and OpenAI itself take the
            // key as a bearer token.
            (Family::Anthropic, ApiFormat::OpenAi) | (Family::Openai | Family::Google, _) => {
                let bearer = endpoint
                    .bearer
                    .clone()
                    .ok_or(FailReason::DirectKeyInvalid)?;
                post(&endpoint.chat).header(http::header::AUTHORIZATION, bearer)
            }
        };
        let mut req = req.header(http::header::CONTENT_TYPE, "application/json");
        if let Some(tp) = byollm_telemetry::trace::current_traceparent() {
            req = req.header(crate::HDR_TRACEPARENT, tp);
        }
        byollm_telemetry::phase("gw.upstream_send");
        let resp = req.body(body).send().await.map_err(|e| {
            if e.is_timeout() {
                crate::limits::connect_timed_out()
            } else {
                FailReason::DirectUnreachable(without_url(&e))
            }
        })?;
        let status = resp.status().as_u16();
        if resp.status().is_success() {
            return Ok(resp);
        }
        let text = resp.text().await.unwrap_or_default();
        // A vendor's words about the platform's own key (OpenAI quotes part of
        // it) must not reach callers, headers or usage rows: say it in ours.
        let message = if matches!(status, 401 | 403) {
            "the vendor refused this server's API key".to_owned()
        } else {
            error_message(&text)
        };
        Err(match status {
            // The caller's request is wrong: say so, try nothing else.
            400 | 404 | 413 | 422 => Failure::Client { status, message },
            // Our key, their rate limits or their outage: another route may serve.
            _ => FailReason::DirectStatus { status, message }.into(),
        })
    }
}

/// The first chunk of a vendor stream: the commit point.
pub(crate) async fn first_chunk(resp: &mut reqwest::Response) -> Result<Bytes, Failure> {
    match resp.chunk().await {
        Ok(Some(b)) => Ok(b),
        Ok(None) => Err(FailReason::DirectStreamEmpty.into()),
        Err(e) => Err(FailReason::DirectStream(e.to_string()).into()),
    }
}

/// A vendor's whole JSON response, as bytes and the parts the gateway reads
/// ([`crate::body::answer_summary`]; `null` when it is not JSON: the bytes
/// still go to the caller).
pub(crate) async fn whole_body(resp: reqwest::Response) -> Result<(Bytes, Value), Failure> {
    let bytes = resp
        .bytes()
        .await
        .map_err(|e| FailReason::DirectBody(e.to_string()))?;
    let v = crate::body::answer_summary(&bytes);
    Ok((bytes, v))
}

/// reqwest errors name the URL; ours carry no secrets, but keep messages short.
fn without_url(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    if let Some(url) = e.url() {
        s = s.replace(url.as_str(), "");
    }
    s
}

/// The message inside a vendor error body (both vendors use `error.message`).
fn error_message(text: &str) -> String {
    serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
        .unwrap_or_else(|| text.chars().take(300).collect())
}
