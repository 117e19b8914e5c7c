//! Versions, ETags and `If-Match` for the resources clients edit (an agent, the
//! team's LLM settings, a member's own settings).
//!
//! Invariant: every read-modify-write of such a resource is a compare-and-swap
//! on its `version` column (`UPDATE … SET version = version + 1 WHERE … AND
//! version = $seen`), the same SQL on SQLite and PostgreSQL. A write that loses
//! the race re-reads and re-applies its change (a PATCH), or — when the client
//! sent `If-Match` — fails with 412, because the client's copy is stale.

use crate::error::CoreError;
use crate::validate::FieldError;

/// How many times a write re-reads after losing a compare-and-swap before it
/// gives up with a 409.
pub const MAX_ATTEMPTS: usize = 16;

/// A value and the version it was read at.
#[derive(Debug, Clone, PartialEq)]
pub struct Versioned<T> {
    /// The value.
    pub value: T,
    /// Its version (the ETag's content).
    pub version: i64,
}

/// The strong ETag of a version, quotes included.
pub fn etag(version: i64) -> String {
    format!("\"{version}\"")
}

/// A parsed `If-Match` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IfMatch {
    /// `*`: any current version.
    Any,
    /// One or more versions, any of which may be current.
    Versions(Vec<i64>),
}

impl IfMatch {
    /// Parses `If-Match` (`*`, or a comma-separated list of ETags as sent by
    /// [`etag`]); a weak or foreign ETag never matches.
    pub fn parse(header: &str) -> Result<IfMatch, FieldError> {
        let header = header.trim();
        if header == "*" {
            return Ok(IfMatch::Any);
        }
        let mut versions = Vec::new();
        for tag in header.split(',').map(str::trim) {
            let inner = tag
                .strip_prefix('"')
                .and_then(|t| t.strip_suffix('"'))
                .ok_or_else(|| {
                    FieldError::new(
                        "If-Match",
                        format!(
                            "{} is not an ETag; send the ETag header of the last GET, quotes included, or *",
                            crate::validate::quote(tag)
                        ),
                    )
                })?;
            // A weak or unknown tag is valid syntax but matches nothing.
            versions.push(inner.parse::<i64>().unwrap_or(-1));
        }
        Ok(IfMatch::Versions(versions))
    }

    /// Refuses with 412 when the current version is not one the client named.
    pub fn check(&self, current: i64) -> Result<(), CoreError> {
        match self {
            IfMatch::Any => Ok(()),
            IfMatch::Versions(v) if v.contains(&current) => Ok(()),
            IfMatch::Versions(_) => Err(stale()),
        }
    }
}

/// The 412 a stale `If-Match` gets.
pub fn stale() -> CoreError {
    CoreError::PreconditionFailed(
        "the resource changed since you read it (If-Match does not match its ETag); \
         re-read it (GET), re-apply your change and send the new ETag"
            .into(),
    )
}

/// The 409 when a write kept losing the race.
pub fn contended() -> CoreError {
    CoreError::Conflict("the resource is being changed by others; try again".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_match_parses_and_checks() {
        assert_eq!(IfMatch::parse("*").unwrap(), IfMatch::Any);
        let m = IfMatch::parse("\"3\", \"5\"").unwrap();
        assert!(m.check(5).is_ok());
        assert!(matches!(m.check(4), Err(CoreError::PreconditionFailed(_))));
        assert!(IfMatch::parse("W/\"3\"").is_err());
        assert!(IfMatch::parse("\"abc\"").unwrap().check(0).is_err());
        assert_eq!(etag(7), "\"7\"");
        assert!(IfMatch::parse(&etag(7)).unwrap().check(7).is_ok());
    }
}
