//! The Azure setup as people paste it: every granularity, and an `actor`
//! plan spread over two identities, gives a script that `bash -n` and
//! `shellcheck` accept and Terraform that parses as HCL and passes `terraform
//! fmt -check` (validate needs the azurerm provider downloaded, which these
//! machines cannot do). Snapshots of one script and one configuration.
//!
//! The real `az` cannot be pointed at a loopback emulator (MSAL insists on
//! https authorities and instance discovery, azure-facts §5.4), so the
//! script's calls are checked against az's own parser instead: the script runs
//! with an `az` on PATH that hands every call, as bash expanded it, to the
//! real az (not logged in) and then answers it with a canned value. az's
//! argparse exits 2 on an unknown flag or a missing required argument; a call
//! it parsed fails later, asking to `az login`.

#![expect(
    clippy::disallowed_methods,
    clippy::print_stderr,
    reason = "the test reads CI and PATH to find and run the real az, and says loudly when it skips"
)]

use std::path::Path;
use std::process::Command;

use byollm_policy::azure::script::setup_script;
use byollm_policy::azure::terraform::terraform;
use byollm_policy::azure::{AzureSetup, Models};
use byollm_policy::generate::Issuer;

use super::generated::{tempdir, tool_accepts};

fn setup(granularity: &str, scope: &str) -> AzureSetup {
    AzureSetup {
        issuer: Issuer::parse("https://byollm.example.com").unwrap(),
        team_uid: "t1".into(),
        subscription_id: "11111111-2222-3333-4444-555555555555".into(),
        resource_group: "rg-ai".into(),
        location: "eastus2".into(),
        identity_name: "byollm".into(),
        account: "acme-ai".into(),
        account_resource_group: "rg-ai".into(),
        granularity: granularity.parse().unwrap(),
        scope: scope.parse().unwrap(),
        models: Models::default(),
    }
}

fn spread_scope() -> String {
    let agents: Vec<String> = (1..=21).map(|i| format!("a{i}")).collect();
    format!("user:u1,agent:{}", agents.join(","))
}

fn cases() -> Vec<AzureSetup> {
    vec![
        setup("team", "team"),
        setup("actor_type", "team"),
        setup("actor_type", "agents"),
        setup("actor", "user:u1,agent:a1"),
        setup("actor", &spread_scope()),
    ]
}

#[test]
fn every_granularity_gives_a_clean_script_and_terraform() {
    let dir = tempdir();
    for opts in cases() {
        let script = setup_script(&opts).unwrap();
        let path = dir.join("setup.sh");
        std::fs::write(&path, &script).unwrap();
        tool_accepts("bash", &["-n"], &path, "bash");
        tool_accepts(
            "shellcheck",
            &["--shell=bash"],
            &path,
            "apt-get install -y shellcheck",
        );
        let tf = terraform(&opts).unwrap();
        hcl::from_str::<hcl::Body>(&tf).unwrap();
        let tf_path = dir.join("main.tf");
        std::fs::write(&tf_path, &tf).unwrap();
        tool_accepts(
            "terraform",
            &["fmt", "-check", "-diff"],
            &tf_path,
            "install Terraform from releases.hashicorp.com",
        );
    }
}

#[test]
fn snapshots() {
    insta::assert_snapshot!(
        "azure_setup_script",
        setup_script(&setup("actor_type", "team")).unwrap()
    );
    insta::assert_snapshot!(
        "azure_terraform",
        terraform(&setup("actor", "user:u1,agent:a1")).unwrap()
    );
}

#[test]
fn unsafe_inputs_are_refused_before_any_output() {
    let mut opts = setup("team", "team");
    opts.resource_group = "rg'; rm -rf /".into();
    assert!(setup_script(&opts).is_err());
    assert!(terraform(&opts).is_err());
    let mut opts = setup("team", "team");
    opts.identity_name = "id\"x".into();
    assert!(terraform(&opts).is_err());
    let mut opts = setup("team", "team");
    opts.subscription_id = "not-a-guid".into();
    assert!(setup_script(&opts).is_err());
}

/// The real az, or `None` after a loud skip (a failure under CI).
fn real_az() -> Option<String> {
    let found = Command::new("bash")
        .args(["-c", "command -v az"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    let install = "pip install azure-cli (.ci/run installs it into its own virtualenv)";
    match found {
        Some(p) if !p.is_empty() => Some(p),
        _ if std::env::var_os("CI").is_some() => panic!("az is required in CI: {install}"),
        _ => {
            eprintln!(
                "\n!!!!!!!! SKIP azure script parse test: az not installed ({install}) !!!!!!!!\n"
            );
            None
        }
    }
}

const FAKE_AZ: &str = r#"#!/usr/bin/env bash
# Hands the call to the real az (not logged in), logs how it ended, and
# answers with a canned value so the script goes on.
err="$(mktemp)"
"$REAL_AZ" "$@" >/dev/null 2>"$err"
rc=$?
{ printf 'rc=%s|' "$rc"; printf '%s ' "$@"; printf '|'; tr '\n' ' ' <"$err"; echo; } >>"$AZ_LOG"
rm -f "$err"
case "$*" in
  *"--query principalId"*) echo 00000000-0000-0000-0000-0000000000a1 ;;
  *"--query clientId"*) echo 00000000-0000-0000-0000-0000000000c1 ;;
  *"--query tenantId"*) echo 00000000-0000-0000-0000-0000000000d1 ;;
  *"--query id"*) echo /subscriptions/x ;;
