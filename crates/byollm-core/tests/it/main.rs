//! Integration tests of the store and the keyring, run against SQLite and, when
//! `BYOLLM_TEST_POSTGRES_URL` is set (CI starts a server), PostgreSQL.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr,
    clippy::disallowed_methods,
    reason = "test and bench code: a failed unwrap is a failed test"
)]

mod audited_writes;
mod auth_cache;
mod keyring;
mod ledger;
mod migration_0004;
mod onboarding;
mod run_lifetimes;
mod stores;
mod tenancy;
mod usage;
