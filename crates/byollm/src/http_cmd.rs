//! The admin CLI over HTTP: team settings, models, agents with their AWS
//! override, API keys, runs, usage and members — the same things the HTTP API
//! does (DESIGN §6), through the typed client (`byollm_api::client`).
//!
//! Every command takes `--server URL` (or `BYOLLM_SERVER`, else the server
//! `byollm login` stored, else `http://127.0.0.1:8080`) and reads the API key
//! from `BYOLLM_API_KEY` or the stored credentials ([`crate::credentials`];
//! never a flag, so it stays out of shell history and process lists). Lists
//! show one page; `--all` follows the cursor. Output is a table
//! for people, or the server's JSON with `--json` for scripts. A new API key or a
//! run's workload token is shown exactly once, when it is created, as the API
//! does; nothing else secret is ever printed.

#[path = "http_cmd/audit.rs"]
mod audit;
#[path = "http_cmd/lists.rs"]
mod lists;
#[path = "http_cmd/members.rs"]
mod members;
#[path = "http_cmd/settings.rs"]
mod settings;
#[path = "http_cmd/table.rs"]
mod table;

use anyhow::{Context as _, bail};
use byollm_api::client::Client;
use byollm_api::types::{
    Agent, AgentCreate, AwsOverride, InferenceProviders, MemberSettings, RunCreate, RunFinish,
    RunInfo, RunState, UsageQuery,
};
use clap::{Args, Subcommand};
use serde_json::{Map, Value, json};

use crate::out;
use table::Table;

/// Where to connect and how to print.
#[derive(Debug, Args)]
pub struct Conn {
    /// The byollm server (default: the one `byollm login` stored, else
    /// http://127.0.0.1:8080; the key comes from BYOLLM_API_KEY or `byollm login`).
    #[arg(long, global = true, env = "BYOLLM_SERVER", value_name = "URL")]
    server: Option<String>,
    /// Print the server's JSON instead of a table.
    #[arg(long, global = true)]
    json: bool,
}

/// Commands that talk to a running server.
#[derive(Debug, Subcommand)]
pub enum HttpCommand {
    /// Who the key acts as; `--bedrock-opt-in` sets the member's own opt-in.
    Me {
        #[command(flatten)]
        conn: Conn,
        /// Route your requests through the team's Bedrock when enforcement is
        /// `respect_user_setting`.
        #[arg(long, value_name = "on|off", value_parser = settings::parse_switch)]
        bedrock_opt_in: Option<bool>,
    },
    /// The team's LLM settings (read: members; write: admins).
    Settings {
        #[command(flatten)]
        conn: Conn,
        #[command(subcommand)]
        cmd: settings::SettingsCommand,
    },
    /// The models this key may use, with the route each would take first.
    Models {
        #[command(flatten)]
        conn: Conn,
    },
    /// Named agents and their AWS override.
    Agents {
        #[command(flatten)]
        conn: Conn,
        #[command(subcommand)]
        cmd: AgentsCommand,
    },
    /// API keys (your own; admins also manage agents' keys).
    ApiKeys {
        #[command(flatten)]
        conn: Conn,
        #[command(subcommand)]
        cmd: members::KeysCommand,
    },
    /// Cloud runs.
    Runs {
        #[command(flatten)]
        conn: Conn,
        #[command(subcommand)]
        cmd: RunsCommand,
    },
    /// Credits (inference, platform, compute) and requests with their routes
    /// (every page, oldest first; `--limit` or `--cursor` shows one page).
    Usage {
        #[command(flatten)]
        conn: Conn,
        /// One run.
        #[arg(long, value_name = "ID")]
        run: Option<String>,
        /// One named agent.
        #[arg(long, value_name = "UID")]
        agent: Option<String>,
        /// One member.
        #[arg(long, value_name = "UID")]
        member: Option<String>,
        /// Show one page of at most N requests (1 to 1000).
        #[arg(long, value_name = "N")]
        limit: Option<u32>,
        /// Show the page starting at this cursor (a previous page's `next_cursor`).
        #[arg(long, value_name = "CURSOR")]
        cursor: Option<String>,
    },
    /// The team's admin audit trail (admins): who changed what, when.
    Audit {
        #[command(flatten)]
        conn: Conn,
        #[command(flatten)]
        args: audit::AuditArgs,
    },
    /// Team members, their roles and invitations (admins).
    Members {
        #[command(flatten)]
        conn: Conn,
        #[command(subcommand)]
        cmd: members::MembersCommand,
    },
}

