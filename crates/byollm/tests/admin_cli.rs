//! The admin CLI over HTTP against a real server: settings, agents with their
//! AWS override, API keys, runs, usage (every page, or one), members, models and
//! `me`, as tables and as `--json`; errors carry the server's message and hint.

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
use byollm_api::types::{Actor, ActorType};
use byollm_core::config::CoreConfig;
use byollm_core::store::UsageRow;
use byollm_server::app;
use byollm_server::config::ServerConfig;
use serde_json::Value;

struct Cli {
    base: String,
    key: String,
}

impl Cli {
    async fn run(&self, args: &[&str]) -> (bool, String, String) {
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_byollm"))
            .args(args)
            .env("BYOLLM_SERVER", &self.base)
            .env("BYOLLM_API_KEY", &self.key)
            .env("RUST_LOG", "off")
            .output()
            .await
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    async fn ok(&self, args: &[&str]) -> String {
        let (ok, stdout, stderr) = self.run(args).await;
        assert!(ok, "{args:?} failed:\n{stdout}\n{stderr}");
        stdout
    }

    async fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.push("--json");
        let out = self.ok(&all).await;
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: {e}: {out}"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_cli_drives_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let cfg = ServerConfig::new(
        addr,
        dir.path().join("data"),
        CoreConfig::new("https://issuer.cli.test"),
    );
    let gw = app::gateway_config(&cfg).unwrap();
    let core = app::build_core(&cfg, Arc::new(SystemClock)).await.unwrap();
    let boot =
        byollm_core::service::bootstrap_team(core.store(), &SystemClock, "Acme", "o@acme.example")
            .await
            .unwrap();
    let server = app::serve_on(listener, core, gw).await.unwrap();
    let cli = Cli {
        base: format!("http://{addr}"),
        key: boot.api_key.expose().to_owned(),
    };

    // me
    let me = cli.json(&["me"]).await;
    assert_eq!(me["team"]["uid"], boot.team_uid.as_str());
    assert!(cli.ok(&["me"]).await.contains("aws_bedrock_opt_in"));

    // settings
    let role = "arn:aws:iam::123456789012:role/byollm-bedrock";
    let s = cli
        .json(&[
            "settings",
            "set",
            "--bedrock",
            "on",
            "--role-arn",
            role,
            "--region",
            "us-east-1",
            "--fallback-outside-cloud",
            "on",
            "--model-ref",
            "claude-sonnet-4-6=us.anthropic.claude-sonnet-4-6",
            "--model-direct",
            "gpt-5=off",
        ])
        .await;
    assert_eq!(s["hosts"]["aws_bedrock"]["role_arn"], role);
    // A new team has no fallback out of the cloud; the flag turns it on.
    assert_eq!(s["allow_fallback_outside_cloud"], true);
    assert_eq!(s["hosts"]["direct_api"]["enabled"], true);
    assert_eq!(
        s["models"]["claude-sonnet-4-6"]["aws_bedrock"]["model_ref"],
        "us.anthropic.claude-sonnet-4-6"
    );
    let table = cli.ok(&["settings", "get"]).await;
    assert!(table.contains("us.anthropic.claude-sonnet-4-6"), "{table}");
    assert!(table.contains(role), "{table}");
    // The server's message names the field.
    let (ok, _, stderr) = cli.run(&["settings", "set", "--role-arn", "null"]).await;
    assert!(!ok);
    assert!(stderr.contains("role_arn"), "{stderr}");

    // agents with their AWS override
    let a = cli
        .json(&[
            "agents",
            "create",
            "--name",
            "release-bot",
            "--aws-region",
            "eu-west-1",
        ])
        .await;
    let uid = a["uid"].as_str().unwrap().to_owned();
    assert_eq!(a["inference_providers"]["aws"]["region"], "eu-west-1");
    let a = cli
        .json(&[
            "agents",
            "update",
            &uid,
            "--aws-role-arn",
            role,
            "--aws-region",
            "null",
        ])
        .await;
    assert_eq!(a["inference_providers"]["aws"]["role_arn"], role);
    assert_eq!(a["inference_providers"]["aws"]["region"], Value::Null);
    let list = cli.ok(&["agents", "list"]).await;
    assert!(
        list.contains("release-bot") && list.contains("(team's)"),
        "{list}"
    );
    // One page by default (the next cursor on stderr); --all follows it.
    for n in 0..3 {
        cli.ok(&["agents", "create", "--name", &format!("pager-{n}")])
            .await;
    }
    // Agents created within one second have no order among themselves but
    // their uids': count the page's rows rather than guess which ones.
    let (ok, page, stderr) = cli.run(&["agents", "list", "--limit", "2"]).await;
    let names = ["release-bot", "pager-0", "pager-1", "pager-2"];
    let shown = names.iter().filter(|n| page.contains(*n)).count();
    assert!(ok && shown == 2, "{page}");
    assert!(stderr.contains("--cursor"), "{stderr}");
    let all = cli.json(&["agents", "list", "--limit", "2", "--all"]).await;
    assert_eq!(all["agents"].as_array().unwrap().len(), 4, "{all}");
    assert_eq!(all["next_cursor"], Value::Null);
    let pagers = cli
        .json(&["agents", "list", "--name-prefix", "PAGER", "--all"])
        .await;
    assert_eq!(pagers["agents"].as_array().unwrap().len(), 3, "{pagers}");
    let (ok, _, stderr) = cli.run(&["agents", "get", "nosuchagent"]).await;
    assert!(!ok && stderr.contains("404"), "{stderr}");

