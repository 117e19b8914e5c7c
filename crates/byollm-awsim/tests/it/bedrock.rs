//! Bedrock Runtime through aws-sdk-bedrockruntime: Converse, ConverseStream,
//! InvokeModel and InvokeModelWithResponseStream, and the refusals.

use aws_sdk_bedrockruntime::error::ProvideErrorMetadata as _;
use aws_sdk_bedrockruntime::operation::converse::ConverseError;
use aws_sdk_bedrockruntime::primitives::Blob;
use aws_sdk_bedrockruntime::types::error::ConverseStreamOutputError;
use aws_sdk_bedrockruntime::types::{
    ContentBlock, ConversationRole, ConverseStreamOutput, InferenceConfiguration, Message,
    ResponseStream, StopReason, SystemContentBlock,
};
use serde_json::{Value, json};

use crate::common::*;

const SONNET46_GLOBAL: &str = "global.anthropic.claude-sonnet-4-6";
const SONNET45_US: &str = "us.anthropic.claude-sonnet-4-5-20250929-v1:0";

fn user(text: &str) -> Message {
    Message::builder()
        .role(ConversationRole::User)
        .content(ContentBlock::Text(text.to_owned()))
        .build()
        .unwrap()
}

async fn converse(
    c: &aws_sdk_bedrockruntime::Client,
    model: &str,
    text: &str,
) -> Result<
    aws_sdk_bedrockruntime::operation::converse::ConverseOutput,
    aws_sdk_bedrockruntime::error::SdkError<
        ConverseError,
        aws_sdk_bedrockruntime::config::http::HttpResponse,
    >,
> {
    c.converse()
        .model_id(model)
        .messages(user(text))
        .inference_config(InferenceConfiguration::builder().max_tokens(64).build())
        .send()
        .await
}

#[tokio::test]
async fn converse_echoes_with_honest_usage() {
    let w = World::new().await;
    let c = w.bedrock("us-east-1").await;
    let out = c
        .converse()
        .model_id(SONNET46_GLOBAL)
        .system(SystemContentBlock::Text("be brief".into()))
        .messages(user("hello there emulator"))
        .inference_config(InferenceConfiguration::builder().max_tokens(64).build())
        .send()
        .await
        .unwrap();
    let text = out.output().unwrap().as_message().unwrap().content()[0]
        .as_text()
        .unwrap()
        .clone();
    assert_eq!(text, "hello there emulator");
    assert_eq!(out.stop_reason(), &StopReason::EndTurn);
    let u = out.usage().unwrap();
    assert_eq!(
        (u.input_tokens(), u.output_tokens(), u.total_tokens()),
        (5, 3, 8)
    );
    assert_eq!(w.sim.call_count("bedrock:Converse"), 1);
    // max_tokens cuts the reply.
    let out = c
        .converse()
        .model_id(SONNET46_GLOBAL)
        .messages(user("one two three four"))
        .inference_config(InferenceConfiguration::builder().max_tokens(2).build())
        .send()
        .await
        .unwrap();
    assert_eq!(out.stop_reason(), &StopReason::MaxTokens);
    assert_eq!(out.usage().unwrap().output_tokens(), 2);
}

#[tokio::test]
async fn converse_stream_event_order() {
    let w = World::new().await;
    let c = w.bedrock("eu-west-1").await;
    let mut resp = c
        .converse_stream()
        .model_id("eu.anthropic.claude-sonnet-4-6")
        .messages(user("stream me please"))
        .send()
        .await
        .unwrap();
    let mut kinds = vec![];
    let mut text = String::new();
    let mut usage = None;
    while let Some(ev) = resp.stream.recv().await.unwrap() {
        match &ev {
            ConverseStreamOutput::MessageStart(_) => kinds.push("messageStart"),
            ConverseStreamOutput::ContentBlockDelta(d) => {
                kinds.push("contentBlockDelta");
                text.push_str(d.delta().unwrap().as_text().unwrap());
            }
            ConverseStreamOutput::ContentBlockStop(_) => kinds.push("contentBlockStop"),
            ConverseStreamOutput::MessageStop(m) => {
                assert_eq!(m.stop_reason(), &StopReason::EndTurn);
                kinds.push("messageStop");
            }
            ConverseStreamOutput::Metadata(m) => {
                usage = m.usage().cloned();
                kinds.push("metadata");
            }
            other => panic!("unexpected event {other:?}"),
        }
    }
    assert_eq!(text, "stream me please");
    assert_eq!(
        kinds,
        [
            "messageStart",
            "contentBlockDelta",
            "contentBlockDelta",
            "contentBlockDelta",
            "contentBlockStop",
            "messageStop",
            "metadata"
        ]
    );
    let u = usage.unwrap();
    assert_eq!((u.input_tokens(), u.output_tokens()), (3, 3));
}

