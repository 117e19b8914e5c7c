//! Rows as the store reads and writes them.

use sqlx::any::AnyRow;

use byollm_api::clock::rfc3339;
use byollm_api::types::{
    Actor, ActorType, Agent, BedrockTarget, InferenceProviders, LlmSettings, Role, RunState,
};

use super::{Result, StoreError, col};

fn corrupt(what: &str, value: &str) -> StoreError {
    StoreError::Corrupt(format!("{what} `{value}`"))
}

fn actor_type(value: &str) -> Result<ActorType> {
    match value {
        "user" => Ok(ActorType::User),
        "service_account" => Ok(ActorType::ServiceAccount),
        other => Err(corrupt("actor type", other)),
    }
}

/// A team.
#[derive(Debug, Clone)]
pub struct TeamRow {
    /// Its uid.
    pub uid: String,
    /// Its name.
    pub name: String,
    /// Its LLM settings.
    pub settings: LlmSettings,
}

impl TeamRow {
    pub(super) fn from_row(r: &AnyRow) -> Result<Self> {
        let text: String = col(r, "llm_settings")?;
        Ok(TeamRow {
            uid: col(r, "uid")?,
            name: col(r, "name")?,
            settings: serde_json::from_str(&text)
                .map_err(|e| StoreError::Corrupt(e.to_string()))?,
        })
    }
}

/// A member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberRow {
    /// Their uid.
    pub uid: String,
    /// Their team.
    pub team_uid: String,
    /// Their email.
    pub email: String,
    /// Their role.
    pub role: Role,
    /// Their Bedrock opt-in.
    pub aws_bedrock_opt_in: bool,
}

impl MemberRow {
    pub(super) fn from_row(r: &AnyRow) -> Result<Self> {
        let role: String = col(r, "role")?;
        Ok(MemberRow {
            uid: col(r, "uid")?,
            team_uid: col(r, "team_uid")?,
            email: col(r, "email")?,
            role: Role::parse(&role).ok_or_else(|| corrupt("role", &role))?,
            aws_bedrock_opt_in: col::<i64>(r, "aws_bedrock_opt_in")? != 0,
        })
    }
}

/// A named agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentRow {
    /// Its team.
    pub team_uid: String,
    /// The wire view.
    pub agent: Agent,
}

impl AgentRow {
    pub(super) fn from_row(r: &AnyRow) -> Result<Self> {
        let providers: String = col(r, "inference_providers")?;
        Ok(AgentRow {
            team_uid: col(r, "team_uid")?,
            agent: Agent {
                uid: col(r, "uid")?,
                name: col(r, "name")?,
                description: col(r, "description")?,
                available: col::<i64>(r, "available")? != 0,
                created_at: rfc3339(col(r, "created_at")?),
                created_by: col(r, "created_by")?,
                base_model: col(r, "base_model")?,
                inference_providers: serde_json::from_str::<InferenceProviders>(&providers)
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?,
            },
        })
    }

    pub(super) fn providers_json(&self) -> Result<String> {
        serde_json::to_string(&self.agent.inference_providers)
            .map_err(|e| StoreError::Corrupt(e.to_string()))
    }
}

/// An API key (its hash, never the key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyRow {
    /// Its id.
    pub id: String,
    /// Its team.
    pub team_uid: String,
    /// Member or agent.
    pub owner_type: ActorType,
    /// The owner's uid.
    pub owner_uid: String,
    /// Its name.
    pub name: String,
    /// SHA-256 of the key, hex.
    pub key_hash: String,
    /// The visible start of the key.
    pub prefix: String,
    /// Created, Unix seconds.
    pub created_at: i64,
    /// When it stops authenticating, Unix seconds (`None`: never).
    pub expires_at: Option<i64>,
    /// Its last recorded use, Unix seconds, coarse (see `Store::touch_api_key`).
    pub last_used_at: Option<i64>,
}

