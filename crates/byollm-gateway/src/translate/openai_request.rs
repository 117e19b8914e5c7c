//! OpenAI Chat Completions request JSON → Bedrock Converse input.
//!
//! Rules (Converse constraints from aws-facts §5.3):
//! - `system` and `developer` messages, wherever they sit, become `system` blocks in
//!   order. The rest must start with a `user` message; consecutive messages of one
//!   role merge into one Converse message (Converse requires alternating roles).
//! - `tool` messages become `toolResult` blocks in the `user` role; within a merged
//!   user message the tool results come first (Claude requires tool results to lead
//!   the turn after a tool use).
//! - Blank text parts are dropped: Converse rejects blank text blocks, and OpenAI
//!   clients commonly send `content: ""` next to `tool_calls`. A message left with
//!   no content at all is refused.
//! - `tool_choice: "auto"` leaves `toolChoice` unset, which is Converse's default
//!   and also works on models that reject an explicit `toolChoice`.
//! - Converse has no `tool_choice: "none"`: the tool configuration is dropped, unless
//!   the history holds tool calls or results, for which Converse requires one; then
//!   the tools are kept with the default choice (the model may still call a tool).
//! - A history with tool calls but no `tools` gets a placeholder spec for each tool
//!   name it used, for the same reason.
//! - Request fields that would change the answer and that Converse cannot honour
//!   (`n > 1`, `logprobs`, JSON `response_format`, penalties, `logit_bias`, audio,
//!   legacy `functions`) are refused; harmless ones (`user`, `stream`,
//!   `stream_options`, `metadata`, `seed`, `parallel_tool_calls`, `store`, …) and
//!   unknown ones are ignored.

use aws_sdk_bedrockruntime::types::{
    AnyToolChoice, ContentBlock, ConversationRole, ImageBlock, ImageFormat, ImageSource,
    InferenceConfiguration, Message, SpecificToolChoice, SystemContentBlock, Tool, ToolChoice,
    ToolConfiguration, ToolInputSchema, ToolResultBlock, ToolResultContentBlock, ToolResultStatus,
    ToolSpecification, ToolUseBlock,
};
use aws_smithy_types::Blob;
use base64::Engine as _;
use serde_json::{Map, Value, json};

use super::TranslateError;
use super::document::json_to_document;

/// Converse input translated from an OpenAI request; the caller adds the model ID.
#[derive(Debug, Clone, PartialEq)]
pub struct ConverseRequest {
    /// The conversation: starts with `user`, roles alternate.
    pub messages: Vec<Message>,
    /// System prompt blocks, in request order.
    pub system: Vec<SystemContentBlock>,
    /// Always carries `max_tokens`.
    pub inference_config: InferenceConfiguration,
    /// `None` when the request declares no tools (or `tool_choice: "none"` without
    /// tool history).
    pub tool_config: Option<ToolConfiguration>,
}

type Result<T> = std::result::Result<T, TranslateError>;

/// OpenAI Chat Completions request JSON → Converse. `max_completion_tokens` (or
/// the older `max_tokens`) when absent → `default_max_tokens`: Bedrock reserves
/// quota for it, so one is always sent.
pub fn openai_to_converse(req: &Value, default_max_tokens: i32) -> Result<ConverseRequest> {
    let obj = req
        .as_object()
        .ok_or_else(|| TranslateError::invalid("body", "must be a JSON object"))?;
    refuse_unsupported(obj)?;
    let inference_config = inference_config(obj, default_max_tokens)?;
    let conv = conversation(obj)?;
    let tool_config = tool_config(obj, &conv)?;
    Ok(ConverseRequest {
        messages: conv.messages,
        system: conv.system,
        inference_config,
        tool_config,
    })
}

/// `obj[key]`, with JSON `null` read as absent (clients send explicit nulls).
fn get<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.get(key).filter(|v| !v.is_null())
}

fn get_str<'a>(obj: &'a Map<String, Value>, key: &str, path: &str) -> Result<Option<&'a str>> {
    match get(obj, key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(TranslateError::invalid(
            format!("{path}.{key}").trim_start_matches('.'),
            "must be a string",
        )),
    }
}

fn require_str<'a>(obj: &'a Map<String, Value>, key: &str, path: &str) -> Result<&'a str> {
    get_str(obj, key, path)?
        .ok_or_else(|| TranslateError::missing(format!("{path}.{key}").trim_start_matches('.')))
}