fn anthropic_body(text: &str) -> Vec<u8> {
    json!({"anthropic_version": "bedrock-2023-05-31", "max_tokens": 50,
           "system": "you echo",
           "messages": [{"role": "user", "content": [{"type": "text", "text": text}]}]})
    .to_string()
    .into_bytes()
}

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
async fn expired_session_credentials() {
    let w = World::new().await;
    let c = w.bedrock("us-east-1").await;
    converse(&c, SONNET46_GLOBAL, "ok").await.unwrap();
    w.sim.expire_sessions();
    let err = converse(&c, SONNET46_GLOBAL, "ok").await.unwrap_err();
    assert_eq!(err.code(), Some("ExpiredTokenException"));
    assert_eq!(
        err.message(),
        Some("The security token included in the request is expired")
    );
    assert_eq!(err.raw_response().unwrap().status().as_u16(), 403);
}

#[tokio::test]
async fn bad_signature_and_unknown_keys() {
    let w = World::new().await;
    let creds = w.creds().await;
    let forged = aws_credential_types::Credentials::new(
        creds.access_key_id(),
        "wrong-secret",
        creds.session_token().map(str::to_owned),
        None,
        "t",
    );
    let err = converse(
        &bedrock_client(&w.sim, "us-east-1", forged),
        SONNET46_GLOBAL,
        "x",
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Some("InvalidSignatureException"));
    let no_token = aws_credential_types::Credentials::new(
        creds.access_key_id(),
        creds.secret_access_key(),
        None,
        None,
        "t",
    );
    let err = converse(
        &bedrock_client(&w.sim, "us-east-1", no_token),
        SONNET46_GLOBAL,
        "x",
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Some("UnrecognizedClientException"));
    assert_eq!(
        err.message(),
        Some("The security token included in the request is invalid.")
    );
    // The admin is the account's administrator.
    converse(
        &bedrock_client(&w.sim, "us-east-1", admin(&w.sim)),
        SONNET46_GLOBAL,
        "x",
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn geographic_profile_needs_every_destination_region() {
    let w = World::new().await;
    let profile = format!("arn:aws:bedrock:us-east-1:123456789012:inference-profile/{SONNET45_US}");
    let fm = |r: &str| {
        format!("arn:aws:bedrock:{r}::foundation-model/anthropic.claude-sonnet-4-5-20250929-v1:0")
    };
    let policy = |regions: &[&str]| {
        json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "bedrock:InvokeModel", "Resource": profile},
            {"Effect": "Allow", "Action": "bedrock:InvokeModel",
             "Resource": regions.iter().map(|r| fm(r)).collect::<Vec<_>>(),
             "Condition": {"StringEquals": {"bedrock:InferenceProfileArn": profile}}}]})
        .to_string()
    };
    w.sim
        .put_role_policy(ROLE, "bedrock", &policy(&["us-east-1", "us-east-2"]))
        .unwrap();
    let c = w.bedrock("us-east-1").await;
    let err = converse(&c, SONNET45_US, "x").await.unwrap_err();
    assert_eq!(err.code(), Some("AccessDeniedException"));
    assert_eq!(
        err.message().unwrap(),
        format!(
            "User: arn:aws:sts::123456789012:assumed-role/byollm-bedrock/byollm-user-alice is not authorized to perform: bedrock:InvokeModel on resource: {} because no identity-based policy allows the bedrock:InvokeModel action",
            fm("us-west-2")
        )
    );
    assert!(matches!(
        err.into_service_error(),
        ConverseError::AccessDeniedException(_)
    ));
    w.sim
        .put_role_policy(
            ROLE,
            "bedrock",
            &policy(&["us-east-1", "us-east-2", "us-west-2"]),
        )
        .unwrap();
    converse(&c, SONNET45_US, "x").await.unwrap();
    // ConverseStream needs the streaming action, which this policy lacks.
    let err = c
        .converse_stream()
        .model_id(SONNET45_US)
        .messages(user("x"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("AccessDeniedException"));
    assert!(err.message().unwrap().contains("bedrock:InvokeModelWithResponseStream on resource: arn:aws:bedrock:us-east-1:123456789012:inference-profile/"));
}

