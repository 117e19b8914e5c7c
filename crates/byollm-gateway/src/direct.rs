//! The vendors' own APIs: Anthropic Messages (and Anthropic's
//! OpenAI-compatible Chat Completions) and OpenAI Chat Completions. Billed in
//! inference credits; used only as the team's settings allow.
//!
//! Requests go over the gateway's own client ([`crate::hop`]), whose
//! connections the request's task drives itself; when the environment names a
//! proxy (`HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY`), over reqwest, which
//! honours it (and `NO_PROXY`). Either way the caller gets a
//! `reqwest::Response`.
//!
//! Per-request work is kept off the hot path: each endpoint's URLs (parsed,
//! IDNA and all) and its key's header values are built once, when the
//! gateway starts, and cloned per request.

use std::sync::Arc;
use std::time::Duration;

use byollm_api::catalog::Family;
use bytes::Bytes;
use http::HeaderValue;
use secrecy::{ExposeSecret as _, SecretString};
use serde_json::Value;

use http_body_util::Full;

use crate::error::ApiFormat;
use crate::hop::{HopError, Origin};
use crate::outcome::{FailReason, Failure};

const HDR_X_API_KEY: http::HeaderName = http::HeaderName::from_static("x-api-key");
const HDR_ANTHROPIC_VERSION: http::HeaderName = http::HeaderName::from_static("anthropic-version");
const HDR_ANTHROPIC_BETA: http::HeaderName = http::HeaderName::from_static("anthropic-beta");

/// A caller's header the vendor request cannot carry.
fn bad_header(name: &str) -> Failure {
    Failure::Client {
        status: 400,
        message: format!("header `{name}` is not a valid header value"),
    }
}

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
    transport: Transport,
    anthropic: Option<Prepared>,
    openai: Option<Prepared>,
}

/// How requests reach the vendors.
#[derive(Debug)]
enum Transport {
    /// The gateway's own client (no proxy in the environment).
    Hop,
    /// reqwest, which sends through the environment's proxy.
    Proxied(reqwest::Client),
}

/// Whether the environment names a proxy for outgoing requests (the
/// variables reqwest reads).
#[expect(
    clippy::disallowed_methods,
    reason = "read once when the gateway starts, to keep honouring the proxy \
              reqwest honoured for the direct APIs"
)]
fn proxy_in_environment() -> bool {
    [
        "HTTPS_PROXY",
        "https_proxy",
        "HTTP_PROXY",
        "http_proxy",
        "ALL_PROXY",
        "all_proxy",
    ]
    .iter()
    .any(|k| std::env::var_os(k).is_some_and(|v| !v.is_empty()))
}

/// One endpoint's request parts, built once.
#[derive(Debug)]
struct Prepared {
    /// `{base}/v1/messages`, or the unparsable string (reqwest then fails the
    /// request with its own error, as it would have per request).
    messages: Target,
    /// `{base}/v1/chat/completions`, likewise.
    chat: Target,
    /// The connection pool for both URLs (one scheme, host and port), or why
    /// the base URL cannot be reached.
    origin: Result<Arc<Origin>, String>,
    /// The URLs' path and query (origin form), for [`Origin::send`].
    messages_path: http::Uri,
    chat_path: http::Uri,
    /// The key as `x-api-key` (sensitive); `None` when it is not a valid
    /// header value ([`FailReason::DirectKeyInvalid`] at send time).
    x_api_key: Option<HeaderValue>,
    /// `Bearer {key}` (sensitive), likewise.
    bearer: Option<HeaderValue>,
}

#[derive(Debug)]
enum Target {
    Url(reqwest::Url),
    /// Not a URL: kept for reqwest to refuse with its own error; `error` is
    /// why, for the own client's refusal.
    Raw {
        url: String,
        error: url::ParseError,
    },
}

impl Target {
    fn new(url: String) -> Target {
        match reqwest::Url::parse(&url) {
            Ok(u) => Target::Url(u),
            Err(error) => Target::Raw { url, error },
        }
    }

    /// The path and query (`/` when there is no URL).
    fn origin_form(&self) -> http::Uri {
        let Target::Url(u) = self else {
            return http::Uri::from_static("/");
        };
        let pq = match u.query() {
            Some(q) => format!("{}?{q}", u.path()),
            None => u.path().to_owned(),
        };
        pq.parse().unwrap_or_else(|_| http::Uri::from_static("/"))
    }
}