fn as_object<'a>(v: &'a Value, path: &str) -> Result<&'a Map<String, Value>> {
    v.as_object()
        .ok_or_else(|| TranslateError::invalid(path, "must be an object"))
}

fn refuse_unsupported(obj: &Map<String, Value>) -> Result<()> {
    if get(obj, "n").is_some_and(|n| n.as_u64() != Some(1)) {
        return Err(TranslateError::unsupported(
            "n",
            "Bedrock returns one choice per request; send n = 1 and repeat the request for more",
        ));
    }
    if get(obj, "logprobs").is_some_and(|v| v != &Value::Bool(false)) {
        return Err(TranslateError::unsupported(
            "logprobs",
            "Bedrock Converse does not return log probabilities",
        ));
    }
    if get(obj, "top_logprobs").is_some_and(|v| v.as_u64() != Some(0)) {
        return Err(TranslateError::unsupported(
            "top_logprobs",
            "Bedrock Converse does not return log probabilities",
        ));
    }
    if let Some(rf) = get(obj, "response_format") {
        let kind = rf.get("type").and_then(Value::as_str);
        if kind != Some("text") {
            return Err(TranslateError::unsupported(
                "response_format",
                "only {\"type\": \"text\"} is supported; for JSON output describe the format in \
                 the prompt or ask for a tool call with the schema as its parameters",
            ));
        }
    }
    if get(obj, "logit_bias").is_some_and(|v| v.as_object().is_none_or(|m| !m.is_empty())) {
        return Err(TranslateError::unsupported(
            "logit_bias",
            "Bedrock Converse has no token biasing",
        ));
    }
    for key in ["presence_penalty", "frequency_penalty"] {
        if get(obj, key).is_some_and(|v| v.as_f64() != Some(0.0)) {
            return Err(TranslateError::unsupported(
                key,
                "Bedrock Converse has no repetition penalties; omit it or send 0",
            ));
        }
    }
    for key in ["functions", "function_call"] {
        if get(obj, key).is_some() {
            return Err(TranslateError::unsupported(
                key,
                "the legacy function-calling fields are not translated; use `tools` and `tool_choice`",
            ));
        }
    }
    if get(obj, "audio").is_some() {
        return Err(TranslateError::unsupported(
            "audio",
            "audio output is not available through Bedrock Converse",
        ));
    }
    if let Some(m) = get(obj, "modalities") {
        let text_only = m
            .as_array()
            .is_some_and(|a| a.iter().all(|x| x.as_str() == Some("text")));
        if !text_only {
            return Err(TranslateError::unsupported(
                "modalities",
                "only [\"text\"] output is available through Bedrock Converse",
            ));
        }
    }
    if get(obj, "web_search_options").is_some() {
        return Err(TranslateError::unsupported(
            "web_search_options",
            "Bedrock Converse has no built-in web search",
        ));
    }
    Ok(())
}

fn inference_config(
    obj: &Map<String, Value>,
    default_max_tokens: i32,
) -> Result<InferenceConfiguration> {
    let max_tokens = match ["max_completion_tokens", "max_tokens"]
        .into_iter()
        .find_map(|k| get(obj, k).map(|v| (k, v)))
    {
        None => default_max_tokens,
        Some((key, v)) => v
            .as_u64()
            .filter(|n| *n >= 1)
            .and_then(|n| i32::try_from(n).ok())
            .ok_or_else(|| {
                TranslateError::invalid(key, "must be an integer between 1 and 2147483647")
            })?,
    };
    let mut b = InferenceConfiguration::builder().max_tokens(max_tokens);
    if let Some(v) = get(obj, "temperature") {
        b = b.temperature(unit_interval(v, "temperature", " (OpenAI allows up to 2)")?);
    }
    if let Some(v) = get(obj, "top_p") {
        b = b.top_p(unit_interval(v, "top_p", "")?);
    }
    match get(obj, "stop") {
        None => {}
        Some(Value::String(s)) if s.is_empty() => {}
        Some(Value::String(s)) => b = b.stop_sequences(s.clone()),
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                let s = item.as_str().ok_or_else(|| {
                    TranslateError::invalid(format!("stop[{i}]"), "must be a string")
                })?;
                if !s.is_empty() {
                    b = b.stop_sequences(s);
                }
            }
        }
        Some(_) => {
            return Err(TranslateError::invalid(
                "stop",
                "must be a string or an array of strings",
            ));
        }
    }
    Ok(b.build())
}

