//! Condition operators and their evaluation (aws-facts §3.3).
//!
//! Rules, from the IAM user guide's condition-operator and multi-value pages:
//! - keys under one operator, and operators in one block, are ANDed (done by the
//!   evaluator); the values of one key are ORed;
//! - a negated operator (`StringNotEquals`, `ArnNotLike`, `NotIpAddress`, …) holds
//!   when the request value matches *none* of the policy values;
//! - a missing key makes a condition false, except: negated operators → true,
//!   `…IfExists` → true, `ForAllValues:` → true (also for an empty set), while
//!   `ForAnyValue:` → false; `Null` is true for `"true"` exactly when the key is
//!   absent;
//! - `ForAnyValue:` holds when some request value satisfies the operator,
//!   `ForAllValues:` when every request value does. Without a qualifier a
//!   multi-valued key behaves as `ForAnyValue:` for positive operators and as "no
//!   request value matches any policy value" for negated ones, so a negated
//!   operator is always the exact negation of its positive twin.

use std::fmt;
use std::net::IpAddr;

use crate::eval::Context;
use crate::pattern::{Template, arn_like, glob};

/// `ForAnyValue:` or `ForAllValues:`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetQualifier {
    /// At least one request value must satisfy the operator.
    ForAnyValue,
    /// Every request value must satisfy the operator (vacuously true when none).
    ForAllValues,
}

/// The operator without qualifier or `IfExists`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[expect(
    missing_docs,
    reason = "each variant is the IAM operator of the same name"
)]
pub enum BaseOperator {
    StringEquals,
    StringNotEquals,
    StringEqualsIgnoreCase,
    StringNotEqualsIgnoreCase,
    StringLike,
    StringNotLike,
    NumericEquals,
    NumericNotEquals,
    NumericLessThan,
    NumericLessThanEquals,
    NumericGreaterThan,
    NumericGreaterThanEquals,
    DateEquals,
    DateNotEquals,
    DateLessThan,
    DateLessThanEquals,
    DateGreaterThan,
    DateGreaterThanEquals,
    Bool,
    BinaryEquals,
    IpAddress,
    NotIpAddress,
    ArnEquals,
    ArnLike,
    ArnNotEquals,
    ArnNotLike,
    Null,
}

use BaseOperator as B;

const ALL: [BaseOperator; 27] = [
    B::StringEquals,
    B::StringNotEquals,
    B::StringEqualsIgnoreCase,
    B::StringNotEqualsIgnoreCase,
    B::StringLike,
    B::StringNotLike,
    B::NumericEquals,
    B::NumericNotEquals,
    B::NumericLessThan,
    B::NumericLessThanEquals,
    B::NumericGreaterThan,
    B::NumericGreaterThanEquals,
    B::DateEquals,
    B::DateNotEquals,
    B::DateLessThan,
    B::DateLessThanEquals,
    B::DateGreaterThan,
    B::DateGreaterThanEquals,
    B::Bool,
    B::BinaryEquals,
    B::IpAddress,
    B::NotIpAddress,
    B::ArnEquals,
    B::ArnLike,
    B::ArnNotEquals,
    B::ArnNotLike,
    B::Null,
];

/// The family of values an operator compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ValueType {
    String,
    Numeric,
    Date,
    Bool,
    Binary,
    Ip,
    Arn,
    Null,
}

