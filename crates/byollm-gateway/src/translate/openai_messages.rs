//! OpenAI `messages` → Converse `system` blocks and `messages` (aws-facts §5.3).
//!
//! - `system` and `developer` messages, wherever they sit, become `system` blocks in
//!   order. The rest must start with a `user` message; consecutive messages of one
//!   role merge into one Converse message (Converse requires alternating roles).
//! - `tool` messages become `toolResult` blocks in the `user` role; within a merged
//!   user message the tool results come first (Claude requires tool results to lead
//!   the turn after a tool use).
//! - Blank text parts are dropped: Converse rejects blank text blocks, and OpenAI
//!   clients commonly send `content: ""` next to `tool_calls`. A message left with
//!   no content at all is refused.
//! - Images only as `data:` URLs: Converse takes bytes (or S3), never links.

use aws_sdk_bedrockruntime::types::{
    ContentBlock, ConversationRole, ImageBlock, ImageFormat, ImageSource, Message,
    SystemContentBlock, ToolResultBlock, ToolResultContentBlock, ToolResultStatus, ToolUseBlock,
};
use aws_smithy_types::Blob;
use base64::Engine as _;
use serde_json::{Map, Value, json};

use super::TranslateError;
use super::document::json_to_document;
use super::openai_request::{Result, as_object, get, get_str, require_str};

/// The translated conversation, plus what the tool configuration needs to know.
pub(super) struct Conversation {
    pub(super) messages: Vec<Message>,
    pub(super) system: Vec<SystemContentBlock>,
    /// Tool names used by `tool_calls` in the history, first use first.
    pub(super) history_tools: Vec<String>,
    /// Whether any message holds a tool call or a tool result.
    pub(super) has_tool_blocks: bool,
}

struct Turn {
    role: ConversationRole,
    /// Index of the first OpenAI message merged into this turn, for error paths.
    first: usize,
    content: Vec<ContentBlock>,
}

pub(super) fn conversation(obj: &Map<String, Value>) -> Result<Conversation> {
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
