//! Integration tests of the byollm server, in one binary (STYLE.md "Tests"):
//! the issuer end to end over a socket (and its key rotation), the authorization
//! matrix, the minting and tenancy rules, onboarding (invitations, owner rules,
//! key expiry, paging, one credential per request), bad input, and a scan for secrets left
//! on disk or in the logs.

#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers outside #[test] functions fail loudly too"
)]

mod agent_run_paging;
mod audit;
mod auth_abuse;
mod authz_matrix;
mod authz_table;
mod azure_tokens;
mod bad_input;
mod common;
mod connections;
mod console;
mod gcp_settings;
mod invitations;
mod key_expiry;
mod mint_rules;
mod oidc_e2e;
mod owner_rules;
mod paging;
mod replica_changes;
mod safe_writes;
mod secrets_scan;
mod tenancy_rules;
mod two_credentials;
mod usage_report;
