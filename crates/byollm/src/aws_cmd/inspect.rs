//! `explain-trust` and `simulate`: read a policy file and run the evaluator.

use std::io::Read as _;

use anyhow::{Context as _, bail};
use byollm_policy::explain::{ExplainOptions, explain_trust as explain};
use byollm_policy::generate::Issuer;
use byollm_policy::parse::{DEFAULT_MAX_BYTES, ParseOptions, parse};
use byollm_policy::{Context, Effect, Policy, PolicyKind, Request, RequestPrincipal, evaluate_one};
use serde_json::json;

use super::{ExplainArgs, SimulateArgs};

/// Reads a policy file (or stdin for `-`), refusing anything over the parser's
/// limit before reading it all.
fn read_policy(path: &str, kind: PolicyKind) -> anyhow::Result<Policy> {
    let mut bytes = Vec::new();
    let limit = (DEFAULT_MAX_BYTES + 1) as u64;
    if path == "-" {
        std::io::stdin()
            .lock()
            .take(limit)
            .read_to_end(&mut bytes)
            .context("reading stdin")?;
    } else {
        std::fs::File::open(path)
            .and_then(|f| f.take(limit).read_to_end(&mut bytes))
            .with_context(|| format!("reading {path}"))?;
    }
    parse(&bytes, ParseOptions::new(kind)).with_context(|| format!("invalid policy {path}"))
}

/// `byollm aws explain-trust`.
pub(super) fn explain_trust(args: &ExplainArgs) -> anyhow::Result<String> {
    let issuer = Issuer::parse(&args.issuer)?;
    byollm_policy::generate::validate_uid("team", &args.team)?;
    let policy = read_policy(&args.file, PolicyKind::Resource)?;
    let explanation = explain(
        &policy,
        &ExplainOptions {
            issuer,
            team_uid: args.team.clone(),
            session_tags: args.session_tags,
            source_identity: args.source_identity,
        },
    );
    if args.json {
        Ok(serde_json::to_string_pretty(&explanation)?)
    } else {
        Ok(explanation.to_text())
    }
}

/// `byollm aws simulate`.
pub(super) fn simulate(args: &SimulateArgs) -> anyhow::Result<String> {
    let kind = if args.trust {
        PolicyKind::Resource
    } else {
        PolicyKind::Identity
    };
    let policy = read_policy(&args.policy, kind)?;
    let mut context = Context::new();
    for item in &args.context {
        let Some((key, value)) = item.split_once('=') else {
            bail!("--context {item}: expected KEY=VALUE");
        };
        if key.is_empty() {
            bail!("--context {item}: empty key");
        }
        context.insert(key, value);
    }
    let request = Request {
        principal: args.principal.as_deref().map(RequestPrincipal::infer),
        action: args.action.clone(),
        resource: args.resource.clone(),
        context,
    };
    let decision = evaluate_one(&policy, kind, &request);
    let statements: Vec<serde_json::Value> = decision
        .statements
        .iter()
        .map(|r| {
            json!({
                "index": r.statement,
                "sid": r.sid,
                "effect": r.effect,
                "statement": policy.statements.get(r.statement),
            })
        })
        .collect();
    if args.json {
        let not_matched: Vec<serde_json::Value> = decision
            .not_matched
            .iter()
            .map(|(r, why)| json!({"index": r.statement, "sid": r.sid, "effect": r.effect, "reason": why}))
            .collect();
        return Ok(serde_json::to_string_pretty(&json!({
            "decision": decision.decision,
            "statements": statements,
            "not_matched": not_matched,
        }))?);
    }
    let mut out = format!("{}\n", decision.decision.as_str());
    for r in &decision.statements {
        out.push_str(&format!(
            "  decided by {}\n",
            describe(r.statement, r.sid.as_deref(), r.effect)
        ));
    }
    for (r, why) in &decision.not_matched {
        let reason = match why {
            byollm_policy::eval::Mismatch::Principal => "principal does not match".to_owned(),
            byollm_policy::eval::Mismatch::Action => "action does not match".to_owned(),
            byollm_policy::eval::Mismatch::Resource => "resource does not match".to_owned(),
            byollm_policy::eval::Mismatch::Condition { operator, key } => {
                format!("condition {operator} on {key} is false")
            }
        };
        out.push_str(&format!(
            "  not matched: {}: {reason}\n",
            describe(r.statement, r.sid.as_deref(), r.effect)
        ));
    }
    Ok(out)
}

fn describe(index: usize, sid: Option<&str>, effect: Effect) -> String {
    let effect = match effect {
        Effect::Allow => "Allow",
        Effect::Deny => "Deny",
    };
    match sid {
        Some(sid) => format!("{effect} statement #{index} \"{sid}\""),
        None => format!("{effect} statement #{index}"),
    }
}
