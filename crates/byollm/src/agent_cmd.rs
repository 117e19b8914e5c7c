//! `byollm agent …`: the cloud-run worker.
//!
//! `byollm agent run` reads the run id, the workload token and the server from
//! the environment (`BYOLLM_RUN_ID`, `BYOLLM_WORKLOAD_TOKEN`, `BYOLLM_SERVER`),
//! runs the agent loop for the run's prompt through the gateway, optionally
//! runs a child command with the run's AWS environment, and finishes the run
//! (`finished`, or `failed` when anything failed).
//!
//! Credentials (DESIGN §2): by default the gateway's server-side broker serves
//! the run (flow 1) and nothing AWS-shaped enters the sandbox. With
//! `--worker-credentials`, or when a child command is given, the worker mints
//! identity tokens for the run and calls STS itself (flow 2), keeping a token
//! file fresh and serving `credential_process` on a local socket; that needs
//! the team's `worker_identity_tokens`, and without it the worker says so and
//! the broker serves the run. The child never sees the workload token.
//!
//! The agent loop sends the run's prompt and continues while the model stops
//! at `max_tokens` (at most [`MAX_TURNS`] turns). No tools are offered to the
//! model in this build; the child command is where a run's tools go.

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Args, Subcommand, ValueEnum};
use secrecy::SecretString;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use byollm_agent::gateway::{CallerCredentials, Message, stream_turn};
use byollm_agent::sink::{CREDENTIALS_SOCKET_ENV, serve_credentials};
use byollm_agent::{OidcConfig, OidcError, OidcManaged, TokenSource};
use byollm_api::client::Client;
use byollm_api::clock::SystemClock;
use byollm_api::types::{RunFinish, RunState};
use byollm_federation::aws::run_session_name;

use crate::out;

/// Most model turns of one run.
pub const MAX_TURNS: usize = 8;

/// `byollm agent` subcommands.
#[derive(Debug, Subcommand)]
pub enum AgentCommand {
    /// Work on a cloud run: the agent loop for its prompt, an optional child
    /// command with the run's AWS environment, then finish the run. The
    /// workload token comes from BYOLLM_WORKLOAD_TOKEN.
    Run(RunArgs),
}

/// How a child command gets the run's AWS credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AwsSink {
    /// AWS_ROLE_ARN + AWS_WEB_IDENTITY_TOKEN_FILE (a token file kept fresh).
    TokenFile,
    /// Only BYOLLM_CREDENTIALS_SOCKET, for a profile with
    /// `credential_process = byollm aws credential-process`.
    CredentialProcess,
    /// Both.
    Both,
}

/// `byollm agent run` flags.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The byollm server (default: the one `byollm login` stored, else
    /// http://127.0.0.1:8080, as for every command).
    #[arg(long, env = "BYOLLM_SERVER", value_name = "URL")]
    server: Option<String>,
    /// The run.
    #[arg(long, env = "BYOLLM_RUN_ID", value_name = "ID")]
    run_id: String,
    /// Assume the run's role in the worker (flow 2) and send those credentials
    /// with each inference request, instead of the server-side broker.
    #[arg(long)]
    worker_credentials: bool,
    /// The model; default: the run's model, else `auto`.
    #[arg(long)]
    model: Option<String>,
    /// STS endpoint override (e.g. the emulator); also given to the child as
    /// AWS_ENDPOINT_URL_STS.
    #[arg(long, env = "BYOLLM_AWS_ENDPOINT_URL", value_name = "URL")]
    aws_endpoint_url: Option<String>,
    /// How the child command gets AWS credentials.
    #[arg(long, value_enum, default_value = "both")]
    aws_sink: AwsSink,
    /// Identity token lifetime in seconds (the token file is rewritten ahead
    /// of its expiry).
    #[arg(long, default_value_t = 900, value_name = "SECONDS")]
    token_duration: i64,
    /// The child command and its arguments, after `--`.
    #[arg(last = true, value_name = "CMD")]
    command: Vec<String>,
}

/// Runs an agent subcommand.
pub async fn run(cmd: AgentCommand) -> anyhow::Result<()> {
    match cmd {
        AgentCommand::Run(args) => run_worker(args).await,
    }
}

#[expect(
    clippy::disallowed_methods,
    reason = "the workload token is read from the environment, never from a flag"
)]
fn workload_token() -> anyhow::Result<SecretString> {
    std::env::var("BYOLLM_WORKLOAD_TOKEN")
        .map(SecretString::from)
        .map_err(|_| anyhow::anyhow!("set BYOLLM_WORKLOAD_TOKEN to the run's workload token"))
}