impl BaseOperator {
    /// The operator name as written in a policy.
    pub fn name(self) -> &'static str {
        match self {
            B::StringEquals => "StringEquals",
            B::StringNotEquals => "StringNotEquals",
            B::StringEqualsIgnoreCase => "StringEqualsIgnoreCase",
            B::StringNotEqualsIgnoreCase => "StringNotEqualsIgnoreCase",
            B::StringLike => "StringLike",
            B::StringNotLike => "StringNotLike",
            B::NumericEquals => "NumericEquals",
            B::NumericNotEquals => "NumericNotEquals",
            B::NumericLessThan => "NumericLessThan",
            B::NumericLessThanEquals => "NumericLessThanEquals",
            B::NumericGreaterThan => "NumericGreaterThan",
            B::NumericGreaterThanEquals => "NumericGreaterThanEquals",
            B::DateEquals => "DateEquals",
            B::DateNotEquals => "DateNotEquals",
            B::DateLessThan => "DateLessThan",
            B::DateLessThanEquals => "DateLessThanEquals",
            B::DateGreaterThan => "DateGreaterThan",
            B::DateGreaterThanEquals => "DateGreaterThanEquals",
            B::Bool => "Bool",
            B::BinaryEquals => "BinaryEquals",
            B::IpAddress => "IpAddress",
            B::NotIpAddress => "NotIpAddress",
            B::ArnEquals => "ArnEquals",
            B::ArnLike => "ArnLike",
            B::ArnNotEquals => "ArnNotEquals",
            B::ArnNotLike => "ArnNotLike",
            B::Null => "Null",
        }
    }

    /// Looks an operator up by its exact (case-sensitive) name.
    pub fn from_name(name: &str) -> Option<Self> {
        ALL.into_iter().find(|op| op.name() == name)
    }

    /// Whether the operator holds when the request value matches no policy value.
    pub fn is_negated(self) -> bool {
        matches!(
            self,
            B::StringNotEquals
                | B::StringNotEqualsIgnoreCase
                | B::StringNotLike
                | B::NumericNotEquals
                | B::DateNotEquals
                | B::NotIpAddress
                | B::ArnNotEquals
                | B::ArnNotLike
        )
    }

    /// Whether `*` and `?` in the policy values are wildcards.
    pub fn has_wildcards(self) -> bool {
        matches!(
            self,
            B::StringLike
                | B::StringNotLike
                | B::ArnEquals
                | B::ArnLike
                | B::ArnNotEquals
                | B::ArnNotLike
        )
    }

    pub(crate) fn value_type(self) -> ValueType {
        match self {
            B::StringEquals
            | B::StringNotEquals
            | B::StringEqualsIgnoreCase
            | B::StringNotEqualsIgnoreCase
            | B::StringLike
            | B::StringNotLike => ValueType::String,
            B::NumericEquals
            | B::NumericNotEquals
            | B::NumericLessThan
            | B::NumericLessThanEquals
            | B::NumericGreaterThan
            | B::NumericGreaterThanEquals => ValueType::Numeric,
            B::DateEquals
            | B::DateNotEquals
            | B::DateLessThan
            | B::DateLessThanEquals
            | B::DateGreaterThan
            | B::DateGreaterThanEquals => ValueType::Date,
            B::Bool => ValueType::Bool,
            B::BinaryEquals => ValueType::Binary,
            B::IpAddress | B::NotIpAddress => ValueType::Ip,
            B::ArnEquals | B::ArnLike | B::ArnNotEquals | B::ArnNotLike => ValueType::Arn,
            B::Null => ValueType::Null,
        }
    }
}

/// A full condition operator, e.g. `ForAllValues:StringLikeIfExists`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConditionOperator {
    /// `ForAnyValue:` / `ForAllValues:`, when given.
    pub qualifier: Option<SetQualifier>,
    /// The operator proper.
    pub base: BaseOperator,
    /// The `IfExists` suffix.
    pub if_exists: bool,
}

/// Why an operator name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OperatorError {
    /// Not an IAM condition operator.
    #[error("unknown condition operator `{0}`")]
    Unknown(String),
    /// `Null` cannot take `IfExists` or a set qualifier.
    #[error("`{0}`: the Null operator takes neither IfExists nor ForAnyValue:/ForAllValues:")]
    NullQualified(String),
}

impl ConditionOperator {
    /// A plain operator (no qualifier, no `IfExists`).
    pub fn plain(base: BaseOperator) -> Self {
        ConditionOperator {
            qualifier: None,
            base,
            if_exists: false,
        }
    }

    /// Parses an operator name as IAM spells it (case-sensitive).
    pub fn parse(name: &str) -> Result<Self, OperatorError> {
        let (qualifier, rest) = if let Some(r) = name.strip_prefix("ForAnyValue:") {
            (Some(SetQualifier::ForAnyValue), r)
        } else if let Some(r) = name.strip_prefix("ForAllValues:") {
            (Some(SetQualifier::ForAllValues), r)
        } else {
            (None, name)
        };
        let (if_exists, rest) = match rest.strip_suffix("IfExists") {
            Some(r) => (true, r),
            None => (false, rest),
        };
        let base =
            BaseOperator::from_name(rest).ok_or_else(|| OperatorError::Unknown(name.to_owned()))?;
        if base == B::Null && (if_exists || qualifier.is_some()) {
            return Err(OperatorError::NullQualified(name.to_owned()));
        }
        Ok(ConditionOperator {
            qualifier,
            base,
            if_exists,
        })
    }
}

impl fmt::Display for ConditionOperator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.qualifier {
            Some(SetQualifier::ForAnyValue) => f.write_str("ForAnyValue:")?,
            Some(SetQualifier::ForAllValues) => f.write_str("ForAllValues:")?,
            None => {}
        }
        f.write_str(self.base.name())?;
        if self.if_exists {
            f.write_str("IfExists")?;
        }
        Ok(())
    }
}

