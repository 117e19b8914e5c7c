//! `byollm demo` runs end to end (emulator, server, team, roles, a streamed
//! Bedrock reply, credits, a refused agent and the doctor's diagnosis) and exits
//! 0, printing the lines the README's transcript shows and no secret.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr,
    clippy::disallowed_methods,
    reason = "test code: a failed unwrap is a failed test"
)]

use std::process::Command;

#[test]
fn the_demo_runs_and_prints_its_transcript() {
    let out = Command::new(env!("CARGO_BIN_EXE_byollm"))
        .arg("demo")
        .env("RUST_LOG", "off")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "exit {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    for needle in [
        "OIDC provider  arn:aws:iam::123456789012:oidc-provider/issuer.byollm.test",
        "role           arn:aws:iam::123456789012:role/byollm-acme",
        "own role     arn:aws:iam::123456789012:role/byollm-release-bot",
        "sub = scoped_principal:",
        "/service_account:",
        "iss = https://issuer.byollm.test",
        "> Hello from a byollm agent run",
        "x-byollm-route: aws_bedrock:global.anthropic.claude-sonnet-4-6@us-east-1",
        "STS AssumeRoleWithWebIdentity calls: 1",
        "STS calls still 1",
        "credits: inference 0.00",
        "platform 1.00",
        "compute 0.10",
        "POST /v1/messages -> HTTP 403",
        "allow_fallback_outside_cloud is false",
        "[FAIL] sts",
        "cause: sub_not_admitted",
        "condition StringEquals",
        "Done in",
    ] {
        assert!(stdout.contains(needle), "missing {needle:?} in:\n{stdout}");
    }
    // No secret reaches the terminal: keys, workload tokens, JWTs, AWS keys.
    for secret in [
        byollm_core::ids::API_KEY_PREFIX,
        byollm_core::ids::WORKLOAD_TOKEN_PREFIX,
        "eyJ",
        "ASIA",
        "awsimAdminSecret",
        "sk-awsim",
    ] {
        assert!(
            !stdout.contains(secret) && !stderr.contains(secret),
            "{secret} printed:\n{stdout}\n{stderr}"
        );
    }
}
