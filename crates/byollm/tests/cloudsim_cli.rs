//! The setup script of `byollm aws setup-script` runs unmodified with the real AWS
//! CLI against `byollm cloudsim` (the built binary), twice (it is idempotent); the
//! role it creates then admits the intended team's member and refuses another
//! team's, and the least-privilege permissions policy it puts lets the admitted
//! session call Bedrock for the enabled model only.
//!
//! Needs the `aws` CLI (`pip install awscli`). Without it the test fails when `CI`
//! is set and prints a loud SKIP otherwise.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr,
    clippy::disallowed_methods,
    reason = "test code: a failed unwrap is a failed test"
)]

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;

use byollm_api::clock::SystemClock;
use byollm_api::routes;
use byollm_core::config::CoreConfig;
use byollm_server::ServerConfig;
use serde_json::{Value, json};

#[path = "support/tools.rs"]
mod tools;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const ISSUER: &str = "https://issuer.test";
const ACCOUNT: &str = "210987654321";
const ADMIN_KEY_ID: &str = "AKIACLITESTADMIN0001";
const ADMIN_SECRET: &str = "cliTestAdminSecretAccessKey0000000000000";
const ROLE: &str = "byollm-bedrock";

/// Kills the emulator when the test ends, however it ends.
struct Emulator(Child);

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn aws_cli_or_skip(test: &str) -> bool {
    tools::present_or_skip(test, &["aws", "--version"], "pip install awscli")
}

