//! Translations between the callers' API formats and Bedrock's (DESIGN §5).
//!
//! OpenAI Chat Completions requests go to Bedrock through `Converse` /
//! `ConverseStream`; this module turns the request JSON into Converse input
//! ([`openai_to_converse`]), the Converse output into a `chat.completion`
//! ([`converse_to_openai`]) and Converse stream events into
//! `chat.completion.chunk` objects ([`OpenAiStream`]). The same Converse shapes
//! bridge Chat Completions to Claude on Vertex AI (`anthropic_bridge`) and to
//! Gemini on Vertex AI (`gemini_bridge`).
//!
//! Everything here is pure: no I/O, no clock, no logging. Every failure is the
//! caller's request ([`TranslateError`], an HTTP 400 that must not fall back to
//! another upstream) and names the offending field.

mod anthropic_bridge;
mod document;
mod gemini_bridge;
mod openai_messages;
mod openai_request;
mod openai_response;
mod openai_stream;
mod openai_tools;

pub(crate) use anthropic_bridge::OpenAiFromAnthropic;
pub use anthropic_bridge::{anthropic_to_converse, converse_to_anthropic};
pub use document::{document_to_json, json_to_document};
pub(crate) use gemini_bridge::OpenAiFromGemini;
pub use gemini_bridge::{converse_to_gemini, gemini_to_converse};
pub use openai_request::{ConverseRequest, openai_to_converse};
pub use openai_response::converse_to_openai;
pub use openai_stream::OpenAiStream;

use aws_sdk_bedrockruntime::operation::converse::ConverseOutput;
use aws_sdk_bedrockruntime::types::{StopReason, TokenUsage};

/// A request that cannot be translated faithfully. Always the caller's fault
/// (HTTP 400); the message is safe to return to the caller as is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TranslateError {
    /// A required field is absent (or `null`).
    #[error("`{field}` is required")]
    Missing {
        /// JSON path of the field, e.g. `messages[2].tool_call_id`.
        field: String,
    },
    /// A field has the wrong type or an invalid value.
    #[error("`{field}` is invalid: {reason}")]
    Invalid {
        /// JSON path of the field.
        field: String,
        /// What is wrong, in words for the caller.
        reason: String,
    },
    /// A field asks for something Bedrock's Converse API cannot do; ignoring it
    /// would silently change the meaning of the request.
    #[error("`{field}` is not supported for Amazon Bedrock: {reason}")]
    Unsupported {
        /// JSON path of the field.
        field: String,
        /// What is unsupported and what to do instead.
        reason: String,
    },
}

impl TranslateError {
    /// JSON path of the offending field, e.g. `messages[2].content`.
    pub fn field(&self) -> &str {
        match self {
            Self::Missing { field }
            | Self::Invalid { field, .. }
            | Self::Unsupported { field, .. } => field,
        }
    }

    /// A stable machine-readable code for the error body.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Missing { .. } => "missing_field",
            Self::Invalid { .. } => "invalid_field",
            Self::Unsupported { .. } => "unsupported_field",
        }
    }

    pub(crate) fn missing(field: impl Into<String>) -> Self {
        Self::Missing {
            field: field.into(),
        }
    }

    pub(crate) fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn unsupported(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Unsupported {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// OpenAI `finish_reason` for a Converse `StopReason`.
///
/// `model_context_window_exceeded` is a truncation like `max_tokens`, so it maps to
/// `"length"` as OpenAI reports a context-limited reply; `malformed_*` and unknown
/// reasons map to `"stop"`.
pub fn finish_reason(reason: &StopReason) -> &'static str {
    match reason {
        StopReason::EndTurn | StopReason::StopSequence => "stop",
        StopReason::MaxTokens | StopReason::ModelContextWindowExceeded => "length",
        StopReason::ToolUse => "tool_calls",
        StopReason::GuardrailIntervened | StopReason::ContentFiltered => "content_filter",
        _ => "stop",
    }
}

/// `(input, output)` tokens of a non-streaming Converse reply.
///
/// Input counts every prompt token the model read: Bedrock's `inputTokens` plus
/// cache reads and cache writes (Bedrock reports those apart, OpenAI's
/// `prompt_tokens` includes them).
pub fn usage_of(output: &ConverseOutput) -> (u64, u64) {
    output.usage.as_ref().map(token_counts).unwrap_or((0, 0))
}

pub(crate) fn token_counts(usage: &TokenUsage) -> (u64, u64) {
    let n = |v: i32| u64::try_from(v).unwrap_or(0);
    let input = n(usage.input_tokens)
        + usage.cache_read_input_tokens.map_or(0, n)
        + usage.cache_write_input_tokens.map_or(0, n);
    (input, n(usage.output_tokens))
}

/// OpenAI `usage` object for a Bedrock `TokenUsage`.
pub(crate) fn openai_usage(usage: &TokenUsage) -> serde_json::Value {
    let (prompt, completion) = token_counts(usage);
    let mut v = serde_json::json!({
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    });
    if let Some(cached) = usage.cache_read_input_tokens {
        v["prompt_tokens_details"] =
            serde_json::json!({ "cached_tokens": u64::try_from(cached).unwrap_or(0) });
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_reasons_map_to_finish_reasons() {
        let cases = [
            ("end_turn", "stop"),
            ("stop_sequence", "stop"),
            ("max_tokens", "length"),
            ("model_context_window_exceeded", "length"),
            ("tool_use", "tool_calls"),
            ("guardrail_intervened", "content_filter"),
            ("content_filtered", "content_filter"),
            ("malformed_model_output", "stop"),
            ("malformed_tool_use", "stop"),
            ("something_new", "stop"),
        ];
        for (bedrock, openai) in cases {
            assert_eq!(
                finish_reason(&StopReason::from(bedrock)),
                openai,
                "{bedrock}"
            );
        }
    }

    #[test]
    fn usage_counts_cache_tokens_as_input() {
        let usage = TokenUsage::builder()
            .input_tokens(10)
            .output_tokens(5)
            .total_tokens(15)
            .cache_read_input_tokens(100)
            .cache_write_input_tokens(7)
            .build()
            .unwrap();
        assert_eq!(token_counts(&usage), (117, 5));
        assert_eq!(
            openai_usage(&usage),
            serde_json::json!({
                "prompt_tokens": 117, "completion_tokens": 5, "total_tokens": 122,
                "prompt_tokens_details": {"cached_tokens": 100}
            })
        );
    }

    #[test]
    fn error_names_its_field() {
        let e = TranslateError::invalid("messages[2].content", "must not be empty");
        assert_eq!(e.field(), "messages[2].content");
        assert_eq!(e.code(), "invalid_field");
        assert_eq!(
            e.to_string(),
            "`messages[2].content` is invalid: must not be empty"
        );
    }
}
