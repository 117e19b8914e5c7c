//! Bedrock's defaults for optional members and its refusals of Anthropic
//! bodies it does not take, with its wording.

use aws_sdk_bedrockruntime::error::ProvideErrorMetadata as _;
use aws_sdk_bedrockruntime::primitives::Blob;
use aws_sdk_bedrockruntime::types::{InferenceConfiguration, ResponseStream, StopReason};
use serde_json::{Value, json};

use super::*;
use crate::common::*;

const CONTENT_TYPE_REFUSED: &str =
    "The provided Content Type is invalid or not supported for this model";

fn malformed(what: &str) -> String {
    format!("Malformed input request: {what}, please reformat your input and try again.")
}

#[tokio::test]
async fn invoke_without_content_type_defaults_to_json() {
    let w = World::new().await;
    let c = w.bedrock("us-east-1").await;
    // No Content-Type and no Accept header at all, as boto3 sends when
    // `contentType` is not given: the service model's default, JSON.
    let out = c
        .invoke_model()
        .model_id(SONNET45_US)
        .body(Blob::new(anthropic_body("no header")))
        .customize()
        .mutate_request(|r| {
            r.headers_mut().remove("content-type");
            r.headers_mut().remove("accept");
        })
        .send()
        .await
        .unwrap();
    assert_eq!(out.content_type(), "application/json");
    let v: Value = serde_json::from_slice(out.body().as_ref()).unwrap();
    assert_eq!(v["content"][0]["text"], "no header");

    let mut out = c
        .invoke_model_with_response_stream()
        .model_id(SONNET46_GLOBAL)
        .body(Blob::new(anthropic_body("streamed anyway")))
        .customize()
        .mutate_request(|r| {
            r.headers_mut().remove("content-type");
        })
        .send()
        .await
        .unwrap();
    let mut text = String::new();
    while let Some(ResponseStream::Chunk(part)) = out.body.recv().await.unwrap() {
        let inner: Value = serde_json::from_slice(part.bytes().unwrap().as_ref()).unwrap();
        if inner["type"] == "content_block_delta" {
            text.push_str(inner["delta"]["text"].as_str().unwrap());
        }
    }
    assert_eq!(text, "streamed anyway");

    // A type that is given must be JSON: the Rust SDK's own default for an
    // unset blob payload (`application/octet-stream`) and a charset parameter
    // are refused, as is an Accept the model cannot produce.
    let err = c
        .invoke_model()
        .model_id(SONNET45_US)
        .body(Blob::new(anthropic_body("x")))
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), err.message()),
        (Some("ValidationException"), Some(CONTENT_TYPE_REFUSED))
    );
    let err = c
        .invoke_model_with_response_stream()
        .model_id(SONNET46_GLOBAL)
        .content_type("application/json; charset=utf-8")
        .body(Blob::new(anthropic_body("x")))
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.message(), Some(CONTENT_TYPE_REFUSED));
    let err = c
        .invoke_model()
        .model_id(SONNET45_US)
        .content_type("application/json")
        .accept("text/plain")
        .body(Blob::new(anthropic_body("x")))
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        err.message(),
        Some("The provided Accept Type is invalid or not supported for this model")
    );
}

/// InvokeModel's error message for `body`, or `None` when it is accepted.
async fn invoke_err(c: &aws_sdk_bedrockruntime::Client, body: &Value) -> Option<String> {
    let r = c
        .invoke_model()
        .model_id(SONNET45_US)
        .content_type("application/json")
        .body(Blob::new(body.to_string()))
        .send()
        .await;
    match r {
        Ok(_) => None,
        Err(e) => {
            assert_eq!(e.code(), Some("ValidationException"), "{e:?}");
            Some(e.message().unwrap().to_owned())
        }
    }
}

