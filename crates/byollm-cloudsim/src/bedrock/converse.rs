//! `Converse` and `ConverseStream` (aws-facts §5.3, §5.4): request validation,
//! the deterministic reply, and the stream events
//! `messageStart → contentBlockDelta* → contentBlockStop → messageStop → metadata`
//! (no `contentBlockStart` for text), each payload with `"p"` padding.
//! `inferenceConfig.maxTokens` defaults to the model's output limit, as the
//! service model documents ("The default value is the maximum allowed value for
//! the model that you are using"), and more than the limit is refused.

use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::models::max_tokens_exceeded;
use super::{Op, stream_response};
use crate::error::AwsError;
use crate::eventstream;
use crate::faults::FailRule;
use crate::llm::{self, Reply, Stop};
use crate::util::{UPPER_ALNUM, padding, random_chars, uuid};

fn invalid(msg: impl Into<String>) -> AwsError {
    AwsError::new(400, "ValidationException", msg)
}

/// Texts a content block carries, for counting and echoing.
fn block_texts(block: &Value, out: &mut Vec<String>) -> Result<(), AwsError> {
    let obj = block
        .as_object()
        .ok_or_else(|| invalid("Malformed input request: content blocks must be objects"))?;
    if obj.len() != 1 {
        return Err(invalid(
            "Malformed input request: a content block must set exactly one member",
        ));
    }
    if let Some(t) = obj.get("text") {
        out.push(
            t.as_str()
                .ok_or_else(|| invalid("Malformed input request: text must be a string"))?
                .to_owned(),
        );
    } else if let Some(tr) = obj.get("toolResult") {
        for c in tr
            .get("content")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(t) = c.get("text").and_then(Value::as_str) {
                out.push(t.to_owned());
            } else if let Some(j) = c.get("json") {
                out.push(j.to_string());
            }
        }
    } else if let Some(tu) = obj.get("toolUse") {
        out.push(tu.get("input").map(Value::to_string).unwrap_or_default());
    }
    Ok(())
}

/// Parses a Converse body into the reply; `max_output` is the model's
/// output-token limit.
pub fn reply(body: &[u8], max_output: u64) -> Result<Reply, AwsError> {
    let v: Value = serde_json::from_slice(body).map_err(|e| {
        AwsError::new(
            400,
            "SerializationException",
            format!("Malformed JSON body: {e}"),
        )
    })?;
    let messages = v
        .get("messages")
        .and_then(Value::as_array)
        .ok_or_else(|| invalid("1 validation error detected: Value null at 'messages' failed to satisfy constraint: Member must not be null"))?;
    let mut texts = vec![];
    for s in v
        .get("system")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(t) = s.get("text").and_then(Value::as_str) {
            if t.is_empty() {
                return Err(invalid(
                    "The text field in the SystemContentBlock object is blank. Add text to the text field, and try again.",
                ));
            }
            texts.push(t.to_owned());
        }
    }
    let mut last_user = String::new();
    let mut prev: Option<&str> = None;
    for (i, m) in messages.iter().enumerate() {
        let role = m.get("role").and_then(Value::as_str).unwrap_or_default();
        if role != "user" && role != "assistant" {
            return Err(invalid(format!(
                "Malformed input request: messages.{i}.role must be user or assistant"
            )));
        }
        if i == 0 && role != "user" {
            return Err(invalid(
                "A conversation must start with a user message. Try again with a conversation that starts with a user message.",
            ));
        }
        if prev == Some(role) {
            return Err(invalid(
                "A conversation must alternate between user and assistant roles. Make sure the conversation alternates between user and assistant roles and try again.",
            ));
        }
        prev = Some(role);
        let content = m.get("content").and_then(Value::as_array).filter(|c| !c.is_empty()).ok_or_else(|| {
            invalid(format!("The content field in the Message object at messages.{i} is empty. Add a ContentBlock object to the content field and try again."))
        })?;
        let mut mine = vec![];
        for b in content {
            block_texts(b, &mut mine)?;
        }
        if role == "user" {
            last_user = mine.join(" ");
        }
        texts.extend(mine);
    }
    if messages.is_empty() {
        return Err(invalid(
            "A conversation must start with a user message. Try again with a conversation that starts with a user message.",
        ));
    }
    let max_tokens = match v.pointer("/inferenceConfig/maxTokens") {
        None => max_output,
        Some(n) => match n.as_u64() {
            Some(n) if n > max_output => return Err(max_tokens_exceeded(max_output)),
            Some(n) if n >= 1 => n,
            _ => {
                return Err(invalid(format!(
                    "1 validation error detected: Value '{n}' at 'inferenceConfig.maxTokens' failed to satisfy constraint: Member must have value greater than or equal to 1"
                )));
            }
        },
    };
    let tools: Vec<String> = v
        .pointer("/toolConfig/tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|t| t.pointer("/toolSpec/name").and_then(Value::as_str))
        .map(str::to_owned)
        .collect();
    Ok(llm::respond(
        texts.iter().map(String::as_str),
        &last_user,
        max_tokens,
        &tools,
    ))
}

