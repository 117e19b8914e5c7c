//! The admin CLI over HTTP: team settings, models, agents, API keys, runs, usage.

use clap::Subcommand;

/// Commands that talk to a running server.
#[derive(Debug, Subcommand)]
pub enum HttpCommand {}

/// Runs one.
pub async fn run(cmd: HttpCommand) -> anyhow::Result<()> {
    match cmd {}
}
