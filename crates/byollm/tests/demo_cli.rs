//! `byollm demo` runs end to end (emulator, server, team, roles, a streamed
//! Bedrock reply, credits, a refused agent and the doctor's diagnosis, a second
//! team streaming from Vertex AI through its pool, a third from Azure AI Foundry
//! through its FIC) and exits
//! 0, printing the lines the README's transcript shows and no secret.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr,
    clippy::disallowed_methods,
    reason = "test code: a failed unwrap is a failed test"
)]

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};

#[test]
fn the_demo_runs_and_prints_its_transcript() {
    let out = Command::new(env!("CARGO_BIN_EXE_byollm"))
        .arg("demo")
        .env("RUST_LOG", "off")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "exit {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    for needle in [
        "OIDC provider  arn:aws:iam::123456789012:oidc-provider/issuer.byollm.test",
        "role           arn:aws:iam::123456789012:role/byollm-acme",
        "own role     arn:aws:iam::123456789012:role/byollm-release-bot",
        "sub = scoped_principal:",
        "/service_account:",
        "iss = https://issuer.byollm.test",
        "> Hello from a byollm agent run",
        "x-byollm-route: aws_bedrock:global.anthropic.claude-sonnet-4-6@us-east-1",
        "STS AssumeRoleWithWebIdentity calls: 1",
        "STS calls still 1",
        "credits: inference 0.00",
        "platform 1.00",
        "compute 0.10",
        "POST /v1/messages -> HTTP 403",
        "allow_fallback_outside_cloud is false",
        "[FAIL] sts",
        "cause: sub_not_admitted",
        "condition StringEquals",
        "9. A second team on Google Vertex AI",
        "pool           projects/123456789012/locations/global/workloadIdentityPools/byollm-pool",
        "provider       byollm-issuer trusts https://issuer.byollm.test",
        "condition    assertion.team == '",
        "grant        roles/aiplatform.user to principalSet://iam.googleapis.com/projects/123456789012/locations/global/workloadIdentityPools/byollm-pool/attribute.team/",
        "aud = //iam.googleapis.com/projects/123456789012/locations/global/workloadIdentityPools/byollm-pool/providers/byollm-issuer",
        "> Hello from a byollm member on Google Cloud",
        "x-byollm-route: gcp_vertex:claude-sonnet-4-6@global",
        "Google STS token exchanges: 1",
        "(HTTP 200, route gcp_vertex:claude-sonnet-4-6@global): exchanges still 1",
        "10. A third team on Azure AI Foundry",
        "identity       byollm-uami (user-assigned managed identity, client id 0d3c1f2e-5b6a-4c8d-9e0f-1a2b3c4d5e6f)",
        "issuer https://issuer.byollm.test, subject scoped_principal:",
        "audience api://AzureADTokenExchange",
        "role         Azure AI User on initech-ai",
        "alg = RS256",
        "aud = api://AzureADTokenExchange",
        "> Hello from a byollm member on Azure",
        "x-byollm-route: azure_foundry:claude-sonnet-4-6@initech-ai",
        "Entra token exchanges: 1",
        "(HTTP 200, route azure_foundry:claude-sonnet-4-6@initech-ai): exchanges still 1",
        "11. The web console",
        "/console/sign-in/link/bsl_",
        "Done in",
    ] {
        assert!(stdout.contains(needle), "missing {needle:?} in:\n{stdout}");
    }
    // The Azure token's subject is the team (granularity `team`), the member
    // is in `actor`.
    let azure = stdout.split("alg = RS256").nth(1).expect("an RS256 token");
    let sub = azure
        .lines()
        .find_map(|l| l.trim().strip_prefix("sub = "))
        .expect("its sub");
    assert!(
        sub.starts_with("scoped_principal:") && !sub.contains('/'),
        "{sub}"
    );
    assert!(azure.contains(&format!("actor = {sub}/user:")), "{azure}");
    // No secret reaches the terminal: keys, workload tokens, JWTs, AWS keys.
    for secret in [
        byollm_core::ids::API_KEY_PREFIX,
        byollm_core::ids::WORKLOAD_TOKEN_PREFIX,
        "eyJ",
        "ASIA",
        "awsimAdminSecret",
        "sk-awsim",
        "ya29.",
    ] {
        assert!(
            !stdout.contains(secret) && !stderr.contains(secret),
            "{secret} printed:\n{stdout}\n{stderr}"
        );
    }
}

/// `--keep-running` keeps the server up after the transcript: the printed
/// console URL and one-time sign-in link work until Ctrl-C (SIGINT), which
/// stops it cleanly.
#[test]
fn keep_running_serves_the_console_until_ctrl_c() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_byollm"))
        .args(["demo", "--keep-running"])
        .env("RUST_LOG", "off")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut console, mut link) = (None, None);
    for line in lines.by_ref() {
        let line = line.unwrap();
        let value = |label: &str| line.trim().strip_prefix(label).map(|v| v.trim().to_owned());
        console = console.or_else(|| value("console:"));
        link = link.or_else(|| value("sign-in link:"));
        if line.contains("Still running") {
            break;
        }
    }
    let (console, link) = (console.expect("a console URL"), link.expect("a link"));
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let sign_in = http.get(&console).send().await.unwrap();
        assert_eq!(
            sign_in.status().as_u16(),
            303,
            "the console asks to sign in"
        );
        let page = http.get(&link).send().await.unwrap();
        assert_eq!(page.status().as_u16(), 200);
        assert!(
            page.text()
                .await
                .unwrap()
                .contains("Sign in with this link")
        );
        let origin = console.trim_end_matches("/console");
        let spent = http
            .post(&link)
            .header("origin", origin)
            .send()
            .await
            .unwrap();
        assert_eq!(spent.status().as_u16(), 303, "the link signs the owner in");
    });
    let killed = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let status = child.wait().unwrap();
    assert!(status.success(), "exit {status:?}: {rest:?}");
    assert!(rest.iter().any(|l| l.contains("Stopping")), "{rest:?}");
}
