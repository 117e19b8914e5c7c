//! `byollm chat`: an interactive terminal agent against the gateway.
//!
//! Multi-turn, streaming, `--model`. Credentials:
//! - default: the member's OIDC role, brokered by the server (flow 3); nothing
//!   AWS-shaped on this machine;
//! - `--client-credentials`: mint the member's identity token and call STS here,
//!   then send the short-lived credentials with each request;
//! - `--aws-profile NAME`: the member's own AWS credentials from that profile
//!   (SSO, `credential_process`, files; `--auth-refresh CMD` runs when they are
//!   missing or expired), sent with each request (flow 4).
//!
//! Every reply is followed by the route that served it (`x-byollm-route`) and
//! where its credentials came from; failures are explained in a line or two
//! that says what to do. Lines starting with `/` are commands handled here
//! (`/help` lists them) and never sent to the model. The chat exits 1 when any
//! request failed, so a piped chat tells its script. The API key comes from
//! `BYOLLM_API_KEY` or `byollm login` (a flag would land in shell history) and
//! is never printed.

use std::io::Write as _;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Args;
use tokio::io::AsyncBufReadExt as _;

use byollm_agent::gateway::{CallerCredentials, Message, TurnError, stream_turn};
use byollm_agent::{
    CredentialState, CredentialStatus, LocalChain, LocalChainConfig, OidcConfig, OidcManaged,
    TokenSource,
};
use byollm_api::catalog::{Catalog, Family};
use byollm_api::client::Client;
use byollm_api::clock::SystemClock;
use byollm_federation::aws::user_session_name;

/// `byollm chat` flags.
#[derive(Debug, Args)]
pub struct ChatArgs {
    /// The byollm server (default: the one `byollm login` stored, else
    /// http://127.0.0.1:8080; the key comes from BYOLLM_API_KEY or `byollm login`).
    #[arg(long, env = "BYOLLM_SERVER", value_name = "URL")]
    server: Option<String>,
    /// The model.
    #[arg(long, default_value = "claude-sonnet-4-6")]
    model: String,
    /// Mint your identity token and call STS on this machine; send the
    /// short-lived credentials with each request.
    #[arg(long, conflicts_with = "aws_profile")]
    client_credentials: bool,
    /// Use your own AWS credentials from this profile (`default` for the
    /// default chain), sent with each request.
    #[arg(long, value_name = "NAME")]
    aws_profile: Option<String>,
    /// Run this when local credentials are missing or expired, e.g.
    /// "aws sso login --profile dev" (split on spaces).
    #[arg(long, value_name = "CMD", requires = "aws_profile")]
    auth_refresh: Option<String>,
    /// The Bedrock region for your own credentials (default: the profile's).
    #[arg(long, value_name = "REGION")]
    region: Option<String>,
    /// STS endpoint override for --client-credentials (e.g. the emulator).
    #[arg(long, env = "BYOLLM_AWS_ENDPOINT_URL", value_name = "URL")]
    aws_endpoint_url: Option<String>,
}

/// Where the credentials of each request come from.
enum Creds {
    Server,
    Client(OidcManaged),
    Local {
        chain: LocalChain,
        region: Option<String>,
    },
}

impl Creds {
    fn status(&self) -> CredentialStatus {
        match self {
            Creds::Server => CredentialStatus::new(
                CredentialState::Disabled,
                "none on this machine: the server brokers the team's OIDC role for you",
            ),
            Creds::Client(m) => m.status(),
            Creds::Local { chain, .. } => chain.status(),
        }
    }

    /// The credentials line: what the state means here. "disabled" would read
    /// as broken when the server holding them is the normal case.
    fn describe(&self) -> String {
        match self {
            Creds::Server => "from the server (none on this machine: the server brokers \
                              the team's OIDC role for you)"
                .to_owned(),
            other => other.status().to_string(),
        }
    }

