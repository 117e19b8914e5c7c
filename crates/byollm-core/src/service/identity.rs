//! Identity tokens (DESIGN §3): a member mints for themselves, a run's workload
//! token for its own run, and the server-side broker through [`Core::mint`].
//!
//! Invariants: every minted token has an audit row (never the token itself); its
//! lifetime is within the operator's bounds and its audience one of the team's.

use byollm_api::SecretValue;
use byollm_api::types::{
    AZURE_AUDIENCE, Actor, ActorType, IdentityTokenRequest, IdentityTokenResponse,
};

use super::runs::run_target;
use super::{Core, Result};
use crate::auth::Principal;
use crate::authz::{self, Action, Target};
use crate::error::CoreError;
use crate::identity::jwt::{self, Claims};
use crate::identity::keys::Algorithm;
use crate::identity::{MIN_TOKEN_TTL_SECONDS, NBF_BACKDATE_SECONDS, names};
use crate::ids;
use crate::store::{AuditRow, RunRow, TeamRow};
use crate::validate::{self, FieldError};
use byollm_api::clock::rfc3339;

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
    /// `POST /api/v1/identity-token`: a member mints for themselves (actor `user`).
    pub async fn mint_for_member(
        &self,
        p: &Principal,
        req: IdentityTokenRequest,
    ) -> Result<IdentityTokenResponse> {
        authz::check(p, Action::MintForMember, Target::Team)?;
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
        authz::check(p, Action::MintForRun, run_target(&run))?;
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
        // An agent made unavailable does no inference, in the worker either.
        if run.actor.actor_type == ActorType::ServiceAccount
            && let Some(agent) = self.store.get_agent(&p.team_uid, &run.actor.uid).await?
            && !agent.agent.available
        {
            return Err(CoreError::forbidden(
                format!("agent `{}` is not available", agent.agent.name),
                Some("an admin can set `available: true` on the agent"),
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

    /// `POST /api/v1/agent/identities/{uid}/identity-token`: an admin mints a named
    /// agent's token to check its cloud setup (the doctor). No run is started, so
    /// nothing is billed, and the team's `worker_identity_tokens` does not apply:
    /// the token is the one the server's broker would mint for the agent, minus a
    /// run. The audit row names the admin.
    pub async fn mint_for_agent(
        &self,
        p: &Principal,
        agent_uid: &str,
        req: IdentityTokenRequest,
    ) -> Result<IdentityTokenResponse> {
        validate::uid("uid", agent_uid)?;
        authz::check(p, Action::MintForAgent, Target::Team)?;
        let agent = self
            .store
            .get_agent(&p.team_uid, agent_uid)
            .await?
            .ok_or(CoreError::NotFound("agent"))?;
        let team = self.team(&p.team_uid).await?;
        let actor = Actor {
            actor_type: ActorType::ServiceAccount,
            uid: agent_uid.to_owned(),
        };
        let subject = MintSubject {
            team: &team,
            actor: &actor,
            run_id: None,
            accountable_member: Some(&agent.agent.created_by),
            requested_by: format!("{} (checking agent {agent_uid})", p.audit_name()),
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
        // Google has no global audience: a team's own workload identity
        // provider is accepted for that team only (gcp-facts §1.4).
        let mut gcp_audience = crate::settings::gcp::is_team_audience(settings, &req.audience);
        // A named agent may also mint for the provider its own override names.
        if !gcp_audience
            && !settings.token_audiences.contains(&req.audience)
            && s.actor.actor_type == ActorType::ServiceAccount
            && let Some(agent) = self.store.get_agent(&s.team.uid, &s.actor.uid).await?
        {
            gcp_audience = crate::settings::gcp::is_agent_audience(
                settings,
                &agent.agent.inference_providers.gcp,
                &req.audience,
            );
        }
        // Entra's audience: only while the caller has an Azure target (the
        // team's host on, the agent's override not disabling it); such a
        // token is RS256 and its `sub` the team's granularity.
        let azure = if req.audience == AZURE_AUDIENCE {
            Some(self.azure_granularity(s).await?)
        } else {
            None
        };
        if azure.is_none() && !gcp_audience && !settings.token_audiences.contains(&req.audience) {
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
        let key = match azure {
            Some(_) => self.keyring.signer_for(Algorithm::Rs256).ok_or_else(|| {
                CoreError::refused(
                    "no RS256 signing key signs yet, and Azure accepts only RS256 tokens",
                    Some(
                        "an RS256 key added to a keyring that already signs is published for \
                         15 minutes before it signs (`byollm keys list` shows when); try again then",
                    ),
                )
            })?,
            None => self
                .keyring
                .signer()
                .ok_or_else(|| CoreError::Internal("no active signing key".into()))?,
        };
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
        let full = names::subject(
            &s.team.uid,
            s.actor.actor_type,
            &s.actor.uid,
            s.run_id,
            &settings.subject_template,
        );
        let sub = match azure {
            Some(g) => {
                crate::settings::azure::subject(&s.team.uid, s.actor.actor_type, &s.actor.uid, g)
            }
            None => full.clone(),
        };
        let actor = (sub != full).then_some(full);
        let claims = Claims {
            iss: self.config.issuer_url.clone(),
            sub,
            aud: req.audience.clone(),
            // Google's STS wants `iat` "in the past" with no documented
            // skew (gcp-facts §1.4): back-date it like `nbf` for its tokens.
            iat: if gcp_audience {
                now - NBF_BACKDATE_SECONDS
            } else {
                now
            },
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
            team: gcp_audience.then(|| s.team.uid.clone()),
            actor,
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
                actor: claims.actor.clone(),
            })
            .await?;
        self.metrics()
            .identity_token_issued(s.actor.actor_type.as_str());
        Ok(Minted {
            response: IdentityTokenResponse {
                token: SecretValue::from(token),
                expires_at: rfc3339(claims.exp),
                issuer: self.config.issuer_url.clone(),
            },
            claims,
        })
    }

    /// The subject granularity of an Azure token for `s`, or why it may not
    /// have one: the team's host is off, or the agent's own override keeps
    /// it off Azure.
    async fn azure_granularity(
        &self,
        s: &MintSubject<'_>,
    ) -> Result<byollm_api::types::SubjectGranularity> {
        let agent = match s.actor.actor_type {
            ActorType::ServiceAccount => self
                .store
                .get_agent(&s.team.uid, &s.actor.uid)
                .await?
                .map(|a| a.agent.inference_providers.azure),
            ActorType::User => None,
        };
        crate::settings::azure::effective_azure(&s.team.settings, agent.as_ref())
            .map(|t| t.granularity)
            .ok_or_else(|| {
                CoreError::refused(
                    format!(
                        "audience `{AZURE_AUDIENCE}` is for Azure AI Foundry, which is off for \
                         this {}",
                        if agent.is_some_and(|o| o.disabled) {
                            "agent"
                        } else {
                            "team"
                        }
                    ),
                    Some(
                        "an admin can enable `hosts.azure_foundry` (and clear the agent's \
                         `inference_providers.azure.disabled`)",
                    ),
                )
            })
    }
}
