//! The domain operations behind the HTTP API, with their authorization rules
//! (DESIGN §6). Handlers extract, call one of these, and map the error.
//!
//! Rules kept everywhere: objects are looked up within the caller's team, so
//! another team's object is `NotFound`; admin-only writes check the role; run
//! tokens act only for their own run.

use std::sync::Arc;

use byollm_api::SecretValue;
use byollm_api::clock::{Clock, rfc3339};
use byollm_api::types::{
    Actor, ActorType, Agent, AgentCreate, AgentEditable, ApiKeyCreate, ApiKeyCreated, ApiKeyInfo,
    IdentityTokenRequest, IdentityTokenResponse, LlmSettings, Me, Member, MemberCreate,
    MemberSettings, Role, RunCreate, RunCreated, RunFinish, RunInfo, RunState, TeamInfo,
};
use secrecy::ExposeSecret as _;

use crate::auth::{AuthCache, CredentialKind, Principal};
use crate::broker::CredentialsBroker;
use crate::config::CoreConfig;
use crate::error::CoreError;
use crate::identity::jwt::{self, Claims};
use crate::identity::keyring::Keyring;
use crate::identity::{MIN_TOKEN_TTL_SECONDS, NBF_BACKDATE_SECONDS, names};
use crate::ids;
use crate::settings;
use crate::store::{AgentRow, ApiKeyRow, AuditRow, MemberRow, RunRow, Store, TeamRow};
use crate::usage::{self, UsageSink};
use crate::validate::{self, FieldError};

type Result<T> = std::result::Result<T, CoreError>;

/// Longest run prompt kept, in characters.
pub const MAX_PROMPT_CHARS: usize = 100_000;

/// The domain: store, clock, keyring, credential cache and configuration.
#[derive(Debug)]
pub struct Core {
    /// The store.
    pub store: Store,
    /// The clock.
    pub clock: Arc<dyn Clock>,
    /// The issuer's keys.
    pub keyring: Arc<Keyring>,
    /// Authenticated credentials.
    pub auth: AuthCache,
    /// Operator settings.
    pub config: CoreConfig,
    /// Temporary AWS credentials, in memory only.
    pub broker: Arc<CredentialsBroker>,
    /// The usage ledger.
    pub usage: UsageSink,
    /// Background work that shutdown waits for (usage writer, streams, refreshes).
    pub tasks: tokio_util::task::TaskTracker,
    /// Bumped by every write that can change how a request routes (settings,
    /// agents, members, runs), so caches on this replica drop at once.
    pub epoch: std::sync::atomic::AtomicU64,
}

fn admin_only(p: &Principal) -> Result<()> {
    if p.is_admin() {
        Ok(())
    } else {
        Err(CoreError::forbidden(
            "this action needs a team admin's API key",
            Some("ask a team owner or admin"),
        ))
    }
}

fn members_only(p: &Principal) -> Result<()> {
    if p.is_member() {
        Ok(())
    } else {
        Err(CoreError::forbidden(
            format!(
                "a {} cannot do this; use a member's API key",
                p.kind.as_str()
            ),
            None,
        ))
    }
}

/// A minted token and the metadata audited for it.
#[derive(Debug)]
pub struct Minted {
    /// The response body.
    pub response: IdentityTokenResponse,
    /// Its claims (for callers that need them, such as the broker).
    pub claims: Claims,
}

/// What a token is minted for.
#[derive(Debug, Clone)]
pub struct MintSubject<'a> {
    /// The team.
    pub team: &'a TeamRow,
    /// The actor.
    pub actor: &'a Actor,
    /// The run, if any.
    pub run_id: Option<&'a str>,
    /// The accountable human's member uid (for source identity), if known.
    pub accountable_member: Option<&'a str>,
    /// How the audit log names who asked.
    pub requested_by: String,
}

impl Core {
    /// Marks routing-relevant state as changed (see [`Core::epoch`]).
    pub fn bump(&self) {
        self.epoch.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }

