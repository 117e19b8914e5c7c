//! Chat Completions on Gemini (Vertex AI's `generateContent` and
//! `streamGenerateContent?alt=sse`, gcp-facts §2.2): like the Anthropic bridge,
//! the request goes through the validated Converse translation
//! ([`super::openai_to_converse`]) and from there to a Gemini
//! `GenerateContentRequest`; the answer comes back as Converse shapes, so the
//! one OpenAI rendering ([`super::converse_to_openai`], [`super::OpenAiStream`])
//! writes it. Which OpenAI fields are honoured or refused stays in one place.
//!
//! Mapping (Vertex AI v1 REST field names):
//! - messages → `contents` with roles `user` / `model`; system → `systemInstruction`;
//! - tools → `tools[].functionDeclarations` (`name`, `description`, `parameters`);
//!   `tool_choice` → `toolConfig.functionCallingConfig` (`AUTO`, `ANY`, `ANY` with
//!   `allowedFunctionNames`);
//! - an assistant's tool call → a `functionCall` part (`name`, `args`); a tool
//!   result → a `functionResponse` part (`name` of the call it answers,
//!   `response: {"output": …}` or `{"error": …}`, Google's convention);
//! - `max_tokens` / `temperature` / `top_p` / `stop` → `generationConfig`
//!   (`maxOutputTokens`, `temperature`, `topP`, `stopSequences`);
//! - back: `candidates[0].content.parts` → text and tool calls (Gemini's calls
//!   carry no id unless it sends one: ids are `{prefix}_{n}`), `finishReason` →
//!   stop reason (`tool_use` when the answer calls a function: Gemini says
//!   `STOP` then), `usageMetadata` → usage (thinking tokens count as output:
//!   they are billed as output).

use std::collections::HashMap;

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

/// A validated Chat Completions request (as Converse input) → a Gemini
/// `GenerateContentRequest` body.
pub fn converse_to_gemini(req: &ConverseRequest) -> Map<String, Value> {
    let mut body = Map::new();
    let system: Vec<Value> = req
        .system
        .iter()
        .filter_map(|b| match b {
            SystemContentBlock::Text(t) => Some(json!({"text": t})),
            _ => None,
        })
        .collect();
    if !system.is_empty() {
        body.insert("systemInstruction".into(), json!({"parts": system}));
    }
    // A tool result names the function it answers; OpenAI names the call's
    // id, so the latest call with that id before it gives the name.
    let mut call_names: HashMap<String, String> = HashMap::new();
    let contents: Vec<Value> = req
        .messages
        .iter()
        .map(|m| content(m, &mut call_names))
        .collect();
    body.insert("contents".into(), Value::Array(contents));
    let cfg = &req.inference_config;
    let mut generation = Map::new();
    if let Some(n) = cfg.max_tokens {
        generation.insert("maxOutputTokens".into(), json!(n));
    }
    if let Some(t) = cfg.temperature {
        generation.insert("temperature".into(), json!(t));
    }
    if let Some(p) = cfg.top_p {
        generation.insert("topP".into(), json!(p));
    }
    if let Some(stop) = &cfg.stop_sequences {
        generation.insert("stopSequences".into(), json!(stop));
    }
    if !generation.is_empty() {
        body.insert("generationConfig".into(), Value::Object(generation));
    }
    if let Some(tc) = &req.tool_config {
        let declarations: Vec<Value> = tc
            .tools
            .iter()
            .filter_map(|t| match t {
                Tool::ToolSpec(spec) => {
                    let schema = match &spec.input_schema {
                        Some(ToolInputSchema::Json(doc)) => document_to_json(doc),
                        _ => json!({"type": "object"}),
                    };
                    let mut v = json!({"name": spec.name, "parameters": schema});
                    if let Some(d) = &spec.description {
                        v["description"] = json!(d);
                    }
                    Some(v)
                }
                _ => None,
            })
            .collect();
        body.insert(
            "tools".into(),
            json!([{"functionDeclarations": declarations}]),
        );
        let calling = match &tc.tool_choice {
            Some(ToolChoice::Any(_)) => Some(json!({"mode": "ANY"})),
            Some(ToolChoice::Tool(t)) => {
                Some(json!({"mode": "ANY", "allowedFunctionNames": [t.name]}))
            }
            Some(ToolChoice::Auto(_)) => Some(json!({"mode": "AUTO"})),
            _ => None,
        };
        if let Some(c) = calling {
            body.insert("toolConfig".into(), json!({"functionCallingConfig": c}));
        }
    }
    body
}

