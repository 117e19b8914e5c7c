//! Attribute mapping and attribute condition of a workload identity pool
//! provider (gcp-facts §1.2, §1.3), evaluated with `cel-interpreter` rather
//! than a hand-written interpreter. One home for both readers: the emulator's
//! STS decides exchanges with it, and `byollm gcp explain-condition` and the
//! doctor say which subjects a provider admits with the same code.
//!
//! - A mapping expression sees `assertion` (the token's claims) and answers a
//!   string (or, for `google.groups`, a list of strings).
//! - The condition sees `assertion`, `google` (`subject`, `groups`) and
//!   `attribute` (the custom attributes) and must answer a bool; anything
//!   else, or an error, rejects the credential, as Google does.
//! - `extract(template)` is Workload Identity Federation's own function:
//!   `'scoped_principal:t1/user:u'.extract('scoped_principal:{team}/')` is
//!   `t1` — the text where `{…}` stands, up to the text after it (or the end).

use std::collections::BTreeMap;
use std::sync::Arc;

use cel_interpreter::extractors::This;
use cel_interpreter::{Context, Program, Value};

/// What a mapping produced: `google.subject`, `google.groups` and the
/// `attribute.NAME` values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mapped {
    /// `google.subject`.
    pub subject: Option<String>,
    /// `google.groups`.
    pub groups: Vec<String>,
    /// `attribute.NAME` → value.
    pub attributes: BTreeMap<String, String>,
}

/// Checks that `expr` parses (provider creation refuses one that does not).
pub fn parses(expr: &str) -> Result<(), String> {
    Program::compile(expr)
        .map(|_| ())
        .map_err(|e| format!("{e}"))
}

fn extract(This(this): This<Arc<String>>, template: Arc<String>) -> String {
    let Some(open) = template.find('{') else {
        return String::new();
    };
    let Some(close) = template[open..].find('}').map(|i| open + i) else {
        return String::new();
    };
    let (before, after) = (&template[..open], &template[close + 1..]);
    let Some(start) = this.find(before).map(|i| i + before.len()) else {
        return String::new();
    };
    let rest = &this[start..];
    match after.is_empty() {
        true => rest.to_owned(),
        false => rest
            .find(after)
            .map(|i| rest[..i].to_owned())
            .unwrap_or_default(),
    }
}

fn context(claims: &serde_json::Map<String, serde_json::Value>) -> Result<Context<'_>, String> {
    let mut ctx = Context::default();
    ctx.add_function("extract", extract);
    ctx.add_variable("assertion", serde_json::Value::Object(claims.clone()))
        .map_err(|e| format!("{e}"))?;
    Ok(ctx)
}

/// Applies `mapping` (key → CEL expression) to the token's claims.
pub fn map(
    mapping: &BTreeMap<String, String>,
    claims: &serde_json::Map<String, serde_json::Value>,
) -> Result<Mapped, String> {
    let ctx = context(claims)?;
    let mut out = Mapped::default();
    for (key, expr) in mapping {
        let program = Program::compile(expr).map_err(|e| format!("{key}: {e}"))?;
        let value = program.execute(&ctx).map_err(|e| format!("{key}: {e}"))?;
        match (key.as_str(), value) {
            ("google.groups", Value::List(items)) => {
                out.groups = items
                    .iter()
                    .filter_map(|v| match v {
                        Value::String(s) => Some((**s).clone()),
                        _ => None,
                    })
                    .collect();
            }
            ("google.subject", Value::String(s)) => out.subject = Some((*s).clone()),
            (k, Value::String(s)) => {
                if let Some(name) = k.strip_prefix("attribute.") {
                    out.attributes.insert(name.to_owned(), (*s).clone());
                }
            }
            (k, other) => return Err(format!("{k}: expected a string, got {other:?}")),
        }
    }
    Ok(out)
}

/// Evaluates `condition`: `Ok(true)` admits, anything else rejects.
pub fn admits(
    condition: &str,
    claims: &serde_json::Map<String, serde_json::Value>,
    mapped: &Mapped,
) -> Result<bool, String> {
    let mut ctx = context(claims)?;
    ctx.add_variable(
        "google",
        serde_json::json!({"subject": mapped.subject, "groups": mapped.groups}),
    )
    .map_err(|e| format!("{e}"))?;
    ctx.add_variable("attribute", &mapped.attributes)
        .map_err(|e| format!("{e}"))?;
    let program = Program::compile(condition).map_err(|e| format!("{e}"))?;
    match program.execute(&ctx) {
        Ok(Value::Bool(b)) => Ok(b),
        Ok(other) => Err(format!("the condition answered {other:?}, not a bool")),
        Err(e) => Err(format!("{e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(sub: &str) -> serde_json::Map<String, serde_json::Value> {
        serde_json::json!({"sub": sub, "team": "t1", "actor_type": "service_account"})
            .as_object()
            .cloned()
            .unwrap_or_default()
    }

    #[test]
    fn mapping_extract_and_condition() {
        let mapping: BTreeMap<String, String> = [
            ("google.subject".to_owned(), "assertion.sub".to_owned()),
            (
                "attribute.team".to_owned(),
                "assertion.sub.extract('scoped_principal:{team}/')".to_owned(),
            ),
            (
                "attribute.actor_type".to_owned(),
                "assertion.actor_type".to_owned(),
            ),
        ]
        .into();
        let c = claims("scoped_principal:t1/service_account:a1");
        let m = map(&mapping, &c).unwrap();
        assert_eq!(
            m.subject.as_deref(),
            Some("scoped_principal:t1/service_account:a1")
        );
        assert_eq!(m.attributes["team"], "t1");
        assert_eq!(m.attributes["actor_type"], "service_account");
        let team = "assertion.sub.startsWith('scoped_principal:t1/')";
        assert_eq!(admits(team, &c, &m), Ok(true));
        let other = claims("scoped_principal:t2/user:u");
        let m2 = map(&mapping, &other).unwrap();
        assert_eq!(admits(team, &other, &m2), Ok(false));
        assert_eq!(
            admits(
                "attribute.team == 't1' && assertion.actor_type == 'service_account'",
                &c,
                &m
            ),
            Ok(true)
        );
        assert!(admits("assertion.sub", &c, &m).is_err(), "not a bool");
        assert!(parses("assertion.sub.startsWith(").is_err());
    }
}
