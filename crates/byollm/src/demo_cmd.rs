//! `byollm demo`: the whole system on loopback in one command.

use clap::Args;

/// `byollm demo` flags.
#[derive(Debug, Args)]
pub struct DemoArgs {}

/// Runs the demo.
pub async fn run(_args: DemoArgs) -> anyhow::Result<()> {
    anyhow::bail!("the demo is not built yet")
}
