use super::*;

#[test]
fn a_chat_request_becomes_a_gemini_body() {
    let req = json!({"model": "gemini-2.5-pro", "max_tokens": 50, "temperature": 0.5,
        "top_p": 0.9, "stop": ["END"],
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function",
                "function": {"name": "lookup", "arguments": "{\"city\":\"Oslo\"}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "cold"}],
        "tools": [{"type": "function", "function": {"name": "lookup", "description": "look up",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}],
        "tool_choice": {"type": "function", "function": {"name": "lookup"}}});
    let converse = super::super::openai_to_converse(&req, 4096).unwrap();
    let body = Value::Object(converse_to_gemini(&converse));
    assert_eq!(body["systemInstruction"]["parts"][0]["text"], "be brief");
    assert!(body.get("system").is_none() && body.get("model").is_none());
    let contents = body["contents"].as_array().unwrap();
    assert_eq!(contents.len(), 3, "{body}");
    assert_eq!(contents[0]["role"], "user");
    assert_eq!(contents[0]["parts"][0]["text"], "weather?");
    assert_eq!(contents[1]["role"], "model");
    let call = &contents[1]["parts"][0]["functionCall"];
    assert_eq!(call["name"], "lookup");
    assert_eq!(call["args"]["city"], "Oslo");
    assert_eq!(contents[2]["role"], "user");
    let resp = &contents[2]["parts"][0]["functionResponse"];
    assert_eq!(resp["name"], "lookup", "the call's name, not its id");
    assert_eq!(resp["response"]["output"], "cold");
    let cfg = &body["generationConfig"];
    assert_eq!(cfg["maxOutputTokens"], 50);
    assert_eq!(cfg["temperature"], 0.5);
    assert!((cfg["topP"].as_f64().unwrap() - 0.9).abs() < 1e-6);
    assert_eq!(cfg["stopSequences"][0], "END");
    let decl = &body["tools"][0]["functionDeclarations"][0];
    assert_eq!(decl["name"], "lookup");
    assert_eq!(decl["description"], "look up");
    assert_eq!(decl["parameters"]["properties"]["city"]["type"], "string");
    assert_eq!(
        body["toolConfig"]["functionCallingConfig"],
        json!({"mode": "ANY", "allowedFunctionNames": ["lookup"]})
    );
}

#[test]
fn a_gemini_answer_becomes_a_chat_completion() {
    let answer = json!({"candidates": [{"content": {"role": "model", "parts": [
            {"text": "thinking", "thought": true},
            {"text": "Calling."},
            {"functionCall": {"name": "lookup", "args": {"city": "Oslo"}}}]},
        "finishReason": "STOP", "index": 0}],
        "usageMetadata": {"promptTokenCount": 7, "candidatesTokenCount": 3,
            "thoughtsTokenCount": 2, "totalTokenCount": 12},
        "modelVersion": "gemini-2.5-pro"});
    let out = gemini_to_converse(&answer, "call_x").unwrap();
    let v = super::super::converse_to_openai(&out, "gemini-2.5-pro", "chatcmpl-1", 1);
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls", "{v}");
    assert_eq!(v["choices"][0]["message"]["content"], "Calling.");
    let call = &v["choices"][0]["message"]["tool_calls"][0];
    assert_eq!(call["id"], "call_x_0");
    assert_eq!(call["function"]["name"], "lookup");
    assert_eq!(call["function"]["arguments"], "{\"city\":\"Oslo\"}");
    assert_eq!(v["usage"]["prompt_tokens"], 7);
    assert_eq!(v["usage"]["completion_tokens"], 5, "thinking is output");
    let cut = json!({"candidates": [{"content": {"role": "model", "parts": [{"text": "a b"}]},
        "finishReason": "MAX_TOKENS"}], "usageMetadata": {"promptTokenCount": 1}});
    let v = super::super::converse_to_openai(
        &gemini_to_converse(&cut, "c").unwrap(),
        "m",
        "chatcmpl-2",
        1,
    );
    assert_eq!(v["choices"][0]["finish_reason"], "length");
    let blocked = json!({"candidates": [{"finishReason": "SAFETY"}]});
    let v = super::super::converse_to_openai(
        &gemini_to_converse(&blocked, "c").unwrap(),
        "m",
        "chatcmpl-3",
        1,
    );
    assert_eq!(v["choices"][0]["finish_reason"], "content_filter");
    assert!(gemini_to_converse(&json!({"error": {}}), "c").is_none());
}

#[test]
fn gemini_chunks_become_openai_chunks() {
    let mut relay = OpenAiFromGemini::new(OpenAiStream::new("m", "chatcmpl-1", 1, true), "call_s");
    let sse = concat!(
        "data: {\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":[{\"text\":\"Hi \"}]}}]}\r\n\r\n",
        "data: {\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":[{\"text\":\"there\"}]}}]}\r\n\r\n",
        "data: {\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":[{\"functionCall\":{\"name\":\"lookup\",\"args\":{\"q\":\"x\"}}}]},",
        "\"finishReason\":\"STOP\"}],\"usageMetadata\":{\"promptTokenCount\":5,\"candidatesTokenCount\":4,\"totalTokenCount\":9}}\r\n\r\n",
    );
    let frames = relay.frames(Bytes::from_static(sse.as_bytes()));
    let chunks: Vec<Value> = frames
        .iter()
        .map(|f| {
            let s = String::from_utf8_lossy(f);
            serde_json::from_str(s.trim().strip_prefix("data: ").unwrap()).unwrap()
        })
        .collect();
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, "Hi there");
    let call = chunks
        .iter()
        .find_map(|c| c["choices"][0]["delta"]["tool_calls"][0]["function"]["name"].as_str());
    assert_eq!(call, Some("lookup"));
    let args: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"].as_str())
        .collect();
    assert_eq!(args, "{\"q\":\"x\"}");
    assert!(
        chunks
            .iter()
            .any(|c| c["choices"][0]["finish_reason"] == "tool_calls"),
        "{chunks:?}"
    );
    assert_eq!(chunks.last().unwrap()["usage"]["total_tokens"], 9);
    assert_eq!(relay.usage(), (5, 4));
    assert_eq!(relay.finish_reasons().as_deref(), Some("tool_use"));
    assert_eq!(relay.end_frames()[0], Bytes::from_static(sse::DONE));
}