impl ApiKeyRow {
    pub(super) fn from_row(r: &AnyRow) -> Result<Self> {
        Ok(ApiKeyRow {
            id: col(r, "id")?,
            team_uid: col(r, "team_uid")?,
            owner_type: actor_type(&col::<String>(r, "owner_type")?)?,
            owner_uid: col(r, "owner_uid")?,
            name: col(r, "name")?,
            key_hash: col(r, "key_hash")?,
            prefix: col(r, "prefix")?,
            created_at: col(r, "created_at")?,
            expires_at: col(r, "expires_at")?,
            last_used_at: col(r, "last_used_at")?,
        })
    }
}

/// A run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRow {
    /// Its uid.
    pub uid: String,
    /// Its team.
    pub team_uid: String,
    /// Who it runs as.
    pub actor: Actor,
    /// Who started it.
    pub triggered_by: Actor,
    /// Its state.
    pub state: RunState,
    /// Its model.
    pub model: Option<String>,
    /// Its prompt.
    pub prompt: Option<String>,
    /// SHA-256 of its workload token, hex.
    pub token_hash: String,
    /// When the workload token dies at the latest.
    pub token_expires_at: i64,
    /// Created, Unix seconds.
    pub created_at: i64,
    /// Ended, Unix seconds.
    pub finished_at: Option<i64>,
    /// The Bedrock target the run was given when it started (None: none).
    pub bedrock: Option<BedrockTarget>,
}

impl RunRow {
    pub(super) fn from_row(r: &AnyRow) -> Result<Self> {
        let state: String = col(r, "state")?;
        Ok(RunRow {
            uid: col(r, "uid")?,
            team_uid: col(r, "team_uid")?,
            actor: Actor {
                actor_type: actor_type(&col::<String>(r, "actor_type")?)?,
                uid: col(r, "actor_uid")?,
            },
            triggered_by: Actor {
                actor_type: actor_type(&col::<String>(r, "triggered_by_type")?)?,
                uid: col(r, "triggered_by_uid")?,
            },
            state: RunState::parse(&state).ok_or_else(|| corrupt("run state", &state))?,
            model: col(r, "model")?,
            prompt: col(r, "prompt")?,
            token_hash: col(r, "token_hash")?,
            token_expires_at: col(r, "token_expires_at")?,
            created_at: col(r, "created_at")?,
            finished_at: col(r, "finished_at")?,
            bedrock: match (
                col::<Option<String>>(r, "bedrock_role_arn")?,
                col::<Option<String>>(r, "bedrock_region")?,
            ) {
                (Some(role_arn), Some(region)) => Some(BedrockTarget { role_arn, region }),
                _ => None,
            },
        })
    }
}

/// A signing key's lifecycle state (DESIGN §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    /// Published, not yet signing.
    Pending,
    /// Signing.
    Active,
    /// Published for verification only, until `verify_until`.
    Retired,
}

impl KeyState {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Pending => "pending",
            KeyState::Active => "active",
            KeyState::Retired => "retired",
        }
    }

    fn parse(s: &str) -> Result<Self> {
        match s {
            "pending" => Ok(KeyState::Pending),
            "active" => Ok(KeyState::Active),
            "retired" => Ok(KeyState::Retired),
            other => Err(corrupt("key state", other)),
        }
    }
}

/// A stored signing key (private part sealed under the KEK).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRow {
    /// Key id.
    pub kid: String,
    /// `ES256` or `RS256`.
    pub alg: String,
    /// Lifecycle state.
    pub state: KeyState,
    /// PKCS#8, sealed (see `identity::kek`).
    pub private_key_sealed: String,
    /// Created, Unix seconds.
    pub created_at: i64,
    /// A pending key may start signing from here on.
    pub activate_after: i64,
    /// When it stopped signing.
    pub retired_at: Option<i64>,
    /// It stays published until here.
    pub verify_until: Option<i64>,
}

impl KeyRow {
    pub(super) fn from_row(r: &AnyRow) -> Result<Self> {
        Ok(KeyRow {
            kid: col(r, "kid")?,
            alg: col(r, "alg")?,
            state: KeyState::parse(&col::<String>(r, "state")?)?,
            private_key_sealed: col(r, "private_key_sealed")?,
            created_at: col(r, "created_at")?,
            activate_after: col(r, "activate_after")?,
            retired_at: col(r, "retired_at")?,
            verify_until: col(r, "verify_until")?,
        })
    }
}

