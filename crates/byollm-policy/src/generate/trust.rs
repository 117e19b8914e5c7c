//! The role trust policy for a team (DESIGN §7, aws-facts §3).
//!
//! One `Allow` statement for the team's OIDC provider (`Federated` principal)
//! and `sts:AssumeRoleWithWebIdentity`, plus `sts:TagSession` /
//! `sts:SetSourceIdentity` when the team's tokens carry session tags / a source
//! identity (AWS refuses the assumption otherwise). Conditions use only the
//! provider's `:aud` and `:sub` keys, the only claims AWS turns into keys:
//! - `aud` is always conditioned (`StringEquals`), so a token minted for another
//!   audience cannot assume the role;
//! - `sub` by scope: `team` → `StringLike scoped_principal:<team>/*`, `users` →
//!   `…/user:*`, `agents` → `…/service_account:*`, named actors → `StringEquals`
//!   on the exact subjects. With the `run_id` subject template, named actors get
//!   `StringLike` on both `…:<uid>` and `…:<uid>:run_id:*`.
//!
//! The `/` after the team uid and the `:` (or end of string) after an actor uid
//! are always part of the pattern, so a longer uid with ours as a prefix never
//! matches.

use super::{
    AccountId, Actor, GenerateError, Issuer, STS_AUDIENCE, SubjectTemplate, TrustScope,
    actor_subject, team_subject_prefix, validate_uid,
};
use crate::conditions::{BaseOperator, ConditionOperator};
use crate::model::{
    ActionElement, ActionPattern, Condition, Effect, Policy, PolicyVersion, PrincipalElement,
    PrincipalType, Principals, Statement,
};

/// What a team's trust policy is generated from.
#[derive(Debug, Clone)]
pub struct TrustOptions {
    /// The issuer (`server.issuer_url`).
    pub issuer: Issuer,
    /// The team uid.
    pub team_uid: String,
    /// The customer's AWS account (where the OIDC provider and role live).
    pub account: AccountId,
    /// Whom to admit.
    pub scope: TrustScope,
    /// The team's tokens carry session tags.
    pub session_tags: bool,
    /// The team's tokens carry a source identity.
    pub source_identity: bool,
    /// The shape of `sub`.
    pub subject_template: SubjectTemplate,
    /// The token audience (`sts.amazonaws.com` unless the team changed it).
    pub audience: String,
}

impl TrustOptions {
    /// Options with the defaults: scope `team`, no tags, no source identity, the
    /// plain subject template and the STS audience.
    pub fn new(issuer: Issuer, team_uid: &str, account: AccountId) -> Result<Self, GenerateError> {
        validate_uid("team", team_uid)?;
        Ok(TrustOptions {
            issuer,
            team_uid: team_uid.to_owned(),
            account,
            scope: TrustScope::Team,
            session_tags: false,
            source_identity: false,
            subject_template: SubjectTemplate::default(),
            audience: STS_AUDIENCE.to_owned(),
        })
    }

    /// The actions the trust statement allows.
    pub fn actions(&self) -> Vec<&'static str> {
        let mut actions = vec!["sts:AssumeRoleWithWebIdentity"];
        if self.session_tags {
            actions.push("sts:TagSession");
        }
        if self.source_identity {
            actions.push("sts:SetSourceIdentity");
        }
        actions
    }

    /// A note for stderr about what the scope admits.
    pub fn scope_note(&self) -> String {
        match &self.scope {
            TrustScope::Team => format!(
                "note: scope `team` admits every member and every agent of team {} (subject scoped_principal:{}/*); \
                 use --scope users, agents, or agent:<uid> for a named agent's own role",
                self.team_uid, self.team_uid
            ),
            TrustScope::Users => format!(
                "note: scope `users` admits every member of team {}",
                self.team_uid
            ),
            TrustScope::Agents => format!(
                "note: scope `agents` admits every named agent of team {}",
                self.team_uid
            ),
            TrustScope::Named(list) => {
                let names: Vec<String> = list
                    .iter()
                    .map(|(a, u)| format!("{}:{u}", a.cli_name()))
                    .collect();
                format!(
                    "note: admits exactly {} of team {}",
                    names.join(", "),
                    self.team_uid
                )
            }
        }
    }
}

/// Generates the trust policy.
pub fn trust_policy(opts: &TrustOptions) -> Result<Policy, GenerateError> {
    validate_uid("team", &opts.team_uid)?;
    let sub_key = opts.issuer.key("sub");
    let aud_key = opts.issuer.key("aud");
    let prefix = team_subject_prefix(&opts.team_uid);
    let mut equals_subjects = Vec::new();
    let mut like_subjects = Vec::new();
    match &opts.scope {
        TrustScope::Team => like_subjects.push(format!("{prefix}*")),
        TrustScope::Users => {
            like_subjects.push(format!("{prefix}{}:*", Actor::User.subject_type()))
        }
        TrustScope::Agents => {
            like_subjects.push(format!("{prefix}{}:*", Actor::Agent.subject_type()))
        }
        TrustScope::Named(list) => {
            for (actor, uid) in list {
                validate_uid(actor.cli_name(), uid)?;
                let exact = actor_subject(&opts.team_uid, *actor, uid);
                if opts.subject_template.run_id {
                    like_subjects.push(format!("{exact}:run_id:*"));
                    like_subjects.insert(like_subjects.len() - 1, exact);
                } else {
                    equals_subjects.push(exact);
                }
            }
        }
    }
    let mut conditions = vec![Condition::strings(
        ConditionOperator::plain(BaseOperator::StringEquals),
        &aud_key,
        vec![opts.audience.clone()],
    )];
    if !equals_subjects.is_empty() {
        conditions.push(Condition::strings(
            ConditionOperator::plain(BaseOperator::StringEquals),
            &sub_key,
            equals_subjects,
        ));
    }
    if !like_subjects.is_empty() {
        conditions.push(Condition::strings(
            ConditionOperator::plain(BaseOperator::StringLike),
            &sub_key,
            like_subjects,
        ));
    }
    let statement = Statement {
        sid: Some("ByollmWebIdentity".to_owned()),
        effect: Effect::Allow,
        principal: Some(PrincipalElement::Principal(Principals::Typed(vec![(
            PrincipalType::Federated,
            vec![opts.issuer.provider_arn(&opts.account)],
        )]))),
        action: ActionElement::Action(opts.actions().into_iter().map(ActionPattern::new).collect()),
        resource: None,
        conditions,
    };
    Ok(Policy {
        version: Some(PolicyVersion::V2012_10_17),
        id: None,
        statements: vec![statement],
    })
}
