//! Which subjects a workload identity provider admits: its attribute mapping
//! and condition evaluated with [`condition`](super::condition) — the CEL the
//! emulator's STS runs — on the claims byollm mints for sample subjects (a
//! member, an agent, an agent's run, the actors named, and another team's
//! member and agent), plus findings.
//!
//! Invariant: a provider with no condition, or one that admits another team's
//! token, is an `error` finding (`no_condition`, `admits_other_teams`): every
//! customer trusts the same multi-tenant issuer.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Map, Value, json};

use super::condition::{admits, map};
use crate::explain::{Finding, Severity};
use crate::generate::Actor;

/// `google.subject` may not exceed this many bytes (gcp-facts §1.2).
pub const SUBJECT_MAX_BYTES: usize = 127;

/// The team whose tokens stand for "another team".
pub const OTHER_TEAM: &str = "another-team";

/// The verdict for one sample subject.
#[derive(Debug, Clone, Serialize)]
pub struct SubjectVerdict {
    /// A description for people.
    pub label: String,
    /// The `sub` tried.
    pub subject: String,
    /// Whether the token belongs to the team explained.
    pub own_team: bool,
    /// Whether the provider admits it.
    pub admitted: bool,
    /// Why the mapping or condition failed to evaluate, when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The whole explanation.
#[derive(Debug, Clone, Serialize)]
pub struct ConditionExplanation {
    /// The team.
    pub team: String,
    /// The condition explained (`None`: the provider has none).
    pub condition: Option<String>,
    /// One sentence: whom the provider admits.
    pub summary: String,
    /// Per sample subject.
    pub subjects: Vec<SubjectVerdict>,
    /// Findings, most serious first.
    pub findings: Vec<Finding>,
}

impl ConditionExplanation {
    /// Whether some finding has this code.
    pub fn has_finding(&self, code: &str) -> bool {
        self.findings.iter().any(|f| f.code == code)
    }

    /// Whether some finding is an error (dangerous or unusable).
    pub fn dangerous(&self) -> bool {
        self.findings.iter().any(|f| f.severity == Severity::Error)
    }