#[tokio::test]
async fn global_profile_needs_the_region_less_arn() {
    let w = World::new().await;
    let profile = "arn:aws:bedrock:us-east-1:123456789012:inference-profile/global.anthropic.claude-sonnet-4-6";
    let statements = |with_global: bool| {
        let mut s = vec![
            json!({"Effect": "Allow", "Action": "bedrock:InvokeModel", "Resource": profile,
                   "Condition": {"StringEquals": {"aws:RequestedRegion": "us-east-1"}}}),
            json!({"Effect": "Allow", "Action": "bedrock:InvokeModel",
                   "Resource": "arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-sonnet-4-6",
                   "Condition": {"StringEquals": {"aws:RequestedRegion": "us-east-1", "bedrock:InferenceProfileArn": profile}}}),
        ];
        if with_global {
            s.push(json!({"Effect": "Allow", "Action": "bedrock:InvokeModel",
                   "Resource": "arn:aws:bedrock:::foundation-model/anthropic.claude-sonnet-4-6",
                   "Condition": {"StringEquals": {"aws:RequestedRegion": "unspecified", "bedrock:InferenceProfileArn": profile}}}));
        }
        json!({"Version": "2012-10-17", "Statement": s}).to_string()
    };
    w.sim
        .put_role_policy(ROLE, "bedrock", &statements(false))
        .unwrap();
    let c = w.bedrock("us-east-1").await;
    let err = converse(&c, SONNET46_GLOBAL, "x").await.unwrap_err();
    assert!(
        err.message().unwrap().contains(
            "on resource: arn:aws:bedrock:::foundation-model/anthropic.claude-sonnet-4-6 because"
        ),
        "{:?}",
        err.message()
    );
    w.sim
        .put_role_policy(ROLE, "bedrock", &statements(true))
        .unwrap();
    converse(&c, SONNET46_GLOBAL, "x").await.unwrap();
    // The same policy does not cover another source region.
    let c2 = w.bedrock("us-west-2").await;
    assert_eq!(
        converse(&c2, SONNET46_GLOBAL, "x")
            .await
            .unwrap_err()
            .code(),
        Some("AccessDeniedException")
    );
}

#[tokio::test]
async fn bare_claude_4_id_needs_a_profile() {
    let w = World::new().await;
    let c = w.bedrock("us-east-1").await;
    let err = converse(&c, "anthropic.claude-sonnet-4-6", "x")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("ValidationException"));
    assert_eq!(
        err.message(),
        Some(
            "Invocation of model ID anthropic.claude-sonnet-4-6 with on-demand throughput isn't supported. Retry your request with the ID or ARN of an inference profile that contains this model."
        )
    );
    assert!(matches!(
        err.into_service_error(),
        ConverseError::ValidationException(_)
    ));
    // Claude 3.7 is invocable on demand where it is offered.
    converse(&c, "anthropic.claude-3-7-sonnet-20250219-v1:0", "x")
        .await
        .unwrap();
    // Unknown ids, and profiles of another geography.
    for bad in [
        "anthropic.claude-nope-v1:0",
        "eu.anthropic.claude-sonnet-4-6",
        "apac.anthropic.claude-sonnet-4-6",
    ] {
        let err = converse(&c, bad, "x").await.unwrap_err();
        assert_eq!(
            err.message(),
            Some("The provided model identifier is invalid."),
            "{bad}"
        );
    }
    // The profile ARN works as a model id.
    converse(
        &c,
        "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-sonnet-4-6",
        "x",
    )
    .await
    .unwrap();
}

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

