//! The deterministic model every emulated endpoint answers with: it echoes the
//! last user message's text.
//!
//! Token counts are honest for this model's "tokenizer": one token per
//! whitespace-separated word of every text the request carries (system prompt,
//! every message, tool results) and of the reply. The reply is cut at
//! `max_tokens` words, with stop reason `max_tokens`; an empty last user text is
//! answered with `OK`. Streams send one word per delta, so a reply of N words is
//! N deltas.

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
}

/// The model's answer.
#[derive(Debug, Clone)]
pub struct Reply {
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
) -> Reply {
    let input_tokens = all_texts.into_iter().map(count_tokens).sum();
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
        let r = respond(["be brief", "hello there world"], "hello there world", 100);
        assert_eq!(r.text(), "hello there world");
        assert_eq!((r.input_tokens, r.output_tokens), (5, 3));
        assert_eq!(r.stop, Stop::EndTurn);
        let r = respond(["a b c"], "a b c", 2);
        assert_eq!(r.text(), "a b");
        assert_eq!(r.stop, Stop::MaxTokens);
        assert_eq!(respond([""], "  ", 5).text(), "OK");
    }
}
