//! Lossless-as-possible conversion between `serde_json::Value` and the Smithy
//! [`Document`] that the Bedrock SDK uses for tool inputs and JSON schemas.
//!
//! JSON numbers map to the matching [`Number`] variant (non-negative integers →
//! `PosInt`, negative integers → `NegInt`, everything else → `Float`). The only
//! loss is on the way back: a non-finite float has no JSON form and becomes `null`.

use aws_smithy_types::{Document, Number};
use serde_json::Value;

/// JSON value → Smithy document.
pub fn json_to_document(value: &Value) -> Document {
    match value {
        Value::Null => Document::Null,
        Value::Bool(b) => Document::Bool(*b),
        Value::Number(n) => Document::Number(if let Some(u) = n.as_u64() {
            Number::PosInt(u)
        } else if let Some(i) = n.as_i64() {
            Number::NegInt(i)
        } else {
            // serde_json without `arbitrary_precision` always has an f64 form.
            Number::Float(n.as_f64().unwrap_or(0.0))
        }),
        Value::String(s) => Document::String(s.clone()),
        Value::Array(items) => Document::Array(items.iter().map(json_to_document).collect()),
        Value::Object(map) => Document::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), json_to_document(v)))
                .collect(),
        ),
    }
}

/// Smithy document → JSON value. Object keys come out in `serde_json::Map`
/// order, so the serialized form is deterministic.
pub fn document_to_json(doc: &Document) -> Value {
    match doc {
        Document::Null => Value::Null,
        Document::Bool(b) => Value::Bool(*b),
        Document::Number(Number::PosInt(u)) => Value::from(*u),
        Document::Number(Number::NegInt(i)) => Value::from(*i),
        Document::Number(Number::Float(f)) => serde_json::Number::from_f64(*f)
            .map(Value::Number)
            .unwrap_or(Value::Null),
        Document::String(s) => Value::String(s.clone()),
        Document::Array(items) => Value::Array(items.iter().map(document_to_json).collect()),
        Document::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), document_to_json(v)))
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn round_trips_nested_values() {
        let v = json!({
            "a": [1, -2, 3.5, "x", true, null],
            "b": {"c": {"d": u64::MAX, "e": i64::MIN}},
            "empty": {}
        });
        assert_eq!(document_to_json(&json_to_document(&v)), v);
    }

    #[test]
    fn numbers_pick_the_matching_variant() {
        assert_eq!(
            json_to_document(&json!(7)),
            Document::Number(Number::PosInt(7))
        );
        assert_eq!(
            json_to_document(&json!(-7)),
            Document::Number(Number::NegInt(-7))
        );
        assert_eq!(
            json_to_document(&json!(0.5)),
            Document::Number(Number::Float(0.5))
        );
        assert_eq!(
            document_to_json(&Document::Number(Number::Float(f64::NAN))),
            Value::Null
        );
    }

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            (-1.0e9f64..1.0e9).prop_map(Value::from),
            ".{0,8}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map(".{0,6}", inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn any_json_round_trips(v in arb_json()) {
            prop_assert_eq!(document_to_json(&json_to_document(&v)), v);
        }
    }
}