/// An IPv4 or IPv6 CIDR block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parses `a.b.c.d/n`, `x::y/n`, or a bare address (a /32 or /128).
    pub(crate) fn parse(text: &str) -> Option<Self> {
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a.parse::<IpAddr>().ok()?, Some(p.parse::<u8>().ok()?)),
            None => (text.parse::<IpAddr>().ok()?, None),
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        (prefix <= max).then_some(Cidr { addr, prefix })
    }

    fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// Parses a `Date*` operand: epoch seconds, or ISO 8601 (a date, or a date-time
/// with an offset). Returns Unix nanoseconds.
pub(crate) fn parse_date(text: &str) -> Option<i128> {
    use time::format_description::well_known::{Iso8601, Rfc3339};
    let text = text.trim();
    if let Ok(secs) = text.parse::<i64>() {
        return Some(i128::from(secs) * 1_000_000_000);
    }
    if let Ok(dt) = time::OffsetDateTime::parse(text, &Rfc3339) {
        return Some(dt.unix_timestamp_nanos());
    }
    if let Ok(dt) = time::OffsetDateTime::parse(text, &Iso8601::DEFAULT) {
        return Some(dt.unix_timestamp_nanos());
    }
    if let Ok(dt) = time::PrimitiveDateTime::parse(text, &Iso8601::DEFAULT) {
        return Some(dt.assume_utc().unix_timestamp_nanos());
    }
    let date_only = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(text, &date_only)
        .ok()
        .map(|d| d.midnight().assume_utc().unix_timestamp_nanos())
}

/// Parses a `Numeric*` operand.
pub(crate) fn parse_number(text: &str) -> Option<f64> {
    text.trim().parse::<f64>().ok().filter(|n| n.is_finite())
}

/// Parses a `Bool`/`Null` operand (case-insensitive `true`/`false`).
pub(crate) fn parse_bool(text: &str) -> Option<bool> {
    if text.eq_ignore_ascii_case("true") {
        Some(true)
    } else if text.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

/// Policy values compiled for their operator's type.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum CompiledValues {
    /// String and ARN operators (and `BinaryEquals`): templates with variables.
    Strings(Vec<Template>),
    /// Numeric operators.
    Numbers(Vec<f64>),
    /// Date operators, as Unix nanoseconds.
    Dates(Vec<i128>),
    /// `Bool` and `Null`.
    Bools(Vec<bool>),
    /// IP operators.
    Cidrs(Vec<Cidr>),
}

/// Compiles the values for `base`, or names the first value of the wrong type.
pub(crate) fn compile_values(
    base: BaseOperator,
    values: &[String],
    variables: bool,
) -> Result<CompiledValues, (usize, String)> {
    fn all<T>(
        values: &[String],
        f: impl Fn(&str) -> Option<T>,
        what: &str,
    ) -> Result<Vec<T>, (usize, String)> {
        values
            .iter()
            .enumerate()
            .map(|(i, v)| f(v).ok_or_else(|| (i, format!("`{v}` is not {what}"))))
            .collect()
    }
    Ok(match base.value_type() {
        ValueType::String | ValueType::Arn | ValueType::Binary => {
            CompiledValues::Strings(values.iter().map(|v| Template::new(v, variables)).collect())
        }
        ValueType::Numeric => CompiledValues::Numbers(all(values, parse_number, "a number")?),
        ValueType::Date => CompiledValues::Dates(all(
            values,
            parse_date,
            "a date (ISO 8601 or epoch seconds)",
        )?),
        ValueType::Bool | ValueType::Null => {
            CompiledValues::Bools(all(values, parse_bool, "`true` or `false`")?)
        }
        ValueType::Ip => {
            CompiledValues::Cidrs(all(values, Cidr::parse, "an IP address or CIDR block")?)
        }
    })
}

