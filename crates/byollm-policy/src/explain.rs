//! The trust-policy explainer and linter (`byollm aws explain-trust`, DESIGN §7).
//!
//! Which subjects a trust policy admits is decided by running the evaluator on
//! representative web-identity requests — a member and an agent of the team
//! (with and without a `:run_id:` suffix), each agent or user the policy names,
//! a subject of another team, a team whose uid has ours as a prefix, an arbitrary
//! subject, and a token with the wrong audience — never by reading the patterns.
//! Only the *candidates* for named actors are taken from the policy's text; each
//! candidate is then decided by the evaluator.
//!
//! Findings add what evaluation alone cannot say: no `sub`/`aud` condition,
//! `StringEquals` with a wildcard (which only matches the literal `*`), conditions
//! on claims AWS does not turn into keys, a `Federated` principal that is not this
//! issuer's provider, missing `sts:TagSession`/`sts:SetSourceIdentity`, and more.

use serde::Serialize;

use crate::conditions::{BaseOperator, SetQualifier};
use crate::eval::{Context, Request, RequestPrincipal, StatementRef, evaluate_one};
use crate::generate::permissions::counted_size;
use crate::generate::{Actor, Issuer, STS_AUDIENCE, actor_subject, team_subject_prefix};
use crate::model::{Effect, Policy, PolicyKind, PrincipalElement, PrincipalType, Principals};

/// IAM's default quota for a role trust policy, in characters excluding whitespace.
pub const TRUST_POLICY_DEFAULT_LIMIT: usize = 2048;

const PROBE_USER: &str = "byollm-probe-user";
const PROBE_AGENT: &str = "byollm-probe-agent";
const PROBE_RUN: &str = "byollm-probe-run";
const PROBE_OTHER_TEAM: &str = "byollm-probe-other-team";

/// What the explainer needs to know about the team.
#[derive(Debug, Clone)]
pub struct ExplainOptions {
    /// The issuer the policy should trust.
    pub issuer: Issuer,
    /// The team uid.
    pub team_uid: String,
    /// The team's tokens carry session tags (needs `sts:TagSession`).
    pub session_tags: bool,
    /// The team's tokens carry a source identity (needs `sts:SetSourceIdentity`).
    pub source_identity: bool,
}

/// A class of subject the explainer probes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "class", content = "uid")]
pub enum SubjectClass {
    /// Any member of the team.
    TeamUsers,
    /// Any named agent of the team.
    TeamAgents,
    /// A user the policy names.
    NamedUser(String),
    /// An agent the policy names.
    NamedAgent(String),
    /// An agent whose uid has a named agent's uid as a prefix.
    NamedAgentPrefix(String),
    /// A member of another team.
    OtherTeam,
    /// A member of a team whose uid has this team's uid as a prefix.
    TeamUidPrefix,
    /// A subject that is no scoped principal at all.
    AnySubject,
    /// A member of this team presenting a token for another audience.
    WrongAudience,
}

/// The verdict for one class.
#[derive(Debug, Clone, Serialize)]
pub struct ProbeResult {
    /// The class.
    pub subject: SubjectClass,
    /// A description for people.
    pub label: String,
    /// The `sub` values tried.
    pub subjects_tried: Vec<String>,
    /// Whether the policy admits (at least one of) them.
    pub admitted: bool,
    /// The statements that admitted or refused explicitly.
    pub statements: Vec<StatementRef>,
}

/// How serious a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Worth knowing.
    Info,
    /// Probably not what was meant.
    Warning,
    /// Admits someone it should not, or can never work.
    Error,
}

/// One lint finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// How serious.
    pub severity: Severity,
    /// A stable code, e.g. `no_aud_condition`.
    pub code: &'static str,
    /// What is wrong and what to do.
    pub message: String,
    /// The statement concerned, when one is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub statement: Option<usize>,
}

/// The whole explanation.
#[derive(Debug, Clone, Serialize)]
pub struct Explanation {
    /// The issuer explained against.
    pub issuer: String,
    /// The team.
    pub team: String,
    /// One sentence: whom the policy admits.
    pub summary: String,
    /// Per class of subject.
    pub probes: Vec<ProbeResult>,
    /// Lint findings, most serious first.
    pub findings: Vec<Finding>,
}

impl Explanation {
    /// The verdict for a class, if probed.
    pub fn probe(&self, subject: &SubjectClass) -> Option<&ProbeResult> {
        self.probes.iter().find(|p| &p.subject == subject)
    }