#[tokio::test]
async fn anthropic_bodies_bedrock_refuses() {
    let w = World::new().await;
    let c = w.bedrock("us-east-1").await;
    let base: Value = serde_json::from_slice(&anthropic_body("hi")).unwrap();
    let with = |pointer: &str, v: Value| {
        let mut b = base.clone();
        *b.pointer_mut(pointer).unwrap() = v;
        b
    };
    // Sonnet 4.5 writes at most 64000 tokens.
    assert_eq!(
        invoke_err(&c, &with("/max_tokens", json!(64_000))).await,
        None
    );
    assert_eq!(
        invoke_err(&c, &with("/max_tokens", json!(64_001)))
            .await
            .as_deref(),
        Some(
            "The maximum tokens you requested exceeds the model limit of 64000. Try again with a maximum tokens value that is lower than 64000."
        )
    );
    // `content` is a string or an array of blocks: neither branch takes 5.
    assert_eq!(
        invoke_err(&c, &with("/messages/0/content", json!(5))).await,
        Some(malformed(
            "#/messages/0/content: expected type: String, found: Integer#/messages/0/content: expected type: JSONArray, found: Integer"
        ))
    );
    assert_eq!(
        invoke_err(&c, &with("/messages/0/content", json!("a string is fine"))).await,
        None
    );
    assert_eq!(
        invoke_err(
            &c,
            &with(
                "/messages/0/content/0",
                json!({"type": "hologram", "text": "x"})
            )
        )
        .await,
        Some(malformed(
            "#/messages/0/content/0/type: hologram is not a valid enum value"
        ))
    );
    let mut hot = base.clone();
    hot["temperature"] = json!("hot");
    assert_eq!(
        invoke_err(&c, &hot).await,
        Some(malformed(
            "#/temperature: expected type: Number, found: String"
        ))
    );
    hot["temperature"] = json!(0.5);
    assert_eq!(invoke_err(&c, &hot).await, None);
    // Every violation is reported, extraneous keys first.
    let mut both = with("/messages/0/content", json!(5));
    both["stream"] = json!(true);
    assert_eq!(
        invoke_err(&c, &both).await,
        Some(malformed(
            "#: extraneous key [stream] is not permitted#/messages/0/content: expected type: String, found: Integer#/messages/0/content: expected type: JSONArray, found: Integer"
        ))
    );

    // The streaming operation checks the same body the same way.
    let err = c
        .invoke_model_with_response_stream()
        .model_id(SONNET46_GLOBAL)
        .content_type("application/json")
        .body(Blob::new(
            with("/messages/0/content/0", json!({"type": "hologram"})).to_string(),
        ))
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        err.message(),
        Some(malformed("#/messages/0/content/0/type: hologram is not a valid enum value").as_str())
    );
    let err = c
        .invoke_model_with_response_stream()
        .model_id(SONNET46_GLOBAL)
        .content_type("application/json")
        .body(Blob::new(with("/max_tokens", json!(128_001)).to_string()))
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        err.message(),
        Some(
            "The maximum tokens you requested exceeds the model limit of 128000. Try again with a maximum tokens value that is lower than 128000."
        )
    );
}

#[tokio::test]
async fn converse_max_tokens_defaults_to_the_model_limit() {
    let w = World::new().await;
    let c = w.bedrock("us-east-1").await;
    // Without maxTokens the model may write up to its limit: a 5000-word echo
    // is whole (a fixed 4096 default would cut it).
    let long = vec!["word"; 5000].join(" ");
    let out = c
        .converse()
        .model_id(SONNET45_US)
        .messages(user(&long))
        .send()
        .await
        .unwrap();
    assert_eq!(out.stop_reason(), &StopReason::EndTurn);
    assert_eq!(out.usage().unwrap().output_tokens(), 5000);
    // More than the limit is refused, as Bedrock words it.
    for stream in [false, true] {
        let config = InferenceConfiguration::builder().max_tokens(64_001).build();
        let err = if stream {
            c.converse_stream()
                .model_id(SONNET45_US)
                .messages(user("x"))
                .inference_config(config)
                .send()
                .await
                .map(|_| ())
                .unwrap_err()
                .into_service_error()
                .meta()
                .clone()
        } else {
            c.converse()
                .model_id(SONNET45_US)
                .messages(user("x"))
                .inference_config(config)
                .send()
                .await
                .map(|_| ())
                .unwrap_err()
                .into_service_error()
                .meta()
                .clone()
        };
        assert_eq!(err.code(), Some("ValidationException"));
        assert_eq!(
            err.message(),
            Some(
                "The maximum tokens you requested exceeds the model limit of 64000. Try again with a maximum tokens value that is lower than 64000."
            )
        );
    }
    converse(&c, SONNET45_US, "within the limit").await.unwrap();
}
