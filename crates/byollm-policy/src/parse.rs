//! The policy parser: JSON text → [`Policy`], with every element form IAM
//! accepts and an error naming the JSON path of the first problem.
//!
//! Accepted: `Version` (`2012-10-17` or `2008-10-17`; absent means the latter),
//! `Id`, `Statement` as one object or an array; per statement `Sid`, `Effect`,
//! `Principal`/`NotPrincipal` (`"*"` or an object of `AWS`, `Federated`,
//! `Service`, `CanonicalUser`, each a string or an array), `Action`/`NotAction`,
//! `Resource`/`NotResource` (string or array), and `Condition` (operator → key →
//! a string, number, boolean or array of them). Refused, as IAM refuses them:
//! unknown elements, both or neither of `Action`/`NotAction`, an unknown
//! operator, operands of the wrong type, `Principal` in an identity policy, a
//! resource-policy statement without a principal, empty lists, and documents
//! larger than the limit (default [`DEFAULT_MAX_BYTES`], the `CreateRole`
//! document maximum from aws-facts §4.1).

use serde_json::{Map, Value};

use crate::conditions::{ConditionOperator, compile_values};
use crate::model::{
    ActionElement, ActionPattern, Condition, Effect, Policy, PolicyKind, PolicyVersion,
    PrincipalElement, PrincipalType, Principals, ResourceElement, Statement,
};
use crate::pattern::{Pattern, Template};

/// Largest document accepted by default: IAM's 131,072-character maximum for a
/// policy document parameter (aws-facts §4.1).
pub const DEFAULT_MAX_BYTES: usize = 131_072;

/// Why a document was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// The document is larger than the limit.
    #[error("policy document is {size} bytes, over the limit of {limit} bytes")]
    TooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// Not JSON.
    #[error("policy is not valid JSON (line {line}, column {column}): {message}")]
    Json {
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// serde_json's message.
        message: String,
    },
    /// JSON, but not a valid policy.
    #[error("{path}: {message}")]
    Invalid {
        /// JSON path of the problem, e.g. `$.Statement[0].Condition.StringEquals`.
        path: String,
        /// What is wrong.
        message: String,
    },
}

impl PolicyError {
    fn at(path: &str, message: impl Into<String>) -> Self {
        PolicyError::Invalid {
            path: path.to_owned(),
            message: message.into(),
        }
    }
}

/// Parsing options.
#[derive(Debug, Clone, Copy)]
pub struct ParseOptions {
    /// Identity or resource policy.
    pub kind: PolicyKind,
    /// Largest document accepted, in bytes.
    pub max_bytes: usize,
}

impl ParseOptions {
    /// Default limits for `kind`.
    pub fn new(kind: PolicyKind) -> Self {
        ParseOptions {
            kind,
            max_bytes: DEFAULT_MAX_BYTES,
        }
    }
}

impl Policy {
    /// Parses a document of `kind` with the default size limit.
    pub fn parse(text: &str, kind: PolicyKind) -> Result<Policy, PolicyError> {
        parse(text.as_bytes(), ParseOptions::new(kind))
    }
}

/// Parses a document from bytes (any bytes: non-UTF-8 input is a JSON error).
pub fn parse(bytes: &[u8], options: ParseOptions) -> Result<Policy, PolicyError> {
    if bytes.len() > options.max_bytes {
        return Err(PolicyError::TooLarge {
            size: bytes.len(),
            limit: options.max_bytes,
        });
    }
    let value: Value = serde_json::from_slice(bytes).map_err(|e| PolicyError::Json {
        line: e.line(),
        column: e.column(),
        message: e.to_string(),
    })?;
    from_value(&value, options.kind)
}

/// Builds a policy from an already-parsed JSON value.
pub fn from_value(value: &Value, kind: PolicyKind) -> Result<Policy, PolicyError> {
    let root = value.as_object().ok_or_else(|| {
        PolicyError::at(
            "$",
            format!("expected a policy object, found {}", type_name(value)),
        )
    })?;
    for key in root.keys() {
        if !matches!(key.as_str(), "Version" | "Id" | "Statement") {
            return Err(PolicyError::at(
                &format!("$.{key}"),
                "unknown element (expected Version, Id or Statement)",
            ));
        }
    }
    let version = match root.get("Version") {
        None => None,
        Some(Value::String(s)) if s == "2012-10-17" => Some(PolicyVersion::V2012_10_17),
        Some(Value::String(s)) if s == "2008-10-17" => Some(PolicyVersion::V2008_10_17),
        Some(Value::String(s)) => {
            return Err(PolicyError::at(
                "$.Version",
                format!("unsupported version `{s}` (expected 2012-10-17 or 2008-10-17)"),
            ));
        }
        Some(other) => return Err(PolicyError::at("$.Version", expected("a string", other))),
    };
    let variables = version.is_some_and(PolicyVersion::has_variables);
    let id = match root.get("Id") {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => return Err(PolicyError::at("$.Id", expected("a string", other))),
    };
    let statements = match root.get("Statement") {
        None => return Err(PolicyError::at("$", "missing required element Statement")),
        Some(Value::Object(obj)) => vec![parse_statement(obj, "$.Statement", kind, variables)?],
        Some(Value::Array(items)) => {
            if items.is_empty() {
                return Err(PolicyError::at(
                    "$.Statement",
                    "must hold at least one statement",
                ));
            }
            items
                .iter()
                .enumerate()
                .map(|(i, item)| {
                    let path = format!("$.Statement[{i}]");
                    let obj = item.as_object().ok_or_else(|| {
                        PolicyError::at(&path, expected("a statement object", item))
                    })?;
                    parse_statement(obj, &path, kind, variables)
                })
                .collect::<Result<Vec<_>, _>>()?
        }
        Some(other) => {
            return Err(PolicyError::at(
                "$.Statement",
                expected("a statement object or an array of them", other),
            ));
        }
    };
    Ok(Policy {
        version,
        id,
        statements,
    })
}

