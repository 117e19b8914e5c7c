//! The core of byollm: tenancy and settings, identity (signing keys, identity
//! tokens, API keys and workload tokens), the store, and the credentials broker
//! that caches what `byollm-federation` exchanges (DESIGN §3, §4, §5, §9).
//!
//! Invariants kept here:
//! - nothing secret is stored in plain text: keys and tokens as SHA-256 hashes,
//!   signing keys encrypted under a key-encryption key, AWS credentials never;
//! - every query is scoped by team, so one team never reads another's objects;
//! - time comes from a [`byollm_api::clock::Clock`], never from the system
//!   directly.

pub mod auth;
pub mod authz;
pub mod bounded;
pub mod broker;
pub mod config;
pub mod error;
pub mod identity;
pub mod ids;
pub mod merge_patch;
pub mod secret_ref;
pub mod service;
pub mod settings;
pub mod store;
#[cfg(feature = "test-util")]
pub mod testing;
pub mod usage;
pub mod validate;
pub mod versioned;

pub use error::CoreError;
