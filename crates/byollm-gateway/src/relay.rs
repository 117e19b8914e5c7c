//! Streaming after the commit point: one pump for every upstream and caller
//! format. An upstream yields items; a relay turns each into caller frames and
//! counts tokens; the pump stops when the client goes, and after the first byte
//! an upstream failure — or an upstream silent for longer than the stream idle
//! timeout — ends the stream with the caller format's error event, never a
//! second upstream call.

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use serde_json::{Value, json};

use crate::bedrock::{ConverseEvents, InvokeStream};
use crate::limits::stream_idle_cause;
use crate::outcome::{Failure, StreamEnd};
use crate::sse::{self, SseParser};
use crate::stream::Frames;
use crate::translate::OpenAiStream;

/// Where stream items come from.
pub(crate) trait Upstream: Send + 'static {
    /// One item.
    type Item: Send;
    /// The next item, a failure, or the end.
    fn next(&mut self) -> impl Future<Output = Option<Result<Self::Item, String>>> + Send;
}

impl Upstream for InvokeStream {
    type Item = Vec<u8>;
    async fn next(&mut self) -> Option<Result<Vec<u8>, String>> {
        InvokeStream::next(self)
            .await
            .map(|r| r.map_err(|f: Failure| f.to_string()))
    }
}

impl Upstream for ConverseEvents {
    type Item = aws_sdk_bedrockruntime::types::ConverseStreamOutput;
    async fn next(&mut self) -> Option<Result<Self::Item, String>> {
        ConverseEvents::next(self)
            .await
            .map(|r| r.map_err(|f: Failure| f.to_string()))
    }
}

impl Upstream for reqwest::Response {
    type Item = Bytes;
    async fn next(&mut self) -> Option<Result<Bytes, String>> {
        self.chunk().await.map_err(|e| e.to_string()).transpose()
    }
}

/// Turns upstream items into caller frames.
pub(crate) trait Relay: Send + 'static {
    /// The upstream item.
    type Item: Send;
    /// Frames for one item; updates the token counts.
    fn frames(&mut self, item: Self::Item) -> Vec<Bytes>;
    /// The frame that ends a stream the upstream broke.
    fn error_frame(&self, cause: &str) -> Bytes;
    /// Frames after a clean end.
    fn end_frames(&self) -> Vec<Bytes> {
        Vec::new()
    }
    /// Input and output tokens seen so far.
    fn usage(&self) -> (u64, u64);
}

/// Pumps `first` and the rest of `up` through `relay` into `frames`; returns how
/// the stream ended and the relay (for its token counts). An upstream quiet for
/// `idle` has broken the stream (`[gateway] stream_idle_timeout_ms`).
pub(crate) async fn pump<U, R>(
    first: U::Item,
    mut up: U,
    mut relay: R,
    frames: Frames,
    idle: Duration,
) -> (StreamEnd, R)
where
    U: Upstream,
    R: Relay<Item = U::Item>,
{
    let mut next: Option<Result<U::Item, String>> = Some(Ok(first));
    let mut end = StreamEnd::Completed;
    'pump: while let Some(item) = next.take() {
        match item {
            Ok(item) => {
                for frame in relay.frames(item) {
                    if !frames.send(frame).await {
                        end = StreamEnd::ClientGone;
                        break 'pump;
                    }
                }
            }
            Err(cause) => {
                let _ = frames.send(relay.error_frame(&cause)).await;
                end = StreamEnd::BrokeMidStream(cause);
                break;
            }
        }
        next = tokio::time::timeout(idle, up.next())
            .await
            .unwrap_or_else(|_| Some(Err(stream_idle_cause(idle))));
    }
    if end == StreamEnd::Completed {
        for frame in relay.end_frames() {
            if !frames.send(frame).await {
                break;
            }
        }
    }
    (end, relay)
}

fn anthropic_error(cause: &str) -> Bytes {
    let err = json!({"type": "error", "error": {"type": "api_error", "message": format!("upstream failed mid-stream: {cause}")}});
    sse::named("error", &err.to_string())
}

fn openai_error(cause: &str) -> Bytes {
    let err = json!({"error": {"message": format!("upstream failed mid-stream: {cause}"), "type": "api_error", "code": "upstream_stream_error"}});
    sse::data(&err.to_string())
}

/// Input and output tokens of an Anthropic message or stream event.
pub(crate) fn anthropic_usage(v: &Value) -> (Option<u64>, Option<u64>) {
    let u = if v.get("type").and_then(Value::as_str) == Some("message_start") {
        &v["message"]["usage"]
    } else {
        &v["usage"]
    };
    (u["input_tokens"].as_u64(), u["output_tokens"].as_u64())
}

