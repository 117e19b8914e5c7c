//! The JSON-schema checks Bedrock makes on an Anthropic Messages body before the
//! model sees it (`InvokeModel`, `InvokeModelWithResponseStream`), with its
//! wording: `ValidationException` "Malformed input request: <violations>, please
//! reformat your input and try again.", each violation a JSON pointer and the
//! message of the Everit JSON-schema validator Bedrock runs, concatenated with
//! no separator. Observed [obs]:
//!
//! - `#: extraneous key [stream] is not permitted#: extraneous key [model] is not
//!   permitted` (fumito-ito/AnthropicSwiftSDK#19);
//! - `#/messages/1/content: expected type: String, found: JSONArray#/messages/1/content:
//!   expected minimum item count: 1, found: 0` (ziya-ai/ziya#24: `content` is
//!   "a string or an array", and a failure reports the string branch first);
//! - `#: required key [max_tokens] not found` (diffbot/code-gpt-docs#300);
//! - `#/texts/41: expected maxLength: 2048, actual: …` (aws-samples/bedrock-access-gateway#41).
//!
//! Everit names a value's type by its Java class (`String`, `Integer`,
//! `BigDecimal`, `Boolean`, `JSONArray`, `JSONObject`, `Null`) and an enum miss as
//! `<value> is not a valid enum value`. Invariant: every check here is one the
//! schema makes (types, enums, required keys, extraneous keys); limits that
//! depend on the model (`max_tokens`) are checked after, by the caller.

use serde_json::{Map, Value};

use crate::error::AwsError;

/// The only `anthropic_version` Bedrock accepts in a body.
pub const BEDROCK_ANTHROPIC_VERSION: &str = "bedrock-2023-05-31";

/// Keys of an Anthropic body on Bedrock.
const ALLOWED_KEYS: [&str; 12] = [
    "anthropic_version",
    "anthropic_beta",
    "max_tokens",
    "messages",
    "system",
    "temperature",
    "top_p",
    "top_k",
    "tools",
    "tool_choice",
    "stop_sequences",
    "thinking",
];

/// Content block types of the Anthropic Messages API (its `ContentBlockParam`
/// union, docs.anthropic.com/en/api/messages); anything else is refused.
const BLOCK_TYPES: [&str; 18] = [
    "text",
    "image",
    "document",
    "search_result",
    "thinking",
    "redacted_thinking",
    "tool_use",
    "tool_result",
    "server_tool_use",
    "web_search_tool_result",
    "web_fetch_tool_result",
    "code_execution_tool_result",
    "bash_code_execution_tool_result",
    "text_editor_code_execution_tool_result",
    "tool_search_tool_result",
    "container_upload",
    "mcp_tool_use",
    "mcp_tool_result",
];

/// `ValidationException` "Malformed input request: …".
pub fn malformed(what: &str) -> AwsError {
    AwsError::new(
        400,
        "ValidationException",
        format!("Malformed input request: {what}, please reformat your input and try again."),
    )
}

/// Everit's name for the type of `v`.
fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "Null",
        Value::Bool(_) => "Boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => {
            if n.as_i64().is_some_and(|i| i32::try_from(i).is_ok()) {
                "Integer"
            } else {
                "Long"
            }
        }
        Value::Number(_) => "BigDecimal",
        Value::String(_) => "String",
        Value::Array(_) => "JSONArray",
        Value::Object(_) => "JSONObject",
    }
}

fn expected(at: &str, ty: &str, v: &Value) -> String {
    format!("{at}: expected type: {ty}, found: {}", type_name(v))
}

/// Checks a value that must be a JSON number.
fn number(at: &str, v: &Value, out: &mut Vec<String>) {
    if !v.is_number() {
        out.push(expected(at, "Number", v));
    }
}

