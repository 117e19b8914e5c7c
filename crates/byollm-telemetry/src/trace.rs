//! Traces: a `tracing` layer that turns spans into OpenTelemetry spans and
//! exports them over OTLP/HTTP (protobuf, see [`crate::otlp`]), plus W3C
//! `traceparent` parsing and the current span's `traceparent` for upstream
//! calls.
//!
//! Invariants:
//! - Off unless [`OtlpLayer::new`] is called (`[telemetry] otlp_endpoint`).
//! - A span's trace id comes from its parent, else is random; a root span
//!   given a caller's `traceparent` ([`continue_trace`], before it is entered)
//!   takes its trace id, and the caller's span becomes its remote parent. The
//!   header is never a span field, so logs do not carry it.
//! - Recording never blocks: closed spans go to a bounded queue with
//!   `try_send`; when it is full the span is dropped and counted. A dedicated
//!   thread batches and exports, off the request path.
//! - Span fields become attributes as recorded, except `otel.kind` (the span
//!   kind). Events are not exported.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::mpsc;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Dispatch, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

use crate::otlp::{self, AttrValue, FinishedSpan, SpanKind};

/// Closed spans waiting for export; past this they are dropped.
pub const QUEUE: usize = 4096;

/// The W3C trace context of a span.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceContext {
    /// 16 bytes, never all zero.
    pub trace_id: [u8; 16],
    /// 8 bytes, never all zero.
    pub span_id: [u8; 8],
}

impl TraceContext {
    /// Parses a `traceparent` header (version `00` layout; other versions are
    /// read the same way, as the W3C spec asks); `None` when malformed.
    pub fn parse(value: &str) -> Option<TraceContext> {
        let mut parts = value.trim().split('-');
        let version = parts.next()?;
        let trace = parts.next()?;
        let span = parts.next()?;
        let flags = parts.next()?;
        if version.len() != 2 || version == "ff" || flags.len() != 2 {
            return None;
        }
        if version == "00" && parts.next().is_some() {
            return None;
        }
        let trace_id: [u8; 16] = decode_hex(trace)?;
        let span_id: [u8; 8] = decode_hex(span)?;
        (trace_id != [0; 16] && span_id != [0; 8]).then_some(TraceContext { trace_id, span_id })
    }

    /// The `traceparent` header value (sampled).
    pub fn header(&self) -> String {
        format!("00-{}-{}-01", hex(&self.trace_id), hex(&self.span_id))
    }
}

fn decode_hex<const N: usize>(s: &str) -> Option<[u8; N]> {
    if s.len() != N * 2 || !s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    let mut out = [0u8; N];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(s.get(i * 2..i * 2 + 2)?, 16).ok()?;
    }
    Some(out)
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn random<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    // The system RNG; on the (theoretical) failure, a clock-derived id is
    // still unique enough for tracing.
    if aws_lc_rs::rand::fill(&mut out).is_err() {
        let now = otlp::now_unix_nanos().to_le_bytes();
        for (i, b) in out.iter_mut().enumerate() {
            *b = now[i % now.len()] ^ (i as u8).wrapping_mul(31);
        }
    }
    if out.iter().all(|b| *b == 0) {
        out[0] = 1;
    }
    out
}

/// The `traceparent` of the current span, for an upstream request; `None`
/// when traces are off or no span is entered.
pub fn current_traceparent() -> Option<String> {
    tracing::dispatcher::get_default(|dispatch: &Dispatch| {
        let registry = dispatch.downcast_ref::<tracing_subscriber::Registry>()?;
        let id = dispatch.current_span().id()?.clone();
        let span = registry.span(&id)?;
        let ext = span.extensions();
        let data = ext.get::<SpanData>()?;
        Some(data.ctx.header())
    })
}

/// Makes `span`, a root span not yet entered, continue the caller's trace
/// named by `traceparent` (ignored when malformed, when `span` has a parent
/// or when traces are off).
pub fn continue_trace(span: &tracing::Span, traceparent: &str) {
    let Some(remote) = TraceContext::parse(traceparent) else {
        return;
    };
    span.with_subscriber(|(id, dispatch)| {
        let Some(registry) = dispatch.downcast_ref::<tracing_subscriber::Registry>() else {
            return;
        };
        let Some(s) = registry.span(id) else { return };
        let mut ext = s.extensions_mut();
        if let Some(data) = ext.get_mut::<SpanData>()
            && data.parent.is_none()
        {
            data.ctx.trace_id = remote.trace_id;
            data.parent = Some(remote.span_id);
        }
    });
}

