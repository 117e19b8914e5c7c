//! `byollm awsim`: the local AWS emulator (DESIGN §8, §11).

use clap::Args;

/// `byollm awsim` flags.
#[derive(Debug, Args)]
pub struct AwsimArgs {}

/// Runs the emulator until stopped.
pub async fn run(_args: AwsimArgs) -> anyhow::Result<()> {
    anyhow::bail!("the emulator is not built yet")
}
