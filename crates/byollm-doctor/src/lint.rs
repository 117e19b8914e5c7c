//! Warnings that are not failures (DESIGN §7): a named agent's own role that
//! admits anyone but that agent, and a team role that also admits agents which
//! have their own roles. Decided by `byollm_policy::explain` on the trust
//! policies read from IAM, so they need IAM read access; without it they are
//! silently skipped.

use byollm_policy::explain::{ExplainOptions, SubjectClass, explain_trust};
use byollm_policy::generate::Issuer;
use byollm_policy::{Policy, PolicyKind};

use super::iam::role_name;
use super::walk::{Ctx, Walk};

impl Walk<'_> {
    async fn explained(
        &self,
        role_arn: &str,
        issuer: &Issuer,
        ctx: &Ctx,
    ) -> Option<byollm_policy::explain::Explanation> {
        let iam = self.iam.as_ref()?;
        let role = iam.role(role_name(role_arn)?).await.ok()??;
        let policy = Policy::parse(&role.trust_policy, PolicyKind::Resource).ok()?;
        Some(explain_trust(
            &policy,
            &ExplainOptions {
                issuer: issuer.clone(),
                team_uid: ctx.team_uid.clone(),
                session_tags: ctx.settings.session_tags,
                source_identity: ctx.settings.source_identity,
            },
        ))
    }

    /// Adds the trust-scope warnings to the report's notes.
    pub(super) async fn trust_notes(&mut self, ctx: &Ctx, issuer: &str) {
        let Ok(issuer) = Issuer::parse(issuer) else {
            return;
        };
        match &ctx.agent {
            Some(agent) if ctx.own_role => {
                let Some(e) = self.explained(&ctx.role_arn, &issuer, ctx).await else {
                    return;
                };
                // Only a role that admits this agent can be too broad for it; a role
                // that refuses it is the diagnosis's business, not a warning's.
                let admits_it = e.probes.iter().any(|p| {
                    p.admitted
                        && match &p.subject {
                            SubjectClass::NamedAgent(u) => u == agent,
                            SubjectClass::TeamAgents => true,
                            _ => false,
                        }
                });
                if !admits_it {
                    return;
                }
                let extra: Vec<&str> = e
                    .probes
                    .iter()
                    .filter(|p| p.admitted)
                    .filter(|p| !matches!(&p.subject, SubjectClass::NamedAgent(u) if u == agent))
                    .map(|p| p.label.as_str())
                    .collect();
                if !extra.is_empty() {
                    self.notes.push(format!(
                        "warning: {} is agent {agent}'s own role but its trust policy also admits: {}; \
                         generate it with --scope agent:{agent}",
                        ctx.role_arn,
                        extra.join("; ")
                    ));
                }
            }
            Some(_) => {}
            None => {
                let Ok(agents) = self.client.agents().await else {
                    return;
                };
                let own: Vec<String> = agents
                    .agents
                    .iter()
                    .filter(|a| {
                        a.inference_providers
                            .aws
                            .role_arn
                            .as_deref()
                            .is_some_and(|r| r != ctx.role_arn)
                    })
                    .map(|a| format!("{} ({})", a.name, a.uid))
                    .collect();
                if own.is_empty() {
                    return;
                }
                let Some(e) = self.explained(&ctx.role_arn, &issuer, ctx).await else {
                    return;
                };
                if e.probe(&SubjectClass::TeamAgents)
                    .is_some_and(|p| p.admitted)
                {
                    self.notes.push(format!(
                        "warning: the team role {} admits every agent of the team, including {} \
                         which have their own roles; generate it with --scope users if agents \
                         should use only their own roles",
                        ctx.role_arn,
                        own.join(", ")
                    ));
                }
            }
        }
    }
}
