//! Which of a team's members and agents a set of federated identity
//! credentials admits, decided as Entra decides (azure-facts §3.1, §3.4): an
//! FIC admits a token when its issuer, subject and its one audience each equal
//! the token's, exactly and case-sensitively, with no wildcards. The token's
//! subject is the team's granularity's ([`super::subject`]).
//!
//! For each actor refused, the reason names the nearest FIC and what Entra
//! would answer: a subject that differs only in case, a wildcard (Entra takes
//! it literally), an FIC written for another granularity, or the right subject
//! with the wrong issuer (`AADSTS700211`) or audience (`AADSTS700212`).

use serde::{Deserialize, Serialize};

use super::{AZURE_AUDIENCE, Granularity, MAX_FICS_PER_IDENTITY, subject};
use crate::explain::{Finding, Severity};
use crate::generate::Actor;

/// One FIC as `az identity federated-credential list` prints it (other
/// fields ignored).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FicRecord {
    /// Its name.
    #[serde(default)]
    pub name: String,
    /// The issuer it trusts (`None`: not given, not checked).
    #[serde(default)]
    pub issuer: Option<String>,
    /// The exact subject.
    pub subject: String,
    /// Its audiences (Entra requires exactly one; empty: not given).
    #[serde(default)]
    pub audiences: Vec<String>,
}

/// The verdict for one actor.
#[derive(Debug, Clone, Serialize)]
pub struct ActorVerdict {
    /// `user UID` or `agent UID`, for people.
    pub label: String,
    /// The subject the actor's Azure tokens carry.
    pub subject: String,
    /// Whether an FIC admits it.
    pub admitted: bool,
    /// The FIC that admits it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fic: Option<String>,
    /// Why not, when refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The whole explanation.
#[derive(Debug, Clone, Serialize)]
pub struct FicExplanation {
    /// The team.
    pub team: String,
    /// The team's subject granularity.
    pub granularity: &'static str,
    /// One sentence: whom the FICs admit.
    pub summary: String,
    /// Per actor.
    pub actors: Vec<ActorVerdict>,
    /// Findings, most serious first.
    pub findings: Vec<Finding>,
}

impl FicExplanation {
    /// Whether some finding has this code.
    pub fn has_finding(&self, code: &str) -> bool {
        self.findings.iter().any(|f| f.code == code)
    }

