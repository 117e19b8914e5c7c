//! Integration tests of the byollm server, in one binary (STYLE.md "Tests"):
//! the issuer end to end over a socket (and its key rotation), the authorization
//! matrix, the minting and tenancy rules, bad input, and a scan for secrets left
//! on disk or in the logs.

#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers outside #[test] functions fail loudly too"
)]

mod audit;
mod auth_abuse;
mod authz_matrix;
mod authz_table;
mod bad_input;
mod common;
mod connections;
mod mint_rules;
mod oidc_e2e;
mod secrets_scan;
mod tenancy_rules;
mod usage_report;