    /// The current epoch.
    pub fn current_epoch(&self) -> u64 {
        self.epoch.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Authenticates a presented key or token.
    pub async fn authenticate(&self, presented: &str) -> Result<Principal> {
        self.auth
            .authenticate(&self.store, self.clock.as_ref(), presented)
            .await?
            .ok_or(CoreError::Unauthenticated)
    }

    async fn team(&self, uid: &str) -> Result<TeamRow> {
        self.store.get_team(uid).await?.ok_or_else(|| {
            CoreError::Internal(format!("team {uid} of an authenticated caller is missing"))
        })
    }

    // ------------------------------------------------------------ me

    /// `GET /api/v1/me`.
    pub async fn me(&self, p: &Principal) -> Result<Me> {
        let team = self.team(&p.team_uid).await?;
        Ok(Me {
            credential: p.kind.as_str().to_owned(),
            actor: p.actor.clone(),
            role: p.role,
            run_id: p.run_id.clone(),
            team: TeamInfo {
                uid: team.uid,
                name: team.name,
            },
        })
    }

    /// `GET /api/v1/me/settings`.
    pub async fn member_settings(&self, p: &Principal) -> Result<MemberSettings> {
        members_only(p)?;
        let m = self
            .store
            .get_member(&p.team_uid, &p.actor.uid)
            .await?
            .ok_or(CoreError::NotFound("member"))?;
        Ok(MemberSettings {
            aws_bedrock_opt_in: m.aws_bedrock_opt_in,
        })
    }

    /// `PUT /api/v1/me/settings`.
    pub async fn put_member_settings(
        &self,
        p: &Principal,
        s: MemberSettings,
    ) -> Result<MemberSettings> {
        members_only(p)?;
        self.store
            .set_member_opt_in(&p.team_uid, &p.actor.uid, s.aws_bedrock_opt_in)
            .await?;
        self.bump();
        Ok(s)
    }

    // ------------------------------------------------------------ settings

    /// `GET /api/v1/team/llm-settings`.
    pub async fn llm_settings(&self, p: &Principal) -> Result<LlmSettings> {
        members_only(p)?;
        Ok(self.team(&p.team_uid).await?.settings)
    }

    /// `PUT /api/v1/team/llm-settings`.
    pub async fn put_llm_settings(&self, p: &Principal, s: LlmSettings) -> Result<LlmSettings> {
        admin_only(p)?;
        settings::validate_llm_settings(&s)?;
        self.store.put_settings(&p.team_uid, &s).await?;
        self.bump();
        Ok(s)
    }

    // ------------------------------------------------------------ members

    /// `GET /api/v1/team/members`.
    pub async fn list_members(&self, p: &Principal) -> Result<Vec<Member>> {
        admin_only(p)?;
        Ok(self
            .store
            .list_members(&p.team_uid)
            .await?
            .into_iter()
            .map(|m| Member {
                uid: m.uid,
                email: m.email,
                role: m.role,
            })
            .collect())
    }

    /// `POST /api/v1/team/members`. Only owners add owners.
    pub async fn create_member(&self, p: &Principal, req: MemberCreate) -> Result<Member> {
        admin_only(p)?;
        validate::email("email", &req.email)?;
        if req.role == Role::Owner && p.role != Some(Role::Owner) {
            return Err(CoreError::forbidden("only an owner can add an owner", None));
        }
        let row = MemberRow {
            uid: ids::new_uid(),
            team_uid: p.team_uid.clone(),
            email: req.email,
            role: req.role,
            aws_bedrock_opt_in: false,
        };
        self.store.insert_member(&row, self.clock.now()).await?;
        Ok(Member {
            uid: row.uid,
            email: row.email,
            role: row.role,
        })
    }

    /// `DELETE /api/v1/team/members/{uid}`. Admins cannot remove owners; the last
    /// owner cannot be removed.
    pub async fn delete_member(&self, p: &Principal, uid: &str) -> Result<()> {
        admin_only(p)?;
        validate::uid("uid", uid)?;
        let target = self
            .store
            .get_member(&p.team_uid, uid)
            .await?
            .ok_or(CoreError::NotFound("member"))?;
        if target.role == Role::Owner {
            if p.role != Some(Role::Owner) {
                return Err(CoreError::forbidden(
                    "only an owner can remove an owner",
                    None,
                ));
            }
            let owners = self
                .store
                .list_members(&p.team_uid)
                .await?
                .iter()
                .filter(|m| m.role == Role::Owner)
                .count();
            if owners <= 1 {
                return Err(CoreError::Conflict(
                    "a team keeps at least one owner".into(),
                ));
            }
        }
        let hashes = self
            .store
            .delete_member(&p.team_uid, uid, self.clock.now())
            .await?
            .ok_or(CoreError::NotFound("member"))?;
        self.auth.evict(&hashes);
        self.bump();
        Ok(())
    }

    // ------------------------------------------------------------ API keys

    /// `POST /api/v1/api-keys`: a member's own key, or (admins) a named agent's.
    pub async fn create_api_key(&self, p: &Principal, req: ApiKeyCreate) -> Result<ApiKeyCreated> {
        validate::name("name", &req.name, 100)?;
        let owner = match &req.agent_uid {
            Some(agent_uid) => {
                validate::uid("agent_uid", agent_uid)?;
                admin_only(p)?;
                self.store
                    .get_agent(&p.team_uid, agent_uid)
                    .await?
                    .ok_or(CoreError::NotFound("agent"))?;
                Actor {
                    actor_type: ActorType::ServiceAccount,
                    uid: agent_uid.clone(),
                }
            }
            None => {
                members_only(p)?;
                p.actor.clone()
            }
        };
        let key = ids::new_api_key();
        let row = ApiKeyRow {
            id: ids::new_id("key"),
            team_uid: p.team_uid.clone(),
            owner_type: owner.actor_type,
            owner_uid: owner.uid.clone(),
            name: req.name,
            key_hash: ids::hash_secret(key.expose_secret()),
            prefix: ids::visible_prefix(key.expose_secret()),
            created_at: self.clock.now(),
        };
        self.store.insert_api_key(&row).await?;
        Ok(ApiKeyCreated {
            id: row.id,
            key: SecretValue::from(key),
            owner,
        })
    }

    fn key_visible_to(p: &Principal, k: &ApiKeyRow) -> bool {
        (k.owner_type == p.actor.actor_type
            && k.owner_uid == p.actor.uid
            && p.kind != CredentialKind::RunToken)
            || p.is_admin()
    }

    /// `GET /api/v1/api-keys`: the caller's own keys; admins see the team's.
    pub async fn list_api_keys(&self, p: &Principal) -> Result<Vec<ApiKeyInfo>> {
        if p.kind == CredentialKind::RunToken {
            return Err(CoreError::forbidden("a run token has no API keys", None));
        }
        Ok(self
            .store
            .list_api_keys(&p.team_uid)
            .await?
            .into_iter()
            .filter(|k| Self::key_visible_to(p, k))
            .map(|k| ApiKeyInfo {
                id: k.id,
                name: k.name,
                owner: Actor {
                    actor_type: k.owner_type,
                    uid: k.owner_uid,
                },
                prefix: k.prefix,
                created_at: rfc3339(k.created_at),
            })
            .collect())
    }

    /// `DELETE /api/v1/api-keys/{id}`: the caller's own key; admins any of the team's.
    pub async fn delete_api_key(&self, p: &Principal, id: &str) -> Result<()> {
        validate::uid("id", id)?;
        let key = self
            .store
            .get_api_key(&p.team_uid, id)
            .await?
            .ok_or(CoreError::NotFound("API key"))?;
        if !Self::key_visible_to(p, &key) {
            return Err(CoreError::forbidden(
                "you may revoke only your own keys",
                None,
            ));
        }
        self.store.delete_api_key(&p.team_uid, id).await?;
        self.auth.evict(&[key.key_hash]);
        Ok(())
    }

    // ------------------------------------------------------------ agents

    fn can_read_agents(p: &Principal, uid: Option<&str>) -> Result<()> {
        let own =
            p.actor.actor_type == ActorType::ServiceAccount && uid == Some(p.actor.uid.as_str());
        if p.is_member() || own {
            Ok(())
        } else {
            Err(CoreError::forbidden(
                "reading agents needs a member's API key",
                None,
            ))
        }
    }

    fn validate_agent(e: &AgentEditable) -> Result<()> {
        validate::name("name", &e.name, 100)?;
        validate::free_text("description", &e.description, 2000)?;
        if let Some(model) = &e.base_model {
            validate::model_id("base_model", model)?;
        }
        settings::validate_override(&e.inference_providers.aws)?;
        Ok(())
    }

    /// `GET /api/v1/agent/identities`.
    pub async fn list_agents(&self, p: &Principal) -> Result<Vec<Agent>> {
        Self::can_read_agents(p, None)?;
        Ok(self
            .store
            .list_agents(&p.team_uid)
            .await?
            .into_iter()
            .map(|a| a.agent)
            .collect())
    }

    /// `GET /api/v1/agent/identities/{uid}`.
    pub async fn get_agent(&self, p: &Principal, uid: &str) -> Result<Agent> {
        validate::uid("uid", uid)?;
        let agent = self
            .store
            .get_agent(&p.team_uid, uid)
            .await?
            .ok_or(CoreError::NotFound("agent"))?;
        Self::can_read_agents(p, Some(uid))?;
        Ok(agent.agent)
    }

    /// `POST /api/v1/agent/identities`.
    pub async fn create_agent(&self, p: &Principal, req: AgentCreate) -> Result<Agent> {
        admin_only(p)?;
        let editable = AgentEditable {
            name: req.name,
            description: req.description.unwrap_or_default(),
            available: req.available.unwrap_or(true),
            base_model: req.base_model,
            inference_providers: req.inference_providers.unwrap_or_default(),
        };
        Self::validate_agent(&editable)?;
        let now = self.clock.now();
        let row = AgentRow {
            team_uid: p.team_uid.clone(),
            agent: Agent {
                uid: ids::new_uid(),
                name: editable.name,
                description: editable.description,
                available: editable.available,
                created_at: rfc3339(now),
                created_by: p.actor.uid.clone(),
                base_model: editable.base_model,
                inference_providers: editable.inference_providers,
            },
        };
        self.store.insert_agent(&row, now).await?;
        Ok(row.agent)
    }

    /// `PATCH /api/v1/agent/identities/{uid}`: a JSON Merge Patch (RFC 7396).
    pub async fn patch_agent(
        &self,
        p: &Principal,
        uid: &str,
        patch: serde_json::Value,
    ) -> Result<Agent> {
        admin_only(p)?;
        validate::uid("uid", uid)?;
        let mut row = self
            .store
            .get_agent(&p.team_uid, uid)
            .await?
            .ok_or(CoreError::NotFound("agent"))?;
        let serde_json::Value::Object(fields) = &patch else {
            return Err(
                FieldError::new("body", "expected a JSON object (a JSON Merge Patch)").into(),
            );
        };
        for read_only in ["uid", "created_at", "created_by"] {
            if fields.contains_key(read_only) {
                return Err(FieldError::new(read_only, "is read-only").into());
            }
        }
        let current = AgentEditable {
            name: row.agent.name.clone(),
            description: row.agent.description.clone(),
            available: row.agent.available,
            base_model: row.agent.base_model.clone(),
            inference_providers: row.agent.inference_providers.clone(),
        };
        let mut doc =
            serde_json::to_value(&current).map_err(|e| CoreError::Internal(e.to_string()))?;
        merge_patch(&mut doc, &patch);
        let edited: AgentEditable = validate::from_json_value(doc)?;
        Self::validate_agent(&edited)?;
        row.agent.name = edited.name;
        row.agent.description = edited.description;
        row.agent.available = edited.available;
        row.agent.base_model = edited.base_model;
        row.agent.inference_providers = edited.inference_providers;
        self.store.update_agent(&row).await?;
        self.bump();
        Ok(row.agent)
    }

    /// `DELETE /api/v1/agent/identities/{uid}`: also revokes its keys and cancels
    /// its open runs.
    pub async fn delete_agent(&self, p: &Principal, uid: &str) -> Result<()> {
        admin_only(p)?;
        validate::uid("uid", uid)?;
        let hashes = self
            .store
            .delete_agent(&p.team_uid, uid, self.clock.now())
            .await?
            .ok_or(CoreError::NotFound("agent"))?;
        self.auth.evict(&hashes);
        self.bump();
        Ok(())
    }

    // ------------------------------------------------------------ runs

    /// `POST /api/v1/runs`.
    pub async fn create_run(&self, p: &Principal, req: RunCreate) -> Result<RunCreated> {
        if let Some(model) = &req.model {
            validate::model_id("model", model)?;
        }
        if let Some(prompt) = &req.prompt {
            validate::free_text("prompt", prompt, MAX_PROMPT_CHARS)?;
        }
        let actor = match (p.kind, &req.agent_uid) {
            (CredentialKind::RunToken, _) => {
                return Err(CoreError::forbidden("a run token cannot start runs", None));
            }
            (CredentialKind::AgentKey, Some(uid)) if *uid != p.actor.uid => {
                return Err(CoreError::forbidden(
                    "an agent key can start runs only for its own agent",
                    None,
                ));
            }
            (CredentialKind::AgentKey, _) => p.actor.clone(),
            (CredentialKind::MemberKey, Some(uid)) => {
                validate::uid("agent_uid", uid)?;
                Actor {
                    actor_type: ActorType::ServiceAccount,
                    uid: uid.clone(),
                }
            }
            (CredentialKind::MemberKey, None) => p.actor.clone(),
        };
        let agent = if actor.actor_type == ActorType::ServiceAccount {
            let agent = self
                .store
                .get_agent(&p.team_uid, &actor.uid)
                .await?
                .ok_or(CoreError::NotFound("agent"))?;
            if !agent.agent.available {
                return Err(CoreError::refused(
                    format!("agent `{}` is not available", agent.agent.name),
                    Some("an admin can set `available: true` on the agent"),
                ));
            }
            Some(agent)
        } else {
            None
        };
        let team = self.team(&p.team_uid).await?;
        let bedrock = self
            .effective_bedrock(&team, &actor, agent.as_ref())
            .await?;
        let now = self.clock.now();
        let token = ids::new_workload_token();
        let row = RunRow {
            uid: ids::new_uid(),
            team_uid: p.team_uid.clone(),
            actor: actor.clone(),
            triggered_by: p.actor.clone(),
            state: RunState::Running,
            model: req
                .model
                .or_else(|| agent.as_ref().and_then(|a| a.agent.base_model.clone())),
            prompt: req.prompt,
            token_hash: ids::hash_secret(token.expose_secret()),
            token_expires_at: now + self.config.run_max_age_seconds,
            created_at: now,
            finished_at: None,
        };
        self.store.insert_run(&row).await?;
        Ok(RunCreated {
            run_id: row.uid,
            state: row.state,
            actor,
            workload_token: SecretValue::from(token),
            bedrock,
        })
    }

    async fn effective_bedrock(
        &self,
        team: &TeamRow,
        actor: &Actor,
        agent: Option<&AgentRow>,
    ) -> Result<Option<byollm_api::types::BedrockTarget>> {
        let opt_in = match actor.actor_type {
            ActorType::User => self
                .store
                .get_member(&team.uid, &actor.uid)
                .await?
                .is_some_and(|m| m.aws_bedrock_opt_in),
            ActorType::ServiceAccount => false,
        };
        let o = agent.map(|a| &a.agent.inference_providers.aws);
        // Any reason for no Bedrock (disabled, not opted in, unconfigured) means
        // the run has no Bedrock target; the gateway explains the reason per request.
        Ok(settings::effective_aws(&team.settings, actor.actor_type, o, opt_in).ok())
    }

    async fn visible_run(&self, p: &Principal, id: &str) -> Result<RunRow> {
        validate::uid("id", id)?;
        let run = self
            .store
            .get_run(&p.team_uid, id)
            .await?
            .ok_or(CoreError::NotFound("run"))?;
        let own_run = p.kind == CredentialKind::RunToken && p.run_id.as_deref() == Some(id);
        let creator = p.kind != CredentialKind::RunToken && run.triggered_by == p.actor;
        let its_agent = p.kind == CredentialKind::AgentKey && run.actor == p.actor;
        if own_run || creator || its_agent || p.is_admin() {
            Ok(run)
        } else {
            Err(CoreError::forbidden(
                "only the run itself, its creator and team admins may see or finish it",
                None,
            ))
        }
    }

    /// `GET /api/v1/runs/{id}`.
    pub async fn get_run(&self, p: &Principal, id: &str) -> Result<RunInfo> {
        let run = self.visible_run(p, id).await?;
        self.run_info(run).await
    }

    async fn run_info(&self, run: RunRow) -> Result<RunInfo> {
        let team = self.team(&run.team_uid).await?;
        let agent = match run.actor.actor_type {
            ActorType::ServiceAccount => {
                self.store.get_agent(&run.team_uid, &run.actor.uid).await?
            }
            ActorType::User => None,
        };
        let bedrock = if run.state.is_terminal() {
            None
        } else {
            self.effective_bedrock(&team, &run.actor, agent.as_ref())
                .await?
        };
        Ok(RunInfo {
            run_id: run.uid,
            state: run.state,
            actor: run.actor,
            triggered_by: run.triggered_by,
            model: run.model,
            prompt: run.prompt,
            created_at: rfc3339(run.created_at),
            finished_at: run.finished_at.map(rfc3339),
            bedrock,
        })
    }

    /// `POST /api/v1/runs/{id}/finish`: the workload token dies at once.
    pub async fn finish_run(&self, p: &Principal, id: &str, req: RunFinish) -> Result<RunInfo> {
        let run = self.visible_run(p, id).await?;
        let state = req.state.unwrap_or(RunState::Finished);
        if !state.is_terminal() {
            return Err(FieldError::new("state", "expected finished, failed or cancelled").into());
        }
        if !self
            .store
            .finish_run(&p.team_uid, id, state.as_str(), self.clock.now())
            .await?
        {
            return Err(CoreError::Conflict(format!(
                "run already ended ({})",
                run.state.as_str()
            )));
        }
        self.auth.evict(&[run.token_hash]);
        self.bump();
        // Its credentials die with it (DESIGN §2 flow 1).
        self.broker.drop_run(&p.team_uid, id);
        let run = self
            .store
            .get_run(&p.team_uid, id)
            .await?
            .ok_or(CoreError::NotFound("run"))?;
        self.run_info(run).await
    }

    // ------------------------------------------------------------ usage

    /// `GET /api/v1/usage`: members see their own; admins the team's.
    pub async fn usage(
        &self,
        p: &Principal,
        q: byollm_api::types::UsageQuery,
    ) -> Result<byollm_api::types::UsageReport> {
        use byollm_api::types::{CreditBuckets, UsageReport, UsageRequest};
        members_only(p)?;
        for (field, value) in [
            ("run_id", &q.run_id),
            ("agent_uid", &q.agent_uid),
            ("member_uid", &q.member_uid),
        ] {
            if let Some(v) = value {
                validate::uid(field, v)?;
            }
        }
        let mut filter = crate::store::UsageFilter {
            run_id: q.run_id,
            agent_uid: q.agent_uid,
            member_uid: q.member_uid,
        };
        if !p.is_admin() {
            if filter
                .member_uid
                .as_deref()
                .is_some_and(|m| m != p.actor.uid)
            {
                return Err(CoreError::forbidden(
                    "members see only their own usage",
                    Some("omit member_uid"),
                ));
            }
            filter.member_uid = Some(p.actor.uid.clone());
        }
        // Rows are written in batches off the request path: flush this replica's
        // queue so a caller reads its own requests.
        self.usage.flush().await;
        let rows = self.store.list_usage(&p.team_uid, &filter, 10_000).await?;
        let runs = self.store.list_runs(&p.team_uid, &filter).await?;
        let now = self.clock.now();
        let mut buckets = CreditBuckets::default();
        let mut requests = Vec::with_capacity(rows.len());
        for r in rows {
            let credits = r.inference_microcredits as f64 / 1e6;
            buckets.inference += credits;
            requests.push(UsageRequest {
                run_id: r.run_id,
                principal: format!("{}:{}", r.actor.actor_type.as_str(), r.actor.uid),
                model: r.model,
                route: r.route,
                attempts: serde_json::from_str(&r.attempts).unwrap_or(serde_json::Value::Null),
                input_tokens: r.input_tokens,
                output_tokens: r.output_tokens,
                credits,
                created_at: rfc3339(r.created_at),
            });
        }
        for run in runs {
            buckets.platform += usage::PLATFORM_CREDITS_PER_RUN;
            buckets.compute +=
                usage::compute_credits(run.finished_at.unwrap_or(now) - run.created_at);
        }
        Ok(UsageReport { buckets, requests })
    }

    // ------------------------------------------------------------ identity tokens

    /// `POST /api/v1/identity-token`: a member mints for themselves (actor `user`).
    pub async fn mint_for_member(
        &self,
        p: &Principal,
        req: IdentityTokenRequest,
    ) -> Result<IdentityTokenResponse> {
        if !p.is_member() {
            return Err(CoreError::forbidden(
                "only a member's API key mints interactive identity tokens",
                Some("runs mint with POST /api/v1/runs/{id}/identity-token"),
            ));
        }
        let team = self.team(&p.team_uid).await?;
        let subject = MintSubject {
            team: &team,
            actor: &p.actor,
            run_id: None,
            accountable_member: Some(&p.actor.uid),
            requested_by: p.audit_name(),
        };
        Ok(self.mint(&subject, &req).await?.response)
    }

    /// `POST /api/v1/runs/{id}/identity-token`: a run's workload token mints for
    /// its own run's actor, and only when the team enabled `worker_identity_tokens`.
    pub async fn mint_for_run(
        &self,
        p: &Principal,
        run_id: &str,
        req: IdentityTokenRequest,
    ) -> Result<IdentityTokenResponse> {
        validate::uid("id", run_id)?;
        let run = self
            .store
            .get_run(&p.team_uid, run_id)
            .await?
            .ok_or(CoreError::NotFound("run"))?;
        if p.kind != CredentialKind::RunToken || p.run_id.as_deref() != Some(run_id) {
            return Err(CoreError::forbidden(
                "only this run's workload token may mint its identity tokens",
                None,
            ));
        }
        let team = self.team(&p.team_uid).await?;
        if !team.settings.worker_identity_tokens {
            return Err(CoreError::forbidden(
                "worker identity tokens are disabled for this team",
                Some(
                    "the server-side broker serves this run's AWS calls; an admin can set \
                     `worker_identity_tokens: true` in the team's LLM settings",
                ),
            ));
        }
        let accountable = self.accountable_member(&run).await?;
        let subject = MintSubject {
            team: &team,
            actor: &run.actor,
            run_id: Some(run_id),
            accountable_member: accountable.as_deref(),
            requested_by: p.audit_name(),
        };
        Ok(self.mint(&subject, &req).await?.response)
    }

    /// The human accountable for a run: its triggering member, or the member who
    /// created the agent that triggered it.
    pub async fn accountable_member(&self, run: &RunRow) -> Result<Option<String>> {
        Ok(match run.triggered_by.actor_type {
            ActorType::User => Some(run.triggered_by.uid.clone()),
            ActorType::ServiceAccount => self
                .store
                .get_agent(&run.team_uid, &run.triggered_by.uid)
                .await?
                .map(|a| a.agent.created_by),
        })
    }

    /// Mints an identity token (DESIGN §3) and writes its audit row. Shared by the
    /// HTTP endpoints and the server-side broker.
    pub async fn mint(&self, s: &MintSubject<'_>, req: &IdentityTokenRequest) -> Result<Minted> {
        let max = self.config.max_token_ttl_seconds;
        if !(MIN_TOKEN_TTL_SECONDS..=max).contains(&req.requested_duration_seconds) {
            return Err(FieldError::new(
                "requested_duration_seconds",
                format!("expected {MIN_TOKEN_TTL_SECONDS} to {max} seconds"),
            )
            .into());
        }
        let settings = &s.team.settings;
        if !settings.token_audiences.contains(&req.audience) {
            return Err(CoreError::refused(
                format!(
                    "audience `{}` is not one of the team's token audiences",
                    req.audience
                ),
                Some(&format!(
                    "use one of {:?}, or an admin can add it to `token_audiences`",
                    settings.token_audiences
                )),
            ));
        }
        let key = self
            .keyring
            .signer()
            .ok_or_else(|| CoreError::Internal("no active signing key".into()))?;
        let now = self.clock.now();
        let source_identity = if settings.source_identity {
            let email = match s.accountable_member {
                Some(uid) => self
                    .store
                    .get_member(&s.team.uid, uid)
                    .await?
                    .map(|m| m.email),
                None => None,
            };
            Some(names::source_identity(
                email.as_deref(),
                s.accountable_member.unwrap_or(&s.actor.uid),
            ))
        } else {
            None
        };
        let claims = Claims {
            iss: self.config.issuer_url.clone(),
            sub: names::subject(
                &s.team.uid,
                s.actor.actor_type,
                &s.actor.uid,
                s.run_id,
                &settings.subject_template,
            ),
            aud: req.audience.clone(),
            iat: now,
            nbf: now - NBF_BACKDATE_SECONDS,
            exp: now + req.requested_duration_seconds,
            jti: ids::new_uid(),
            team_uid: s.team.uid.clone(),
            actor_type: s.actor.actor_type.as_str().to_owned(),
            principal_uid: s.actor.uid.clone(),
            run_id: s.run_id.map(str::to_owned),
            session_tags: settings.session_tags.then(|| {
                names::session_tags(&s.team.uid, s.actor.actor_type, &s.actor.uid, s.run_id)
            }),
            source_identity,
        };
        let token = jwt::encode(&key, &claims).map_err(|e| CoreError::Internal(e.to_string()))?;
        self.store
            .insert_audit(&AuditRow {
                jti: claims.jti.clone(),
                team_uid: s.team.uid.clone(),
                sub: claims.sub.clone(),
                aud: claims.aud.clone(),
                kid: key.kid().to_owned(),
                iat: claims.iat,
                exp: claims.exp,
                requested_by: s.requested_by.clone(),
            })
            .await?;
        Ok(Minted {
            response: IdentityTokenResponse {
                token: SecretValue::from(token),
                expires_at: rfc3339(claims.exp),
                issuer: self.config.issuer_url.clone(),
            },
            claims,
        })
    }
}

/// RFC 7396 JSON Merge Patch: objects merge recursively, `null` removes, anything
/// else replaces.
pub fn merge_patch(target: &mut serde_json::Value, patch: &serde_json::Value) {
    let serde_json::Value::Object(patch_fields) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = serde_json::Value::Object(serde_json::Map::new());
    }
    if let serde_json::Value::Object(fields) = target {
        for (key, value) in patch_fields {
            if value.is_null() {
                fields.remove(key);
            } else {
                merge_patch(
                    fields.entry(key.clone()).or_insert(serde_json::Value::Null),
                    value,
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::merge_patch;

    #[test]
    fn merge_patch_follows_rfc7396() {
        let mut doc = json!({"a": "b", "c": {"d": "e", "f": "g"}});
        merge_patch(&mut doc, &json!({"a": "z", "c": {"f": null}}));
        assert_eq!(doc, json!({"a": "z", "c": {"d": "e"}}));
        let mut doc = json!({"a": {"b": "c"}});
        merge_patch(&mut doc, &json!({"a": {"b": "d", "c": null}, "e": [1]}));
        assert_eq!(doc, json!({"a": {"b": "d"}, "e": [1]}));
    }
}

/// What `byollm admin bootstrap` created.
#[derive(Debug)]
pub struct Bootstrapped {
    /// The new team.
    pub team_uid: String,
    /// Its owner.
    pub owner_uid: String,
    /// The owner's API key (shown once).
    pub api_key: SecretValue,
}

/// Creates a team, its owner and an owner API key directly on the store (offline;
/// run once per team).
pub async fn bootstrap_team(
    store: &Store,
    clock: &dyn Clock,
    team_name: &str,
    owner_email: &str,
) -> Result<Bootstrapped> {
    validate::name("team-name", team_name, 100)?;
    validate::email("owner-email", owner_email)?;
    let now = clock.now();
    let team_uid = ids::new_uid();
    store.insert_team(&team_uid, team_name, now).await?;
    let owner = MemberRow {
        uid: ids::new_uid(),
        team_uid: team_uid.clone(),
        email: owner_email.to_owned(),
        role: Role::Owner,
        aws_bedrock_opt_in: false,
    };
    store.insert_member(&owner, now).await?;
    let key = ids::new_api_key();
    store
        .insert_api_key(&ApiKeyRow {
            id: ids::new_id("key"),
            team_uid: team_uid.clone(),
            owner_type: ActorType::User,
            owner_uid: owner.uid.clone(),
            name: "bootstrap owner key".to_owned(),
            key_hash: ids::hash_secret(key.expose_secret()),
            prefix: ids::visible_prefix(key.expose_secret()),
            created_at: now,
        })
        .await?;
    Ok(Bootstrapped {
        team_uid,
        owner_uid: owner.uid,
        api_key: SecretValue::from(key),
    })
}
