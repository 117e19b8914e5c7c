//! `byollm aws …` end to end through the binary: the flags of DESIGN §11, exactly
//! the document on stdout, notes on stderr, exit codes.

#![expect(
    clippy::unwrap_used,
    reason = "test helpers outside #[test] functions fail loudly too"
)]

use std::io::Write as _;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

const ISSUER: &str = "https://byollm.example.com";
const HOST: &str = "byollm.example.com";
const ACCOUNT: &str = "123456789012";

fn byollm(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_byollm"))
        .arg("aws")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn ok(args: &[&str]) -> (String, String) {
    let out = byollm(args);
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(out.status.success(), "{args:?} failed: {stderr}");
    (stdout, stderr)
}

fn fails(args: &[&str]) -> String {
    let out = byollm(args);
    assert!(!out.status.success(), "{args:?} should fail");
    assert!(
        out.stdout.is_empty(),
        "{args:?}: nothing on stdout when failing"
    );
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(!stderr.trim().is_empty());
    stderr
}

fn write_temp(dir: &tempfile::TempDir, name: &str, text: &str) -> String {
    let path = dir.path().join(name);
    std::fs::File::create(&path)
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    path.to_str().unwrap().to_owned()
}

#[test]
fn trust_policy_prints_exactly_the_document() {
    let (stdout, stderr) = ok(&[
        "trust-policy",
        "--issuer",
        ISSUER,
        "--team",
        "team_1",
        "--account",
        ACCOUNT,
    ]);
    let doc: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        doc["Statement"][0]["Condition"]["StringLike"][format!("{HOST}:sub")],
        "scoped_principal:team_1/*"
    );
    assert_eq!(
        doc["Statement"][0]["Condition"]["StringEquals"][format!("{HOST}:aud")],
        "sts.amazonaws.com"
    );
    assert!(
        stderr.contains("admits every member and every agent"),
        "{stderr}"
    );

    let (stdout, _) = ok(&[
        "trust-policy",
        "--issuer",
        ISSUER,
        "--team",
        "team_1",
        "--account",
        ACCOUNT,
        "--scope",
        "agent:agt_1",
        "--session-tags",
        "--source-identity",
        "--subject-template",
        "scoped_principal,run_id",
    ]);
    let doc: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        doc["Statement"][0]["Action"],
        serde_json::json!([
            "sts:AssumeRoleWithWebIdentity",
            "sts:TagSession",
            "sts:SetSourceIdentity"
        ])
    );
    assert_eq!(
        doc["Statement"][0]["Condition"]["StringLike"][format!("{HOST}:sub")],
        serde_json::json!([
            "scoped_principal:team_1/service_account:agt_1",
            "scoped_principal:team_1/service_account:agt_1:run_id:*"
        ])
    );
}

#[test]
fn permissions_policy_from_the_catalog() {
    let (stdout, _) = ok(&[
        "permissions-policy",
        "--account",
        ACCOUNT,
        "--region",
        "us-west-2",
        "--model",
        "claude-sonnet-4-6",
        "--model",
        "claude-haiku-4-5=us",
    ]);
    let doc: Value = serde_json::from_str(&stdout).unwrap();
    let text = doc.to_string();
    assert!(text.contains("arn:aws:bedrock:::foundation-model/anthropic.claude-sonnet-4-6"));
    assert!(text.contains("\"unspecified\""));
    assert!(text.contains(&format!(
        "arn:aws:bedrock:us-west-2:{ACCOUNT}:inference-profile/us.anthropic.claude-haiku-4-5-20251001-v1:0"
    )));
    assert!(text.contains(
        "arn:aws:bedrock:us-east-2::foundation-model/anthropic.claude-haiku-4-5-20251001-v1:0"
    ));

    let (stdout, stderr) = ok(&[
        "permissions-policy",
        "--account",
        ACCOUNT,
        "--region",
        "us-west-2",
        "--broad",
    ]);
    let doc: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        doc["Statement"][0]["Resource"][0],
        "arn:aws:bedrock:*::foundation-model/*"
    );
    assert!(stderr.is_empty(), "{stderr}");

    let err = fails(&[
        "permissions-policy",
        "--account",
        ACCOUNT,
        "--region",
        "us-west-2",
        "--model",
        "no-such-model",
    ]);
    assert!(err.contains("unknown model"), "{err}");
    fails(&[
        "permissions-policy",
        "--account",
        ACCOUNT,
        "--region",
        "us-west-2",
        "--model",
        "claude-sonnet-4-6",
        "--broad",
    ]);
}

