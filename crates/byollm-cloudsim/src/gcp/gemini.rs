//! Vertex AI for Gemini (gcp-facts §2.2): `:generateContent` (one
//! `GenerateContentResponse`) and `:streamGenerateContent` (with `alt=sse`,
//! one `data:` event per response chunk; without it, the chunks as one JSON
//! array, as Google streams them), the model in the URL.
//!
//! The checks before the body are Claude's ([`Inner::vertex_gate`]: token,
//! publisher model known to the catalog as a Gemini model in the location,
//! IAM binding, faults). The body is checked as Google's JSON parser and
//! validation do, and every refusal is a 400 `INVALID_ARGUMENT` naming the
//! field: an unknown field, `contents` missing or empty, a role other than
//! `user` / `model`, a part with none of the known data fields, a bad
//! `generationConfig.maxOutputTokens`, a function declaration without a name.
//!
//! The answer is the emulator's deterministic model ([`crate::llm`]): an echo
//! of the last user text, or — when tools are declared and the last user
//! text is `/tool NAME ARGS…` — one `functionCall` of NAME with args
//! `{"args": "ARGS…"}`. `finishReason` is `STOP` (also for a call, as
//! Gemini's) or `MAX_TOKENS`; `usageMetadata` counts words.

use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::Response;
use serde_json::{Map, Value, json};

use super::vertex::PublisherModel;
use super::{GENERATE_CONTENT_OP, STREAM_GENERATE_CONTENT_OP, google_error, json_response};
use crate::Inner;
use crate::direct::sse;
use crate::llm::{self, Reply, Stop};
use crate::util::{UPPER_ALNUM, random_chars};

/// The output limit when `generationConfig.maxOutputTokens` is absent
/// (Gemini 2.5's own limit).
const DEFAULT_MAX_OUTPUT_TOKENS: u64 = 65_535;

/// Top-level fields of a `GenerateContentRequest` (Vertex AI v1).
const REQUEST_FIELDS: &[&str] = &[
    "contents",
    "systemInstruction",
    "tools",
    "toolConfig",
    "generationConfig",
    "safetySettings",
    "labels",
    "cachedContent",
    "modelArmorConfig",
];

/// Data fields of a `Part`: exactly one carries the part.
const PART_DATA: &[&str] = &[
    "text",
    "inlineData",
    "fileData",
    "functionCall",
    "functionResponse",
    "executableCode",
    "codeExecutionResult",
];

fn invalid(message: &str) -> Response {
    google_error(400, "INVALID_ARGUMENT", message)
}

fn unknown_field(path: &str) -> String {
    format!("Invalid JSON payload received. Unknown name \"{path}\": Cannot find field.")
}

/// What the model reads from a request: every text (for the token count),
/// the last user text, the output limit and the declared function names.
struct Read {
    texts: Vec<String>,
    last_user: String,
    max_tokens: u64,
    tools: Vec<String>,
}

fn part_texts(part: &Map<String, Value>, out: &mut Vec<String>) {
    if let Some(t) = part.get("text").and_then(Value::as_str) {
        out.push(t.to_owned());
    }
    if let Some(r) = part.get("functionResponse") {
        out.push(r["response"].to_string());
    }
    if let Some(c) = part.get("functionCall") {
        out.push(c["args"].to_string());
    }
}