/// Whether one request value matches at least one policy value under the
/// *positive* form of `base` (negation is applied by the caller).
fn matches_any(base: BaseOperator, compiled: &CompiledValues, value: &str, ctx: &Context) -> bool {
    match compiled {
        CompiledValues::Strings(templates) => templates.iter().any(|t| match base {
            B::StringEquals | B::StringNotEquals | B::BinaryEquals => {
                t.literal(ctx).is_some_and(|l| l == value)
            }
            B::StringEqualsIgnoreCase | B::StringNotEqualsIgnoreCase => t
                .literal(ctx)
                .is_some_and(|l| l.to_lowercase() == value.to_lowercase()),
            B::StringLike | B::StringNotLike => t.pattern(ctx).is_some_and(|p| glob(&p, value)),
            _ => t.pattern(ctx).is_some_and(|p| arn_like(&p, value)),
        }),
        CompiledValues::Numbers(nums) => {
            let Some(v) = parse_number(value) else {
                return false;
            };
            nums.iter().any(|p| match base {
                B::NumericLessThan => v < *p,
                B::NumericLessThanEquals => v <= *p,
                B::NumericGreaterThan => v > *p,
                B::NumericGreaterThanEquals => v >= *p,
                _ => v == *p,
            })
        }
        CompiledValues::Dates(dates) => {
            let Some(v) = parse_date(value) else {
                return false;
            };
            dates.iter().any(|p| match base {
                B::DateLessThan => v < *p,
                B::DateLessThanEquals => v <= *p,
                B::DateGreaterThan => v > *p,
                B::DateGreaterThanEquals => v >= *p,
                _ => v == *p,
            })
        }
        CompiledValues::Bools(bools) => parse_bool(value).is_some_and(|v| bools.contains(&v)),
        CompiledValues::Cidrs(cidrs) => {
            let Ok(ip) = value.trim().parse::<IpAddr>() else {
                return false;
            };
            cidrs.iter().any(|c| c.contains(ip))
        }
    }
}

/// Evaluates one (operator, key, values) condition against the request context.
pub(crate) fn evaluate(cond: &crate::model::Condition, ctx: &Context) -> bool {
    let op = cond.operator;
    let values = ctx.get_lower(&cond.key_lower).filter(|v| !v.is_empty());
    if op.base == B::Null {
        let present = values.is_some();
        // `"true"` means "the key must be absent"; several values are ORed.
        return match &cond.compiled {
            CompiledValues::Bools(wants_absent) => {
                wants_absent.iter().any(|&absent| absent != present)
            }
            _ => false,
        };
    }
    let Some(values) = values else {
        return match op.qualifier {
            Some(SetQualifier::ForAllValues) => true,
            Some(SetQualifier::ForAnyValue) => op.if_exists,
            None => op.if_exists || op.base.is_negated(),
        };
    };
    let negated = op.base.is_negated();
    let holds = |v: &String| matches_any(op.base, &cond.compiled, v, ctx) != negated;
    match op.qualifier {
        Some(SetQualifier::ForAllValues) => values.iter().all(holds),
        Some(SetQualifier::ForAnyValue) => values.iter().any(holds),
        None if negated => values.iter().all(holds),
        None => values.iter().any(holds),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operator_names_round_trip() {
        for base in ALL {
            for q in [
                None,
                Some(SetQualifier::ForAnyValue),
                Some(SetQualifier::ForAllValues),
            ] {
                for if_exists in [false, true] {
                    let op = ConditionOperator {
                        qualifier: q,
                        base,
                        if_exists,
                    };
                    let name = op.to_string();
                    match ConditionOperator::parse(&name) {
                        Ok(parsed) => assert_eq!(parsed, op, "{name}"),
                        Err(OperatorError::NullQualified(_)) => assert_eq!(base, B::Null),
                        Err(e) => panic!("{name}: {e}"),
                    }
                }
            }
        }
        assert!(matches!(
            ConditionOperator::parse("StringEqualz"),
            Err(OperatorError::Unknown(_))
        ));
        assert!(ConditionOperator::parse("stringequals").is_err());
        assert!(ConditionOperator::parse("ForSomeValues:StringEquals").is_err());
    }

    #[test]
    fn cidr_and_dates() {
        let c = Cidr::parse("203.0.113.0/24").unwrap();
        assert!(c.contains("203.0.113.7".parse().unwrap()));
        assert!(!c.contains("203.0.114.7".parse().unwrap()));
        assert!(
            Cidr::parse("0.0.0.0/0")
                .unwrap()
                .contains("8.8.8.8".parse().unwrap())
        );
        assert!(
            Cidr::parse("2001:db8::/32")
                .unwrap()
                .contains("2001:db8::1".parse().unwrap())
        );
        assert!(Cidr::parse("10.0.0.0/33").is_none());
        assert!(Cidr::parse("nope").is_none());
        assert_eq!(parse_date("2020-01-01"), parse_date("2020-01-01T00:00:00Z"));
        assert_eq!(parse_date("1577836800"), parse_date("2020-01-01T00:00:00Z"));
        assert!(parse_date("2020-01-01T01:00:00+01:00") == parse_date("2020-01-01T00:00:00Z"));
        assert!(parse_date("yesterday").is_none());
    }
}
