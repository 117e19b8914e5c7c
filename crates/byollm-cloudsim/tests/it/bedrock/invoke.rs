//! InvokeModel and InvokeModelWithResponseStream with Anthropic bodies.

use aws_sdk_bedrockruntime::error::ProvideErrorMetadata as _;
use aws_sdk_bedrockruntime::primitives::Blob;
use aws_sdk_bedrockruntime::types::ResponseStream;
use serde_json::{Value, json};

use super::*;
use crate::common::*;

#[tokio::test]
async fn invoke_model_anthropic_body() {
    let w = World::new().await;
    let c = w.bedrock("us-east-1").await;
    let out = c
        .invoke_model()
        .model_id(SONNET45_US)
        .content_type("application/json")
        .accept("application/json")
        .body(Blob::new(anthropic_body("invoke me")))
        .send()
        .await
        .unwrap();
    assert_eq!(out.content_type(), "application/json");
    let v: Value = serde_json::from_slice(out.body().as_ref()).unwrap();
    assert_eq!(v["type"], "message");
    assert_eq!(v["content"][0]["text"], "invoke me");
    assert_eq!(v["stop_reason"], "end_turn");
    assert_eq!(v["usage"], json!({"input_tokens": 4, "output_tokens": 2}));
    assert!(v["id"].as_str().unwrap().starts_with("msg_bdrk_"));

    // Bedrock refuses keys it does not take, and other versions.
    let mut body: Value = serde_json::from_slice(&anthropic_body("x")).unwrap();
    body["model"] = json!("claude-sonnet-4-5");
    let err = c
        .invoke_model()
        .model_id(SONNET45_US)
        .content_type("application/json")
        .body(Blob::new(body.to_string()))
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("ValidationException"));
    assert_eq!(
        err.message(),
        Some(
            "Malformed input request: #: extraneous key [model] is not permitted, please reformat your input and try again."
        )
    );
    let mut body: Value = serde_json::from_slice(&anthropic_body("x")).unwrap();
    body["anthropic_version"] = json!("2023-06-01");
    let err = c
        .invoke_model()
        .model_id(SONNET45_US)
        .content_type("application/json")
        .body(Blob::new(body.to_string()))
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("ValidationException"));
}

#[tokio::test]
async fn invoke_model_with_response_stream_chunks() {
    let w = World::new().await;
    let c = w.bedrock("us-west-2").await;
    let mut out = c
        .invoke_model_with_response_stream()
        .model_id(SONNET46_GLOBAL)
        .content_type("application/json")
        .body(Blob::new(anthropic_body("chunk by chunk")))
        .send()
        .await
        .unwrap();
    assert_eq!(out.content_type(), "application/json");
    let mut types = vec![];
    let mut text = String::new();
    let mut metrics = Value::Null;
    while let Some(ev) = out.body.recv().await.unwrap() {
        let ResponseStream::Chunk(part) = ev else {
            panic!("{ev:?}")
        };
        let inner: Value = serde_json::from_slice(part.bytes().unwrap().as_ref()).unwrap();
        let t = inner["type"].as_str().unwrap().to_owned();
        if t == "content_block_delta" {
            text.push_str(inner["delta"]["text"].as_str().unwrap());
        }
        if t == "message_stop" {
            metrics = inner["amazon-bedrock-invocationMetrics"].clone();
        }
        types.push(t);
    }
    assert_eq!(text, "chunk by chunk");
    assert_eq!(types.first().map(String::as_str), Some("message_start"));
    assert_eq!(types.last().map(String::as_str), Some("message_stop"));
    assert_eq!(metrics["inputTokenCount"], 5);
    assert_eq!(metrics["outputTokenCount"], 3);
}

#[tokio::test]
async fn invoke_stream_fault_and_paced_events() {
    use aws_sdk_bedrockruntime::types::error::ResponseStreamError;
    let w = World::new().await;
    let c = w.bedrock("us-east-1").await;
    w.sim
        .faults()
        .set_stream_event_delay(std::time::Duration::from_millis(5));
    w.sim.faults().fail_stream_after(
        "bedrock:InvokeModelWithResponseStream",
        1,
        "ModelTimeoutException",
        1,
    );
    let mut out = c
        .invoke_model_with_response_stream()
        .model_id(SONNET45_US)
        .content_type("application/json")
        .body(Blob::new(anthropic_body("slow and steady")))
        .send()
        .await
        .unwrap();
    assert!(matches!(
        out.body.recv().await.unwrap(),
        Some(ResponseStream::Chunk(_))
    ));
    let err = out.body.recv().await.unwrap_err().into_service_error();
    assert!(
        matches!(err, ResponseStreamError::ModelTimeoutException(_)),
        "{err:?}"
    );
    // Paced, whole stream afterwards.
    let mut out = c
        .invoke_model_with_response_stream()
        .model_id(SONNET45_US)
        .content_type("application/json")
        .body(Blob::new(anthropic_body("slow and steady")))
        .send()
        .await
        .unwrap();
    let mut n = 0;
    while out.body.recv().await.unwrap().is_some() {
        n += 1;
    }
    // message_start, content_block_start, 3 deltas, content_block_stop,
    // message_delta, message_stop.
    assert_eq!(n, 8);
    assert_eq!(w.sim.call_count("bedrock:InvokeModelWithResponseStream"), 2);
}
