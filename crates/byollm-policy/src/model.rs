//! The policy document model: what a parsed identity or resource (trust) policy
//! holds, and its canonical JSON form.
//!
//! Values are kept as the strings the document had (numbers and booleans in
//! condition values are turned into their JSON text, as IAM does), plus a form
//! pre-compiled for evaluation (lower-cased keys and actions, parsed numbers,
//! dates and CIDR blocks, wildcard patterns). Serialising a [`Policy`] writes the
//! conventional element order (`Version`, `Id`, `Statement`; `Sid`, `Effect`,
//! `Principal`, `Action`, `Resource`, `Condition`); a one-element list is written
//! as a plain string.

use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};

use crate::conditions::{CompiledValues, ConditionOperator};
use crate::pattern::Template;

/// The policy language version; it decides whether `${…}` is a policy variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyVersion {
    /// `2008-10-17`: `${…}` is literal text.
    V2008_10_17,
    /// `2012-10-17`: policy variables are substituted.
    V2012_10_17,
}

impl PolicyVersion {
    /// The version string as written in a document.
    pub fn as_str(self) -> &'static str {
        match self {
            PolicyVersion::V2008_10_17 => "2008-10-17",
            PolicyVersion::V2012_10_17 => "2012-10-17",
        }
    }

    /// Whether `${…}` policy variables are substituted under this version.
    pub fn has_variables(self) -> bool {
        self == PolicyVersion::V2012_10_17
    }
}

/// Whether a policy is attached to an identity or to a resource (a role's trust
/// policy is a resource policy). It decides whether `Principal` is required or
/// forbidden, and whether `Resource` may be omitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyKind {
    /// Attached to a user, group or role: no `Principal`, `Resource` required.
    Identity,
    /// Attached to a resource such as a role's trust policy: `Principal` or
    /// `NotPrincipal` required; `Resource` optional.
    Resource,
}

/// A parsed policy document.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// `Version`; `None` when absent, which IAM treats as `2008-10-17`.
    pub version: Option<PolicyVersion>,
    /// `Id`, when present.
    pub id: Option<String>,
    /// The statements, in document order.
    pub statements: Vec<Statement>,
}

impl Policy {
    /// The version whose rules apply (absent means `2008-10-17`).
    pub fn effective_version(&self) -> PolicyVersion {
        self.version.unwrap_or(PolicyVersion::V2008_10_17)
    }

    /// Pretty JSON in the canonical element order, two-space indent.
    pub fn to_json_pretty(&self) -> String {
        // Serialising this model cannot fail: every map key is a string.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}

/// `Allow` or `Deny`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Effect {
    /// Grants when it matches.
    Allow,
    /// Refuses when it matches, whatever else allows.
    Deny,
}

/// One statement.
#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    /// `Sid`, when present.
    pub sid: Option<String>,
    /// `Effect`.
    pub effect: Effect,
    /// `Principal` or `NotPrincipal`; `None` in identity policies.
    pub principal: Option<PrincipalElement>,
    /// `Action` or `NotAction`.
    pub action: ActionElement,
    /// `Resource` or `NotResource`; `None` when omitted (trust policies).
    pub resource: Option<ResourceElement>,
    /// The `Condition` block flattened to one entry per (operator, key).
    pub conditions: Vec<Condition>,
}

/// `Principal` or `NotPrincipal`.
#[derive(Debug, Clone, PartialEq)]
pub enum PrincipalElement {
    /// Matches the listed principals.
    Principal(Principals),
    /// Matches every principal except the listed ones.
    NotPrincipal(Principals),
}

/// The principals of a `Principal`/`NotPrincipal` element.
#[derive(Debug, Clone, PartialEq)]
pub enum Principals {
    /// `"*"`: everyone, anonymous included.
    Any,
    /// `{"AWS": …, "Federated": …, …}` in document order.
    Typed(Vec<(PrincipalType, Vec<String>)>),
}

/// The principal types IAM accepts as keys of a `Principal` object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PrincipalType {
    /// `AWS`: accounts, users, roles, sessions.
    Aws,
    /// `Federated`: OIDC and SAML providers (and the public web-identity ones).
    Federated,
    /// `Service`: AWS service principals.
    Service,
    /// `CanonicalUser`: S3 canonical user ids.
    CanonicalUser,
}

impl PrincipalType {
    /// The element key as written.
    pub fn as_str(self) -> &'static str {
        match self {
            PrincipalType::Aws => "AWS",
            PrincipalType::Federated => "Federated",
            PrincipalType::Service => "Service",
            PrincipalType::CanonicalUser => "CanonicalUser",
        }
    }

    /// Parses an element key (case-sensitive, as IAM).
    pub fn parse(key: &str) -> Option<Self> {
        match key {
            "AWS" => Some(PrincipalType::Aws),
            "Federated" => Some(PrincipalType::Federated),
            "Service" => Some(PrincipalType::Service),
            "CanonicalUser" => Some(PrincipalType::CanonicalUser),
            _ => None,
        }
    }
}

/// `Action` or `NotAction`.
#[derive(Debug, Clone, PartialEq)]
pub enum ActionElement {
    /// Matches the listed actions.
    Action(Vec<ActionPattern>),
    /// Matches every action except the listed ones.
    NotAction(Vec<ActionPattern>),
}

/// One action pattern, e.g. `bedrock:InvokeModel*`; matched case-insensitively.
#[derive(Debug, Clone, PartialEq)]
pub struct ActionPattern {
    /// As written.
    pub raw: String,
    /// Lower-cased wildcard pattern.
    pub(crate) pattern: crate::pattern::Pattern,
}

