//! `byollm aws …`: the AWS setup tooling of DESIGN §7 (trust and permissions
//! policies, setup script, trust explainer, simulator).
//!
//! The flags are those of DESIGN §11, which scripts rely on. Policy commands write
//! exactly the document to stdout, so it can be piped into `aws iam`; notes and
//! warnings go to stderr. Bad input exits non-zero with a one-line reason (from
//! `main`). The work itself is in `byollm-policy`; this module parses flags,
//! resolves `--model` through the model catalog and reads files.

mod credential_process;
pub(crate) mod doctor;
pub(crate) mod from_server;
mod inspect;
mod policies;

use std::io::Write as _;

use clap::{Args, Subcommand, ValueEnum};

/// The `byollm aws` subcommands.
#[derive(Debug, Subcommand)]
pub enum AwsCommand {
    /// Print the role trust policy for a team's OIDC subjects (JSON on stdout).
    TrustPolicy(TrustArgs),
    /// Print the role's Bedrock permissions policy (JSON on stdout).
    PermissionsPolicy(PermissionsArgs),
    /// Print an idempotent setup (bash script of `aws iam` commands, Terraform or
    /// CloudFormation): OIDC provider, role, trust and permissions policies.
    SetupScript(SetupArgs),
    /// Explain which subjects a trust policy admits, with lint findings.
    ExplainTrust(ExplainArgs),
    /// Decide one request against a policy file: decision and deciding statements.
    Simulate(SimulateArgs),
    /// Diagnose a team's (or one agent's) AWS setup end to end and name the first
    /// failing step with its evidence and the fix.
    Doctor(doctor::DoctorArgs),
    /// Print the run's AWS credentials in `credential_process` format (for an AWS
    /// config profile inside a sandbox).
    CredentialProcess(credential_process::CredentialProcessArgs),
}

/// `--from-server`: read the team from the byollm server instead of flags.
#[derive(Debug, Args)]
pub struct ServerFlags {
    /// Read the team from the byollm server with your key (BYOLLM_API_KEY or
    /// `byollm login`): issuer, team uid, role (account and name), region, token
    /// settings, and the models its routing sends to Bedrock. A flag given
    /// still wins.
    #[arg(long)]
    from_server: bool,
    /// The byollm server for --from-server (default: the one `byollm login`
    /// stored, else http://127.0.0.1:8080, as for every command).
    #[arg(long, env = "BYOLLM_SERVER", value_name = "URL")]
    server: Option<String>,
}

impl ServerFlags {
    /// The server's view of the team, when `--from-server` asks for it.
    fn read(&self) -> anyhow::Result<Option<from_server::ServerView>> {
        self.from_server
            .then(|| from_server::read(self.server.as_deref()))
            .transpose()
    }
}

/// The team's identity settings shared by `trust-policy` and `setup-script`.
#[derive(Debug, Args)]
pub struct TrustFlags {
    #[command(flatten)]
    from: ServerFlags,
    /// The issuer URL (`server.issuer_url`), e.g. https://byollm.example.com.
    #[arg(long, value_name = "URL", required_unless_present = "from_server")]
    issuer: Option<String>,
    /// The team uid.
    #[arg(long, value_name = "UID", required_unless_present = "from_server")]
    team: Option<String>,
    /// The AWS account id (12 digits) holding the OIDC provider and the role.
    #[arg(long, value_name = "ID", required_unless_present = "from_server")]
    account: Option<String>,
    /// Whom the role admits: team (every member and agent), users, agents, or
    /// exact actors user:UID,… / agent:UID,… (a named agent's own role).
    #[arg(long, value_name = "SCOPE", default_value = "team")]
    scope: String,
    /// The team's tokens carry session tags (adds sts:TagSession).
    #[arg(long)]
    session_tags: bool,
    /// The team's tokens carry a source identity (adds sts:SetSourceIdentity).
    #[arg(long)]
    source_identity: bool,
    /// The team's subject template: scoped_principal[,run_id].
    #[arg(long, value_name = "T,…", value_delimiter = ',')]
    subject_template: Vec<String>,
}

/// `byollm aws trust-policy`.
#[derive(Debug, Args)]
pub struct TrustArgs {
    #[command(flatten)]
    trust: TrustFlags,
}

