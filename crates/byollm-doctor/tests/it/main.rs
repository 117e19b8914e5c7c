//! The doctor against a whole stack in process (`byollm-stack`: the AWS emulator,
//! the server and a bootstrapped team): each test sets a fault up and asserts the
//! cause the report names.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed unwrap is a failed test"
)]

mod azure;
mod causes;
