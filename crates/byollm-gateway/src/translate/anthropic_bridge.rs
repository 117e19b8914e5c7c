//! Chat Completions on a host that speaks only Anthropic Messages (Claude on
//! Vertex AI's `rawPredict`): the request goes through the validated Converse
//! translation ([`super::openai_to_converse`]) and from there to an Anthropic
//! body; the answer comes back as Converse shapes, so the one OpenAI
//! rendering ([`super::converse_to_openai`], [`super::OpenAiStream`]) writes
//! it. Every rule about which OpenAI fields are honoured or refused, how tool
//! calls, finish reasons and usage look, stays in one place.

use aws_sdk_bedrockruntime::operation::converse::ConverseOutput;
use aws_sdk_bedrockruntime::types::{
    self as bt, ContentBlock, ContentBlockDelta, ContentBlockDeltaEvent, ContentBlockStart,
    ContentBlockStartEvent, ContentBlockStopEvent, ConversationRole, ConverseMetrics,
    ConverseStreamMetadataEvent, ConverseStreamOutput, ImageSource, Message, MessageStartEvent,
    MessageStopEvent, StopReason, SystemContentBlock, Tool, ToolChoice, ToolInputSchema,
    ToolResultContentBlock, ToolResultStatus, ToolUseBlock, ToolUseBlockDelta, ToolUseBlockStart,
};
use base64::Engine as _;
use bytes::Bytes;
use serde_json::{Map, Value, json};

use super::document::{document_to_json, json_to_document};
use super::{ConverseRequest, OpenAiStream};
use crate::relay::{Relay, openai_error};
use crate::sse::{self, SseParser};

/// A validated Chat Completions request (as Converse input) → an Anthropic
/// Messages body, without `model`.
pub fn converse_to_anthropic(req: &ConverseRequest) -> Map<String, Value> {
    let mut body = Map::new();
    let system: Vec<Value> = req
        .system
        .iter()
        .filter_map(|b| match b {
            SystemContentBlock::Text(t) => Some(json!({"type": "text", "text": t})),
            _ => None,
        })
        .collect();
    if !system.is_empty() {
        body.insert("system".into(), Value::Array(system));
    }
    let messages: Vec<Value> = req.messages.iter().map(message).collect();
    body.insert("messages".into(), Value::Array(messages));
    let cfg = &req.inference_config;
    body.insert("max_tokens".into(), json!(cfg.max_tokens.unwrap_or(1)));
    if let Some(t) = cfg.temperature {
        body.insert("temperature".into(), json!(t));
    }
    if let Some(p) = cfg.top_p {
        body.insert("top_p".into(), json!(p));
    }
    if let Some(stop) = &cfg.stop_sequences {
        body.insert("stop_sequences".into(), json!(stop));
    }
    if let Some(tc) = &req.tool_config {
        let tools: Vec<Value> = tc
            .tools
            .iter()
            .filter_map(|t| match t {
                Tool::ToolSpec(spec) => {
                    let schema = match &spec.input_schema {
                        Some(ToolInputSchema::Json(doc)) => document_to_json(doc),
                        _ => json!({"type": "object"}),
                    };
                    let mut v = json!({"name": spec.name, "input_schema": schema});
                    if let Some(d) = &spec.description {
                        v["description"] = json!(d);
                    }
                    Some(v)
                }
                _ => None,
            })
            .collect();
        body.insert("tools".into(), Value::Array(tools));
        let choice = match &tc.tool_choice {
            Some(ToolChoice::Any(_)) => Some(json!({"type": "any"})),
            Some(ToolChoice::Tool(t)) => Some(json!({"type": "tool", "name": t.name})),
            Some(ToolChoice::Auto(_)) => Some(json!({"type": "auto"})),
            _ => None,
        };
        if let Some(c) = choice {
            body.insert("tool_choice".into(), c);
        }
    }
    body
}

fn message(m: &Message) -> Value {
    let role = match m.role {
        ConversationRole::Assistant => "assistant",
        _ => "user",
    };
    let content: Vec<Value> = m.content.iter().filter_map(block).collect();
    json!({"role": role, "content": content})
}

fn image(img: &bt::ImageBlock) -> Option<Value> {
    let Some(ImageSource::Bytes(b)) = &img.source else {
        return None;
    };
    let data = base64::engine::general_purpose::STANDARD.encode(b.as_ref());
    Some(json!({"type": "image", "source": {
        "type": "base64", "media_type": format!("image/{}", img.format.as_str()), "data": data}}))
}

fn block(b: &ContentBlock) -> Option<Value> {
    match b {
        ContentBlock::Text(t) => Some(json!({"type": "text", "text": t})),
        ContentBlock::Image(img) => image(img),
        ContentBlock::ToolUse(tu) => Some(json!({"type": "tool_use", "id": tu.tool_use_id,
            "name": tu.name, "input": document_to_json(&tu.input)})),
        ContentBlock::ToolResult(tr) => {
            let content: Vec<Value> = tr
                .content
                .iter()
                .filter_map(|c| match c {
                    ToolResultContentBlock::Text(t) => Some(json!({"type": "text", "text": t})),
                    ToolResultContentBlock::Json(d) => {
                        Some(json!({"type": "text", "text": document_to_json(d).to_string()}))
                    }
                    ToolResultContentBlock::Image(img) => image(img),
                    _ => None,
                })
                .collect();
            let mut v = json!({"type": "tool_result", "tool_use_id": tr.tool_use_id,
                "content": content});
            if tr.status == Some(ToolResultStatus::Error) {
                v["is_error"] = Value::Bool(true);
            }
            Some(v)
        }
        _ => None,
    }
}

