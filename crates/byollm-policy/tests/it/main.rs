//! Integration tests of byollm-policy: evaluator tables and properties, parser
//! errors, generated trust policies per scope, snapshots of every generated
//! document, and the explainer.

#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test helpers outside #[test] functions fail loudly too"
)]

mod azure_generated;
mod common;
mod eval_table;
mod explain;
mod gcp_generated;
mod generated;
mod parse_errors;
mod props;
mod trust_scopes;
