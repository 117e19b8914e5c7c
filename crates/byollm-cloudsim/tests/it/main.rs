//! Integration tests of the emulator, driven only through the official AWS SDK
//! for Rust clients (`aws-sdk-sts`, `aws-sdk-bedrockruntime`) with endpoint
//! overrides, plus raw HTTP for the direct APIs and the control endpoint. IAM
//! state is seeded through the library API (the AWS CLI exercises IAM's wire
//! protocol in `crates/byollm/tests/cloudsim_cli.rs`).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr,
    clippy::disallowed_methods,
    reason = "test code: a failed unwrap is a failed test"
)]

mod azure;
mod azure_e2e;
mod azure_foundry;
mod azure_openai;
mod bedrock;
mod common;
mod direct;
mod e2e;
mod gcp;
mod gcp_e2e;
mod gcp_gemini;
mod gcp_google_auth;
mod iam;
mod sts;
