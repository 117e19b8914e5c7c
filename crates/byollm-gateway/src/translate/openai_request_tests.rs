use aws_sdk_bedrockruntime::types::{
    ContentBlock, ConversationRole, ImageFormat, ImageSource, ToolChoice, ToolResultContentBlock,
    ToolResultStatus,
};
use serde_json::json;

use super::*;
use crate::translate::document_to_json;

fn ok(req: Value) -> ConverseRequest {
    openai_to_converse(&req, 4096).unwrap()
}

fn err(req: Value) -> TranslateError {
    openai_to_converse(&req, 4096).unwrap_err()
}

fn texts(m: &Message) -> Vec<&str> {
    m.content
        .iter()
        .filter_map(|b| b.as_text().ok().map(String::as_str))
        .collect()
}

fn system_texts(r: &ConverseRequest) -> Vec<&str> {
    r.system
        .iter()
        .filter_map(|b| b.as_text().ok().map(String::as_str))
        .collect()
}

#[test]
fn multi_turn_with_system() {
    let r = ok(json!({
        "model": "claude-sonnet-4",
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello."},
            {"role": "developer", "content": [{"type": "text", "text": "Answer in French."}]},
            {"role": "user", "content": [{"type": "text", "text": "How are you?"}]}
        ],
        "max_tokens": 100,
        "temperature": 0.5,
        "top_p": 0.9,
        "stop": "END",
        "stream": true,
        "stream_options": {"include_usage": true},
        "user": "u-1",
        "seed": 7,
        "parallel_tool_calls": false,
        "metadata": {"k": "v"}
    }));
    assert_eq!(system_texts(&r), ["You are terse.", "Answer in French."]);
    let roles: Vec<_> = r.messages.iter().map(|m| m.role.clone()).collect();
    assert_eq!(
        roles,
        [
            ConversationRole::User,
            ConversationRole::Assistant,
            ConversationRole::User
        ]
    );
    assert_eq!(texts(&r.messages[0]), ["Hi"]);
    assert_eq!(texts(&r.messages[1]), ["Hello."]);
    assert_eq!(texts(&r.messages[2]), ["How are you?"]);
    let ic = &r.inference_config;
    assert_eq!(ic.max_tokens, Some(100));
    assert_eq!(ic.temperature, Some(0.5));
    assert_eq!(ic.top_p, Some(0.9));
    assert_eq!(ic.stop_sequences.as_deref(), Some(&["END".to_owned()][..]));
    assert_eq!(r.tool_config, None);
}

#[test]
fn max_tokens_defaults_and_prefers_max_completion_tokens() {
    let base = json!({"messages": [{"role": "user", "content": "x"}]});
    assert_eq!(ok(base.clone()).inference_config.max_tokens, Some(4096));
    let mut with_null = base.clone();
    with_null["max_tokens"] = Value::Null;
    assert_eq!(ok(with_null).inference_config.max_tokens, Some(4096));
    let mut both = base.clone();
    both["max_tokens"] = json!(10);
    both["max_completion_tokens"] = json!(20);
    assert_eq!(ok(both).inference_config.max_tokens, Some(20));
    let mut zero = base;
    zero["max_tokens"] = json!(0);
    assert_eq!(err(zero).field(), "max_tokens");
}

#[test]
fn stop_array_becomes_stop_sequences() {
    let r = ok(json!({"messages": [{"role": "user", "content": "x"}], "stop": ["a", "", "b"]}));
    assert_eq!(
        r.inference_config.stop_sequences,
        Some(vec!["a".to_owned(), "b".to_owned()])
    );
    let e = err(json!({"messages": [{"role": "user", "content": "x"}], "stop": ["a", 1]}));
    assert_eq!(e.field(), "stop[1]");
}