fn content(m: &Message, call_names: &mut HashMap<String, String>) -> Value {
    let role = match m.role {
        ConversationRole::Assistant => "model",
        _ => "user",
    };
    let parts: Vec<Value> = m
        .content
        .iter()
        .filter_map(|b| part(b, call_names))
        .collect();
    json!({"role": role, "parts": parts})
}

fn inline_image(img: &bt::ImageBlock) -> Option<Value> {
    let Some(ImageSource::Bytes(b)) = &img.source else {
        return None;
    };
    let data = base64::engine::general_purpose::STANDARD.encode(b.as_ref());
    Some(
        json!({"inlineData": {"mimeType": format!("image/{}", img.format.as_str()), "data": data}}),
    )
}

fn part(b: &ContentBlock, call_names: &mut HashMap<String, String>) -> Option<Value> {
    match b {
        ContentBlock::Text(t) => Some(json!({"text": t})),
        ContentBlock::Image(img) => inline_image(img),
        ContentBlock::ToolUse(tu) => {
            call_names.insert(tu.tool_use_id.clone(), tu.name.clone());
            Some(json!({"functionCall": {"name": tu.name, "args": document_to_json(&tu.input)}}))
        }
        ContentBlock::ToolResult(tr) => {
            let texts: Vec<Value> = tr
                .content
                .iter()
                .filter_map(|c| match c {
                    ToolResultContentBlock::Text(t) => Some(Value::String(t.clone())),
                    ToolResultContentBlock::Json(d) => Some(document_to_json(d)),
                    _ => None,
                })
                .collect();
            let value = match <[Value; 1]>::try_from(texts) {
                Ok([one]) => one,
                Err(many) => Value::Array(many),
            };
            let key = if tr.status == Some(ToolResultStatus::Error) {
                "error"
            } else {
                "output"
            };
            let name = call_names
                .get(&tr.tool_use_id)
                .cloned()
                .unwrap_or_else(|| tr.tool_use_id.clone());
            Some(json!({"functionResponse": {"name": name, "response": {key: value}}}))
        }
        _ => None,
    }
}

fn count(v: &Value) -> i32 {
    v.as_u64().and_then(|n| i32::try_from(n).ok()).unwrap_or(0)
}

/// Converse usage from Gemini's `usageMetadata`.
fn token_usage(u: &Value) -> Option<bt::TokenUsage> {
    let input = count(&u["promptTokenCount"]);
    let output = count(&u["candidatesTokenCount"]).saturating_add(count(&u["thoughtsTokenCount"]));
    bt::TokenUsage::builder()
        .input_tokens(input)
        .output_tokens(output)
        .total_tokens(input.saturating_add(output))
        .build()
        .ok()
}

/// Gemini's `finishReason` → a Converse stop reason; `called` when the answer
/// holds a function call (Gemini then says `STOP`).
fn stop_reason(finish: &str, called: bool) -> StopReason {
    match finish {
        "MAX_TOKENS" => StopReason::MaxTokens,
        "SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII" | "IMAGE_SAFETY" => {
            StopReason::ContentFiltered
        }
        "MALFORMED_FUNCTION_CALL" => StopReason::MalformedToolUse,
        _ if called => StopReason::ToolUse,
        _ => StopReason::EndTurn,
    }
}

/// The id of the `n`th function call of an answer: Gemini's own when it sends
/// one, else `{prefix}_{n}` (unique per answer: the prefix is the response's).
fn call_id(call: &Value, prefix: &str, n: usize) -> String {
    call["id"]
        .as_str()
        .filter(|s| !s.is_empty())
        .map_or_else(|| format!("{prefix}_{n}"), str::to_owned)
}

/// A Gemini `GenerateContentResponse` → Converse output (text and function
/// calls, stop reason, usage); `None` when it is not one. Calls without an
/// id get `{call_prefix}_{n}`.
pub fn gemini_to_converse(v: &Value, call_prefix: &str) -> Option<ConverseOutput> {
    let candidate = v["candidates"].as_array()?.first()?;
    let mut content = Vec::new();
    let mut calls = 0;
    for p in candidate["content"]["parts"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if let Some(t) = p["text"].as_str() {
            // Thought summaries are not the answer.
            if p["thought"] != Value::Bool(true) {
                content.push(ContentBlock::Text(t.to_owned()));
            }
        } else if p["functionCall"].is_object() {
            let call = &p["functionCall"];
            content.push(ContentBlock::ToolUse(
                ToolUseBlock::builder()
                    .tool_use_id(call_id(call, call_prefix, calls))
                    .name(call["name"].as_str()?)
                    .input(json_to_document(&call["args"]))
                    .build()
                    .ok()?,
            ));
            calls += 1;
        }
    }
    let message = Message::builder()
        .role(ConversationRole::Assistant)
        .set_content(Some(content))
        .build()
        .ok()?;
    let finish = candidate["finishReason"].as_str().unwrap_or("STOP");
    ConverseOutput::builder()
        .output(bt::ConverseOutput::Message(message))
        .stop_reason(stop_reason(finish, calls > 0))
        .set_usage(token_usage(&v["usageMetadata"]))
        .metrics(ConverseMetrics::builder().latency_ms(0).build().ok()?)
        .build()
        .ok()
}

