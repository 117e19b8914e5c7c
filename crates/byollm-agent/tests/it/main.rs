//! byollm-agent against the real thing: byollm's issuer on a loopback socket and
//! the `byollm-cloudsim` emulator verifying its tokens over HTTP. Time is either a
//! fake clock shared by the server, the emulator and the agent (refresh
//! windows, backoff, token file), or real time with short emulator sessions
//! (inference across several credential lifetimes).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr,
    clippy::disallowed_methods,
    reason = "test code: a failed unwrap is a failed test"
)]

mod harness;
mod local;
mod long_run;
mod oidc;
