//! `byollm azure …`: the Microsoft Azure setup tooling of issue 18 — the setup
//! script (az CLI or Terraform), the FIC explainer (`explain`) and the
//! doctor's Azure walk (`doctor`).
//!
//! As for `byollm gcp`: documents go to stdout, notes and warnings to stderr,
//! bad input exits non-zero with a one-line reason naming the flag. The work
//! is in `byollm-policy::azure`; this module parses flags, validates them and
//! reads files.

pub(crate) mod doctor;
mod explain;

use std::io::Write as _;

use anyhow::{Context as _, anyhow};
use byollm_api::types::azure_resource_name;
use byollm_policy::azure::script::setup_script as bash_script;
use byollm_policy::azure::terraform::terraform;
use byollm_policy::azure::{
    AzureSetup, Granularity, Models, account_name, validate_guid, validate_identity_name,
    validate_location, validate_resource_group,
};
use byollm_policy::generate::{Issuer, TrustScope, validate_uid};
use clap::{Args, Subcommand, ValueEnum};

use crate::aws_cmd::from_server::{ServerView, read as read_server};

/// The `byollm azure` subcommands.
#[derive(Debug, Subcommand)]
pub enum AzureCommand {
    /// Print an idempotent setup (bash script of `az` commands, or Terraform):
    /// a user-assigned managed identity, one federated identity credential per
    /// subject of the granularity (spread over more identities past Entra's 20),
    /// and the inference roles on the Foundry account.
    SetupScript(SetupArgs),
    /// Explain which of the team's members and agents a set of federated
    /// identity credentials admits (and why not), at the team's granularity.
    Explain(explain::ExplainArgs),
    /// Walk the path to Azure AI Foundry (discovery, an RS256 key, the token,
    /// the Entra exchange, one Claude call) and name the failing step, its
    /// cause (Entra's AADSTS code) and the fix.
    Doctor(doctor::DoctorArgs),
}

/// The output format of `setup-script`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SetupFormat {
    /// A bash script of `az` commands.
    Bash,
    /// A Terraform configuration (azurerm provider).
    Terraform,
}

/// `byollm azure setup-script`.
#[derive(Debug, Args)]
pub struct SetupArgs {
    /// Read the team from the byollm server with your key (BYOLLM_API_KEY or
    /// `byollm login`): issuer, team uid, and `hosts.azure_foundry`'s resource
    /// and subject granularity. A flag given still wins.
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
    /// The subscription id (a GUID) holding the identity and the account.
    #[arg(long, value_name = "GUID")]
    subscription: String,
    /// The resource group the managed identity is created in.
    #[arg(long, value_name = "NAME")]
    resource_group: String,
    /// The managed identity's region, e.g. eastus2.
    #[arg(long, value_name = "REGION")]
    location: String,
    /// The managed identity's name; more identities, when needed, get -2, -3, ….
    #[arg(long, value_name = "NAME", default_value = DEFAULT_IDENTITY)]
    identity_name: String,
    /// The Foundry (AI Services) account: its name or a host name of it
    /// (`hosts.azure_foundry.resource`).
    #[arg(long, value_name = "NAME", required_unless_present = "from_server")]
    resource: Option<String>,
    /// The account's resource group, when not --resource-group.
    #[arg(long, value_name = "NAME")]
    resource_resource_group: Option<String>,
    /// The subject granularity (`hosts.azure_foundry.subject_granularity`):
    /// team (one FIC), actor_type (members, agents) or actor (one per actor).
    #[arg(long, value_name = "GRANULARITY")]
    granularity: Option<String>,
    /// Whom the FICs admit: team (everyone the granularity covers); users or
    /// agents (actor_type); exact actors user:UID,… / agent:UID,… (actor).
    #[arg(long, value_name = "SCOPE", default_value = "team")]
    scope: String,
    /// The models the identity may call: claude ("Azure AI User"), openai
    /// ("Cognitive Services OpenAI User"), or both.
    #[arg(long, value_name = "LIST", default_value = "claude,openai")]
    models: String,
    /// Output format.
    #[arg(long, value_enum, default_value = "bash")]
    format: SetupFormat,
}

