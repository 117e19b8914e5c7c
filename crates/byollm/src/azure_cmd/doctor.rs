//! `byollm azure doctor`: flags and the printing of the report; the walk is
//! `byollm_doctor::azure`. Output and exit status as `byollm aws doctor`.

use std::sync::Arc;

use anyhow::Context as _;
use byollm_api::clock::{Clock as _, SystemClock};
use byollm_doctor::azure::AzureOptions;
use clap::Args;

/// `byollm azure doctor` flags.
#[derive(Debug, Args)]
#[command(
    after_help = "The member's API key is read from BYOLLM_API_KEY, else the one `byollm login` \
    stored (an admin's key for --agent). --azure-endpoint-url points Entra's token endpoint and \
    Azure AI Foundry at one endpoint, such as the emulator. Exit status: 0 healthy, 1 failing \
    (the diagnosis names the step, the cause and the fix), 3 not verified."
)]
pub struct DoctorArgs {
    /// The byollm server (default: the one `byollm login` stored).
    #[arg(long, value_name = "URL", env = "BYOLLM_SERVER")]
    server: Option<String>,
    /// Check this named agent instead of the team.
    #[arg(long, value_name = "UID")]
    agent: Option<String>,
    /// Entra and Azure AI Foundry endpoint override (the emulator).
    #[arg(long, value_name = "URL", env = "BYOLLM_AZURE_ENDPOINT_URL")]
    azure_endpoint_url: Option<String>,
    /// Call only this catalog model (default: the team's highest-ranked Claude
    /// model on Foundry).
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
    let opts = AzureOptions {
        server: crate::credentials::server(args.server.as_deref()),
        api_key: key,
        agent: args.agent,
        endpoint_url: args.azure_endpoint_url,
        model: args.model,
        now_ms: Arc::new(|| SystemClock.now_ms()),
    };
    let report = byollm_doctor::azure::run(&opts).await;
    crate::aws_cmd::doctor::finish(
        &report,
        args.json,
        "byollm azure doctor",
        "Azure AI Foundry",
    )
}
