//! The agent-side runtime (DESIGN §2 flows 2 and 4): AWS credentials for a
//! worker or a terminal client, kept fresh, and handed to tools.
//!
//! - [`OidcManaged`]: an identity token from the byollm server (a run's workload
//!   token, or a member's API key, through `byollm_api::client::Client`),
//!   exchanged with STS `AssumeRoleWithWebIdentity` by `byollm-federation`, on
//!   its refresh policy: ahead of the credentials' own expiry with jitter and
//!   backoff, never on a fixed timer; an `ExpiredToken` answer means "mint again
//!   now".
//! - [`LocalChain`]: the member's own credentials from the AWS default chain or a
//!   named profile (SSO, `credential_process`, env, files), with an
//!   auth-refresh command run when they are missing or expired.
//! - Sinks ([`sink`]): AWS's `credential_process` JSON, a web-identity token file
//!   kept fresh (written atomically, mode 0600) and the environment that points
//!   child processes at it, and a local socket that serves `credential_process`.
//!
//! Invariants: secrets are [`secrecy::SecretString`] from the moment they are
//! parsed, so `Debug` and errors never show them; time is read through a
//! [`byollm_api::clock::Clock`], so refresh is testable with its `FakeClock`;
//! AWS SDK types stay in this crate and `byollm-federation`. No server or store
//! dependency (DESIGN §10).

pub mod creds;
pub mod gateway;
pub mod local;
pub mod oidc;
pub mod sink;

pub use creds::{AwsCredentials, CredentialState, CredentialStatus};
pub use local::{LocalChain, LocalChainConfig, LocalError};
pub use oidc::{OidcConfig, OidcError, OidcManaged, TokenSource};
