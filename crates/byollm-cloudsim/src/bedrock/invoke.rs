//! `InvokeModel` and `InvokeModelWithResponseStream` with Anthropic Messages
//! bodies (aws-facts §5.5): the body passes Bedrock's schema
//! ([`super::anthropic_schema`]: `anthropic_version` must be
//! `bedrock-2023-05-31`, `max_tokens` and `messages` are required, keys Bedrock
//! does not take are extraneous, types and block kinds are checked), then the
//! model's output limit. Optional members take the service model's defaults: no
//! `Content-Type` is `application/json`, no `Accept` (`X-Amzn-Bedrock-Accept`
//! when streaming) is `application/json`. Streams carry `chunk` events whose
//! `bytes` are base64 Anthropic stream events, the last one with
//! `amazon-bedrock-invocationMetrics`.

use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

pub use super::anthropic_schema::BEDROCK_ANTHROPIC_VERSION;
use super::anthropic_schema::{self, malformed};
use super::models::{Resolved, max_output_tokens, max_tokens_exceeded};
use super::{Op, stream_response};
use crate::error::AwsError;
use crate::eventstream;
use crate::faults::FailRule;
use crate::llm::{self, Reply, Stop};
use crate::util::{UPPER_ALNUM, padding, random_chars, uuid};

/// The one MIME type Anthropic models take and produce, and the service
/// model's default for `contentType` and `accept` on both operations
/// ("The default value is application/json": aws-sdk-js
/// `clients/bedrockruntime.d.ts`, generated from the Bedrock Runtime model;
/// botocore's `bedrock-runtime/2023-09-30/service-2.json` keeps the `accept`
/// sentence and leaves `contentType` optional).
const JSON: &str = "application/json";

/// Text of an Anthropic `content` (string or blocks).
fn content_texts(content: &Value, out: &mut Vec<String>) {
    match content {
        Value::String(s) => out.push(s.clone()),
        Value::Array(blocks) => {
            for b in blocks {
                match b.get("type").and_then(Value::as_str) {
                    Some("text") => out.push(
                        b.get("text")
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_owned(),
                    ),
                    Some("tool_result") => {
                        if let Some(c) = b.get("content") {
                            content_texts(c, out);
                        }
                    }
                    Some("tool_use") => {
                        out.push(b.get("input").map(Value::to_string).unwrap_or_default())
                    }
                    _ => {}
                }
            }
        }
        _ => {}
    }
}

/// Parses an Anthropic Messages body (Bedrock's or the direct API's) into the
/// reply. `bedrock` is the model's output-token limit when the body came to
/// Bedrock: its schema and the limit apply.
pub fn anthropic_reply(v: &Value, bedrock: Option<u64>) -> Result<Reply, AwsError> {
    let obj = v
        .as_object()
        .ok_or_else(|| malformed("#: expected type: JSONObject"))?;
    if bedrock.is_some() {
        anthropic_schema::check(obj)?;
    }
    let max_tokens = match obj.get("max_tokens") {
        None => return Err(malformed("#: required key [max_tokens] not found")),
        Some(n) => n
            .as_u64()
            .filter(|n| *n >= 1)
            .ok_or_else(|| malformed("#/max_tokens: must be an integer >= 1"))?,
    };
    let messages = obj
        .get("messages")
        .and_then(Value::as_array)
        .ok_or_else(|| malformed("#: required key [messages] not found"))?;
    if messages.is_empty() {
        return Err(malformed(
            "#/messages: expected minimum item count: 1, found: 0",
        ));
    }
    let mut texts = vec![];
    if let Some(s) = obj.get("system") {
        content_texts(s, &mut texts);
    }
    let mut last_user = String::new();
    for (i, m) in messages.iter().enumerate() {
        let role = m.get("role").and_then(Value::as_str).unwrap_or_default();
        if role != "user" && role != "assistant" {
            return Err(malformed(&format!(
                "#/messages/{i}/role: {role} is not a valid enum value"
            )));
        }
        let content = m.get("content").ok_or_else(|| {
            malformed(&format!("#/messages/{i}: required key [content] not found"))
        })?;
        let mut mine = vec![];
        content_texts(content, &mut mine);
        if role == "user" {
            last_user = mine.join(" ");
        }
        texts.extend(mine);
    }
    let tools: Vec<String> = obj
        .get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|t| t.get("name").and_then(Value::as_str))
        .map(str::to_owned)
        .collect();
    // The model's limit, after the schema: the body is well-formed by now.
    if let Some(limit) = bedrock
        && max_tokens > limit
    {
        return Err(max_tokens_exceeded(limit));
    }
    Ok(llm::respond(
        texts.iter().map(String::as_str),
        &last_user,
        max_tokens,
        &tools,
    ))
}

