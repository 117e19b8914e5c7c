//! `byollm agent …`: the cloud-run worker.

use clap::Subcommand;

/// `byollm agent` subcommands.
#[derive(Debug, Subcommand)]
pub enum AgentCommand {}

/// Runs an agent subcommand.
pub async fn run(cmd: AgentCommand) -> anyhow::Result<()> {
    match cmd {}
}