    /// A report for people.
    pub fn to_text(&self) -> String {
        let mut s = format!(
            "Attribute condition for team {}: {}\n  {}\n\nSubjects:\n",
            self.team,
            self.condition.as_deref().unwrap_or("(none)"),
            self.summary
        );
        for v in &self.subjects {
            let verdict = if v.admitted { "ADMITTED" } else { "refused " };
            s.push_str(&format!("  {verdict}  {} ({})\n", v.label, v.subject));
            if let Some(e) = &v.error {
                s.push_str(&format!("            error: {e}\n"));
            }
        }
        if self.findings.is_empty() {
            s.push_str("\nNo findings.\n");
        } else {
            s.push_str("\nFindings:\n");
            for f in &self.findings {
                let sev = match f.severity {
                    Severity::Error => "error",
                    Severity::Warning => "warning",
                    Severity::Info => "info",
                };
                s.push_str(&format!("  {sev}[{}]: {}\n", f.code, f.message));
            }
        }
        s
    }
}

/// The claims byollm mints for one actor (`byollm_core::identity::jwt::Claims`).
pub fn sample_claims(team: &str, actor: Actor, uid: &str, run: Option<&str>) -> Map<String, Value> {
    let mut sub = format!("scoped_principal:{team}/{}:{uid}", actor.subject_type());
    if let Some(r) = run {
        sub.push_str(&format!(":run_id:{r}"));
    }
    let mut v = json!({
        "iss": "https://issuer", "sub": sub, "aud": "//iam.googleapis.com/provider",
        "team_uid": team, "team": team, "actor_type": actor.subject_type(),
        "principal_uid": uid,
    });
    if let (Some(r), Some(o)) = (run, v.as_object_mut()) {
        o.insert("run_id".into(), Value::String(r.to_owned()));
    }
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

fn finding(severity: Severity, code: &'static str, message: String) -> Finding {
    Finding {
        severity,
        code,
        message,
        statement: None,
    }
}

/// Explains `condition` under `mapping` for `team`; `named` adds exact actors
/// to probe (e.g. the agents the condition should admit).
pub fn explain_condition(
    mapping: &BTreeMap<String, String>,
    condition: Option<&str>,
    team: &str,
    named: &[(Actor, String)],
) -> ConditionExplanation {
    let mut samples: Vec<(String, Map<String, Value>, bool)> = vec![
        (
            "a member of the team".into(),
            sample_claims(team, Actor::User, "member-uid", None),
            true,
        ),
        (
            "an agent of the team".into(),
            sample_claims(team, Actor::Agent, "agent-uid", None),
            true,
        ),
        (
            "a run of an agent of the team".into(),
            sample_claims(team, Actor::Agent, "agent-uid", Some("run-uid")),
            true,
        ),
    ];
    for (actor, uid) in named {
        samples.push((
            format!("{} {uid}", actor.cli_name()),
            sample_claims(team, *actor, uid, None),
            true,
        ));
    }
    for actor in [Actor::User, Actor::Agent] {
        let uid = named
            .iter()
            .find(|(a, _)| *a == actor)
            .map_or("member-uid", |(_, u)| u.as_str());
        samples.push((
            match actor {
                Actor::User => "a member of another team".to_owned(),
                Actor::Agent => "an agent of another team".to_owned(),
            },
            sample_claims(OTHER_TEAM, actor, uid, None),
            false,
        ));
    }
    let mut findings = Vec::new();
    if !mapping.contains_key("google.subject") {
        findings.push(finding(
            Severity::Error,
            "no_subject_mapping",
            "the mapping has no google.subject: Google refuses the provider; map google.subject=assertion.sub".into(),
        ));
    }
    if mapping.get("attribute.team").map(String::as_str) != Some("assertion.team") {
        findings.push(finding(
            Severity::Warning,
            "no_team_attribute",
            "the mapping does not set attribute.team=assertion.team, which byollm's IAM bindings (principalSet://…/attribute.team/TEAM) rely on".into(),
        ));
    }
    let mut subjects = Vec::new();
    for (label, claims, own_team) in samples {
        let subject = claims
            .get("sub")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let (admitted, error) = match map(mapping, &claims) {
            Err(e) => (false, Some(format!("mapping: {e}"))),
            Ok(m) => match (condition, m.subject.as_ref()) {
                (_, Some(s)) if s.len() > SUBJECT_MAX_BYTES => (
                    false,
                    Some(format!(
                        "google.subject is {} bytes, over Google's {SUBJECT_MAX_BYTES}",
                        s.len()
                    )),
                ),
                (None, _) => (true, None),
                (Some(c), _) => match admits(c, &claims, &m) {
                    Ok(b) => (b, None),
                    Err(e) => (false, Some(format!("condition: {e}"))),
                },
            },
        };
        subjects.push(SubjectVerdict {
            label,
            subject,
            own_team,
            admitted,
            error,
        });
    }
    if condition.is_none() {
        findings.push(finding(
            Severity::Error,
            "no_condition",
            format!(
                "the provider has no attribute condition, so every token of the issuer is accepted, any byollm team's; set --attribute-condition=\"assertion.team == '{team}'\" (byollm gcp setup-script writes one)"
            ),
        ));
    } else if subjects.iter().any(|v| !v.own_team && v.admitted) {
        findings.push(finding(
            Severity::Error,
            "admits_other_teams",
            format!(
                "the condition admits tokens of other teams; pin it to the team with assertion.team == '{team}'"
            ),
        ));
    }
    if let Some(e) = subjects.iter().find_map(|v| v.error.clone()) {
        findings.push(finding(
            Severity::Error,
            "evaluation_error",
            format!("Google refuses a token whose mapping or condition fails to evaluate: {e}"),
        ));
    }
    if subjects.iter().all(|v| !v.admitted) {
        findings.push(finding(
            Severity::Warning,
            "admits_nobody",
            "the condition admits none of the team's members or agents".into(),
        ));
    }
    findings.sort_by_key(|f| std::cmp::Reverse(f.severity));
    let own: Vec<&str> = subjects
        .iter()
        .filter(|v| v.own_team && v.admitted)
        .map(|v| v.label.as_str())
        .collect();
    let summary = match (condition, own.is_empty()) {
        (None, _) => "admits every token of the issuer: every team's members and agents".to_owned(),
        (_, true) => "admits none of the team's sample subjects".to_owned(),
        _ if subjects.iter().any(|v| !v.own_team && v.admitted) => {
            format!("admits {} — and other teams", own.join(", "))
        }
        _ => format!("admits {} and no other team", own.join(", ")),
    };
    ConditionExplanation {
        team: team.to_owned(),
        condition: condition.map(str::to_owned),
        summary,
        subjects,
        findings,
    }
}

#[cfg(test)]
mod tests {
    use super::super::{attribute_condition, attribute_mapping};
    use super::*;

    #[test]
    fn generated_conditions_admit_the_scope_and_no_other_team() {
        let m = attribute_mapping();
        let team = attribute_condition("t1", &"team".parse().unwrap());
        let e = explain_condition(&m, Some(&team), "t1", &[]);
        assert!(!e.dangerous(), "{}", e.to_text());
        assert!(e.subjects.iter().filter(|v| v.own_team).all(|v| v.admitted));

        let agents = attribute_condition("t1", &"agent:a1".parse().unwrap());
        let e = explain_condition(&m, Some(&agents), "t1", &[(Actor::Agent, "a1".into())]);
        assert!(!e.dangerous(), "{}", e.to_text());
        let by = |label: &str| {
            e.subjects
                .iter()
                .find(|v| v.label == label)
                .unwrap()
                .admitted
        };
        assert!(by("agent a1"));
        assert!(!by("a member of the team"));
        assert!(!by("an agent of the team"));
        assert!(!by("an agent of another team"));
    }

    #[test]
    fn missing_or_loose_conditions_are_dangerous() {
        let m = attribute_mapping();
        let e = explain_condition(&m, None, "t1", &[]);
        assert!(e.has_finding("no_condition") && e.dangerous());
        let e = explain_condition(&m, Some("assertion.actor_type == 'user'"), "t1", &[]);
        assert!(e.has_finding("admits_other_teams"), "{}", e.to_text());
        let e = explain_condition(
            &m,
            Some("assertion.sub.startsWith('scoped_principal:')"),
            "t1",
            &[],
        );
        assert!(e.has_finding("admits_other_teams"));
        let e = explain_condition(&m, Some("assertion.nope == 'x'"), "t1", &[]);
        assert!(e.has_finding("evaluation_error"));
        assert!(e.has_finding("admits_nobody"));
    }
}
