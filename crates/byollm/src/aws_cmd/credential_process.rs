//! `byollm aws credential-process`: AWS's `credential_process` output for a run,
//! for an AWS config profile inside a sandbox:
//!
//! ```ini
//! [profile run]
//! credential_process = byollm aws credential-process
//! ```
//!
//! Inside `byollm agent run … -- CMD` it asks the worker over its credential
//! socket (`BYOLLM_CREDENTIALS_SOCKET`), so every tool shares the worker's
//! credentials and one STS call per refresh window. Elsewhere it mints an
//! identity token with the run's workload token (`BYOLLM_WORKLOAD_TOKEN`) and
//! calls STS itself. Only the JSON goes to stdout; AWS shows stderr on failure.

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Args;
use secrecy::ExposeSecret as _;

use byollm_agent::sink::{CREDENTIALS_SOCKET_ENV, fetch_credentials};
use byollm_agent::{OidcConfig, OidcManaged, TokenSource};
use byollm_api::client::Client;
use byollm_api::clock::SystemClock;
use byollm_federation::aws::run_session_name;

/// `byollm aws credential-process` flags.
#[derive(Debug, Args)]
pub struct CredentialProcessArgs {
    /// The credential socket of a running `byollm agent run` (set for its child
    /// command).
    #[arg(long, env = CREDENTIALS_SOCKET_ENV, value_name = "PATH")]
    socket: Option<PathBuf>,
    /// Without a socket: the byollm server (default: the one `byollm login`
    /// stored, else http://127.0.0.1:8080, as for every command).
    #[arg(long, env = "BYOLLM_SERVER", value_name = "URL")]
    server: Option<String>,
    /// Without a socket: the run (its workload token comes from
    /// BYOLLM_WORKLOAD_TOKEN).
    #[arg(long, env = "BYOLLM_RUN_ID", value_name = "ID")]
    run_id: Option<String>,
    /// STS endpoint override (e.g. the emulator).
    #[arg(long, env = "BYOLLM_AWS_ENDPOINT_URL", value_name = "URL")]
    aws_endpoint_url: Option<String>,
}

/// Prints the credentials.
pub async fn run(args: CredentialProcessArgs) -> anyhow::Result<()> {
    let json = match &args.socket {
        Some(path) => fetch_credentials(path)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?,
        None => secrecy::SecretString::from(standalone(&args).await?),
    };
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(json.expose_secret().as_bytes())?;
    stdout.write_all(b"\n")?;
    stdout.flush()?;
    Ok(())
}

#[expect(
    clippy::disallowed_methods,
    reason = "the workload token is read from the environment, never from a flag"
)]
fn workload_token() -> anyhow::Result<secrecy::SecretString> {
    std::env::var("BYOLLM_WORKLOAD_TOKEN")
        .map(secrecy::SecretString::from)
        .map_err(|_| {
            anyhow::anyhow!(
                "set BYOLLM_WORKLOAD_TOKEN (the run's workload token), or run inside \
                 `byollm agent run`, which sets {CREDENTIALS_SOCKET_ENV}"
            )
        })
}

async fn standalone(args: &CredentialProcessArgs) -> anyhow::Result<String> {
    let server = crate::credentials::server(args.server.as_deref());
    let run_id = args
        .run_id
        .as_deref()
        .context("set BYOLLM_RUN_ID (or --run-id) to the run's id")?;
    let client = Client::new(&server, Some(workload_token()?))?;
    let run = client.run(run_id).await?;
    let target = run
        .bedrock
        .context("this run has no AWS role: Bedrock is off for its team or agent")?;
    let mut cfg = OidcConfig::new(&target.role_arn, &target.region, &run_session_name(run_id));
    cfg.sts_endpoint_url = args.aws_endpoint_url.clone();
    cfg.keep_credentials = false;
    let managed = OidcManaged::new(
        client,
        TokenSource::Run {
            run_id: run_id.to_owned(),
        },
        cfg,
        Arc::new(SystemClock),
    );
    let creds = managed.credentials().await?;
    Ok(creds.credential_process_json())
}