/// `end_turn` / `max_tokens`.
pub fn stop_reason(s: Stop) -> &'static str {
    match s {
        Stop::EndTurn => "end_turn",
        Stop::MaxTokens => "max_tokens",
        Stop::ToolUse => "tool_use",
    }
}

fn tool_use_id(id: &str) -> String {
    // Bedrock's ids carry `bdrk`, like its message ids.
    let prefix = if id.starts_with("msg_bdrk_") {
        "toolu_bdrk_"
    } else {
        "toolu_"
    };
    format!("{prefix}{}", random_chars(24, UPPER_ALNUM))
}

/// The body as JSON, after the `Content-Type` check: absent is the default
/// `application/json`; anything else is refused as Bedrock refuses it [obs]
/// (aws/aws-sdk-ruby#3033: an SDK that stopped sending `application/json`;
/// tedder/requests-aws4auth#71: `application/json; charset=utf-8` refused until
/// the charset was dropped). The Rust SDK sends `application/octet-stream` when
/// `content_type` is unset (a blob payload's protocol default), which is such a
/// type; botocore sets no Content-Type on a blob payload, which is the default.
fn parse_body(headers: &HeaderMap, body: &[u8]) -> Result<Value, AwsError> {
    if let Some(ct) = headers.get(header::CONTENT_TYPE)
        && !ct.as_bytes().eq_ignore_ascii_case(JSON.as_bytes())
    {
        return Err(AwsError::new(
            400,
            "ValidationException",
            "The provided Content Type is invalid or not supported for this model",
        ));
    }
    serde_json::from_slice(body).map_err(|_| malformed("#: the body is not valid JSON"))
}

/// The `Accept` check (`name` is the operation's header): absent is the default
/// `application/json`; `*/*` leaves the choice to the service. Anything else is
/// refused with Bedrock's wording ("The provided Accept Type is invalid or not
/// supported for this model", seen from a client that sent no
/// `application/json`).
fn accepts_json(headers: &HeaderMap, name: &str) -> Result<(), AwsError> {
    match headers.get(name).map(HeaderValue::as_bytes) {
        None => Ok(()),
        Some(a) if a.eq_ignore_ascii_case(JSON.as_bytes()) || a == b"*/*" => Ok(()),
        Some(_) => Err(AwsError::new(
            400,
            "ValidationException",
            "The provided Accept Type is invalid or not supported for this model",
        )),
    }
}

/// The Anthropic message object for a reply.
pub fn message_json(id: &str, model: &str, r: &Reply) -> Value {
    json!({
        "id": id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": match &r.tool {
            Some(t) => json!([{"type": "tool_use", "id": tool_use_id(id), "name": t.name, "input": t.input}]),
            None => json!([{"type": "text", "text": r.text()}]),
        },
        "stop_reason": stop_reason(r.stop),
        "stop_sequence": null,
        "usage": {"input_tokens": r.input_tokens, "output_tokens": r.output_tokens},
    })
}