/// `byollm agents …`.
#[derive(Debug, Subcommand)]
pub enum AgentsCommand {
    /// List the team's agents (one page; `--all` for every page).
    List(lists::AgentListArgs),
    /// Show one agent.
    Get {
        /// The agent's uid.
        uid: String,
    },
    /// Create an agent.
    Create {
        /// Its name.
        #[arg(long)]
        name: String,
        #[command(flatten)]
        fields: AgentFields,
    },
    /// Change an agent (JSON Merge Patch: only the flags given change; `null`
    /// clears a field).
    Update {
        /// The agent's uid.
        uid: String,
        /// A new name.
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        fields: AgentFields,
    },
    /// Delete an agent.
    Delete {
        /// The agent's uid.
        uid: String,
    },
}

/// The optional agent fields shared by create and update.
#[derive(Debug, Args)]
pub struct AgentFields {
    /// What it does.
    #[arg(long)]
    description: Option<String>,
    /// Its default model (`null` clears it on update).
    #[arg(long, value_name = "ID")]
    base_model: Option<String>,
    /// Whether runs may start for it.
    #[arg(long, value_name = "on|off", value_parser = settings::parse_switch)]
    available: Option<bool>,
    /// The agent's own IAM role (`null` clears it: the team's role applies).
    #[arg(long, value_name = "ARN")]
    aws_role_arn: Option<String>,
    /// The agent's own Bedrock region (`null` clears it).
    #[arg(long, value_name = "REGION")]
    aws_region: Option<String>,
    /// Keep this agent off Bedrock.
    #[arg(long, value_name = "on|off", value_parser = settings::parse_switch)]
    aws_disabled: Option<bool>,
}

/// `byollm runs …`.
#[derive(Debug, Subcommand)]
pub enum RunsCommand {
    /// Start a run (for yourself, or for a named agent); its workload token is
    /// printed once.
    Create {
        /// Run as this named agent.
        #[arg(long, value_name = "UID")]
        agent: Option<String>,
        /// The run's prompt.
        #[arg(long)]
        prompt: Option<String>,
        /// The run's model.
        #[arg(long, value_name = "ID")]
        model: Option<String>,
    },
    /// List runs (admins: the team's; members: their own), one page; `--all`
    /// for every page.
    List(lists::RunListArgs),
    /// Show a run.
    Get {
        /// The run id.
        id: String,
    },
    /// End a run (its token dies and its credentials are dropped).
    Finish {
        /// The run id.
        id: String,
        /// finished (default), failed or cancelled.
        #[arg(long, value_name = "STATE")]
        state: Option<String>,
    },
}

fn client(conn: &Conn) -> anyhow::Result<Client> {
    crate::credentials::client(&crate::credentials::server(conn.server.as_deref()))
}

/// Runs one.
pub async fn run(cmd: HttpCommand) -> anyhow::Result<()> {
    match cmd {
        HttpCommand::Me {
            conn,
            bedrock_opt_in,
        } => me(&conn, bedrock_opt_in).await,
        HttpCommand::Settings { conn, cmd } => settings::run(&client(&conn)?, conn.json, cmd).await,
        HttpCommand::Models { conn } => models(&conn).await,
        HttpCommand::Agents { conn, cmd } => agents(&conn, cmd).await,
        HttpCommand::ApiKeys { conn, cmd } => members::keys(&client(&conn)?, conn.json, cmd).await,
        HttpCommand::Runs { conn, cmd } => runs(&conn, cmd).await,
        HttpCommand::Usage {
            conn,
            run,
            agent,
            member,
            limit,
            cursor,
        } => {
            usage(
                &conn,
                UsageQuery {
                    run_id: run,
                    agent_uid: agent,
                    member_uid: member,
                    limit,
                    cursor,
                },
            )
            .await
        }
        HttpCommand::Members { conn, cmd } => {
            members::members(&client(&conn)?, conn.json, cmd).await
        }
        HttpCommand::Audit { conn, args } => audit::run(&client(&conn)?, conn.json, args).await,
    }
}

async fn me(conn: &Conn, opt_in: Option<bool>) -> anyhow::Result<()> {
    let c = client(conn)?;
    if let Some(on) = opt_in {
        c.put_my_settings(&MemberSettings {
            aws_bedrock_opt_in: on,
        })
        .await?;
    }
    let me = c.me().await?;
    if conn.json {
        return out::json(&me);
    }
    let mut t = Table::new(&["field", "value"]);
    t.row(["team", &format!("{} ({})", me.team.name, me.team.uid)]);
    t.row(["credential", &me.credential]);
    t.row([
        "actor",
        &format!("{} {}", me.actor.actor_type.as_str(), me.actor.uid),
    ]);
    if let Some(role) = me.role {
        t.row(["role", role.as_str()]);
        let s = c.my_settings().await?;
        t.row(["aws_bedrock_opt_in", &s.aws_bedrock_opt_in.to_string()]);
    }
    if let Some(run) = &me.run_id {
        t.row(["run", run]);
    }
    t.print();
    Ok(())
}

