//! Traces as a collector receives them: with the OTLP layer installed (what
//! `[telemetry] otlp_endpoint` does in `byollm serve`), a Bedrock request that
//! carries a caller's W3C `traceparent` is exported over OTLP/HTTP to a
//! receiver on loopback, which decodes the `ExportTraceServiceRequest`
//! protobuf (by a decoder written here, independent of the exporter's
//! encoder) and checks the span tree, the caller's trace id and the GenAI
//! attributes.
//!
//! Not checked: the `traceparent` the emulator receives, as byollm-cloudsim does
//! not expose request headers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use byollm_api::routes;
use byollm_telemetry::trace::OtlpLayer;
use tracing_subscriber::layer::SubscriberExt as _;

use crate::harness::{Env, chat_body, messages_body};

const CALLER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

type Received = Arc<Mutex<Vec<Bytes>>>;

/// One protobuf field: varints and fixed64s as numbers, the rest as bytes.
#[derive(Debug, Clone)]
enum Wire {
    Num(u64),
    Bytes(Vec<u8>),
}

fn read_varint(b: &[u8], at: &mut usize) -> u64 {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = b[*at];
        *at += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            break;
        }
    }
    v
}

/// The fields of one message, in order.
fn fields(b: &[u8]) -> Vec<(u64, Wire)> {
    let mut at = 0;
    let mut out = Vec::new();
    while at < b.len() {
        let key = read_varint(b, &mut at);
        let value = match key & 7 {
            0 => Wire::Num(read_varint(b, &mut at)),
            1 => {
                let v = u64::from_le_bytes(b[at..at + 8].try_into().unwrap());
                at += 8;
                Wire::Num(v)
            }
            2 => {
                let len = read_varint(b, &mut at) as usize;
                let v = b[at..at + len].to_vec();
                at += len;
                Wire::Bytes(v)
            }
            5 => {
                let v = u32::from_le_bytes(b[at..at + 4].try_into().unwrap());
                at += 4;
                Wire::Num(u64::from(v))
            }
            w => panic!("wire type {w}"),
        };
        out.push((key >> 3, value));
    }
    out
}

fn all(b: &[u8], field: u64) -> Vec<Vec<u8>> {
    fields(b)
        .into_iter()
        .filter_map(|(f, w)| match w {
            Wire::Bytes(v) if f == field => Some(v),
            _ => None,
        })
        .collect()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// An `AnyValue` as text: strings as-is, ints in decimal, arrays `[a,b]`.
fn any_value(b: &[u8]) -> String {
    match fields(b).into_iter().next() {
        Some((1, Wire::Bytes(s))) => String::from_utf8(s).unwrap(),
        Some((2, Wire::Num(v))) => (v != 0).to_string(),
        Some((3, Wire::Num(v))) => (v as i64).to_string(),
        Some((4, Wire::Num(v))) => f64::from_bits(v).to_string(),
        Some((5, Wire::Bytes(a))) => format!(
            "[{}]",
            all(&a, 1)
                .iter()
                .map(|v| any_value(v))
                .collect::<Vec<_>>()
                .join(",")
        ),
        other => panic!("AnyValue {other:?}"),
    }
}

#[derive(Debug, Clone)]
struct Span {
    trace_id: String,
    span_id: String,
    parent: Option<String>,
    name: String,
    kind: u64,
    attrs: HashMap<String, String>,
}

/// The spans of one `ExportTraceServiceRequest`.
fn decode(body: &[u8]) -> Vec<Span> {
    let mut spans = Vec::new();
    for resource_spans in all(body, 1) {
        for scope_spans in all(&resource_spans, 2) {
            for span in all(&scope_spans, 2) {
                let mut s = Span {
                    trace_id: String::new(),
                    span_id: String::new(),
                    parent: None,
                    name: String::new(),
                    kind: 0,
                    attrs: HashMap::new(),
                };
                for (f, w) in fields(&span) {
                    match (f, w) {
                        (1, Wire::Bytes(v)) => s.trace_id = hex(&v),
                        (2, Wire::Bytes(v)) => s.span_id = hex(&v),
                        (4, Wire::Bytes(v)) if !v.is_empty() => s.parent = Some(hex(&v)),
                        (5, Wire::Bytes(v)) => s.name = String::from_utf8(v).unwrap(),
                        (6, Wire::Num(k)) => s.kind = k,
                        (9, Wire::Bytes(kv)) => {
                            let key = String::from_utf8(all(&kv, 1).remove(0)).unwrap();
                            s.attrs.insert(key, any_value(&all(&kv, 2).remove(0)));
                        }
                        _ => {}
                    }
                }
                spans.push(s);
            }
        }
    }
    spans
}

/// Starts the receiver once and installs the OTLP layer as this test
/// binary's global subscriber (spans of other tests land there too; each
/// test keeps its own trace id). Tests call it concurrently: the first
/// initialises, the others wait for it.
async fn receiver() -> Received {
    static RECEIVED: OnceLock<Received> = OnceLock::new();
    RECEIVED.get_or_init(start_receiver).clone()
}

fn start_receiver() -> Received {
    let received: Received = Arc::default();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new()
        .route(
            "/v1/traces",
            axum::routing::post(|State(r): State<Received>, body: Bytes| async move {
                r.lock().unwrap().push(body);
                ""
            }),
        )
        .with_state(received.clone());
    // The receiver outlives the test's runtime only as a dead socket.
    std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            axum::serve(listener, app).await.unwrap();
        });
    });
    let layer = OtlpLayer::new(
        &format!("http://{addr}"),
        "byollm-test",
        Duration::from_millis(100),
    )
    .unwrap();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_subscriber::filter::LevelFilter::INFO)
        .with(layer);
    tracing::subscriber::set_global_default(subscriber).unwrap();
    received
}

