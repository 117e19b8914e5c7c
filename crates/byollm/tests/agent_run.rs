//! `byollm agent run` and `byollm aws credential-process` as a sandbox sees
//! them: the real AWS CLI inside the worker reports the run's assumed role and
//! session name, through the token file and through `credential_process`; the
//! run is finished (or failed); without worker identity tokens the worker says
//! so and the server-side broker serves it.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr,
    clippy::disallowed_methods,
    reason = "test code: a failed unwrap is a failed test"
)]

#[path = "agent_support/harness.rs"]
#[allow(dead_code, reason = "each test binary uses part of the harness")]
mod harness;

use harness::{BIN, Env, aws_cli_or_skip};

struct Out {
    ok: bool,
    stdout: String,
    stderr: String,
}

async fn run(cmd: &mut tokio::process::Command) -> Out {
    let out = cmd.output().await.unwrap();
    Out {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn worker(env: &Env, run_id: &str, token: &str, args: &[&str]) -> tokio::process::Command {
    let mut all = vec!["agent", "run"];
    all.extend_from_slice(args);
    let mut cmd = env.byollm(&all);
    cmd.env("BYOLLM_RUN_ID", run_id)
        .env("BYOLLM_WORKLOAD_TOKEN", token)
        .env("BYOLLM_AWS_ENDPOINT_URL", env.sim.endpoint_url());
    cmd
}

#[tokio::test]
async fn the_aws_cli_in_the_worker_assumes_the_run_role_through_the_token_file() {
    if !aws_cli_or_skip("token file") {
        return;
    }
    let env = Env::start(true).await;
    let (run_id, token) = env.start_run(Some("hello from the run")).await;
    let out = run(&mut worker(
        &env,
        &run_id,
        &token,
        &[
            "--worker-credentials",
            "--aws-sink",
            "token-file",
            "--",
            "aws",
            "sts",
            "get-caller-identity",
            "--output",
            "json",
        ],
    ))
    .await;
    assert!(out.ok, "stdout: {}\nstderr: {}", out.stdout, out.stderr);
    let arn = format!("arn:aws:sts::123456789012:assumed-role/byollm-team/byollm-run-{run_id}");
    assert!(out.stdout.contains(&arn), "{}\n{}", out.stdout, out.stderr);
    // The agent loop answered the prompt through Bedrock with the worker's
    // own credentials; the server's broker never assumed anything.
    assert!(out.stdout.contains("hello from the run"), "{}", out.stdout);
    assert!(out.stderr.contains("route aws_bedrock:"), "{}", out.stderr);
    assert!(out.stderr.contains("the worker's own"), "{}", out.stderr);
    assert!(env.server.core.broker().is_empty());
    // The worker's STS call and the CLI's own, from the token file.
    assert_eq!(env.sts_calls(), 2);
    assert_eq!(env.run_state(&run_id).await, "finished");
    assert!(!out.stderr.contains(&token) && !out.stdout.contains(&token));
    env.stop().await;
}

#[tokio::test]
async fn the_aws_cli_in_the_worker_assumes_the_run_role_through_credential_process() {
    if !aws_cli_or_skip("credential_process") {
        return;
    }
    let env = Env::start(true).await;
    let (run_id, token) = env.start_run(None).await;
    let config = env.dir.path().join("aws-config");
    std::fs::write(
        &config,
        format!(
            "[profile run]\nregion = us-east-1\ncredential_process = {BIN} aws credential-process\n"
        ),
    )
    .unwrap();
    let out = run(worker(
        &env,
        &run_id,
        &token,
        &[
            "--aws-sink",
            "credential-process",
            "--",
            "aws",
            "sts",
            "get-caller-identity",
            "--profile",
            "run",
            "--output",
            "json",
        ],
    )
    .env("AWS_CONFIG_FILE", &config))
    .await;
    assert!(out.ok, "stdout: {}\nstderr: {}", out.stdout, out.stderr);
    let arn = format!("arn:aws:sts::123456789012:assumed-role/byollm-team/byollm-run-{run_id}");
    assert!(out.stdout.contains(&arn), "{}\n{}", out.stdout, out.stderr);
    // credential_process asked the worker: one STS call in all.
    assert_eq!(env.sts_calls(), 1);
    assert_eq!(env.run_state(&run_id).await, "finished");
    env.stop().await;
}

#[tokio::test]
async fn credential_process_on_its_own_prints_version_1_json_with_expiration() {
    let env = Env::start(true).await;
    let (run_id, token) = env.start_run(None).await;
    let out = run(env
        .byollm(&["aws", "credential-process"])
        .env("BYOLLM_RUN_ID", &run_id)
        .env("BYOLLM_WORKLOAD_TOKEN", &token)
        .env("BYOLLM_AWS_ENDPOINT_URL", env.sim.endpoint_url()))
    .await;
    assert!(out.ok, "{}", out.stderr);
    let v: serde_json::Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(v["Version"], 1);
    let akid = v["AccessKeyId"].as_str().unwrap();
    assert!(akid.starts_with("ASIA"), "{akid}");
    assert!(v["SecretAccessKey"].is_string() && v["SessionToken"].is_string());
    let exp = v["Expiration"].as_str().unwrap();
    assert!(exp.ends_with('Z') && exp.contains('T'), "{exp}");
    let session = env.sim.session(akid).unwrap();
    assert_eq!(session.session_name, format!("byollm-run-{run_id}"));

    // Without a workload token it says what to set.
    let out = run(env
        .byollm(&["aws", "credential-process"])
        .env("BYOLLM_RUN_ID", &run_id))
    .await;
    assert!(!out.ok);
    assert!(
        out.stderr.contains("BYOLLM_WORKLOAD_TOKEN"),
        "{}",
        out.stderr
    );
    env.stop().await;
}

#[tokio::test]
async fn without_worker_tokens_the_worker_says_so_and_the_broker_serves_the_run() {
    let env = Env::start(false).await;
    let (run_id, token) = env.start_run(Some("broker please")).await;
    let out = run(&mut worker(
        &env,
        &run_id,
        &token,
        &[
            "--worker-credentials",
            "--",
            "sh",
            "-c",
            r#"test -z "$AWS_ROLE_ARN" && test -z "$BYOLLM_WORKLOAD_TOKEN""#,
        ],
    ))
    .await;
    assert!(out.ok, "stdout: {}\nstderr: {}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("worker_identity_tokens"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("server-side broker"), "{}", out.stderr);
    assert!(out.stdout.contains("broker please"), "{}", out.stdout);
    assert!(out.stderr.contains("route aws_bedrock:"), "{}", out.stderr);
    assert!(out.stderr.contains("server-side broker"), "{}", out.stderr);
    // The broker assumed the role for the run.
    assert_eq!(env.sts_calls(), 1);
    assert_eq!(env.run_state(&run_id).await, "finished");
    env.stop().await;
}

#[tokio::test]
async fn a_failing_child_fails_the_run() {
    let env = Env::start(true).await;
    let (run_id, token) = env.start_run(None).await;
    let out = run(&mut worker(&env, &run_id, &token, &["--", "false"])).await;
    assert!(!out.ok);
    assert!(out.stderr.contains("`false` exited with"), "{}", out.stderr);
    assert_eq!(env.run_state(&run_id).await, "failed");
    // A finished run cannot be worked again.
    let out = run(&mut worker(&env, &run_id, &token, &[])).await;
    assert!(!out.ok);
    env.stop().await;
}
