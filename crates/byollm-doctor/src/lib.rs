//! The doctor (`byollm aws doctor`, DESIGN §7): walks a team's (or one named
//! agent's) path to Bedrock — the server and its settings, issuer discovery,
//! JWKS, an identity token, STS `AssumeRoleWithWebIdentity`, and a one-token
//! Bedrock call in the configured region with the configured inference profile —
//! and names the first failing step with its evidence and the fix.
//!
//! STS answers opaquely (`Not authorized to perform
//! sts:AssumeRoleWithWebIdentity`), so when credentials that may read IAM are
//! given, the doctor reads the OIDC providers, the role's trust policy, its
//! maximum session duration and its inline policies, and decides the failed
//! request again with `byollm-policy` (the evaluator the emulator uses) to say
//! which condition refused it. Without them it reports what STS and Bedrock said
//! and lists the possible causes.
//!
//! Invariants:
//! - [`run`] never fails and never prints: every outcome, a failure included, is
//!   a [`Report`], which is data only (serde `Serialize`, stable snake_case
//!   codes). The CLI renders it for a terminal or as JSON; the server can run it
//!   for the web console.
//! - A report lists every step once, in walk order; at most one step is
//!   `failed` (the diagnosis's), and the steps after it are `skipped`.
//! - The verdict is a closed set ([`Outcome`]): `healthy` only when every step
//!   ran and worked and every model the actor routes to Bedrock answered;
//!   `failing` with a [`Cause`]; otherwise `not_verified` with the reasons. The
//!   doctor never says more than it checked.
//! - Checking an agent mints its token through the admin's diagnosis route: no
//!   run is started, so nothing is billed.
//! - The GCP walk ([`gcp`], `byollm gcp doctor`) is a sibling: discovery,
//!   JWKS, token for the team's provider, the provider's condition (when it
//!   can be read), STS exchange, impersonation, one Vertex AI call — same
//!   report, outcomes and exit codes.
//! - The Azure walk ([`azure`], `byollm azure doctor`) too: discovery, a JWKS
//!   with an RS256 key, the RS256 token at the team's subject granularity, the
//!   Entra exchange (diagnosed by its `AADSTS` code), one Foundry call.
//! - Secrets: the API key, workload tokens, identity tokens and AWS credentials
//!   are never part of the report; the token's decoded claims (`iss`, `aud`,
//!   `sub`) are.

pub mod azure;
mod bedrock;
pub mod gcp;
mod iam;
mod lint;
mod sts;
mod trust;
mod walk;

use serde::Serialize;

pub use iam::IamCredentials;
pub use walk::{Options, decode_jwt, run};

/// A step of the walk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepName {
    /// The server answers the key; the team's (and agent's) AWS settings.
    Server,
    /// `/.well-known/openid-configuration`.
    Discovery,
    /// `/.well-known/jwks.json`.
    Jwks,
    /// An identity token for the actor.
    Token,
    /// STS `AssumeRoleWithWebIdentity`.
    Sts,
    /// A one-token Bedrock call.
    Bedrock,
    /// Google: the workload identity provider's condition, read (GCP walk).
    Provider,
    /// Google STS token exchange (GCP walk).
    GoogleSts,
    /// IAM Credentials `generateAccessToken` (GCP walk).
    Impersonation,
    /// A one-token Vertex AI `rawPredict` call (GCP walk).
    Vertex,
    /// Entra's client-assertion token exchange (Azure walk).
    Entra,
    /// A one-token Claude call on Azure AI Foundry (Azure walk).
    Foundry,
}

impl StepName {
    /// The name as printed.
    pub fn as_str(self) -> &'static str {
        match self {
            StepName::Server => "server",
            StepName::Discovery => "discovery",
            StepName::Jwks => "jwks",
            StepName::Token => "token",
            StepName::Sts => "sts",
            StepName::Bedrock => "bedrock",
            StepName::Provider => "provider",
            StepName::GoogleSts => "google_sts",
            StepName::Impersonation => "impersonation",
            StepName::Vertex => "vertex",
            StepName::Entra => "entra",
            StepName::Foundry => "foundry",
        }
    }
}

/// How a step went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// It worked.
    Ok,
    /// It failed (the diagnosis says why).
    Failed,
    /// It was not run (an earlier step failed, or it could not be run).
    Skipped,
}

