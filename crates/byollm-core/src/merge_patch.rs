//! RFC 7396 JSON Merge Patch, the meaning of every `PATCH` of the API.

/// Applies `patch` to `target`: objects merge recursively, `null` removes a
/// field, anything else replaces (RFC 7396 §2).
pub fn merge_patch(target: &mut serde_json::Value, patch: &serde_json::Value) {
    let serde_json::Value::Object(patch_fields) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = serde_json::Value::Object(serde_json::Map::new());
    }
    if let serde_json::Value::Object(fields) = target {
        for (key, value) in patch_fields {
            if value.is_null() {
                fields.remove(key);
            } else {
                merge_patch(
                    fields.entry(key.clone()).or_insert(serde_json::Value::Null),
                    value,
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::merge_patch;

    #[test]
    fn merge_patch_follows_rfc7396() {
        let mut doc = json!({"a": "b", "c": {"d": "e", "f": "g"}});
        merge_patch(&mut doc, &json!({"a": "z", "c": {"f": null}}));
        assert_eq!(doc, json!({"a": "z", "c": {"d": "e"}}));
        let mut doc = json!({"a": {"b": "c"}});
        merge_patch(&mut doc, &json!({"a": {"b": "d", "c": null}, "e": [1]}));
        assert_eq!(doc, json!({"a": {"b": "d"}, "e": [1]}));
    }
}
