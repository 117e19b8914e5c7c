//! The newcomer's CLI against a real server: policies generated from the
//! team's actual routing (`--from-server`), `settings get` showing per-model
//! routing, one switch spelling (`on|off`, the other accepted with a hint),
//! one `--server` default, and the exit statuses the README documents
//! (0 ok, 1 failure, 2 usage; 3 "not verified" is the doctor's, tested there).

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
use byollm_core::config::CoreConfig;
use byollm_server::app;
use byollm_server::config::ServerConfig;
use serde_json::Value;

const ISSUER: &str = "https://issuer.grammar.test";
const ROLE: &str = "arn:aws:iam::123456789012:role/team-bedrock";

struct Env {
    base: String,
    key: String,
    team: String,
    dir: tempfile::TempDir,
    server: app::Server,
}

impl Env {
    async fn start() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let cfg = ServerConfig::new(addr, dir.path().join("data"), CoreConfig::new(ISSUER));
        let gw = app::gateway_config(&cfg).unwrap();
        let core = app::build_core(&cfg, Arc::new(SystemClock)).await.unwrap();
        let boot = byollm_core::service::bootstrap_team(
            core.store(),
            &SystemClock,
            "Acme",
            "o@acme.example",
        )
        .await
        .unwrap();
        let server = app::serve_on(listener, core, gw).await.unwrap();
        Env {
            base: format!("http://{addr}"),
            key: boot.api_key.expose().to_owned(),
            team: boot.team_uid.to_string(),
            dir,
            server,
        }
    }

    /// Runs the CLI with the key; `server` sets BYOLLM_SERVER, else the
    /// variable is unset and the stored login (BYOLLM_CONFIG_DIR) applies.
    async fn run_with(&self, args: &[&str], server: bool) -> (i32, String, String) {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_byollm"));
        cmd.args(args)
            .env("BYOLLM_API_KEY", &self.key)
            .env("BYOLLM_CONFIG_DIR", self.dir.path().join("config"))
            .env("RUST_LOG", "off");
        if server {
            cmd.env("BYOLLM_SERVER", &self.base);
        } else {
            cmd.env_remove("BYOLLM_SERVER");
        }
        let out = cmd.output().await.unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    async fn run(&self, args: &[&str]) -> (i32, String, String) {
        self.run_with(args, true).await
    }

    async fn ok(&self, args: &[&str]) -> (String, String) {
        let (code, out, err) = self.run(args).await;
        assert_eq!(code, 0, "{args:?}:\n{out}\n{err}");
        (out, err)
    }
}

