//! `byollm aws doctor` (DESIGN §7, §11): flags and output; the walk itself is in
//! `crate::doctor`.
//!
//! Additions to DESIGN §11: `--aws-endpoint-url` (STS, Bedrock and, unless
//! `--iam-endpoint-url` says otherwise, IAM: the emulator), `--duration`,
//! `--model` and `--json`. Credentials that may read IAM come from the standard
//! AWS environment (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
//! `AWS_SESSION_TOKEN`); without them the doctor reports what STS and Bedrock
//! said and lists the possible causes.

use anyhow::bail;
use clap::Args;
use secrecy::SecretString;

use crate::doctor::iam::IamCredentials;
use crate::doctor::{Options, diagnose};
use crate::out;

/// `byollm aws doctor` flags.
#[derive(Debug, Args)]
#[command(
    after_help = "The member's API key is read from BYOLLM_API_KEY (an admin's key for \
    --agent). AWS credentials that may read IAM (iam:GetRole, \
    iam:ListOpenIDConnectProviders, iam:GetOpenIDConnectProvider) are \
    read from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN when set; with \
    them the doctor names the exact trust-policy condition that refused a token. \
    --aws-endpoint-url is an addition to the documented flags, for the emulator. \
    With --agent the doctor starts a short run for the agent (it counts as a cloud run \
    in usage) and cancels it at the end. Exit status: 0 when every step works, 1 otherwise."
)]
pub struct DoctorArgs {
    /// The byollm server, e.g. https://byollm.example.com.
    #[arg(long, value_name = "URL", env = "BYOLLM_SERVER")]
    server: String,
    /// Check this named agent (its override role and region) instead of the team.
    #[arg(long, value_name = "UID")]
    agent: Option<String>,
    /// STS, Bedrock (and IAM) endpoint override, e.g. the emulator's http://127.0.0.1:4566.
    #[arg(long, value_name = "URL")]
    aws_endpoint_url: Option<String>,
    /// IAM endpoint override (defaults to --aws-endpoint-url, else IAM's global endpoint).
    #[arg(long, value_name = "URL")]
    iam_endpoint_url: Option<String>,
    /// DurationSeconds to request from STS (the server's broker asks for 3600).
    #[arg(long, value_name = "SECONDS", default_value_t = 3600)]
    duration: i32,
    /// The model to call (default: the highest-ranked Claude model the team names in
    /// its settings for Bedrock, else the highest-ranked one it routes there).
    #[arg(long, value_name = "ID")]
    model: Option<String>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

#[expect(
    clippy::disallowed_methods,
    reason = "the binary reads its secrets and the standard AWS environment here, at start-up"
)]
fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// Runs the doctor.
pub async fn run(args: DoctorArgs) -> anyhow::Result<()> {
    let Some(key) = env("BYOLLM_API_KEY") else {
        bail!("set BYOLLM_API_KEY to a member's API key (an admin's for --agent)");
    };
    let iam = match (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")) {
        (Some(id), Some(secret)) => Some(IamCredentials {
            access_key_id: id,
            secret_access_key: SecretString::from(secret),
            session_token: env("AWS_SESSION_TOKEN").map(SecretString::from),
        }),
        _ => None,
    };
    let opts = Options {
        server: args.server,
        api_key: SecretString::from(key),
        agent: args.agent,
        aws_endpoint_url: args.aws_endpoint_url,
        iam_endpoint_url: args.iam_endpoint_url,
        iam,
        duration_seconds: args.duration,
        model: args.model,
    };
    let report = diagnose(&opts).await;
    if args.json {
        out::json(&report)?;
    } else {
        for line in report.to_text().lines() {
            out::line(line);
        }
    }
    if report.healthy() {
        return Ok(());
    }
    let cause = report.cause().map(|c| c.code()).unwrap_or_default();
    bail!("the doctor found a problem: {cause}")
}
