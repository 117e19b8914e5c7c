//! The member guide's walk, through the CLI binary against a real server: an
//! owner adds a member (who gets a one-time invitation code), the member runs
//! `byollm login --server URL --invite CODE` (the key is stored 0600 in a 0700
//! directory, never printed) and makes their first requests with no key in the
//! environment; `BYOLLM_API_KEY` still wins; admins change roles, re-issue and
//! revoke invitations and page lists; the operator recovers an owner's access.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr,
    clippy::disallowed_methods,
    reason = "test code: a failed unwrap is a failed test"
)]

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use byollm_api::clock::SystemClock;
use byollm_core::config::CoreConfig;
use byollm_server::app;
use byollm_server::config::ServerConfig;
use serde_json::Value;

/// One person's shell: their own home and config directory, and maybe a key.
struct Shell {
    home: PathBuf,
    key: Option<String>,
    server: Option<String>,
}

impl Shell {
    async fn run(&self, args: &[&str]) -> (bool, String, String) {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_byollm"));
        cmd.args(args)
            .env_remove("BYOLLM_API_KEY")
            .env_remove("BYOLLM_SERVER")
            .env_remove("BYOLLM_CONFIG_DIR")
            .env_remove("XDG_CONFIG_HOME")
            .env("HOME", &self.home)
            .env("RUST_LOG", "off");
        if let Some(k) = &self.key {
            cmd.env("BYOLLM_API_KEY", k);
        }
        if let Some(s) = &self.server {
            cmd.env("BYOLLM_SERVER", s);
        }
        let out = cmd.output().await.unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    async fn ok(&self, args: &[&str]) -> (String, String) {
        let (ok, stdout, stderr) = self.run(args).await;
        assert!(ok, "{args:?} failed:\n{stdout}\n{stderr}");
        (stdout, stderr)
    }

    async fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.push("--json");
        let (out, _) = self.ok(&all).await;
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: {e}: {out}"))
    }
}