/// The cause the doctor names. Stable snake_case codes (`--json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    /// The server did not answer.
    ServerUnreachable,
    /// The server refused the API key.
    ApiKeyRefused,
    /// The agent is not in this team.
    AgentNotFound,
    /// Bedrock is off for the team, or its role or region is missing.
    BedrockNotConfigured,
    /// The agent's override says `disabled: true`.
    AgentBedrockDisabled,
    /// The issuer URL is not `https://` (AWS requires it).
    IssuerNotHttps,
    /// The discovery document or JWKS is unusable.
    DiscoveryBroken,
    /// The server refused to mint the token.
    TokenRefused,
    /// The agent's token cannot be minted here and IAM cannot be read.
    AgentNotTestable,
    /// No IAM OIDC provider for the issuer.
    OidcProviderMissing,
    /// A provider exists for a different spelling of the issuer (trailing
    /// slash, `http://`, case).
    IssuerMismatch,
    /// AWS could not fetch the issuer's keys.
    JwksUnreachable,
    /// The token's audience is not in the provider's client id list.
    AudienceNotInClientIds,
    /// The role does not exist.
    RoleMissing,
    /// The trust policy does not trust this issuer's provider.
    ProviderNotTrusted,
    /// The trust policy's `aud` condition refuses the token's audience.
    AudienceNotAdmitted,
    /// The trust policy's `sub` condition refuses the token's subject.
    SubNotAdmitted,
    /// STS refused the assumption; without IAM access the condition is unknown.
    TrustPolicyRefused,
    /// The token carries session tags and the trust policy lacks `sts:TagSession`.
    MissingTagSession,
    /// The token carries a source identity and the trust policy lacks
    /// `sts:SetSourceIdentity`.
    MissingSetSourceIdentity,
    /// The requested session is longer than the role's `MaxSessionDuration`.
    DurationAboveRoleMax,
    /// The token was expired when STS saw it (clock skew).
    TokenExpired,
    /// STS or Bedrock throttled the call.
    Throttled,
    /// STS failed otherwise.
    StsFailed,
    /// The permissions policy does not allow the model in a region it needs.
    ModelPermissionMissing,
    /// The account has no access to the model (model access not enabled).
    ModelNotEnabled,
    /// The model id cannot be invoked on demand; an inference profile is needed.
    NeedsInferenceProfile,
    /// The model id or profile does not exist in the region.
    ModelNotAvailable,
    /// Bedrock failed otherwise.
    BedrockFailed,
    /// Vertex AI is off for the team, or its project, pool, provider or
    /// location is missing.
    GcpNotConfigured,
    /// The pool or provider does not exist or is disabled (`invalid_target`).
    GcpProviderMissing,
    /// The provider has no attribute condition: every byollm team is admitted.
    GcpNoCondition,
    /// The provider's condition admits other teams' tokens.
    GcpConditionAdmitsOtherTeams,
    /// The attribute condition refused the token (`unauthorized_client`).
    GcpConditionRefused,
    /// STS refused the audience (`invalid_request` / `invalid_grant` naming it).
    GcpAudienceRefused,
    /// STS refused the token otherwise (`invalid_grant`).
    GcpTokenRefused,
    /// Google STS failed otherwise.
    GoogleStsFailed,
    /// The principal may not impersonate the service account.
    GcpImpersonationDenied,
    /// The principal lacks `roles/aiplatform.user` on the project.
    VertexPermissionDenied,
    /// The model is not enabled for the project (`FAILED_PRECONDITION`).
    VertexModelNotEnabled,
    /// Vertex AI failed otherwise.
    VertexFailed,
    /// Azure AI Foundry is off for the team (or the agent), its tenant, client
    /// or resource is missing, or Entra does not know them.
    AzureNotConfigured,
    /// No FIC on the identity has the token's exact subject (`AADSTS70021`,
    /// `AADSTS700213`).
    EntraNoMatchingFic,
    /// The identity's FICs name another issuer (`AADSTS700211`).
    EntraIssuerMismatch,
    /// The FIC lacks `api://AzureADTokenExchange` (`AADSTS700212`).
    EntraAudienceMismatch,
    /// Entra refused the signing algorithm (`AADSTS5002738`).
    EntraAlgorithmRefused,
    /// Entra failed otherwise.
    EntraFailed,
    /// The identity lacks "Azure AI User" on the resource (Azure's 401
    /// `PermissionDenied`).
    FoundryPermissionDenied,
    /// The resource has no deployment of that name.
    FoundryDeploymentMissing,
    /// Foundry failed otherwise.
    FoundryFailed,
}