/// Starts `byollm cloudsim` on a free port; returns it and its endpoint URL.
fn start_emulator(issuer_addr: std::net::SocketAddr) -> (Emulator, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_byollm"))
        .args([
            "cloudsim",
            "--listen",
            "127.0.0.1:0",
            "--account-id",
            ACCOUNT,
            "--admin-access-key-id",
            ADMIN_KEY_ID,
            "--admin-secret-access-key",
            ADMIN_SECRET,
            "--resolve",
            &format!("issuer.test={issuer_addr}"),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let emulator = Emulator(child);
    let mut lines = BufReader::new(stderr).lines();
    let url = loop {
        let line = lines
            .next()
            .expect("cloudsim exited before listening")
            .unwrap();
        if let Some(url) = line.strip_prefix("cloudsim listening on ") {
            break url.to_owned();
        }
    };
    // Keep draining stderr so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (emulator, url)
}

/// Runs the AWS CLI (or bash) with the emulator's environment and nothing of the
/// developer's own AWS configuration.
fn aws_env(cmd: &mut Command, endpoint: &str, key_id: &str, secret: &str, token: Option<&str>) {
    cmd.env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_ACCESS_KEY_ID", key_id)
        .env("AWS_SECRET_ACCESS_KEY", secret)
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_CONFIG_FILE", "/nonexistent/awsim-cli-test")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/awsim-cli-test")
        .env("AWS_PAGER", "")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_REGION")
        .stdin(Stdio::null());
    match token {
        Some(t) => cmd.env("AWS_SESSION_TOKEN", t),
        None => cmd.env_remove("AWS_SESSION_TOKEN"),
    };
}

fn admin_aws(endpoint: &str, args: &[&str]) -> Output {
    let mut cmd = Command::new("aws");
    cmd.args(args);
    aws_env(&mut cmd, endpoint, ADMIN_KEY_ID, ADMIN_SECRET, None);
    cmd.output().unwrap()
}

/// POSTs JSON over a plain TCP connection (no HTTP client in this crate's
/// dependencies) and returns the parsed body.
async fn post_json(addr: std::net::SocketAddr, path: &str, bearer: &str, body: &Value) -> Value {
    let body = body.to_string();
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {bearer}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(req.as_bytes()).await.unwrap();
    let mut resp = Vec::new();
    stream.read_to_end(&mut resp).await.unwrap();
    let text = String::from_utf8(resp).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}\n{body}");
    serde_json::from_str(body).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn setup_script_runs_with_the_aws_cli_against_the_emulator() {
    if !aws_cli_or_skip("setup_script_runs_with_the_aws_cli_against_the_emulator") {
        return;
    }

    // The issuer, with two teams.
    let dir = tempfile::tempdir().unwrap();
    let cfg = ServerConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        dir.path().to_owned(),
        CoreConfig::new(ISSUER),
    );
    let server = byollm_server::start(&cfg, Arc::new(SystemClock))
        .await
        .unwrap();
    let clock = server.core.clock().clone();
    let team_a = byollm_core::service::bootstrap_team(
        server.core.store(),
        clock.as_ref(),
        "alpha",
        "owner@alpha.test",
    )
    .await
    .unwrap();
    let team_b = byollm_core::service::bootstrap_team(
        server.core.store(),
        clock.as_ref(),
        "beta",
        "owner@beta.test",
    )
    .await
    .unwrap();

    let (_emulator, endpoint) = start_emulator(server.addr);

    // The script, generated by the binary.
    let script = Command::new(env!("CARGO_BIN_EXE_byollm"))
        .args([
            "aws",
            "setup-script",
            "--issuer",
            ISSUER,
            "--team",
            &team_a.team_uid,
            "--account",
            ACCOUNT,
            "--role-name",
            ROLE,
            "--region",
            "us-east-1",
            "--model",
            "claude-sonnet-4-6",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        script.status.success(),
        "{}",
        String::from_utf8_lossy(&script.stderr)
    );
    let script_path = dir.path().join("setup.sh");
    std::fs::write(&script_path, &script.stdout).unwrap();

    // Twice: the second run finds everything in place and updates it.
    let role_arn = format!("arn:aws:iam::{ACCOUNT}:role/{ROLE}");
    for run in 1..=2 {
        let mut cmd = Command::new("bash");
        cmd.arg(&script_path);
        aws_env(&mut cmd, &endpoint, ADMIN_KEY_ID, ADMIN_SECRET, None);
        let out = cmd.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "run {run} failed:\n{stderr}");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            role_arn,
            "run {run}"
        );
        if run == 1 {
            assert!(stderr.contains("created OIDC provider"), "{stderr}");
            assert!(stderr.contains("created role"), "{stderr}");
        } else {
            assert!(
                stderr.contains("exists and accepts sts.amazonaws.com"),
                "{stderr}"
            );
            assert!(stderr.contains("updated the trust policy"), "{stderr}");
        }
    }
    // IAM holds exactly one provider and the role with its inline policy.
    let list = admin_aws(&endpoint, &["iam", "list-open-id-connect-providers"]);
    let list: Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(
        list["OpenIDConnectProviderList"].as_array().unwrap().len(),
        1
    );
    let policies = admin_aws(
        &endpoint,
        &["iam", "list-role-policies", "--role-name", ROLE],
    );
    let policies: Value = serde_json::from_slice(&policies.stdout).unwrap();
    assert_eq!(policies["PolicyNames"], json!(["byollm-bedrock-invoke"]));

    // Tokens for each team's owner.
    let mint = |key: String| {
        let addr = server.addr;
        async move {
            post_json(
                addr,
                routes::IDENTITY_TOKEN,
                &key,
                &json!({"audience": "sts.amazonaws.com", "requested_duration_seconds": 900}),
            )
            .await["token"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    let token_a = mint(team_a.api_key.expose().to_owned()).await;
    let token_b = mint(team_b.api_key.expose().to_owned()).await;
    let assume = |token: &str| {
        admin_aws(
            &endpoint,
            &[
                "sts",
                "assume-role-with-web-identity",
                "--role-arn",
                &role_arn,
                "--role-session-name",
                "byollm-user-test",
                "--web-identity-token",
                token,
            ],
        )
    };

    // Team A's owner is admitted…
    let ok = assume(&token_a);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let creds: Value = serde_json::from_slice(&ok.stdout).unwrap();
    let sub = format!(
        "scoped_principal:{}/user:{}",
        team_a.team_uid, team_a.owner_uid
    );
    assert_eq!(creds["SubjectFromWebIdentityToken"], sub.as_str());
    // …team B's is refused.
    let refused = assume(&token_b);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("An error occurred (AccessDenied) when calling the AssumeRoleWithWebIdentity operation: Not authorized to perform sts:AssumeRoleWithWebIdentity"),
        "{stderr}"
    );

    // The admitted session may converse with the enabled model, not another.
    let c = &creds["Credentials"];
    let converse = |model: &str| {
        let mut cmd = Command::new("aws");
        cmd.args([
            "bedrock-runtime",
            "converse",
            "--model-id",
            model,
            "--messages",
            r#"[{"role":"user","content":[{"text":"hello from the cli"}]}]"#,
        ]);
        aws_env(
            &mut cmd,
            &endpoint,
            c["AccessKeyId"].as_str().unwrap(),
            c["SecretAccessKey"].as_str().unwrap(),
            c["SessionToken"].as_str(),
        );
        cmd.output().unwrap()
    };
    let out = converse("global.anthropic.claude-sonnet-4-6");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reply: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        reply["output"]["message"]["content"][0]["text"],
        "hello from the cli"
    );
    let out = converse("global.anthropic.claude-opus-4-6-v1");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("(AccessDeniedException)"), "{stderr}");

    server.shutdown().await;
}

