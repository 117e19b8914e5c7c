//! The `byollm` binary: one command for the server, the operator tools, the AWS
//! setup tooling and (later) the agent runtime, chat, emulator and demo.

mod aws_cmd;
mod awsim_cmd;
mod operator;
mod out;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "byollm",
    version,
    about = "Bring your own LLM cloud: an OIDC issuer, control plane and inference gateway \
             that runs agents' inference on the customer's Amazon Bedrock"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server: OIDC issuer, tenancy API and identity tokens.
    Serve(operator::ServeArgs),
    /// Operator administration on the store (offline).
    Admin {
        #[command(subcommand)]
        cmd: operator::AdminCommand,
    },
    /// The issuer's signing keys.
    Keys {
        #[command(subcommand)]
        cmd: operator::KeysCommand,
    },
    /// AWS setup tooling: policies, setup script, trust explainer, simulator.
    Aws {
        #[command(subcommand)]
        cmd: aws_cmd::AwsCommand,
    },
    /// A strict local AWS emulator (IAM, STS, Bedrock Runtime) and direct-API emulators.
    Awsim(awsim_cmd::AwsimArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Aws { cmd } => aws_cmd::run(cmd),
        Command::Serve(args) => {
            operator::runtime().and_then(|rt| rt.block_on(operator::serve(args)))
        }
        Command::Admin { cmd } => {
            operator::runtime().and_then(|rt| rt.block_on(operator::admin(cmd)))
        }
        Command::Keys { cmd } => {
            operator::runtime().and_then(|rt| rt.block_on(operator::keys(cmd)))
        }
        Command::Awsim(args) => {
            operator::runtime().and_then(|rt| rt.block_on(awsim_cmd::run(args)))
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            out::err(&format!("error: {err:#}"));
            ExitCode::FAILURE
        }
    }
}
