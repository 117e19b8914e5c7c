//! `byollm azure …` as commands (issue 18): the setup script for each
//! granularity, its Terraform, the warning and the spread past Entra's 20
//! FICs per identity, and bad input refused with the flag named; the
//! explainer reading a generated script, `az identity federated-credential
//! list`'s JSON and bare subjects, naming why each actor is refused. The
//! script's `az` calls are checked against the real az's parser in
//! byollm-policy's `azure_generated` test.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr,
    clippy::disallowed_methods,
    reason = "test code: a failed unwrap is a failed test"
)]

const ISSUER: &str = "https://byollm.example.com";
const SUB: &str = "11111111-2222-3333-4444-555555555555";

fn byollm(args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_byollm"))
        .args(args)
        .env("RUST_LOG", "off")
        .env_remove("BYOLLM_SERVER")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `azure setup-script` with a valid set of flags, `extra` replacing (or
/// adding to) them: clap refuses a flag given twice.
fn setup(extra: &[&str]) -> (i32, String, String) {
    let mut flags: Vec<(String, String)> = [
        ("--issuer", ISSUER),
        ("--team", "t1"),
        ("--subscription", SUB),
        ("--resource-group", "rg-ai"),
        ("--location", "eastus2"),
        ("--resource", "acme-ai.services.ai.azure.com"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    for pair in extra.chunks(2) {
        match flags.iter_mut().find(|(k, _)| k == pair[0]) {
            Some(f) => f.1 = pair[1].to_owned(),
            None => flags.push((pair[0].to_owned(), pair[1].to_owned())),
        }
    }
    let mut args = vec!["azure".to_owned(), "setup-script".to_owned()];
    for (k, v) in flags {
        args.push(k);
        args.push(v);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    byollm(&args)
}

#[test]
fn setup_script_per_granularity() {
    let (code, out, err) = setup(&[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("#!/usr/bin/env bash\n"));
    assert!(out.contains("set -euo pipefail\n"));
    assert!(out.contains("fic \"$IDENTITY_1\" 'byollm-t1' 'scoped_principal:t1'\n"));
    assert!(out.contains("ACCOUNT_ID='/subscriptions/11111111-2222-3333-4444-555555555555/resourceGroups/rg-ai/providers/Microsoft.CognitiveServices/accounts/acme-ai'\n"));
    assert!(out.contains("grant \"$principal_1\" 'Azure AI User'\n"));
    assert!(err.contains("1 federated identity credential(s) at granularity team"));

    let (code, out, _) = setup(&[
        "--granularity",
        "actor_type",
        "--scope",
        "agents",
        "--models",
        "openai",
    ]);
    assert_eq!(code, 0);
    assert!(out.contains("'scoped_principal:t1/service_account'"));
    assert!(!out.contains("'scoped_principal:t1/user'"));
    assert!(out.contains("grant \"$principal_1\" 'Cognitive Services OpenAI User'\n"));
    assert!(!out.contains("'Azure AI User'"));

    let (code, out, _) = setup(&[
        "--granularity",
        "actor",
        "--scope",
        "user:u1,agent:a1",
        "--format",
        "terraform",
        "--identity-name",
        "team-t1",
    ]);
    assert_eq!(code, 0);
    assert!(out.contains("resource \"azurerm_user_assigned_identity\" \"byollm_1\""));
    assert!(out.contains("\"team-t1\""));
    assert!(out.contains("subject             = \"scoped_principal:t1/service_account:a1\""));
}

#[test]
fn past_twenty_fics_it_warns_and_spreads() {
    let agents: Vec<String> = (1..=30).map(|i| format!("a{i}")).collect();
    let scope = format!("agent:{}", agents.join(","));
    let (code, out, err) = setup(&["--granularity", "actor", "--scope", &scope]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("warning: 30 FICs exceed Entra's 20 per identity; spread over 2 identities (byollm, byollm-2)"), "{err}");
    assert!(out.contains("# warning: 30 FICs exceed Entra's 20 per identity"));
    assert!(out.contains("IDENTITY_2='byollm-2'\n"));
    assert_eq!(out.matches("fic \"$IDENTITY_2\"").count(), 10);
}

#[test]
fn bad_input_names_the_flag() {
    for (args, want) in [
        (
            vec!["--subscription", "nope"],
            "--subscription: invalid Azure subscription id `nope`",
        ),
        (
            vec!["--resource-group", "rg;id"],
            "--resource-group: invalid Azure resource group",
        ),
        (
            vec!["--location", "East US"],
            "--location: invalid Azure location",
        ),
        (
            vec!["--identity-name", "a b"],
            "--identity-name: invalid Azure identity name",
        ),
        (
            vec!["--resource", "https://acme-ai.openai.azure.com"],
            "--resource: invalid Azure Foundry resource",
        ),
        (
            vec!["--granularity", "member"],
            "--granularity: invalid Azure granularity `member`",
        ),
        (
            vec!["--granularity", "actor"],
            "--scope: invalid Azure scope `team`",
        ),
        (
            vec!["--scope", "users"],
            "--scope: invalid Azure scope `users`",
        ),
        (
            vec!["--models", "gpt"],
            "--models: invalid Azure models `gpt`",
        ),
        (vec!["--team", "t/1"], "--team: invalid team uid"),
    ] {
        let (code, out, err) = setup(&args);
        assert_ne!(code, 0, "{args:?}");
        assert!(out.is_empty(), "{args:?}: {out}");
        assert!(err.contains(want), "{args:?}: {err}");
    }
    let (code, _, err) = byollm(&["azure", "setup-script", "--team", "t1"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--issuer"), "{err}");
}

#[test]
fn explain_reads_a_generated_script_and_az_list_json() {
    let dir = tempfile::tempdir().unwrap();
    let (code, script, _) = setup(&["--granularity", "actor_type", "--scope", "agents"]);
    assert_eq!(code, 0);
    let path = dir.path().join("setup-azure.sh");
    std::fs::write(&path, script).unwrap();
    let (code, out, err) = byollm(&[
        "azure",
        "explain",
        "--team",
        "t1",
        "--granularity",
        "actor_type",
        "--script",
        path.to_str().unwrap(),
        "--actor",
        "user:u1,agent:a1",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("FICs for team t1 (granularity actor_type):\n  admit 1 of 2\n"),
        "{out}"
    );
    assert!(
        out.contains(
            "ADMITTED  agent a1 (scoped_principal:t1/service_account) by FIC byollm-t1-agents"
        ),
        "{out}"
    );
    assert!(
        out.contains("refused   user u1 (scoped_principal:t1/user)"),
        "{out}"
    );

    // As `az identity federated-credential list` prints them.
    let fics = serde_json::json!([
        {"audiences": ["api://AzureADTokenExchange"], "issuer": ISSUER, "name": "byollm-t1",
         "resourceGroup": "rg-ai", "subject": "scoped_principal:T1",
         "type": "Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials"}
    ]);
    let path = dir.path().join("fics.json");
    std::fs::write(&path, fics.to_string()).unwrap();
    let (code, out, err) = byollm(&[
        "azure",
        "explain",
        "--team",
        "t1",
        "--issuer",
        ISSUER,
        "--fic-file",
        path.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["granularity"], "team");
    let actors = v["actors"].as_array().unwrap();
    assert_eq!(actors.len(), 2);
    assert!(actors.iter().all(|a| a["admitted"] == false));
    assert!(
        actors[0]["reason"]
            .as_str()
            .unwrap()
            .contains("case-sensitively"),
        "{out}"
    );
    assert!(
        v["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["code"] == "admits_nobody")
    );

    let (code, out, err) = byollm(&[
        "azure",
        "explain",
        "--team",
        "t1",
        "--granularity",
        "actor",
        "--subject",
        "scoped_principal:t1/service_account:a1",
        "--actor",
        "agent:a1,a2",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("ADMITTED  agent a1"), "{out}");
    assert!(out.contains("refused   agent a2"), "{out}");

    let (code, _, err) = byollm(&["azure", "explain", "--team", "t1"]);
    assert_ne!(code, 0);
    assert!(err.contains("give the FICs"), "{err}");
    let (code, _, err) = byollm(&[
        "azure",
        "explain",
        "--team",
        "t1",
        "--granularity",
        "actors",
        "--subject",
        "x",
    ]);
    assert_ne!(code, 0);
    assert!(
        err.contains("--granularity: invalid Azure granularity"),
        "{err}"
    );
}

/// `--from-server`: the issuer, team, granularity and resource come from the
/// team's settings, and the explainer checks every member and agent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn from_server_reads_the_team() {
    use std::sync::Arc;

    use byollm_api::clock::SystemClock;
    use byollm_core::config::CoreConfig;
    use byollm_server::app;
    use byollm_server::config::ServerConfig;
    use secrecy::SecretString;

    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let cfg = ServerConfig::new(addr, dir.path().join("data"), CoreConfig::new(ISSUER));
    let gw = app::gateway_config(&cfg).unwrap();
    let core = app::build_core(&cfg, Arc::new(SystemClock)).await.unwrap();
    let boot =
        byollm_core::service::bootstrap_team(core.store(), &SystemClock, "Acme", "o@acme.example")
            .await
            .unwrap();
    let _server = app::serve_on(listener, core, gw).await.unwrap();
    let base = format!("http://{addr}");
    let key = boot.api_key.expose().to_owned();
    let team = boot.team_uid.to_string();
    let c = byollm_api::client::Client::new(&base, Some(SecretString::from(key.clone()))).unwrap();
    c.patch_llm_settings(&serde_json::json!({"hosts": {"azure_foundry": {
        "enabled": true,
        "tenant_id": "72f988bf-86f1-41af-91ab-2d7cd011db47",
        "client_id": "0d3c1f2e-5b6a-4c8d-9e0f-1a2b3c4d5e6f",
        "resource": "acme-ai.openai.azure.com",
        "subject_granularity": "actor_type"
    }}}))
    .await
    .unwrap();
    let agent = c
        .create_agent(&serde_json::from_value(serde_json::json!({"name": "helper"})).unwrap())
        .await
        .unwrap();

    let run = |args: Vec<String>| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_byollm"))
            .args(&args)
            .env("BYOLLM_API_KEY", &key)
            .env("BYOLLM_SERVER", &base)
            .env("BYOLLM_CONFIG_DIR", dir.path().join("config"))
            .env("RUST_LOG", "off")
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let args = |s: &[&str]| s.iter().map(|a| (*a).to_owned()).collect::<Vec<_>>();
    let (code, out, err) = tokio::task::block_in_place(|| {
        run(args(&[
            "azure",
            "setup-script",
            "--from-server",
            "--subscription",
            SUB,
            "--resource-group",
            "rg-ai",
            "--location",
            "eastus2",
            "--scope",
            "agents",
        ]))
    });
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&format!("ISSUER_URL='{ISSUER}'")), "{out}");
    assert!(
        out.contains(&format!("'scoped_principal:{team}/service_account'")),
        "{out}"
    );
    assert!(out.contains("ACCOUNT='acme-ai'"), "{out}");
    assert!(out.contains("GRANULARITY='actor_type'"), "{out}");

    let subject = format!("scoped_principal:{team}/service_account");
    let (code, out, err) = tokio::task::block_in_place(|| {
        run(args(&[
            "azure",
            "explain",
            "--from-server",
            "--subject",
            &subject,
        ]))
    });
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("admit 1 of 2"), "{out}");
    assert!(
        out.contains(&format!("ADMITTED  agent {}", agent.uid)),
        "{out}"
    );
    assert!(out.contains("refused   user "), "{out}");
}