#[test]
fn consecutive_same_role_messages_merge() {
    let r = ok(json!({"messages": [
        {"role": "user", "content": "one"},
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "two"},
        {"role": "assistant", "content": "a"},
        {"role": "assistant", "content": [{"type": "text", "text": "b"}]},
        {"role": "user", "content": "three"}
    ]}));
    assert_eq!(r.messages.len(), 3);
    assert_eq!(texts(&r.messages[0]), ["one", "two"]);
    assert_eq!(texts(&r.messages[1]), ["a", "b"]);
    assert_eq!(texts(&r.messages[2]), ["three"]);
    assert_eq!(system_texts(&r), ["sys"]);
}

fn weather_tools() -> Value {
    json!([{
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather for a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
        }
    }, {
        "type": "function",
        "function": {"name": "get_time"}
    }])
}

#[test]
fn tool_call_round_trip() {
    let r = ok(json!({
        "messages": [
            {"role": "system", "content": "Use tools."},
            {"role": "user", "content": "Weather and time in Paris?"},
            {"role": "assistant", "content": "", "tool_calls": [
                {"id": "call_1", "type": "function",
                 "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                {"id": "call_2", "type": "function",
                 "function": {"name": "get_time", "arguments": ""}}
            ]},
            {"role": "tool", "tool_call_id": "call_1", "content": "18C, sunny"},
            {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "14:05"}]},
            {"role": "user", "content": "Thanks, summarise."}
        ],
        "tools": weather_tools(),
        "tool_choice": "auto"
    }));
    assert_eq!(r.messages.len(), 3);

    // Assistant: the blank text is dropped, two tool uses remain.
    let assistant = &r.messages[1];
    assert_eq!(assistant.role, ConversationRole::Assistant);
    assert_eq!(assistant.content.len(), 2);
    let tu = assistant.content[0].as_tool_use().unwrap();
    assert_eq!(
        (tu.tool_use_id.as_str(), tu.name.as_str()),
        ("call_1", "get_weather")
    );
    assert_eq!(document_to_json(&tu.input), json!({"city": "Paris"}));
    let tu2 = assistant.content[1].as_tool_use().unwrap();
    assert_eq!(document_to_json(&tu2.input), json!({}));

    // Tool results and the following user text merge into one user turn, results first.
    let user = &r.messages[2];
    assert_eq!(user.role, ConversationRole::User);
    assert_eq!(user.content.len(), 3);
    let tr = user.content[0].as_tool_result().unwrap();
    assert_eq!(tr.tool_use_id, "call_1");
    assert_eq!(tr.status, Some(ToolResultStatus::Success));
    assert_eq!(
        tr.content,
        [ToolResultContentBlock::Text("18C, sunny".into())]
    );
    assert_eq!(
        user.content[1].as_tool_result().unwrap().tool_use_id,
        "call_2"
    );
    assert_eq!(texts(user), ["Thanks, summarise."]);

    // Tools: schema passed through, default schema for a tool without parameters;
    // "auto" leaves Converse's default choice.
    let tc = r.tool_config.unwrap();
    assert_eq!(tc.tool_choice, None);
    assert_eq!(tc.tools.len(), 2);
    let spec = tc.tools[0].as_tool_spec().unwrap();
    assert_eq!(spec.name, "get_weather");
    assert_eq!(spec.description.as_deref(), Some("Weather for a city"));
    assert_eq!(
        document_to_json(spec.input_schema.as_ref().unwrap().as_json().unwrap()),
        weather_tools()[0]["function"]["parameters"]
    );
    let spec2 = tc.tools[1].as_tool_spec().unwrap();
    assert_eq!(spec2.description, None);
    assert_eq!(
        document_to_json(spec2.input_schema.as_ref().unwrap().as_json().unwrap()),
        json!({"type": "object", "properties": {}})
    );
}

