//! Converse stream events → OpenAI `chat.completion.chunk` objects.
//!
//! Sequence produced (what OpenAI itself sends):
//! 1. one chunk with `delta: {role: "assistant", content: ""}`, before anything else;
//! 2. `delta: {content}` per text delta;
//! 3. per tool use: a chunk naming the call (`index`, `id`, `type`, `function.name`,
//!    empty `arguments`), then `delta: {tool_calls: [{index, function: {arguments}}]}`
//!    per input fragment. `index` counts tool calls in order of appearance, not
//!    Converse's `contentBlockIndex` (which also counts text blocks);
//! 4. on `messageStop`, a chunk with an empty delta and the `finish_reason`;
//! 5. on `metadata`, when `stream_options.include_usage` was set, a chunk with
//!    `choices: []` and `usage` (other chunks then carry `usage: null`, as OpenAI's do).
//!
//! Text blocks get no `contentBlockStart` in Converse (aws-facts §5.4), so nothing
//! here depends on one. Reasoning deltas and unknown events produce nothing.

use std::collections::HashMap;

use aws_sdk_bedrockruntime::types::{ContentBlockDelta, ContentBlockStart, ConverseStreamOutput};
use serde_json::{Value, json};

use super::{finish_reason, openai_usage, token_counts};

/// Turns one Converse stream into OpenAI chunks, event by event.
#[derive(Debug)]
pub struct OpenAiStream {
    model: String,
    id: String,
    created: i64,
    include_usage: bool,
    role_sent: bool,
    /// Converse `contentBlockIndex` → OpenAI tool call `index`.
    tool_index: HashMap<i32, usize>,
    usage: Option<(u64, u64)>,
    /// Converse's `stopReason`, once `messageStop` has arrived.
    stop_reason: Option<String>,
}

impl OpenAiStream {
    /// `include_usage` is the request's `stream_options.include_usage`.
    pub fn new(model: &str, id: &str, created: i64, include_usage: bool) -> Self {
        Self {
            model: model.to_owned(),
            id: id.to_owned(),
            created,
            include_usage,
            role_sent: false,
            tool_index: HashMap::new(),
            usage: None,
            stop_reason: None,
        }
    }

    /// The chunks (zero or more) that one Converse event becomes.
    pub fn on_event(&mut self, event: &ConverseStreamOutput) -> Vec<Value> {
        let mut out = Vec::new();
        match event {
            ConverseStreamOutput::MessageStart(_) => self.ensure_role(&mut out),
            ConverseStreamOutput::ContentBlockStart(e) => {
                if let Some(ContentBlockStart::ToolUse(tu)) = &e.start {
                    self.ensure_role(&mut out);
                    let index = self.tool_call_index(e.content_block_index);
                    out.push(self.chunk(
                        json!({"tool_calls": [{
                            "index": index,
                            "id": tu.tool_use_id,
                            "type": "function",
                            "function": {"name": tu.name, "arguments": ""},
                        }]}),
                        Value::Null,
                    ));
                }
            }
            ConverseStreamOutput::ContentBlockDelta(e) => match &e.delta {
                Some(ContentBlockDelta::Text(text)) if !text.is_empty() => {
                    self.ensure_role(&mut out);
                    out.push(self.chunk(json!({"content": text}), Value::Null));
                }
                Some(ContentBlockDelta::ToolUse(tu)) if !tu.input.is_empty() => {
                    self.ensure_role(&mut out);
                    let index = self.tool_call_index(e.content_block_index);
                    out.push(self.chunk(
                        json!({"tool_calls": [{"index": index, "function": {"arguments": tu.input}}]}),
                        Value::Null,
                    ));
                }
                _ => {}
            },
            ConverseStreamOutput::MessageStop(e) => {
                self.stop_reason = Some(e.stop_reason.as_str().to_owned());
                self.ensure_role(&mut out);
                out.push(self.chunk(json!({}), Value::from(finish_reason(&e.stop_reason))));
            }
            ConverseStreamOutput::Metadata(e) => {
                if let Some(usage) = &e.usage {
                    self.usage = Some(token_counts(usage));
                    if self.include_usage {
                        out.push(json!({
                            "id": self.id,
                            "object": "chat.completion.chunk",
                            "created": self.created,
                            "model": self.model,
                            "choices": [],
                            "usage": openai_usage(usage),
                        }));
                    }
                }
            }
            _ => {}
        }
        out
    }

    /// `(input, output)` tokens from the `metadata` event, once it has arrived.
    /// Input includes cache reads and writes, as in [`super::usage_of`].
    pub fn usage(&self) -> Option<(u64, u64)> {
        self.usage
    }

    /// Converse's `stopReason` (`end_turn`, `max_tokens`, …), once the
    /// stream has stopped: what the unstreamed answer's span records.
    pub fn stop_reason(&self) -> Option<&str> {
        self.stop_reason.as_deref()
    }

    fn ensure_role(&mut self, out: &mut Vec<Value>) {
        if !self.role_sent {
            self.role_sent = true;
            out.push(self.chunk(json!({"role": "assistant", "content": ""}), Value::Null));
        }
    }

    fn tool_call_index(&mut self, block: i32) -> usize {
        let next = self.tool_index.len();
        *self.tool_index.entry(block).or_insert(next)
    }

    fn chunk(&self, delta: Value, finish_reason: Value) -> Value {
        let mut c = json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{
                "index": 0,
                "delta": delta,
                "logprobs": null,
                "finish_reason": finish_reason,
            }],
        });
        if self.include_usage {
            c["usage"] = Value::Null;
        }
        c
    }
}

#[cfg(test)]
#[path = "openai_stream_tests.rs"]
mod tests;