fn unit_interval(v: &Value, field: &str, note: &str) -> Result<f32> {
    match v.as_f64() {
        Some(x) if (0.0..=1.0).contains(&x) => Ok(x as f32),
        Some(_) => Err(TranslateError::invalid(
            field,
            format!("Bedrock accepts values from 0 to 1{note}"),
        )),
        None => Err(TranslateError::invalid(field, "must be a number")),
    }
}

/// The translated conversation, plus what the tool configuration needs to know.
struct Conversation {
    messages: Vec<Message>,
    system: Vec<SystemContentBlock>,
    /// Tool names used by `tool_calls` in the history, first use first.
    history_tools: Vec<String>,
    /// Whether any message holds a tool call or a tool result.
    has_tool_blocks: bool,
}

struct Turn {
    role: ConversationRole,
    /// Index of the first OpenAI message merged into this turn, for error paths.
    first: usize,
    content: Vec<ContentBlock>,
}

fn conversation(obj: &Map<String, Value>) -> Result<Conversation> {
    let messages = match get(obj, "messages") {
        None => return Err(TranslateError::missing("messages")),
        Some(Value::Array(m)) => m,
        Some(_) => return Err(TranslateError::invalid("messages", "must be an array")),
    };
    let mut system = Vec::new();
    let mut turns: Vec<Turn> = Vec::new();
    let mut history_tools: Vec<String> = Vec::new();
    let mut has_tool_blocks = false;

    for (i, m) in messages.iter().enumerate() {
        let path = format!("messages[{i}]");
        let m = as_object(m, &path)?;
        let role_name = require_str(m, "role", &path)?;
        let content_path = format!("{path}.content");
        let (role, content) = match role_name {
            "system" | "developer" => {
                for text in text_parts(get(m, "content"), &content_path, &["text"])? {
                    system.push(SystemContentBlock::Text(text));
                }
                continue;
            }
            "user" => (
                ConversationRole::User,
                user_content(get(m, "content"), &content_path)?,
            ),
            "assistant" => {
                let content = assistant_content(m, &path, &mut history_tools)?;
                (ConversationRole::Assistant, content)
            }
            "tool" => (ConversationRole::User, vec![tool_result(m, &path)?]),
            "function" => {
                return Err(TranslateError::unsupported(
                    format!("{path}.role"),
                    "legacy `function` messages are not translated; send `tool` messages with a `tool_call_id`",
                ));
            }
            _ => {
                return Err(TranslateError::invalid(
                    format!("{path}.role"),
                    "must be one of system, developer, user, assistant, tool",
                ));
            }
        };
        if content.is_empty() {
            return Err(TranslateError::invalid(
                content_path,
                "must not be empty: Bedrock rejects messages without content",
            ));
        }
        has_tool_blocks |= content
            .iter()
            .any(|b| matches!(b, ContentBlock::ToolUse(_) | ContentBlock::ToolResult(_)));
        match turns.last_mut() {
            Some(last) if last.role == role => last.content.extend(content),
            _ => turns.push(Turn {
                role,
                first: i,
                content,
            }),
        }
    }

    match turns.first() {
        None => {
            return Err(TranslateError::invalid(
                "messages",
                "must contain at least one user message besides system and developer messages",
            ));
        }
        Some(t) if t.role != ConversationRole::User => {
            return Err(TranslateError::invalid(
                "messages",
                format!(
                    "Bedrock requires the conversation to start with a user message (after \
                     system and developer messages); messages[{}] is an assistant message",
                    t.first
                ),
            ));
        }
        Some(_) => {}
    }

    let messages = turns
        .into_iter()
        .map(|mut t| {
            if t.role == ConversationRole::User {
                // Stable: tool results first, everything else in order after them.
                t.content
                    .sort_by_key(|b| !matches!(b, ContentBlock::ToolResult(_)));
            }
            Message::builder()
                .role(t.role)
                .set_content(Some(t.content))
                .build()
                .map_err(|e| {
                    TranslateError::invalid(format!("messages[{}]", t.first), e.to_string())
                })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Conversation {
        messages,
        system,
        history_tools,
        has_tool_blocks,
    })
}

/// String or array-of-parts content → the non-blank texts. `allowed` lists the part
/// types accepted (`text` reads `.text`, `refusal` reads `.refusal`).
fn text_parts(content: Option<&Value>, path: &str, allowed: &[&str]) -> Result<Vec<String>> {
    let mut out = Vec::new();
    match content {
        None => {}
        Some(Value::String(s)) => push_text(&mut out, s),
        Some(Value::Array(parts)) => {
            for (j, part) in parts.iter().enumerate() {
                let ppath = format!("{path}[{j}]");
                let part = as_object(part, &ppath)?;
                let kind = require_str(part, "type", &ppath)?;
                if !allowed.contains(&kind) {
                    return Err(TranslateError::invalid(
                        format!("{ppath}.type"),
                        format!("must be one of: {} (got `{kind}`)", allowed.join(", ")),
                    ));
                }
                push_text(&mut out, require_str(part, kind, &ppath)?);
            }
        }
        Some(_) => {
            return Err(TranslateError::invalid(
                path,
                "must be a string or an array of content parts",
            ));
        }
    }
    Ok(out)
}

fn push_text(out: &mut Vec<String>, s: &str) {
    // Converse rejects blank text blocks.
    if !s.trim().is_empty() {
        out.push(s.to_owned());
    }
}

fn user_content(content: Option<&Value>, path: &str) -> Result<Vec<ContentBlock>> {
    let parts = match content {
        Some(Value::Array(parts)) => parts,
        other => {
            return Ok(text_parts(other, path, &["text"])?
                .into_iter()
                .map(ContentBlock::Text)
                .collect());
        }
    };
    let mut out = Vec::new();
    for (j, part) in parts.iter().enumerate() {
        let ppath = format!("{path}[{j}]");
        let part = as_object(part, &ppath)?;
        match require_str(part, "type", &ppath)? {
            "text" => {
                let text = require_str(part, "text", &ppath)?;
                if !text.trim().is_empty() {
                    out.push(ContentBlock::Text(text.to_owned()));
                }
            }
            "image_url" => {
                let ipath = format!("{ppath}.image_url");
                let url = match get(part, "image_url") {
                    None => return Err(TranslateError::missing(ipath)),
                    Some(Value::String(url)) => url.as_str(),
                    Some(v) => require_str(as_object(v, &ipath)?, "url", &ipath)?,
                };
                out.push(ContentBlock::Image(image_block(
                    url,
                    &format!("{ipath}.url"),
                )?));
            }
            "input_audio" | "file" => {
                return Err(TranslateError::unsupported(
                    format!("{ppath}.type"),
                    "only text and image parts are translated to Bedrock Converse",
                ));
            }
            other => {
                return Err(TranslateError::invalid(
                    format!("{ppath}.type"),
                    format!("must be `text` or `image_url` (got `{other}`)"),
                ));
            }
        }
    }
    Ok(out)
}

/// A `data:image/…;base64,…` URL → a Converse image block with the bytes.
fn image_block(url: &str, path: &str) -> Result<ImageBlock> {
    let Some(rest) = url.strip_prefix("data:") else {
        let reason = if url.starts_with("http://") || url.starts_with("https://") {
            "Bedrock accepts only image bytes, not links; send the image inline as a \
             `data:image/png;base64,…` URL"
        } else {
            "must be a `data:image/…;base64,…` URL"
        };
        return Err(TranslateError::unsupported(path, reason));
    };
    let (meta, data) = rest
        .split_once(',')
        .ok_or_else(|| TranslateError::invalid(path, "malformed data URL (no comma)"))?;
    let mut params = meta.split(';');
    let media_type = params.next().unwrap_or_default().to_ascii_lowercase();
    if !params.any(|p| p.eq_ignore_ascii_case("base64")) {
        return Err(TranslateError::invalid(
            path,
            "the data URL must be base64-encoded",
        ));
    }
    let format = match media_type.as_str() {
        "image/png" => ImageFormat::Png,
        "image/jpeg" | "image/jpg" => ImageFormat::Jpeg,
        "image/gif" => ImageFormat::Gif,
        "image/webp" => ImageFormat::Webp,
        _ => {
            return Err(TranslateError::unsupported(
                path,
                format!(
                    "image type `{media_type}`; Bedrock accepts image/png, image/jpeg, image/gif and image/webp"
                ),
            ));
        }
    };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(data.trim())
        .map_err(|e| TranslateError::invalid(path, format!("invalid base64 image data: {e}")))?;
    ImageBlock::builder()
        .format(format)
        .source(ImageSource::Bytes(Blob::new(bytes)))
        .build()
        .map_err(|e| TranslateError::invalid(path, e.to_string()))
}

fn assistant_content(
    m: &Map<String, Value>,
    path: &str,
    history_tools: &mut Vec<String>,
) -> Result<Vec<ContentBlock>> {
    if get(m, "function_call").is_some() {
        return Err(TranslateError::unsupported(
            format!("{path}.function_call"),
            "legacy function calls are not translated; use `tool_calls`",
        ));
    }
    let mut out: Vec<ContentBlock> = text_parts(
        get(m, "content"),
        &format!("{path}.content"),
        &["text", "refusal"],
    )?
    .into_iter()
    .map(ContentBlock::Text)
    .collect();
    if out.is_empty()
        && let Some(refusal) = get_str(m, "refusal", path)?
        && !refusal.trim().is_empty()
    {
        out.push(ContentBlock::Text(refusal.to_owned()));
    }
    let calls = match get(m, "tool_calls") {
        None => return Ok(out),
        Some(Value::Array(calls)) => calls,
        Some(_) => {
            return Err(TranslateError::invalid(
                format!("{path}.tool_calls"),
                "must be an array",
            ));
        }
    };
    for (j, call) in calls.iter().enumerate() {
        let cpath = format!("{path}.tool_calls[{j}]");
        let call = as_object(call, &cpath)?;
        if let Some(kind) = get_str(call, "type", &cpath)?
            && kind != "function"
        {
            return Err(TranslateError::unsupported(
                format!("{cpath}.type"),
                format!("only `function` tool calls are translated (got `{kind}`)"),
            ));
        }
        let id = require_str(call, "id", &cpath)?;
        let fpath = format!("{cpath}.function");
        let function = as_object(
            get(call, "function").ok_or_else(|| TranslateError::missing(&fpath))?,
            &fpath,
        )?;
        let name = require_str(function, "name", &fpath)?;
        let args_path = format!("{fpath}.arguments");
        let args = get_str(function, "arguments", &fpath)?.unwrap_or("");
        // Some clients send "" for a call without arguments.
        let input = if args.trim().is_empty() {
            json!({})
        } else {
            serde_json::from_str::<Value>(args).map_err(|e| {
                TranslateError::invalid(
                    &args_path,
                    format!("must be a JSON object encoded as a string: {e}"),
                )
            })?
        };
        if !input.is_object() {
            return Err(TranslateError::invalid(
                args_path,
                "must be a JSON object encoded as a string",
            ));
        }
        if !history_tools.iter().any(|t| t == name) {
            history_tools.push(name.to_owned());
        }
        out.push(ContentBlock::ToolUse(
            ToolUseBlock::builder()
                .tool_use_id(id)
                .name(name)
                .input(json_to_document(&input))
                .build()
                .map_err(|e| TranslateError::invalid(&cpath, e.to_string()))?,
        ));
    }
    Ok(out)
}

fn tool_result(m: &Map<String, Value>, path: &str) -> Result<ContentBlock> {
    let id = require_str(m, "tool_call_id", path)?;
    let content = text_parts(get(m, "content"), &format!("{path}.content"), &["text"])?
        .into_iter()
        .map(ToolResultContentBlock::Text)
        .collect();
    // An empty result is legitimate (a tool that printed nothing): send an empty
    // content list rather than a blank text block, which Converse rejects.
    ToolResultBlock::builder()
        .tool_use_id(id)
        .set_content(Some(content))
        .status(ToolResultStatus::Success)
        .build()
        .map(ContentBlock::ToolResult)
        .map_err(|e| TranslateError::invalid(path, e.to_string()))
}

enum Choice {
    Auto,
    None,
    Required,
    Named(String),
}

fn tool_choice(obj: &Map<String, Value>) -> Result<Choice> {
    match get(obj, "tool_choice") {
        None => Ok(Choice::Auto),
        Some(Value::String(s)) => match s.as_str() {
            "auto" => Ok(Choice::Auto),
            "none" => Ok(Choice::None),
            "required" => Ok(Choice::Required),
            _ => Err(TranslateError::invalid(
                "tool_choice",
                "must be `auto`, `none`, `required` or {\"type\": \"function\", \"function\": {\"name\": …}}",
            )),
        },
        Some(v) => {
            let o = as_object(v, "tool_choice")?;
            match require_str(o, "type", "tool_choice")? {
                "function" => {
                    let f = as_object(
                        get(o, "function")
                            .ok_or_else(|| TranslateError::missing("tool_choice.function"))?,
                        "tool_choice.function",
                    )?;
                    Ok(Choice::Named(
                        require_str(f, "name", "tool_choice.function")?.to_owned(),
                    ))
                }
                other => Err(TranslateError::unsupported(
                    "tool_choice.type",
                    format!("only `function` is translated (got `{other}`)"),
                )),
            }
        }
    }
}

fn declared_tools(obj: &Map<String, Value>) -> Result<Vec<(String, Tool)>> {
    let tools = match get(obj, "tools") {
        None => return Ok(Vec::new()),
        Some(Value::Array(t)) => t,
        Some(_) => return Err(TranslateError::invalid("tools", "must be an array")),
    };
    let mut out = Vec::with_capacity(tools.len());
    for (i, tool) in tools.iter().enumerate() {
        let path = format!("tools[{i}]");
        let tool = as_object(tool, &path)?;
        if let Some(kind) = get_str(tool, "type", &path)?
            && kind != "function"
        {
            return Err(TranslateError::unsupported(
                format!("{path}.type"),
                format!("only `function` tools are translated (got `{kind}`)"),
            ));
        }
        let fpath = format!("{path}.function");
        let f = as_object(
            get(tool, "function").ok_or_else(|| TranslateError::missing(&fpath))?,
            &fpath,
        )?;
        let name = require_str(f, "name", &fpath)?;
        let description = get_str(f, "description", &fpath)?.filter(|d| !d.is_empty());
        let schema = match get(f, "parameters") {
            None => json!({"type": "object", "properties": {}}),
            Some(p @ Value::Object(_)) => p.clone(),
            Some(_) => {
                return Err(TranslateError::invalid(
                    format!("{fpath}.parameters"),
                    "must be a JSON Schema object",
                ));
            }
        };
        out.push((
            name.to_owned(),
            tool_spec(name, description, &schema, &fpath)?,
        ));
    }
    Ok(out)
}

fn tool_spec(name: &str, description: Option<&str>, schema: &Value, path: &str) -> Result<Tool> {
    ToolSpecification::builder()
        .name(name)
        .set_description(description.map(str::to_owned))
        .input_schema(ToolInputSchema::Json(json_to_document(schema)))
        .build()
        .map(Tool::ToolSpec)
        .map_err(|e| TranslateError::invalid(path, e.to_string()))
}

fn tool_config(obj: &Map<String, Value>, conv: &Conversation) -> Result<Option<ToolConfiguration>> {
    let declared = declared_tools(obj)?;
    let choice = tool_choice(obj)?;
    let bedrock_choice = match &choice {
        Choice::Auto | Choice::None => None,
        Choice::Required if declared.is_empty() => {
            return Err(TranslateError::invalid(
                "tool_choice",
                "`required` needs `tools`",
            ));
        }
        Choice::Required => Some(ToolChoice::Any(AnyToolChoice::builder().build())),
        Choice::Named(name) => {
            if !declared.iter().any(|(n, _)| n == name) {
                return Err(TranslateError::invalid(
                    "tool_choice.function.name",
                    format!("`{name}` is not one of `tools`"),
                ));
            }
            let specific = SpecificToolChoice::builder()
                .name(name)
                .build()
                .map_err(|e| TranslateError::invalid("tool_choice", e.to_string()))?;
            Some(ToolChoice::Tool(specific))
        }
    };
    if matches!(choice, Choice::None) && !conv.has_tool_blocks {
        return Ok(None);
    }
    let tools: Vec<Tool> = if declared.is_empty() {
        if !conv.has_tool_blocks {
            return Ok(None);
        }
        // Converse refuses toolUse/toolResult blocks without a toolConfig.
        let placeholder = json!({"type": "object", "properties": {}});
        conv.history_tools
            .iter()
            .map(|name| {
                tool_spec(
                    name,
                    Some("A tool used earlier in this conversation."),
                    &placeholder,
                    "messages",
                )
            })
            .collect::<Result<_>>()?
    } else {
        declared.into_iter().map(|(_, t)| t).collect()
    };
    if tools.is_empty() {
        // Tool results with no tool call in the history and no tools: nothing to
        // declare; Bedrock will explain what is wrong with the history.
        return Ok(None);
    }
    ToolConfiguration::builder()
        .set_tools(Some(tools))
        .set_tool_choice(bedrock_choice)
        .build()
        .map(Some)
        .map_err(|e| TranslateError::invalid("tools", e.to_string()))
}

#[cfg(test)]
#[path = "openai_request_tests.rs"]
mod tests;