#[test]
fn the_old_name_awsim_still_runs_and_refuses_bad_flags_with_one_line() {
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_byollm"))
            .arg("awsim")
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    for args in [
        &["--listen", "127.0.0.1:0", "--resolve", "issuer.test"][..],
        &["--listen", "127.0.0.1:0", "--account-id", "12"][..],
        &[
            "--listen",
            "127.0.0.1:0",
            "--admin-access-key-id",
            "AKIAONLYTHEID0000000",
        ][..],
        &["--listen", "nowhere"][..],
        &[][..],
    ] {
        let out = run(args);
        assert!(!out.status.success(), "{args:?} should fail");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.trim().is_empty(), "{args:?}");
    }
    let out = run(&["--listen", "127.0.0.1:0", "--account-id", "12"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("account id must be 12 digits"), "{stderr}");
    let help = run(&["--help"]);
    assert!(help.status.success());
    let text = String::from_utf8_lossy(&help.stdout);
    for flag in [
        "--listen",
        "--account-id",
        "--admin-access-key-id",
        "--admin-secret-access-key",
        "--direct-api-key",
        "--region",
        "--resolve",
    ] {
        assert!(text.contains(flag), "{flag} missing from --help");
    }
}

/// The IAM operations the setup script does not reach, through the AWS CLI.
#[test]
fn iam_operations_with_the_aws_cli() {
    if !aws_cli_or_skip("iam_operations_with_the_aws_cli") {
        return;
    }
    let unused: std::net::SocketAddr = "127.0.0.1:9".parse().unwrap();
    let (_emulator, endpoint) = start_emulator(unused);
    let aws = |args: &[&str]| admin_aws(&endpoint, args);
    let ok = |args: &[&str]| {
        let out = aws(args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<Value>(&out.stdout).unwrap_or(Value::Null)
    };
    let err = |args: &[&str]| {
        let out = aws(args);
        assert!(!out.status.success(), "{args:?} should fail");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let provider = ok(&[
        "iam",
        "create-open-id-connect-provider",
        "--url",
        "https://issuer.test/tenant/",
        "--client-id-list",
        "sts.amazonaws.com",
    ])["OpenIDConnectProviderArn"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        provider,
        format!("arn:aws:iam::{ACCOUNT}:oidc-provider/issuer.test/tenant/")
    );
    ok(&[
        "iam",
        "add-client-id-to-open-id-connect-provider",
        "--open-id-connect-provider-arn",
        &provider,
        "--client-id",
        "api://other",
    ]);
    let got = ok(&[
        "iam",
        "get-open-id-connect-provider",
        "--open-id-connect-provider-arn",
        &provider,
    ]);
    assert_eq!(got["Url"], "issuer.test/tenant/");
    assert_eq!(
        got["ClientIDList"],
        json!(["sts.amazonaws.com", "api://other"])
    );
    assert!(
        err(&[
            "iam",
            "create-open-id-connect-provider",
            "--url",
            "https://issuer.test/tenant/",
            "--client-id-list",
            "x"
        ])
        .contains("(EntityAlreadyExists)")
    );

    let trust = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Principal": {"Federated": provider}, "Action": "sts:AssumeRoleWithWebIdentity"}]})
    .to_string();
    let role = ok(&[
        "iam",
        "create-role",
        "--role-name",
        "r1",
        "--path",
        "/byollm/",
        "--assume-role-policy-document",
        &trust,
        "--max-session-duration",
        "7200",
    ]);
    assert_eq!(
        role["Role"]["Arn"],
        format!("arn:aws:iam::{ACCOUNT}:role/byollm/r1")
    );
    assert_eq!(
        role["Role"]["AssumeRolePolicyDocument"]["Statement"][0]["Principal"]["Federated"],
        provider.as_str()
    );
    ok(&[
        "iam",
        "update-role",
        "--role-name",
        "r1",
        "--max-session-duration",
        "43200",
    ]);
    assert_eq!(
        ok(&["iam", "get-role", "--role-name", "R1"])["Role"]["MaxSessionDuration"],
        43200
    );
    let perms = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"bedrock:InvokeModel","Resource":"*"}]}"#;
    ok(&[
        "iam",
        "put-role-policy",
        "--role-name",
        "r1",
        "--policy-name",
        "p1",
        "--policy-document",
        perms,
    ]);
    let got = ok(&[
        "iam",
        "get-role-policy",
        "--role-name",
        "r1",
        "--policy-name",
        "p1",
    ]);
    assert_eq!(
        got["PolicyDocument"]["Statement"][0]["Action"],
        "bedrock:InvokeModel"
    );
    assert!(
        err(&[
            "iam",
            "put-role-policy",
            "--role-name",
            "r1",
            "--policy-name",
            "p2",
            "--policy-document",
            "{\"Statement\": []}"
        ])
        .contains("(MalformedPolicyDocument)")
    );
    assert!(err(&["iam", "delete-role", "--role-name", "r1"]).contains("(DeleteConflict)"));
    ok(&[
        "iam",
        "delete-role-policy",
        "--role-name",
        "r1",
        "--policy-name",
        "p1",
    ]);
    assert_eq!(
        ok(&["iam", "list-role-policies", "--role-name", "r1"])["PolicyNames"],
        json!([])
    );
    ok(&["iam", "delete-role", "--role-name", "r1"]);
    assert!(err(&["iam", "get-role", "--role-name", "r1"])
        .contains("An error occurred (NoSuchEntity) when calling the GetRole operation: The role with name r1 cannot be found."));
    ok(&[
        "iam",
        "delete-open-id-connect-provider",
        "--open-id-connect-provider-arn",
        &provider,
    ]);
    assert_eq!(
        ok(&["iam", "list-open-id-connect-providers"])["OpenIDConnectProviderList"],
        json!([])
    );

    // Wrong secret, unknown key.
    let mut cmd = Command::new("aws");
    cmd.args(["iam", "list-open-id-connect-providers"]);
    aws_env(&mut cmd, &endpoint, ADMIN_KEY_ID, "wrong", None);
    let out = cmd.output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("(SignatureDoesNotMatch)"));
    let mut cmd = Command::new("aws");
    cmd.args(["iam", "list-open-id-connect-providers"]);
    aws_env(&mut cmd, &endpoint, "AKIAUNKNOWNKEY000000", "x", None);
    let out = cmd.output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("(InvalidClientTokenId)"));
}
