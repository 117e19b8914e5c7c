//! `byollm gcp …` as commands, with the real `gcloud` against the emulator
//! (issue 17): the generated setup script creates the pool, the provider and
//! the IAM bindings through Google's REST paths and runs again unchanged; a
//! token of the team is then exchanged through the created provider and calls
//! Vertex AI, another team's is refused by the condition; the explainer reads
//! the script; the doctor is healthy, then fails a provider without a
//! condition and names the step when the condition refuses the actor. Then
//! the lifecycle gcloud drives: service accounts (the script's impersonation
//! grant needs one), pools and providers disabled, deleted, listed and
//! undeleted, each refusing or admitting exchanges as Google does.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr,
    clippy::disallowed_methods,
    reason = "test code: a failed unwrap is a failed test"
)]

#[path = "support/tools.rs"]
mod tools;

use std::path::Path;
use std::sync::Arc;

use byollm_api::clock::{Clock as _, SystemClock};
use byollm_cloudsim::{Cloudsim, CloudsimConfig};
use byollm_core::config::CoreConfig;
use byollm_federation::gcp::GoogleSts;
use byollm_server::ServerConfig;
use secrecy::{ExposeSecret as _, SecretString};
use serde_json::{Value, json};
use tools::present_or_skip;

const ISSUER: &str = "https://issuer.gcp.test";
const PROJECT: &str = "acme-ml-prod";
const NUMBER: &str = "123456789012";
const AUD: &str = "//iam.googleapis.com/projects/123456789012/locations/global/workloadIdentityPools/byollm-pool/providers/byollm-issuer";