/// Input and output tokens of an OpenAI completion or chunk.
pub(crate) fn openai_usage(v: &Value) -> (Option<u64>, Option<u64>) {
    (
        v["usage"]["prompt_tokens"].as_u64(),
        v["usage"]["completion_tokens"].as_u64(),
    )
}

/// Bedrock `InvokeModelWithResponseStream` chunks (Anthropic events) → named SSE.
#[derive(Debug, Default)]
pub(crate) struct AnthropicFromBedrock {
    input: u64,
    output: u64,
}

impl Relay for AnthropicFromBedrock {
    type Item = Vec<u8>;
    fn frames(&mut self, bytes: Vec<u8>) -> Vec<Bytes> {
        let Ok(mut v) = serde_json::from_slice::<Value>(&bytes) else {
            return Vec::new();
        };
        let (i, o) = anthropic_usage(&v);
        self.input = i.unwrap_or(self.input);
        self.output = o.unwrap_or(self.output);
        let kind = v["type"].as_str().unwrap_or("message").to_owned();
        if let Some(obj) = v.as_object_mut() {
            // Bedrock's own metrics are not part of Anthropic's event.
            obj.remove("amazon-bedrock-invocationMetrics");
        }
        vec![sse::named(&kind, &v.to_string())]
    }
    fn error_frame(&self, cause: &str) -> Bytes {
        anthropic_error(cause)
    }
    fn usage(&self) -> (u64, u64) {
        (self.input, self.output)
    }
}

/// The Anthropic API's own SSE, byte for byte, read for usage on the way.
#[derive(Debug, Default)]
pub(crate) struct AnthropicPassthrough {
    parser: SseParser,
    input: u64,
    output: u64,
}

impl Relay for AnthropicPassthrough {
    type Item = Bytes;
    fn frames(&mut self, bytes: Bytes) -> Vec<Bytes> {
        for ev in self.parser.push(&bytes) {
            if let Ok(v) = serde_json::from_str::<Value>(&ev.data) {
                let (i, o) = anthropic_usage(&v);
                self.input = i.unwrap_or(self.input);
                self.output = o.unwrap_or(self.output);
            }
        }
        vec![bytes]
    }
    fn error_frame(&self, cause: &str) -> Bytes {
        anthropic_error(cause)
    }
    fn usage(&self) -> (u64, u64) {
        (self.input, self.output)
    }
}

/// Converse stream events → OpenAI chunks, then `data: [DONE]`.
#[derive(Debug)]
pub(crate) struct OpenAiFromConverse(pub OpenAiStream);

impl Relay for OpenAiFromConverse {
    type Item = aws_sdk_bedrockruntime::types::ConverseStreamOutput;
    fn frames(&mut self, ev: Self::Item) -> Vec<Bytes> {
        self.0
            .on_event(&ev)
            .iter()
            .map(|chunk| sse::data(&chunk.to_string()))
            .collect()
    }
    fn error_frame(&self, cause: &str) -> Bytes {
        openai_error(cause)
    }
    fn end_frames(&self) -> Vec<Bytes> {
        vec![Bytes::from_static(sse::DONE)]
    }
    fn usage(&self) -> (u64, u64) {
        self.0.usage().unwrap_or((0, 0))
    }
}

/// An OpenAI-format vendor stream, re-framed per event; the usage-only chunk the
/// gateway asked for (to bill) is dropped unless the caller asked for it too.
#[derive(Debug)]
pub(crate) struct OpenAiPassthrough {
    parser: SseParser,
    include_usage: bool,
    input: u64,
    output: u64,
}

impl OpenAiPassthrough {
    pub(crate) fn new(include_usage: bool) -> Self {
        Self {
            parser: SseParser::default(),
            include_usage,
            input: 0,
            output: 0,
        }
    }
}

impl Relay for OpenAiPassthrough {
    type Item = Bytes;
    fn frames(&mut self, bytes: Bytes) -> Vec<Bytes> {
        let mut out = Vec::new();
        for ev in self.parser.push(&bytes) {
            if ev.data == "[DONE]" {
                out.push(Bytes::from_static(sse::DONE));
                continue;
            }
            let Ok(v) = serde_json::from_str::<Value>(&ev.data) else {
                continue;
            };
            let (i, o) = openai_usage(&v);
            self.input = i.unwrap_or(self.input);
            self.output = o.unwrap_or(self.output);
            let usage_only =
                v["choices"].as_array().is_some_and(Vec::is_empty) && !v["usage"].is_null();
            if !usage_only || self.include_usage {
                out.push(sse::data(&ev.data));
            }
        }
        out
    }
    fn error_frame(&self, cause: &str) -> Bytes {
        openai_error(cause)
    }
    fn usage(&self) -> (u64, u64) {
        (self.input, self.output)
    }
}