fn parse_statement(
    obj: &Map<String, Value>,
    path: &str,
    kind: PolicyKind,
    variables: bool,
) -> Result<Statement, PolicyError> {
    for key in obj.keys() {
        if !matches!(
            key.as_str(),
            "Sid"
                | "Effect"
                | "Principal"
                | "NotPrincipal"
                | "Action"
                | "NotAction"
                | "Resource"
                | "NotResource"
                | "Condition"
        ) {
            return Err(PolicyError::at(
                &format!("{path}.{key}"),
                "unknown statement element",
            ));
        }
    }
    let sid = match obj.get("Sid") {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => {
            return Err(PolicyError::at(
                &format!("{path}.Sid"),
                expected("a string", other),
            ));
        }
    };
    let effect = match obj.get("Effect") {
        Some(Value::String(s)) if s == "Allow" => Effect::Allow,
        Some(Value::String(s)) if s == "Deny" => Effect::Deny,
        Some(Value::String(s)) => {
            return Err(PolicyError::at(
                &format!("{path}.Effect"),
                format!("`{s}` is not Allow or Deny"),
            ));
        }
        Some(other) => {
            return Err(PolicyError::at(
                &format!("{path}.Effect"),
                expected("a string", other),
            ));
        }
        None => return Err(PolicyError::at(path, "missing required element Effect")),
    };
    let principal = match (obj.get("Principal"), obj.get("NotPrincipal")) {
        (Some(_), Some(_)) => {
            return Err(PolicyError::at(path, "has both Principal and NotPrincipal"));
        }
        (Some(p), None) => Some(PrincipalElement::Principal(parse_principals(
            p,
            &format!("{path}.Principal"),
        )?)),
        (None, Some(p)) => Some(PrincipalElement::NotPrincipal(parse_principals(
            p,
            &format!("{path}.NotPrincipal"),
        )?)),
        (None, None) => None,
    };
    match (kind, &principal) {
        (PolicyKind::Identity, Some(_)) => {
            return Err(PolicyError::at(
                path,
                "Principal/NotPrincipal is not allowed in an identity-based policy",
            ));
        }
        (PolicyKind::Resource, None) => {
            return Err(PolicyError::at(
                path,
                "a resource (trust) policy statement needs Principal or NotPrincipal",
            ));
        }
        _ => {}
    }
    let action = match (obj.get("Action"), obj.get("NotAction")) {
        (Some(_), Some(_)) => return Err(PolicyError::at(path, "has both Action and NotAction")),
        (Some(a), None) => ActionElement::Action(parse_actions(a, &format!("{path}.Action"))?),
        (None, Some(a)) => {
            ActionElement::NotAction(parse_actions(a, &format!("{path}.NotAction"))?)
        }
        (None, None) => {
            return Err(PolicyError::at(
                path,
                "missing required element Action or NotAction",
            ));
        }
    };
    let resource = match (obj.get("Resource"), obj.get("NotResource")) {
        (Some(_), Some(_)) => {
            return Err(PolicyError::at(path, "has both Resource and NotResource"));
        }
        (Some(r), None) => Some(ResourceElement::Resource(parse_resources(
            r,
            &format!("{path}.Resource"),
            variables,
        )?)),
        (None, Some(r)) => Some(ResourceElement::NotResource(parse_resources(
            r,
            &format!("{path}.NotResource"),
            variables,
        )?)),
        (None, None) if kind == PolicyKind::Identity => {
            return Err(PolicyError::at(
                path,
                "missing required element Resource or NotResource",
            ));
        }
        (None, None) => None,
    };
    let conditions = match obj.get("Condition") {
        None => Vec::new(),
        Some(c) => parse_conditions(c, &format!("{path}.Condition"), variables)?,
    };
    Ok(Statement {
        sid,
        effect,
        principal,
        action,
        resource,
        conditions,
    })
}

