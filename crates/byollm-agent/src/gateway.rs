//! A small streaming client of the gateway's Anthropic Messages route
//! (`POST /v1/messages`), shared by `byollm chat` and `byollm agent run`: it
//! sends the conversation, hands text deltas to the caller as they arrive, and
//! reports the route that served the reply (`x-byollm-route`) and any fallback
//! (`x-byollm-fallback`).

use serde_json::{Value, json};

use byollm_api::client::Client;

use crate::creds::AwsCredentials;

/// `max_tokens` sent with every request (Bedrock reserves quota for it).
pub const MAX_TOKENS: u32 = 1024;

/// One message of the conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// `user` or `assistant`.
    pub role: &'static str,
    /// The text.
    pub text: String,
}

/// A served reply.
#[derive(Debug, Clone, Default)]
pub struct Reply {
    /// The whole text.
    pub text: String,
    /// `x-byollm-route`.
    pub route: Option<String>,
    /// `x-byollm-fallback`: what failed before the route that served.
    pub fallback: Option<String>,
    /// Why the model stopped.
    pub stop_reason: Option<String>,
    /// Tokens in and out, as the gateway reported them.
    pub usage: (u64, u64),
}

/// Why a turn failed, in a sentence or two.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TurnError {
    /// The gateway refused or could not serve (its message lists each attempt).
    #[error("{message}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// The gateway's explanation.
        message: String,
        /// `x-byollm-fallback`, when attempts failed.
        fallback: Option<String>,
    },
    /// The stream broke after it started.
    #[error("the reply stopped midway: {0}")]
    Stream(String),
    /// The gateway was not reachable.
    #[error("cannot reach the gateway: {0}")]
    Unreachable(String),
}

impl TurnError {
    /// Whether AWS refused the caller's credentials as expired or unknown: get
    /// new ones and try once more, rather than retrying the same ones.
    pub fn is_expired_credentials(&self) -> bool {
        let TurnError::Refused {
            message, fallback, ..
        } = self
        else {
            return false;
        };
        let text = format!("{message} {}", fallback.as_deref().unwrap_or_default());
        [
            "ExpiredToken",
            "security token included in the request is expired",
            "UnrecognizedClient",
            "security token included in the request is invalid",
        ]
        .iter()
        .any(|needle| text.contains(needle))
    }
}

/// Caller credentials sent with a request (flow 4, or a worker's own STS
/// credentials in flow 2).
#[derive(Debug, Clone)]
pub struct CallerCredentials {
    /// The credentials.
    pub creds: AwsCredentials,
    /// The region for Bedrock, if the caller has one.
    pub region: Option<String>,
}

/// Streams one turn of `conversation` to `model`; `on_text` gets each text
/// delta as it arrives.
pub async fn stream_turn(
    server: &Client,
    model: &str,
    conversation: &[Message],
    caller: Option<&CallerCredentials>,
    mut on_text: impl FnMut(&str),
) -> Result<Reply, TurnError> {
    let messages: Vec<Value> = conversation
        .iter()
        .map(|m| json!({"role": m.role, "content": m.text}))
        .collect();
    let body =
        json!({"model": model, "max_tokens": MAX_TOKENS, "stream": true, "messages": messages});
    let mut req = server
        .request(reqwest::Method::POST, "/v1/messages")
        .header("anthropic-version", "2023-06-01")
        .json(&body);
    if let Some(c) = caller {
        req = c.creds.apply_headers(req, c.region.as_deref());
    }
    let mut resp = req
        .send()
        .await
        .map_err(|e| TurnError::Unreachable(innermost(&e)))?;
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let mut reply = Reply {
        route: header("x-byollm-route"),
        fallback: header("x-byollm-fallback"),
        ..Reply::default()
    };
    let status = resp.status();
    if !status.is_success() {
        let text = resp.text().await.unwrap_or_default();
        return Err(TurnError::Refused {
            status: status.as_u16(),
            message: error_message(status.as_u16(), &text),
            fallback: reply.fallback,
        });
    }
    let mut buf = String::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| TurnError::Stream(innermost(&e)))?
    {
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buf.find("\n\n") {
            let block: String = buf.drain(..end + 2).collect();
            handle_event(&block, &mut reply, &mut on_text)?;
        }
    }
    if !buf.trim().is_empty() {
        handle_event(&buf, &mut reply, &mut on_text)?;
    }
    Ok(reply)
}

fn handle_event(
    block: &str,
    reply: &mut Reply,
    on_text: &mut impl FnMut(&str),
) -> Result<(), TurnError> {
    let mut name = "";
    let mut data = String::new();
    for line in block.lines() {
        if let Some(v) = line.strip_prefix("event:") {
            name = v.trim();
        } else if let Some(v) = line.strip_prefix("data:") {
            data.push_str(v.trim_start());
        }
    }
    if data.is_empty() {
        return Ok(());
    }
    let v: Value = serde_json::from_str(&data).unwrap_or(Value::Null);
    let kind = v["type"].as_str().unwrap_or(name);
    match kind {
        "content_block_delta" => {
            if let Some(t) = v["delta"]["text"].as_str() {
                reply.text.push_str(t);
                on_text(t);
            }
        }
        "message_start" => {
            reply.usage.0 = v["message"]["usage"]["input_tokens"].as_u64().unwrap_or(0);
        }
        "message_delta" => {
            if let Some(r) = v["delta"]["stop_reason"].as_str() {
                reply.stop_reason = Some(r.to_owned());
            }
            reply.usage.1 = v["usage"]["output_tokens"]
                .as_u64()
                .unwrap_or(reply.usage.1);
        }
        "error" => {
            let msg = v["error"]["message"]
                .as_str()
                .unwrap_or("the gateway reported an error")
                .to_owned();
            return Err(TurnError::Stream(msg));
        }
        _ => {}
    }
    Ok(())
}

/// The message of an error body in either format (the gateway's
/// Anthropic-format body or the API's `{"error": {"code", "message", "hint"}}`).
fn error_message(status: u16, text: &str) -> String {
    let v: Value = serde_json::from_str(text).unwrap_or(Value::Null);
    let mut msg = v["error"]["message"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| format!("the gateway answered HTTP {status}"));
    if let Some(h) = v["error"]["hint"].as_str() {
        msg.push_str(" Hint: ");
        msg.push_str(h);
    }
    msg
}

fn innermost(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text = s.to_string();
        source = s.source();
    }
    text
}
