//! `byollm aws credential-process`: AWS's `credential_process` output for a run.

use clap::Args;

/// `byollm aws credential-process` flags.
#[derive(Debug, Args)]
pub struct CredentialProcessArgs {}

/// Prints the credentials.
pub async fn run(_args: CredentialProcessArgs) -> anyhow::Result<()> {
    anyhow::bail!("credential-process is not built yet")
}