fn parse_principals(value: &Value, path: &str) -> Result<Principals, PolicyError> {
    match value {
        Value::String(s) if s == "*" => Ok(Principals::Any),
        Value::String(s) => Err(PolicyError::at(
            path,
            format!(
                "`{s}`: a principal string must be \"*\"; name others as {{\"AWS\": …}}, {{\"Federated\": …}} or {{\"Service\": …}}"
            ),
        )),
        Value::Object(obj) => {
            if obj.is_empty() {
                return Err(PolicyError::at(path, "must name at least one principal"));
            }
            let mut entries = Vec::with_capacity(obj.len());
            for (key, v) in obj {
                let kind = PrincipalType::parse(key).ok_or_else(|| {
                    PolicyError::at(
                        &format!("{path}.{key}"),
                        "unknown principal type (expected AWS, Federated, Service or CanonicalUser)",
                    )
                })?;
                entries.push((kind, string_list(v, &format!("{path}.{key}"))?));
            }
            Ok(Principals::Typed(entries))
        }
        other => Err(PolicyError::at(
            path,
            expected("\"*\" or a principal object", other),
        )),
    }
}

fn parse_actions(value: &Value, path: &str) -> Result<Vec<ActionPattern>, PolicyError> {
    let list = string_list(value, path)?;
    list.into_iter()
        .enumerate()
        .map(|(i, raw)| {
            if raw != "*"
                && !raw
                    .split_once(':')
                    .is_some_and(|(svc, name)| !svc.is_empty() && !name.is_empty())
            {
                let at = if matches!(value, Value::Array(_)) {
                    format!("{path}[{i}]")
                } else {
                    path.to_owned()
                };
                return Err(PolicyError::at(
                    &at,
                    format!("`{raw}` is not an action (expected \"*\" or \"<service>:<action>\")"),
                ));
            }
            let pattern = Pattern::new(&raw.to_lowercase());
            Ok(ActionPattern { raw, pattern })
        })
        .collect()
}

fn parse_resources(
    value: &Value,
    path: &str,
    variables: bool,
) -> Result<Vec<Template>, PolicyError> {
    Ok(string_list(value, path)?
        .iter()
        .map(|r| Template::new(r, variables))
        .collect())
}

fn parse_conditions(
    value: &Value,
    path: &str,
    variables: bool,
) -> Result<Vec<Condition>, PolicyError> {
    let block = value.as_object().ok_or_else(|| {
        PolicyError::at(path, expected("an object of condition operators", value))
    })?;
    let mut out = Vec::new();
    for (op_name, keys) in block {
        let op_path = format!("{path}.{op_name}");
        let operator = ConditionOperator::parse(op_name)
            .map_err(|e| PolicyError::at(&op_path, e.to_string()))?;
        let keys = keys.as_object().ok_or_else(|| {
            PolicyError::at(&op_path, expected("an object of condition keys", keys))
        })?;
        if keys.is_empty() {
            return Err(PolicyError::at(
                &op_path,
                "must name at least one condition key",
            ));
        }
        for (key, raw_values) in keys {
            let key_path = format!("{op_path}.{key}");
            if key.is_empty() {
                return Err(PolicyError::at(&key_path, "condition key is empty"));
            }
            let (values, single) = condition_values(raw_values, &key_path)?;
            let compiled =
                compile_values(operator.base, &values, variables).map_err(|(i, msg)| {
                    let at = if single {
                        key_path.clone()
                    } else {
                        format!("{key_path}[{i}]")
                    };
                    PolicyError::at(&at, format!("{msg}, as {} requires", operator.base.name()))
                })?;
            out.push(Condition {
                operator,
                key: key.clone(),
                key_lower: key.to_lowercase(),
                values,
                single,
                compiled,
            });
        }
    }
    Ok(out)
}

/// Condition values: a scalar or a non-empty array of scalars, as strings.
fn condition_values(value: &Value, path: &str) -> Result<(Vec<String>, bool), PolicyError> {
    fn scalar(v: &Value, path: &str) -> Result<String, PolicyError> {
        match v {
            Value::String(s) => Ok(s.clone()),
            Value::Number(n) => Ok(n.to_string()),
            Value::Bool(b) => Ok(b.to_string()),
            other => Err(PolicyError::at(
                path,
                expected("a string, number or boolean", other),
            )),
        }
    }
    match value {
        Value::Array(items) => {
            if items.is_empty() {
                return Err(PolicyError::at(path, "must hold at least one value"));
            }
            let values = items
                .iter()
                .enumerate()
                .map(|(i, v)| scalar(v, &format!("{path}[{i}]")))
                .collect::<Result<Vec<_>, _>>()?;
            Ok((values, false))
        }
        other => Ok((vec![scalar(other, path)?], true)),
    }
}

/// A string or a non-empty array of strings.
fn string_list(value: &Value, path: &str) -> Result<Vec<String>, PolicyError> {
    match value {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(items) => {
            if items.is_empty() {
                return Err(PolicyError::at(path, "must hold at least one value"));
            }
            items
                .iter()
                .enumerate()
                .map(|(i, v)| match v {
                    Value::String(s) => Ok(s.clone()),
                    other => Err(PolicyError::at(
                        &format!("{path}[{i}]"),
                        expected("a string", other),
                    )),
                })
                .collect()
        }
        other => Err(PolicyError::at(
            path,
            expected("a string or an array of strings", other),
        )),
    }
}

fn expected(what: &str, found: &Value) -> String {
    format!("expected {what}, found {}", type_name(found))
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