/// A content block: an object whose `type` is a known block type, a `text`
/// block carrying a string.
fn block(at: &str, b: &Value, out: &mut Vec<String>) {
    let Some(obj) = b.as_object() else {
        out.push(expected(at, "JSONObject", b));
        return;
    };
    match obj.get("type") {
        None => out.push(format!("{at}: required key [type] not found")),
        Some(Value::String(t)) if BLOCK_TYPES.contains(&t.as_str()) => {
            if t == "text" {
                match obj.get("text") {
                    None => out.push(format!("{at}: required key [text] not found")),
                    Some(Value::String(_)) => {}
                    Some(other) => out.push(expected(&format!("{at}/text"), "String", other)),
                }
            }
        }
        Some(Value::String(t)) => out.push(format!("{at}/type: {t} is not a valid enum value")),
        Some(other) => out.push(expected(&format!("{at}/type"), "String", other)),
    }
}

/// `content` or `system`: a string, or a non-empty array of blocks. A value of
/// neither type fails both branches, string first.
fn content(at: &str, c: &Value, out: &mut Vec<String>) {
    match c {
        Value::String(_) => {}
        Value::Array(blocks) => {
            if blocks.is_empty() {
                out.push(format!("{at}: expected minimum item count: 1, found: 0"));
            }
            for (i, b) in blocks.iter().enumerate() {
                block(&format!("{at}/{i}"), b, out);
            }
        }
        other => {
            out.push(expected(at, "String", other));
            out.push(expected(at, "JSONArray", other));
        }
    }
}

fn message(at: &str, m: &Value, out: &mut Vec<String>) {
    let Some(obj) = m.as_object() else {
        out.push(expected(at, "JSONObject", m));
        return;
    };
    match obj.get("role") {
        None => out.push(format!("{at}: required key [role] not found")),
        Some(Value::String(r)) if r == "user" || r == "assistant" => {}
        Some(Value::String(r)) => out.push(format!("{at}/role: {r} is not a valid enum value")),
        Some(other) => out.push(expected(&format!("{at}/role"), "String", other)),
    }
    match obj.get("content") {
        None => out.push(format!("{at}: required key [content] not found")),
        Some(c) => content(&format!("{at}/content"), c, out),
    }
}

/// The schema violations of a Bedrock Anthropic body, in the order the keys
/// are checked; refused as one `Malformed input request`.
pub fn check(obj: &Map<String, Value>) -> Result<(), AwsError> {
    let mut out = vec![];
    for k in obj.keys().filter(|k| !ALLOWED_KEYS.contains(&k.as_str())) {
        out.push(format!("#: extraneous key [{k}] is not permitted"));
    }
    match obj.get("anthropic_version") {
        None => out.push("#: required key [anthropic_version] not found".to_owned()),
        Some(Value::String(s)) if s == BEDROCK_ANTHROPIC_VERSION => {}
        Some(Value::String(s)) => out.push(format!(
            "#/anthropic_version: {s} is not a valid enum value"
        )),
        Some(other) => out.push(expected("#/anthropic_version", "String", other)),
    }
    if let Some(n) = obj.get("max_tokens")
        && !(n.is_i64() || n.is_u64())
    {
        out.push(expected("#/max_tokens", "Integer", n));
    }
    match obj.get("messages") {
        Some(Value::Array(ms)) => {
            for (i, m) in ms.iter().enumerate() {
                message(&format!("#/messages/{i}"), m, &mut out);
            }
        }
        Some(other) => out.push(expected("#/messages", "JSONArray", other)),
        None => {}
    }
    if let Some(s) = obj.get("system") {
        content("#/system", s, &mut out);
    }
    for key in ["temperature", "top_p"] {
        if let Some(v) = obj.get(key) {
            number(&format!("#/{key}"), v, &mut out);
        }
    }
    if let Some(v) = obj.get("top_k")
        && !(v.is_i64() || v.is_u64())
    {
        out.push(expected("#/top_k", "Integer", v));
    }
    for key in ["stop_sequences", "tools", "anthropic_beta"] {
        if let Some(v) = obj.get(key)
            && !v.is_array()
        {
            out.push(expected(&format!("#/{key}"), "JSONArray", v));
        }
    }
    if let Some(v) = obj.get("tool_choice")
        && !v.is_object()
    {
        out.push(expected("#/tool_choice", "JSONObject", v));
    }
    if out.is_empty() {
        Ok(())
    } else {
        Err(malformed(&out.concat()))
    }
}