fn stop_reason(s: Stop) -> &'static str {
    match s {
        Stop::EndTurn => "end_turn",
        Stop::MaxTokens => "max_tokens",
        Stop::ToolUse => "tool_use",
    }
}

fn tool_use_id() -> String {
    format!("tooluse_{}", random_chars(22, UPPER_ALNUM))
}

fn usage(r: &Reply) -> Value {
    json!({
        "inputTokens": r.input_tokens,
        "outputTokens": r.output_tokens,
        "totalTokens": r.input_tokens + r.output_tokens,
    })
}

/// `Converse`.
pub fn converse(body: &[u8], max_output: u64) -> Result<Response, AwsError> {
    let r = reply(body, max_output)?;
    let content = match &r.tool {
        Some(t) => {
            json!([{"toolUse": {"toolUseId": tool_use_id(), "name": t.name, "input": t.input}}])
        }
        None => json!([{"text": r.text()}]),
    };
    let out = json!({
        "output": {"message": {"role": "assistant", "content": content}},
        "stopReason": stop_reason(r.stop),
        "usage": usage(&r),
        "metrics": {"latencyMs": 1},
    });
    let mut resp = (StatusCode::OK, out.to_string()).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Ok(v) = HeaderValue::from_str(&uuid()) {
        h.insert("x-amzn-requestid", v);
    }
    Ok(resp)
}

/// `ConverseStream`.
pub fn converse_stream(
    body: &[u8],
    max_output: u64,
    failure: Option<FailRule>,
    delay: Duration,
) -> Result<Response, AwsError> {
    let r = reply(body, max_output)?;
    let mut seq = 0usize;
    let mut ev = |name: &str, mut payload: Value| {
        seq += 1;
        payload["p"] = Value::from(padding(seq));
        eventstream::event(name, payload.to_string().as_bytes())
    };
    let mut frames = vec![ev("messageStart", json!({"role": "assistant"}))];
    if let Some(t) = &r.tool {
        // Tool blocks, unlike text, open with contentBlockStart; the input
        // arrives as a JSON string.
        frames.push(ev(
            "contentBlockStart",
            json!({"contentBlockIndex": 0, "start": {"toolUse": {"toolUseId": tool_use_id(), "name": t.name}}}),
        ));
        frames.push(ev(
            "contentBlockDelta",
            json!({"contentBlockIndex": 0, "delta": {"toolUse": {"input": t.input.to_string()}}}),
        ));
    }
    for piece in &r.pieces {
        frames.push(ev(
            "contentBlockDelta",
            json!({"contentBlockIndex": 0, "delta": {"text": piece}}),
        ));
    }
    frames.push(ev("contentBlockStop", json!({"contentBlockIndex": 0})));
    frames.push(ev(
        "messageStop",
        json!({"stopReason": stop_reason(r.stop)}),
    ));
    frames.push(ev(
        "metadata",
        json!({"usage": usage(&r), "metrics": {"latencyMs": 1}}),
    ));
    Ok(stream_response(
        Op::ConverseStream,
        frames,
        failure,
        delay,
        &[],
    ))
}
