//! `byollm gcp …`: the Google Cloud setup tooling of issue 17 — the setup
//! script (gcloud or Terraform), the attribute-condition explainer and the
//! doctor's GCP walk.
//!
//! As for `byollm aws`: documents go to stdout, notes and warnings to stderr,
//! bad input exits non-zero with a one-line reason. The work is in
//! `byollm-policy::gcp` and `byollm-doctor::gcp`; this module parses flags,
//! validates them with the settings' own rules (`hosts.gcp_vertex`) and reads
//! files.

pub(crate) mod doctor;
mod explain;

use std::io::Write as _;

use anyhow::{Context as _, anyhow};
use byollm_api::types::GcpVertexHost;
use byollm_policy::gcp::script::setup_script as bash_script;
use byollm_policy::gcp::terraform::terraform;
use byollm_policy::gcp::{GcpSetup, attribute_condition};
use byollm_policy::generate::{Issuer, TrustScope};
use clap::{Args, Subcommand, ValueEnum};

use crate::aws_cmd::from_server::{ServerView, read as read_server};

/// The `byollm gcp` subcommands.
#[derive(Debug, Subcommand)]
pub enum GcpCommand {
    /// Print an idempotent setup (bash script of `gcloud` commands, or
    /// Terraform): workload identity pool, OIDC provider with byollm's attribute
    /// mapping and a condition for the scope, and the Vertex AI IAM bindings.
    SetupScript(SetupArgs),
    /// Explain which subjects a provider's attribute condition admits (and flag
    /// a missing condition, or one that admits other teams).
    ExplainCondition(explain::ExplainArgs),
    /// Diagnose a team's (or one agent's) Google setup end to end and name the
    /// failing step with its cause and the fix.
    Doctor(doctor::DoctorArgs),
}

/// The output format of `setup-script`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SetupFormat {
    /// A bash script of `gcloud` commands.
    Bash,
    /// A Terraform configuration (google provider).
    Terraform,
}

/// `byollm gcp setup-script`.
#[derive(Debug, Args)]
pub struct SetupArgs {
    /// Read the team from the byollm server with your key (BYOLLM_API_KEY or
    /// `byollm login`): issuer, team uid and `hosts.gcp_vertex`. A flag given
    /// still wins.
    #[arg(long)]
    from_server: bool,
    /// The byollm server for --from-server.
    #[arg(long, env = "BYOLLM_SERVER", value_name = "URL")]
    server: Option<String>,
    /// The issuer URL (`server.issuer_url`), e.g. https://byollm.example.com.
    #[arg(long, value_name = "URL", required_unless_present = "from_server")]
    issuer: Option<String>,
    /// The team uid.
    #[arg(long, value_name = "UID", required_unless_present = "from_server")]
    team: Option<String>,
    /// The project id holding the pool and billed for inference.
    #[arg(long, value_name = "ID", required_unless_present = "from_server")]
    project: Option<String>,
    /// The project's number (names the pool in audiences and principals).
    #[arg(long, value_name = "NUMBER", required_unless_present = "from_server")]
    project_number: Option<String>,
    /// The workload identity pool id.
    #[arg(long, value_name = "ID")]
    pool: Option<String>,
    /// The OIDC provider id.
    #[arg(long, value_name = "ID")]
    provider: Option<String>,
    /// Whom the condition admits: team (every member and agent), users,
    /// agents, or exact actors user:UID,… / agent:UID,….
    #[arg(long, value_name = "SCOPE", default_value = "team")]
    scope: String,
    /// Impersonate this service account (needed inside VPC Service Controls
    /// perimeters): grants roles/iam.workloadIdentityUser on it instead of
    /// the Vertex AI roles to the team's principals.
    #[arg(long, value_name = "EMAIL")]
    service_account: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "bash")]
    format: SetupFormat,
}

/// The pool and provider ids when none is given or set.
pub const DEFAULT_POOL: &str = "byollm-pool";
/// See [`DEFAULT_POOL`].
pub const DEFAULT_PROVIDER: &str = "byollm-issuer";