/// The Anthropic stream events for a reply (`message_start` … `message_stop`).
pub fn anthropic_events(id: &str, model: &str, r: &Reply) -> Vec<(String, Value)> {
    let mut out = vec![(
        "message_start".to_owned(),
        json!({"type": "message_start", "message": {
            "id": id, "type": "message", "role": "assistant", "model": model,
            "content": [], "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": r.input_tokens, "output_tokens": 1}}}),
    )];
    if let Some(t) = &r.tool {
        out.push((
            "content_block_start".to_owned(),
            json!({"type": "content_block_start", "index": 0,
                   "content_block": {"type": "tool_use", "id": tool_use_id(id), "name": t.name, "input": {}}}),
        ));
        out.push((
            "content_block_delta".to_owned(),
            json!({"type": "content_block_delta", "index": 0,
                   "delta": {"type": "input_json_delta", "partial_json": t.input.to_string()}}),
        ));
    } else {
        out.push((
            "content_block_start".to_owned(),
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ));
    }
    for p in &r.pieces {
        out.push((
            "content_block_delta".to_owned(),
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": p}}),
        ));
    }
    out.push((
        "content_block_stop".to_owned(),
        json!({"type": "content_block_stop", "index": 0}),
    ));
    out.push((
        "message_delta".to_owned(),
        json!({"type": "message_delta", "delta": {"stop_reason": stop_reason(r.stop), "stop_sequence": null},
               "usage": {"output_tokens": r.output_tokens}}),
    ));
    out.push(("message_stop".to_owned(), json!({"type": "message_stop"})));
    out
}

/// `InvokeModel`.
pub fn invoke(m: &Resolved, headers: &HeaderMap, body: &[u8]) -> Result<Response, AwsError> {
    accepts_json(headers, "accept")?;
    let r = anthropic_reply(
        &parse_body(headers, body)?,
        Some(max_output_tokens(m.bedrock)),
    )?;
    let id = format!("msg_bdrk_{}", random_chars(24, UPPER_ALNUM));
    let out = message_json(&id, &m.model_name, &r);
    let mut resp = (StatusCode::OK, out.to_string()).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON));
    h.insert(
        "x-amzn-bedrock-input-token-count",
        HeaderValue::from(r.input_tokens),
    );
    h.insert(
        "x-amzn-bedrock-output-token-count",
        HeaderValue::from(r.output_tokens),
    );
    h.insert("x-amzn-bedrock-invocation-latency", HeaderValue::from(1u32));
    if let Ok(v) = HeaderValue::from_str(&uuid()) {
        h.insert("x-amzn-requestid", v);
    }
    Ok(resp)
}

/// `InvokeModelWithResponseStream`.
pub fn invoke_stream(
    m: &Resolved,
    headers: &HeaderMap,
    body: &[u8],
    failure: Option<FailRule>,
    delay: Duration,
) -> Result<Response, AwsError> {
    accepts_json(headers, "x-amzn-bedrock-accept")?;
    let r = anthropic_reply(
        &parse_body(headers, body)?,
        Some(max_output_tokens(m.bedrock)),
    )?;
    let id = format!("msg_bdrk_{}", random_chars(24, UPPER_ALNUM));
    let events = anthropic_events(&id, &m.model_name, &r);
    let last = events.len().saturating_sub(1);
    let frames = events
        .into_iter()
        .enumerate()
        .map(|(i, (_, mut inner))| {
            if i == last {
                inner["amazon-bedrock-invocationMetrics"] = json!({
                    "inputTokenCount": r.input_tokens,
                    "outputTokenCount": r.output_tokens,
                    "invocationLatency": 1,
                    "firstByteLatency": 1,
                });
            }
            let payload = json!({"bytes": STANDARD.encode(inner.to_string()), "p": padding(i)});
            eventstream::event("chunk", payload.to_string().as_bytes())
        })
        .collect();
    Ok(stream_response(
        Op::InvokeModelWithResponseStream,
        frames,
        failure,
        delay,
        &[("x-amzn-bedrock-content-type", JSON)],
    ))
}
