//! OpenAI Chat Completions request JSON → Bedrock Converse input: the entry
//! point, the inference configuration and the request-level fields. Messages are in
//! `openai_messages`, tools in `openai_tools`.
//!
//! Request fields that would change the answer and that Converse cannot honour
//! (`n > 1`, `logprobs`, JSON `response_format`, penalties, `logit_bias`, audio,
//! legacy `functions`) are refused; harmless ones (`user`, `stream`,
//! `stream_options`, `metadata`, `seed`, `parallel_tool_calls`, `store`, …) and
//! unknown ones are ignored.

use aws_sdk_bedrockruntime::types::{
    InferenceConfiguration, Message, SystemContentBlock, ToolConfiguration,
};
use serde_json::{Map, Value};

use super::{TranslateError, openai_messages, openai_tools};

/// Converse input translated from an OpenAI request; the caller adds the model ID.
#[derive(Debug, Clone, PartialEq)]
pub struct ConverseRequest {
    /// The conversation: starts with `user`, roles alternate.
    pub messages: Vec<Message>,
    /// System prompt blocks, in request order.
    pub system: Vec<SystemContentBlock>,
    /// Always carries `max_tokens`.
    pub inference_config: InferenceConfiguration,
    /// `None` when the request declares no tools (or `tool_choice: "none"` without
    /// tool history).
    pub tool_config: Option<ToolConfiguration>,
}

pub(super) type Result<T> = std::result::Result<T, TranslateError>;

/// OpenAI Chat Completions request JSON → Converse. `max_completion_tokens` (or
/// the older `max_tokens`) when absent → `default_max_tokens`: Bedrock reserves
/// quota for it, so one is always sent.
pub fn openai_to_converse(req: &Value, default_max_tokens: i32) -> Result<ConverseRequest> {
    let obj = req
        .as_object()
        .ok_or_else(|| TranslateError::invalid("body", "must be a JSON object"))?;
    refuse_unsupported(obj)?;
    let inference_config = inference_config(obj, default_max_tokens)?;
    let conv = openai_messages::conversation(obj)?;
    let tool_config = openai_tools::tool_config(obj, &conv)?;
    Ok(ConverseRequest {
        messages: conv.messages,
        system: conv.system,
        inference_config,
        tool_config,
    })
}

/// `obj[key]`, with JSON `null` read as absent (clients send explicit nulls).
pub(super) fn get<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.get(key).filter(|v| !v.is_null())
}

pub(super) fn get_str<'a>(
    obj: &'a Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<Option<&'a str>> {
    match get(obj, key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(TranslateError::invalid(
            format!("{path}.{key}").trim_start_matches('.'),
            "must be a string",
        )),
    }
}

pub(super) fn require_str<'a>(
    obj: &'a Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<&'a str> {
    get_str(obj, key, path)?
        .ok_or_else(|| TranslateError::missing(format!("{path}.{key}").trim_start_matches('.')))
}

pub(super) fn as_object<'a>(v: &'a Value, path: &str) -> Result<&'a Map<String, Value>> {
    v.as_object()
        .ok_or_else(|| TranslateError::invalid(path, "must be an object"))
}

