//! Why STS refused: the role's trust policy decided again by `byollm-policy`
//! with the token's claims, naming the statement and condition that refused
//! it (AWS only says `Not authorized to perform sts:AssumeRoleWithWebIdentity`).

use byollm_policy::eval::Mismatch;
use byollm_policy::{
    Context, DecisionKind, Effect, Policy, PolicyKind, Request, RequestPrincipal, evaluate_one,
};
use serde_json::Value;

use super::iam::{ProviderInfo, RoleInfo, role_name};
use super::walk::fail;
use super::{Cause, Diagnosis, StepName};

/// The assumption to decide.
#[derive(Debug, Clone)]
pub(super) struct TrustQuery {
    pub issuer: String,
    pub sub: String,
    pub aud: String,
    pub tags: bool,
    pub source_identity: bool,
    pub role_arn: String,
    pub team_uid: String,
    pub agent: Option<String>,
}

impl TrustQuery {
    fn scope_hint(&self) -> String {
        let role = role_name(&self.role_arn).unwrap_or("ROLE");
        let account = self.role_arn.split(':').nth(4).unwrap_or("ACCOUNT");
        let flags = format!(
            "--issuer {} --team {} --account {account}{}{}",
            self.issuer,
            self.team_uid,
            if self.tags { " --session-tags" } else { "" },
            if self.source_identity {
                " --source-identity"
            } else {
                ""
            },
        );
        let edit = format!(
            "aws iam get-role --role-name {role} --query Role.AssumeRolePolicyDocument > trust.json; \
             edit trust.json; aws iam update-assume-role-policy --role-name {role} --policy-document \
             file://trust.json"
        );
        match &self.agent {
            // The role may be another agent's own role: never suggest narrowing it
            // to this agent, which would lock the other one out.
            Some(a) => {
                let short: String = a.chars().take(12).collect();
                let new_role = format!("byollm-agent-{short}");
                format!(
                    "give agent {a} its own role (byollm aws setup-script {flags} --scope agent:{a} \
                     --role-name {new_role}, then byollm agents update {a} --aws-role-arn \
                     arn:aws:iam::{account}:role/{new_role}); or clear its role override so it uses \
                     the team's role (byollm agents update {a} --aws-role-arn null); or make {role} \
                     admit it as well: add \"{}\" to the values of its trust policy's sub condition \
                     ({edit})",
                    self.sub
                )
            }
            None => format!(
                "byollm aws trust-policy {flags} --scope team > trust.json (or users); aws iam \
                 update-assume-role-policy --role-name {role} --policy-document file://trust.json \
                 (byollm aws explain-trust trust.json shows whom it admits)"
            ),
        }
    }

    /// The fix for an `aud` condition that refuses the audience byollm mints for STS.
    fn audience_fix(&self) -> String {
        let role = role_name(&self.role_arn).unwrap_or("ROLE");
        let host = self
            .issuer
            .trim_start_matches("https://")
            .trim_end_matches('/');
        format!(
            "byollm's tokens for STS carry aud \"{aud}\": make the trust policy's condition \
             StringEquals {{\"{host}:aud\": \"{aud}\"}} (aws iam get-role --role-name {role} --query \
             Role.AssumeRolePolicyDocument > trust.json; edit the aud condition; aws iam \
             update-assume-role-policy --role-name {role} --policy-document file://trust.json), and \
             keep \"{aud}\" in the OIDC provider's client ID list",
            aud = self.aud
        )
    }
}

