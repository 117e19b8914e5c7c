//! Request and response bodies of the HTTP API (DESIGN §6). Request bodies deny
//! unknown fields, so a typo is a 400 naming the field rather than a silent no-op.

mod audit;
pub use audit::{AuditEvent, AuditPage, AuditQuery};

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::SecretValue;

mod onboarding;
pub use onboarding::*;
mod lists;
pub use lists::*;
mod members;
pub use members::*;
mod gcp;
pub use gcp::*;
mod usage;
pub use usage::*;
mod azure;
pub use azure::*;

/// The audience AWS STS expects (aws-facts §2).
pub const STS_AUDIENCE: &str = "sts.amazonaws.com";

/// Who an actor is: a member (`user`) or a named agent (`service_account`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActorType {
    /// A team member.
    User,
    /// A named agent.
    ServiceAccount,
}

impl ActorType {
    /// The wire and `sub` spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ActorType::User => "user",
            ActorType::ServiceAccount => "service_account",
        }
    }
}

/// A member's role in a team.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Uses the team.
    Member,
    /// Configures the team.
    Admin,
    /// Owns the team.
    Owner,
}

impl Role {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Member => "member",
            Role::Admin => "admin",
            Role::Owner => "owner",
        }
    }

    /// Parses the wire spelling.
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "member" => Some(Role::Member),
            "admin" => Some(Role::Admin),
            "owner" => Some(Role::Owner),
            _ => None,
        }
    }

    /// Admins and owners configure the team.
    pub fn is_admin(self) -> bool {
        self >= Role::Admin
    }
}

/// An actor: `{"type", "uid"}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Actor {
    /// User or named agent.
    #[serde(rename = "type")]
    pub actor_type: ActorType,
    /// The member's or agent's uid.
    pub uid: String,
}

// ---------------------------------------------------------------- /me

/// `GET /api/v1/me`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Me {
    /// What kind of credential called: `member_key`, `agent_key` or `run_token`.
    pub credential: String,
    /// The actor the credential acts as.
    pub actor: Actor,
    /// The member's role, for member keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    /// The run, for run workload tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// The team.
    pub team: TeamInfo,
}

/// A team.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TeamInfo {
    /// The team's uid (it appears in every token subject).
    pub uid: String,
    /// Its name.
    pub name: String,
}

/// `GET, PUT /api/v1/me/settings`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberSettings {
    /// Route this member through the team's Bedrock when enforcement is
    /// `respect_user_setting`.
    pub aws_bedrock_opt_in: bool,
}

// ---------------------------------------------------------------- settings

/// The team's LLM settings (DESIGN §4, §6). `PUT` replaces the document and must
/// name every field except the nullable `role_arn`, `region` and `model_ref`;
/// `PATCH` is a JSON Merge Patch of it. The defaults here are a new team's:
/// Bedrock off, the direct API on (its only way to serve until Bedrock is set
/// up) and no fallback out of the customer's cloud.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LlmSettings {
    /// Per-host settings.
    pub hosts: Hosts,
    /// Per-model, per-host settings; a model absent here takes the host defaults.
    pub models: BTreeMap<String, ModelHosts>,
    /// When false, a request Bedrock cannot serve never leaves the customer's cloud.
    pub allow_fallback_outside_cloud: bool,
    /// `["scoped_principal"]` or `["scoped_principal", "run_id"]`.
    pub subject_template: Vec<String>,
    /// Put session tags in identity tokens (needs `sts:TagSession`).
    pub session_tags: bool,
    /// Put a source identity in identity tokens (needs `sts:SetSourceIdentity`).
    pub source_identity: bool,
    /// Let a run's workload token mint identity tokens (flow 2).
    pub worker_identity_tokens: bool,
    /// The audiences tokens may be minted for.
    pub token_audiences: Vec<String>,
    /// The longest an API key may live, in days; a key created without
    /// `expires_at` gets this lifetime. Absent: keys may live for ever.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_max_lifetime_days: Option<u32>,
    /// The order in which the in-customer-cloud hosts are tried for a model,
    /// before the direct API; each host at most once, a host left out comes
    /// after the listed ones in the default order. Absent (and left out of
    /// answers while it is the default): `["aws_bedrock", "gcp_vertex"]`.
    #[serde(
        default = "default_host_order",
        skip_serializing_if = "is_default_host_order"
    )]
    pub host_order: Vec<CloudHost>,
}

