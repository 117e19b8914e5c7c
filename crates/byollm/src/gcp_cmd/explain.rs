//! `byollm gcp explain-condition`: the provider's mapping and condition from
//! flags, from a provider's JSON (`gcloud iam workload-identity-pools providers
//! describe --format=json`) or from a generated setup script's values, run
//! through `byollm_policy::gcp::explain`.

use std::collections::BTreeMap;

use anyhow::{Context as _, bail};
use byollm_policy::gcp::attribute_mapping;
use byollm_policy::gcp::explain::explain_condition;
use byollm_policy::generate::{TrustScope, validate_uid};
use clap::Args;
use serde_json::Value;

/// `byollm gcp explain-condition`.
#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// The team uid the provider is for.
    #[arg(long, value_name = "UID")]
    team: String,
    /// The attribute condition (CEL).
    #[arg(long, value_name = "CEL", conflicts_with_all = ["provider_file", "script"])]
    attribute_condition: Option<String>,
    /// The attribute mapping, K=V,… (default: byollm's).
    #[arg(long, value_name = "K=V,…", conflicts_with_all = ["provider_file", "script"])]
    attribute_mapping: Option<String>,
    /// A provider as JSON (`gcloud … providers describe --format=json`, or the
    /// REST resource), `-` for stdin.
    #[arg(long, value_name = "FILE")]
    provider_file: Option<String>,
    /// A script `byollm gcp setup-script` generated: its ATTRIBUTE_MAPPING and
    /// ATTRIBUTE_CONDITION.
    #[arg(long, value_name = "FILE", conflicts_with = "provider_file")]
    script: Option<String>,
    /// Also probe these actors: user:UID,… / agent:UID,….
    #[arg(long, value_name = "ACTORS")]
    actor: Option<String>,
    /// Print the explanation as JSON.
    #[arg(long)]
    json: bool,
}

fn read(path: &str) -> anyhow::Result<String> {
    if path == "-" {
        std::io::read_to_string(std::io::stdin().lock()).context("reading stdin")
    } else {
        std::fs::read_to_string(path).with_context(|| format!("reading {path}"))
    }
}

/// `K=V,…` as gcloud's `--attribute-mapping` takes it.
fn parse_mapping(s: &str) -> anyhow::Result<BTreeMap<String, String>> {
    s.split(',')
        .map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
                .with_context(|| format!("--attribute-mapping: `{kv}` is not KEY=VALUE"))
        })
        .collect()
}

/// The value of `NAME='…'` in a bash script (single-quoted words and `\'`).
fn script_value(script: &str, name: &str) -> Option<String> {
    let line = script
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix('='))?;
    let mut out = String::new();
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                for d in chars.by_ref() {
                    if d == '\'' {
                        break;
                    }
                    out.push(d);
                }
            }
            '\\' => out.push(chars.next()?),
            _ => return None,
        }
    }
    Some(out)
}

/// The mapping and condition to explain.
fn inputs(args: &ExplainArgs) -> anyhow::Result<(BTreeMap<String, String>, Option<String>)> {
    if let Some(path) = &args.provider_file {
        let v: Value = serde_json::from_str(&read(path)?)
            .with_context(|| format!("{path}: not a provider's JSON"))?;
        let mapping = v
            .get("attributeMapping")
            .and_then(Value::as_object)
            .with_context(|| format!("{path}: no attributeMapping"))?
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
            .collect();
        let condition = v
            .get("attributeCondition")
            .and_then(Value::as_str)
            .filter(|c| !c.is_empty())
            .map(str::to_owned);
        return Ok((mapping, condition));
    }
    if let Some(path) = &args.script {
        let s = read(path)?;
        let mapping = script_value(&s, "ATTRIBUTE_MAPPING")
            .with_context(|| format!("{path}: no ATTRIBUTE_MAPPING='…' line"))?;
        let condition = script_value(&s, "ATTRIBUTE_CONDITION")
            .with_context(|| format!("{path}: no ATTRIBUTE_CONDITION='…' line"))?;
        return Ok((parse_mapping(&mapping)?, Some(condition)));
    }
    let mapping = match &args.attribute_mapping {
        Some(m) => parse_mapping(m)?,
        None => attribute_mapping(),
    };
    Ok((mapping, args.attribute_condition.clone()))
}

/// Runs the explainer.
pub(super) fn run(args: &ExplainArgs) -> anyhow::Result<String> {
    validate_uid("team", &args.team)?;
    let named = match args
        .actor
        .as_deref()
        .map(str::parse::<TrustScope>)
        .transpose()?
    {
        None => vec![],
        Some(TrustScope::Named(list)) => list,
        Some(other) => bail!("--actor takes user:UID,… / agent:UID,…, not `{other}`"),
    };
    let (mapping, condition) = inputs(args)?;
    let e = explain_condition(&mapping, condition.as_deref(), &args.team, &named);
    if args.json {
        Ok(serde_json::to_string_pretty(&e)?)
    } else {
        Ok(e.to_text())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_values_unquote() {
        let s = "X=1\nATTRIBUTE_CONDITION='assertion.team == '\\''t1'\\'''\n";
        assert_eq!(
            script_value(s, "ATTRIBUTE_CONDITION").unwrap(),
            "assertion.team == 't1'"
        );
        assert_eq!(script_value("A=$(id)", "A"), None);
    }
}
