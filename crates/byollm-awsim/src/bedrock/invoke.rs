//! `InvokeModel` and `InvokeModelWithResponseStream` with Anthropic Messages
//! bodies (aws-facts §5.5): `anthropic_version` must be `bedrock-2023-05-31`,
//! `max_tokens` and `messages` are required, and keys Bedrock does not take
//! (`model`, `stream`, …) are refused as extraneous. Streams carry `chunk` events
//! whose `bytes` are base64 Anthropic stream events, the last one with
//! `amazon-bedrock-invocationMetrics`.

use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use super::models::Resolved;
use super::{Op, stream_response};
use crate::error::AwsError;
use crate::eventstream;
use crate::faults::FailRule;
use crate::llm::{self, Reply, Stop};
use crate::util::{UPPER_ALNUM, padding, random_chars, uuid};

/// The only `anthropic_version` Bedrock accepts in a body.
pub const BEDROCK_ANTHROPIC_VERSION: &str = "bedrock-2023-05-31";

/// Keys of an Anthropic body on Bedrock.
const ALLOWED_KEYS: [&str; 12] = [
    "anthropic_version",
    "anthropic_beta",
    "max_tokens",
    "messages",
    "system",
    "temperature",
    "top_p",
    "top_k",
    "tools",
    "tool_choice",
    "stop_sequences",
    "thinking",
];

fn malformed(what: &str) -> AwsError {
    AwsError::new(
        400,
        "ValidationException",
        format!("Malformed input request: {what}, please reformat your input and try again."),
    )
}

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
/// reply. `bedrock` applies Bedrock's extra rules.
pub fn anthropic_reply(v: &Value, bedrock: bool) -> Result<Reply, AwsError> {
    let obj = v
        .as_object()
        .ok_or_else(|| malformed("#: expected type: JSONObject"))?;
    if bedrock {
        if let Some(k) = obj.keys().find(|k| !ALLOWED_KEYS.contains(&k.as_str())) {
            return Err(malformed(&format!(
                "#: extraneous key [{k}] is not permitted"
            )));
        }
        match obj.get("anthropic_version") {
            None => return Err(malformed("#: required key [anthropic_version] not found")),
            Some(Value::String(s)) if s == BEDROCK_ANTHROPIC_VERSION => {}
            Some(other) => {
                return Err(malformed(&format!(
                    "#/anthropic_version: {other} is not a valid enum value"
                )));
            }
        }
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

fn parse_body(headers: &HeaderMap, body: &[u8]) -> Result<Value, AwsError> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !ct.starts_with("application/json") {
        return Err(AwsError::new(
            400,
            "ValidationException",
            "The model only accepts application/json as the Content-Type; you must specify application/json.",
        ));
    }
    serde_json::from_slice(body).map_err(|_| malformed("#: the body is not valid JSON"))
}

fn accepts_json(headers: &HeaderMap, name: &str) -> Result<(), AwsError> {
    match headers.get(name).and_then(|v| v.to_str().ok()) {
        None => Ok(()),
        Some(a) if a.starts_with("application/json") || a.starts_with("*/*") => Ok(()),
        Some(a) => Err(AwsError::new(
            400,
            "ValidationException",
            format!("The model cannot produce {a}; accept application/json."),
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
    let r = anthropic_reply(&parse_body(headers, body)?, true)?;
    let id = format!("msg_bdrk_{}", random_chars(24, UPPER_ALNUM));
    let out = message_json(&id, &m.model_name, &r);
    let mut resp = (StatusCode::OK, out.to_string()).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
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
    let r = anthropic_reply(&parse_body(headers, body)?, true)?;
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
        &[("x-amzn-bedrock-content-type", "application/json")],
    ))
}