/// What the layer keeps on each open span.
#[derive(Debug)]
struct SpanData {
    ctx: TraceContext,
    parent: Option<[u8; 8]>,
    kind: SpanKind,
    start: u64,
    attrs: Vec<(&'static str, AttrValue)>,
}

/// The layer: records spans and hands closed ones to the exporter thread.
#[derive(Debug, Clone)]
pub struct OtlpLayer {
    tx: mpsc::Sender<FinishedSpan>,
    dropped: Arc<AtomicU64>,
}

impl OtlpLayer {
    /// Starts the exporter thread posting to `endpoint` (a base URL such as
    /// `http://127.0.0.1:4318`; `/v1/traces` is appended unless present)
    /// every `interval`, naming the service `service`.
    pub fn new(endpoint: &str, service: &str, interval: Duration) -> std::io::Result<OtlpLayer> {
        let (tx, rx) = mpsc::channel(QUEUE);
        let url = if endpoint.ends_with("/v1/traces") {
            endpoint.to_owned()
        } else {
            format!("{}/v1/traces", endpoint.trim_end_matches('/'))
        };
        otlp::spawn_exporter(url, service.to_owned(), interval, rx)?;
        Ok(OtlpLayer {
            tx,
            dropped: Arc::default(),
        })
    }

    /// Spans dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

struct Fields<'a> {
    attrs: &'a mut Vec<(&'static str, AttrValue)>,
    kind: Option<SpanKind>,
}

impl Fields<'_> {
    fn put(&mut self, field: &Field, value: AttrValue) {
        let key = field.name();
        match self.attrs.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.attrs.push((key, value)),
        }
    }
}

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "otel.kind" => self.kind = SpanKind::from_name(value),
            _ => self.put(field, AttrValue::Str(value.to_owned())),
        }
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, AttrValue::Int(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(
            field,
            AttrValue::Int(i64::try_from(value).unwrap_or(i64::MAX)),
        );
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, AttrValue::Bool(value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, AttrValue::Double(value));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.record_str(field, &format!("{value:?}"));
    }
}

impl<S> tracing_subscriber::Layer<S> for OtlpLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut list = Vec::new();
        let mut fields = Fields {
            attrs: &mut list,
            kind: None,
        };
        attrs.record(&mut fields);
        let kind = fields.kind;
        let parent = span
            .parent()
            .and_then(|p| p.extensions().get::<SpanData>().map(|d| d.ctx));
        let (trace_id, parent) = match parent {
            Some(p) => (p.trace_id, Some(p.span_id)),
            None => (random(), None),
        };
        // A root span is the handling of a request unless it says otherwise.
        let kind = kind.unwrap_or(if parent.is_none() {
            SpanKind::Server
        } else {
            SpanKind::Internal
        });
        span.extensions_mut().insert(SpanData {
            ctx: TraceContext {
                trace_id,
                span_id: random(),
            },
            parent,
            kind,
            start: otlp::now_unix_nanos(),
            attrs: list,
        });
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut ext = span.extensions_mut();
        let Some(data) = ext.get_mut::<SpanData>() else {
            return;
        };
        let mut fields = Fields {
            attrs: &mut data.attrs,
            kind: None,
        };
        values.record(&mut fields);
        if let Some(kind) = fields.kind {
            data.kind = kind;
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else { return };
        let Some(data) = span.extensions_mut().remove::<SpanData>() else {
            return;
        };
        let done = FinishedSpan {
            trace_id: data.ctx.trace_id,
            span_id: data.ctx.span_id,
            parent: data.parent,
            name: span.name(),
            kind: data.kind,
            start: data.start,
            end: otlp::now_unix_nanos(),
            attrs: data.attrs,
        };
        if self.tx.try_send(done).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_queue_drops_spans_instead_of_blocking() {
        use tracing_subscriber::layer::SubscriberExt as _;
        // A collector that accepts connections (the kernel's backlog) and never
        // answers: the exporter's first POST waits out its timeout, so nothing
        // drains while the spans are made. (A refused connection would fail
        // at once and let a full-batch exporter keep pace on a slow machine.)
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", silent.local_addr().unwrap());
        let layer = OtlpLayer::new(&url, "test", Duration::from_secs(60)).unwrap();
        let subscriber = tracing_subscriber::registry().with(layer.clone());
        tracing::subscriber::with_default(subscriber, || {
            for _ in 0..QUEUE + otlp::BATCH + 100 {
                tracing::info_span!("x").in_scope(|| {});
            }
        });
        assert!(layer.dropped() >= 100, "{}", layer.dropped());
    }

    #[test]
    fn traceparent_round_trips_and_rejects_malformed_values() {
        let v = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let ctx = TraceContext::parse(v).unwrap();
        assert_eq!(hex(&ctx.trace_id), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(ctx.header(), v);
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
        ] {
            assert_eq!(TraceContext::parse(bad), None, "{bad}");
        }
    }
}