/// `byollm aws permissions-policy`.
#[derive(Debug, Args)]
pub struct PermissionsArgs {
    #[command(flatten)]
    from: ServerFlags,
    /// The AWS account id (12 digits).
    #[arg(long, value_name = "ID", required_unless_present = "from_server")]
    account: Option<String>,
    /// The region the team calls Bedrock in (the inference profiles' source region).
    #[arg(long, value_name = "REGION", required_unless_present = "from_server")]
    region: Option<String>,
    /// Enabled model ids (catalog ids such as claude-sonnet-4-6; ID=GEO or a
    /// profile id such as us.anthropic.claude-sonnet-4-6 picks the profile).
    #[arg(long = "model", value_name = "ID", num_args = 1.., value_delimiter = ',')]
    models: Vec<String>,
    /// The documented broad policy (every model and inference profile) instead.
    #[arg(long, conflicts_with = "models")]
    broad: bool,
}

/// The output format of `setup-script`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SetupFormat {
    /// A bash script of `aws iam` commands.
    Bash,
    /// A Terraform configuration.
    Terraform,
    /// A CloudFormation template (YAML).
    Cloudformation,
}

/// `byollm aws setup-script`.
#[derive(Debug, Args)]
pub struct SetupArgs {
    #[command(flatten)]
    trust: TrustFlags,
    /// The IAM role to create or update.
    #[arg(long, value_name = "NAME", required_unless_present = "from_server")]
    role_name: Option<String>,
    /// The region the team calls Bedrock in (required with --model).
    #[arg(long, value_name = "R")]
    region: Option<String>,
    /// Enabled model ids; without any, the broad default permissions (with
    /// --from-server, the models the team routes through Bedrock).
    #[arg(long = "model", value_name = "ID", num_args = 1.., value_delimiter = ',')]
    models: Vec<String>,
    /// The documented broad permissions policy.
    #[arg(long, conflicts_with = "models")]
    broad: bool,
    /// Output format.
    #[arg(long, value_enum, default_value = "bash")]
    format: SetupFormat,
}

/// `byollm aws explain-trust`.
#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// The trust policy file (`-` for stdin).
    #[arg(value_name = "FILE")]
    file: String,
    /// The issuer URL the role should trust.
    #[arg(long, value_name = "URL")]
    issuer: String,
    /// The team uid.
    #[arg(long, value_name = "UID")]
    team: String,
    /// The team sends session tags (checks for sts:TagSession).
    #[arg(long)]
    session_tags: bool,
    /// The team sends a source identity (checks for sts:SetSourceIdentity).
    #[arg(long)]
    source_identity: bool,
    /// Print the explanation as JSON.
    #[arg(long)]
    json: bool,
}

/// `byollm aws simulate`.
#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// The policy file (`-` for stdin).
    #[arg(long, value_name = "FILE")]
    policy: String,
    /// The file is a trust (resource) policy rather than an identity policy.
    #[arg(long)]
    trust: bool,
    /// The action, e.g. sts:AssumeRoleWithWebIdentity or bedrock:InvokeModel.
    #[arg(long, value_name = "ACTION")]
    action: String,
    /// The resource ARN (for a role assumption, the role's ARN).
    #[arg(long, value_name = "ARN")]
    resource: String,
    /// The calling principal (trust policies): an ARN, account id or service.
    #[arg(long, value_name = "ARN")]
    principal: Option<String>,
    /// A context key and value; a key given twice is multi-valued.
    #[arg(long, value_name = "KEY=VALUE", num_args = 1..)]
    context: Vec<String>,
    /// Print {"decision", "statements"} as JSON.
    #[arg(long)]
    json: bool,
}

/// Runs one `byollm aws` subcommand.
pub fn run(cmd: AwsCommand) -> anyhow::Result<()> {
    let out = match cmd {
        AwsCommand::Doctor(args) => return crate::operator::runtime()?.block_on(doctor::run(args)),
        AwsCommand::CredentialProcess(args) => {
            return crate::operator::runtime()?.block_on(credential_process::run(args));
        }
        AwsCommand::TrustPolicy(args) => policies::trust_policy(&args)?,
        AwsCommand::PermissionsPolicy(args) => policies::permissions_policy(&args)?,
        AwsCommand::SetupScript(args) => policies::setup_script(&args)?,
        AwsCommand::ExplainTrust(args) => inspect::explain_trust(&args)?,
        AwsCommand::Simulate(args) => inspect::simulate(&args)?,
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