#[test]
fn setup_script_formats() {
    let dir = tempfile::tempdir().unwrap();
    let base = [
        "setup-script",
        "--issuer",
        ISSUER,
        "--team",
        "team_1",
        "--account",
        ACCOUNT,
        "--role-name",
        "byollm-bedrock",
        "--scope",
        "agent:agt_1",
        "--region",
        "us-east-1",
        "--model",
        "claude-sonnet-4-6",
    ];
    let (script, _) = ok(&base);
    assert!(script.starts_with("#!/usr/bin/env bash\n"));
    let path = write_temp(&dir, "setup.sh", &script);
    let out = Command::new("bash").arg("-n").arg(&path).output().unwrap();
    assert!(out.status.success());
    let mut tf_args = base.to_vec();
    tf_args.extend(["--format", "terraform"]);
    let (tf, _) = ok(&tf_args);
    assert!(tf.contains("resource \"aws_iam_role\" \"byollm\""));
    let mut cfn_args = base.to_vec();
    cfn_args.extend(["--format", "cloudformation"]);
    let (cfn, _) = ok(&cfn_args);
    assert!(cfn.starts_with("AWSTemplateFormatVersion: \"2010-09-09\"\n"));
    // No model: the broad default, with a note.
    let (script, stderr) = ok(&[
        "setup-script",
        "--issuer",
        ISSUER,
        "--team",
        "team_1",
        "--account",
        ACCOUNT,
        "--role-name",
        "r",
    ]);
    assert!(script.contains("arn:aws:bedrock:*::foundation-model/*"));
    assert!(stderr.contains("broad documented default"), "{stderr}");
    // A model without a region is refused.
    let err = fails(&[
        "setup-script",
        "--issuer",
        ISSUER,
        "--team",
        "team_1",
        "--account",
        ACCOUNT,
        "--role-name",
        "r",
        "--model",
        "claude-sonnet-4-6",
    ]);
    assert!(err.contains("--region is required"), "{err}");
}

#[test]
fn explain_trust_and_simulate() {
    let dir = tempfile::tempdir().unwrap();
    let (trust, _) = ok(&[
        "trust-policy",
        "--issuer",
        ISSUER,
        "--team",
        "team_1",
        "--account",
        ACCOUNT,
        "--scope",
        "agent:agt_1",
    ]);
    let path = write_temp(&dir, "trust.json", &trust);
    let (text, _) = ok(&[
        "explain-trust",
        &path,
        "--issuer",
        ISSUER,
        "--team",
        "team_1",
    ]);
    assert!(
        text.contains("Admits exactly agent agt_1 of team team_1."),
        "{text}"
    );
    let (json, _) = ok(&[
        "explain-trust",
        &path,
        "--issuer",
        ISSUER,
        "--team",
        "team_1",
        "--json",
    ]);
    let v: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["findings"], serde_json::json!([]));

    // Findings do not change the exit code.
    let wide = write_temp(
        &dir,
        "wide.json",
        &format!(
            r#"{{"Version": "2012-10-17", "Statement": {{"Effect": "Allow",
              "Principal": {{"Federated": "arn:aws:iam::{ACCOUNT}:oidc-provider/{HOST}"}},
              "Action": "sts:AssumeRoleWithWebIdentity"}}}}"#
        ),
    );
    let (text, _) = ok(&[
        "explain-trust",
        &wide,
        "--issuer",
        ISSUER,
        "--team",
        "team_1",
    ]);
    assert!(text.contains("admits_any_subject"), "{text}");

    // Invalid input is an error.
    let bad = write_temp(&dir, "bad.json", "{\"Statement\": [}");
    let err = fails(&[
        "explain-trust",
        &bad,
        "--issuer",
        ISSUER,
        "--team",
        "team_1",
    ]);
    assert!(err.contains("not valid JSON"), "{err}");
    fails(&[
        "explain-trust",
        "/nonexistent/trust.json",
        "--issuer",
        ISSUER,
        "--team",
        "team_1",
    ]);

    let sim = |sub: &str| {
        let args = [
            "simulate",
            "--policy",
            &path,
            "--trust",
            "--action",
            "sts:AssumeRoleWithWebIdentity",
            "--resource",
            "arn:aws:iam::123456789012:role/byollm",
            "--principal",
            "arn:aws:iam::123456789012:oidc-provider/byollm.example.com",
            "--context",
            "byollm.example.com:aud=sts.amazonaws.com",
            "--context",
            sub,
            "--json",
        ];
        let (out, _) = ok(&args);
        serde_json::from_str::<Value>(&out).unwrap()
    };
    let v = sim("byollm.example.com:sub=scoped_principal:team_1/service_account:agt_1");
    assert_eq!(v["decision"], "allowed");
    assert_eq!(v["statements"][0]["sid"], "ByollmWebIdentity");
    let v = sim("byollm.example.com:sub=scoped_principal:team_1/service_account:agt_2");
    assert_eq!(v["decision"], "implicit_deny");
    assert_eq!(v["statements"], serde_json::json!([]));

    // Identity policy with a multi-valued key and an explicit deny.
    let identity = write_temp(
        &dir,
        "identity.json",
        r#"{"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "bedrock:*", "Resource": "*"},
            {"Sid": "NoUntagged", "Effect": "Deny", "Action": "*", "Resource": "*",
             "Condition": {"ForAnyValue:StringEquals": {"aws:TagKeys": "forbidden"}}}]}"#,
    );
    let (out, _) = ok(&[
        "simulate",
        "--policy",
        &identity,
        "--action",
        "bedrock:InvokeModel",
        "--resource",
        "*",
        "--context",
        "aws:TagKeys=a",
        "--context",
        "aws:TagKeys=forbidden",
        "--json",
    ]);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["decision"], "explicit_deny");
    assert_eq!(v["statements"][0]["sid"], "NoUntagged");
    let err = fails(&[
        "simulate",
        "--policy",
        &identity,
        "--action",
        "a:b",
        "--resource",
        "*",
        "--context",
        "novalue",
    ]);
    assert!(err.contains("expected KEY=VALUE"), "{err}");
}

