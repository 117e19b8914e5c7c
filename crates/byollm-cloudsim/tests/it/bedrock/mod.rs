//! Bedrock Runtime through aws-sdk-bedrockruntime: Converse, ConverseStream,
//! InvokeModel and InvokeModelWithResponseStream, and the refusals.

mod access;
mod converse;
mod faults;
mod invoke;
mod strict;

use aws_sdk_bedrockruntime::operation::converse::ConverseError;
use aws_sdk_bedrockruntime::types::{
    ContentBlock, ConversationRole, InferenceConfiguration, Message,
};
use serde_json::json;

pub const SONNET46_GLOBAL: &str = "global.anthropic.claude-sonnet-4-6";
pub const SONNET45_US: &str = "us.anthropic.claude-sonnet-4-5-20250929-v1:0";

pub fn user(text: &str) -> Message {
    Message::builder()
        .role(ConversationRole::User)
        .content(ContentBlock::Text(text.to_owned()))
        .build()
        .unwrap()
}

pub async fn converse(
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

pub fn anthropic_body(text: &str) -> Vec<u8> {
    json!({"anthropic_version": "bedrock-2023-05-31", "max_tokens": 50,
           "system": "you echo",
           "messages": [{"role": "user", "content": [{"type": "text", "text": text}]}]})
    .to_string()
    .into_bytes()
}