impl Prepared {
    fn new(
        e: DirectEndpoint,
        tls: &mut dyn FnMut() -> Arc<tokio_rustls::rustls::ClientConfig>,
        connect_timeout: Duration,
    ) -> Prepared {
        let base = e.base_url.trim_end_matches('/');
        let messages = Target::new(format!("{base}/v1/messages"));
        let chat = Target::new(format!("{base}/v1/chat/completions"));
        let origin = match &messages {
            Target::Url(u) => Origin::new(u, tls, connect_timeout).map(Arc::new),
            Target::Raw { error, .. } => Err(format!("base_url is not a URL: {error}")),
        };
        let sensitive = |v: &str| {
            HeaderValue::from_str(v).ok().map(|mut h| {
                h.set_sensitive(true);
                h
            })
        };
        Prepared {
            origin,
            messages_path: messages.origin_form(),
            chat_path: chat.origin_form(),
            messages,
            chat,
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
        Self::build(
            anthropic,
            openai,
            connect_timeout,
            proxy_in_environment(),
            &mut crate::hop::native_tls,
        )
    }

    /// [`Direct::new`] with the transport chosen (`proxied`: through reqwest)
    /// and the TLS roots given (tests trust their own).
    pub(crate) fn build(
        anthropic: Option<DirectEndpoint>,
        openai: Option<DirectEndpoint>,
        connect_timeout: Duration,
        proxied: bool,
        tls: &mut dyn FnMut() -> Arc<tokio_rustls::rustls::ClientConfig>,
    ) -> Result<Self, reqwest::Error> {
        let transport = if proxied {
            Transport::Proxied(
                reqwest::Client::builder()
                    .tcp_nodelay(true)
                    .pool_idle_timeout(Duration::from_secs(90))
                    .connect_timeout(connect_timeout)
                    .build()?,
            )
        } else {
            Transport::Hop
        };
        // The platform's roots are read once, and only for an https endpoint.
        let mut roots = None;
        let mut tls_once = || Arc::clone(roots.get_or_insert_with(&mut *tls));
        Ok(Self {
            transport,
            anthropic: anthropic.map(|e| Prepared::new(e, &mut tls_once, connect_timeout)),
            openai: openai.map(|e| Prepared::new(e, &mut tls_once, connect_timeout)),
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
        let mut headers = http::HeaderMap::with_capacity(6);
        let (target, path) = match (family, format) {
            (Family::Anthropic, ApiFormat::Anthropic) => {
                let key = endpoint
                    .x_api_key
                    .clone()
                    .ok_or(FailReason::DirectKeyInvalid)?;
                headers.insert(HDR_X_API_KEY, key);
                let version = anthropic_version.unwrap_or(ANTHROPIC_VERSION);
                headers.insert(
                    HDR_ANTHROPIC_VERSION,
                    HeaderValue::from_str(version).map_err(|_| bad_header("anthropic-version"))?,
                );
                if let Some(beta) = anthropic_beta {
                    headers.insert(
                        HDR_ANTHROPIC_BETA,
                        HeaderValue::from_str(beta).map_err(|_| bad_header("anthropic-beta"))?,
                    );
                }
                (&endpoint.messages, &endpoint.messages_path)
            }
            // Anthropic's OpenAI-compatible endpoint and OpenAI itself take the
            // key as a bearer token.
            (Family::Anthropic, ApiFormat::OpenAi) | (Family::Openai | Family::Google, _) => {
                let bearer = endpoint
                    .bearer
                    .clone()
                    .ok_or(FailReason::DirectKeyInvalid)?;
                headers.insert(http::header::AUTHORIZATION, bearer);
                (&endpoint.chat, &endpoint.chat_path)
            }
        };
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(tp) = byollm_telemetry::trace::current_traceparent()
            && let Ok(v) = HeaderValue::from_str(&tp)
        {
            headers.insert(http::HeaderName::from_static(crate::HDR_TRACEPARENT), v);
        }
        byollm_telemetry::phase("gw.upstream_send");
        let resp = match &self.transport {
            Transport::Hop => {
                let origin = endpoint
                    .origin
                    .as_ref()
                    .map_err(|m| FailReason::DirectUnreachable(m.clone()))?;
                let mut req = http::Request::new(Full::new(Bytes::from(body)));
                *req.method_mut() = http::Method::POST;
                *req.uri_mut() = path.clone();
                *req.headers_mut() = headers;
                let resp = origin.send(req).await.map_err(|e| match e {
                    HopError::ConnectTimeout => crate::limits::connect_timed_out(),
                    e => FailReason::DirectUnreachable(e.to_string()),
                })?;
                reqwest::Response::from(resp.map(reqwest::Body::wrap))
            }
            Transport::Proxied(http) => {
                let req = match target {
                    Target::Url(u) => http.post(u.clone()),
                    Target::Raw { url, .. } => http.post(url.as_str()),
                };
                req.headers(headers).body(body).send().await.map_err(|e| {
                    if e.is_timeout() {
                        crate::limits::connect_timed_out()
                    } else {
                        FailReason::DirectUnreachable(without_url(&e))
                    }
                })?
            }
        };
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