/// The managed identity's name when none is given.
pub const DEFAULT_IDENTITY: &str = "byollm";

/// Runs one `byollm azure` subcommand.
pub fn run(cmd: AzureCommand) -> anyhow::Result<()> {
    let out = match cmd {
        AzureCommand::SetupScript(args) => setup(&args)?,
        AzureCommand::Explain(args) => explain::run(&args)?,
        AzureCommand::Doctor(args) => {
            return crate::operator::runtime()?.block_on(doctor::run(args));
        }
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

/// Prefixes a validation error with the flag it came from.
fn flag<T, E: std::fmt::Display>(name: &str, r: Result<T, E>) -> anyhow::Result<T> {
    r.map_err(|e| anyhow!("--{name}: {e}"))
}

/// The setup the flags (and the server's view) describe, each value checked
/// with an error naming its flag.
fn setup_options(args: &SetupArgs) -> anyhow::Result<AzureSetup> {
    let view: Option<ServerView> = args
        .from_server
        .then(|| read_server(args.server.as_deref()))
        .transpose()?;
    let host = view
        .as_ref()
        .map(|v| v.settings.hosts.azure_foundry.clone())
        .unwrap_or_default();
    let issuer = pick(
        args.issuer.as_ref(),
        view.as_ref().map(|v| &v.issuer),
        "issuer",
    )?;
    let issuer = flag("issuer", Issuer::parse(&issuer))?;
    let team = pick(args.team.as_ref(), view.as_ref().map(|v| &v.team), "team")?;
    flag("team", validate_uid("team", &team))?;
    flag(
        "subscription",
        validate_guid("subscription id", &args.subscription),
    )?;
    flag(
        "resource-group",
        validate_resource_group(&args.resource_group),
    )?;
    let account_rg = args
        .resource_resource_group
        .clone()
        .unwrap_or_else(|| args.resource_group.clone());
    flag(
        "resource-resource-group",
        validate_resource_group(&account_rg),
    )?;
    flag("location", validate_location(&args.location))?;
    flag("identity-name", validate_identity_name(&args.identity_name))?;
    let resource = pick(args.resource.as_ref(), host.resource.as_ref(), "resource")?;
    let account = flag("resource", account_name(azure_resource_name(&resource)))?;
    let granularity = match &args.granularity {
        Some(g) => flag("granularity", g.parse::<Granularity>())?,
        None => flag(
            "granularity",
            host.subject_granularity.as_str().parse::<Granularity>(),
        )?,
    };
    let scope = flag("scope", args.scope.parse::<TrustScope>())?;
    let models = flag("models", Models::parse(&args.models))?;
    let opts = AzureSetup {
        issuer,
        team_uid: team,
        subscription_id: args.subscription.clone(),
        resource_group: args.resource_group.clone(),
        location: args.location.clone(),
        identity_name: args.identity_name.clone(),
        account,
        account_resource_group: account_rg,
        granularity,
        scope,
        models,
    };
    flag("scope", opts.validate())?;
    Ok(opts)
}

/// `byollm azure setup-script`.
fn setup(args: &SetupArgs) -> anyhow::Result<String> {
    let opts = setup_options(args)?;
    let plans = opts.plan().context("planning the identities")?;
    let fics: usize = plans.iter().map(|p| p.fics.len()).sum();
    note(&format!(
        "note: {fics} federated identity credential(s) at granularity {} on {}; the team's \
         hosts.azure_foundry: subject_granularity {}, resource {}, client_id of {}",
        opts.granularity,
        plans
            .iter()
            .map(|p| p.name.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        opts.granularity,
        opts.account,
        opts.identity_name
    ));
    if let Some(w) = opts.spread_warning(&plans) {
        note(&w);
    }
    Ok(match args.format {
        SetupFormat::Bash => bash_script(&opts)?,
        SetupFormat::Terraform => terraform(&opts)?,
    })
}