/// Gemini's SSE (`streamGenerateContent?alt=sse`: each event a whole
/// `GenerateContentResponse` carrying the next parts) → OpenAI chunks through
/// the Converse stream rendering, then `data: [DONE]`.
#[derive(Debug)]
pub(crate) struct OpenAiFromGemini {
    parser: SseParser,
    stream: OpenAiStream,
    call_prefix: String,
    started: bool,
    /// Function calls so far (Converse block `1 + n`; text is block 0).
    calls: usize,
    /// The latest `usageMetadata`.
    usage: Option<bt::TokenUsage>,
    /// `messageStop` sent; the usage goes out with it or when it arrives.
    stopped: bool,
    usage_sent: bool,
}

impl OpenAiFromGemini {
    /// Calls without an id get `{call_prefix}_{n}`.
    pub(crate) fn new(stream: OpenAiStream, call_prefix: &str) -> Self {
        Self {
            parser: SseParser::default(),
            stream,
            call_prefix: call_prefix.to_owned(),
            started: false,
            calls: 0,
            usage: None,
            stopped: false,
            usage_sent: false,
        }
    }

    /// One Gemini response chunk as Converse stream events.
    fn events(&mut self, v: &Value) -> Vec<ConverseStreamOutput> {
        let mut out = Vec::new();
        if !self.started {
            self.started = true;
            out.extend(
                MessageStartEvent::builder()
                    .role(ConversationRole::Assistant)
                    .build()
                    .ok()
                    .map(ConverseStreamOutput::MessageStart),
            );
        }
        let candidate = &v["candidates"][0];
        for p in candidate["content"]["parts"]
            .as_array()
            .into_iter()
            .flatten()
        {
            if let Some(t) = p["text"].as_str() {
                if p["thought"] != Value::Bool(true) {
                    out.extend(delta(0, ContentBlockDelta::Text(t.to_owned())));
                }
            } else if p["functionCall"].is_object() {
                self.function_call(&p["functionCall"], &mut out);
            }
        }
        if v["usageMetadata"].is_object() {
            self.usage = token_usage(&v["usageMetadata"]);
        }
        if let Some(finish) = candidate["finishReason"].as_str()
            && !self.stopped
        {
            self.stopped = true;
            out.extend(
                MessageStopEvent::builder()
                    .stop_reason(stop_reason(finish, self.calls > 0))
                    .build()
                    .ok()
                    .map(ConverseStreamOutput::MessageStop),
            );
        }
        if self.stopped && !self.usage_sent && self.usage.is_some() {
            self.usage_sent = true;
            out.push(ConverseStreamOutput::Metadata(
                ConverseStreamMetadataEvent::builder()
                    .set_usage(self.usage.clone())
                    .build(),
            ));
        }
        out
    }

    /// A whole function call (Gemini streams them whole) as a tool-use block.
    fn function_call(&mut self, call: &Value, out: &mut Vec<ConverseStreamOutput>) {
        let index = i32::try_from(self.calls + 1).unwrap_or(i32::MAX);
        let id = call_id(call, &self.call_prefix, self.calls);
        self.calls += 1;
        let start = ToolUseBlockStart::builder()
            .tool_use_id(id)
            .name(call["name"].as_str().unwrap_or_default())
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
        let args = if call["args"].is_null() {
            "{}".to_owned()
        } else {
            call["args"].to_string()
        };
        out.extend(
            ToolUseBlockDelta::builder()
                .input(args)
                .build()
                .ok()
                .and_then(|d| delta(index, ContentBlockDelta::ToolUse(d))),
        );
        out.extend(
            ContentBlockStopEvent::builder()
                .content_block_index(index)
                .build()
                .ok()
                .map(ConverseStreamOutput::ContentBlockStop),
        );
    }
}

fn delta(index: i32, d: ContentBlockDelta) -> Option<ConverseStreamOutput> {
    ContentBlockDeltaEvent::builder()
        .content_block_index(index)
        .delta(d)
        .build()
        .ok()
        .map(ConverseStreamOutput::ContentBlockDelta)
}

impl Relay for OpenAiFromGemini {
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
#[path = "gemini_bridge_tests.rs"]
mod tests;