    /// A report for people.
    pub fn to_text(&self) -> String {
        let mut s = format!(
            "FICs for team {} (granularity {}):\n  {}\n\nMembers and agents:\n",
            self.team, self.granularity, self.summary
        );
        for v in &self.actors {
            let verdict = if v.admitted { "ADMITTED" } else { "refused " };
            s.push_str(&format!("  {verdict}  {} ({})", v.label, v.subject));
            if let Some(f) = &v.fic {
                s.push_str(&format!(" by FIC {f}"));
            }
            s.push('\n');
            if let Some(r) = &v.reason {
                s.push_str(&format!("            {r}\n"));
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

fn finding(severity: Severity, code: &'static str, message: String) -> Finding {
    Finding {
        severity,
        code,
        message,
        statement: None,
    }
}

fn fic_label(f: &FicRecord) -> String {
    match f.name.is_empty() {
        true => format!("with subject {}", f.subject),
        false => f.name.clone(),
    }
}

/// Whether the FIC's audiences are Entra's one audience (unchecked when
/// not given).
fn audience_ok(f: &FicRecord) -> bool {
    f.audiences.is_empty() || f.audiences == [AZURE_AUDIENCE]
}

/// Whether the FIC's issuer is ours, exactly (unchecked when either is not
/// given).
fn issuer_ok(f: &FicRecord, issuer: Option<&str>) -> bool {
    match (&f.issuer, issuer) {
        (Some(a), Some(b)) => a == b,
        _ => true,
    }
}

/// Why no FIC admits `want`: the nearest miss.
fn reason(team: &str, want: &str, fics: &[FicRecord], issuer: Option<&str>) -> String {
    if let Some(f) = fics.iter().find(|f| f.subject == want) {
        if !issuer_ok(f, issuer) {
            return format!(
                "FIC {} has the subject but issuer {:?}, not {:?} (Entra: AADSTS700211); \
                 the issuer must equal the token's iss exactly, no trailing slash or space",
                fic_label(f),
                f.issuer.as_deref().unwrap_or_default(),
                issuer.unwrap_or_default()
            );
        }
        return format!(
            "FIC {} has the subject but audiences {:?}, not [\"{AZURE_AUDIENCE}\"] (Entra: AADSTS700212)",
            fic_label(f),
            f.audiences
        );
    }
    if let Some(f) = fics.iter().find(|f| f.subject.eq_ignore_ascii_case(want)) {
        return format!(
            "FIC {} has subject {} — it differs only in case, and Entra compares subjects \
             case-sensitively (AADSTS700213)",
            fic_label(f),
            f.subject
        );
    }
    if let Some(f) = fics.iter().find(|f| f.subject.contains('*')) {
        return format!(
            "FIC {} has subject {}: Entra has no wildcards for this issuer and matches it \
             literally; write one FIC per subject",
            fic_label(f),
            f.subject
        );
    }
    let prefix = format!("scoped_principal:{team}");
    if let Some(f) = fics
        .iter()
        .find(|f| f.subject == prefix || f.subject.starts_with(&format!("{prefix}/")))
    {
        let written_for = match f.subject.matches(['/', ':']).count() {
            1 => "granularity team",
            2 if !f.subject.contains(":user:") && !f.subject.contains(":service_account:") => {
                "granularity actor_type"
            }
            _ => "another member or agent (granularity actor)",
        };
        return format!(
            "no FIC has subject {want} (Entra: AADSTS700213); FIC {} ({}) is for {written_for}: \
             change hosts.azure_foundry.subject_granularity or the FICs",
            fic_label(f),
            f.subject
        );
    }
    format!("no FIC has subject {want} (Entra: AADSTS70021 or AADSTS700213)")
}

/// Explains `fics` for `team` at `granularity`: which of `actors` they admit.
/// `issuer`, when given, must equal each FIC's issuer exactly. No actors:
/// a sample member and agent.
pub fn explain_fics(
    team: &str,
    granularity: Granularity,
    issuer: Option<&str>,
    fics: &[FicRecord],
    actors: &[(Actor, String)],
) -> FicExplanation {
    let samples: Vec<(Actor, String, String)> = match actors.is_empty() {
        true => vec![
            (
                Actor::User,
                "member-uid".into(),
                "a member of the team".into(),
            ),
            (
                Actor::Agent,
                "agent-uid".into(),
                "an agent of the team".into(),
            ),
        ],
        false => actors
            .iter()
            .map(|(a, u)| (*a, u.clone(), format!("{} {u}", a.cli_name())))
            .collect(),
    };
    let mut verdicts = Vec::new();
    for (actor, uid, label) in samples {
        let want = subject(team, granularity, actor, &uid);
        let hit = fics
            .iter()
            .find(|f| f.subject == want && issuer_ok(f, issuer) && audience_ok(f));
        verdicts.push(ActorVerdict {
            label,
            admitted: hit.is_some(),
            fic: hit.map(fic_label),
            reason: hit.is_none().then(|| reason(team, &want, fics, issuer)),
            subject: want,
        });
    }
    let mut findings = Vec::new();
    if fics.len() > MAX_FICS_PER_IDENTITY {
        findings.push(finding(
            Severity::Error,
            "too_many_fics",
            format!(
                "{} FICs: Entra holds at most {MAX_FICS_PER_IDENTITY} per identity; spread agents \
                 over more identities (inference_providers.azure.client_id)",
                fics.len()
            ),
        ));
    }
    for f in fics {
        if f.subject.contains('*') {
            findings.push(finding(
                Severity::Warning,
                "wildcard_subject",
                format!(
                    "FIC {}: `*` is matched literally (no wildcards for this issuer)",
                    fic_label(f)
                ),
            ));
        }
        if f.issuer.as_deref().is_some_and(|i| i.trim() != i) {
            findings.push(finding(
                Severity::Error,
                "issuer_whitespace",
                format!(
                    "FIC {}: the issuer has leading or trailing whitespace, which blocks every exchange",
                    fic_label(f)
                ),
            ));
        }
        if !audience_ok(f) {
            findings.push(finding(
                Severity::Error,
                "bad_audience",
                format!(
                    "FIC {}: audiences {:?}; a managed identity's FIC must have exactly [\"{AZURE_AUDIENCE}\"]",
                    fic_label(f),
                    f.audiences
                ),
            ));
        }
        if !issuer_ok(f, issuer) {
            findings.push(finding(
                Severity::Warning,
                "other_issuer",
                format!(
                    "FIC {}: issuer {:?} is not byollm's {:?}",
                    fic_label(f),
                    f.issuer.as_deref().unwrap_or_default(),
                    issuer.unwrap_or_default()
                ),
            ));
        }
        let ours = f.subject == format!("scoped_principal:{team}")
            || f.subject.starts_with(&format!("scoped_principal:{team}/"));
        if !ours {
            findings.push(finding(
                Severity::Info,
                "other_subject",
                format!(
                    "FIC {}: subject {} is not one of team {team}'s",
                    fic_label(f),
                    f.subject
                ),
            ));
        }
    }
    if verdicts.iter().all(|v| !v.admitted) {
        findings.push(finding(
            Severity::Warning,
            "admits_nobody",
            "the FICs admit none of the team's members or agents".into(),
        ));
    }
    findings.sort_by_key(|f| std::cmp::Reverse(f.severity));
    let admitted = verdicts.iter().filter(|v| v.admitted).count();
    let summary = match (admitted, verdicts.len()) {
        (0, _) => "admit none of them".to_owned(),
        (a, n) if a == n => format!("admit all {n}"),
        (a, n) => format!("admit {a} of {n}"),
    };
    FicExplanation {
        team: team.to_owned(),
        granularity: granularity.as_str(),
        summary,
        actors: verdicts,
        findings,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ISS: &str = "https://byollm.example.com";

    fn fic(name: &str, subject: &str) -> FicRecord {
        FicRecord {
            name: name.into(),
            issuer: Some(ISS.into()),
            subject: subject.into(),
            audiences: vec![AZURE_AUDIENCE.into()],
        }
    }

    fn actors() -> Vec<(Actor, String)> {
        vec![(Actor::User, "u1".into()), (Actor::Agent, "a1".into())]
    }

    #[test]
    fn each_granularity_admits_by_exact_subject() {
        let e = explain_fics(
            "t1",
            Granularity::Team,
            Some(ISS),
            &[fic("f", "scoped_principal:t1")],
            &actors(),
        );
        assert!(e.actors.iter().all(|v| v.admitted), "{}", e.to_text());
        let e = explain_fics(
            "t1",
            Granularity::ActorType,
            Some(ISS),
            &[fic("f", "scoped_principal:t1/service_account")],
            &actors(),
        );
        assert!(!e.actors[0].admitted && e.actors[1].admitted);
        let e = explain_fics(
            "t1",
            Granularity::Actor,
            Some(ISS),
            &[fic("f", "scoped_principal:t1/user:u1")],
            &actors(),
        );
        assert!(e.actors[0].admitted && !e.actors[1].admitted);
        assert!(
            e.actors[1]
                .reason
                .as_deref()
                .unwrap()
                .contains("another member or agent"),
            "{}",
            e.to_text()
        );
    }

    #[test]
    fn near_misses_name_their_cause() {
        let at = |fics: &[FicRecord]| {
            explain_fics("t1", Granularity::Team, Some(ISS), fics, &[])
                .actors
                .remove(0)
                .reason
                .unwrap()
        };
        assert!(at(&[fic("f", "scoped_principal:T1")]).contains("case"));
        assert!(at(&[fic("f", "scoped_principal:t1/*")]).contains("wildcards"));
        assert!(at(&[fic("f", "scoped_principal:t1/user")]).contains("granularity actor_type"));
        let mut f = fic("f", "scoped_principal:t1");
        f.issuer = Some(format!("{ISS}/"));
        assert!(at(std::slice::from_ref(&f)).contains("AADSTS700211"));
        let mut f = fic("f", "scoped_principal:t1");
        f.audiences = vec!["api://other".into()];
        assert!(at(std::slice::from_ref(&f)).contains("AADSTS700212"));
        let e = explain_fics("t1", Granularity::Team, Some(ISS), &[f], &[]);
        assert!(e.has_finding("bad_audience") && e.has_finding("admits_nobody"));
        let many: Vec<FicRecord> = (0..21)
            .map(|i| fic(&format!("f{i}"), &format!("scoped_principal:t1/user:u{i}")))
            .collect();
        let e = explain_fics("t1", Granularity::Actor, Some(ISS), &many, &[]);
        assert!(e.has_finding("too_many_fics"));
    }
}
