//! Non-streaming Converse output → OpenAI `chat.completion` JSON.
//!
//! Text blocks are joined into `message.content` (`null` when the reply is only
//! tool calls); `toolUse` blocks become `message.tool_calls` with the input
//! serialized as the JSON string OpenAI clients parse; reasoning and other block
//! kinds have no Chat Completions field and are left out.

use aws_sdk_bedrockruntime::operation::converse::ConverseOutput;
use aws_sdk_bedrockruntime::types::{self as bt, ContentBlock};
use serde_json::{Value, json};

use super::document::document_to_json;
use super::{finish_reason, openai_usage};

/// Non-streaming Converse output → OpenAI `chat.completion` JSON.
pub fn converse_to_openai(output: &ConverseOutput, model: &str, id: &str, created: i64) -> Value {
    let blocks: &[ContentBlock] = match &output.output {
        Some(bt::ConverseOutput::Message(m)) => &m.content,
        _ => &[],
    };
    let mut text: Option<String> = None;
    let mut tool_calls = Vec::new();
    for block in blocks {
        match block {
            ContentBlock::Text(t) => text.get_or_insert_with(String::new).push_str(t),
            ContentBlock::ToolUse(tu) => tool_calls.push(json!({
                "id": tu.tool_use_id,
                "type": "function",
                "function": {
                    "name": tu.name,
                    "arguments": document_to_json(&tu.input).to_string(),
                },
            })),
            _ => {}
        }
    }
    let content = match text {
        Some(t) => Value::String(t),
        // OpenAI sends `null` next to tool calls, and `""` for an empty reply.
        None if !tool_calls.is_empty() => Value::Null,
        None => Value::String(String::new()),
    };
    let mut message = json!({
        "role": "assistant",
        "content": content,
        "refusal": null,
    });
    if !tool_calls.is_empty() {
        message["tool_calls"] = Value::Array(tool_calls);
    }
    let usage = output.usage.as_ref().map_or_else(
        || json!({"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}),
        openai_usage,
    );
    json!({
        "id": id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{
            "index": 0,
            "message": message,
            "logprobs": null,
            "finish_reason": finish_reason(&output.stop_reason),
        }],
        "usage": usage,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_bedrockruntime::types::{
        ConversationRole, Message, StopReason, TokenUsage, ToolUseBlock,
    };

    use crate::translate::{json_to_document, usage_of};

    fn output(content: Vec<ContentBlock>, stop: StopReason) -> ConverseOutput {
        ConverseOutput::builder()
            .output(bt::ConverseOutput::Message(
                Message::builder()
                    .role(ConversationRole::Assistant)
                    .set_content(Some(content))
                    .build()
                    .unwrap(),
            ))
            .stop_reason(stop)
            .usage(
                TokenUsage::builder()
                    .input_tokens(12)
                    .output_tokens(34)
                    .total_tokens(46)
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap()
    }

    #[test]
    fn text_reply() {
        let out = output(
            vec![
                ContentBlock::Text("Hello".into()),
                ContentBlock::Text(", world".into()),
            ],
            StopReason::EndTurn,
        );
        insta::assert_json_snapshot!(converse_to_openai(
            &out,
            "claude-sonnet-4",
            "chatcmpl-1",
            1_700_000_000
        ));
        assert_eq!(usage_of(&out), (12, 34));
    }

    #[test]
    fn tool_call_reply() {
        let out = output(
            vec![
                ContentBlock::Text("Let me check.".into()),
                ContentBlock::ToolUse(
                    ToolUseBlock::builder()
                        .tool_use_id("tooluse_abc")
                        .name("get_weather")
                        .input(json_to_document(&json!({"city": "Paris", "days": 2})))
                        .build()
                        .unwrap(),
                ),
            ],
            StopReason::ToolUse,
        );
        insta::assert_json_snapshot!(converse_to_openai(
            &out,
            "claude-sonnet-4",
            "chatcmpl-2",
            1_700_000_000
        ));
    }

    #[test]
    fn tool_calls_only_have_null_content() {
        let out = output(
            vec![ContentBlock::ToolUse(
                ToolUseBlock::builder()
                    .tool_use_id("t1")
                    .name("noop")
                    .input(json_to_document(&json!({})))
                    .build()
                    .unwrap(),
            )],
            StopReason::ToolUse,
        );
        let v = converse_to_openai(&out, "m", "id", 0);
        assert_eq!(v["choices"][0]["message"]["content"], Value::Null);
        assert_eq!(
            v["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"],
            "{}"
        );
        assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
    }

    #[test]
    fn truncated_reply_reports_length() {
        let out = output(
            vec![ContentBlock::Text("Once upon".into())],
            StopReason::MaxTokens,
        );
        let v = converse_to_openai(&out, "m", "id", 0);
        assert_eq!(v["choices"][0]["finish_reason"], "length");
        assert!(v["choices"][0]["message"].get("tool_calls").is_none());
    }
}