/// An in-customer-cloud host, as `host_order` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CloudHost {
    /// `hosts.aws_bedrock`.
    AwsBedrock,
    /// `hosts.gcp_vertex`.
    GcpVertex,
    /// `hosts.azure_foundry`.
    AzureFoundry,
}

impl CloudHost {
    /// Every in-cloud host, in the default order.
    pub const ALL: [CloudHost; 3] = [
        CloudHost::AwsBedrock,
        CloudHost::GcpVertex,
        CloudHost::AzureFoundry,
    ];

    /// The name `host_order` and routes use.
    pub fn as_str(self) -> &'static str {
        match self {
            CloudHost::AwsBedrock => "aws_bedrock",
            CloudHost::GcpVertex => "gcp_vertex",
            CloudHost::AzureFoundry => "azure_foundry",
        }
    }
}

/// `host_order` when a team never set it.
pub fn default_host_order() -> Vec<CloudHost> {
    CloudHost::ALL.to_vec()
}

fn is_default_host_order(order: &[CloudHost]) -> bool {
    order == CloudHost::ALL
}

impl LlmSettings {
    /// The in-cloud hosts in the order to try them: `host_order`, then any
    /// host it leaves out, each once.
    pub fn cloud_hosts(&self) -> Vec<CloudHost> {
        let mut out: Vec<CloudHost> = Vec::with_capacity(CloudHost::ALL.len());
        for h in self.host_order.iter().chain(CloudHost::ALL.iter()) {
            if !out.contains(h) {
                out.push(*h);
            }
        }
        out
    }
}

impl Default for LlmSettings {
    fn default() -> Self {
        Self {
            hosts: Hosts::default(),
            models: BTreeMap::new(),
            allow_fallback_outside_cloud: false,
            subject_template: vec![SUBJECT_SCOPED_PRINCIPAL.to_owned()],
            session_tags: false,
            source_identity: false,
            worker_identity_tokens: false,
            token_audiences: vec![STS_AUDIENCE.to_owned()],
            api_key_max_lifetime_days: None,
            host_order: default_host_order(),
        }
    }
}

/// The first, mandatory subject template element.
pub const SUBJECT_SCOPED_PRINCIPAL: &str = "scoped_principal";
/// The optional subject template element that appends `:run_id:<run-id>`.
pub const SUBJECT_RUN_ID: &str = "run_id";

/// Host settings.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Hosts {
    /// The team's Amazon Bedrock.
    pub aws_bedrock: AwsBedrockHost,
    /// The team's Google Vertex AI. In-cloud hosts are tried in the order
    /// of [`LlmSettings::host_order`] (Bedrock, then Vertex AI, by default),
    /// before the direct API.
    pub gcp_vertex: GcpVertexHost,
    /// The team's Azure AI Foundry (not yet routed by the gateway).
    pub azure_foundry: AzureFoundryHost,
    /// The vendors' own APIs, billed in inference credits.
    pub direct_api: DirectApiHost,
}

/// Bedrock host settings.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AwsBedrockHost {
    /// Route through Bedrock at all.
    pub enabled: bool,
    /// Whether members must, or may choose to, use Bedrock.
    pub enforcement: Enforcement,
    /// The team role, `arn:aws:iam::<account>:role/<name>`.
    pub role_arn: Option<String>,
    /// The source Region, e.g. `us-east-1`.
    pub region: Option<String>,
    /// New catalog models start disabled on Bedrock.
    pub opt_out_of_new_models: bool,
}

