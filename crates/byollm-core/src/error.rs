//! The domain's error: each variant maps to one HTTP status at the edge
//! (DESIGN §6), with a message safe to show the caller and an optional hint.

use crate::store::StoreError;
use crate::validate::FieldError;

/// What went wrong, in the caller's terms.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// Invalid input (400), naming the field.
    #[error(transparent)]
    Invalid(#[from] FieldError),
    /// No or bad credentials (401).
    #[error("missing or invalid credentials")]
    Unauthenticated,
    /// Authenticated but not allowed (403).
    #[error("{message}")]
    Forbidden {
        /// What is not allowed.
        message: String,
        /// What to do.
        hint: Option<String>,
    },
    /// Unknown object, or another team's (404).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// Conflict with the current state (409).
    #[error("{0}")]
    Conflict(String),
    /// The client's `If-Match` names a version that is no longer current (412).
    #[error("{0}")]
    PreconditionFailed(String),
    /// A valid request the settings refuse (422).
    #[error("{message}")]
    Refused {
        /// Why.
        message: String,
        /// What the admin can change.
        hint: Option<String>,
    },
    /// The store cannot be reached right now (503 with `Retry-After`
    /// [`RETRY_AFTER_SECONDS`]); the detail goes to the log, not the caller.
    /// Transient: the same request may succeed once the store is back.
    #[error("the store is unavailable")]
    Unavailable(String),
    /// Something inside failed (500); the detail goes to the log, not the caller.
    #[error("internal error")]
    Internal(String),
}

/// `Retry-After` (seconds) on a 503 for an unreachable store: about the time a
/// PostgreSQL restart or failover takes.
pub const RETRY_AFTER_SECONDS: u64 = 5;

impl CoreError {
    /// A 403 with a hint.
    pub fn forbidden(message: impl Into<String>, hint: Option<&str>) -> Self {
        CoreError::Forbidden {
            message: message.into(),
            hint: hint.map(str::to_owned),
        }
    }

    /// A 422 with a hint.
    pub fn refused(message: impl Into<String>, hint: Option<&str>) -> Self {
        CoreError::Refused {
            message: message.into(),
            hint: hint.map(str::to_owned),
        }
    }
}

impl From<StoreError> for CoreError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(m) => CoreError::Conflict(m),
            other if other.is_unavailable() => CoreError::Unavailable(other.to_string()),
            other => CoreError::Internal(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An unreachable database is a transient 503, a refused statement stays
    /// a 500, a uniqueness conflict a 409.
    #[test]
    fn store_errors_map_by_whether_the_database_was_reachable() {
        let io = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        for unreachable in [
            StoreError::Db(sqlx::Error::PoolTimedOut),
            StoreError::Db(sqlx::Error::Io(io)),
            StoreError::Db(sqlx::Error::PoolClosed),
        ] {
            assert!(unreachable.is_unavailable(), "{unreachable}");
            assert!(matches!(
                CoreError::from(unreachable),
                CoreError::Unavailable(_)
            ));
        }
        let refused = StoreError::Db(sqlx::Error::RowNotFound);
        assert!(!refused.is_unavailable());
        assert!(matches!(CoreError::from(refused), CoreError::Internal(_)));
        assert!(matches!(
            CoreError::from(StoreError::Conflict("x".into())),
            CoreError::Conflict(_)
        ));
    }
}
