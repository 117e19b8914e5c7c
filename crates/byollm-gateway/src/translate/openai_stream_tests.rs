use aws_sdk_bedrockruntime::types::{
    ContentBlockDeltaEvent, ContentBlockStartEvent, ContentBlockStopEvent, ConversationRole,
    ConverseStreamMetadataEvent, MessageStartEvent, MessageStopEvent, ReasoningContentBlockDelta,
    StopReason, TokenUsage, ToolUseBlockDelta, ToolUseBlockStart,
};

use super::*;

fn start() -> ConverseStreamOutput {
    ConverseStreamOutput::MessageStart(
        MessageStartEvent::builder()
            .role(ConversationRole::Assistant)
            .build()
            .unwrap(),
    )
}

fn text(block: i32, t: &str) -> ConverseStreamOutput {
    ConverseStreamOutput::ContentBlockDelta(
        ContentBlockDeltaEvent::builder()
            .content_block_index(block)
            .delta(ContentBlockDelta::Text(t.into()))
            .build()
            .unwrap(),
    )
}

fn tool_start(block: i32, id: &str, name: &str) -> ConverseStreamOutput {
    ConverseStreamOutput::ContentBlockStart(
        ContentBlockStartEvent::builder()
            .content_block_index(block)
            .start(ContentBlockStart::ToolUse(
                ToolUseBlockStart::builder()
                    .tool_use_id(id)
                    .name(name)
                    .build()
                    .unwrap(),
            ))
            .build()
            .unwrap(),
    )
}

fn tool_delta(block: i32, input: &str) -> ConverseStreamOutput {
    ConverseStreamOutput::ContentBlockDelta(
        ContentBlockDeltaEvent::builder()
            .content_block_index(block)
            .delta(ContentBlockDelta::ToolUse(
                ToolUseBlockDelta::builder().input(input).build().unwrap(),
            ))
            .build()
            .unwrap(),
    )
}

fn block_stop(block: i32) -> ConverseStreamOutput {
    ConverseStreamOutput::ContentBlockStop(
        ContentBlockStopEvent::builder()
            .content_block_index(block)
            .build()
            .unwrap(),
    )
}

fn stop(reason: StopReason) -> ConverseStreamOutput {
    ConverseStreamOutput::MessageStop(
        MessageStopEvent::builder()
            .stop_reason(reason)
            .build()
            .unwrap(),
    )
}

fn metadata(input: i32, output: i32) -> ConverseStreamOutput {
    ConverseStreamOutput::Metadata(
        ConverseStreamMetadataEvent::builder()
            .usage(
                TokenUsage::builder()
                    .input_tokens(input)
                    .output_tokens(output)
                    .total_tokens(input + output)
                    .build()
                    .unwrap(),
            )
            .build(),
    )
}

fn run(s: &mut OpenAiStream, events: &[ConverseStreamOutput]) -> Vec<Value> {
    events.iter().flat_map(|e| s.on_event(e)).collect()
}

#[test]
fn text_stream_without_usage() {
    let mut s = OpenAiStream::new("claude-sonnet-4", "chatcmpl-1", 1_700_000_000, false);
    let chunks = run(
        &mut s,
        &[
            start(),
            text(0, "Hel"),
            text(0, "lo"),
            block_stop(0),
            stop(StopReason::EndTurn),
            metadata(9, 2),
        ],
    );
    insta::assert_json_snapshot!(chunks);
    assert_eq!(s.usage(), Some((9, 2)));
}

#[test]
fn text_stream_with_usage_ends_with_usage_chunk() {
    let mut s = OpenAiStream::new("m", "id", 0, true);
    let chunks = run(
        &mut s,
        &[
            start(),
            text(0, "Hi"),
            stop(StopReason::MaxTokens),
            metadata(3, 1),
        ],
    );
    assert_eq!(chunks.len(), 4);
    assert!(
        chunks[..3]
            .iter()
            .all(|c| c["usage"].is_null() && c.get("usage").is_some())
    );
    assert_eq!(chunks[2]["choices"][0]["finish_reason"], "length");
    assert_eq!(chunks[2]["choices"][0]["delta"], json!({}));
    let last = &chunks[3];
    assert_eq!(last["choices"], json!([]));
    assert_eq!(
        last["usage"],
        json!({"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4})
    );
}

#[test]
fn tool_use_stream_indexes_tool_calls_in_order() {
    // Converse numbers blocks across text and tools: text is block 0, tools 1 and 2.
    let mut s = OpenAiStream::new("claude-sonnet-4", "chatcmpl-2", 1_700_000_000, true);
    let chunks = run(
        &mut s,
        &[
            start(),
            text(0, "Checking both."),
            block_stop(0),
            tool_start(1, "tooluse_a", "get_weather"),
            tool_delta(1, "{\"city\":"),
            tool_delta(1, "\"Paris\"}"),
            block_stop(1),
            tool_start(2, "tooluse_b", "get_time"),
            tool_delta(2, "{}"),
            block_stop(2),
            stop(StopReason::ToolUse),
            metadata(50, 20),
        ],
    );
    insta::assert_json_snapshot!(chunks);
    let indexes: Vec<_> = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["tool_calls"][0]["index"].as_u64())
        .collect();
    assert_eq!(indexes, [0, 0, 0, 1, 1]);
    // The fragments concatenate to the tool input.
    let args: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"].as_str())
        .collect();
    assert_eq!(args, "{\"city\":\"Paris\"}{}");
    assert_eq!(s.usage(), Some((50, 20)));
}

#[test]
fn role_chunk_comes_first_even_without_message_start() {
    let mut s = OpenAiStream::new("m", "id", 0, false);
    let chunks = run(&mut s, &[text(0, "x"), stop(StopReason::EndTurn)]);
    assert_eq!(chunks.len(), 3);
    assert_eq!(
        chunks[0]["choices"][0]["delta"],
        json!({"role": "assistant", "content": ""})
    );
    // A late messageStart does not repeat it.
    assert!(s.on_event(&start()).is_empty());
}

#[test]
fn guardrail_stop_is_content_filter() {
    let mut s = OpenAiStream::new("m", "id", 0, false);
    let chunks = run(&mut s, &[start(), stop(StopReason::GuardrailIntervened)]);
    assert_eq!(chunks[1]["choices"][0]["finish_reason"], "content_filter");
}

#[test]
fn unknown_and_empty_events_produce_nothing() {
    let mut s = OpenAiStream::new("m", "id", 0, false);
    s.on_event(&start());
    let reasoning = ConverseStreamOutput::ContentBlockDelta(
        ContentBlockDeltaEvent::builder()
            .content_block_index(0)
            .delta(ContentBlockDelta::ReasoningContent(
                ReasoningContentBlockDelta::Text("hmm".into()),
            ))
            .build()
            .unwrap(),
    );
    assert!(s.on_event(&reasoning).is_empty());
    assert!(s.on_event(&text(0, "")).is_empty());
    assert!(s.on_event(&block_stop(0)).is_empty());
    assert_eq!(s.usage(), None);
    // Usage is recorded even when the caller did not ask for the usage chunk.
    assert!(s.on_event(&metadata(1, 1)).is_empty());
    assert_eq!(s.usage(), Some((1, 1)));
}
