//! `byollm gcp doctor`: flags and the printing of the report; the walk is
//! `byollm_doctor::gcp`. Output and exit status as `byollm aws doctor`.

use std::sync::Arc;

use anyhow::Context as _;
use byollm_api::clock::{Clock as _, SystemClock};
use byollm_doctor::gcp::GcpOptions;
use clap::Args;
use secrecy::SecretString;

/// `byollm gcp doctor` flags.
#[derive(Debug, Args)]
#[command(
    after_help = "The member's API key is read from BYOLLM_API_KEY, else the one `byollm login` \
    stored (an admin's key for --agent). With --gcp-access-token-file (a token that may read \
    the workload identity provider, e.g. `gcloud auth print-access-token`), the doctor also \
    reads the provider and fails one without an attribute condition or whose condition admits \
    other teams. --gcp-endpoint-url points STS, IAM Credentials, IAM and Vertex AI at one \
    endpoint, such as the emulator. Exit status: 0 healthy, 1 failing (the diagnosis names the \
    step, the cause and the fix), 3 not verified."
)]
pub struct DoctorArgs {
    /// The byollm server (default: the one `byollm login` stored).
    #[arg(long, value_name = "URL", env = "BYOLLM_SERVER")]
    server: Option<String>,
    /// Check this named agent instead of the team.
    #[arg(long, value_name = "UID")]
    agent: Option<String>,
    /// STS, IAM Credentials, IAM and Vertex AI endpoint override (the emulator).
    #[arg(long, value_name = "URL", env = "BYOLLM_GCP_ENDPOINT_URL")]
    gcp_endpoint_url: Option<String>,
    /// A file holding a Google access token that may read the provider.
    #[arg(long, value_name = "FILE")]
    gcp_access_token_file: Option<String>,
    /// Call only this catalog model (default: the team's highest-ranked Claude
    /// model on Vertex AI).
    #[arg(long, value_name = "ID")]
    model: Option<String>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

/// Runs the doctor.
pub async fn run(args: DoctorArgs) -> anyhow::Result<()> {
    let key = crate::credentials::api_key()
        .context("the doctor needs a member's API key (an admin's for --agent)")?;
    let admin_token = match &args.gcp_access_token_file {
        Some(path) => Some(SecretString::from(
            std::fs::read_to_string(path)
                .with_context(|| format!("reading {path}"))?
                .trim()
                .to_owned(),
        )),
        None => None,
    };
    let opts = GcpOptions {
        server: crate::credentials::server(args.server.as_deref()),
        api_key: key,
        agent: args.agent,
        endpoint_url: args.gcp_endpoint_url,
        admin_token,
        model: args.model,
        now_ms: Arc::new(|| SystemClock.now_ms()),
    };
    let report = byollm_doctor::gcp::run(&opts).await;
    crate::aws_cmd::doctor::finish(&report, args.json, "byollm gcp doctor", "Vertex AI")
}
