//! Converse and ConverseStream: the echo, usage, event order, conversation
//! rules and tool use.

use aws_sdk_bedrockruntime::error::ProvideErrorMetadata as _;
use aws_sdk_bedrockruntime::primitives::Blob;
use aws_sdk_bedrockruntime::types::{
    ContentBlock, ConversationRole, ConverseStreamOutput, InferenceConfiguration, Message,
    StopReason, SystemContentBlock,
};
use serde_json::{Value, json};

use super::*;
use crate::common::*;

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
