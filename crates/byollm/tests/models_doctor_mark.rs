//! `byollm models` marks a route whose permissions `byollm aws doctor` found
//! missing: against the emulator, a role whose permissions allow one model
//! while the team routes two through Bedrock. The doctor keeps its per-model
//! verdicts on this machine (keyed by server, team and actor, with the time);
//! `models` shows the mark and a hint to re-run the doctor; once the role
//! grants both, a healthy doctor clears the mark.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_methods,
    reason = "test code: a failed unwrap is a failed test"
)]

use std::path::Path;
use std::sync::Arc;

use byollm_api::clock::SystemClock;
use byollm_cloudsim::{Cloudsim, CloudsimConfig};
use byollm_core::config::CoreConfig;
use byollm_server::app;
use byollm_server::config::{ServerConfig, Upstreams};
use serde_json::{Value, json};

const ISSUER: &str = "https://issuer.mark.test";

/// Runs `byollm ARGS` with the owner's key, the emulator as AWS (its admin
/// credentials, so the doctor may read IAM) and `state` as the CLI's directory.
async fn byollm(
    args: Vec<String>,
    base: &str,
    key: &str,
    sim: &Cloudsim,
    state: &Path,
) -> (i32, String, String) {
    let (ak, sk) = sim.admin_credentials();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_byollm"))
        .args(&args)
        .env("BYOLLM_SERVER", base)
        .env("BYOLLM_API_KEY", key)
        .env("BYOLLM_CONFIG_DIR", state)
        .env("BYOLLM_AWS_ENDPOINT_URL", sim.endpoint_url())
        .env_remove("AWS_ENDPOINT_URL")
        .env("AWS_ACCESS_KEY_ID", ak)
        .env("AWS_SECRET_ACCESS_KEY", sk)
        .env_remove("AWS_SESSION_TOKEN")
        .env("RUST_LOG", "off")
        .output()
        .await
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The `byollm models` table row of `model`.
fn row<'a>(table: &'a str, model: &str) -> &'a str {
    table
        .lines()
        .find(|l| l.starts_with(&format!("{model} ")))
        .unwrap_or_else(|| panic!("no row for {model}:\n{table}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn models_marks_the_routes_the_doctor_found_unpermitted_until_a_healthy_walk() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("cli");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let sim = Cloudsim::start(CloudsimConfig {
        resolve: vec![("issuer.mark.test".into(), addr)],
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
    let account = sim.account_id();
    sim.create_oidc_provider(ISSUER, &["sts.amazonaws.com"])
        .unwrap();
    let trust = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Principal": {"Federated": format!("arn:aws:iam::{account}:oidc-provider/issuer.mark.test")},
        "Action": "sts:AssumeRoleWithWebIdentity",
        "Condition": {"StringEquals": {"issuer.mark.test:aud": "sts.amazonaws.com"},
                      "StringLike": {"issuer.mark.test:sub": format!("scoped_principal:{}/*", boot.team_uid)}}}]});
    let role = sim.create_role("team", &trust.to_string(), None).unwrap();
    let run = |args: Vec<&str>| {
        let args = args.into_iter().map(str::to_owned).collect();
        byollm(args, &base, &key, &sim, &state)
    };
    // The generated permissions for one model; the team routes two.
    let policy = |models: &[&str]| {
        let mut args = vec![
            "aws",
            "permissions-policy",
            "--account",
            account,
            "--region",
            "us-east-1",
        ];
        for m in models {
            args.extend(["--model", m]);
        }
        args.into_iter().map(str::to_owned).collect::<Vec<_>>()
    };
    let args = policy(&["claude-sonnet-4-6"]);
    let (code, doc, err) = run(args.iter().map(String::as_str).collect()).await;
    assert_eq!(code, 0, "{err}");
    sim.put_role_policy("team", "byollm-bedrock-invoke", &doc)
        .unwrap();
    let (code, _, err) = run(vec![
        "settings",
        "set",
        "--bedrock",
        "on",
        "--role-arn",
        &role,
        "--region",
        "us-east-1",
        "--opt-out-of-new-models",
        "on",
        "--model-bedrock",
        "claude-sonnet-4-6=on",
        "--model-bedrock",
        "claude-haiku-4-5=on",
        "--direct-api",
        "off",
    ])
    .await;
    assert_eq!(code, 0, "{err}");

    // Before any doctor walk: no mark.
    let (code, table, err) = run(vec!["models"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(!table.contains("permissions missing"), "{table}");

    // The doctor finds Haiku's permissions missing.
    let (code, out, err) = run(vec!["aws", "doctor"]).await;
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(err.contains("model_permission_missing"), "{out}\n{err}");

    let (code, table, err) = run(vec!["models"]).await;
    assert_eq!(code, 0, "{err}");
    let haiku = row(&table, "claude-haiku-4-5");
    assert!(
        haiku.contains("aws_bedrock:global.anthropic.claude-haiku-4-5-20251001-v1:0@us-east-1 [permissions missing (doctor, 20"),
        "{table}"
    );
    assert!(
        !row(&table, "claude-sonnet-4-6").contains("permissions missing"),
        "{table}"
    );
    assert!(err.contains("re-run `byollm aws doctor`"), "{err}");
    let (_, json_out, _) = run(vec!["models", "--json"]).await;
    let v: Value = serde_json::from_str(&json_out).unwrap();
    let data = v["data"].as_array().unwrap();
    let haiku = data.iter().find(|m| m["id"] == "claude-haiku-4-5").unwrap();
    assert!(
        haiku["doctor"]["permissions_missing"]
            .as_array()
            .is_some_and(|p| !p.is_empty()),
        "{haiku}"
    );
    assert!(
        haiku["doctor"]["checked_at"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );
    // Nothing secret is kept.
    let kept = std::fs::read_to_string(state.join("verdicts.json")).unwrap();
    assert!(!kept.contains(&key), "{kept}");
    assert!(kept.contains(&boot.team_uid), "{kept}");

    // Another actor's view is its own: an agent's key sees no mark.
    let (code, agent, err) = run(vec!["agents", "create", "--name", "bot", "--json"]).await;
    assert_eq!(code, 0, "{err}");
    let agent: Value = serde_json::from_str(&agent).unwrap();
    let (code, created, err) = run(vec![
        "api-keys",
        "create",
        "--name",
        "bot",
        "--agent",
        agent["uid"].as_str().unwrap(),
        "--json",
    ])
    .await;
    assert_eq!(code, 0, "{err}");
    let created: Value = serde_json::from_str(&created).unwrap();
    let agent_key = created["key"].as_str().unwrap();
    let (code, table, err) = byollm(vec!["models".into()], &base, agent_key, &sim, &state).await;
    assert_eq!(code, 0, "{err}");
    assert!(!table.contains("permissions missing"), "{table}");

    // The role grants both; a healthy doctor clears the mark.
    let args = policy(&["claude-sonnet-4-6", "claude-haiku-4-5"]);
    let (code, doc, err) = run(args.iter().map(String::as_str).collect()).await;
    assert_eq!(code, 0, "{err}");
    sim.put_role_policy("team", "byollm-bedrock-invoke", &doc)
        .unwrap();
    let (code, out, err) = run(vec!["aws", "doctor"]).await;
    assert_eq!(code, 0, "{out}\n{err}");
    let (code, table, err) = run(vec!["models"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(!table.contains("permissions missing"), "{table}");
    assert!(!err.contains("re-run"), "{err}");

    server.shutdown().await;
    sim.shutdown().await;
}
