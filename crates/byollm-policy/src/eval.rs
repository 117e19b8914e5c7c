//! The evaluator: decides one request against a set of policies.
//!
//! IAM's rules (aws-facts §3.1, §3.3): a request is denied unless some statement
//! allows it (implicit deny); a matching `Deny` overrides every `Allow` (explicit
//! deny). A statement matches when its principal (resource policies only),
//! action, resource and every condition match. The decision names the statements
//! that made it — every matching `Deny` for an explicit deny, every matching
//! `Allow` for an allow — and, for each statement that did not match, why not, so
//! callers can explain.
//!
//! Policies of both kinds are combined as one set, which is what IAM does for a
//! role assumption within one account (the trust policy alone decides) and for an
//! identity policy on its own. Permission boundaries, SCPs and session policies
//! are out of scope.

use serde::Serialize;

use crate::conditions;
use crate::model::{
    ActionElement, Effect, Policy, PolicyKind, PrincipalElement, PrincipalType, Principals,
    ResourceElement, Statement,
};
use crate::pattern::{arn_like, glob};

/// The request context: condition keys (case-insensitive) with one or more
/// values each.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Context {
    /// (lower-cased key, values), in insertion order.
    entries: Vec<(String, Vec<String>)>,
}

impl Context {
    /// An empty context.
    pub fn new() -> Self {
        Context::default()
    }

    /// Adds a value to `key` (a second value makes the key multi-valued).
    pub fn insert(&mut self, key: &str, value: impl Into<String>) -> &mut Self {
        let lower = key.to_lowercase();
        let value = value.into();
        match self.entries.iter_mut().find(|(k, _)| *k == lower) {
            Some((_, values)) => values.push(value),
            None => self.entries.push((lower, vec![value])),
        }
        self
    }

    /// Sets `key` to exactly these values (an empty list: present but empty).
    pub fn set(&mut self, key: &str, values: Vec<String>) -> &mut Self {
        let lower = key.to_lowercase();
        match self.entries.iter_mut().find(|(k, _)| *k == lower) {
            Some((_, v)) => *v = values,
            None => self.entries.push((lower, values)),
        }
        self
    }

    /// The values of `key`, matched case-insensitively.
    pub fn get(&self, key: &str) -> Option<&[String]> {
        self.get_lower(&key.to_lowercase())
    }

    /// The values of an already lower-cased key.
    pub(crate) fn get_lower(&self, key_lower: &str) -> Option<&[String]> {
        self.entries
            .iter()
            .find(|(k, _)| k == key_lower)
            .map(|(_, v)| v.as_slice())
    }

    /// Every (lower-cased key, values) pair.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[String])> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v.as_slice()))
    }
}

/// Who makes the request, for matching `Principal` in resource policies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestPrincipal {
    /// The principal's type.
    pub kind: PrincipalType,
    /// Its identifier: an ARN, an account id, a service name or a provider ARN.
    pub id: String,
}

impl RequestPrincipal {
    /// Infers the type from an identifier: `…:oidc-provider/…` and
    /// `…:saml-provider/…` ARNs are `Federated`, `*.amazonaws.com` names are
    /// `Service`, anything else is `AWS`.
    pub fn infer(id: &str) -> Self {
        let kind = if id.contains(":oidc-provider/") || id.contains(":saml-provider/") {
            PrincipalType::Federated
        } else if !id.starts_with("arn:") && id.ends_with(".amazonaws.com") {
            PrincipalType::Service
        } else {
            PrincipalType::Aws
        };
        RequestPrincipal {
            kind,
            id: id.to_owned(),
        }
    }
}

/// One request to decide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The caller; `None` for anonymous (or when only identity policies apply).
    pub principal: Option<RequestPrincipal>,
    /// The action, e.g. `sts:AssumeRoleWithWebIdentity`.
    pub action: String,
    /// The resource ARN (for a role assumption: the role's ARN).
    pub resource: String,
    /// Condition keys.
    pub context: Context,
}

/// The outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DecisionKind {
    /// Some statement allows and none denies.
    Allowed,
    /// No statement matched.
    ImplicitDeny,
    /// A `Deny` statement matched.
    ExplicitDeny,
}

impl DecisionKind {
    /// `allowed`, `implicit_deny` or `explicit_deny`.
    pub fn as_str(self) -> &'static str {
        match self {
            DecisionKind::Allowed => "allowed",
            DecisionKind::ImplicitDeny => "implicit_deny",
            DecisionKind::ExplicitDeny => "explicit_deny",
        }
    }
}

/// Which statement: its policy (index in the set) and position.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatementRef {
    /// Index of the policy in the evaluated set.
    pub policy: usize,
    /// Index of the statement in its policy.
    pub statement: usize,
    /// Its `Sid`, when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// Its effect.
    pub effect: Effect,
}

/// Why a statement did not match (the first element that failed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "element", rename_all = "snake_case")]
pub enum Mismatch {
    /// `Principal`/`NotPrincipal` did not match the caller.
    Principal,
    /// `Action`/`NotAction` did not match.
    Action,
    /// `Resource`/`NotResource` did not match.
    Resource,
    /// A condition was false.
    Condition {
        /// The operator as written.
        operator: String,
        /// The key as written.
        key: String,
    },
}