    /// The short form after each reply.
    fn short(&self) -> &'static str {
        match self {
            Creds::Server => "from the server",
            other => other.status().state.as_str(),
        }
    }

    fn invalidate(&self) {
        match self {
            Creds::Server => {}
            Creds::Client(m) => m.invalidate_credentials(),
            Creds::Local { chain, .. } => chain.invalidate(),
        }
    }

    async fn for_request(&self) -> Result<Option<CallerCredentials>, String> {
        match self {
            Creds::Server => Ok(None),
            Creds::Client(m) => m
                .credentials()
                .await
                .map(|creds| {
                    Some(CallerCredentials {
                        creds,
                        region: Some(m.config().region.clone()),
                    })
                })
                .map_err(|e| e.to_string()),
            Creds::Local { chain, region } => chain
                .credentials()
                .await
                .map(|creds| {
                    Some(CallerCredentials {
                        creds,
                        region: region.clone().or_else(|| chain.region()),
                    })
                })
                .map_err(|e| e.to_string()),
        }
    }
}

fn write_out(text: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes());
    let _ = stdout.flush();
}

/// Runs the chat.
pub async fn run(args: ChatArgs) -> anyhow::Result<()> {
    let server = crate::credentials::client(&crate::credentials::server(args.server.as_deref()))?;
    let me = server
        .me()
        .await
        .context("checking the API key with the server")?;
    check_model(&server, &args.model).await?;
    let creds = if args.client_credentials {
        let settings = server.llm_settings().await?;
        let bedrock = &settings.hosts.aws_bedrock;
        let (Some(role), Some(region)) = (&bedrock.role_arn, &bedrock.region) else {
            anyhow::bail!(
                "--client-credentials needs the team's Bedrock role and region, and the team has none \
                 configured; drop the flag to let the server route you"
            );
        };
        let mut cfg = OidcConfig::new(
            role,
            args.region.as_deref().unwrap_or(region),
            &user_session_name(&me.actor.uid),
        );
        cfg.sts_endpoint_url = args.aws_endpoint_url.clone();
        cfg.keep_credentials = false;
        Creds::Client(OidcManaged::new(
            server.clone(),
            TokenSource::Member,
            cfg,
            Arc::new(SystemClock),
        ))
    } else if let Some(profile) = &args.aws_profile {
        let cfg = LocalChainConfig {
            profile: (profile != "default").then(|| profile.clone()),
            refresh_command: args
                .auth_refresh
                .as_ref()
                .map(|c| c.split_whitespace().map(str::to_owned).collect()),
            ..LocalChainConfig::default()
        };
        Creds::Local {
            chain: LocalChain::new(cfg, Arc::new(SystemClock)),
            region: args.region.clone(),
        }
    } else {
        Creds::Server
    };
    write_out(&format!(
        "byollm chat: {} as {} in team {}, model {}\ncredentials: {}\n\
         Type a message and press Enter; /help lists the commands, /exit quits.\n",
        server.base_url(),
        me.actor.uid,
        me.team.name,
        args.model,
        creds.describe()
    ));
    let mut conversation: Vec<Message> = Vec::new();
    let mut failed = 0usize;
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    loop {
        write_out("> ");
        let Some(line) = lines.next_line().await? else {
            write_out("\n");
            return finish(failed);
        };
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if let Some(command) = line.strip_prefix('/') {
            match slash(command, &creds, &mut conversation) {
                Slash::Exit => return finish(failed),
                Slash::Handled => continue,
            }
        }
        conversation.push(Message {
            role: "user",
            text: line.to_owned(),
        });
        let result = turn(&server, &args.model, &conversation, &creds).await;
        match result {
            Ok(reply) => {
                let fallback = reply
                    .fallback
                    .as_deref()
                    .map(|f| format!(" (fell back after: {f})"))
                    .unwrap_or_default();
                write_out(&format!(
                    "\n[route: {}{fallback} · credentials: {}]\n",
                    reply.route.as_deref().unwrap_or("unknown"),
                    creds.short()
                ));
                conversation.push(Message {
                    role: "assistant",
                    text: reply.text,
                });
            }
            Err(e) => {
                conversation.pop();
                failed += 1;
                write_out(&format!("\n{e}\n"));
            }
        }
    }
}