fn refuse_unsupported(obj: &Map<String, Value>) -> Result<()> {
    if get(obj, "n").is_some_and(|n| n.as_u64() != Some(1)) {
        return Err(TranslateError::unsupported(
            "n",
            "Bedrock returns one choice per request; send n = 1 and repeat the request for more",
        ));
    }
    if get(obj, "logprobs").is_some_and(|v| v != &Value::Bool(false)) {
        return Err(TranslateError::unsupported(
            "logprobs",
            "Bedrock Converse does not return log probabilities",
        ));
    }
    if get(obj, "top_logprobs").is_some_and(|v| v.as_u64() != Some(0)) {
        return Err(TranslateError::unsupported(
            "top_logprobs",
            "Bedrock Converse does not return log probabilities",
        ));
    }
    if let Some(rf) = get(obj, "response_format") {
        let kind = rf.get("type").and_then(Value::as_str);
        if kind != Some("text") {
            return Err(TranslateError::unsupported(
                "response_format",
                "only {\"type\": \"text\"} is supported; for JSON output describe the format in \
                 the prompt or ask for a tool call with the schema as its parameters",
            ));
        }
    }
    if get(obj, "logit_bias").is_some_and(|v| v.as_object().is_none_or(|m| !m.is_empty())) {
        return Err(TranslateError::unsupported(
            "logit_bias",
            "Bedrock Converse has no token biasing",
        ));
    }
    for key in ["presence_penalty", "frequency_penalty"] {
        if get(obj, key).is_some_and(|v| v.as_f64() != Some(0.0)) {
            return Err(TranslateError::unsupported(
                key,
                "Bedrock Converse has no repetition penalties; omit it or send 0",
            ));
        }
    }
    for key in ["functions", "function_call"] {
        if get(obj, key).is_some() {
            return Err(TranslateError::unsupported(
                key,
                "the legacy function-calling fields are not translated; use `tools` and `tool_choice`",
            ));
        }
    }
    if get(obj, "audio").is_some() {
        return Err(TranslateError::unsupported(
            "audio",
            "audio output is not available through Bedrock Converse",
        ));
    }
    if let Some(m) = get(obj, "modalities") {
        let text_only = m
            .as_array()
            .is_some_and(|a| a.iter().all(|x| x.as_str() == Some("text")));
        if !text_only {
            return Err(TranslateError::unsupported(
                "modalities",
                "only [\"text\"] output is available through Bedrock Converse",
            ));
        }
    }
    if get(obj, "web_search_options").is_some() {
        return Err(TranslateError::unsupported(
            "web_search_options",
            "Bedrock Converse has no built-in web search",
        ));
    }
    Ok(())
}

fn inference_config(
    obj: &Map<String, Value>,
    default_max_tokens: i32,
) -> Result<InferenceConfiguration> {
    let max_tokens = match ["max_completion_tokens", "max_tokens"]
        .into_iter()
        .find_map(|k| get(obj, k).map(|v| (k, v)))
    {
        None => default_max_tokens,
        Some((key, v)) => v
            .as_u64()
            .filter(|n| *n >= 1)
            .and_then(|n| i32::try_from(n).ok())
            .ok_or_else(|| {
                TranslateError::invalid(key, "must be an integer between 1 and 2147483647")
            })?,
    };
    let mut b = InferenceConfiguration::builder().max_tokens(max_tokens);
    if let Some(v) = get(obj, "temperature") {
        b = b.temperature(unit_interval(v, "temperature", " (OpenAI allows up to 2)")?);
    }
    if let Some(v) = get(obj, "top_p") {
        b = b.top_p(unit_interval(v, "top_p", "")?);
    }
    match get(obj, "stop") {
        None => {}
        Some(Value::String(s)) if s.is_empty() => {}
        Some(Value::String(s)) => b = b.stop_sequences(s.clone()),
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                let s = item.as_str().ok_or_else(|| {
                    TranslateError::invalid(format!("stop[{i}]"), "must be a string")
                })?;
                if !s.is_empty() {
                    b = b.stop_sequences(s);
                }
            }
        }
        Some(_) => {
            return Err(TranslateError::invalid(
                "stop",
                "must be a string or an array of strings",
            ));
        }
    }
    Ok(b.build())
}

fn unit_interval(v: &Value, field: &str, note: &str) -> Result<f32> {
    match v.as_f64() {
        Some(x) if (0.0..=1.0).contains(&x) => Ok(x as f32),
        Some(_) => Err(TranslateError::invalid(
            field,
            format!("Bedrock accepts values from 0 to 1{note}"),
        )),
        None => Err(TranslateError::invalid(field, "must be a number")),
    }
}

#[cfg(test)]
#[path = "openai_request_tests.rs"]
mod tests;