/// The inference-profile resources a permissions policy grants.
fn granted_profiles(policy: &str) -> Vec<String> {
    let doc: Value = serde_json::from_str(policy).unwrap_or_else(|e| panic!("{e}: {policy}"));
    let mut out = Vec::new();
    for st in doc["Statement"].as_array().unwrap() {
        let resources = match &st["Resource"] {
            Value::String(s) => vec![s.clone()],
            Value::Array(a) => a
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
            _ => vec![],
        };
        for r in resources {
            if let Some((_, id)) = r.split_once(":inference-profile/") {
                out.push(id.to_owned());
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policies_from_the_server_grant_what_the_team_routes() {
    let env = Env::start().await;
    // Before the team has a role, --from-server says what to do.
    let (code, _, err) = env
        .run(&["aws", "permissions-policy", "--from-server"])
        .await;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("byollm settings set --role-arn"), "{err}");

    // A team that routes two models (the guide's setup) gets exactly those.
    env.ok(&[
        "settings",
        "set",
        "--bedrock",
        "on",
        "--role-arn",
        ROLE,
        "--region",
        "us-east-1",
        "--opt-out-of-new-models",
        "on",
        "--model-bedrock",
        "claude-sonnet-4-6=on",
        "--model-bedrock",
        "claude-haiku-4-5=on",
        "--model-ref",
        "claude-haiku-4-5=us.anthropic.claude-haiku-4-5-20251001-v1:0",
    ])
    .await;
    let (policy, err) = env
        .ok(&["aws", "permissions-policy", "--from-server"])
        .await;
    let granted = granted_profiles(&policy);
    assert!(
        granted.iter().any(|p| p.ends_with("claude-sonnet-4-6")),
        "{granted:?}"
    );
    assert!(
        granted.contains(&"us.anthropic.claude-haiku-4-5-20251001-v1:0".to_owned()),
        "{granted:?}"
    );
    assert!(
        !granted.iter().any(|p| p.contains("opus")),
        "a model the team does not route was granted: {granted:?}"
    );
    assert!(
        policy.contains("arn:aws:bedrock:us-east-1:123456789012:inference-profile/"),
        "{policy}"
    );
    assert!(err.contains("granting the 2 model(s)"), "{err}");

    // The setup script reads the issuer, team, account and role name too.
    let (script, _) = env.ok(&["aws", "setup-script", "--from-server"]).await;
    assert!(script.contains("issuer.grammar.test"), "{script}");
    assert!(script.contains(&env.team), "{script}");
    assert!(script.contains("team-bedrock"), "{script}");
    assert!(script.contains("123456789012"), "{script}");
    assert!(
        script.contains("us.anthropic.claude-haiku-4-5-20251001-v1:0"),
        "{script}"
    );
    assert!(!script.contains("opus"), "{script}");
    // A flag still wins over the server's value.
    let (policy, _) = env
        .ok(&[
            "aws",
            "permissions-policy",
            "--from-server",
            "--model",
            "claude-opus-4-6",
        ])
        .await;
    let granted = granted_profiles(&policy);
    assert!(granted.iter().all(|p| p.contains("opus")), "{granted:?}");

    // A new team's default routing (every Claude model) is granted whole.
    env.ok(&["settings", "set", "--opt-out-of-new-models", "off"])
        .await;
    let (policy, _) = env
        .ok(&["aws", "permissions-policy", "--from-server"])
        .await;
    let granted = granted_profiles(&policy);
    for m in [
        "opus-4-6",
        "sonnet-4-6",
        "haiku-4-5",
        "sonnet-4-5",
        "opus-4-5",
    ] {
        assert!(
            granted.iter().any(|p| p.contains(&format!("claude-{m}"))),
            "{m} missing from {granted:?}"
        );
    }
    // Without --from-server the flags stay required (a usage error, exit 2).
    let (code, _, err) = env.run(&["aws", "permissions-policy"]).await;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--account"), "{err}");
    env.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_get_shows_every_models_routing() {
    let env = Env::start().await;
    env.ok(&[
        "settings",
        "set",
        "--bedrock",
        "on",
        "--role-arn",
        ROLE,
        "--region",
        "us-east-1",
        "--model-bedrock",
        "claude-opus-4-6=off",
        "--model-ref",
        "claude-sonnet-4-6=us.anthropic.claude-sonnet-4-6",
    ])
    .await;
    let (out, _) = env.ok(&["settings", "get"]).await;
    let row = |id: &str| -> Vec<String> {
        out.lines()
            .find(|l| l.split_whitespace().next() == Some(id))
            .unwrap_or_else(|| panic!("no row for {id}:\n{out}"))
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(row("claude-opus-4-6")[1], "off", "{out}");
    assert_eq!(row("claude-sonnet-4-6")[1], "on", "{out}");
    assert_eq!(
        row("claude-sonnet-4-6")[2],
        "us.anthropic.claude-sonnet-4-6",
        "{out}"
    );
    // Models the team never named follow the default: routed, catalog profile.
    assert_eq!(row("claude-haiku-4-5")[1], "on", "{out}");
    assert_eq!(row("claude-haiku-4-5")[2], "(catalog)", "{out}");
    assert_eq!(row("gpt-5")[1], "-", "{out}");

    // The direct API on, but this server has no direct upstream: `models`
    // says so rather than listing routes no request can take.
    env.ok(&["settings", "set", "--direct-api", "on"]).await;
    let (out, err) = env.ok(&["models"]).await;
    assert!(
        err.contains("direct_api is on in the team's settings, but this server has no direct upstream for anthropic or openai"),
        "{err}"
    );
    assert!(!out.contains("direct_api:"), "{out}");
    let (out, _) = env.ok(&["models", "--json"]).await;
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["notes"].as_array().unwrap().len(), 1, "{v}");
    env.ok(&["settings", "set", "--direct-api", "off"]).await;
    let (_, err) = env.ok(&["models"]).await;
    assert!(!err.contains("direct_api is on"), "{err}");
    env.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switches_are_on_off_and_exit_statuses_are_as_documented() {
    let env = Env::start().await;
    // on|off everywhere, including the agent flags that used to take true|false.
    let (out, err) = env
        .ok(&[
            "agents",
            "create",
            "--name",
            "builder",
            "--available",
            "on",
            "--aws-disabled",
            "off",
            "--json",
        ])
        .await;
    let agent: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(agent["available"], true);
    assert!(!err.contains("hint"), "{err}");
    // The other spelling works, with a hint naming the one spelling.
    let uid = agent["uid"].as_str().unwrap();
    let (out, err) = env
        .ok(&["agents", "update", uid, "--available", "false", "--json"])
        .await;
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap()["available"],
        false
    );
    assert!(
        err.contains("hint: `false` read as `off`; byollm's switches are spelled on|off"),
        "{err}"
    );
    let (out, _) = env
        .ok(&["agents", "list", "--available", "off", "--json"])
        .await;
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap()["agents"][0]["uid"],
        uid
    );
    // 2: a usage error (a switch that is neither).
    let (code, _, err) = env
        .run(&["agents", "update", uid, "--available", "maybe"])
        .await;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("expected on or off"), "{err}");
    // 1: a failure (the server's refusal), with the reason.
    let (code, _, err) = env.run(&["runs", "get", "no-such-run"]).await;
    assert_eq!(code, 1, "{err}");
    assert!(err.starts_with("error: "), "{err}");
    // The README is the one place that documents them.
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    for row in [
        "| 0 | ok |",
        "| 1 | failure",
        "| 2 | usage error",
        "| 3 | not verified",
    ] {
        assert!(
            readme.contains(row),
            "README lacks the exit status row `{row}`"
        );
    }

    // One --server default everywhere: with no BYOLLM_SERVER, a worker command
    // uses the server `byollm login` stored, as the admin commands do.
    let config = env.dir.path().join("config");
    std::fs::create_dir_all(&config).unwrap();
    let file = config.join("credentials");
    std::fs::write(
        &file,
        serde_json::json!({"server": env.base, "api_key": env.key}).to_string(),
    )
    .unwrap();
    std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let (code, out, err) = env.run_with(&["me", "--json"], false).await;
    assert_eq!(code, 0, "the stored server was not used: {out}\n{err}");
    let (_, _, err) = env
        .run_with(
            &["aws", "credential-process", "--run-id", "0000000000000000"],
            false,
        )
        .await;
    assert!(
        !err.contains("set BYOLLM_SERVER"),
        "credential-process has its own default: {err}"
    );
    env.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ended_run_still_shows_the_bedrock_target_it_had() {
    let env = Env::start().await;
    env.ok(&[
        "settings",
        "set",
        "--bedrock",
        "on",
        "--role-arn",
        ROLE,
        "--region",
        "us-east-1",
        "--enforcement",
        "enforce",
    ])
    .await;
    let (out, _) = env.ok(&["runs", "create", "--json"]).await;
    let run: Value = serde_json::from_str(&out).unwrap();
    let id = run["run_id"].as_str().unwrap();
    let target = format!("{ROLE} in us-east-1");
    let (out, _) = env.ok(&["runs", "get", id]).await;
    assert!(out.contains(&target), "{out}");
    // The team turns Bedrock off, then the run ends: it went to Bedrock, and
    // `runs get` keeps saying where.
    env.ok(&["settings", "set", "--bedrock", "off"]).await;
    env.ok(&["runs", "finish", id]).await;
    let (out, _) = env.ok(&["runs", "get", id]).await;
    assert!(out.contains("finished"), "{out}");
    assert!(out.contains(&target), "{out}");
    assert!(!out.contains("none"), "{out}");
    let (out, _) = env.ok(&["runs", "get", id, "--json"]).await;
    let info: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(info["bedrock"]["role_arn"], ROLE);
    // A run started while Bedrock is off had no target, and says so.
    let (out, _) = env.ok(&["runs", "create", "--json"]).await;
    let off: Value = serde_json::from_str(&out).unwrap();
    let off = off["run_id"].as_str().unwrap();
    env.ok(&["runs", "finish", off]).await;
    let (out, _) = env.ok(&["runs", "get", off]).await;
    assert!(out.contains("none"), "{out}");
    // An ended run's missing target reads as not recorded (it may predate the
    // column), never as a claim that it was not routed through Bedrock.
    assert!(out.contains("none recorded"), "{out}");
    assert!(!out.contains("not routed"), "{out}");
    env.server.shutdown().await;
}
