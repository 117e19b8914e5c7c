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

/// The merge patch that turns `old` into `new` (objects compared field by
/// field, anything else replaced whole): what a client sends to change only
/// what it changed. `merge_patch(old, diff(old, new)) == new` when `new` holds
/// no `null` inside an object (a merge patch cannot write one).
pub fn diff(old: &serde_json::Value, new: &serde_json::Value) -> serde_json::Value {
    let (serde_json::Value::Object(o), serde_json::Value::Object(n)) = (old, new) else {
        return new.clone();
    };
    let mut patch = serde_json::Map::new();
    for (key, old_value) in o {
        match n.get(key) {
            None | Some(serde_json::Value::Null) if !old_value.is_null() => {
                patch.insert(key.clone(), serde_json::Value::Null);
            }
            Some(new_value) if new_value != old_value && !new_value.is_null() => {
                let sub = diff(old_value, new_value);
                patch.insert(key.clone(), sub);
            }
            _ => {}
        }
    }
    for (key, new_value) in n {
        if !o.contains_key(key) && !new_value.is_null() {
            patch.insert(key.clone(), new_value.clone());
        }
    }
    serde_json::Value::Object(patch)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::{diff, merge_patch};

    #[test]
    fn diff_is_the_patch_that_makes_new() {
        let old = json!({"a": 1, "b": {"c": "x", "d": [1]}, "e": "gone", "n": null});
        let new = json!({"a": 1, "b": {"c": "y", "d": [1]}, "f": true, "n": null});
        let patch = diff(&old, &new);
        assert_eq!(patch, json!({"b": {"c": "y"}, "e": null, "f": true}));
        let mut doc = old;
        merge_patch(&mut doc, &patch);
        doc.as_object_mut().unwrap().remove("n");
        let mut want = new;
        want.as_object_mut().unwrap().remove("n");
        assert_eq!(doc, want);
    }

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
