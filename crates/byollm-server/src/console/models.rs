//! The per-model table of the AI settings (`models.<id>` of the team's LLM
//! settings): on Bedrock and its model reference override, on Vertex AI and
//! its model id override, on the direct API. Admins edit it in the AI
//! settings form; every member reads it on the overview (no form).
//!
//! Invariants: the table lists every catalog model, best first, with the
//! values the gateway uses (a model with no entry shows the host defaults:
//! on Bedrock unless `opt_out_of_new_models`, no overrides, on Vertex AI and
//! the direct API); saving sends an entry only for a model that has one or
//! whose row differs from those defaults, so an untouched table adds nothing
//! to the settings; the inputs are named by the API's field paths, so an
//! API error names the input it is shown beside.

use serde_json::{Map, Value, json};

use byollm_api::catalog::Catalog;
use byollm_api::types::{LlmSettings, ModelHosts};

use super::html::{esc, field_error};

/// One model's row, as stored (or defaulted) or as sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    id: String,
    /// The settings hold an entry for this model.
    stored: bool,
    bedrock: bool,
    bedrock_ref: String,
    vertex: bool,
    vertex_ref: String,
    direct: bool,
}

impl Row {
    fn of(id: &str, hosts: &ModelHosts, stored: bool) -> Row {
        Row {
            id: id.to_owned(),
            stored,
            bedrock: hosts.aws_bedrock.enabled,
            bedrock_ref: hosts.aws_bedrock.model_ref.clone().unwrap_or_default(),
            vertex: hosts.gcp_vertex.enabled,
            vertex_ref: hosts.gcp_vertex.model_ref.clone().unwrap_or_default(),
            direct: hosts.direct_api.enabled,
        }
    }

    /// The row of a model with no entry: the host defaults.
    fn default_of(id: &str, s: &LlmSettings) -> Row {
        let mut hosts = ModelHosts::default();
        hosts.aws_bedrock.enabled = !s.hosts.aws_bedrock.opt_out_of_new_models;
        Row::of(id, &hosts, false)
    }

    fn field(&self, path: &str) -> String {
        format!("models.{}.{path}", self.id)
    }
}

/// Every catalog model's row, best first, as the settings hold it.
pub fn rows(s: &LlmSettings) -> Vec<Row> {
    Catalog::builtin()
        .by_rank()
        .into_iter()
        .map(|m| match s.models.get(&m.id) {
            Some(hosts) => Row::of(&m.id, hosts, true),
            None => Row::default_of(&m.id, s),
        })
        .collect()
}

/// The rows a form sent (one per `model_row`), in its order.
pub fn parse(pairs: &[(String, String)]) -> Vec<Row> {
    let text = |k: &str| {
        pairs
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.trim().to_owned())
            .unwrap_or_default()
    };
    let on = |k: &str| pairs.iter().any(|(n, v)| n == k && v == "on");
    pairs
        .iter()
        .filter(|(n, _)| n == "model_row")
        .map(|(_, id)| {
            let f = |p: &str| format!("models.{id}.{p}");
            Row {
                id: id.clone(),
                stored: pairs.iter().any(|(n, v)| n == "model_stored" && v == id),
                bedrock: on(&f("aws_bedrock.enabled")),
                bedrock_ref: text(&f("aws_bedrock.model_ref")),
                vertex: on(&f("gcp_vertex.enabled")),
                vertex_ref: text(&f("gcp_vertex.model_ref")),
                direct: on(&f("direct_api.enabled")),
            }
        })
        .collect()
}

/// The `models` member of the settings' merge patch for the sent rows:
/// an entry for each row that has one or differs from the defaults
/// (`opt_out` is the host's `opt_out_of_new_models` as the form shows it).
pub fn patch(rows: &[Row], opt_out: bool) -> Option<Value> {
    let opt = |s: &str| {
        if s.is_empty() {
            Value::Null
        } else {
            Value::String(s.to_owned())
        }
    };
    let mut out = Map::new();
    for r in rows {
        let default = Row {
            id: r.id.clone(),
            stored: false,
            bedrock: !opt_out,
            bedrock_ref: String::new(),
            vertex: true,
            vertex_ref: String::new(),
            direct: true,
        };
        if !r.stored && *r == default {
            continue;
        }
        out.insert(
            r.id.clone(),
            json!({
                "aws_bedrock": { "enabled": r.bedrock, "model_ref": opt(&r.bedrock_ref) },
                "gcp_vertex": { "enabled": r.vertex, "model_ref": opt(&r.vertex_ref) },
                "direct_api": { "enabled": r.direct },
            }),
        );
    }
    (!out.is_empty()).then_some(Value::Object(out))
}