/// `Resource` or `NotResource`.
#[derive(Debug, Clone, PartialEq)]
pub enum ResourceElement {
    /// Matches the listed resources.
    Resource(Vec<Template>),
    /// Matches every resource except the listed ones.
    NotResource(Vec<Template>),
}

/// One (operator, key) pair of a `Condition` block with its values.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    /// The operator, e.g. `ForAnyValue:StringLikeIfExists`.
    pub operator: ConditionOperator,
    /// The condition key as written, e.g. `issuer.example.com:sub`.
    pub key: String,
    /// The key lower-cased (keys are case-insensitive).
    pub(crate) key_lower: String,
    /// The values as written (numbers and booleans as their JSON text).
    pub values: Vec<String>,
    /// Whether the document gave a single value rather than an array.
    pub(crate) single: bool,
    /// The values compiled for the operator's type.
    pub(crate) compiled: CompiledValues,
}

impl Condition {
    /// A string-operator condition (`StringEquals`, `StringLike`, `Arn…`), as the
    /// generators build them; values may hold `2012-10-17` policy variables.
    pub fn strings(operator: ConditionOperator, key: &str, values: Vec<String>) -> Self {
        let compiled =
            CompiledValues::Strings(values.iter().map(|v| Template::new(v, true)).collect());
        Condition {
            operator,
            key: key.to_owned(),
            key_lower: key.to_lowercase(),
            single: values.len() == 1,
            values,
            compiled,
        }
    }

    /// The lower-cased key.
    pub fn key_lower(&self) -> &str {
        &self.key_lower
    }
}

/// Writes a list as a plain string when it has one element, else as an array.
struct StrOrList<'a, T>(&'a [T]);

impl<T: AsRef<str>> Serialize for StrOrList<'_, T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            [one] => serializer.serialize_str(one.as_ref()),
            many => {
                let mut seq = serializer.serialize_seq(Some(many.len()))?;
                for item in many {
                    seq.serialize_element(item.as_ref())?;
                }
                seq.end()
            }
        }
    }
}

impl ActionPattern {
    /// An action pattern such as `sts:AssumeRoleWithWebIdentity` or `bedrock:Invoke*`.
    pub fn new(raw: &str) -> Self {
        ActionPattern {
            raw: raw.to_owned(),
            pattern: crate::pattern::Pattern::new(&raw.to_lowercase()),
        }
    }
}

impl AsRef<str> for ActionPattern {
    fn as_ref(&self) -> &str {
        &self.raw
    }
}

impl AsRef<str> for Template {
    fn as_ref(&self) -> &str {
        self.raw()
    }
}

impl Serialize for Policy {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        if let Some(version) = self.version {
            map.serialize_entry("Version", version.as_str())?;
        }
        if let Some(id) = &self.id {
            map.serialize_entry("Id", id)?;
        }
        map.serialize_entry("Statement", &self.statements)?;
        map.end()
    }
}

impl Serialize for Statement {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        if let Some(sid) = &self.sid {
            map.serialize_entry("Sid", sid)?;
        }
        map.serialize_entry("Effect", &self.effect)?;
        match &self.principal {
            Some(PrincipalElement::Principal(p)) => map.serialize_entry("Principal", p)?,
            Some(PrincipalElement::NotPrincipal(p)) => map.serialize_entry("NotPrincipal", p)?,
            None => {}
        }
        match &self.action {
            ActionElement::Action(a) => map.serialize_entry("Action", &StrOrList(a))?,
            ActionElement::NotAction(a) => map.serialize_entry("NotAction", &StrOrList(a))?,
        }
        match &self.resource {
            Some(ResourceElement::Resource(r)) => map.serialize_entry("Resource", &StrOrList(r))?,
            Some(ResourceElement::NotResource(r)) => {
                map.serialize_entry("NotResource", &StrOrList(r))?;
            }
            None => {}
        }
        if !self.conditions.is_empty() {
            map.serialize_entry("Condition", &ConditionBlock(&self.conditions))?;
        }
        map.end()
    }
}

impl Serialize for Principals {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Principals::Any => serializer.serialize_str("*"),
            Principals::Typed(entries) => {
                let mut map = serializer.serialize_map(Some(entries.len()))?;
                for (kind, values) in entries {
                    map.serialize_entry(kind.as_str(), &StrOrList(values))?;
                }
                map.end()
            }
        }
    }
}

/// A `Condition` block: operators in first-appearance order, each with its keys.
struct ConditionBlock<'a>(&'a [Condition]);

impl Serialize for ConditionBlock<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut operators: Vec<String> = Vec::new();
        for c in self.0 {
            let name = c.operator.to_string();
            if !operators.contains(&name) {
                operators.push(name);
            }
        }
        let mut map = serializer.serialize_map(Some(operators.len()))?;
        for name in &operators {
            let keys: Vec<&Condition> = self
                .0
                .iter()
                .filter(|c| c.operator.to_string() == *name)
                .collect();
            map.serialize_entry(name, &KeyBlock(&keys))?;
        }
        map.end()
    }
}

/// The keys of one operator in a `Condition` block.
struct KeyBlock<'a>(&'a [&'a Condition]);

impl Serialize for KeyBlock<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for c in self.0 {
            if c.single && c.values.len() == 1 {
                map.serialize_entry(&c.key, &c.values[0])?;
            } else {
                map.serialize_entry(&c.key, &c.values)?;
            }
        }
        map.end()
    }
}
