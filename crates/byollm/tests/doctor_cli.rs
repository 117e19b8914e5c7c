//! `byollm aws doctor` as a command: against a server and the emulator started
//! in this test, it names a missing OIDC provider (exit 1, JSON report), then
//! passes every step once the provider exists (exit 0, text report). The
//! per-cause tests call the doctor library directly (`crates/byollm-doctor/tests/it`).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr,
    clippy::disallowed_methods,
    reason = "test code: a failed unwrap is a failed test"
)]

use std::sync::Arc;

use byollm_api::clock::SystemClock;
use byollm_cloudsim::{Cloudsim, CloudsimConfig};
use byollm_core::config::CoreConfig;
use byollm_server::app;
use byollm_server::config::{ServerConfig, Upstreams};
use serde_json::{Value, json};

const ISSUER: &str = "https://issuer.doctor.test";

/// Runs the doctor with the emulator as AWS: through `--aws-endpoint-url`, or
/// with `endpoint_env` through that environment variable instead.
async fn doctor_with(
    base: &str,
    key: &str,
    sim: &Cloudsim,
    extra: &[&str],
    endpoint_env: Option<&str>,
) -> (i32, String, String) {
    let (ak, sk) = sim.admin_credentials();
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_byollm"));
    cmd.args(["aws", "doctor", "--server", base])
        .env_remove("BYOLLM_AWS_ENDPOINT_URL")
        .env_remove("AWS_ENDPOINT_URL");
    match endpoint_env {
        Some(var) => cmd.env(var, sim.endpoint_url()),
        None => cmd.arg("--aws-endpoint-url").arg(sim.endpoint_url()),
    };
    let out = cmd
        .args(extra)
        .env("BYOLLM_API_KEY", key)
        .env("AWS_ACCESS_KEY_ID", ak)
        .env("AWS_SECRET_ACCESS_KEY", sk)
        .env_remove("AWS_SESSION_TOKEN")
        .env("RUST_LOG", "off")
        // The doctor keeps per-model verdicts for `byollm models`: not in $HOME.
        .env(
            "BYOLLM_CONFIG_DIR",
            std::env::temp_dir().join("byollm-doctor-cli-state"),
        )
        .output()
        .await
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn doctor(base: &str, key: &str, sim: &Cloudsim, extra: &[&str]) -> (i32, String, String) {
    doctor_with(base, key, sim, extra, None).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_doctor_command_names_the_cause_and_exits_accordingly() {
    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let sim = Cloudsim::start(CloudsimConfig {
        resolve: vec![("issuer.doctor.test".into(), addr)],
        ..CloudsimConfig::default()
    })
    .await
    .unwrap();
    let cfg = ServerConfig {
        upstreams: Upstreams {
            aws_endpoint_url: Some(sim.endpoint_url()),
            ..Upstreams::default()
        },
        ..ServerConfig::new(addr, dir.path().join("data"), CoreConfig::new(ISSUER))
    };
    let gw = app::gateway_config(&cfg).unwrap();
    let core = app::build_core(&cfg, Arc::new(SystemClock)).await.unwrap();
    let boot =
        byollm_core::service::bootstrap_team(core.store(), &SystemClock, "Acme", "o@acme.example")
            .await
            .unwrap();
    let server = app::serve_on(listener, core, gw).await.unwrap();
    let base = format!("http://{addr}");
    let key = boot.api_key.expose().to_owned();
    let trust = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Principal": {"Federated": format!("arn:aws:iam::{}:oidc-provider/issuer.doctor.test", sim.account_id())},
        "Action": "sts:AssumeRoleWithWebIdentity",
        "Condition": {"StringEquals": {"issuer.doctor.test:aud": "sts.amazonaws.com"},
                      "StringLike": {"issuer.doctor.test:sub": format!("scoped_principal:{}/*", boot.team_uid)}}}]});
    let role = sim.create_role("team", &trust.to_string(), None).unwrap();
    sim.put_role_policy(
        "team",
        "bedrock",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow",
        "Action":"bedrock:InvokeModel","Resource":["arn:aws:bedrock:*::foundation-model/*",
        "arn:aws:bedrock:*:*:inference-profile/*"]}]}"#,
    )
    .unwrap();
    let r = reqwest::Client::new()
        .patch(format!("{base}/api/v1/team/llm-settings"))
        .bearer_auth(&key)
        .json(&json!({"hosts": {"aws_bedrock": {"enabled": true, "role_arn": role, "region": "us-east-1"}}}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());

    let (code, stdout, stderr) = doctor(&base, &key, &sim, &["--json"]).await;
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        report["diagnosis"]["cause"], "oidc_provider_missing",
        "{stdout}"
    );
    assert_eq!(report["diagnosis"]["step"], "sts");
    assert!(
        stderr.contains("the doctor found a problem: oidc_provider_missing"),
        "{stderr}"
    );
    assert!(!stdout.contains(&key) && !stderr.contains(&key));

    sim.create_oidc_provider(ISSUER, &["sts.amazonaws.com"])
        .unwrap();
    let (code, stdout, stderr) = doctor(&base, &key, &sim, &[]).await;
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(stdout.contains("[ok  ] bedrock"), "{stdout}");
    assert!(stdout.contains("Everything works"), "{stdout}");
    // One way to point every command at an endpoint: the environment works too.
    for var in ["BYOLLM_AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL"] {
        let (code, stdout, stderr) = doctor_with(&base, &key, &sim, &[], Some(var)).await;
        assert_eq!(code, 0, "{var}: {stdout}\n{stderr}");
    }

    // Without the key the command says how to give it.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_byollm"))
        .args(["aws", "doctor", "--server", &base])
        .env_remove("BYOLLM_API_KEY")
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("BYOLLM_API_KEY"));
    server.shutdown().await;
    sim.shutdown().await;
}

