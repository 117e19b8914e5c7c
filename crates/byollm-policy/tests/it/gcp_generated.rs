//! The Google setup as people paste it: every scope, with and without
//! impersonation, gives a script that `bash -n` and `shellcheck` accept and
//! Terraform that parses as HCL and passes `terraform fmt -check` (validate
//! needs the google provider downloaded, which these machines cannot do). The
//! embedded condition is the one the CEL explainer finds safe.

use byollm_policy::gcp::explain::explain_condition;
use byollm_policy::gcp::script::setup_script;
use byollm_policy::gcp::terraform::terraform;
use byollm_policy::gcp::{GcpSetup, attribute_mapping};
use byollm_policy::generate::Issuer;

use super::generated::{tempdir, tool_accepts};

const SCOPES: [&str; 5] = ["team", "users", "agents", "agent:a1,a2", "user:u1,agent:a1"];

fn setup(scope: &str, sa: Option<&str>) -> GcpSetup {
    GcpSetup {
        issuer: Issuer::parse("https://byollm.example.com").unwrap(),
        team_uid: "t1".into(),
        project_id: "acme-ml-prod".into(),
        project_number: "123456789012".into(),
        pool_id: "byollm-pool".into(),
        provider_id: "byollm-issuer".into(),
        scope: scope.parse().unwrap(),
        service_account: sa.map(str::to_owned),
    }
}

#[test]
fn every_scope_gives_a_clean_script_and_terraform() {
    let dir = tempdir();
    for scope in SCOPES {
        for sa in [None, Some("sa-byollm@acme-ml-prod.iam.gserviceaccount.com")] {
            let opts = setup(scope, sa);
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
            let e = explain_condition(
                &attribute_mapping(),
                Some(&opts.attribute_condition()),
                "t1",
                &[],
            );
            assert!(!e.dangerous(), "{scope}: {}", e.to_text());
        }
    }
}

#[test]
fn unsafe_inputs_are_refused_before_any_output() {
    let mut opts = setup("team", None);
    opts.project_id = "acme'; rm -rf /".into();
    assert!(setup_script(&opts).is_err());
    assert!(terraform(&opts).is_err());
    let mut opts = setup("team", None);
    opts.service_account = Some("sa@acme.iam.gserviceaccount.com\"".into());
    assert!(terraform(&opts).is_err());
}
