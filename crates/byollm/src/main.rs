//! The `byollm` binary: one command for the server, the operator tools, the AWS
//! setup tooling and (later) the agent runtime, chat, emulator and demo.

mod agent_cmd;
mod aws_cmd;
mod azure_cmd;
mod chat_cmd;
mod cloudsim_cmd;
mod credentials;
mod demo_cmd;
mod gcp_cmd;
mod http_cmd;
mod operator;
mod out;
mod verdicts;

use std::process::ExitCode;

/// The allocator of every byollm process: glibc's malloc cost the server
/// ~15% of its CPU under load, and capped it near 4,500 requests/s on 2 cores
/// where mimalloc reaches ~7,000 (docs/performance.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    /// Google Cloud setup tooling: setup script, attribute-condition explainer, doctor.
    Gcp {
        #[command(subcommand)]
        cmd: gcp_cmd::GcpCommand,
    },
    /// Microsoft Azure setup tooling: setup script (managed identity, federated
    /// identity credentials, Foundry roles), FIC explainer.
    Azure {
        #[command(subcommand)]
        cmd: azure_cmd::AzureCommand,
    },
    /// A strict local cloud emulator: AWS (IAM, STS, Bedrock Runtime), Google Cloud
    /// (STS, IAM, Vertex AI), Microsoft Entra, and the direct vendor APIs. `awsim` is its old name.
    #[command(alias = "awsim")]
    Cloudsim(cloudsim_cmd::CloudsimArgs),
    /// The cloud-run worker.
    Agent {
        #[command(subcommand)]
        cmd: agent_cmd::AgentCommand,
    },
    /// An interactive terminal agent against the gateway.
    Chat(chat_cmd::ChatArgs),
    /// Redeem your invitation: stores your API key and the server for the other
    /// commands (file 0600; BYOLLM_API_KEY still wins when set).
    Login(credentials::LoginArgs),
    /// Start the emulator and the server on loopback and show the whole system working.
    Demo(demo_cmd::DemoArgs),
    #[command(flatten)]
    Http(http_cmd::HttpCommand),
}

/// Runs an async command on a fresh multi-threaded runtime.
fn block<F: std::future::Future<Output = anyhow::Result<()>>>(fut: F) -> anyhow::Result<()> {
    operator::runtime()?.block_on(fut)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Aws { cmd } => aws_cmd::run(cmd),
        Command::Gcp { cmd } => gcp_cmd::run(cmd),
        Command::Azure { cmd } => azure_cmd::run(cmd),
        Command::Serve(args) => block(operator::serve(args)),
        Command::Admin { cmd } => block(operator::admin(cmd)),
        Command::Keys { cmd } => block(operator::keys(cmd)),
        Command::Cloudsim(args) => block(cloudsim_cmd::run(args)),
        Command::Agent { cmd } => block(agent_cmd::run(cmd)),
        Command::Chat(args) => block(chat_cmd::run(args)),
        Command::Demo(args) => block(demo_cmd::run(args)),
        Command::Login(args) => block(credentials::login(args)),
        Command::Http(cmd) => block(http_cmd::run(cmd)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            out::err(&format!("error: {err:#}"));
            ExitCode::from(out::exit_status(&err))
        }
    }
}
