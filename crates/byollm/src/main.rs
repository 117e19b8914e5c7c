//! The `byollm` binary.

mod aws_cmd;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "byollm", version, about = "Bring your own LLM cloud: OIDC issuer, control plane and inference gateway")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// AWS setup tooling: policies, setup script, trust explainer, simulator.
    Aws {
        #[command(subcommand)]
        cmd: aws_cmd::AwsCommand,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Aws { cmd } => aws_cmd::run(cmd),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            use std::io::Write as _;
            let _ = writeln!(std::io::stderr().lock(), "error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
