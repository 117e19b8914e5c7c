//! Snapshots of every generated document, and checks that each is what its
//! consumer accepts: JSON policies re-parse, the script passes `bash -n` and
//! `shellcheck`, the Terraform parses as HCL, the CloudFormation as YAML, and the
//! documents embedded in them are byte-for-byte the generated policies.

use std::process::Command;

use byollm_policy::generate::cloudformation::cloudformation;
use byollm_policy::generate::script::setup_script;
use byollm_policy::generate::terraform::terraform;
use byollm_policy::generate::{Grant, SubjectTemplate, permissions_policy, trust_policy};
use byollm_policy::{Policy, PolicyKind};
use serde_json::Value;

use crate::common::*;

fn least() -> Grant {
    Grant::Models(vec![sonnet_global(), sonnet45_us()])
}

#[test]
fn trust_policy_snapshots() {
    for (name, scope, run_id, tags) in [
        ("trust_team", "team", false, false),
        ("trust_users", "users", false, false),
        ("trust_agents", "agents", false, false),
        ("trust_agent_named", "agent:agt_01", false, false),
        (
            "trust_named_run_id_tags",
            "user:usr_01,agent:agt_01,agt_02",
            true,
            true,
        ),
    ] {
        let mut opts = trust_opts(scope);
        opts.subject_template = SubjectTemplate { run_id };
        opts.session_tags = tags;
        opts.source_identity = tags;
        let doc = trust_policy(&opts).unwrap().to_json_pretty();
        let _: Value = serde_json::from_str(&doc).unwrap();
        Policy::parse(&doc, PolicyKind::Resource).unwrap();
        insta::assert_snapshot!(name, doc);
    }
}

#[test]
fn permissions_policy_snapshots() {
    for (name, grant) in [
        ("permissions_broad", Grant::Broad),
        ("permissions_least_privilege", least()),
    ] {
        let doc = permissions_policy(&perms_opts(grant))
            .unwrap()
            .to_json_pretty();
        Policy::parse(&doc, PolicyKind::Identity).unwrap();
        insta::assert_snapshot!(name, doc);
    }
}

#[test]
#[expect(
    clippy::disallowed_methods,
    reason = "CI decides whether a missing shellcheck fails or skips"
)]
fn setup_script_snapshot_and_shell_checks() {
    let script = setup_script(&setup_opts("agent:agt_01", least())).unwrap();
    insta::assert_snapshot!("setup_script", script);
    let broad = setup_script(&setup_opts("team", Grant::Broad)).unwrap();
    for s in [&script, &broad] {
        let dir = tempdir();
        let path = dir.join("setup.sh");
        std::fs::write(&path, s).unwrap();
        let out = Command::new("bash").arg("-n").arg(&path).output().unwrap();
        assert!(
            out.status.success(),
            "bash -n: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        match Command::new("shellcheck")
            .arg("--shell=bash")
            .arg(&path)
            .output()
        {
            Ok(out) => assert!(
                out.status.success(),
                "shellcheck:\n{}",
                String::from_utf8_lossy(&out.stdout)
            ),
            Err(e) if std::env::var_os("CI").is_some() => {
                panic!("shellcheck is required in CI: {e}")
            }
            Err(e) => eprintln!(
                "\n*** SKIP shellcheck: not installed ({e}); apt-get install -y shellcheck ***\n"
            ),
        }
    }
    // The embedded documents are exactly the generated ones.
    let opts = setup_opts("agent:agt_01", least());
    let trust = trust_policy(&opts.trust).unwrap().to_json_pretty();
    let perms = permissions_policy(&opts.permissions)
        .unwrap()
        .to_json_pretty();
    assert!(script.contains(&format!(
        "<<'BYOLLM_TRUST_POLICY'\n{trust}\nBYOLLM_TRUST_POLICY\n"
    )));
    assert!(script.contains(&format!(
        "<<'BYOLLM_PERMISSIONS_POLICY'\n{perms}\nBYOLLM_PERMISSIONS_POLICY\n"
    )));
}

pub(crate) fn tempdir() -> std::path::PathBuf {
    let n = std::sync::atomic::AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "byollm-policy-test-{}-{}",
        std::process::id(),
        n.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + rand_suffix()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn rand_suffix() -> usize {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
}

fn heredoc(body: &hcl::Body, resource: &str, attr: &str) -> String {
    let block = body
        .blocks()
        .find(|b| {
            b.identifier() == "resource" && b.labels().first().map(|l| l.as_str()) == Some(resource)
        })
        .unwrap_or_else(|| panic!("no resource {resource}"));
    let attribute = block.body().attributes().find(|a| a.key() == attr).unwrap();
    match attribute.expr() {
        hcl::Expression::TemplateExpr(t) => match t.as_ref() {
            hcl::TemplateExpr::Heredoc(h) => h.template.clone(),
            other => panic!("{attr}: not a heredoc: {other:?}"),
        },
        other => panic!("{attr}: unexpected {other:?}"),
    }
}

#[test]
fn terraform_snapshot_parses_as_hcl() {
    let opts = setup_opts("agent:agt_01", least());
    let tf = terraform(&opts).unwrap();
    insta::assert_snapshot!("terraform", tf);
    let body: hcl::Body = hcl::from_str(&tf).unwrap_or_else(|e| panic!("HCL: {e}\n{tf}"));
    let trust = trust_policy(&opts.trust).unwrap().to_json_pretty();
    let perms = permissions_policy(&opts.permissions)
        .unwrap()
        .to_json_pretty();
    assert_eq!(
        heredoc(&body, "aws_iam_role", "assume_role_policy").trim_end(),
        trust
    );
    assert_eq!(
        heredoc(&body, "aws_iam_role_policy", "policy").trim_end(),
        perms
    );
    assert!(body.blocks().any(|b| b.identifier() == "output"));
    assert!(body.blocks().any(|b| b.identifier() == "resource"
        && b.labels().first().map(|l| l.as_str()) == Some("aws_iam_openid_connect_provider")));
}

/// Runs a checker on a generated file: its verdict, or a loud skip outside CI
/// when the tool is missing (in CI a missing tool fails the test).
#[expect(
    clippy::disallowed_methods,
    clippy::print_stderr,
    reason = "CI decides whether a missing tool fails or skips, and a skip is said loudly"
)]
pub(crate) fn tool_accepts(tool: &str, args: &[&str], file: &std::path::Path, install: &str) {
    match Command::new(tool).args(args).arg(file).output() {
        Ok(out) => assert!(
            out.status.success(),
            "{tool} refuses the generated {}:\n{}{}",
            file.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) if std::env::var_os("CI").is_some() => panic!("{tool} is required in CI: {e}"),
        Err(e) => eprintln!("\n*** SKIP {tool}: not installed ({e}); {install} ***\n"),
    }
}

