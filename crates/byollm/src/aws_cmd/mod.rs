//! `byollm aws …`: the AWS setup tooling of DESIGN §7 (trust and permissions
//! policies, setup script, trust explainer, simulator).

use clap::Subcommand;

/// The `byollm aws` subcommands.
#[derive(Debug, Subcommand)]
pub enum AwsCommand {}

/// Runs one `byollm aws` subcommand.
pub fn run(cmd: AwsCommand) -> anyhow::Result<()> {
    match cmd {}
}