/// The fields the table shows errors beside (the rest go above the form).
pub fn fields(rows: &[Row]) -> Vec<String> {
    rows.iter()
        .flat_map(|r| {
            [
                "aws_bedrock.enabled",
                "aws_bedrock.model_ref",
                "gcp_vertex.enabled",
                "gcp_vertex.model_ref",
                "direct_api.enabled",
            ]
            .map(|p| r.field(p))
        })
        .collect()
}

const HEAD: &str = r#"<thead><tr><th scope="col">Model</th><th scope="col">On Bedrock</th><th scope="col">Bedrock model reference</th><th scope="col">On Vertex AI</th><th scope="col">Vertex AI model id</th><th scope="col">Direct API</th></tr></thead>"#;

/// The table as a fieldset of the AI settings form.
pub fn form_table(rows: &[Row], errors: &[(String, String)]) -> String {
    let body: String = rows
        .iter()
        .map(|r| {
            let id = esc(&r.id);
            let check = |path: &str, label: &str, on: bool| {
                let field = r.field(path);
                format!(
                    r#"<input type="checkbox" id="{dom}" name="{name}" aria-label="{label}: {id}"{checked}>{err}"#,
                    dom = esc(&field.replace('.', "-")),
                    name = esc(&field),
                    checked = if on { " checked" } else { "" },
                    err = field_error(errors, &field),
                )
            };
            let text = |path: &str, label: &str, value: &str| {
                let field = r.field(path);
                let dom = esc(&field.replace('.', "-"));
                format!(
                    r#"<input type="text" id="{dom}" name="{name}" value="{value}" aria-label="{label}: {id}" aria-describedby="{dom}-error">{err}"#,
                    name = esc(&field),
                    value = esc(value),
                    err = field_error(errors, &field),
                )
            };
            format!(
                r#"<tr id="model-{id}"><th scope="row"><code>{id}</code><input type="hidden" name="model_row" value="{id}">{stored}</th><td>{b}</td><td>{bref}</td><td>{v}</td><td>{vref}</td><td>{d}</td></tr>"#,
                stored = if r.stored {
                    format!(r#"<input type="hidden" name="model_stored" value="{id}">"#)
                } else {
                    String::new()
                },
                b = check("aws_bedrock.enabled", "On Bedrock", r.bedrock),
                bref = text("aws_bedrock.model_ref", "Bedrock model reference", &r.bedrock_ref),
                v = check("gcp_vertex.enabled", "On Vertex AI", r.vertex),
                vref = text("gcp_vertex.model_ref", "Vertex AI model id", &r.vertex_ref),
                d = check("direct_api.enabled", "On the direct API", r.direct),
            )
        })
        .collect();
    format!(
        r#"<fieldset><legend>Models</legend>
<p class="hint">Leave a reference empty for the catalog's (on Bedrock, e.g. us.anthropic.claude-sonnet-4-6 instead of the global profile).</p>
<table id="models-table"><caption>Per model</caption>{HEAD}<tbody>{body}</tbody></table></fieldset>"#
    )
}

/// The table, read-only (the overview: every member).
pub fn read_only_table(s: &LlmSettings) -> String {
    let yes = |on: bool| if on { "yes" } else { "no" };
    let reference = |r: &str| {
        if r.is_empty() {
            "the catalog's".to_owned()
        } else {
            format!("<code>{}</code>", esc(r))
        }
    };
    let body: String = rows(s)
        .iter()
        .map(|r| {
            format!(
                r#"<tr><th scope="row"><code>{id}</code></th><td>{b}</td><td>{bref}</td><td>{v}</td><td>{vref}</td><td>{d}</td></tr>"#,
                id = esc(&r.id),
                b = yes(r.bedrock),
                bref = reference(&r.bedrock_ref),
                v = yes(r.vertex),
                vref = reference(&r.vertex_ref),
                d = yes(r.direct),
            )
        })
        .collect();
    format!(
        r#"<table id="overview-models"><caption>Models and where they may be served</caption>{HEAD}<tbody>{body}</tbody></table>"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_untouched_table_patches_nothing_and_a_change_sends_its_entry() {
        let s = LlmSettings::default();
        let mut rows = rows(&s);
        assert!(patch(&rows, false).is_none());
        rows[0].bedrock_ref = "us.x".into();
        let p = patch(&rows, false).unwrap();
        assert_eq!(p[&rows[0].id]["aws_bedrock"]["model_ref"], "us.x");
        assert_eq!(p.as_object().unwrap().len(), 1);
        // A stored entry is always sent, with an empty reference unset.
        rows[0].bedrock_ref.clear();
        rows[0].stored = true;
        let p = patch(&rows, false).unwrap();
        assert_eq!(p[&rows[0].id]["aws_bedrock"]["model_ref"], Value::Null);
    }
}