/// One compare-and-swap step of the key lifecycle.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyChange {
    /// New keys.
    pub insert: Vec<KeyRow>,
    /// `(kid, state, retired_at, verify_until)`.
    pub update: Vec<(String, KeyState, Option<i64>, Option<i64>)>,
    /// Keys to delete.
    pub remove: Vec<String>,
}

impl KeyChange {
    /// Nothing to do.
    pub fn is_empty(&self) -> bool {
        self.insert.is_empty() && self.update.is_empty() && self.remove.is_empty()
    }
}

/// One issued token, as the audit log keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRow {
    /// Token id.
    pub jti: String,
    /// Team.
    pub team_uid: String,
    /// Subject.
    pub sub: String,
    /// Audience.
    pub aud: String,
    /// Signing key.
    pub kid: String,
    /// Issued at.
    pub iat: i64,
    /// Expiry.
    pub exp: i64,
    /// Who asked: `member:<uid>`, `run:<id>`, or `broker:run:<id>`.
    pub requested_by: String,
    /// The full actor subject when `sub` is coarser (an Azure token at
    /// `team` or `actor_type` granularity).
    pub actor: Option<String>,
}

impl AuditRow {
    pub(super) fn from_row(r: &AnyRow) -> Result<Self> {
        Ok(AuditRow {
            jti: col(r, "jti")?,
            team_uid: col(r, "team_uid")?,
            sub: col(r, "sub")?,
            aud: col(r, "aud")?,
            kid: col(r, "kid")?,
            iat: col(r, "iat")?,
            exp: col(r, "exp")?,
            requested_by: col(r, "requested_by")?,
            actor: col(r, "actor")?,
        })
    }
}

/// One gateway request in the usage ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageRow {
    /// Row id.
    pub id: String,
    /// Team.
    pub team_uid: String,
    /// The run, for cloud runs.
    pub run_id: Option<String>,
    /// Who asked.
    pub actor: Actor,
    /// The accountable member (the caller, or the run's triggering member).
    pub member_uid: Option<String>,
    /// The named agent, for agent actors.
    pub agent_uid: Option<String>,
    /// Requested model id.
    pub model: String,
    /// The route that served (`aws_bedrock:<ref>@<region>`, `direct_api:<model>`,
    /// or `none`).
    pub route: String,
    /// JSON array of `{route, outcome}` for every attempt.
    pub attempts: String,
    /// Input tokens.
    pub input_tokens: i64,
    /// Output tokens.
    pub output_tokens: i64,
    /// Inference credits × 10⁶.
    pub inference_microcredits: i64,
    /// Unix seconds.
    pub created_at: i64,
}

impl UsageRow {
    pub(super) fn from_row(r: &AnyRow) -> Result<Self> {
        Ok(UsageRow {
            id: col(r, "id")?,
            team_uid: col(r, "team_uid")?,
            run_id: col(r, "run_id")?,
            actor: Actor {
                actor_type: actor_type(&col::<String>(r, "actor_type")?)?,
                uid: col(r, "actor_uid")?,
            },
            member_uid: col(r, "member_uid")?,
            agent_uid: col(r, "agent_uid")?,
            model: col(r, "model")?,
            route: col(r, "route")?,
            attempts: col(r, "attempts")?,
            input_tokens: col(r, "input_tokens")?,
            output_tokens: col(r, "output_tokens")?,
            inference_microcredits: col(r, "inference_microcredits")?,
            created_at: col(r, "created_at")?,
        })
    }
}

/// Which usage to read; every filter is ANDed, all within one team.
#[derive(Debug, Clone, Default)]
pub struct UsageFilter {
    /// One run.
    pub run_id: Option<String>,
    /// One named agent (as the actor).
    pub agent_uid: Option<String>,
    /// One member (as the accountable member).
    pub member_uid: Option<String>,
}

/// Where a usage row sits in listing order: `(created_at, id)`, unique because
/// ids are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageKey {
    /// The row's `created_at` (Unix seconds).
    pub created_at: i64,
    /// The row's id.
    pub id: String,
}