/// Checks a body as Vertex AI does; the refusal names the field.
fn read(v: &Value) -> Result<Read, String> {
    let Some(obj) = v.as_object() else {
        return Err("Invalid JSON payload received. Expected an object.".into());
    };
    if let Some(k) = obj.keys().find(|k| !REQUEST_FIELDS.contains(&k.as_str())) {
        return Err(unknown_field(k));
    }
    let contents = match obj.get("contents").and_then(Value::as_array) {
        Some(c) if !c.is_empty() => c,
        _ => {
            return Err(String::from(
                "Unable to submit request because it has an empty contents field. contents must have at least one Content.",
            ));
        }
    };
    let mut texts = Vec::new();
    if let Some(sys) = obj.get("systemInstruction") {
        for p in sys["parts"].as_array().into_iter().flatten() {
            if let Some(p) = p.as_object() {
                part_texts(p, &mut texts);
            }
        }
    }
    let mut last_user = String::new();
    for (i, c) in contents.iter().enumerate() {
        let role = c.get("role").and_then(Value::as_str).unwrap_or("user");
        if role != "user" && role != "model" {
            return Err(format!(
                "contents[{i}].role: Please use a valid role: user, model."
            ));
        }
        let parts = match c.get("parts").and_then(Value::as_array) {
            Some(p) if !p.is_empty() => p,
            _ => {
                return Err(format!(
                    "Unable to submit request because it has an empty parts field: contents[{i}].parts must have at least one Part."
                ));
            }
        };
        let mut mine = Vec::new();
        for (j, p) in parts.iter().enumerate() {
            let Some(p) = p.as_object() else {
                return Err(format!("contents[{i}].parts[{j}]: expected an object"));
            };
            if !PART_DATA.iter().any(|k| p.contains_key(*k)) {
                return Err(format!(
                    "contents[{i}].parts[{j}]: must contain one of text, inlineData, fileData, functionCall, functionResponse."
                ));
            }
            if let Some(r) = p.get("functionResponse")
                && (r["name"].as_str().is_none_or(str::is_empty) || !r["response"].is_object())
            {
                return Err(format!(
                    "contents[{i}].parts[{j}].function_response: name and response (an object) are required."
                ));
            }
            part_texts(p, &mut mine);
        }
        if role == "user" {
            last_user = parts
                .iter()
                .filter_map(|p| p["text"].as_str())
                .collect::<Vec<_>>()
                .join(" ");
        }
        texts.extend(mine);
    }
    let max_tokens = match obj.get("generationConfig").map(|g| &g["maxOutputTokens"]) {
        None | Some(Value::Null) => DEFAULT_MAX_OUTPUT_TOKENS,
        Some(n) => match n.as_u64().filter(|n| *n >= 1) {
            Some(n) => n,
            None => {
                return Err(String::from(
                    "generation_config.max_output_tokens: must be a positive integer.",
                ));
            }
        },
    };
    let mut tools = Vec::new();
    for (i, t) in obj
        .get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        for (j, d) in t["functionDeclarations"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            match d["name"].as_str() {
                Some(n) if !n.is_empty() => tools.push(n.to_owned()),
                _ => {
                    return Err(format!(
                        "tools[{i}].function_declarations[{j}].name: cannot be empty."
                    ));
                }
            }
        }
    }
    Ok(Read {
        texts,
        last_user,
        max_tokens,
        tools,
    })
}

fn usage(r: &Reply) -> Value {
    json!({
        "promptTokenCount": r.input_tokens,
        "candidatesTokenCount": r.output_tokens,
        "totalTokenCount": r.input_tokens + r.output_tokens,
        "trafficType": "ON_DEMAND",
    })
}

fn finish(r: &Reply) -> &'static str {
    match r.stop {
        Stop::MaxTokens => "MAX_TOKENS",
        Stop::EndTurn | Stop::ToolUse => "STOP",
    }
}

/// One response chunk: `parts`, and on the last one `finishReason` and usage.
fn chunk(model: &str, id: &str, parts: Value, last: Option<&Reply>) -> Value {
    let mut candidate = json!({"content": {"role": "model", "parts": parts}});
    let mut v = json!({"modelVersion": model, "responseId": id});
    if let Some(r) = last {
        candidate["finishReason"] = json!(finish(r));
        v["usageMetadata"] = usage(r);
    }
    v["candidates"] = json!([candidate]);
    v
}

/// The whole answer's chunks: one per word, or the one function call.
fn chunks(model: &str, id: &str, r: &Reply) -> Vec<Value> {
    if let Some(call) = &r.tool {
        let parts = json!([{"functionCall": {"name": call.name, "args": call.input}}]);
        return vec![chunk(model, id, parts, Some(r))];
    }
    let n = r.pieces.len();
    if n == 0 {
        return vec![chunk(model, id, json!([{"text": ""}]), Some(r))];
    }
    r.pieces
        .iter()
        .enumerate()
        .map(|(i, piece)| {
            chunk(
                model,
                id,
                json!([{"text": piece}]),
                (i + 1 == n).then_some(r),
            )
        })
        .collect()
}