/// `Some(diagnosis)` when the trust policy refuses (or cannot be read), `None`
/// when the policy engine admits the request.
pub(super) fn analyse_trust(
    q: &TrustQuery,
    role: Option<Result<Option<RoleInfo>, String>>,
    providers: Option<Result<Vec<ProviderInfo>, String>>,
    mut evidence: Vec<String>,
) -> Option<Diagnosis> {
    let s = StepName::Sts;
    let role = match role {
        None => {
            evidence.push(format!("token sub = {}, aud = {}", q.sub, q.aud));
            let mut causes = vec![
                format!("the trust policy's sub condition does not admit {}", q.sub),
                format!("its aud condition does not admit {}", q.aud),
                "the role does not exist or names another provider".to_owned(),
            ];
            if q.tags {
                causes.push(
                    "the token carries session tags and the policy lacks sts:TagSession".into(),
                );
            }
            if q.source_identity {
                causes.push(
                    "the token carries a source identity and the policy lacks sts:SetSourceIdentity"
                        .into(),
                );
            }
            return Some(fail(
                s,
                Cause::TrustPolicyRefused,
                format!(
                    "the role's trust policy refused the token; give the doctor AWS credentials \
                     that may read IAM to learn which condition. Possible causes: {}",
                    causes.join("; ")
                ),
                evidence,
                q.scope_hint(),
            ));
        }
        Some(Err(e)) => {
            evidence.push(format!("could not read the role from IAM: {e}"));
            return Some(fail(
                s,
                Cause::TrustPolicyRefused,
                "the role's trust policy refused the token (IAM could not be read to say why)",
                evidence,
                q.scope_hint(),
            ));
        }
        Some(Ok(None)) => {
            return Some(fail(
                s,
                Cause::RoleMissing,
                format!("the role {} does not exist", q.role_arn),
                evidence,
                "create it (byollm aws setup-script) or correct the role ARN in the team's \
                 settings or the agent's override",
            ));
        }
        Some(Ok(Some(role))) => role,
    };
    let policy = match Policy::parse(&role.trust_policy, PolicyKind::Resource) {
        Ok(p) => p,
        Err(e) => {
            evidence.push(format!("trust policy: {e}"));
            return Some(fail(
                s,
                Cause::TrustPolicyRefused,
                "the role's trust policy cannot be parsed",
                evidence,
                q.scope_hint(),
            ));
        }
    };
    let raw: Value = serde_json::from_str(&role.trust_policy).unwrap_or(Value::Null);
    let host = q.issuer.trim_start_matches("https://").to_owned();
    let account = q
        .role_arn
        .split(':')
        .nth(4)
        .unwrap_or("000000000000")
        .to_owned();
    let provider_arn = match &providers {
        Some(Ok(ps)) => ps
            .iter()
            .find(|p| p.url == host)
            .map(|p| p.arn.clone())
            .unwrap_or_else(|| format!("arn:aws:iam::{account}:oidc-provider/{host}")),
        _ => format!("arn:aws:iam::{account}:oidc-provider/{host}"),
    };
    let mut ctx = Context::new();
    ctx.insert(&format!("{host}:aud"), q.aud.clone());
    ctx.insert(&format!("{host}:sub"), q.sub.clone());
    ctx.insert("aws:FederatedProvider", provider_arn.clone());
    let decide = |action: &str| {
        evaluate_one(
            &policy,
            PolicyKind::Resource,
            &Request {
                principal: Some(RequestPrincipal::infer(&provider_arn)),
                action: action.to_owned(),
                resource: role_arn_of(q, &role),
                context: ctx.clone(),
            },
        )
    };
    let d = decide("sts:AssumeRoleWithWebIdentity");
    if !d.is_allowed() {
        evidence.push(format!("token sub = {}, aud = {}", q.sub, q.aud));
        if d.decision == DecisionKind::ExplicitDeny {
            let st = d.statements.first().map(|r| r.statement).unwrap_or(0);
            evidence.push(format!(
                "trust policy Deny statement #{st}: {}",
                statement_text(&raw, st)
            ));
            return Some(fail(
                s,
                Cause::SubNotAdmitted,
                format!("a Deny statement of the trust policy refuses sub {}", q.sub),
                evidence,
                q.scope_hint(),
            ));
        }
        // The Allow statements that cover the action, with what refused them.
        let mut cause = None;
        for (sref, why) in &d.not_matched {
            if sref.effect != Effect::Allow || matches!(why, Mismatch::Action) {
                continue;
            }
            let (c, line) = match why {
                Mismatch::Principal => (
                    Cause::ProviderNotTrusted,
                    format!(
                        "statement #{}: its Principal does not name the provider {provider_arn}: {}",
                        sref.statement,
                        statement_text(&raw, sref.statement)
                    ),
                ),
                Mismatch::Condition { operator, key } => {
                    let values = raw_condition(&raw, sref.statement, operator, key);
                    let c = if key.to_lowercase().ends_with(":aud") {
                        Cause::AudienceNotAdmitted
                    } else {
                        Cause::SubNotAdmitted
                    };
                    (
                        c,
                        format!(
                            "statement #{}: condition {operator} {{\"{key}\": {values}}} refused {}",
                            sref.statement,
                            if c == Cause::AudienceNotAdmitted {
                                format!("aud {}", q.aud)
                            } else {
                                format!("sub {}", q.sub)
                            }
                        ),
                    )
                }
                Mismatch::Resource | Mismatch::Action => continue,
            };
            evidence.push(line);
            cause.get_or_insert(c);
        }
        let cause = cause.unwrap_or(Cause::TrustPolicyRefused);
        let summary = match cause {
            Cause::ProviderNotTrusted => format!(
                "the trust policy does not trust this issuer's OIDC provider ({provider_arn})"
            ),
            Cause::AudienceNotAdmitted => {
                format!("the trust policy's aud condition does not admit {}", q.aud)
            }
            Cause::SubNotAdmitted => {
                format!("the trust policy's sub condition does not admit {}", q.sub)
            }
            _ => "no statement of the trust policy allows sts:AssumeRoleWithWebIdentity".to_owned(),
        };
        let fix = if cause == Cause::AudienceNotAdmitted {
            q.audience_fix()
        } else {
            q.scope_hint()
        };
        return Some(fail(s, cause, summary, evidence, fix));
    }
    let actions = [
        (
            q.tags,
            "sts:TagSession",
            Cause::MissingTagSession,
            "session tags",
        ),
        (
            q.source_identity,
            "sts:SetSourceIdentity",
            Cause::MissingSetSourceIdentity,
            "a source identity",
        ),
    ];
    for (needed, action, cause, what) in actions {
        if needed && !decide(action).is_allowed() {
            evidence.push(format!(
                "the trust policy allows sts:AssumeRoleWithWebIdentity for sub {} but not {action}",
                q.sub
            ));
            return Some(fail(
                s,
                cause,
                format!(
                    "the team's tokens carry {what}, so AWS also requires {action} in the trust policy"
                ),
                evidence,
                format!(
                    "add \"{action}\" to the Action of the trust statement, or regenerate it: {}",
                    q.scope_hint()
                ),
            ));
        }
    }
    None
}

fn role_arn_of(q: &TrustQuery, role: &RoleInfo) -> String {
    if q.role_arn.ends_with(&format!("/{}", role.name)) {
        q.role_arn.clone()
    } else {
        format!("{}/{}", q.role_arn, role.name)
    }
}

fn statements(raw: &Value) -> Vec<&Value> {
    match raw.get("Statement") {
        Some(Value::Array(a)) => a.iter().collect(),
        Some(v @ Value::Object(_)) => vec![v],
        _ => vec![],
    }
}

fn statement_text(raw: &Value, index: usize) -> String {
    statements(raw)
        .get(index)
        .map(|v| v.to_string())
        .unwrap_or_default()
}

fn raw_condition(raw: &Value, index: usize, operator: &str, key: &str) -> String {
    statements(raw)
        .get(index)
        .and_then(|st| st.get("Condition"))
        .and_then(|c| c.get(operator))
        .and_then(|o| o.get(key))
        .map(|v| v.to_string())
        .unwrap_or_else(|| "?".to_owned())
}
