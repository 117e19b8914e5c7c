//! Settings of the core that operators choose (from `byollm.toml`).

use crate::identity::DEFAULT_MAX_TOKEN_TTL_SECONDS;
use crate::identity::keys::Algorithm;

/// Operator settings the domain needs.
#[derive(Debug, Clone)]
pub struct CoreConfig {
    /// The issuer URL, exactly as tokens carry it in `iss`.
    pub issuer_url: String,
    /// Algorithm of newly generated signing keys.
    pub signing_algorithm: Algorithm,
    /// Ceiling of `requested_duration_seconds`.
    pub max_token_ttl_seconds: i64,
    /// Longest a run's workload token lives, even if the run never finishes.
    pub run_max_age_seconds: i64,
    /// Runs and audit rows older than this many days are purged.
    pub retention_days: i64,
}

impl CoreConfig {
    /// Defaults for an issuer URL.
    pub fn new(issuer_url: impl Into<String>) -> Self {
        Self {
            issuer_url: issuer_url.into(),
            signing_algorithm: Algorithm::Es256,
            max_token_ttl_seconds: DEFAULT_MAX_TOKEN_TTL_SECONDS,
            run_max_age_seconds: 24 * 3600,
            retention_days: 90,
        }
    }
}