#[test]
fn tool_results_lead_a_merged_user_turn() {
    let r = ok(json!({"messages": [
        {"role": "user", "content": "go"},
        {"role": "assistant", "tool_calls": [{"id": "c", "type": "function",
            "function": {"name": "get_time", "arguments": "{}"}}]},
        {"role": "user", "content": "also this"},
        {"role": "tool", "tool_call_id": "c", "content": "noon"}
    ], "tools": weather_tools()}));
    let user = &r.messages[2];
    assert!(user.content[0].is_tool_result());
    assert_eq!(user.content[1], ContentBlock::Text("also this".into()));
}

#[test]
fn tool_choice_variants() {
    let base = |choice: Value| json!({"messages": [{"role": "user", "content": "x"}], "tools": weather_tools(), "tool_choice": choice});
    let tc = ok(base(json!("required"))).tool_config.unwrap();
    assert!(matches!(tc.tool_choice, Some(ToolChoice::Any(_))));
    let tc = ok(base(
        json!({"type": "function", "function": {"name": "get_time"}}),
    ))
    .tool_config
    .unwrap();
    match tc.tool_choice {
        Some(ToolChoice::Tool(t)) => assert_eq!(t.name, "get_time"),
        other => panic!("{other:?}"),
    }
    // "none" without tool history: no tool configuration at all.
    assert_eq!(ok(base(json!("none"))).tool_config, None);
    let e = err(base(
        json!({"type": "function", "function": {"name": "nope"}}),
    ));
    assert_eq!(e.field(), "tool_choice.function.name");
    let e = err(json!({"messages": [{"role": "user", "content": "x"}], "tool_choice": "required"}));
    assert_eq!(e.field(), "tool_choice");
    let e = err(base(json!("sometimes")));
    assert_eq!(e.field(), "tool_choice");
    // Empty tools: nothing to configure.
    let r = ok(json!({"messages": [{"role": "user", "content": "x"}], "tools": []}));
    assert_eq!(r.tool_config, None);
}

