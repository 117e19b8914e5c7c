//! Direct-provider emulators on the same server (DESIGN §8):
//! `POST /anthropic/v1/messages` (Anthropic Messages: `x-api-key`,
//! `anthropic-version: YYYY-MM-DD`, SSE with named events) and
//! `POST /openai/v1/chat/completions` (OpenAI Chat Completions: `Authorization:
//! Bearer`, SSE `data:` chunks ending `data: [DONE]`), both keyed by
//! `--direct-api-key` and answering with the deterministic model of [`crate::llm`].
//! `GET /anthropic/v1/models` and `GET /openai/v1/models` list the catalog's
//! models of each family.

use std::convert::Infallible;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use byollm_api::catalog::{Catalog, Family};
use bytes::Bytes;
use futures::StreamExt as _;
use serde_json::{Value, json};

use crate::Inner;
use crate::bedrock::invoke::{anthropic_events, anthropic_reply, message_json};
use crate::faults::FailRule;
use crate::llm::{self, Stop};
use crate::util::{UPPER_ALNUM, random_chars};

/// The fault/counter name of the Anthropic endpoint.
pub const ANTHROPIC_OP: &str = "anthropic:Messages";
/// The fault/counter name of the OpenAI endpoint.
pub const OPENAI_OP: &str = "openai:ChatCompletions";
/// Counter and fault scope of Anthropic's OpenAI-compatible endpoint.
pub const ANTHROPIC_COMPAT_OP: &str = "anthropic:ChatCompletions";