/// The spans exported for `trace`, once its root (`request`, closed last)
/// has arrived (exports come every 100 ms).
async fn spans_of(received: &Received, trace: &str) -> Vec<Span> {
    let mut ours = Vec::new();
    for _ in 0..100 {
        ours = received
            .lock()
            .unwrap()
            .iter()
            .flat_map(|b| decode(b))
            .filter(|s| s.trace_id == trace)
            .collect();
        if ours.iter().any(|s| s.name == "request") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for s in &ours {
        let mut attrs: Vec<_> = s.attrs.iter().collect();
        attrs.sort();
        eprintln!(
            "span {} id={} parent={} kind={} {attrs:?}",
            s.name,
            s.span_id,
            s.parent.as_deref().unwrap_or("-"),
            s.kind
        );
    }
    ours
}

/// The one `upstream` span of `spans`.
fn upstream_of(spans: &[Span]) -> Span {
    let found: Vec<&Span> = spans.iter().filter(|s| s.name == "upstream").collect();
    assert_eq!(found.len(), 1, "one upstream span in {spans:?}");
    found[0].clone()
}

#[tokio::test]
async fn a_bedrock_request_is_one_trace_under_the_callers_span() {
    let received = receiver().await;
    let env = Env::start().await;
    let traceparent = format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01");
    let r = env
        .infer_with(
            routes::MESSAGES,
            &env.owner_key,
            messages_body("claude-sonnet-4-6", "hello", false),
            &[("traceparent", &traceparent)],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let route = r.header("x-byollm-route").unwrap().to_owned();
    assert!(route.starts_with("aws_bedrock:"), "{route}");
    let usage = r.json()["usage"].clone();

    let ours = spans_of(&received, CALLER_TRACE).await;
    let names: Vec<&str> = ours.iter().map(|s| s.name.as_str()).collect();
    let one = |name: &str| -> Span {
        let found: Vec<&Span> = ours.iter().filter(|s| s.name == name).collect();
        assert_eq!(found.len(), 1, "one `{name}` span in {names:?}");
        found[0].clone()
    };
    let request = one("request");
    let (auth, plan, attempt, sts, upstream) = (
        one("auth"),
        one("plan"),
        one("attempt"),
        one("sts"),
        one("upstream"),
    );
    // The tree: the caller's span → request → auth, plan, attempt → sts,
    // upstream.
    assert_eq!(request.parent.as_deref(), Some(CALLER_SPAN));
    assert_eq!(request.kind, 2, "server");
    assert_eq!(request.attrs["path"], routes::MESSAGES);
    assert!(!request.attrs.contains_key("traceparent"));
    for child in [&auth, &plan, &attempt] {
        assert_eq!(child.parent.as_ref(), Some(&request.span_id), "{child:?}");
    }
    for child in [&sts, &upstream] {
        assert_eq!(child.parent.as_ref(), Some(&attempt.span_id), "{child:?}");
        assert_eq!(child.kind, 3, "client: {child:?}");
    }
    let ids: std::collections::HashSet<&str> = ours.iter().map(|s| s.span_id.as_str()).collect();
    assert_eq!(ids.len(), ours.len(), "span ids are unique: {ours:?}");
    assert_eq!(auth.attrs["outcome"], "ok");
    assert_eq!(attempt.attrs["byollm.route"], route);
    assert_eq!(attempt.attrs["gen_ai.request.model"], "claude-sonnet-4-6");
    // The GenAI attributes on the inference span, as the caller was answered.
    let a = &upstream.attrs;
    assert_eq!(a["gen_ai.system"], "aws.bedrock");
    assert!(route.contains(&a["gen_ai.request.model"]), "{a:?}");
    assert_eq!(
        a["gen_ai.usage.input_tokens"],
        usage["input_tokens"].to_string()
    );
    assert_eq!(
        a["gen_ai.usage.output_tokens"],
        usage["output_tokens"].to_string()
    );
    let stop = r.json()["stop_reason"].as_str().unwrap().to_owned();
    assert_eq!(a["gen_ai.response.finish_reasons"], format!("[{stop}]"));
    assert_eq!(sts.attrs["rpc.method"], "AssumeRoleWithWebIdentity");
    env.stop().await;
}

/// A streamed answer's usage is known only when the stream ends: the
/// inference span stays open until then and carries the same GenAI usage and
/// stop reason as the caller saw, in both formats (Anthropic events from
/// InvokeModelWithResponseStream, OpenAI chunks from ConverseStream).
#[tokio::test]
async fn a_streamed_answer_has_its_usage_on_the_inference_span() {
    let received = receiver().await;
    let env = Env::start().await;

    const MESSAGES_TRACE: &str = "5af92f3577b34da6a3ce929d0e0e4737";
    let r = env
        .infer_with(
            routes::MESSAGES,
            &env.owner_key,
            messages_body("claude-sonnet-4-6", "hello", true),
            &[(
                "traceparent",
                &format!("00-{MESSAGES_TRACE}-{CALLER_SPAN}-01"),
            )],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(
        r.header("x-byollm-route")
            .unwrap()
            .starts_with("aws_bedrock:")
    );
    let (mut input, mut output, mut stop) = (None, None, None);
    for (_, data) in r.events() {
        let v: serde_json::Value = serde_json::from_str(&data).unwrap();
        match v["type"].as_str() {
            Some("message_start") => input = v["message"]["usage"]["input_tokens"].as_u64(),
            Some("message_delta") => {
                output = v["usage"]["output_tokens"].as_u64();
                stop = v["delta"]["stop_reason"].as_str().map(str::to_owned);
            }
            _ => {}
        }
    }
    let (input, output, stop) = (input.unwrap(), output.unwrap(), stop.unwrap());
    assert!(input > 0 && output > 0, "{}", r.text);
    let a = upstream_of(&spans_of(&received, MESSAGES_TRACE).await).attrs;
    assert_eq!(a["gen_ai.system"], "aws.bedrock");
    assert_eq!(a["gen_ai.usage.input_tokens"], input.to_string(), "{a:?}");
    assert_eq!(a["gen_ai.usage.output_tokens"], output.to_string(), "{a:?}");
    assert_eq!(a["gen_ai.response.finish_reasons"], format!("[{stop}]"));

    const CHAT_TRACE: &str = "6bf92f3577b34da6a3ce929d0e0e4738";
    let mut body = chat_body("claude-sonnet-4-6", "hello", true);
    body["stream_options"] = serde_json::json!({"include_usage": true});
    let r = env
        .infer_with(
            routes::CHAT_COMPLETIONS,
            &env.owner_key,
            body,
            &[("traceparent", &format!("00-{CHAT_TRACE}-{CALLER_SPAN}-01"))],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let usage = r
        .events()
        .iter()
        .filter(|(_, d)| d.as_str() != "[DONE]")
        .map(|(_, d)| serde_json::from_str::<serde_json::Value>(d).unwrap())
        .find(|v| !v["usage"].is_null())
        .map(|v| v["usage"].clone())
        .unwrap_or_else(|| panic!("no usage chunk: {}", r.text));
    let a = upstream_of(&spans_of(&received, CHAT_TRACE).await).attrs;
    assert_eq!(
        a["gen_ai.usage.input_tokens"],
        usage["prompt_tokens"].to_string()
    );
    assert_eq!(
        a["gen_ai.usage.output_tokens"],
        usage["completion_tokens"].to_string()
    );
    // Converse's own stop reason, as the unstreamed Converse answer records.
    assert_eq!(a["gen_ai.response.finish_reasons"], "[end_turn]", "{a:?}");
    env.stop().await;
}