/// Runs one `byollm gcp` subcommand.
pub fn run(cmd: GcpCommand) -> anyhow::Result<()> {
    let out = match cmd {
        GcpCommand::Doctor(args) => return crate::operator::runtime()?.block_on(doctor::run(args)),
        GcpCommand::SetupScript(args) => setup(&args)?,
        GcpCommand::ExplainCondition(args) => explain::run(&args)?,
    };
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(out.as_bytes())?;
    if !out.ends_with('\n') {
        stdout.write_all(b"\n")?;
    }
    stdout.flush()?;
    Ok(())
}

/// Writes a note or warning to stderr.
fn note(message: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{message}");
}

fn pick(flag: Option<&String>, server: Option<&String>, name: &str) -> anyhow::Result<String> {
    flag.or(server)
        .cloned()
        .ok_or_else(|| anyhow!("--{name} is required (or read it with --from-server)"))
}

/// The setup the flags (and the server's view) describe, validated with the
/// settings' rules so errors name the same fields.
fn setup_options(args: &SetupArgs) -> anyhow::Result<GcpSetup> {
    let view: Option<ServerView> = args
        .from_server
        .then(|| read_server(args.server.as_deref()))
        .transpose()?;
    let host = view
        .as_ref()
        .map(|v| v.settings.hosts.gcp_vertex.clone())
        .unwrap_or_default();
    let issuer = pick(
        args.issuer.as_ref(),
        view.as_ref().map(|v| &v.issuer),
        "issuer",
    )?;
    let team = pick(args.team.as_ref(), view.as_ref().map(|v| &v.team), "team")?;
    let checked = GcpVertexHost {
        enabled: false,
        project_id: Some(pick(
            args.project.as_ref(),
            host.project_id.as_ref(),
            "project",
        )?),
        project_number: Some(pick(
            args.project_number.as_ref(),
            host.project_number.as_ref(),
            "project-number",
        )?),
        pool_id: Some(
            args.pool
                .clone()
                .or(host.pool_id)
                .unwrap_or_else(|| DEFAULT_POOL.to_owned()),
        ),
        provider_id: Some(
            args.provider
                .clone()
                .or(host.provider_id)
                .unwrap_or_else(|| DEFAULT_PROVIDER.to_owned()),
        ),
        location: None,
        service_account: args.service_account.clone().or(host.service_account),
        quota_project: None,
    };
    byollm_core::settings::gcp::validate_host(&checked).map_err(|e| anyhow!("{e}"))?;
    let issuer = Issuer::parse(&issuer)?;
    byollm_policy::generate::validate_uid("team", &team)?;
    let scope = args.scope.parse::<TrustScope>()?;
    let opts = GcpSetup {
        issuer,
        team_uid: team,
        project_id: checked.project_id.context("project")?,
        project_number: checked.project_number.context("project number")?,
        pool_id: checked.pool_id.context("pool")?,
        provider_id: checked.provider_id.context("provider")?,
        scope,
        service_account: checked.service_account,
    };
    opts.validate()?;
    Ok(opts)
}

/// `byollm gcp setup-script`.
fn setup(args: &SetupArgs) -> anyhow::Result<String> {
    let opts = setup_options(args)?;
    note(&format!(
        "note: the provider admits {} (attribute condition: {}); the team's token audience is {}",
        match &opts.scope {
            TrustScope::Team => "every member and agent of the team".to_owned(),
            TrustScope::Users => "the team's members".to_owned(),
            TrustScope::Agents => "the team's agents".to_owned(),
            TrustScope::Named(_) => format!("exactly {}", opts.scope),
        },
        attribute_condition(&opts.team_uid, &opts.scope),
        opts.audience()
    ));
    Ok(match args.format {
        SetupFormat::Bash => bash_script(&opts)?,
        SetupFormat::Terraform => terraform(&opts)?,
    })
}