fn json_resp(status: StatusCode, v: &Value) -> Response {
    let mut r = (status, v.to_string()).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// An Anthropic error body.
pub fn anthropic_error(status: u16, kind: &str, message: &str) -> Response {
    json_resp(
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        &json!({"type": "error", "error": {"type": kind, "message": message}}),
    )
}

/// An OpenAI error body.
pub fn openai_error(status: u16, kind: &str, code: Option<&str>, message: &str) -> Response {
    json_resp(
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        &json!({"error": {"message": message, "type": kind, "param": null, "code": code}}),
    )
}

/// (status, Anthropic error type, message) of an injected failure.
fn anthropic_fault(rule: &FailRule) -> (u16, &'static str, String) {
    let status = rule.error.parse::<u16>().unwrap_or(500);
    let kind = match status {
        400 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        529 => "overloaded_error",
        _ => "api_error",
    };
    let msg = rule.message.clone().unwrap_or_else(|| match status {
        429 => "Number of request tokens has exceeded your per-minute rate limit".to_owned(),
        529 => "Overloaded".to_owned(),
        _ => "Internal server error".to_owned(),
    });
    (status, kind, msg)
}

fn openai_fault(rule: &FailRule) -> (u16, &'static str, String) {
    let status = rule.error.parse::<u16>().unwrap_or(500);
    let kind = match status {
        429 => "rate_limit_exceeded",
        400 => "invalid_request_error",
        _ => "server_error",
    };
    let msg = rule.message.clone().unwrap_or_else(|| match status {
        429 => "Rate limit reached for requests".to_owned(),
        _ => "The server had an error while processing your request.".to_owned(),
    });
    (status, kind, msg)
}

/// An SSE response of `chunks`, `delay` apart.
pub(crate) fn sse(chunks: Vec<String>, delay: Duration) -> Response {
    let body = if delay.is_zero() {
        Body::from(chunks.concat())
    } else {
        Body::from_stream(futures::stream::iter(chunks).then(move |c| async move {
            tokio::time::sleep(delay).await;
            Ok::<_, Infallible>(Bytes::from(c))
        }))
    };
    let mut r = (StatusCode::OK, body).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

/// An Anthropic API version: a date, `YYYY-MM-DD`.
pub(crate) fn is_version(v: &str) -> bool {
    let b = v.as_bytes();
    b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit())
}

pub(crate) fn model_known(name: &str, family: Family) -> bool {
    Catalog::builtin()
        .models
        .iter()
        .any(|m| m.family == family && (m.id == name || m.direct_api_id.as_deref() == Some(name)))
}

impl Inner {
    /// Whether `given` is the direct-API key, compared in constant time over
    /// SHA-256 digests so that neither the first differing byte nor the key's
    /// length shows in the response time.
    fn direct_key_ok(&self, given: Option<&str>) -> bool {
        let (Some(given), false) = (given, self.cfg.direct_api_key.is_empty()) else {
            return false;
        };
        let digest = |s: &str| aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, s.as_bytes());
        aws_lc_rs::constant_time::verify_slices_are_equal(
            digest(given).as_ref(),
            digest(&self.cfg.direct_api_key).as_ref(),
        )
        .is_ok()
    }

    /// `GET /anthropic/v1/models` or `GET /openai/v1/models`.
    pub(crate) fn direct_models(&self, family: Family) -> Response {
        let data: Vec<Value> = Catalog::builtin()
            .models
            .iter()
            .filter(|m| m.family == family)
            .filter_map(|m| m.direct_api_id.as_ref())
            .map(|id| match family {
                Family::Anthropic => json!({"type": "model", "id": id, "display_name": id}),
                Family::Openai => json!({"id": id, "object": "model", "owned_by": "openai"}),
                // Gemini has no direct API here (filtered out above: no id).
                Family::Google => json!({"id": id, "object": "model", "owned_by": "google"}),
            })
            .collect();
        json_resp(StatusCode::OK, &json!({"object": "list", "data": data}))
    }

    /// `POST /anthropic/v1/messages`.
    pub(crate) fn anthropic_messages(&self, headers: &HeaderMap, body: &[u8]) -> Response {
        let key = headers.get("x-api-key").and_then(|v| v.to_str().ok());
        if key.is_none() {
            return anthropic_error(401, "authentication_error", "x-api-key header is required");
        }
        if !self.direct_key_ok(key) {
            return anthropic_error(401, "authentication_error", "invalid x-api-key");
        }
        match headers
            .get("anthropic-version")
            .and_then(|v| v.to_str().ok())
        {
            None => {
                return anthropic_error(
                    400,
                    "invalid_request_error",
                    "anthropic-version: header is required",
                );
            }
            Some(v) if !is_version(v) => {
                return anthropic_error(
                    400,
                    "invalid_request_error",
                    &format!("anthropic-version: invalid version '{v}' (expected YYYY-MM-DD)"),
                );
            }
            Some(_) => {}
        }
        if let Some(rule) = self.faults.take_failure(ANTHROPIC_OP, false) {
            let (s, k, m) = anthropic_fault(&rule);
            return anthropic_error(s, k, &m);
        }
        let Ok(v) = serde_json::from_slice::<Value>(body) else {
            return anthropic_error(
                400,
                "invalid_request_error",
                "The request body is not valid JSON.",
            );
        };
        let model = match v.get("model").and_then(Value::as_str) {
            None => return anthropic_error(400, "invalid_request_error", "model: Field required"),
            Some(m) if !model_known(m, Family::Anthropic) => {
                return anthropic_error(404, "not_found_error", &format!("model: {m}"));
            }
            Some(m) => m.to_owned(),
        };
        let id = format!("msg_{}", random_chars(24, UPPER_ALNUM));
        self.anthropic_answer(ANTHROPIC_OP, &id, &model, &v)
    }

    /// Anthropic's answer to a Messages body `v` (its `model` already
    /// checked) for `model`: a Message, or its SSE events when `stream` is
    /// true, with the injected mid-stream failure of `op`. The one home of
    /// the Messages answer for every host that serves Claude's own wire
    /// (Anthropic's API, Azure AI Foundry).
    pub(crate) fn anthropic_answer(&self, op: &str, id: &str, model: &str, v: &Value) -> Response {
        let mut rest = v.clone();
        if let Some(o) = rest.as_object_mut() {
            o.remove("model");
            o.remove("stream");
            o.remove("metadata");
        }
        let r = match anthropic_reply(&rest, None) {
            Ok(r) => r,
            Err(e) => return anthropic_error(400, "invalid_request_error", &e.message),
        };
        if v.get("stream").and_then(Value::as_bool) != Some(true) {
            return json_resp(StatusCode::OK, &message_json(id, model, &r));
        }
        let failure = self.faults.take_failure(op, true);
        let mut chunks: Vec<String> = anthropic_events(id, model, &r)
            .into_iter()
            .map(|(name, data)| format!("event: {name}\ndata: {data}\n\n"))
            .collect();
        // Anthropic sends a ping after content_block_start.
        chunks.insert(2, "event: ping\ndata: {\"type\": \"ping\"}\n\n".to_owned());
        if let Some(rule) = failure {
            chunks.truncate(usize::try_from(rule.after_events.unwrap_or(0)).unwrap_or(usize::MAX));
            let (_, kind, msg) = anthropic_fault(&rule);
            chunks.push(format!(
                "event: error\ndata: {}\n\n",
                json!({"type": "error", "error": {"type": kind, "message": msg}})
            ));
        }
        sse(chunks, self.faults.stream_event_delay())
    }

    /// `POST /openai/v1/chat/completions`, and Anthropic's OpenAI-compatible
    /// `POST /anthropic/v1/chat/completions` (Claude models, same wire format).
    pub(crate) fn openai_chat(&self, headers: &HeaderMap, body: &[u8], family: Family) -> Response {
        let op = match family {
            Family::Openai | Family::Google => OPENAI_OP,
            Family::Anthropic => ANTHROPIC_COMPAT_OP,
        };
        let auth = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        let Some(auth) = auth else {
            return openai_error(
                401,
                "invalid_request_error",
                None,
                "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
            );
        };
        if !self.direct_key_ok(auth.strip_prefix("Bearer ")) {
            return openai_error(
                401,
                "invalid_request_error",
                Some("invalid_api_key"),
                "Incorrect API key provided.",
            );
        }
        if let Some(rule) = self.faults.take_failure(op, false) {
            let (s, k, m) = openai_fault(&rule);
            return openai_error(s, k, None, &m);
        }
        let Ok(v) = serde_json::from_slice::<Value>(body) else {
            return openai_error(
                400,
                "invalid_request_error",
                None,
                "We could not parse the JSON body of your request.",
            );
        };
        let model = match v.get("model").and_then(Value::as_str) {
            None => {
                return openai_error(
                    400,
                    "invalid_request_error",
                    None,
                    "you must provide a model parameter",
                );
            }
            Some(m) if !model_known(m, family) => {
                return openai_error(
                    404,
                    "invalid_request_error",
                    Some("model_not_found"),
                    &format!("The model `{m}` does not exist or you do not have access to it."),
                );
            }
            Some(m) => m.to_owned(),
        };
        self.openai_answer(op, &model, &v)
    }

    /// OpenAI's answer to a Chat Completions body `v` (its `model` already
    /// checked), naming `model` in it: a `chat.completion`, or its SSE
    /// chunks when `stream` is true, with the injected mid-stream failure of
    /// `op`. The one home of the Chat Completions answer for every host that
    /// serves OpenAI's wire (OpenAI's API, Anthropic's compatible endpoint,
    /// Azure OpenAI).
    pub(crate) fn openai_answer(&self, op: &str, model: &str, v: &Value) -> Response {
        let Some(messages) = v
            .get("messages")
            .and_then(Value::as_array)
            .filter(|m| !m.is_empty())
        else {
            return openai_error(
                400,
                "invalid_request_error",
                None,
                "[] is too short - 'messages'",
            );
        };
        let mut texts = vec![];
        let mut last_user = String::new();
        for m in messages {
            let role = m.get("role").and_then(Value::as_str).unwrap_or_default();
            if !["system", "developer", "user", "assistant", "tool"].contains(&role) {
                return openai_error(
                    400,
                    "invalid_request_error",
                    None,
                    &format!(
                        "Invalid value: '{role}'. Supported values are: 'system', 'developer', 'user', 'assistant' and 'tool'."
                    ),
                );
            }
            let mut mine = vec![];
            match m.get("content") {
                Some(Value::String(s)) => mine.push(s.clone()),
                Some(Value::Array(parts)) => {
                    for p in parts {
                        if let Some(t) = p.get("text").and_then(Value::as_str) {
                            mine.push(t.to_owned());
                        }
                    }
                }
                _ => {}
            }
            // A tool result is what the model answers next, as a user turn is.
            if role == "user" || role == "tool" {
                last_user = mine.join(" ");
            }
            texts.extend(mine);
        }
        let tools: Vec<String> = v
            .get("tools")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|t| t.pointer("/function/name").and_then(Value::as_str))
            .map(str::to_owned)
            .collect();
        let max = v
            .get("max_completion_tokens")
            .or_else(|| v.get("max_tokens"))
            .and_then(Value::as_u64)
            .unwrap_or(4096);
        let r = llm::respond(texts.iter().map(String::as_str), &last_user, max, &tools);
        let finish = match r.stop {
            Stop::MaxTokens => "length",
            Stop::ToolUse => "tool_calls",
            Stop::EndTurn => "stop",
        };
        let call_id = format!("call_{}", random_chars(24, UPPER_ALNUM));
        let id = format!("chatcmpl-{}", random_chars(24, UPPER_ALNUM));
        let created = self.clock.now();
        let usage = json!({
            "prompt_tokens": r.input_tokens,
            "completion_tokens": r.output_tokens,
            "total_tokens": r.input_tokens + r.output_tokens,
        });
        if v.get("stream").and_then(Value::as_bool) != Some(true) {
            return json_resp(
                StatusCode::OK,
                &json!({
                    "id": id, "object": "chat.completion", "created": created, "model": model,
                    "choices": [{"index": 0, "message": match &r.tool {
                                    Some(t) => json!({"role": "assistant", "content": null, "refusal": null,
                                        "tool_calls": [{"id": call_id, "type": "function",
                                            "function": {"name": t.name, "arguments": t.input.to_string()}}]}),
                                    None => json!({"role": "assistant", "content": r.text(), "refusal": null}),
                                 },
                                 "logprobs": null, "finish_reason": finish}],
                    "usage": usage,
                }),
            );
        }
        let chunk = |delta: Value, finish: Value| {
            format!(
                "data: {}\n\n",
                json!({"id": id, "object": "chat.completion.chunk", "created": created, "model": model,
                       "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]})
            )
        };
        let mut chunks = match &r.tool {
            Some(t) => vec![
                chunk(
                    json!({"role": "assistant", "content": null, "tool_calls": [{"index": 0, "id": call_id,
                           "type": "function", "function": {"name": t.name, "arguments": ""}}]}),
                    Value::Null,
                ),
                chunk(
                    json!({"tool_calls": [{"index": 0, "function": {"arguments": t.input.to_string()}}]}),
                    Value::Null,
                ),
            ],
            None => vec![chunk(
                json!({"role": "assistant", "content": ""}),
                Value::Null,
            )],
        };
        for p in &r.pieces {
            chunks.push(chunk(json!({"content": p}), Value::Null));
        }
        chunks.push(chunk(json!({}), Value::from(finish)));
        if v.pointer("/stream_options/include_usage")
            .and_then(Value::as_bool)
            == Some(true)
        {
            chunks.push(format!(
                "data: {}\n\n",
                json!({"id": id, "object": "chat.completion.chunk", "created": created, "model": model,
                       "choices": [], "usage": usage})
            ));
        }
        if let Some(rule) = self.faults.take_failure(op, true) {
            chunks.truncate(usize::try_from(rule.after_events.unwrap_or(0)).unwrap_or(usize::MAX));
            let (_, kind, msg) = openai_fault(&rule);
            chunks.push(format!(
                "data: {}\n\n",
                json!({"error": {"message": msg, "type": kind, "param": null, "code": null}})
            ));
        } else {
            chunks.push("data: [DONE]\n\n".to_owned());
        }
        sse(chunks, self.faults.stream_event_delay())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert!(is_version("2023-06-01"));
        assert!(!is_version("2023-6-01"));
        assert!(!is_version("latest"));
    }
}
