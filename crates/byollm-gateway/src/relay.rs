//! Streaming after the commit point: one pump for every upstream and caller
//! format. An upstream yields items; a relay turns each into caller frames and
//! counts tokens; the pump stops when the client goes (even while it waits for
//! the upstream, which is then dropped: the upstream call is cancelled), and
//! after the first byte an upstream failure — or an upstream silent for longer
//! than the stream idle timeout — ends the stream with the caller format's
//! error event, never a second upstream call.
//!
//! The stream's last frames — from its final event (`message_stop`,
//! `data: [DONE]`) or error event on — are not sent by the pump but returned
//! as [`Pumped::held`]: the caller sends them once the request's usage row is
//! committed, so a caller that has the whole stream has its row.

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

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

/// The error message of a stream the server ends at shutdown.
pub(crate) const SHUTDOWN_MESSAGE: &str =
    "the server is shutting down; the response is incomplete, retry the request";

/// Turns upstream items into caller frames.
pub(crate) trait Relay: Send + 'static {
    /// The upstream item.
    type Item: Send;
    /// Frames for one item; updates the token counts.
    fn frames(&mut self, item: Self::Item) -> Vec<Bytes>;
    /// True once the frames returned so far include the stream's final event:
    /// those frames and any after them are held until the usage row is
    /// committed.
    fn finished(&self) -> bool {
        false
    }
    /// The caller format's error event carrying `message`.
    fn error_event(&self, message: &str) -> Bytes;
    /// The frame that ends a stream the upstream broke.
    fn error_frame(&self, cause: &str) -> Bytes {
        self.error_event(&format!("upstream failed mid-stream: {cause}"))
    }
    /// Frames after a clean end.
    fn end_frames(&self) -> Vec<Bytes> {
        Vec::new()
    }
    /// Input and output tokens seen so far.
    fn usage(&self) -> (u64, u64);
    /// The stop reasons seen so far, comma-joined, as the whole answer's
    /// span would carry them (`gen_ai.response.finish_reasons`).
    fn finish_reasons(&self) -> Option<String>;
}

/// What a pump came to.
pub(crate) struct Pumped<R> {
    /// How the stream ended.
    pub end: StreamEnd,
    /// The relay, for its token counts.
    pub relay: R,
    /// The final frames, to send once the usage row is committed (empty when
    /// the client has gone).
    pub held: Vec<Bytes>,
}

/// Pumps `first` and the rest of `up` through `relay` into `frames` until the
/// upstream ends, fails, the client goes, or `end_now` is cancelled (shutdown). An upstream quiet for `idle` has broken
/// the stream (`[gateway] stream_idle_timeout_ms`).
pub(crate) async fn pump<U, R>(
    first: U::Item,
    mut up: U,
    mut relay: R,
    frames: &Frames,
    end_now: &CancellationToken,
    idle: Duration,
) -> Pumped<R>
where
    U: Upstream,
    R: Relay<Item = U::Item>,
{
    let mut next: Option<Result<U::Item, String>> = Some(Ok(first));
    let mut end = StreamEnd::Completed;
    let mut held: Vec<Bytes> = Vec::new();
    'pump: while let Some(item) = next.take() {
        match item {
            Ok(item) => {
                let out = relay.frames(item);
                if !held.is_empty() || relay.finished() {
                    held.extend(out);
                } else {
                    for frame in out {
                        if !frames.send(frame).await {
                            end = StreamEnd::ClientGone;
                            break 'pump;
                        }
                    }
                }
            }
            Err(cause) => {
                held.push(relay.error_frame(&cause));
                end = StreamEnd::BrokeMidStream(cause);
                break;
            }
        }
        // Waiting for the upstream, watch the client and shutdown too:
        // dropping `up` cancels the upstream call.
        next = tokio::select! {
            biased;
            () = frames.closed() => {
                end = StreamEnd::ClientGone;
                break;
            }
            () = end_now.cancelled() => {
                held.push(relay.error_event(SHUTDOWN_MESSAGE));
                end = StreamEnd::ShutDown;
                break;
            }
            item = tokio::time::timeout(idle, up.next()) => {
                item.unwrap_or_else(|_| Some(Err(stream_idle_cause(idle))))
            }
        };
    }
    match end {
        StreamEnd::Completed => held.extend(relay.end_frames()),
        StreamEnd::ClientGone => held.clear(),
        StreamEnd::BrokeMidStream(_) | StreamEnd::ShutDown => {}
    }
    Pumped { end, relay, held }
}

fn anthropic_error(message: &str) -> Bytes {
    let err = json!({"type": "error", "error": {"type": "api_error", "message": message}});
    sse::named("error", &err.to_string())
}

/// The OpenAI-format error event carrying `message`.
pub(crate) fn openai_error(message: &str) -> Bytes {
    let err = json!({"error": {"message": message, "type": "api_error", "code": "upstream_stream_error"}});
    sse::data(&err.to_string())
}