async fn models(conn: &Conn) -> anyhow::Result<()> {
    let c = client(conn)?;
    let mut v = c.models().await?;
    // What `byollm aws doctor` last found for this server, team and actor.
    let server = crate::credentials::server(conn.server.as_deref());
    let missing = match c.me().await {
        Ok(me) => crate::verdicts::missing(
            &server,
            &me.team.uid,
            &format!("{}:{}", me.actor.actor_type.as_str(), me.actor.uid),
        ),
        Err(_) => vec![],
    };
    let verdict = |id: &str| missing.iter().find(|m| m.model == id);
    if conn.json {
        for m in v
            .get_mut("data")
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            let id = m.get("id").and_then(Value::as_str).unwrap_or_default();
            if let Some(found) = verdict(id) {
                m["doctor"] = json!({
                    "permissions_missing": found.permission_missing,
                    "checked_at": found.checked_at,
                });
            }
        }
        return out::json(&v);
    }
    let mut t = Table::new(&["model", "name", "routes (in order)"]);
    for m in v
        .get("data")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let s = |n: &str| m.get(n).and_then(Value::as_str).unwrap_or_default();
        let found = verdict(s("id"));
        let routes: Vec<String> = m
            .get("routes")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(|r| match found {
                Some(f) if denied_route(r, &f.permission_missing) => {
                    format!("{r} [permissions missing (doctor, {})]", f.checked_at)
                }
                _ => r.to_owned(),
            })
            .collect();
        t.row([s("id"), s("display_name"), &routes.join(", ")]);
    }
    t.print();
    if !missing.is_empty() {
        out::err(
            "note: `byollm aws doctor` found the role's permissions missing for the marked \
             route(s); fix the role's permissions policy (`byollm aws setup-script \
             --from-server`), then re-run `byollm aws doctor` to check again and clear the mark",
        );
    }
    for note in v
        .get("notes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        out::err(&format!("note: {note}"));
    }
    Ok(())
}

/// Whether `route` (`aws_bedrock:<profile>@<region>`) calls one of `profiles`.
fn denied_route(route: &str, profiles: &[String]) -> bool {
    route
        .strip_prefix("aws_bedrock:")
        .and_then(|r| r.rsplit_once('@'))
        .is_some_and(|(profile, _)| profiles.iter().any(|p| p == profile))
}

fn agent_table(agents: &[Agent]) -> Table {
    let mut t = Table::new(&[
        "uid",
        "name",
        "available",
        "base_model",
        "aws role",
        "aws region",
        "aws disabled",
    ]);
    for a in agents {
        let aws = &a.inference_providers.aws;
        t.row([
            a.uid.as_str(),
            &a.name,
            &a.available.to_string(),
            a.base_model.as_deref().unwrap_or("-"),
            aws.role_arn.as_deref().unwrap_or("(team's)"),
            aws.region.as_deref().unwrap_or("(team's)"),
            &aws.disabled.to_string(),
        ]);
    }
    t
}

/// `null` clears; anything else is the value.
fn nullable(v: &str) -> Value {
    if v == "null" {
        Value::Null
    } else {
        Value::String(v.to_owned())
    }
}

async fn agents(conn: &Conn, cmd: AgentsCommand) -> anyhow::Result<()> {
    let c = client(conn)?;
    let agent = match cmd {
        AgentsCommand::List(args) => {
            return lists::agents(&c, conn.json, args, |l| agent_table(&l.agents)).await;
        }
        AgentsCommand::Get { uid } => c.agent(&uid).await?,
        AgentsCommand::Create { name, fields } => {
            let aws = AwsOverride {
                role_arn: fields.aws_role_arn.filter(|v| v != "null"),
                region: fields.aws_region.filter(|v| v != "null"),
                disabled: fields.aws_disabled.unwrap_or(false),
            };
            c.create_agent(&AgentCreate {
                name,
                description: fields.description,
                available: fields.available,
                base_model: fields.base_model.filter(|v| v != "null"),
                inference_providers: Some(InferenceProviders {
                    aws,
                    ..InferenceProviders::default()
                }),
            })
            .await?
        }
        AgentsCommand::Update { uid, name, fields } => {
            let mut patch = Map::new();
            if let Some(n) = name {
                patch.insert("name".into(), json!(n));
            }
            if let Some(d) = fields.description {
                patch.insert("description".into(), json!(d));
            }
            if let Some(m) = &fields.base_model {
                patch.insert("base_model".into(), nullable(m));
            }
            if let Some(a) = fields.available {
                patch.insert("available".into(), json!(a));
            }
            let mut aws = Map::new();
            if let Some(r) = &fields.aws_role_arn {
                aws.insert("role_arn".into(), nullable(r));
            }
            if let Some(r) = &fields.aws_region {
                aws.insert("region".into(), nullable(r));
            }
            if let Some(d) = fields.aws_disabled {
                aws.insert("disabled".into(), json!(d));
            }
            if !aws.is_empty() {
                patch.insert("inference_providers".into(), json!({"aws": aws}));
            }
            if patch.is_empty() {
                bail!("nothing to change: give at least one flag (see --help)");
            }
            c.patch_agent(&uid, &Value::Object(patch)).await?
        }
        AgentsCommand::Delete { uid } => {
            c.delete_agent(&uid).await?;
            out::err(&format!("deleted agent {uid}"));
            return Ok(());
        }
    };
    if conn.json {
        return out::json(&agent);
    }
    agent_table(std::slice::from_ref(&agent)).print();
    Ok(())
}