/// The worker's AWS side, when it has one.
struct WorkerAws {
    managed: OidcManaged,
    _dir: tempfile::TempDir,
    socket: Option<PathBuf>,
}

async fn run_worker(args: RunArgs) -> anyhow::Result<()> {
    let server = Client::new(
        &crate::credentials::server(args.server.as_deref()),
        Some(workload_token()?),
    )?;
    let run = server
        .run(&args.run_id)
        .await
        .with_context(|| format!("reading run {}", args.run_id))?;
    if run.state.is_terminal() {
        anyhow::bail!(
            "run {} has already ended ({})",
            run.run_id,
            run.state.as_str()
        );
    }
    let tracker = TaskTracker::new();
    let shutdown = CancellationToken::new();
    let outcome = work(&args, &server, &run, &tracker, &shutdown).await;
    shutdown.cancel();
    tracker.close();
    tracker.wait().await;
    let state = if outcome.is_ok() {
        RunState::Finished
    } else {
        RunState::Failed
    };
    let finished = server
        .finish_run(&args.run_id, &RunFinish { state: Some(state) })
        .await;
    match (outcome, finished) {
        (Ok(()), Ok(_)) => {
            out::err(&format!("run {}: finished", args.run_id));
            Ok(())
        }
        (Ok(()), Err(e)) => Err(anyhow::anyhow!(
            "the run's work succeeded but finishing it failed: {e}"
        )),
        (Err(e), Ok(_)) => Err(e.context(format!("run {} failed", args.run_id))),
        (Err(e), Err(f)) => Err(e.context(format!(
            "run {} failed, and marking it failed did not work either: {f}",
            args.run_id
        ))),
    }
}

async fn work(
    args: &RunArgs,
    server: &Client,
    run: &byollm_api::types::RunInfo,
    tracker: &TaskTracker,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    let wants_aws = args.worker_credentials || !args.command.is_empty();
    let aws = match (&run.bedrock, wants_aws) {
        (Some(target), true) => {
            start_worker_aws(
                args,
                server,
                &target.role_arn,
                &target.region,
                tracker,
                shutdown,
            )
            .await?
        }
        (None, true) => {
            out::err(
                "note: this run has no AWS role (Bedrock is off for its team or agent); \
                 the child command gets no AWS credentials",
            );
            None
        }
        _ => None,
    };
    if let Some(prompt) = &run.prompt {
        let model = args
            .model
            .clone()
            .or_else(|| run.model.clone())
            .unwrap_or_else(|| "auto".to_owned());
        let worker_creds = aws.as_ref().filter(|_| args.worker_credentials);
        agent_loop(server, &model, prompt, worker_creds, run).await?;
    }
    if !args.command.is_empty() {
        run_child(&args.command, aws.as_ref(), args.aws_sink).await?;
    }
    Ok(())
}

async fn start_worker_aws(
    args: &RunArgs,
    server: &Client,
    role_arn: &str,
    region: &str,
    tracker: &TaskTracker,
    shutdown: &CancellationToken,
) -> anyhow::Result<Option<WorkerAws>> {
    let dir = tempfile::Builder::new()
        .prefix("byollm-run-")
        .tempdir()
        .context("creating the run's credential directory")?;
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700))?;
    }
    let mut cfg = OidcConfig::new(role_arn, region, &run_session_name(&args.run_id));
    cfg.sts_endpoint_url = args.aws_endpoint_url.clone();
    cfg.token_duration_seconds = args.token_duration;
    if args.aws_sink != AwsSink::CredentialProcess {
        cfg.token_file = Some(dir.path().join("web-identity-token"));
    }
    let managed = OidcManaged::new(
        server.clone(),
        TokenSource::Run {
            run_id: args.run_id.clone(),
        },
        cfg,
        Arc::new(SystemClock),
    );
    // The first credentials (and token file) now, so a refusal is said at once.
    match managed.credentials().await {
        Ok(_) => {}
        Err(OidcError::WorkerTokensDisabled) => {
            out::err(&format!(
                "note: {}. The child command gets no AWS credentials; an admin can set \
                 `worker_identity_tokens: true` in the team's LLM settings.",
                OidcError::WorkerTokensDisabled
            ));
            return Ok(None);
        }
        Err(e) => return Err(anyhow::anyhow!("worker-side AWS credentials: {e}")),
    }
    out::err(&format!("credentials: {}", managed.status()));
    let keeper = managed.clone();
    let stop = shutdown.clone();
    tracker.spawn(async move {
        if let Err(e) = keeper.run(stop).await {
            tracing::warn!(error = %e, "credential refresh stopped");
        }
    });
    let socket = if args.aws_sink == AwsSink::TokenFile {
        None
    } else {
        let path = dir.path().join("credentials.sock");
        serve_credentials(&path, managed.clone(), tracker, shutdown.clone())
            .context("starting the credential socket")?;
        Some(path)
    };
    Ok(Some(WorkerAws {
        managed,
        _dir: dir,
        socket,
    }))
}