fn byollm(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_byollm"))
        .args(args)
        .envs(env.iter().copied())
        .env("RUST_LOG", "off")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A throwaway gcloud configuration pointing IAM, Resource Manager and IAM
/// Credentials at `endpoint`, authenticated with an access-token file.
fn gcloud_config(dir: &Path, endpoint: &str) -> std::path::PathBuf {
    let cfg = dir.join("gcloud");
    std::fs::create_dir_all(cfg.join("configurations")).unwrap();
    std::fs::write(cfg.join("active_config"), "default").unwrap();
    let token = dir.join("admin-token");
    std::fs::write(&token, "admin-access-token\n").unwrap();
    std::fs::write(
        cfg.join("configurations/config_default"),
        format!(
            "[api_endpoint_overrides]\niam = {endpoint}/\ncloudresourcemanager = {endpoint}/\n\
             iamcredentials = {endpoint}/\n\n[auth]\naccess_token_file = {}\n\n[core]\n\
             disable_usage_reporting = true\nproject = {PROJECT}\n\n[component_manager]\n\
             disable_update_check = true\n",
            token.display()
        ),
    )
    .unwrap();
    cfg
}

fn run_script(script: &Path, cfg: &Path) -> (i32, String, String) {
    let out = std::process::Command::new("bash")
        .arg(script)
        .env("CLOUDSDK_CONFIG", cfg)
        .env("CLOUDSDK_CORE_DISABLE_PROMPTS", "1")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn call(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    key: &str,
    body: &Value,
) -> Value {
    let r = http
        .request(method, url)
        .bearer_auth(key)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = r.status();
    let v: Value = r.json().await.unwrap();
    assert!(status.is_success(), "{status}: {v}");
    v
}

async fn mint(http: &reqwest::Client, base: &str, key: &str) -> SecretString {
    let v = call(
        http,
        reqwest::Method::POST,
        format!("{base}/api/v1/identity-token"),
        key,
        &json!({"audience": AUD, "requested_duration_seconds": 900}),
    )
    .await;
    SecretString::from(v["token"].as_str().unwrap().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_generated_script_runs_with_gcloud_and_the_condition_keeps_other_teams_out() {
    if !present_or_skip(
        "gcp_cli",
        &["gcloud", "--version"],
        "install the Google Cloud CLI (apt-get install google-cloud-cli)",
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cfg = ServerConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        dir.path().join("data"),
        CoreConfig::new(ISSUER),
    );
    let server = byollm_server::start(&cfg, Arc::new(SystemClock))
        .await
        .unwrap();
    let base = format!("http://{}", server.addr);
    let http = reqwest::Client::new();
    let settings = json!({"hosts": {"gcp_vertex": {
        "enabled": true, "project_id": PROJECT, "project_number": NUMBER,
        "pool_id": "byollm-pool", "provider_id": "byollm-issuer", "location": "global"}}});
    let mut teams = vec![];
    for name in ["acme", "intruder"] {
        let made = byollm_core::service::bootstrap_team(
            server.core.store(),
            server.core.clock().as_ref(),
            name,
            &format!("owner@{name}.test"),
        )
        .await
        .unwrap();
        let key = made.api_key.expose().to_owned();
        let url = format!("{base}/api/v1/team/llm-settings");
        call(&http, reqwest::Method::PATCH, url, &key, &settings).await;
        teams.push((made.team_uid, key));
    }
    let (acme, acme_key) = teams[0].clone();
    let (_, intruder_key) = teams[1].clone();
    let sim = Cloudsim::start(CloudsimConfig {
        resolve: vec![("issuer.gcp.test".to_owned(), server.addr)],
        ..CloudsimConfig::default()
    })
    .await
    .unwrap();
    sim.gcp().add_project(PROJECT, NUMBER);
    let endpoint = sim.endpoint_url();
    let gcloud = gcloud_config(dir.path(), endpoint.trim_end_matches('/'));

    // The script, generated from the server's view of the team.
    let (code, script, stderr) = byollm(
        &["gcp", "setup-script", "--from-server", "--server", &base],
        &[("BYOLLM_API_KEY", &acme_key)],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(
        script.contains(&format!("assertion.team == '\\''{acme}'\\''")),
        "{script}"
    );
    let path = dir.path().join("setup.sh");
    std::fs::write(&path, &script).unwrap();

    let (code, stdout, stderr) = run_script(&path, &gcloud);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert_eq!(stdout.trim(), AUD, "{stderr}");
    assert!(
        stderr.contains("Created workload identity pool [byollm-pool]"),
        "{stderr}"
    );
    // Idempotent: the second run finds the pool and updates the provider.
    let (code, stdout, stderr) = run_script(&path, &gcloud);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(
        stderr.contains("workload identity pool byollm-pool exists"),
        "{stderr}"
    );
    assert_eq!(stdout.trim(), AUD);

    // gcloud reads back what it wrote, through the same paths.
    let describe = std::process::Command::new("gcloud")
        .args([
            "iam",
            "workload-identity-pools",
            "providers",
            "describe",
            "byollm-issuer",
            "--location=global",
            "--workload-identity-pool=byollm-pool",
            "--format=json",
        ])
        .env("CLOUDSDK_CONFIG", &gcloud)
        .output()
        .unwrap();
    assert!(
        describe.status.success(),
        "{}",
        String::from_utf8_lossy(&describe.stderr)
    );
    let provider_file = dir.path().join("provider.json");
    std::fs::write(&provider_file, &describe.stdout).unwrap();
    let provider: Value = serde_json::from_slice(&describe.stdout).unwrap();
    assert_eq!(
        provider["attributeCondition"],
        format!("assertion.team == '{acme}'")
    );
    assert_eq!(provider["oidc"]["issuerUri"], ISSUER);

    // The explainer reads the script and the provider gcloud printed.
    for flag in ["--script", "--provider-file"] {
        let file = if flag == "--script" {
            &path
        } else {
            &provider_file
        };
        let (code, out, err) = byollm(
            &[
                "gcp",
                "explain-condition",
                "--team",
                &acme,
                flag,
                file.to_str().unwrap(),
            ],
            &[],
        );
        assert_eq!(code, 0, "{err}");
        assert!(out.contains("and no other team"), "{out}");
        assert!(out.contains("No findings."), "{out}");
    }

    // The team's token is exchanged through the provider gcloud created and
    // reaches Vertex AI on the bindings it wrote; another team's is refused.
    let sts = GoogleSts::new(Some(endpoint.clone()), Arc::new(|| SystemClock.now_ms()));
    let access = sts
        .exchange_token(&mint(&http, &base, &acme_key).await, AUD)
        .await
        .unwrap();
    let r = http
        .post(format!(
            "{endpoint}/v1/projects/{PROJECT}/locations/global/publishers/anthropic/models/claude-sonnet-4-6:rawPredict"
        ))
        .bearer_auth(access.token.expose_secret())
        .json(&json!({"anthropic_version": "vertex-2023-10-16", "max_tokens": 8,
                      "messages": [{"role": "user", "content": "through gcloud's pool"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let e = sts
        .exchange_token(&mint(&http, &base, &intruder_key).await, AUD)
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "Google STS: unauthorized_client: The given credential is rejected by the attribute condition."
    );

    // The doctor: healthy with the provider read; a provider without a
    // condition fails at the provider step; the intruder fails at STS.
    let token_file = dir.path().join("admin-token");
    let doctor = |key: &str, extra: &[&str]| {
        let mut args = vec![
            "gcp",
            "doctor",
            "--server",
            &base,
            "--gcp-endpoint-url",
            &endpoint,
        ];
        args.extend_from_slice(extra);
        byollm(&args, &[("BYOLLM_API_KEY", key)])
    };
    let with_token = ["--gcp-access-token-file", token_file.to_str().unwrap()];
    let (code, out, err) = doctor(&acme_key, &with_token);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("the path to Vertex AI is healthy"), "{out}");
    let (code, out, err) = doctor(&acme_key, &[]);
    assert_eq!(
        code, 3,
        "without the token the condition is not verified: {out}\n{err}"
    );
    let (code, out, _) = doctor(&intruder_key, &["--json"]);
    assert_eq!(code, 1, "{out}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["diagnosis"]["step"], "google_sts");
    assert_eq!(report["diagnosis"]["cause"], "gcp_condition_refused");
    let status = std::process::Command::new("gcloud")
        .args([
            "iam",
            "workload-identity-pools",
            "providers",
            "update-oidc",
            "byollm-issuer",
            "--location=global",
            "--workload-identity-pool=byollm-pool",
            "--attribute-condition=",
            "--quiet",
        ])
        .env("CLOUDSDK_CONFIG", &gcloud)
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let mut extra = vec!["--json"];
    extra.extend_from_slice(&with_token);
    let (code, out, _) = doctor(&acme_key, &extra);
    assert_eq!(code, 1, "{out}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["diagnosis"]["step"], "provider");
    assert_eq!(report["diagnosis"]["cause"], "gcp_no_condition");
    sim.shutdown().await;
    server.shutdown().await;
}

fn gcloud(cfg: &Path, args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new("gcloud")
        .args(args)
        .arg("--quiet")
        .env("CLOUDSDK_CONFIG", cfg)
        .env("CLOUDSDK_CORE_DISABLE_PROMPTS", "1")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The emulator's pools, providers and service accounts behave as Google's
/// do under the real gcloud: the generated script's impersonation grant
/// needs the service account to exist; a disabled or deleted pool or
/// provider refuses exchanges with Google's `invalid_target` until enabled
/// or undeleted; a deleted id is not reused; impersonating a deleted
/// service account is Google's 403.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pools_providers_and_service_accounts_live_and_die_as_googles_do() {
    if !present_or_skip(
        "gcp_cli",
        &["gcloud", "--version"],
        "install the Google Cloud CLI (apt-get install google-cloud-cli)",
    ) {
        return;
    }
    use byollm_federation::Exchange as _;
    use byollm_federation::gcp::PoolTarget;
    const SA: &str = "vertex-sa@acme-ml-prod.iam.gserviceaccount.com";
    let dir = tempfile::tempdir().unwrap();
    let cfg = ServerConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        dir.path().join("data"),
        CoreConfig::new(ISSUER),
    );
    let server = byollm_server::start(&cfg, Arc::new(SystemClock))
        .await
        .unwrap();
    let base = format!("http://{}", server.addr);
    let http = reqwest::Client::new();
    let made = byollm_core::service::bootstrap_team(
        server.core.store(),
        server.core.clock().as_ref(),
        "acme",
        "owner@acme.test",
    )
    .await
    .unwrap();
    let key = made.api_key.expose().to_owned();
    let settings = json!({"hosts": {"gcp_vertex": {
        "enabled": true, "project_id": PROJECT, "project_number": NUMBER,
        "pool_id": "byollm-pool", "provider_id": "byollm-issuer", "location": "global",
        "service_account": SA}}});
    let url = format!("{base}/api/v1/team/llm-settings");
    call(&http, reqwest::Method::PATCH, url, &key, &settings).await;
    let sim = Cloudsim::start(CloudsimConfig {
        resolve: vec![("issuer.gcp.test".to_owned(), server.addr)],
        ..CloudsimConfig::default()
    })
    .await
    .unwrap();
    sim.gcp().add_project(PROJECT, NUMBER);
    let endpoint = sim.endpoint_url();
    let gc = gcloud_config(dir.path(), endpoint.trim_end_matches('/'));

    // The script grants on the service account: it must exist first.
    let (code, script, stderr) = byollm(
        &["gcp", "setup-script", "--from-server", "--server", &base],
        &[("BYOLLM_API_KEY", &key)],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(script.contains("gcloud iam service-accounts add-iam-policy-binding"));
    let path = dir.path().join("setup.sh");
    std::fs::write(&path, &script).unwrap();
    let (code, _, stderr) = run_script(&path, &gc);
    assert_ne!(code, 0, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "NOT_FOUND: Service account projects/{PROJECT}/serviceAccounts/{SA} does not exist."
        )),
        "{stderr}"
    );
    let (ok, _, err) = gcloud(
        &gc,
        &[
            "iam",
            "service-accounts",
            "create",
            "vertex-sa",
            "--display-name=Vertex AI",
        ],
    );
    assert!(ok, "{err}");
    assert!(err.contains("Created service account [vertex-sa]"), "{err}");
    let (ok, _, err) = gcloud(&gc, &["iam", "service-accounts", "create", "vertex-sa"]);
    assert!(!ok);
    assert!(
        err.contains(
            "Service account vertex-sa already exists within project projects/acme-ml-prod."
        ),
        "{err}"
    );
    let (code, stdout, stderr) = run_script(&path, &gc);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(stderr.contains(&format!("granted roles/iam.workloadIdentityUser on {SA}")));
    let (ok, out, err) = gcloud(
        &gc,
        &["iam", "service-accounts", "list", "--format=value(email)"],
    );
    assert!(ok, "{err}");
    assert_eq!(out.trim(), SA);

    // Exchanges through the pool, impersonating the account.
    let sts = GoogleSts::new(Some(endpoint.clone()), Arc::new(|| SystemClock.now_ms()));
    let target = PoolTarget {
        audience: AUD.into(),
        service_account: Some(SA.into()),
    };
    let exchange = || async { sts.exchange(&mint(&http, &base, &key).await, &target).await };
    assert!(exchange().await.unwrap().impersonated);
    let target_refused = "Google STS: invalid_target: The target service indicated by the \"audience\" parameters is invalid. This might either be because the pool or provider is disabled or deleted or because it doesn't exist.";
    let refused = |what: &str, e: byollm_federation::ExchangeError| {
        assert_eq!(e.to_string(), target_refused, "{what}");
    };
    let pool = ["--location=global", "--workload-identity-pool=byollm-pool"];
    let with = |args: &[&'static str], extra: &[&'static str]| -> Vec<&'static str> {
        args.iter().chain(extra).copied().collect()
    };
    let provider_cmd = |verb: &'static str| {
        with(
            &[
                "iam",
                "workload-identity-pools",
                "providers",
                verb,
                "byollm-issuer",
            ],
            &pool,
        )
    };
    let pool_cmd = |verb: &'static str| {
        with(
            &["iam", "workload-identity-pools", verb, "byollm-pool"],
            &["--location=global"],
        )
    };

    // Disabled provider, then disabled pool: refused until enabled again.
    for (cmd, what) in [
        (with(&provider_cmd("update-oidc"), &[]), "provider"),
        (with(&pool_cmd("update"), &[]), "pool"),
    ] {
        let (ok, _, err) = gcloud(&gc, &with(&cmd, &["--disabled"]));
        assert!(ok, "{err}");
        refused(what, exchange().await.unwrap_err());
        let (ok, _, err) = gcloud(&gc, &with(&cmd, &["--no-disabled"]));
        assert!(ok, "{err}");
        assert!(exchange().await.is_ok(), "{what} enabled again");
    }

    // A deleted provider: hidden from the list, kept (state DELETED), its id
    // not reusable, refused until undeleted.
    let list = with(
        &[
            "iam",
            "workload-identity-pools",
            "providers",
            "list",
            "--format=value(name,state)",
        ],
        &pool,
    );
    let (ok, out, err) = gcloud(&gc, &list);
    assert!(ok, "{err}");
    assert!(out.contains("providers/byollm-issuer\tACTIVE"), "{out}");
    let (ok, _, err) = gcloud(&gc, &provider_cmd("delete"));
    assert!(ok, "{err}");
    refused("deleted provider", exchange().await.unwrap_err());
    let (ok, out, _) = gcloud(&gc, &list);
    assert!(ok && out.trim().is_empty(), "{out}");
    let (ok, out, _) = gcloud(&gc, &with(&list, &["--show-deleted"]));
    assert!(
        ok && out.contains("providers/byollm-issuer\tDELETED"),
        "{out}"
    );
    let (ok, out, _) = gcloud(
        &gc,
        &with(&provider_cmd("describe"), &["--format=value(state)"]),
    );
    assert!(ok && out.trim() == "DELETED", "{out}");
    let (ok, _, err) = gcloud(
        &gc,
        &with(
            &provider_cmd("create-oidc"),
            &[
                "--issuer-uri=https://issuer.gcp.test",
                "--attribute-mapping=google.subject=assertion.sub",
            ],
        ),
    );
    assert!(!ok && err.contains("ALREADY_EXISTS"), "{err}");
    let (ok, _, err) = gcloud(&gc, &provider_cmd("undelete"));
    assert!(ok, "{err}");
    assert!(exchange().await.is_ok(), "provider undeleted");

    // A deleted pool: the same.
    let (ok, _, err) = gcloud(&gc, &pool_cmd("delete"));
    assert!(ok, "{err}");
    refused("deleted pool", exchange().await.unwrap_err());
    let pools = [
        "iam",
        "workload-identity-pools",
        "list",
        "--location=global",
        "--format=value(name)",
    ];
    let (ok, out, _) = gcloud(&gc, &pools);
    assert!(ok && out.trim().is_empty(), "{out}");
    let (ok, out, _) = gcloud(&gc, &with(&pools, &["--show-deleted"]));
    assert!(
        ok && out.contains("workloadIdentityPools/byollm-pool"),
        "{out}"
    );
    let (ok, _, err) = gcloud(&gc, &pool_cmd("undelete"));
    assert!(ok, "{err}");
    assert!(exchange().await.is_ok(), "pool undeleted");

    // A deleted service account: impersonation is Google's 403.
    let (ok, _, err) = gcloud(&gc, &["iam", "service-accounts", "delete", SA]);
    assert!(ok, "{err}");
    let e = exchange().await.unwrap_err();
    assert!(
        e.to_string().contains(
            "PERMISSION_DENIED: Permission 'iam.serviceAccounts.getAccessToken' denied on resource (or it may not exist)."
        ),
        "{e}"
    );
    let (ok, _, err) = gcloud(&gc, &["iam", "service-accounts", "describe", SA]);
    assert!(
        !ok && err.contains("NOT_FOUND: Unknown service account"),
        "{err}"
    );
    sim.shutdown().await;
    server.shutdown().await;
}