#[tokio::test]
async fn conversation_rules() {
    let w = World::new().await;
    let c = w.bedrock("us-east-1").await;
    let assistant = Message::builder()
        .role(ConversationRole::Assistant)
        .content(ContentBlock::Text("hi".into()))
        .build()
        .unwrap();
    let err = c
        .converse()
        .model_id(SONNET46_GLOBAL)
        .messages(assistant)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        err.message(),
        Some(
            "A conversation must start with a user message. Try again with a conversation that starts with a user message."
        )
    );
    let err = c
        .converse()
        .model_id(SONNET46_GLOBAL)
        .messages(user("a"))
        .messages(user("b"))
        .send()
        .await
        .unwrap_err();
    assert!(
        err.message()
            .unwrap()
            .starts_with("A conversation must alternate between user and assistant roles.")
    );
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

#[tokio::test]
async fn tool_use_on_request() {
    use aws_sdk_bedrockruntime::types::{
        ContentBlockDelta, ContentBlockStart, Tool, ToolConfiguration, ToolInputSchema,
        ToolSpecification,
    };
    use aws_smithy_types::Document;
    let w = World::new().await;
    let c = w.bedrock("us-east-1").await;
    let schema = Document::Object(
        [("type".to_owned(), Document::String("object".into()))]
            .into_iter()
            .collect(),
    );
    let tools = ToolConfiguration::builder()
        .tools(Tool::ToolSpec(
            ToolSpecification::builder()
                .name("lookup")
                .input_schema(ToolInputSchema::Json(schema))
                .build()
                .unwrap(),
        ))
        .build()
        .unwrap();
    let out = c
        .converse()
        .model_id(SONNET46_GLOBAL)
        .messages(user("/tool lookup the weather"))
        .tool_config(tools.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(out.stop_reason(), &StopReason::ToolUse);
    let call = out.output().unwrap().as_message().unwrap().content()[0]
        .as_tool_use()
        .unwrap()
        .clone();
    assert_eq!(call.name(), "lookup");
    let Document::Object(input) = call.input() else {
        panic!("{:?}", call.input())
    };
    assert_eq!(input["args"], Document::String("the weather".into()));

    let mut resp = c
        .converse_stream()
        .model_id(SONNET46_GLOBAL)
        .messages(user("/tool lookup rain"))
        .tool_config(tools)
        .send()
        .await
        .unwrap();
    let (mut name, mut input, mut stop) = (String::new(), String::new(), None);
    while let Some(ev) = resp.stream.recv().await.unwrap() {
        match ev {
            ConverseStreamOutput::ContentBlockStart(s) => {
                if let Some(ContentBlockStart::ToolUse(t)) = s.start() {
                    name = t.name().to_owned();
                }
            }
            ConverseStreamOutput::ContentBlockDelta(d) => {
                if let Some(ContentBlockDelta::ToolUse(t)) = d.delta() {
                    input.push_str(t.input());
                }
            }
            ConverseStreamOutput::MessageStop(m) => stop = Some(m.stop_reason().clone()),
            _ => {}
        }
    }
    assert_eq!(name, "lookup");
    assert_eq!(
        serde_json::from_str::<Value>(&input).unwrap(),
        json!({"args": "rain"})
    );
    assert_eq!(stop, Some(StopReason::ToolUse));

    // InvokeModel with Anthropic tools.
    let body = json!({"anthropic_version": "bedrock-2023-05-31", "max_tokens": 50,
        "tools": [{"name": "lookup", "input_schema": {"type": "object"}}],
        "messages": [{"role": "user", "content": "/tool lookup snow"}]});
    let out = c
        .invoke_model()
        .model_id(SONNET46_GLOBAL)
        .content_type("application/json")
        .body(Blob::new(body.to_string()))
        .send()
        .await
        .unwrap();
    let v: Value = serde_json::from_slice(out.body().as_ref()).unwrap();
    assert_eq!(v["stop_reason"], "tool_use");
    assert_eq!(v["content"][0]["type"], "tool_use");
    assert_eq!(v["content"][0]["input"], json!({"args": "snow"}));
    assert!(
        v["content"][0]["id"]
            .as_str()
            .unwrap()
            .starts_with("toolu_bdrk_")
    );
}