fn count(v: &Value) -> i32 {
    v.as_u64().and_then(|n| i32::try_from(n).ok()).unwrap_or(0)
}

fn token_usage(u: &Value, input: i32) -> Option<bt::TokenUsage> {
    let output = count(&u["output_tokens"]);
    bt::TokenUsage::builder()
        .input_tokens(input)
        .output_tokens(output)
        .total_tokens(input.saturating_add(output))
        .set_cache_read_input_tokens(
            u["cache_read_input_tokens"]
                .as_u64()
                .map(|_| count(&u["cache_read_input_tokens"])),
        )
        .set_cache_write_input_tokens(
            u["cache_creation_input_tokens"]
                .as_u64()
                .map(|_| count(&u["cache_creation_input_tokens"])),
        )
        .build()
        .ok()
}

/// An Anthropic Messages answer → Converse output (text and tool calls, stop
/// reason, usage); `None` when it is not one.
pub fn anthropic_to_converse(v: &Value) -> Option<ConverseOutput> {
    let mut content = Vec::new();
    for b in v["content"].as_array()? {
        match b["type"].as_str() {
            Some("text") => content.push(ContentBlock::Text(b["text"].as_str()?.to_owned())),
            Some("tool_use") => content.push(ContentBlock::ToolUse(
                ToolUseBlock::builder()
                    .tool_use_id(b["id"].as_str()?)
                    .name(b["name"].as_str()?)
                    .input(json_to_document(&b["input"]))
                    .build()
                    .ok()?,
            )),
            _ => {}
        }
    }
    let message = Message::builder()
        .role(ConversationRole::Assistant)
        .set_content(Some(content))
        .build()
        .ok()?;
    let usage = &v["usage"];
    ConverseOutput::builder()
        .output(bt::ConverseOutput::Message(message))
        .stop_reason(StopReason::from(
            v["stop_reason"].as_str().unwrap_or("end_turn"),
        ))
        .set_usage(token_usage(usage, count(&usage["input_tokens"])))
        .metrics(ConverseMetrics::builder().latency_ms(0).build().ok()?)
        .build()
        .ok()
}

/// Anthropic stream events (Vertex AI's SSE) → OpenAI chunks through the
/// Converse stream rendering, then `data: [DONE]`.
#[derive(Debug)]
pub(crate) struct OpenAiFromAnthropic {
    parser: SseParser,
    stream: OpenAiStream,
    /// `message_start`'s input tokens, for the final usage.
    input: i32,
}

impl OpenAiFromAnthropic {
    pub(crate) fn new(stream: OpenAiStream) -> Self {
        Self {
            parser: SseParser::default(),
            stream,
            input: 0,
        }
    }

    /// One Anthropic event as Converse stream events.
    fn events(&mut self, v: &Value) -> Vec<ConverseStreamOutput> {
        let index = count(&v["index"]);
        let mut out = Vec::new();
        match v["type"].as_str() {
            Some("message_start") => {
                self.input = count(&v["message"]["usage"]["input_tokens"]);
                out.extend(
                    MessageStartEvent::builder()
                        .role(ConversationRole::Assistant)
                        .build()
                        .ok()
                        .map(ConverseStreamOutput::MessageStart),
                );
            }
            Some("content_block_start") if v["content_block"]["type"] == "tool_use" => {
                let b = &v["content_block"];
                let start = ToolUseBlockStart::builder()
                    .tool_use_id(b["id"].as_str().unwrap_or_default())
                    .name(b["name"].as_str().unwrap_or_default())
                    .build()
                    .ok();
                out.extend(start.and_then(|s| {
                    ContentBlockStartEvent::builder()
                        .content_block_index(index)
                        .start(ContentBlockStart::ToolUse(s))
                        .build()
                        .ok()
                        .map(ConverseStreamOutput::ContentBlockStart)
                }));
            }
            Some("content_block_delta") => {
                let d = &v["delta"];
                let delta = match d["type"].as_str() {
                    Some("text_delta") => d["text"]
                        .as_str()
                        .map(|t| ContentBlockDelta::Text(t.to_owned())),
                    Some("input_json_delta") => ToolUseBlockDelta::builder()
                        .input(d["partial_json"].as_str().unwrap_or_default())
                        .build()
                        .ok()
                        .map(ContentBlockDelta::ToolUse),
                    _ => None,
                };
                out.extend(delta.and_then(|delta| {
                    ContentBlockDeltaEvent::builder()
                        .content_block_index(index)
                        .delta(delta)
                        .build()
                        .ok()
                        .map(ConverseStreamOutput::ContentBlockDelta)
                }));
            }
            Some("content_block_stop") => out.extend(
                ContentBlockStopEvent::builder()
                    .content_block_index(index)
                    .build()
                    .ok()
                    .map(ConverseStreamOutput::ContentBlockStop),
            ),
            Some("message_delta") => {
                let reason = v["delta"]["stop_reason"].as_str().unwrap_or("end_turn");
                out.extend(
                    MessageStopEvent::builder()
                        .stop_reason(StopReason::from(reason))
                        .build()
                        .ok()
                        .map(ConverseStreamOutput::MessageStop),
                );
                out.push(ConverseStreamOutput::Metadata(
                    ConverseStreamMetadataEvent::builder()
                        .set_usage(token_usage(&v["usage"], self.input))
                        .build(),
                ));
            }
            _ => {}
        }
        out
    }
}