/// People paste the generated Terraform into repositories whose CI runs
/// `terraform fmt -check`, and the CloudFormation into ones that run cfn-lint.
#[test]
fn generated_terraform_and_cloudformation_pass_their_own_linters() {
    let dir = tempdir();
    for scope in ["agent:agt_01", "team"] {
        let opts = setup_opts(scope, least());
        let tf = dir.join("main.tf");
        std::fs::write(&tf, terraform(&opts).unwrap()).unwrap();
        tool_accepts(
            "terraform",
            &["fmt", "-check", "-diff"],
            &tf,
            "install Terraform from releases.hashicorp.com",
        );
        let cfn = dir.join("byollm.yaml");
        std::fs::write(&cfn, cloudformation(&opts).unwrap()).unwrap();
        tool_accepts("cfn-lint", &[], &cfn, "pip install cfn-lint");
    }
}

#[test]
fn cloudformation_snapshot_parses_as_yaml() {
    let opts = setup_opts("agent:agt_01", least());
    let cfn = cloudformation(&opts).unwrap();
    insta::assert_snapshot!("cloudformation", cfn);
    let yaml: serde_yaml::Value =
        serde_yaml::from_str(&cfn).unwrap_or_else(|e| panic!("YAML: {e}\n{cfn}"));
    let doc: Value = serde_json::to_value(&yaml).unwrap();
    let role = &doc["Resources"]["ByollmRole"];
    assert_eq!(role["Type"], "AWS::IAM::Role");
    assert_eq!(
        doc["Resources"]["ByollmOIDCProvider"]["Type"],
        "AWS::IAM::OIDCProvider"
    );
    assert_eq!(
        doc["Resources"]["ByollmOIDCProvider"]["Properties"]["Url"],
        ISSUER
    );
    let perms: Value = serde_json::from_str(
        &permissions_policy(&opts.permissions)
            .unwrap()
            .to_json_pretty(),
    )
    .unwrap();
    assert_eq!(role["Properties"]["Policies"][0]["PolicyDocument"], perms);
    let mut trust: Value =
        serde_json::from_str(&trust_policy(&opts.trust).unwrap().to_json_pretty()).unwrap();
    trust["Statement"][0]["Principal"]["Federated"] = serde_json::json!(
        {"Fn::If": ["CreateProvider", {"Ref": "ByollmOIDCProvider"}, provider_arn()]}
    );
    assert_eq!(role["Properties"]["AssumeRolePolicyDocument"], trust);
    assert_eq!(
        doc["Outputs"]["RoleArn"]["Value"]["Fn::GetAtt"],
        serde_json::json!(["ByollmRole", "Arn"])
    );
}

