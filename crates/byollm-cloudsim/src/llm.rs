//! The deterministic model every emulated endpoint answers with: it echoes the
//! last user message's text.
//!
//! Token counts are honest for this model's "tokenizer": one token per
//! whitespace-separated word of every text the request carries (system prompt,
//! every message, tool results) and of the reply. The reply is cut at
//! `max_tokens` words, with stop reason `max_tokens`; an empty last user text is
//! answered with `OK`. Streams send one word per delta, so a reply of N words is
//! N deltas.
//!
//! Tool use, on request: when the request declares tools and the last user text
//! is `/tool NAME ARGS…` with NAME one of them, the model answers with a single
//! call of NAME with input `{"args": "ARGS…"}` (stop reason `tool_use`; output
//! tokens = the words of ARGS, at least 1) instead of the echo.

/// Tokens in `text`.
pub fn count_tokens(text: &str) -> u64 {
    u64::try_from(text.split_whitespace().count()).unwrap_or(u64::MAX)
}

/// Why the reply stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// The whole echo was produced.
    EndTurn,
    /// Cut at `max_tokens`.
    MaxTokens,
    /// Stopped to call a tool.
    ToolUse,
}

/// A tool call the model makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolCall {
    /// The tool's name.
    pub name: String,
    /// Its input, `{"args": "…"}`.
    pub input: serde_json::Value,
}

/// The model's answer.
#[derive(Debug, Clone)]
pub struct Reply {
    /// A tool call instead of text, when asked for one.
    pub tool: Option<ToolCall>,
    /// The reply in stream pieces: each word with the space before the next.
    pub pieces: Vec<String>,
    /// Input tokens.
    pub input_tokens: u64,
    /// Output tokens (= pieces).
    pub output_tokens: u64,
    /// Stop reason.
    pub stop: Stop,
}

impl Reply {
    /// The whole reply text.
    pub fn text(&self) -> String {
        self.pieces.concat()
    }
}

/// Answers a request whose texts are `all_texts` and whose last user message
/// says `last_user`, producing at most `max_tokens` tokens.
pub fn respond<'a>(
    all_texts: impl IntoIterator<Item = &'a str>,
    last_user: &str,
    max_tokens: u64,
    tools: &[String],
) -> Reply {
    let input_tokens = all_texts.into_iter().map(count_tokens).sum();
    if let Some(rest) = last_user.trim_start().strip_prefix("/tool ") {
        let mut words = rest.split_whitespace();
        if let Some(name) = words.next()
            && tools.iter().any(|t| t == name)
        {
            let args: Vec<&str> = words.collect();
            return Reply {
                tool: Some(ToolCall {
                    name: name.to_owned(),
                    input: serde_json::json!({"args": args.join(" ")}),
                }),
                pieces: vec![],
                input_tokens,
                output_tokens: u64::try_from(args.len().max(1)).unwrap_or(u64::MAX),
                stop: Stop::ToolUse,
            };
        }
    }
    let words: Vec<&str> = if last_user.split_whitespace().next().is_none() {
        vec!["OK"]
    } else {
        last_user.split_whitespace().collect()
    };
    let limit = usize::try_from(max_tokens).unwrap_or(usize::MAX);
    let stop = if words.len() > limit {
        Stop::MaxTokens
    } else {
        Stop::EndTurn
    };
    let kept = &words[..words.len().min(limit)];
    let pieces: Vec<String> = kept
        .iter()
        .enumerate()
        .map(|(i, w)| {
            if i + 1 < kept.len() {
                format!("{w} ")
            } else {
                (*w).to_owned()
            }
        })
        .collect();
    Reply {
        tool: None,
        output_tokens: u64::try_from(pieces.len()).unwrap_or(u64::MAX),
        pieces,
        input_tokens,
        stop,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echo_and_counts() {
        let r = respond(
            ["be brief", "hello there world"],
            "hello there world",
            100,
            &[],
        );
        assert_eq!(r.text(), "hello there world");
        assert_eq!((r.input_tokens, r.output_tokens), (5, 3));
        assert_eq!(r.stop, Stop::EndTurn);
        let r = respond(["a b c"], "a b c", 2, &[]);
        assert_eq!(r.text(), "a b");
        assert_eq!(r.stop, Stop::MaxTokens);
        assert_eq!(respond([""], "  ", 5, &[]).text(), "OK");
        let tools = vec!["lookup".to_owned()];
        let r = respond(
            ["/tool lookup the weather"],
            "/tool lookup the weather",
            5,
            &tools,
        );
        assert_eq!(r.stop, Stop::ToolUse);
        assert_eq!(
            r.tool.unwrap().input,
            serde_json::json!({"args": "the weather"})
        );
        let r = respond(["/tool other x"], "/tool other x", 5, &tools);
        assert_eq!(r.text(), "/tool other x");
    }
}