/// Refuses, before the first message, a model this chat cannot talk to, and
/// says which it can.
async fn check_model(server: &Client, model: &str) -> anyhow::Result<()> {
    if model == "auto" {
        return Ok(());
    }
    let list = server
        .models()
        .await
        .context("listing the models this key may use")?;
    let ids: Vec<&str> = list
        .get("data")
        .and_then(serde_json::Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|m| m.get("id").and_then(serde_json::Value::as_str))
        .filter(|id| {
            Catalog::builtin()
                .get(id)
                .is_none_or(|m| m.family == Family::Anthropic)
        })
        .collect();
    if ids.contains(&model) {
        return Ok(());
    }
    let why = match Catalog::builtin().get(model) {
        Some(m) if m.family == Family::Openai => format!(
            "`{model}` is an OpenAI model and `byollm chat` speaks the Anthropic Messages API \
             (call it with an OpenAI SDK instead)"
        ),
        Some(m) if m.family == Family::Google => format!(
            "`{model}` is a Gemini model (Vertex AI) and `byollm chat` speaks the Anthropic Messages API \
             (call it with an OpenAI SDK instead)"
        ),
        Some(_) => format!("this key may not use `{model}`"),
        None => format!("there is no model `{model}`"),
    };
    anyhow::bail!(
        "{why}; start the chat with --model and one of: auto, {} (`byollm models` shows their routes)",
        ids.join(", ")
    )
}

/// The help `/help` prints.
const HELP: &str = "Commands (handled here, never sent to the model):
  /help     this list
  /status   where this chat's AWS credentials come from, and their state
  /clear    forget the conversation so far (the next message starts afresh)
  /exit     quit (also /quit, or Ctrl-D)
Anything else is sent to the model as your next message.
";

/// What a slash command asks of the loop.
enum Slash {
    Handled,
    Exit,
}

/// Handles one `/command` locally.
fn slash(command: &str, creds: &Creds, conversation: &mut Vec<Message>) -> Slash {
    match command.split_whitespace().next().unwrap_or_default() {
        "exit" | "quit" => return Slash::Exit,
        "help" | "?" => write_out(HELP),
        "status" => write_out(&format!("credentials: {}\n", creds.describe())),
        "clear" => {
            conversation.clear();
            write_out("(conversation cleared)\n");
        }
        other => write_out(&format!(
            "unknown command /{other}: /help lists the commands (nothing was sent)\n"
        )),
    }
    Slash::Handled
}

/// The chat's exit: an error (exit status 1) when any request failed.
fn finish(failed: usize) -> anyhow::Result<()> {
    if failed > 0 {
        anyhow::bail!(
            "{failed} request{} failed (see the messages above)",
            if failed == 1 { "" } else { "s" }
        );
    }
    Ok(())
}

/// One turn with this request's credentials. When AWS refuses them as
/// expired or unknown, they are dropped, obtained again, and the turn is tried
/// once more (never the same credentials twice).
async fn turn(
    server: &Client,
    model: &str,
    conversation: &[Message],
    creds: &Creds,
) -> Result<byollm_agent::gateway::Reply, String> {
    for attempt in 0..2 {
        let caller = creds
            .for_request()
            .await
            .map_err(|e| format!("error: no AWS credentials for this request: {e}"))?;
        match stream_turn(server, model, conversation, caller.as_ref(), write_out).await {
            Err(e) if attempt == 0 && caller.is_some() && e.is_expired_credentials() => {
                creds.invalidate();
                write_out(
                    "(AWS refused the credentials as expired; getting new ones and trying again)\n",
                );
            }
            other => return other.map_err(|e| explain(&e)),
        }
    }
    Err("error: AWS refused the new credentials too".to_owned())
}

/// A failure in a line or two.
fn explain(e: &TurnError) -> String {
    match e {
        TurnError::Refused { status: 401, .. } => {
            "error: the server refused the API key (check BYOLLM_API_KEY or run `byollm login`)"
                .to_owned()
        }
        TurnError::Refused {
            status: 429 | 503 | 529,
            message,
            ..
        } => format!(
            "error: the model is busy or briefly unavailable ({message}); send the message again in a moment"
        ),
        TurnError::Refused {
            status: 403,
            message,
            ..
        } => format!(
            "error (403): {message}\n(an admin can check the team's setup with `byollm aws doctor`)"
        ),
        TurnError::Refused {
            status, message, ..
        } if *status >= 500 => format!(
            "error ({status}): {message}\n(no route could serve this; `byollm aws doctor` checks \
             the path to Bedrock, `byollm models` shows each model's routes)"
        ),
        TurnError::Refused {
            status, message, ..
        } => format!("error ({status}): {message}"),
        TurnError::Unreachable(e) => format!(
            "error: cannot reach the gateway ({e}); check --server or BYOLLM_SERVER and that the server runs"
        ),
        other => format!("error: {other}"),
    }
}