/// The invitation code in a command's stdout.
fn code_in(stdout: &str) -> String {
    stdout
        .lines()
        .find(|l| l.starts_with("byollm_inv_"))
        .unwrap_or_else(|| panic!("no invitation code in {stdout}"))
        .trim()
        .to_owned()
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_member_goes_from_invitation_to_first_request() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let cfg = ServerConfig::new(
        addr,
        data.clone(),
        CoreConfig::new("https://issuer.cli.test"),
    );
    let gw = app::gateway_config(&cfg).unwrap();
    let core = app::build_core(&cfg, Arc::new(SystemClock)).await.unwrap();
    let boot =
        byollm_core::service::bootstrap_team(core.store(), &SystemClock, "Acme", "o@acme.example")
            .await
            .unwrap();
    let server = app::serve_on(listener, core, gw).await.unwrap();
    let base = format!("http://{addr}");
    let owner_home = dir.path().join("owner");
    let member_home = dir.path().join("member");
    std::fs::create_dir_all(&owner_home).unwrap();
    std::fs::create_dir_all(&member_home).unwrap();
    let owner = Shell {
        home: owner_home,
        key: Some(boot.api_key.expose().to_owned()),
        server: Some(base.clone()),
    };
    let member = Shell {
        home: member_home.clone(),
        key: None,
        server: None,
    };

    // The admin adds the member: the code is printed once, on stdout.
    let (stdout, stderr) = owner
        .ok(&["members", "add", "--email", "new@acme.example"])
        .await;
    let code = code_in(&stdout);
    assert!(stderr.contains("shown once"), "{stderr}");
    assert!(stdout.contains("new@acme.example"), "{stdout}");

    // Before login the member has no key, and is told how to get one.
    let (ok, _, stderr) = member.run(&["me"]).await;
    assert!(!ok);
    assert!(stderr.contains("byollm login"), "{stderr}");

    // 1. Redeem the invitation.
    let (stdout, stderr) = member
        .ok(&["login", "--server", &base, "--invite", &code])
        .await;
    assert!(
        stderr.contains("logged in to team Acme as new@acme.example"),
        "{stderr}"
    );
    let creds = member_home.join(".config/byollm/credentials");
    assert_eq!(mode(&creds), 0o600);
    assert_eq!(mode(creds.parent().unwrap()), 0o700);
    let stored: Value = serde_json::from_str(&std::fs::read_to_string(&creds).unwrap()).unwrap();
    let key = stored["api_key"].as_str().unwrap().to_owned();
    assert!(key.starts_with("byollm_key_"));
    assert_eq!(stored["server"], base.as_str());
    assert!(
        !stdout.contains(&key) && !stderr.contains(&key),
        "never printed"
    );

    // 2. The first requests: no key or server in the environment.
    let me = member.json(&["me"]).await;
    assert_eq!(me["team"]["uid"], boot.team_uid.as_str());
    assert_eq!(me["role"], "member");
    let uid = me["actor"]["uid"].as_str().unwrap().to_owned();
    // (No route is configured in this team yet: the list is empty, but the
    // key and server are taken from the stored credentials.)
    let (models, _) = member.ok(&["models"]).await;
    assert!(models.starts_with("model"), "{models}");
    let keys = member.json(&["api-keys", "list"]).await;
    assert_eq!(keys["api_keys"].as_array().unwrap().len(), 1);
    assert_eq!(keys["api_keys"][0]["owner"]["uid"], uid.as_str());

    // The code worked once.
    let (ok, _, stderr) = member
        .run(&["login", "--server", &base, "--invite", &code])
        .await;
    assert!(
        !ok && stderr.contains("invitation code is not valid"),
        "{stderr}"
    );

    // BYOLLM_API_KEY still wins over the stored key.
    let as_owner = Shell {
        key: owner.key.clone(),
        home: member_home.clone(),
        server: None,
    };
    assert_eq!(
        as_owner.json(&["me"]).await["actor"]["uid"],
        boot.owner_uid.as_str()
    );

    // Admin commands: role change, re-issue, revoke, one page or all.
    let m = owner
        .json(&["members", "set-role", &uid, "--role", "admin"])
        .await;
    assert_eq!(m["role"], "admin");
    assert_eq!(member.json(&["me"]).await["role"], "admin");
    // A member who has a key gets no new code (it would let an admin act as
    // them); one who has not redeemed yet does, and the old code dies.
    let (ok, _, stderr) = owner.run(&["members", "invite", &uid]).await;
    assert!(!ok && stderr.contains("already has an API key"), "{stderr}");
    let added = owner
        .json(&["members", "add", "--email", "later@acme.example"])
        .await;
    let later = added["uid"].as_str().unwrap().to_owned();
    let first = added["invitation"]["code"].as_str().unwrap().to_owned();
    let (stdout, _) = owner.ok(&["members", "invite", &later]).await;
    let second = code_in(&stdout);
    assert_ne!(first, second);
    owner.ok(&["members", "revoke-invitation", &later]).await;
    for code in [&first, &second] {
        let (ok, _, _) = member
            .run(&["login", "--server", &base, "--invite", code])
            .await;
        assert!(!ok, "a re-issued or revoked code redeems nothing");
    }
    let (page, more) = owner.ok(&["members", "list", "--limit", "1"]).await;
    assert!(more.contains("--cursor"), "{more}");
    assert_eq!(page.lines().count(), 2, "header and one member:\n{page}");
    let all = owner
        .json(&["members", "list", "--all", "--limit", "1"])
        .await;
    assert_eq!(all["members"].as_array().unwrap().len(), 3);
    assert!(all["next_cursor"].is_null());

    // An admin cannot demote the owner; the operator recovers an owner's access.
    let (ok, _, stderr) = member
        .run(&["members", "set-role", &boot.owner_uid, "--role", "member"])
        .await;
    assert!(
        !ok && stderr.contains("only an owner can change an owner's role"),
        "{stderr}"
    );
    let (stdout, _) = owner
        .ok(&[
            "admin",
            "recover",
            "--data-dir",
            data.to_str().unwrap(),
            "--team",
            &boot.team_uid,
            "--owner-email",
            "o@acme.example",
            "--json",
        ])
        .await;
    let recovered: Value = serde_json::from_str(&stdout).unwrap();
    let recovered = Shell {
        key: Some(recovered["key"].as_str().unwrap().to_owned()),
        home: owner.home.clone(),
        server: Some(base.clone()),
    };
    assert_eq!(recovered.json(&["me"]).await["role"], "owner");

    // The operator prints a one-time console sign-in link (BYOLLM_SERVER is the
    // URL it starts with); it signs the member in once.
    let (url, note) = owner
        .ok(&[
            "admin",
            "login-link",
            "--data-dir",
            data.to_str().unwrap(),
            "--team",
            &boot.team_uid,
            "--member",
            "o@acme.example",
        ])
        .await;
    let url = url.trim();
    assert!(
        url.starts_with(&format!("{base}/console/sign-in/link/bsl_")),
        "{url}"
    );
    assert!(note.contains("works once"), "{note}");
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let spend = || http.post(url).header("origin", &base).send();
    let first = spend().await.unwrap();
    assert_eq!(first.status().as_u16(), 303);
    assert!(first.headers().contains_key("set-cookie"));
    assert_eq!(spend().await.unwrap().status().as_u16(), 410, "single use");
    let json = owner
        .json(&[
            "admin",
            "login-link",
            "--data-dir",
            data.to_str().unwrap(),
            "--team",
            &boot.team_uid,
            "--member",
            &boot.owner_uid,
        ])
        .await;
    assert!(
        json["url"]
            .as_str()
            .unwrap()
            .contains("/console/sign-in/link/")
    );
    assert_eq!(json["member_uid"], boot.owner_uid.as_str());
    server.shutdown().await;
}
