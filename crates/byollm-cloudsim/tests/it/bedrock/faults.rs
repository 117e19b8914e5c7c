//! Throttling and injected faults, before the call and inside a stream.

use aws_sdk_bedrockruntime::error::ProvideErrorMetadata as _;
use aws_sdk_bedrockruntime::types::error::ConverseStreamOutputError;

use super::*;
use crate::common::*;

#[tokio::test]
async fn throttling_inside_a_stream() {
    let w = World::new().await;
    let c = w.bedrock("us-east-1").await;
    w.sim
        .faults()
        .fail_stream_after("bedrock:ConverseStream", 2, "ThrottlingException", 1);
    let mut resp = c
        .converse_stream()
        .model_id(SONNET46_GLOBAL)
        .messages(user("a b c d e"))
        .send()
        .await
        .unwrap();
    let mut events = 0;
    let err = loop {
        match resp.stream.recv().await {
            Ok(Some(_)) => events += 1,
            Ok(None) => panic!("stream ended without the injected error"),
            Err(e) => break e,
        }
    };
    assert_eq!(events, 2);
    let svc = err.into_service_error();
    assert!(
        matches!(svc, ConverseStreamOutputError::ThrottlingException(_)),
        "{svc:?}"
    );
    assert_eq!(
        svc.message(),
        Some("Too many requests, please wait before trying again.")
    );
    // The next stream is whole again.
    let mut resp = c
        .converse_stream()
        .model_id(SONNET46_GLOBAL)
        .messages(user("a b"))
        .send()
        .await
        .unwrap();
    let mut n = 0;
    while resp.stream.recv().await.unwrap().is_some() {
        n += 1;
    }
    assert_eq!(n, 6);
}

#[tokio::test]
async fn token_bucket_and_injected_errors() {
    let w = World::new().await;
    let c = w.bedrock("us-east-1").await;
    w.sim.faults().set_throttle("bedrock", 0.0, 2);
    converse(&c, SONNET46_GLOBAL, "x").await.unwrap();
    converse(&c, SONNET46_GLOBAL, "x").await.unwrap();
    let err = converse(&c, SONNET46_GLOBAL, "x").await.unwrap_err();
    assert_eq!(err.raw_response().unwrap().status().as_u16(), 429);
    assert!(matches!(
        err.into_service_error(),
        ConverseError::ThrottlingException(_)
    ));
    w.sim.faults().clear_throttle("bedrock");
    w.sim
        .faults()
        .fail_next("bedrock:Converse", "ServiceUnavailableException", 1);
    let err = converse(&c, SONNET46_GLOBAL, "x").await.unwrap_err();
    assert_eq!(err.raw_response().unwrap().status().as_u16(), 503);
    assert!(matches!(
        err.into_service_error(),
        ConverseError::ServiceUnavailableException(_)
    ));
    converse(&c, SONNET46_GLOBAL, "x").await.unwrap();
    // A model without access in one region.
    w.sim
        .faults()
        .disable_model("us-east-1", "anthropic.claude-sonnet-4-6");
    let err = converse(&c, SONNET46_GLOBAL, "x").await.unwrap_err();
    assert_eq!(
        err.message(),
        Some("You don't have access to the model with the specified model ID.")
    );
    let c2 = w.bedrock("us-east-2").await;
    converse(&c2, SONNET46_GLOBAL, "x").await.unwrap();
    assert_eq!(w.sim.call_count("bedrock:Converse"), 7);
}