esac
exit 0
"#;

fn run_with_fake_az(dir: &Path, real: &str, script: &str) -> (String, Vec<String>) {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let fake = bin.join("az");
    std::fs::write(&fake, FAKE_AZ).unwrap();
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let log = dir.join("az.log");
    let _ = std::fs::remove_file(&log);
    let path = dir.join("setup.sh");
    std::fs::write(&path, script).unwrap();
    let config = dir.join("azure-config");
    std::fs::create_dir_all(&config).unwrap();
    let out = Command::new("bash")
        .arg(&path)
        .env(
            "PATH",
            format!(
                "{}:{}",
                bin.display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        )
        .env("REAL_AZ", real)
        .env("AZ_LOG", &log)
        .env("AZURE_CONFIG_DIR", &config)
        .env("AZURE_CORE_COLLECT_TELEMETRY", "false")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the script failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let calls = std::fs::read_to_string(&log)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect();
    (String::from_utf8_lossy(&out.stdout).into_owned(), calls)
}

#[test]
fn azs_parser_accepts_every_call_of_the_script() {
    let Some(real) = real_az() else { return };
    let dir = tempdir();
    for opts in [setup("team", "team"), setup("actor", &spread_scope())] {
        let script = setup_script(&opts).unwrap();
        let (stdout, calls) = run_with_fake_az(&dir, &real, &script);
        let plans = opts.plan().unwrap();
        let fics: usize = plans.iter().map(|p| p.fics.len()).sum();
        // account check + per identity (create, 2 shows, 2 roles) + FICs + tenant.
        assert_eq!(calls.len(), 1 + plans.len() * 5 + fics + 1, "{calls:#?}");
        for call in &calls {
            assert!(
                call.starts_with("rc=1|") && call.contains("az login"),
                "az did not parse this call (exit 2 is argparse's):\n{call}"
            );
        }
        assert!(
            calls
                .iter()
                .filter(|c| c.contains("federated-credential create"))
                .all(|c| c.contains("--audiences api://AzureADTokenExchange ")
                    && c.contains("--issuer https://byollm.example.com ")),
            "{calls:#?}"
        );
        let settings: serde_json::Value =
            serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
        assert_eq!(
            settings["client_id"],
            "00000000-0000-0000-0000-0000000000c1"
        );
        assert_eq!(
            settings["tenant_id"],
            "00000000-0000-0000-0000-0000000000d1"
        );
        assert_eq!(settings["resource"], "acme-ai");
        assert_eq!(settings["subject_granularity"], opts.granularity.as_str());
    }
}

/// The explainer agrees with the generator: the FICs of each plan admit the
/// scope's members and agents, and nobody else.
#[test]
fn generated_fics_admit_exactly_the_scope() {
    use byollm_policy::azure::AZURE_AUDIENCE;
    use byollm_policy::azure::explain::{FicRecord, explain_fics};
    use byollm_policy::generate::Actor;

    let actors = vec![
        (Actor::User, "u1".to_owned()),
        (Actor::User, "u2".to_owned()),
        (Actor::Agent, "a1".to_owned()),
        (Actor::Agent, "a21".to_owned()),
        (Actor::Agent, "a99".to_owned()),
    ];
    let expect: [(&str, &str, &[bool]); 4] = [
        ("team", "team", &[true; 5]),
        ("actor_type", "agents", &[false, false, true, true, true]),
        (
            "actor",
            "user:u1,agent:a1",
            &[true, false, true, false, false],
        ),
        ("actor", "", &[true, false, true, true, false]),
    ];
    for (granularity, scope, want) in expect {
        let scope = match scope {
            "" => spread_scope(),
            s => s.to_owned(),
        };
        let opts = setup(granularity, &scope);
        let fics: Vec<FicRecord> = opts
            .plan()
            .unwrap()
            .into_iter()
            .flat_map(|p| p.fics)
            .map(|f| FicRecord {
                name: f.name,
                issuer: Some(opts.issuer.url().to_owned()),
                subject: f.subject,
                audiences: vec![AZURE_AUDIENCE.to_owned()],
            })
            .collect();
        let e = explain_fics(
            "t1",
            opts.granularity,
            Some(opts.issuer.url()),
            &fics,
            &actors,
        );
        let got: Vec<bool> = e.actors.iter().map(|v| v.admitted).collect();
        assert_eq!(got, want, "{granularity} {scope}:\n{}", e.to_text());
    }
}
