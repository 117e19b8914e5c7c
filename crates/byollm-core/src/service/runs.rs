//! Runs: started by a member (for themselves or an agent) or by an agent key
//! (for its own agent), each with a workload token shown once; read and finished
//! under [`Action::ReadRun`] and [`Action::FinishRun`].
//!
//! Invariants: ending a run (finished, failed, cancelled, or expired at its
//! maximum age) kills its workload token and its cached AWS credentials on this
//! replica at once (DESIGN §2 flow 1). A run past its maximum age is `expired`
//! whether the maintenance sweep ([`Core::expire_overdue_runs`]) or a lookup
//! meets it first, and it ended at that age, not when it was noticed. The list
//! (`GET /api/v1/runs`) pages with [`Page`]: admins see the team's runs,
//! members the runs they act as or started.

use byollm_api::SecretValue;
use byollm_api::types::{
    Actor, ActorType, BedrockTarget, RunCreate, RunCreated, RunFinish, RunInfo, RunList,
    RunListQuery, RunState,
};
use secrecy::ExposeSecret as _;
use serde_json::json;

use super::{Core, Result};
use crate::auth::Principal;
use crate::authz::{self, Action, Target};
use crate::error::CoreError;
use crate::ids;
use crate::settings;
use crate::store::{AgentRow, ExpiredRun, RunFilter, RunRow, TeamRow};
use crate::validate::{self, FieldError};
use byollm_api::clock::rfc3339;

use super::page::Page;

/// A query's RFC 3339 time as Unix seconds, or a 400 naming `field`.
fn unix_time(field: &str, value: &str) -> std::result::Result<i64, FieldError> {
    time::OffsetDateTime::parse(value, &time::format_description::well_known::Rfc3339)
        .map(time::OffsetDateTime::unix_timestamp)
        .map_err(|_| {
            FieldError::new(
                field,
                format!(
                    "{} is not an RFC 3339 time; expected e.g. 2026-01-31T12:00:00Z",
                    validate::quote(value)
                ),
            )
        })
}

/// A query's `type:uid` actor, or a 400 naming `actor`.
fn parse_actor(value: &str) -> std::result::Result<(String, String), FieldError> {
    let bad = || {
        FieldError::new(
            "actor",
            format!(
                "{} is not an actor; expected user:<uid> or service_account:<uid>",
                validate::quote(value)
            ),
        )
    };
    let (t, uid) = value.split_once(':').ok_or_else(bad)?;
    if !matches!(t, "user" | "service_account") {
        return Err(bad());
    }
    validate::uid("actor", uid).map_err(|_| bad())?;
    Ok((t.to_owned(), uid.to_owned()))
}

/// Longest run prompt kept, in characters.
pub const MAX_PROMPT_CHARS: usize = 100_000;

