//! OpenAI `tools` and `tool_choice` → Converse `toolConfig`.
//!
//! - `tool_choice: "auto"` leaves `toolChoice` unset, which is Converse's default
//!   and also works on models that reject an explicit `toolChoice`; `"required"` →
//!   `any`; a named function → `tool`.
//! - Converse has no `tool_choice: "none"`: the tool configuration is dropped, unless
//!   the history holds tool calls or results, for which Converse requires one; then
//!   the tools are kept with the default choice (the model may still call a tool).
//! - A history with tool calls but no `tools` gets a placeholder spec for each tool
//!   name it used, for the same reason.
//! - `parameters` pass through as the input schema (default: an object with no
//!   properties); `strict` is not forwarded, as not every Bedrock model accepts it.

use aws_sdk_bedrockruntime::types::{
    AnyToolChoice, SpecificToolChoice, Tool, ToolChoice, ToolConfiguration, ToolInputSchema,
    ToolSpecification,
};
use serde_json::{Map, Value, json};

use super::TranslateError;
use super::document::json_to_document;
use super::openai_messages::Conversation;
use super::openai_request::{Result, as_object, get, get_str, require_str};

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

pub(super) fn tool_config(
    obj: &Map<String, Value>,
    conv: &Conversation,
) -> Result<Option<ToolConfiguration>> {
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