#[test]
fn least_privilege_allows_exactly_the_profiles() {
    use byollm_policy::{Context, Request, evaluate_one};
    let policy = permissions_policy(&perms_opts(least())).unwrap();
    let check = |resource: &str, ctx: &[(&str, &str)]| {
        let mut context = Context::new();
        for (k, v) in ctx {
            context.insert(k, *v);
        }
        let req = Request {
            principal: None,
            action: "bedrock:InvokeModelWithResponseStream".into(),
            resource: resource.into(),
            context,
        };
        evaluate_one(&policy, PolicyKind::Identity, &req).is_allowed()
    };
    let global_profile = format!(
        "arn:aws:bedrock:us-east-1:{ACCOUNT}:inference-profile/global.anthropic.claude-sonnet-4-6"
    );
    let us_profile = format!(
        "arn:aws:bedrock:us-east-1:{ACCOUNT}:inference-profile/us.anthropic.claude-sonnet-4-5-20250929-v1:0"
    );
    // Global: profile in the source region, region-less model with "unspecified".
    assert!(check(
        &global_profile,
        &[("aws:RequestedRegion", "us-east-1")]
    ));
    assert!(!check(
        &global_profile,
        &[("aws:RequestedRegion", "eu-west-1")]
    ));
    assert!(check(
        "arn:aws:bedrock:::foundation-model/anthropic.claude-sonnet-4-6",
        &[
            ("aws:RequestedRegion", "unspecified"),
            ("bedrock:InferenceProfileArn", &global_profile)
        ]
    ));
    assert!(!check(
        "arn:aws:bedrock:::foundation-model/anthropic.claude-sonnet-4-6",
        &[
            ("aws:RequestedRegion", "us-east-1"),
            ("bedrock:InferenceProfileArn", &global_profile)
        ]
    ));
    assert!(check(
        "arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-sonnet-4-6",
        &[
            ("aws:RequestedRegion", "us-east-1"),
            ("bedrock:InferenceProfileArn", &global_profile)
        ]
    ));
    // Direct use of the model without the profile is refused.
    assert!(!check(
        "arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-sonnet-4-6",
        &[("aws:RequestedRegion", "us-east-1")]
    ));
    // Geographic: profile, and the model in every destination region.
    assert!(check(&us_profile, &[("aws:RequestedRegion", "us-east-1")]));
    for dest in ["us-east-1", "us-east-2", "us-west-2"] {
        assert!(
            check(
                &format!(
                    "arn:aws:bedrock:{dest}::foundation-model/anthropic.claude-sonnet-4-5-20250929-v1:0"
                ),
                &[("bedrock:InferenceProfileArn", &us_profile)]
            ),
            "{dest}"
        );
    }
    assert!(!check(
        "arn:aws:bedrock:eu-west-1::foundation-model/anthropic.claude-sonnet-4-5-20250929-v1:0",
        &[("bedrock:InferenceProfileArn", &us_profile)]
    ));
    // Another model is refused.
    assert!(!check(
        &format!(
            "arn:aws:bedrock:us-east-1:{ACCOUNT}:inference-profile/global.anthropic.claude-opus-4-6-v1"
        ),
        &[("aws:RequestedRegion", "us-east-1")]
    ));
}

#[test]
fn generator_input_errors() {
    use byollm_policy::generate::{
        AccountId, GenerateError, Issuer, ModelProfile, Region, TrustOptions,
    };
    assert!(matches!(
        Issuer::parse("http://x.example.com"),
        Err(GenerateError::Issuer { .. })
    ));
    assert!(
        TrustOptions::new(
            Issuer::parse(ISSUER).unwrap(),
            "team/*",
            AccountId::parse(ACCOUNT).unwrap()
        )
        .is_err()
    );
    let mut bad = sonnet45_us();
    bad.destination_regions = vec!["eu-west-1".into()];
    let e = permissions_policy(&perms_opts(Grant::Models(vec![bad]))).unwrap_err();
    assert!(
        e.to_string()
            .contains("cannot be invoked from the given --region"),
        "{e}"
    );
    let wrong = ModelProfile {
        profile_id: "global.anthropic.other".into(),
        ..sonnet_global()
    };
    assert!(permissions_policy(&perms_opts(Grant::Models(vec![wrong]))).is_err());
    assert!(permissions_policy(&perms_opts(Grant::Models(vec![]))).is_err());
    assert!(Region::parse("us-east-1; rm -rf /").is_err());
    assert!(
        byollm_policy::generate::SetupOptions::new(
            trust_opts("team"),
            perms_opts(Grant::Broad),
            "bad role"
        )
        .is_err()
    );
}
