//! Bodies on the hot path, touched no more than the gateway needs.
//!
//! - A request body is parsed once per request; each attempt writes it
//!   upstream through [`Patched`] (its fields, some dropped or replaced),
//!   never a deep copy of the caller's messages.
//! - A whole upstream answer goes to the caller as the bytes it came in;
//!   the gateway reads only its usage and stop reasons ([`answer_summary`]),
//!   skipping the rest (the content) without building it.

use serde::Deserialize;
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Map, Value};

/// `base` as sent upstream: its fields except those named in `drop` or in
/// `set`, then `set`'s fields. The JSON object is the one a copy of `base`
/// patched the same way would serialise to (fields possibly in another order).
pub(crate) struct Patched<'a> {
    pub base: &'a Map<String, Value>,
    pub drop: &'a [&'a str],
    pub set: &'a [(&'a str, Value)],
}

impl Serialize for Patched<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        for (k, v) in self.base {
            let k = k.as_str();
            if self.drop.contains(&k) || self.set.iter().any(|(n, _)| *n == k) {
                continue;
            }
            m.serialize_entry(k, v)?;
        }
        for (k, v) in self.set {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

impl Patched<'_> {
    /// The patched body's bytes.
    pub(crate) fn to_vec(&self) -> Result<Vec<u8>, serde_json::Error> {
        serde_json::to_vec(self)
    }
}

/// The parts of a whole answer (Anthropic message or OpenAI completion) the
/// gateway reads; everything else is skipped unparsed.
#[derive(Deserialize)]
struct Summary {
    #[serde(rename = "type", default)]
    kind: Value,
    #[serde(default)]
    usage: Value,
    #[serde(default)]
    stop_reason: Value,
    #[serde(default)]
    choices: Option<Vec<Choice>>,
}

/// One choice's finish reason (its message, unknown to this struct, is
/// skipped).
#[derive(Deserialize)]
struct Choice {
    #[serde(default)]
    finish_reason: Value,
}

/// A whole answer reduced to what the usage readers (`anthropic_usage`,
/// `openai_usage`, `finish_reasons`) look at: `type`, `usage`, `stop_reason`
/// and each choice's `finish_reason`. An answer of another shape is parsed
/// whole, as before (`null` when it is not JSON: the bytes still go to the
/// caller unchanged).
pub(crate) fn answer_summary(bytes: &[u8]) -> Value {
    // Only an object is summarised (a derived struct would also take an
    // array, field by field).
    let object = bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
    let Some(s) = object
        .then(|| serde_json::from_slice::<Summary>(bytes).ok())
        .flatten()
    else {
        return serde_json::from_slice(bytes).unwrap_or(Value::Null);
    };
    let mut m = Map::new();
    for (k, v) in [
        ("type", s.kind),
        ("usage", s.usage),
        ("stop_reason", s.stop_reason),
    ] {
        if !v.is_null() {
            m.insert(k.into(), v);
        }
    }
    if let Some(choices) = s.choices {
        let list = choices
            .into_iter()
            .map(|c| {
                let mut o = Map::new();
                if !c.finish_reason.is_null() {
                    o.insert("finish_reason".into(), c.finish_reason);
                }
                Value::Object(o)
            })
            .collect();
        m.insert("choices".into(), Value::Array(list));
    }
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn patched_drops_and_replaces_fields_and_keeps_the_rest() {
        let Value::Object(base) = json!({"model": "a", "stream": false, "metadata": {"u": 1},
            "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5})
        else {
            unreachable!()
        };
        let set = [("model", json!("b")), ("stream", json!(true))];
        let bytes = Patched {
            base: &base,
            drop: &["metadata"],
            set: &set,
        }
        .to_vec()
        .unwrap();
        let got: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(
            got,
            json!({"model": "b", "stream": true,
                "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5})
        );
    }

    #[test]
    fn the_summary_keeps_what_usage_readers_read() {
        let anthropic = br#"{"id":"m","type":"message","content":[{"type":"text","text":"hi"}],
            "stop_reason":"end_turn","usage":{"input_tokens":3,"output_tokens":4}}"#;
        let v = answer_summary(anthropic);
        assert_eq!(crate::relay::anthropic_usage(&v), (Some(3), Some(4)), "{v}");
        assert_eq!(v["stop_reason"], "end_turn");
        let openai =
            br#"{"id":"c","choices":[{"index":0,"message":{"role":"assistant","content":"x"},
            "finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":2}}"#;
        let v = answer_summary(openai);
        assert_eq!(crate::relay::openai_usage(&v), (Some(1), Some(2)));
        assert_eq!(v["choices"][0]["finish_reason"], "stop");
        assert_eq!(answer_summary(b"not json"), Value::Null);
        // Another shape: parsed whole, as the readers always saw it.
        assert_eq!(answer_summary(b"[1]"), json!([1]));
        let odd = br#"{"choices":{"x":1},"usage":{"prompt_tokens":7}}"#;
        assert_eq!(crate::relay::openai_usage(&answer_summary(odd)).0, Some(7));
    }
}
