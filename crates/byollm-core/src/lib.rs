//! The core of byollm: tenancy and settings, identity (signing keys, identity
//! tokens, API keys and workload tokens), the store, the clock, and the seams for
//! the STS exchange (DESIGN §3, §4, §9).
//!
//! Invariants kept here:
//! - nothing secret is stored in plain text: keys and tokens as SHA-256 hashes,
//!   signing keys encrypted under a key-encryption key, AWS credentials never;
//! - every query is scoped by team, so one team never reads another's objects;
//! - time comes from a [`clock::Clock`], never from the system directly.

pub mod auth;
pub mod authz;
pub mod broker;
pub mod clock;
pub mod config;
pub mod error;
pub mod identity;
pub mod ids;
pub mod merge_patch;
pub mod secret_ref;
pub mod service;
pub mod settings;
pub mod store;
pub mod sts;
pub mod sts_sdk;
pub mod usage;
pub mod validate;

pub use error::CoreError;