    /// Whether some finding has this code.
    pub fn has_finding(&self, code: &str) -> bool {
        self.findings.iter().any(|f| f.code == code)
    }

    /// A report for people.
    pub fn to_text(&self) -> String {
        let mut s = format!(
            "Trust policy for issuer {} and team {}:\n  {}\n\nSubjects:\n",
            self.issuer, self.team, self.summary
        );
        for p in &self.probes {
            let verdict = if p.admitted { "ADMITTED" } else { "refused " };
            let by = if p.statements.is_empty() {
                String::new()
            } else {
                let refs: Vec<String> = p.statements.iter().map(describe_statement).collect();
                format!("  ({})", refs.join(", "))
            };
            s.push_str(&format!("  {verdict}  {}{by}\n", p.label));
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

fn describe_statement(r: &StatementRef) -> String {
    let effect = match r.effect {
        Effect::Allow => "Allow",
        Effect::Deny => "Deny",
    };
    match &r.sid {
        Some(sid) => format!("{effect} statement #{} \"{sid}\"", r.statement),
        None => format!("{effect} statement #{}", r.statement),
    }
}

/// Explains a parsed trust policy.
pub fn explain_trust(policy: &Policy, opts: &ExplainOptions) -> Explanation {
    let host = opts.issuer.host_path();
    let mut findings = Vec::new();
    let account = provider_account(policy, &opts.issuer, &mut findings);
    let principal = RequestPrincipal {
        kind: PrincipalType::Federated,
        id: format!(
            "arn:aws:iam::{}:oidc-provider/{host}",
            account.as_deref().unwrap_or("000000000000")
        ),
    };
    let role_arn = format!(
        "arn:aws:iam::{}:role/byollm-explain-probe",
        account.as_deref().unwrap_or("000000000000")
    );
    let team = opts.team_uid.as_str();
    let admits = |sub: &str, aud: &str| -> (bool, Vec<StatementRef>, bool, bool) {
        let mut ctx = Context::new();
        ctx.insert(&opts.issuer.key("aud"), aud);
        ctx.insert(&opts.issuer.key("sub"), sub);
        let mut req = Request {
            principal: Some(principal.clone()),
            action: "sts:AssumeRoleWithWebIdentity".to_owned(),
            resource: role_arn.clone(),
            context: ctx,
        };
        let assume = evaluate_one(policy, PolicyKind::Resource, &req);
        req.action = "sts:TagSession".to_owned();
        let tag_ok =
            !opts.session_tags || evaluate_one(policy, PolicyKind::Resource, &req).is_allowed();
        req.action = "sts:SetSourceIdentity".to_owned();
        let src_ok =
            !opts.source_identity || evaluate_one(policy, PolicyKind::Resource, &req).is_allowed();
        let allowed = assume.is_allowed();
        (
            allowed && tag_ok && src_ok,
            assume.statements,
            allowed && !tag_ok,
            allowed && !src_ok,
        )
    };
    let mut missing_tag = false;
    let mut missing_src = false;
    let mut probe =
        |subject: SubjectClass, label: String, subs: Vec<String>, aud: &str| -> ProbeResult {
            let mut admitted = false;
            let mut statements = Vec::new();
            for sub in &subs {
                let (ok, st, no_tag, no_src) = admits(sub, aud);
                missing_tag |= no_tag;
                missing_src |= no_src;
                if (ok && !admitted) || statements.is_empty() {
                    statements = st;
                }
                admitted |= ok;
            }
            ProbeResult {
                subject,
                label,
                subjects_tried: subs,
                admitted,
                statements,
            }
        };
    let with_runs = |base: String| vec![base.clone(), format!("{base}:run_id:{PROBE_RUN}")];
    let mut probes = vec![
        probe(
            SubjectClass::TeamUsers,
            format!("every member of team {team} (user:*)"),
            with_runs(actor_subject(team, Actor::User, PROBE_USER)),
            STS_AUDIENCE,
        ),
        probe(
            SubjectClass::TeamAgents,
            format!("every agent of team {team} (service_account:*)"),
            with_runs(actor_subject(team, Actor::Agent, PROBE_AGENT)),
            STS_AUDIENCE,
        ),
    ];
    let named = named_actors(policy, &opts.issuer, team);
    for (actor, uid) in &named {
        let (class, label) = match actor {
            Actor::User => (SubjectClass::NamedUser(uid.clone()), format!("user {uid}")),
            Actor::Agent => (
                SubjectClass::NamedAgent(uid.clone()),
                format!("agent {uid}"),
            ),
        };
        probes.push(probe(
            class,
            label,
            with_runs(actor_subject(team, *actor, uid)),
            STS_AUDIENCE,
        ));
        if *actor == Actor::Agent {
            probes.push(probe(
                SubjectClass::NamedAgentPrefix(uid.clone()),
                format!("an agent whose uid starts with {uid} (service_account:{uid}x)"),
                with_runs(actor_subject(team, Actor::Agent, &format!("{uid}x"))),
                STS_AUDIENCE,
            ));
        }
    }
    probes.push(probe(
        SubjectClass::OtherTeam,
        format!("members and agents of another team ({PROBE_OTHER_TEAM})"),
        vec![
            actor_subject(PROBE_OTHER_TEAM, Actor::User, PROBE_USER),
            actor_subject(PROBE_OTHER_TEAM, Actor::Agent, PROBE_AGENT),
        ],
        STS_AUDIENCE,
    ));
    probes.push(probe(
        SubjectClass::TeamUidPrefix,
        format!("a team whose uid starts with {team} ({team}x)"),
        vec![
            actor_subject(&format!("{team}x"), Actor::User, PROBE_USER),
            actor_subject(&format!("{team}x"), Actor::Agent, PROBE_AGENT),
        ],
        STS_AUDIENCE,
    ));
    probes.push(probe(
        SubjectClass::AnySubject,
        "any subject of the issuer (not a scoped principal)".to_owned(),
        vec!["byollm-probe-any-subject".to_owned()],
        STS_AUDIENCE,
    ));
    probes.push(probe(
        SubjectClass::WrongAudience,
        "a member of the team with a token for another audience".to_owned(),
        with_runs(actor_subject(team, Actor::User, PROBE_USER)),
        "byollm-probe-other-audience",
    ));
    lint(
        policy,
        opts,
        &probes,
        &named,
        missing_tag,
        missing_src,
        &mut findings,
    );
    findings.sort_by_key(|f| std::cmp::Reverse(f.severity));
    Explanation {
        issuer: opts.issuer.url().to_owned(),
        team: team.to_owned(),
        summary: summarize(&probes, team),
        probes,
        findings,
    }
}

fn is_admitted(probes: &[ProbeResult], class: &SubjectClass) -> bool {
    probes.iter().any(|p| &p.subject == class && p.admitted)
}

fn summarize(probes: &[ProbeResult], team: &str) -> String {
    let users = is_admitted(probes, &SubjectClass::TeamUsers);
    let agents = is_admitted(probes, &SubjectClass::TeamAgents);
    let outside = [
        SubjectClass::OtherTeam,
        SubjectClass::TeamUidPrefix,
        SubjectClass::AnySubject,
    ]
    .iter()
    .any(|c| is_admitted(probes, c));
    let mut s = match (users, agents) {
        (true, true) => format!("Admits every user and every agent of team {team}"),
        (true, false) => format!("Admits every user of team {team}"),
        (false, true) => format!("Admits every agent of team {team}"),
        (false, false) => {
            let named: Vec<String> = probes
                .iter()
                .filter(|p| p.admitted)
                .filter_map(|p| match &p.subject {
                    SubjectClass::NamedAgent(u) => Some(format!("agent {u}")),
                    SubjectClass::NamedUser(u) => Some(format!("user {u}")),
                    _ => None,
                })
                .collect();
            if named.is_empty() {
                format!("Admits no subject of team {team}")
            } else {
                format!("Admits exactly {} of team {team}", named.join(", "))
            }
        }
    };
    if outside {
        s.push_str(", and subjects outside the team");
    }
    s.push('.');
    s
}

/// The account of the policy's `Federated` principal for this issuer, reporting
/// principals that name another provider.
fn provider_account(
    policy: &Policy,
    issuer: &Issuer,
    findings: &mut Vec<Finding>,
) -> Option<String> {
    let suffix = format!(":oidc-provider/{}", issuer.host_path());
    let mut account = None;
    for (i, st) in policy.statements.iter().enumerate() {
        let Some(PrincipalElement::Principal(principals)) = &st.principal else {
            continue;
        };
        match principals {
            Principals::Any if st.effect == Effect::Allow => findings.push(Finding {
                severity: Severity::Warning,
                code: "principal_wildcard",
                message: "Principal \"*\" names no identity provider; name the issuer's provider as {\"Federated\": \"arn:aws:iam::<account>:oidc-provider/<issuer>\"}".to_owned(),
                statement: Some(i),
            }),
            Principals::Any => {}
            Principals::Typed(entries) => {
                for (kind, ids) in entries {
                    if *kind != PrincipalType::Federated {
                        continue;
                    }
                    for id in ids {
                        let acct = id
                            .strip_prefix("arn:aws:iam::")
                            .and_then(|rest| rest.strip_suffix(&suffix))
                            .filter(|a| a.len() == 12 && a.bytes().all(|b| b.is_ascii_digit()));
                        match acct {
                            Some(a) => {
                                account.get_or_insert_with(|| a.to_owned());
                            }
                            None => findings.push(Finding {
                                severity: Severity::Error,
                                code: "federated_principal_mismatch",
                                message: format!(
                                    "Federated principal `{id}` is not the IAM OIDC provider of issuer {} \
                                     (expected arn:aws:iam::<account>{suffix}); tokens from this issuer never match it",
                                    issuer.url()
                                ),
                                statement: Some(i),
                            }),
                        }
                    }
                }
            }
        }
    }
    account
}

/// Candidate actors named in `sub` conditions: `scoped_principal:<team>/<type>:<uid>`
/// values without wildcards in the uid. Each is then decided by the evaluator.
fn named_actors(policy: &Policy, issuer: &Issuer, team: &str) -> Vec<(Actor, String)> {
    let key = issuer.key("sub").to_lowercase();
    let prefix = team_subject_prefix(team);
    let mut out: Vec<(Actor, String)> = Vec::new();
    for st in &policy.statements {
        for cond in st.conditions.iter().filter(|c| c.key_lower() == key) {
            for value in &cond.values {
                let Some(rest) = value.strip_prefix(&prefix) else {
                    continue;
                };
                for actor in [Actor::User, Actor::Agent] {
                    let Some(uid) = rest
                        .strip_prefix(actor.subject_type())
                        .and_then(|r| r.strip_prefix(':'))
                    else {
                        continue;
                    };
                    let uid = uid.split(':').next().unwrap_or(uid);
                    if !uid.is_empty()
                        && !uid.contains(['*', '?', '$'])
                        && !out.iter().any(|(a, u)| *a == actor && u == uid)
                    {
                        out.push((actor, uid.to_owned()));
                    }
                }
            }
        }
    }
    out
}

fn lint(
    policy: &Policy,
    opts: &ExplainOptions,
    probes: &[ProbeResult],
    named: &[(Actor, String)],
    missing_tag: bool,
    missing_src: bool,
    findings: &mut Vec<Finding>,
) {
    let host = opts.issuer.host_path();
    let aud_key = opts.issuer.key("aud").to_lowercase();
    let sub_key = opts.issuer.key("sub").to_lowercase();
    let claim_prefix = format!("{}:", host.to_lowercase());
    let mut f = |severity, code, message: String, statement| {
        findings.push(Finding {
            severity,
            code,
            message,
            statement,
        });
    };
    for (i, st) in policy.statements.iter().enumerate() {
        if st.effect == Effect::Allow {
            if !st.conditions.iter().any(|c| c.key_lower() == sub_key) {
                f(
                    Severity::Warning,
                    "no_sub_condition",
                    format!(
                        "statement #{i} has no condition on {host}:sub, so it does not limit which subjects of the issuer may assume the role"
                    ),
                    Some(i),
                );
            }
            if !st.conditions.iter().any(|c| c.key_lower() == aud_key) {
                f(
                    Severity::Warning,
                    "no_aud_condition",
                    format!(
                        "statement #{i} has no condition on {host}:aud; add StringEquals {{\"{host}:aud\": \"{STS_AUDIENCE}\"}}"
                    ),
                    Some(i),
                );
            }
        }
        for c in &st.conditions {
            let base = c.operator.base;
            let equals = matches!(
                base,
                BaseOperator::StringEquals
                    | BaseOperator::StringEqualsIgnoreCase
                    | BaseOperator::StringNotEquals
                    | BaseOperator::StringNotEqualsIgnoreCase
            );
            if equals && c.values.iter().any(|v| v.contains(['*', '?'])) {
                f(
                    Severity::Warning,
                    "string_equals_with_wildcard",
                    format!(
                        "statement #{i}: {} on {} compares `*`/`?` literally, so the value matches no real subject; use StringLike for a pattern",
                        c.operator, c.key
                    ),
                    Some(i),
                );
            }
            if let Some(claim) = c.key_lower().strip_prefix(&claim_prefix)
                && !matches!(claim, "aud" | "sub" | "azp" | "amr")
            {
                f(
                    Severity::Warning,
                    "unsupported_claim_key",
                    format!(
                        "statement #{i}: AWS sets no condition key {} (only :aud, :sub, :azp and :amr of an OIDC provider), so this condition never holds{}",
                        c.key,
                        if base.is_negated() {
                            " (negated: always holds)"
                        } else {
                            ""
                        }
                    ),
                    Some(i),
                );
            }
            if st.effect == Effect::Allow
                && c.operator.qualifier == Some(SetQualifier::ForAllValues)
            {
                f(
                    Severity::Warning,
                    "for_all_values_in_allow",
                    format!(
                        "statement #{i}: {} also holds when {} is absent; AWS advises against ForAllValues with Allow",
                        c.operator, c.key
                    ),
                    Some(i),
                );
            }
        }
    }
    let team = &opts.team_uid;
    if is_admitted(probes, &SubjectClass::AnySubject) {
        f(Severity::Error, "admits_any_subject", "admits any subject of the issuer, whatever its team; condition sub on scoped_principal:<team>/…".to_owned(), None);
    }
    if is_admitted(probes, &SubjectClass::OtherTeam) {
        f(
            Severity::Error,
            "admits_other_team",
            format!("admits members and agents of teams other than {team}"),
            None,
        );
    }
    if is_admitted(probes, &SubjectClass::TeamUidPrefix) {
        f(
            Severity::Error,
            "admits_team_uid_prefix",
            format!(
                "admits a team whose uid merely starts with {team}; end the pattern with a slash: scoped_principal:{team}/…"
            ),
            None,
        );
    }
    if is_admitted(probes, &SubjectClass::WrongAudience) {
        f(
            Severity::Error,
            "admits_wrong_audience",
            format!("admits tokens minted for an audience other than {STS_AUDIENCE}"),
            None,
        );
    }
    for p in probes {
        if let SubjectClass::NamedAgentPrefix(uid) = &p.subject
            && p.admitted
            && !is_admitted(probes, &SubjectClass::TeamAgents)
        {
            f(
                Severity::Error,
                "admits_agent_uid_prefix",
                format!(
                    "admits agents whose uid merely starts with {uid}; match the exact subject"
                ),
                None,
            );
        }
    }
    let named_agents = named.iter().any(|(a, _)| *a == Actor::Agent);
    if named_agents && is_admitted(probes, &SubjectClass::TeamAgents) {
        f(
            Severity::Warning,
            "wildcard_admits_every_actor",
            "names particular agents, yet also admits every agent of the team through a wildcard; a named agent's own role should admit only that agent".to_owned(),
            None,
        );
    }
    if named.iter().any(|(a, _)| *a == Actor::User) && is_admitted(probes, &SubjectClass::TeamUsers)
    {
        f(
            Severity::Warning,
            "wildcard_admits_every_actor",
            "names particular users, yet also admits every member of the team through a wildcard"
                .to_owned(),
            None,
        );
    }
    if missing_tag {
        f(
            Severity::Error,
            "missing_tag_session",
            "the team's tokens carry session tags, but sts:TagSession is not allowed, so AssumeRoleWithWebIdentity fails; add it to Action".to_owned(),
            None,
        );
    }
    if missing_src {
        f(
            Severity::Error,
            "missing_set_source_identity",
            "the team's tokens carry a source identity, but sts:SetSourceIdentity is not allowed, so AssumeRoleWithWebIdentity fails; add it to Action".to_owned(),
            None,
        );
    }
    if !probes.iter().any(|p| {
        p.admitted
            && matches!(
                p.subject,
                SubjectClass::TeamUsers
                    | SubjectClass::TeamAgents
                    | SubjectClass::NamedAgent(_)
                    | SubjectClass::NamedUser(_)
            )
    }) {
        f(
            Severity::Warning,
            "admits_no_team_subject",
            format!("admits no member or agent of team {team}"),
            None,
        );
    }
    let size = counted_size(&policy.to_json_pretty());
    if size > TRUST_POLICY_DEFAULT_LIMIT {
        f(
            Severity::Warning,
            "trust_policy_size",
            format!(
                "about {size} characters without whitespace, over IAM's default trust-policy quota of {TRUST_POLICY_DEFAULT_LIMIT}"
            ),
            None,
        );
    }
}