    // API keys: the new key is printed once, never listed
    let (ok, key, stderr) = cli
        .run(&["api-keys", "create", "--name", "bot", "--agent", &uid])
        .await;
    assert!(ok && stderr.contains("shown once"), "{stderr}");
    let key = key.trim().to_owned();
    assert!(key.starts_with("byollm_key_"));
    let keys = cli.json(&["api-keys", "list"]).await;
    let id = keys["api_keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["name"] == "bot")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(!cli.ok(&["api-keys", "list"]).await.contains(&key));
    cli.ok(&["api-keys", "revoke", &id]).await;

    // runs and usage
    let run = cli
        .json(&["runs", "create", "--agent", &uid, "--prompt", "hi"])
        .await;
    let run_id = run["run_id"].as_str().unwrap().to_owned();
    assert_eq!(run["actor"]["type"], "service_account");
    let shown = cli.ok(&["runs", "get", &run_id]).await;
    assert!(
        shown.contains("running") || shown.contains("queued"),
        "{shown}"
    );
    let finished = cli
        .json(&["runs", "finish", &run_id, "--state", "cancelled"])
        .await;
    assert_eq!(finished["state"], "cancelled");
    cli.ok(&["runs", "create"]).await;
    let runs = cli.json(&["runs", "list", "--all", "--limit", "1"]).await;
    assert_eq!(runs["runs"].as_array().unwrap().len(), 2, "{runs}");
    let cancelled = cli.json(&["runs", "list", "--state", "cancelled"]).await;
    assert_eq!(
        cancelled["runs"][0]["run_id"],
        run_id.as_str(),
        "{cancelled}"
    );
    assert!(cli.ok(&["runs", "list"]).await.contains(&run_id));
    let usage = cli.json(&["usage", "--run", &run_id]).await;
    assert_eq!(usage["buckets"]["platform"], 1.0);
    assert!(cli.ok(&["usage"]).await.contains("platform"));
    // usage pages: every page by default, one with --limit / --cursor
    let rows: Vec<UsageRow> = (0..150)
        .map(|n| UsageRow {
            id: format!("use_cli{n:03}"),
            team_uid: boot.team_uid.clone(),
            run_id: None,
            actor: Actor {
                actor_type: ActorType::User,
                uid: boot.owner_uid.clone(),
            },
            member_uid: Some(boot.owner_uid.clone()),
            agent_uid: None,
            model: "claude-sonnet-4-6".into(),
            route: "direct_api:claude-sonnet-4-6".into(),
            attempts: "[]".into(),
            input_tokens: 1,
            output_tokens: 1,
            inference_microcredits: 0,
            created_at: 1_800_000_000 + n,
        })
        .collect();
    server.core.store().insert_usage(&rows).await.unwrap();
    let all = cli.json(&["usage"]).await;
    assert_eq!(all["requests"].as_array().unwrap().len(), 150);
    assert_eq!(all["next_cursor"], Value::Null);
    let first = cli.json(&["usage", "--limit", "100"]).await;
    assert_eq!(first["requests"].as_array().unwrap().len(), 100);
    let cursor = first["next_cursor"].as_str().unwrap();
    let rest = cli
        .json(&["usage", "--limit", "100", "--cursor", cursor])
        .await;
    assert_eq!(rest["requests"].as_array().unwrap().len(), 50);
    assert_eq!(rest["requests"][0]["id"], "use_cli100");
    assert_eq!(rest["next_cursor"], Value::Null);
    let (ok, _, stderr) = cli.run(&["usage", "--limit", "0"]).await;
    assert!(!ok && stderr.contains("limit"), "{stderr}");

    // members
    let m = cli
        .json(&[
            "members",
            "add",
            "--email",
            "bob@acme.example",
            "--role",
            "admin",
        ])
        .await;
    assert_eq!(m["role"], "admin");
    assert!(
        cli.ok(&["members", "list"])
            .await
            .contains("bob@acme.example")
    );
    cli.ok(&["members", "remove", m["uid"].as_str().unwrap()])
        .await;

    // models: what this key may use, with its routes
    let models = cli.ok(&["models"]).await;
    assert!(models.contains("claude-sonnet-4-6"), "{models}");

    // no key, no call
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_byollm"))
        .args(["--help"])
        .output()
        .await
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for cmd in [
        "settings", "agents", "api-keys", "runs", "usage", "members", "models",
    ] {
        assert!(help.contains(cmd), "{cmd} missing from --help:\n{help}");
    }
    server.shutdown().await;
}