/// Whether an Anthropic event (parsed data) is the stream's final `message_stop`.
fn is_message_stop(v: &Value) -> bool {
    v.get("type").and_then(Value::as_str) == Some("message_stop")
}

/// The `stop_reason` of an Anthropic `message_delta` event.
fn anthropic_stop_reason(v: &Value) -> Option<String> {
    v["delta"]["stop_reason"].as_str().map(str::to_owned)
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
    stop_reason: Option<String>,
    stopped: bool,
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
        self.stop_reason = anthropic_stop_reason(&v).or(self.stop_reason.take());
        self.stopped |= is_message_stop(&v);
        let kind = v["type"].as_str().unwrap_or("message").to_owned();
        if let Some(obj) = v.as_object_mut() {
            // Bedrock's own metrics are not part of Anthropic's event.
            obj.remove("amazon-bedrock-invocationMetrics");
        }
        vec![sse::named(&kind, &v.to_string())]
    }
    fn finished(&self) -> bool {
        self.stopped
    }
    fn error_event(&self, message: &str) -> Bytes {
        anthropic_error(message)
    }
    fn usage(&self) -> (u64, u64) {
        (self.input, self.output)
    }
    fn finish_reasons(&self) -> Option<String> {
        self.stop_reason.clone()
    }
}

/// The Anthropic API's own SSE, byte for byte, read for usage on the way.
#[derive(Debug, Default)]
pub(crate) struct AnthropicPassthrough {
    parser: SseParser,
    input: u64,
    output: u64,
    stop_reason: Option<String>,
    stopped: bool,
}

impl Relay for AnthropicPassthrough {
    type Item = Bytes;
    fn frames(&mut self, bytes: Bytes) -> Vec<Bytes> {
        for ev in self.parser.push(&bytes) {
            if let Ok(v) = serde_json::from_str::<Value>(&ev.data) {
                let (i, o) = anthropic_usage(&v);
                self.input = i.unwrap_or(self.input);
                self.output = o.unwrap_or(self.output);
                self.stop_reason = anthropic_stop_reason(&v).or(self.stop_reason.take());
                self.stopped |= is_message_stop(&v);
            }
        }
        // Byte for byte: a chunk holding `message_stop` is held whole.
        vec![bytes]
    }
    fn finished(&self) -> bool {
        self.stopped
    }
    fn error_event(&self, message: &str) -> Bytes {
        anthropic_error(message)
    }
    fn usage(&self) -> (u64, u64) {
        (self.input, self.output)
    }
    fn finish_reasons(&self) -> Option<String> {
        self.stop_reason.clone()
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
    fn error_event(&self, message: &str) -> Bytes {
        openai_error(message)
    }
    fn end_frames(&self) -> Vec<Bytes> {
        vec![Bytes::from_static(sse::DONE)]
    }
    fn usage(&self) -> (u64, u64) {
        self.0.usage().unwrap_or((0, 0))
    }
    fn finish_reasons(&self) -> Option<String> {
        self.0.stop_reason().map(str::to_owned)
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
    /// Each choice's `finish_reason`, in the order they came.
    finish: Vec<String>,
    done: bool,
}

impl OpenAiPassthrough {
    pub(crate) fn new(include_usage: bool) -> Self {
        Self {
            parser: SseParser::default(),
            include_usage,
            input: 0,
            output: 0,
            finish: Vec::new(),
            done: false,
        }
    }
}

impl Relay for OpenAiPassthrough {
    type Item = Bytes;
    fn frames(&mut self, bytes: Bytes) -> Vec<Bytes> {
        let mut out = Vec::new();
        for ev in self.parser.push(&bytes) {
            if ev.data == "[DONE]" {
                self.done = true;
                out.push(Bytes::from_static(sse::DONE));
                continue;
            }
            let Ok(v) = serde_json::from_str::<Value>(&ev.data) else {
                continue;
            };
            let (i, o) = openai_usage(&v);
            self.input = i.unwrap_or(self.input);
            self.output = o.unwrap_or(self.output);
            if let Some(reasons) = crate::traces::finish_reasons(&v) {
                self.finish.push(reasons);
            }
            let usage_only =
                v["choices"].as_array().is_some_and(Vec::is_empty) && !v["usage"].is_null();
            if !usage_only || self.include_usage {
                out.push(sse::data(&ev.data));
            }
        }
        out
    }
    fn finished(&self) -> bool {
        self.done
    }
    fn error_event(&self, message: &str) -> Bytes {
        openai_error(message)
    }
    fn usage(&self) -> (u64, u64) {
        (self.input, self.output)
    }
    fn finish_reasons(&self) -> Option<String> {
        (!self.finish.is_empty()).then(|| self.finish.join(","))
    }
}