/// Bedrock enforcement for members.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Enforcement {
    /// Every member goes through Bedrock while it is enabled.
    #[default]
    Enforce,
    /// Each member opts in (`aws_bedrock_opt_in`).
    RespectUserSetting,
}

/// Direct-API host settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DirectApiHost {
    /// Allow the vendors' APIs.
    pub enabled: bool,
}

impl Default for DirectApiHost {
    fn default() -> Self {
        Self { enabled: true }
    }
}

/// One model's host settings.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelHosts {
    /// On Bedrock.
    pub aws_bedrock: ModelBedrock,
    /// On Vertex AI.
    pub gcp_vertex: ModelVertex,
    /// On Azure AI Foundry.
    pub azure_foundry: ModelFoundry,
    /// On the direct API.
    pub direct_api: ModelDirect,
}

/// A model on Bedrock.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelBedrock {
    /// Route this model through Bedrock.
    pub enabled: bool,
    /// Overrides the catalog's inference profile (e.g. `us.` instead of `global.`).
    pub model_ref: Option<String>,
}

impl Default for ModelBedrock {
    fn default() -> Self {
        Self {
            enabled: true,
            model_ref: None,
        }
    }
}

/// A model on the direct API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelDirect {
    /// Allow this model on the direct API.
    pub enabled: bool,
}

impl Default for ModelDirect {
    fn default() -> Self {
        Self { enabled: true }
    }
}

// ---------------------------------------------------------------- agents

/// A named agent (service account).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Agent {
    /// The agent's uid.
    pub uid: String,
    /// Its name, unique in the team.
    pub name: String,
    /// What it does.
    pub description: String,
    /// Whether runs may start for it.
    pub available: bool,
    /// When it was created (RFC 3339).
    pub created_at: String,
    /// The member who created it.
    pub created_by: String,
    /// Its default model.
    pub base_model: Option<String>,
    /// Per-provider overrides.
    pub inference_providers: InferenceProviders,
}

/// Per-provider overrides of a named agent.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InferenceProviders {
    /// The AWS override.
    pub aws: AwsOverride,
    /// The Google Cloud override (left out of answers while unset).
    #[serde(skip_serializing_if = "GcpOverride::is_unset")]
    pub gcp: GcpOverride,
    /// The Azure override (left out of answers while unset).
    #[serde(skip_serializing_if = "AzureOverride::is_unset")]
    pub azure: AzureOverride,
}

/// A named agent's AWS override: role and region where set, else the team's;
/// `disabled` keeps the agent off Bedrock. A field left out (or `null` in a merge
/// patch) is unset.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AwsOverride {
    /// The agent's own role.
    pub role_arn: Option<String>,
    /// The agent's own Region.
    pub region: Option<String>,
    /// Keep this agent off Bedrock.
    pub disabled: bool,
}

/// `POST /api/v1/agent/identities`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentCreate {
    /// Its name, unique in the team.
    pub name: String,
    /// What it does.
    #[serde(default)]
    pub description: Option<String>,
    /// Whether runs may start for it (default true).
    #[serde(default)]
    pub available: Option<bool>,
    /// Its default model.
    #[serde(default)]
    pub base_model: Option<String>,
    /// Per-provider overrides.
    #[serde(default)]
    pub inference_providers: Option<InferenceProviders>,
}

/// The fields of an agent a merge patch may change, after the patch is applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentEditable {
    /// Its name.
    pub name: String,
    /// What it does.
    #[serde(default)]
    pub description: String,
    /// Whether runs may start for it.
    #[serde(default = "yes")]
    pub available: bool,
    /// Its default model.
    #[serde(default)]
    pub base_model: Option<String>,
    /// Per-provider overrides.
    #[serde(default)]
    pub inference_providers: InferenceProviders,
}

fn yes() -> bool {
    true
}