fn run_table(r: &RunInfo) -> Table {
    let mut t = Table::new(&["field", "value"]);
    t.row(["run", r.run_id.as_str()]);
    t.row(["state", r.state.as_str()]);
    t.row([
        "actor",
        &format!("{} {}", r.actor.actor_type.as_str(), r.actor.uid),
    ]);
    t.row([
        "triggered_by",
        &format!(
            "{} {}",
            r.triggered_by.actor_type.as_str(),
            r.triggered_by.uid
        ),
    ]);
    t.row(["model", r.model.as_deref().unwrap_or("-")]);
    t.row(["created_at", &r.created_at]);
    t.row(["finished_at", r.finished_at.as_deref().unwrap_or("-")]);
    // An ended run's target is the one it was given at its start; an ended
    // run without one had none then, or predates recording it (migration 0006).
    let bedrock = match &r.bedrock {
        Some(b) => format!("{} in {}", b.role_arn, b.region),
        None if r.state.is_terminal() => {
            "none recorded (no Bedrock target when it started, or the run predates recording it)"
                .into()
        }
        None => "none (not routed through Bedrock)".into(),
    };
    t.row(["bedrock", &bedrock]);
    t
}

async fn runs(conn: &Conn, cmd: RunsCommand) -> anyhow::Result<()> {
    let c = client(conn)?;
    let info = match cmd {
        RunsCommand::Create {
            agent,
            prompt,
            model,
        } => {
            let run = c
                .create_run(&RunCreate {
                    agent_uid: agent,
                    prompt,
                    model,
                })
                .await?;
            if conn.json {
                return out::json(&run);
            }
            out::err(&format!(
                "started run {} ({}) as {} {}; its workload token is shown once \
                 (give it to the worker as BYOLLM_WORKLOAD_TOKEN):",
                run.run_id,
                run.state.as_str(),
                run.actor.actor_type.as_str(),
                run.actor.uid
            ));
            out::line(run.workload_token.expose());
            return Ok(());
        }
        RunsCommand::List(args) => return lists::runs(&c, conn.json, args).await,
        RunsCommand::Get { id } => c.run(&id).await?,
        RunsCommand::Finish { id, state } => {
            let state = match state.as_deref() {
                None => None,
                Some(s) => Some(
                    RunState::parse(s)
                        .filter(|s| s.is_terminal())
                        .with_context(|| {
                            format!("--state {s}: expected finished, failed or cancelled")
                        })?,
                ),
            };
            c.finish_run(&id, &RunFinish { state }).await?
        }
    };
    if conn.json {
        return out::json(&info);
    }
    run_table(&info).print();
    Ok(())
}

async fn usage(conn: &Conn, q: UsageQuery) -> anyhow::Result<()> {
    let c = client(conn)?;
    let one_page = q.limit.is_some() || q.cursor.is_some();
    let report = if one_page {
        c.usage(&q).await?
    } else {
        c.usage_all(&q).await?
    };
    if conn.json {
        return out::json(&report);
    }
    let b = report.buckets;
    let mut t = Table::new(&["bucket", "credits"]);
    t.row(["inference", &format!("{:.4}", b.inference)]);
    t.row(["platform", &format!("{:.4}", b.platform)]);
    t.row(["compute", &format!("{:.4}", b.compute)]);
    t.print();
    out::line("");
    let mut t = Table::new(&[
        "created_at",
        "run",
        "principal",
        "model",
        "route",
        "in",
        "out",
        "credits",
    ]);
    for r in &report.requests {
        t.row([
            r.created_at.as_str(),
            r.run_id.as_deref().unwrap_or("-"),
            &r.principal,
            &r.model,
            &r.route,
            &r.input_tokens.to_string(),
            &r.output_tokens.to_string(),
            &format!("{:.4}", r.credits),
        ]);
    }
    t.print();
    if let Some(next) = &report.next_cursor {
        out::err(&format!("more requests: --cursor {next}"));
    }
    Ok(())
}