/// The console's AWS setup page and `byollm aws` give the same documents,
/// byte for byte, for the same chosen model (both resolve it through the
/// catalog's one resolver).
#[test]
fn the_consoles_documents_for_a_chosen_model_are_the_clis() {
    use secrecy::ExposeSecret as _;

    let rt = tokio::runtime::Runtime::new().unwrap();
    let (stack, files) = rt.block_on(async {
        let stack = byollm_stack::Stack::start("alpha", "owner@alpha.test")
            .await
            .unwrap();
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let signed_in = http
            .post(format!("{}/console/sign-in", stack.base))
            .header("origin", &stack.base)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("api_key={}", stack.owner_key.expose_secret()))
            .send()
            .await
            .unwrap();
        assert_eq!(signed_in.status().as_u16(), 303);
        let cookie = signed_in
            .headers()
            .get_all("set-cookie")
            .iter()
            .find_map(|v| v.to_str().ok()?.strip_prefix("byollm_console="))
            .and_then(|v| v.split(';').next())
            .unwrap()
            .to_owned();
        let mut files = Vec::new();
        for format in ["permissions", "bash", "terraform", "cloudformation"] {
            let resp = http
                .get(format!(
                    "{}/console/aws-setup/file?account_id={ACCOUNT}&role_name=byollm-bedrock\
                     &region=us-east-1&scope=team&model=claude-haiku-4-5&format={format}",
                    stack.base
                ))
                .header("cookie", format!("byollm_console={cookie}"))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status().as_u16(), 200, "{format}");
            files.push(resp.text().await.unwrap());
        }
        (stack, files)
    });
    let (policy, _) = ok(&[
        "permissions-policy",
        "--account",
        ACCOUNT,
        "--region",
        "us-east-1",
        "--model",
        "claude-haiku-4-5",
    ]);
    assert_eq!(files[0], policy);
    assert!(policy.contains("inference-profile/global.anthropic.claude-haiku-4-5"));
    for (at, format) in [(1, "bash"), (2, "terraform"), (3, "cloudformation")] {
        let (script, _) = ok(&[
            "setup-script",
            "--issuer",
            byollm_stack::ISSUER,
            "--team",
            &stack.team_uid,
            "--account",
            ACCOUNT,
            "--role-name",
            "byollm-bedrock",
            "--scope",
            "team",
            "--region",
            "us-east-1",
            "--model",
            "claude-haiku-4-5",
            "--format",
            format,
        ]);
        assert_eq!(files[at], script, "{format}");
    }
    rt.block_on(stack.shutdown());
}
