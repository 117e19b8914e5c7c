//! A small OTLP/HTTP exporter: encodes finished spans as an
//! `ExportTraceServiceRequest` (opentelemetry-proto `trace/v1`, protobuf wire
//! format written by hand: a few messages, no codegen or gRPC stack) and posts
//! them in batches from a thread of its own.
//!
//! Invariants:
//! - The exporter owns its thread and a current-thread runtime; requests
//!   never wait on it. At most [`BATCH`] spans per POST, one POST at a time,
//!   each bounded by [`POST_TIMEOUT`]; a failed batch is dropped with a
//!   warning (traces are best effort).
//! - The thread ends when every sender (layer) is dropped.

use std::time::Duration;

use tokio::sync::mpsc;

/// Spans per export request.
pub const BATCH: usize = 512;
/// How long one export may take before it is abandoned.
pub const POST_TIMEOUT: Duration = Duration::from_secs(10);

/// The OTel span kind (`SpanKind` enum numbers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpanKind {
    /// In-process work.
    Internal = 1,
    /// The handling of an incoming request.
    Server = 2,
    /// An outgoing request (STS, Bedrock, a vendor API).
    Client = 3,
}

impl SpanKind {
    /// `internal`, `server` or `client` (the `otel.kind` field).
    pub fn from_name(name: &str) -> Option<SpanKind> {
        match name {
            "internal" => Some(SpanKind::Internal),
            "server" => Some(SpanKind::Server),
            "client" => Some(SpanKind::Client),
            _ => None,
        }
    }
}

/// An attribute value.
#[derive(Debug, Clone, PartialEq)]
pub enum AttrValue {
    /// `string_value`.
    Str(String),
    /// `bool_value`.
    Bool(bool),
    /// `int_value`.
    Int(i64),
    /// `double_value`.
    Double(f64),
}

/// A closed span, ready to encode.
#[derive(Debug, Clone)]
pub struct FinishedSpan {
    /// Trace id.
    pub trace_id: [u8; 16],
    /// Span id.
    pub span_id: [u8; 8],
    /// The parent's span id (local or the caller's).
    pub parent: Option<[u8; 8]>,
    /// The span name.
    pub name: &'static str,
    /// The span kind.
    pub kind: SpanKind,
    /// Start, Unix nanoseconds.
    pub start: u64,
    /// End, Unix nanoseconds.
    pub end: u64,
    /// Attributes, in recording order.
    pub attrs: Vec<(&'static str, AttrValue)>,
}

/// Wall-clock Unix nanoseconds, for span timestamps only.
#[expect(
    clippy::disallowed_methods,
    reason = "span timestamps are observations; no behaviour depends on them"
)]
pub fn now_unix_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn tag(out: &mut Vec<u8>, field: u32, wire: u8) {
    varint(out, (u64::from(field) << 3) | u64::from(wire));
}

fn bytes_field(out: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    tag(out, field, 2);
    varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn key_value(key: &str, value: &AttrValue) -> Vec<u8> {
    let mut any = Vec::new();
    match value {
        AttrValue::Str(s) => bytes_field(&mut any, 1, s.as_bytes()),
        AttrValue::Bool(b) => {
            tag(&mut any, 2, 0);
            varint(&mut any, u64::from(*b));
        }
        AttrValue::Int(i) => {
            tag(&mut any, 3, 0);
            varint(&mut any, *i as u64);
        }
        AttrValue::Double(d) => {
            tag(&mut any, 4, 1);
            any.extend_from_slice(&d.to_le_bytes());
        }
    }
    // `gen_ai.response.finish_reasons` is a string array in the semantic
    // conventions; tracing fields are scalars, so a comma list is split.
    if key == "gen_ai.response.finish_reasons"
        && let AttrValue::Str(s) = value
    {
        let mut array = Vec::new();
        for reason in s.split(',').filter(|r| !r.is_empty()) {
            let mut item = Vec::new();
            bytes_field(&mut item, 1, reason.as_bytes());
            bytes_field(&mut array, 1, &item);
        }
        any.clear();
        bytes_field(&mut any, 5, &array);
    }
    let mut kv = Vec::new();
    bytes_field(&mut kv, 1, key.as_bytes());
    bytes_field(&mut kv, 2, &any);
    kv
}

fn span(s: &FinishedSpan) -> Vec<u8> {
    let mut out = Vec::new();
    bytes_field(&mut out, 1, &s.trace_id);
    bytes_field(&mut out, 2, &s.span_id);
    if let Some(parent) = &s.parent {
        bytes_field(&mut out, 4, parent);
    }
    bytes_field(&mut out, 5, s.name.as_bytes());
    tag(&mut out, 6, 0);
    varint(&mut out, s.kind as u64);
    tag(&mut out, 7, 1);
    out.extend_from_slice(&s.start.to_le_bytes());
    tag(&mut out, 8, 1);
    out.extend_from_slice(&s.end.max(s.start).to_le_bytes());
    for (k, v) in &s.attrs {
        bytes_field(&mut out, 9, &key_value(k, v));
    }
    out
}

/// Encodes `spans` as one `ExportTraceServiceRequest` from `service`.
pub fn encode(service: &str, spans: &[FinishedSpan]) -> Vec<u8> {
    let mut resource = Vec::new();
    bytes_field(
        &mut resource,
        1,
        &key_value("service.name", &AttrValue::Str(service.to_owned())),
    );
    let mut scope = Vec::new();
    bytes_field(&mut scope, 1, b"byollm");
    bytes_field(&mut scope, 2, env!("CARGO_PKG_VERSION").as_bytes());
    let mut scope_spans = Vec::new();
    bytes_field(&mut scope_spans, 1, &scope);
    for s in spans {
        bytes_field(&mut scope_spans, 2, &span(s));
    }
    let mut resource_spans = Vec::new();
    bytes_field(&mut resource_spans, 1, &resource);
    bytes_field(&mut resource_spans, 2, &scope_spans);
    let mut request = Vec::new();
    bytes_field(&mut request, 1, &resource_spans);
    request
}

/// Starts the exporter thread: batches from `rx`, one POST to `url` per
/// `interval` at most.
pub(crate) fn spawn_exporter(
    url: String,
    service: String,
    interval: Duration,
    mut rx: mpsc::Receiver<FinishedSpan>,
) -> std::io::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let client = reqwest::Client::builder()
        .timeout(POST_TIMEOUT)
        .build()
        .map_err(std::io::Error::other)?;
    std::thread::Builder::new()
        .name("otlp-export".into())
        .spawn(move || {
            rt.block_on(async move {
                let mut batch = Vec::with_capacity(BATCH);
                loop {
                    if rx.recv_many(&mut batch, BATCH).await == 0 {
                        return;
                    }
                    if batch.len() < BATCH {
                        tokio::time::sleep(interval).await;
                        while batch.len() < BATCH {
                            match rx.try_recv() {
                                Ok(s) => batch.push(s),
                                Err(_) => break,
                            }
                        }
                    }
                    let body = encode(&service, &batch);
                    batch.clear();
                    let sent = client
                        .post(&url)
                        .header(reqwest::header::CONTENT_TYPE, "application/x-protobuf")
                        .body(body)
                        .send()
                        .await
                        .and_then(reqwest::Response::error_for_status);
                    if let Err(e) = sent {
                        tracing::warn!(error = %e, "OTLP export failed; batch dropped");
                    }
                }
            });
        })?;
    Ok(())
}