impl Relay for OpenAiFromAnthropic {
    type Item = Bytes;
    fn frames(&mut self, bytes: Bytes) -> Vec<Bytes> {
        let mut frames = Vec::new();
        for ev in self.parser.push(&bytes) {
            let Ok(v) = serde_json::from_str::<Value>(&ev.data) else {
                continue;
            };
            for e in self.events(&v) {
                frames.extend(
                    self.stream
                        .on_event(&e)
                        .iter()
                        .map(|chunk| sse::data(&chunk.to_string())),
                );
            }
        }
        frames
    }
    fn error_event(&self, message: &str) -> Bytes {
        openai_error(message)
    }
    fn end_frames(&self) -> Vec<Bytes> {
        vec![Bytes::from_static(sse::DONE)]
    }
    fn usage(&self) -> (u64, u64) {
        self.stream.usage().unwrap_or((0, 0))
    }
    fn finish_reasons(&self) -> Option<String> {
        self.stream.stop_reason().map(str::to_owned)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chat_request_becomes_an_anthropic_body_and_the_answer_comes_back() {
        let req = json!({"model": "m", "max_tokens": 50, "temperature": 0.5,
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": "weather?"},
                {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function",
                    "function": {"name": "lookup", "arguments": "{\"city\":\"Oslo\"}"}}]},
                {"role": "tool", "tool_call_id": "call_1", "content": "cold"}],
            "tools": [{"type": "function", "function": {"name": "lookup", "description": "look up",
                "parameters": {"type": "object"}}}],
            "tool_choice": "required"});
        let converse = super::super::openai_to_converse(&req, 4096).unwrap();
        let body = Value::Object(converse_to_anthropic(&converse));
        assert_eq!(body["system"][0]["text"], "be brief");
        assert_eq!(body["max_tokens"], 50);
        assert_eq!(body["messages"][0]["role"], "user");
        assert_eq!(body["messages"][1]["content"][0]["type"], "tool_use");
        assert_eq!(body["messages"][1]["content"][0]["input"]["city"], "Oslo");
        assert_eq!(body["messages"][2]["content"][0]["type"], "tool_result");
        assert_eq!(body["messages"][2]["content"][0]["tool_use_id"], "call_1");
        assert_eq!(body["tools"][0]["name"], "lookup");
        assert_eq!(body["tool_choice"]["type"], "any");
        assert!(body.get("model").is_none());

        let answer = json!({"content": [{"type": "text", "text": "Calling."},
            {"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {"city": "Oslo"}}],
            "stop_reason": "tool_use", "usage": {"input_tokens": 7, "output_tokens": 3}});
        let out = anthropic_to_converse(&answer).unwrap();
        let v = super::super::converse_to_openai(&out, "claude-sonnet-4-6", "chatcmpl-1", 1);
        assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(v["choices"][0]["message"]["content"], "Calling.");
        assert_eq!(
            v["choices"][0]["message"]["tool_calls"][0]["function"]["name"],
            "lookup"
        );
        assert_eq!(v["usage"]["prompt_tokens"], 7);
        assert_eq!(v["usage"]["completion_tokens"], 3);
    }

    #[test]
    fn anthropic_events_become_openai_chunks() {
        let mut relay = OpenAiFromAnthropic::new(OpenAiStream::new("m", "chatcmpl-1", 1, true));
        let sse = concat!(
            "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":5,\"output_tokens\":1}}}\n\n",
            "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
            "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi\"}}\n\n",
            "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
            "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_1\",\"name\":\"lookup\",\"input\":{}}}\n\n",
            "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{}\"}}\n\n",
            "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\"},\"usage\":{\"output_tokens\":4}}\n\n",
            "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
        );
        let frames = relay.frames(Bytes::from_static(sse.as_bytes()));
        let text: String = frames
            .iter()
            .map(|f| String::from_utf8_lossy(f).into_owned())
            .collect();
        assert!(text.contains("\"content\":\"Hi\""), "{text}");
        assert!(text.contains("\"name\":\"lookup\""), "{text}");
        assert!(text.contains("\"finish_reason\":\"tool_calls\""), "{text}");
        assert_eq!(relay.usage(), (5, 4));
        assert_eq!(relay.end_frames()[0], Bytes::from_static(sse::DONE));
    }
}