impl Inner {
    /// `POST /v1/projects/{P}/locations/{L}/publishers/google/models/{M}:generateContent`
    /// and `:streamGenerateContent` (`sse`: the query asked for `alt=sse`).
    #[expect(clippy::too_many_arguments, reason = "one call per URL part and verb")]
    pub(crate) async fn vertex_generate_content(
        &self,
        project: &str,
        location: &str,
        model: &str,
        stream: bool,
        sse_wanted: bool,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Response {
        let op = if stream {
            STREAM_GENERATE_CONTENT_OP
        } else {
            GENERATE_CONTENT_OP
        };
        let target = PublisherModel {
            project,
            location,
            publisher: "google",
            model,
        };
        if let Some(refused) = self.vertex_gate(op, &target, headers) {
            return refused;
        }
        let Ok(v) = serde_json::from_slice::<Value>(body) else {
            return invalid("Invalid JSON payload received. Unexpected token.");
        };
        let read = match read(&v) {
            Ok(r) => r,
            Err(message) => return invalid(&message),
        };
        let reply = llm::respond(
            read.texts.iter().map(String::as_str),
            &read.last_user,
            read.max_tokens,
            &read.tools,
        );
        let id = random_chars(22, UPPER_ALNUM).to_lowercase();
        let all = chunks(model, &id, &reply);
        if !stream {
            // The whole answer: every piece in one candidate.
            let parts: Vec<Value> = match &reply.tool {
                Some(_) => all
                    .iter()
                    .flat_map(|c| c["candidates"][0]["content"]["parts"].as_array().cloned())
                    .flatten()
                    .collect(),
                None => vec![json!({"text": reply.text()})],
            };
            return json_response(200, &chunk(model, &id, Value::Array(parts), Some(&reply)));
        }
        if !sse_wanted {
            let mut r = json_response(200, &Value::Array(all));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json; charset=UTF-8"),
            );
            return r;
        }
        let frames = all
            .into_iter()
            .map(|c| format!("data: {c}\r\n\r\n"))
            .collect();
        sse(frames, self.faults.stream_event_delay())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_checked_naming_the_field() {
        let ok = json!({"contents": [{"role": "user", "parts": [{"text": "hi there"}]}],
            "systemInstruction": {"parts": [{"text": "be brief"}]},
            "generationConfig": {"maxOutputTokens": 5},
            "tools": [{"functionDeclarations": [{"name": "lookup"}]}]});
        let r = read(&ok).ok().unwrap();
        assert_eq!(r.last_user, "hi there");
        assert_eq!(r.max_tokens, 5);
        assert_eq!(r.tools, ["lookup"]);
        assert_eq!(r.texts, ["be brief", "hi there"]);
        for (bad, words) in [
            (json!({"contents": [], "x": 1}), "Unknown name \"x\""),
            (json!({"contents": []}), "empty contents"),
            (
                json!({"contents": [{"role": "assistant", "parts": [{"text": "a"}]}]}),
                "contents[0].role",
            ),
            (
                json!({"contents": [{"role": "user", "parts": [{"bogus": 1}]}]}),
                "contents[0].parts[0]",
            ),
            (
                json!({"contents": [{"parts": [{"text": "a"}]}], "generationConfig": {"maxOutputTokens": 0}}),
                "max_output_tokens",
            ),
            (
                json!({"contents": [{"parts": [{"text": "a"}]}], "tools": [{"functionDeclarations": [{}]}]}),
                "tools[0].function_declarations[0].name",
            ),
        ] {
            let Err(message) = read(&bad) else {
                panic!("{bad} passed")
            };
            assert!(message.contains(words), "{bad}: {message}");
        }
    }

    #[test]
    fn answers_stream_word_by_word_or_call_a_function() {
        let r = llm::respond(["a b c"], "a b c", 100, &[]);
        let all = chunks("gemini-2.5-pro", "id", &r);
        assert_eq!(all.len(), 3);
        assert!(all[0]["candidates"][0].get("finishReason").is_none());
        assert_eq!(all[2]["candidates"][0]["finishReason"], "STOP");
        assert_eq!(all[2]["usageMetadata"]["candidatesTokenCount"], 3);
        let tools = vec!["lookup".to_owned()];
        let r = llm::respond(["/tool lookup x"], "/tool lookup x", 100, &tools);
        let all = chunks("gemini-2.5-pro", "id", &r);
        assert_eq!(all.len(), 1);
        let call = &all[0]["candidates"][0]["content"]["parts"][0]["functionCall"];
        assert_eq!(call["name"], "lookup");
        assert_eq!(call["args"]["args"], "x");
        assert_eq!(all[0]["candidates"][0]["finishReason"], "STOP");
    }
}