/// The decision and its reasons.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// The outcome.
    pub decision: DecisionKind,
    /// The statements that decided it (empty for an implicit deny).
    pub statements: Vec<StatementRef>,
    /// The statements that did not match, each with the first failing element.
    pub not_matched: Vec<(StatementRef, Mismatch)>,
}

impl Decision {
    /// Whether the request is allowed.
    pub fn is_allowed(&self) -> bool {
        self.decision == DecisionKind::Allowed
    }
}

/// Decides `request` against `policies` (each with its kind).
pub fn evaluate(policies: &[(&Policy, PolicyKind)], request: &Request) -> Decision {
    let action_lower = request.action.to_lowercase();
    let mut allows = Vec::new();
    let mut denies = Vec::new();
    let mut not_matched = Vec::new();
    for (pi, (policy, kind)) in policies.iter().enumerate() {
        for (si, st) in policy.statements.iter().enumerate() {
            let sref = StatementRef {
                policy: pi,
                statement: si,
                sid: st.sid.clone(),
                effect: st.effect,
            };
            match statement_matches(st, *kind, request, &action_lower) {
                Ok(()) => match st.effect {
                    Effect::Allow => allows.push(sref),
                    Effect::Deny => denies.push(sref),
                },
                Err(why) => not_matched.push((sref, why)),
            }
        }
    }
    let (decision, statements) = if !denies.is_empty() {
        (DecisionKind::ExplicitDeny, denies)
    } else if !allows.is_empty() {
        (DecisionKind::Allowed, allows)
    } else {
        (DecisionKind::ImplicitDeny, Vec::new())
    };
    Decision {
        decision,
        statements,
        not_matched,
    }
}

/// Decides `request` against one policy.
pub fn evaluate_one(policy: &Policy, kind: PolicyKind, request: &Request) -> Decision {
    evaluate(&[(policy, kind)], request)
}

/// Whether a statement applies to the request, or the first element that failed.
pub fn statement_matches(
    st: &Statement,
    kind: PolicyKind,
    request: &Request,
    action_lower: &str,
) -> Result<(), Mismatch> {
    if kind == PolicyKind::Resource
        && !principal_matches(st.principal.as_ref(), request.principal.as_ref())
    {
        return Err(Mismatch::Principal);
    }
    let action_ok = match &st.action {
        ActionElement::Action(list) => list.iter().any(|a| a.pattern.matches(action_lower)),
        ActionElement::NotAction(list) => !list.iter().any(|a| a.pattern.matches(action_lower)),
    };
    if !action_ok {
        return Err(Mismatch::Action);
    }
    let resource_ok = match &st.resource {
        None => true,
        Some(ResourceElement::Resource(list)) => list.iter().any(|r| resource_matches(r, request)),
        Some(ResourceElement::NotResource(list)) => {
            !list.iter().any(|r| resource_matches(r, request))
        }
    };
    if !resource_ok {
        return Err(Mismatch::Resource);
    }
    for cond in &st.conditions {
        if !conditions::evaluate(cond, &request.context) {
            return Err(Mismatch::Condition {
                operator: cond.operator.to_string(),
                key: cond.key.clone(),
            });
        }
    }
    Ok(())
}

fn resource_matches(template: &crate::pattern::Template, request: &Request) -> bool {
    let Some(pattern) = template.pattern(&request.context) else {
        return false;
    };
    if request.resource.starts_with("arn:") && template.raw().starts_with("arn:") {
        arn_like(&pattern, &request.resource)
    } else {
        glob(&pattern, &request.resource)
    }
}

fn principal_matches(
    element: Option<&PrincipalElement>,
    caller: Option<&RequestPrincipal>,
) -> bool {
    match element {
        // A resource policy statement without a principal applies to no one.
        None => false,
        Some(PrincipalElement::Principal(p)) => principals_contain(p, caller),
        Some(PrincipalElement::NotPrincipal(p)) => !principals_contain(p, caller),
    }
}

fn principals_contain(principals: &Principals, caller: Option<&RequestPrincipal>) -> bool {
    let entries = match principals {
        Principals::Any => return true,
        Principals::Typed(entries) => entries,
    };
    let Some(caller) = caller else {
        return false;
    };
    entries
        .iter()
        .filter(|(kind, _)| *kind == caller.kind)
        .flat_map(|(_, ids)| ids.iter())
        .any(|id| principal_id_matches(caller.kind, id, &caller.id))
}

/// One principal id against the caller. `AWS` ids: `*`, an account id or
/// `arn:aws:iam::<acct>:root` (any principal of that account), or an exact ARN.
/// Others match exactly.
fn principal_id_matches(kind: PrincipalType, policy_id: &str, caller_id: &str) -> bool {
    if policy_id == caller_id {
        return true;
    }
    if kind != PrincipalType::Aws {
        return false;
    }
    if policy_id == "*" {
        return true;
    }
    let policy_account = if policy_id.len() == 12 && policy_id.bytes().all(|b| b.is_ascii_digit()) {
        Some(policy_id)
    } else {
        policy_id
            .strip_prefix("arn:")
            .and_then(|rest| rest.split(':').nth(3).filter(|_| rest.ends_with(":root")))
    };
    let caller_account = if caller_id.starts_with("arn:") {
        caller_id.split(':').nth(4)
    } else {
        Some(caller_id)
    };
    matches!((policy_account, caller_account), (Some(p), Some(c)) if p == c)
}
