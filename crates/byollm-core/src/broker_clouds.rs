//! The clouds the broker exchanges for: what a key names ([`CloudTarget`])
//! and what comes back ([`CloudCredentials`]). Each variant is one cloud's
//! exchange in `byollm_federation`; a new cloud is a variant here and an arm
//! in [`super::CredentialsBroker`]'s exchange, and the broker's rules (single
//! flight, refresh ahead of expiry, held failures, drops) apply unchanged.

use byollm_federation::Expiring as _;
use byollm_federation::aws::TemporaryCredentials;
use byollm_federation::azure::{EntraTarget, EntraToken};
use byollm_federation::gcp::{AccessToken, PoolTarget};

/// What the credentials are for, in one cloud.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CloudTarget {
    /// AWS: the role assumed and the STS and Bedrock region.
    Aws {
        /// The role assumed.
        role_arn: String,
        /// The STS and Bedrock region.
        region: String,
    },
    /// Google Cloud: the team's workload identity pool provider (the
    /// token's audience) and the service account impersonated, if any.
    Gcp(PoolTarget),
    /// Azure: the Entra tenant and the managed identity or app registration
    /// whose federated identity credentials admit the token, and the scope.
    Azure(EntraTarget),
}

/// One cloud's short-lived credentials (secrets hidden from `Debug`).
#[derive(Debug)]
pub enum CloudCredentials {
    /// Temporary AWS credentials.
    Aws(TemporaryCredentials),
    /// A Google access token.
    Gcp(AccessToken),
    /// An Entra access token.
    Azure(EntraToken),
}

impl CloudCredentials {
    /// When they stop working, Unix milliseconds.
    pub fn expires_at_ms(&self) -> i64 {
        match self {
            CloudCredentials::Aws(c) => c.expires_at_ms,
            CloudCredentials::Gcp(t) => t.expires_at_ms(),
            CloudCredentials::Azure(t) => t.expires_at_ms(),
        }
    }
}