fn history_with_tool_call() -> Value {
    json!([
        {"role": "user", "content": "time?"},
        {"role": "assistant", "tool_calls": [{"id": "c", "type": "function",
            "function": {"name": "get_time", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c", "content": "noon"}
    ])
}

#[test]
fn tool_history_keeps_a_tool_config() {
    // Converse refuses toolUse/toolResult blocks without a toolConfig.
    let r = ok(
        json!({"messages": history_with_tool_call(), "tools": weather_tools(), "tool_choice": "none"}),
    );
    let tc = r.tool_config.unwrap();
    assert_eq!(tc.tools.len(), 2);
    assert_eq!(tc.tool_choice, None);

    let r = ok(json!({"messages": history_with_tool_call()}));
    let tc = r.tool_config.unwrap();
    assert_eq!(tc.tools.len(), 1);
    assert_eq!(tc.tools[0].as_tool_spec().unwrap().name, "get_time");
}

#[test]
fn images_from_data_urls() {
    let r = ok(json!({"messages": [{"role": "user", "content": [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "high"}},
        {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4A=="}}
    ]}]}));
    let content = &r.messages[0].content;
    assert_eq!(content.len(), 3);
    let png = content[1].as_image().unwrap();
    assert_eq!(png.format, ImageFormat::Png);
    match &png.source {
        Some(ImageSource::Bytes(b)) => assert_eq!(b.as_ref(), b"\x89PNG\r\n\x1a\n"),
        other => panic!("{other:?}"),
    }
    assert_eq!(content[2].as_image().unwrap().format, ImageFormat::Jpeg);
}

#[test]
fn image_errors_name_the_url() {
    let with_url = |url: &str| {
        json!({"messages": [{"role": "user", "content": [
            {"type": "text", "text": "x"},
            {"type": "image_url", "image_url": {"url": url}}
        ]}]})
    };
    let e = err(with_url("https://example.com/cat.png"));
    assert!(matches!(e, TranslateError::Unsupported { .. }));
    assert_eq!(e.field(), "messages[0].content[1].image_url.url");
    assert!(e.to_string().contains("only image bytes"), "{e}");
    let e = err(with_url("data:image/bmp;base64,AAAA"));
    assert_eq!(e.field(), "messages[0].content[1].image_url.url");
    let e = err(with_url("data:image/png;base64,***"));
    assert!(matches!(e, TranslateError::Invalid { .. }));
    let e = err(with_url("data:image/png,rawbytes"));
    assert!(matches!(e, TranslateError::Invalid { .. }));
}

#[test]
fn conversation_must_start_with_user() {
    let e = err(json!({"messages": [
        {"role": "system", "content": "s"},
        {"role": "assistant", "content": "I start"},
        {"role": "user", "content": "x"}
    ]}));
    assert_eq!(e.field(), "messages");
    assert!(e.to_string().contains("messages[1]"), "{e}");
    assert_eq!(
        err(json!({"messages": [{"role": "system", "content": "s"}]})).field(),
        "messages"
    );
    assert_eq!(err(json!({"messages": []})).field(), "messages");
    assert_eq!(err(json!({})), TranslateError::missing("messages"));
}

#[test]
fn errors_name_the_field() {
    let user = json!({"role": "user", "content": "x"});
    let cases = [
        (
            json!({"messages": [user, {"role": "assistant", "tool_calls": [
                {"id": "a", "type": "function", "function": {"name": "f", "arguments": "{}"}},
                {"id": "b", "type": "function", "function": {"name": "f", "arguments": "{not json"}}
            ]}]}),
            "messages[1].tool_calls[1].function.arguments",
        ),
        (
            json!({"messages": [user, {"role": "assistant", "tool_calls": [
                {"id": "a", "type": "function", "function": {"name": "f", "arguments": "[1]"}}
            ]}]}),
            "messages[1].tool_calls[0].function.arguments",
        ),
        (
            json!({"messages": [user, {"role": "assistant", "tool_calls": [
                {"type": "function", "function": {"name": "f", "arguments": "{}"}}
            ]}]}),
            "messages[1].tool_calls[0].id",
        ),
        (
            json!({"messages": [user, {"role": "tool", "content": "r"}]}),
            "messages[1].tool_call_id",
        ),
        (
            json!({"messages": [user, {"role": "critic", "content": "r"}]}),
            "messages[1].role",
        ),
        (json!({"messages": [{"content": "x"}]}), "messages[0].role"),
        (
            json!({"messages": [user, {"role": "user", "content": " "}]}),
            "messages[1].content",
        ),
        (
            json!({"messages": [{"role": "user", "content": 5}]}),
            "messages[0].content",
        ),
        (
            json!({"messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}]}),
            "messages[0].content[0].type",
        ),
        (
            json!({"messages": [{"role": "system", "content": [{"type": "image_url"}]}, user]}),
            "messages[0].content[0].type",
        ),
        (
            json!({"messages": [user], "tools": [{"type": "function", "function": {}}]}),
            "tools[0].function.name",
        ),
        (
            json!({"messages": [user], "tools": [{"type": "code_interpreter"}]}),
            "tools[0].type",
        ),
        (
            json!({"messages": [user], "tools": [{"type": "function", "function": {"name": "f", "parameters": "x"}}]}),
            "tools[0].function.parameters",
        ),
        (
            json!({"messages": [user], "temperature": 1.5}),
            "temperature",
        ),
        (json!({"messages": [user], "top_p": "high"}), "top_p"),
        (
            json!({"messages": [user], "max_completion_tokens": -1}),
            "max_completion_tokens",
        ),
        (json!({"messages": "hi"}), "messages"),
        (json!([1]), "body"),
    ];
    for (req, field) in cases {
        let e = err(req.clone());
        assert_eq!(e.field(), field, "{req} → {e}");
    }
}

#[test]
fn semantic_fields_converse_cannot_honour_are_refused() {
    let user = json!({"role": "user", "content": "x"});
    let cases = [
        ("n", json!(2)),
        ("logprobs", json!(true)),
        ("top_logprobs", json!(3)),
        ("response_format", json!({"type": "json_object"})),
        (
            "response_format",
            json!({"type": "json_schema", "json_schema": {}}),
        ),
        ("logit_bias", json!({"50256": -100})),
        ("presence_penalty", json!(0.5)),
        ("frequency_penalty", json!(-1)),
        ("functions", json!([])),
        ("audio", json!({"voice": "alloy"})),
        ("modalities", json!(["text", "audio"])),
    ];
    for (key, value) in cases {
        let mut req = json!({"messages": [user]});
        req[key] = value;
        let e = err(req);
        assert!(
            matches!(e, TranslateError::Unsupported { .. }),
            "{key}: {e}"
        );
        assert_eq!(e.field(), key);
    }
    // Their neutral values are accepted.
    let r = ok(json!({
        "messages": [user], "n": 1, "logprobs": false, "response_format": {"type": "text"},
        "logit_bias": {}, "presence_penalty": 0, "frequency_penalty": 0.0,
        "modalities": ["text"], "top_logprobs": null, "store": false, "service_tier": "auto"
    }));
    assert_eq!(r.messages.len(), 1);
}

#[test]
fn assistant_refusal_and_refusal_parts_are_kept_as_text() {
    let r = ok(json!({"messages": [
        {"role": "user", "content": "x"},
        {"role": "assistant", "content": null, "refusal": "I can't help with that."},
        {"role": "user", "content": "y"},
        {"role": "assistant", "content": [{"type": "refusal", "refusal": "No."}]},
        {"role": "user", "content": "z"}
    ]}));
    assert_eq!(texts(&r.messages[1]), ["I can't help with that."]);
    assert_eq!(texts(&r.messages[3]), ["No."]);
}

#[test]
fn empty_tool_result_sends_no_blank_text() {
    let mut msgs = history_with_tool_call();
    msgs[2]["content"] = json!("");
    let r = ok(json!({"messages": msgs}));
    let tr = r.messages[2].content[0].as_tool_result().unwrap();
    assert!(tr.content.is_empty());
}

mod properties {
    use proptest::prelude::*;

    use super::*;

    fn message() -> impl Strategy<Value = Value> {
        prop_oneof![
            "[a-z]{1,5}".prop_map(|t| json!({"role": "system", "content": t})),
            "[a-z]{1,5}".prop_map(|t| json!({"role": "developer", "content": t})),
            "[a-z]{1,5}".prop_map(|t| json!({"role": "user", "content": t})),
            "[a-z]{1,5}".prop_map(|t| json!({"role": "assistant", "content": t})),
            "[a-z]{1,5}".prop_map(|t| json!({"role": "tool", "tool_call_id": "c", "content": t})),
        ]
    }

    proptest! {
        /// Whatever the order of OpenAI messages after a first user message, the
        /// Converse conversation starts with user, alternates roles, and keeps every
        /// piece of content exactly once.
        #[test]
        fn merged_conversation_alternates_and_keeps_everything(
            rest in prop::collection::vec(message(), 0..24)
        ) {
            let mut msgs = vec![json!({"role": "user", "content": "first"})];
            msgs.extend(rest);
            let r = openai_to_converse(&json!({"messages": msgs}), 64).unwrap();

            prop_assert_eq!(&r.messages[0].role, &ConversationRole::User);
            for pair in r.messages.windows(2) {
                prop_assert_ne!(&pair[0].role, &pair[1].role);
            }
            let system_in = msgs
                .iter()
                .filter(|m| matches!(m["role"].as_str(), Some("system" | "developer")))
                .count();
            prop_assert_eq!(r.system.len(), system_in);
            let blocks_out: usize = r.messages.iter().map(|m| m.content.len()).sum();
            prop_assert_eq!(blocks_out, msgs.len() - system_in);
            prop_assert_eq!(r.inference_config.max_tokens, Some(64));
        }
    }
}