async fn agent_loop(
    server: &Client,
    model: &str,
    prompt: &str,
    aws: Option<&WorkerAws>,
    run: &byollm_api::types::RunInfo,
) -> anyhow::Result<()> {
    let mut conversation = vec![Message {
        role: "user",
        text: prompt.to_owned(),
    }];
    for turn in 1..=MAX_TURNS {
        let reply = worker_turn(server, model, &conversation, aws, run)
            .await
            .map_err(|e| anyhow::anyhow!("model turn {turn}: {e}"))?;
        out::line("");
        out::err(&format!(
            "[turn {turn}: route {}{}; credentials: {}]",
            reply.route.as_deref().unwrap_or("unknown"),
            reply
                .fallback
                .as_deref()
                .map(|f| format!(", fell back after {f}"))
                .unwrap_or_default(),
            if aws.is_some() {
                "the worker's own (flow 2)"
            } else {
                "server-side broker"
            }
        ));
        if reply.stop_reason.as_deref() != Some("max_tokens") {
            return Ok(());
        }
        conversation.push(Message {
            role: "assistant",
            text: reply.text,
        });
        conversation.push(Message {
            role: "user",
            text: "Continue.".to_owned(),
        });
    }
    Ok(())
}

/// One model turn; with the worker's own credentials, an expired or unknown
/// credentials refusal gets new credentials and one more try.
async fn worker_turn(
    server: &Client,
    model: &str,
    conversation: &[Message],
    aws: Option<&WorkerAws>,
    run: &byollm_api::types::RunInfo,
) -> anyhow::Result<byollm_agent::gateway::Reply> {
    let print = |t: &str| {
        let mut stdout = std::io::stdout().lock();
        let _ = stdout.write_all(t.as_bytes());
        let _ = stdout.flush();
    };
    for attempt in 0..2 {
        let caller = match aws {
            Some(a) => Some(CallerCredentials {
                creds: a.managed.credentials().await?,
                region: run.bedrock.as_ref().map(|b| b.region.clone()),
            }),
            None => None,
        };
        match stream_turn(server, model, conversation, caller.as_ref(), print).await {
            Err(e) if attempt == 0 && e.is_expired_credentials() => {
                if let Some(a) = aws {
                    a.managed.invalidate_credentials();
                    out::err("note: AWS refused the credentials as expired; re-minting");
                } else {
                    return Err(e.into());
                }
            }
            other => return Ok(other?),
        }
    }
    anyhow::bail!("AWS refused the new credentials too")
}

async fn run_child(
    command: &[String],
    aws: Option<&WorkerAws>,
    sink: AwsSink,
) -> anyhow::Result<()> {
    let (program, rest) = command.split_first().context("empty command")?;
    let mut child = tokio::process::Command::new(program);
    child.args(rest);
    // The sandbox's tools never get the run's workload token.
    child.env_remove("BYOLLM_WORKLOAD_TOKEN");
    if let Some(a) = aws {
        if sink != AwsSink::CredentialProcess {
            child.envs(a.managed.child_env());
        } else {
            let cfg = a.managed.config();
            child.env("AWS_REGION", &cfg.region);
            child.env("AWS_DEFAULT_REGION", &cfg.region);
            if let Some(url) = &cfg.sts_endpoint_url {
                child.env("AWS_ENDPOINT_URL_STS", url);
            }
        }
        if let Some(sock) = &a.socket {
            child.env(CREDENTIALS_SOCKET_ENV, sock);
        }
    }
    let status = child
        .status()
        .await
        .with_context(|| format!("could not start `{program}`"))?;
    if status.success() {
        Ok(())
    } else {
        anyhow::bail!("`{}` exited with {status}", command.join(" "))
    }
}