/// `byollm azure doctor` on the demo's Azure team: healthy (exit 0, every
/// step ok), then, with the team's FIC removed, failing (exit 1) at the
/// Entra step with `entra_no_matching_fic` and a fix naming the subject.
#[tokio::test]
async fn azure_doctor_walks_to_foundry_and_names_a_missing_fic() {
    use byollm_stack::azure::AZURE_CLIENT_ID;
    use secrecy::ExposeSecret as _;
    let stack = byollm_stack::Stack::start("Acme", "owner@acme.example")
        .await
        .unwrap();
    let team = stack
        .bootstrap_azure_team("Initech", "owner@initech.example")
        .await
        .unwrap();
    let run = || async {
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_byollm"))
            .args(["azure", "doctor", "--server", &stack.base])
            .args(["--azure-endpoint-url", &stack.sim.endpoint_url()])
            .env("BYOLLM_API_KEY", team.owner_key.expose_secret())
            .env("RUST_LOG", "off")
            .env(
                "BYOLLM_CONFIG_DIR",
                std::env::temp_dir().join("byollm-doctor-cli-state"),
            )
            .output()
            .await
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, stdout, stderr) = run().await;
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    for step in ["server", "discovery", "jwks", "token", "entra", "foundry"] {
        assert!(
            stdout.contains(&format!("[ok  ] {step}")),
            "{step} in:\n{stdout}"
        );
    }
    assert!(stdout.contains("byollm azure doctor"), "{stdout}");
    stack
        .sim
        .azure()
        .remove_fic(AZURE_CLIENT_ID, &team.fic.name);
    let (code, stdout, stderr) = run().await;
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    assert!(stdout.contains("[FAIL] entra"), "{stdout}");
    assert!(stdout.contains("cause: entra_no_matching_fic"), "{stdout}");
    assert!(
        stdout.contains(&format!("--subject scoped_principal:{} ", team.team_uid)),
        "{stdout}"
    );
    assert!(
        stderr.contains("the doctor found a problem: entra_no_matching_fic"),
        "{stderr}"
    );
    assert!(
        !stdout.contains("eyJ") && !stderr.contains("eyJ"),
        "a token was printed"
    );
    stack.shutdown().await;
}