impl Cause {
    /// The stable code.
    pub fn code(self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default()
    }
}

/// One step's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    /// Which step.
    pub step: StepName,
    /// How it went.
    pub status: Status,
    /// What was seen.
    pub detail: String,
}

/// The first failure, explained.
#[derive(Debug, Clone, Serialize)]
pub struct Diagnosis {
    /// The failing step.
    pub step: StepName,
    /// The cause.
    pub cause: Cause,
    /// One line: what is wrong.
    pub summary: String,
    /// What was seen (AWS's answer, the policy statement, the values compared).
    pub evidence: Vec<String>,
    /// What to change.
    pub fix: String,
}

/// The doctor's verdict. The CLI's exit status follows it (0, 1, 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Every step ran and worked, and every model checked answered.
    Healthy,
    /// A step failed; the diagnosis names the cause and the fix.
    Failing,
    /// Nothing failed, but something was not checked (the report says what and why).
    NotVerified,
}

impl Outcome {
    /// The stable code.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Healthy => "healthy",
            Outcome::Failing => "failing",
            Outcome::NotVerified => "not_verified",
        }
    }
}

/// One model's one-token Bedrock call.
#[derive(Debug, Clone, Serialize)]
pub struct ModelCheck {
    /// The catalog id, e.g. `claude-sonnet-4-6`.
    pub model: String,
    /// The model id or inference profile called.
    pub profile: String,
    /// How it went (`skipped` when no call could be made).
    pub status: Status,
    /// What Bedrock answered.
    pub detail: String,
    /// Why the call failed (absent when it worked or was skipped), so a
    /// caller can tell a permissions gap from another failure per model.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cause: Option<Cause>,
}

/// The doctor's report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The verdict.
    pub outcome: Outcome,
    /// What was checked: `team <uid>` or `agent <uid>`.
    pub target: String,
    /// The role and region checked, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
    /// The region, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Each step in order.
    pub steps: Vec<Step>,
    /// Each model the actor routes to Bedrock (or `--model`), as called.
    pub models: Vec<ModelCheck>,
    /// Why the outcome is `not_verified`: what was not checked (empty otherwise).
    pub not_verified: Vec<String>,
    /// The first failure, or `None` when everything worked.
    pub diagnosis: Option<Diagnosis>,
    /// Warnings that are not failures.
    pub notes: Vec<String>,
}

impl Report {
    /// A report from its parts, with the verdict they imply: failing with a
    /// diagnosis; healthy only when no step and no model was skipped.
    pub fn new(
        target: String,
        role_arn: Option<String>,
        region: Option<String>,
        steps: Vec<Step>,
        models: Vec<ModelCheck>,
        diagnosis: Option<Diagnosis>,
        notes: Vec<String>,
    ) -> Report {
        let mut not_verified: Vec<String> = Vec::new();
        if diagnosis.is_none() {
            for s in steps.iter().filter(|s| s.status != Status::Ok) {
                not_verified.push(format!("{}: {}", s.step.as_str(), s.detail));
            }
            for m in models.iter().filter(|m| m.status != Status::Ok) {
                not_verified.push(format!("bedrock {}: {}", m.model, m.detail));
            }
        }
        let outcome = match (&diagnosis, not_verified.is_empty()) {
            (Some(_), _) => Outcome::Failing,
            (None, true) => Outcome::Healthy,
            (None, false) => Outcome::NotVerified,
        };
        Report {
            outcome,
            target,
            role_arn,
            region,
            steps,
            models,
            not_verified,
            diagnosis,
            notes,
        }
    }

    /// Whether every step ran and worked.
    pub fn healthy(&self) -> bool {
        self.outcome == Outcome::Healthy
    }

    /// The cause, if any.
    pub fn cause(&self) -> Option<Cause> {
        self.diagnosis.as_ref().map(|d| d.cause)
    }
}
