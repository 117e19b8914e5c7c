//! End-to-end tests of the inference gateway against the emulator, through real
//! sockets: byollm's issuer and gateway on one port, `byollm-cloudsim` (IAM, STS,
//! Bedrock, Google's STS and Vertex AI, and the direct APIs) on another,
//! verifying tokens over HTTP.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr,
    clippy::disallowed_methods,
    reason = "test code: a failed unwrap is a failed test"
)]

mod agent_runs;
mod azure;
mod azure_granularity;
mod azure_openai;
mod azure_side;
mod body_limit;
mod fallback;
mod gemini;
mod harness;
mod interactive;
mod lifetimes;
mod prometheus;
mod python_sdks;
mod refresh;
mod streams;
mod three_clouds;
mod timeouts;
#[path = "../support/tools.rs"]
mod tools;
mod traces;
mod vertex;