impl Core {
    /// `POST /api/v1/runs`.
    pub async fn create_run(&self, p: &Principal, req: RunCreate) -> Result<RunCreated> {
        if let Some(model) = &req.model {
            validate::model_id("model", model)?;
        }
        if let Some(prompt) = &req.prompt {
            validate::free_text("prompt", prompt, MAX_PROMPT_CHARS)?;
        }
        let agent_uid = req.agent_uid.as_deref();
        authz::check(p, Action::CreateRun, Target::NewRun { agent_uid })?;
        // A named agent's key always acts as its agent; a member as themselves
        // unless they name an agent.
        let actor = match agent_uid {
            Some(uid) if p.is_member() => {
                validate::uid("agent_uid", uid)?;
                Actor {
                    actor_type: ActorType::ServiceAccount,
                    uid: uid.to_owned(),
                }
            }
            _ => p.actor.clone(),
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
            bedrock: bedrock.clone(),
        };
        let audit = self.audit_event(
            p,
            "run.create",
            format!("run:{}", row.uid),
            &json!({"actor": row.actor}),
        );
        self.store.insert_run(&row, Some(&audit)).await?;
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
    ) -> Result<Option<BedrockTarget>> {
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

    /// The run `id` of the caller's team, if `action` on it is allowed.
    async fn run_for(&self, p: &Principal, action: Action, id: &str) -> Result<RunRow> {
        validate::uid("id", id)?;
        let mut run = self
            .store
            .get_run(&p.team_uid, id)
            .await?
            .ok_or(CoreError::NotFound("run"))?;
        authz::check(p, action, run_target(&run))?;
        if !run.state.is_terminal() && self.clock.now() >= run.token_expires_at {
            let expired = self
                .store
                .expire_runs(self.clock.now(), Some((&p.team_uid, id)))
                .await?;
            self.forget_runs(&expired);
            run = self
                .store
                .get_run(&p.team_uid, id)
                .await?
                .ok_or(CoreError::NotFound("run"))?;
        }
        Ok(run)
    }

    /// Marks `expired` every run past its maximum age, killing its token and
    /// its AWS credentials on this replica; how many. Maintenance calls this,
    /// so no one has to look at a run for it to end.
    pub async fn expire_overdue_runs(&self) -> Result<usize> {
        let expired = self.store.expire_runs(self.clock.now(), None).await?;
        self.forget_runs(&expired);
        Ok(expired.len())
    }

    /// What dies with ended runs on this replica: tokens and credentials.
    fn forget_runs(&self, runs: &[ExpiredRun]) {
        if runs.is_empty() {
            return;
        }
        let hashes: Vec<String> = runs.iter().map(|r| r.token_hash.clone()).collect();
        self.auth.evict(&hashes);
        for r in runs {
            self.broker.drop_run(&r.team_uid, &r.uid);
        }
        self.bump();
    }

    /// `GET /api/v1/runs`: one page, oldest first, filtered by state, actor and
    /// creation time; admins list the team's runs, members their own.
    pub async fn list_runs(&self, p: &Principal, q: RunListQuery) -> Result<RunList> {
        authz::check(p, Action::ListRuns, Target::Team)?;
        let page = Page::parse(q.limit, q.cursor.as_deref())?;
        let filter = RunFilter {
            state: q.state.map(|s| s.as_str().to_owned()),
            actor: q.actor.as_deref().map(parse_actor).transpose()?,
            involving_member: authz::check(p, Action::ListTeamRuns, Target::Team)
                .is_err()
                .then(|| p.actor.uid.clone()),
            since: q
                .since
                .as_deref()
                .map(|v| unix_time("since", v))
                .transpose()?,
            until: q
                .until
                .as_deref()
                .map(|v| unix_time("until", v))
                .transpose()?,
            after: page.cursor.as_ref().map(|c| (c.created_at, c.id.clone())),
        };
        let mut rows = self
            .store
            .list_runs_page(&p.team_uid, &filter, page.fetch())
            .await?;
        let next_cursor = page.finish(&mut rows, |r| (r.created_at, r.uid.clone()));
        let mut runs = Vec::with_capacity(rows.len());
        for row in rows {
            runs.push(self.run_info(row).await?);
        }
        Ok(RunList { runs, next_cursor })
    }

    /// `GET /api/v1/runs/{id}`.
    pub async fn get_run(&self, p: &Principal, id: &str) -> Result<RunInfo> {
        let run = self.run_for(p, Action::ReadRun, id).await?;
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
        // An active run: where its next request goes. An ended one: the
        // target it was given (recorded at its start), not `none`.
        let bedrock = if run.state.is_terminal() {
            run.bedrock.clone()
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
        let run = self.run_for(p, Action::FinishRun, id).await?;
        let state = req.state.unwrap_or(RunState::Finished);
        // `expired` is the server's to say, at the run's maximum age.
        if !state.is_terminal() || state == RunState::Expired {
            return Err(FieldError::new("state", "expected finished, failed or cancelled").into());
        }
        let audit = self.audit_event(
            p,
            "run.finish",
            format!("run:{id}"),
            &json!({"state": state.as_str()}),
        );
        if !self
            .store
            .finish_run(
                &p.team_uid,
                id,
                state.as_str(),
                self.clock.now(),
                Some(&audit),
            )
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
}

/// A stored run as the rules see it.
pub(super) fn run_target(run: &RunRow) -> Target<'_> {
    Target::Run {
        id: &run.uid,
        actor: &run.actor,
        triggered_by: &run.triggered_by,
    }
}