/// `GET /api/v1/agent/identities`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentList {
    /// The agents (one page, oldest first).
    pub agents: Vec<Agent>,
    /// The `cursor` of the next page; `null` on the last one.
    #[serde(default)]
    pub next_cursor: Option<String>,
}

// ---------------------------------------------------------------- runs

/// `POST /api/v1/runs`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunCreate {
    /// Run as this named agent (actor `service_account`); omitted → the caller.
    #[serde(default)]
    pub agent_uid: Option<String>,
    /// The run's prompt.
    #[serde(default)]
    pub prompt: Option<String>,
    /// The run's model.
    #[serde(default)]
    pub model: Option<String>,
}

/// Run states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    /// Waiting for a worker.
    Queued,
    /// Working.
    Running,
    /// Done.
    Finished,
    /// Ended in failure.
    Failed,
    /// Stopped.
    Cancelled,
    /// Reached the maximum age (`[runs] max_age_seconds`) without ending: its
    /// token died and its compute stopped counting then.
    Expired,
}

impl RunState {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Queued => "queued",
            RunState::Running => "running",
            RunState::Finished => "finished",
            RunState::Failed => "failed",
            RunState::Cancelled => "cancelled",
            RunState::Expired => "expired",
        }
    }

    /// Parses the wire spelling.
    pub fn parse(s: &str) -> Option<RunState> {
        match s {
            "queued" => Some(RunState::Queued),
            "running" => Some(RunState::Running),
            "finished" => Some(RunState::Finished),
            "failed" => Some(RunState::Failed),
            "cancelled" => Some(RunState::Cancelled),
            "expired" => Some(RunState::Expired),
            _ => None,
        }
    }

    /// A run in this state has ended; its workload token is dead.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            RunState::Finished | RunState::Failed | RunState::Cancelled | RunState::Expired
        )
    }
}

/// Where a run's Bedrock calls go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BedrockTarget {
    /// The role assumed for the run.
    pub role_arn: String,
    /// The source Region.
    pub region: String,
}

/// The created run: `workload_token` is shown this once.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunCreated {
    /// The run's id.
    pub run_id: String,
    /// Its state.
    pub state: RunState,
    /// Who it runs as.
    pub actor: Actor,
    /// The run's credential.
    pub workload_token: SecretValue,
    /// The effective AWS config, or null when the run does not use Bedrock.
    pub bedrock: Option<BedrockTarget>,
}

/// A run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunInfo {
    /// The run's id.
    pub run_id: String,
    /// Its state.
    pub state: RunState,
    /// Who it runs as.
    pub actor: Actor,
    /// The member or agent that started it.
    pub triggered_by: Actor,
    /// Its model.
    pub model: Option<String>,
    /// Its prompt.
    pub prompt: Option<String>,
    /// When it was created (RFC 3339).
    pub created_at: String,
    /// When it ended (RFC 3339).
    pub finished_at: Option<String>,
    /// Where its Bedrock calls go: for an active run the effective AWS config
    /// now, for an ended run the target it was given when it started; null
    /// when it has (had) none.
    pub bedrock: Option<BedrockTarget>,
}

/// `POST /api/v1/runs/{id}/finish`; the body is optional.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunFinish {
    /// `finished` (default), `failed` or `cancelled`.
    #[serde(default)]
    pub state: Option<RunState>,
}

// ---------------------------------------------------------------- identity tokens

/// `POST /api/v1/identity-token`, `POST /api/v1/runs/{id}/identity-token`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityTokenRequest {
    /// One of the team's `token_audiences`.
    pub audience: String,
    /// Token lifetime, 60 to the configured maximum (default 3600).
    pub requested_duration_seconds: i64,
}

/// A minted identity token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IdentityTokenResponse {
    /// The signed JWT.
    pub token: SecretValue,
    /// When it expires (RFC 3339).
    pub expires_at: String,
    /// The issuer URL (equals the token's `iss`).
    pub issuer: String,
}

/// Readiness report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    /// `ok` or what is wrong.
    pub status: String,
}
