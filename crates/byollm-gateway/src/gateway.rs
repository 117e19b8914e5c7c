//! The request flow: authenticate (done by the server), resolve the caller's
//! context, plan candidates, try them in order with credentials from the broker
//! (or the caller's own), commit on the first chunk, record usage.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use serde_json::Value;

use byollm_api::catalog::{Catalog, Family};
use byollm_api::types::{ActorType, BedrockTarget, IdentityTokenRequest, STS_AUDIENCE};
use byollm_core::auth::Principal;
use byollm_core::broker::{BrokerError, BrokerKey};
use byollm_core::service::{Core, MintSubject};
use byollm_core::settings::{self, NoBedrock};
use byollm_core::store::{TeamRow, UsageRow};
use byollm_core::{CoreError, ids, usage};
use byollm_federation::aws::names;

use crate::bedrock::{Bedrock, CallCredentials, Failure};
use crate::direct::{Direct, DirectEndpoint};
use crate::error::{ApiFormat, Attempt, GatewayError, fallback_header};
use crate::plan::{self, Candidate, PlanInput};

/// Caller-supplied AWS credentials (flow 4): used for one request, never stored
/// or logged.
pub const HDR_ACCESS_KEY: &str = "x-byollm-aws-access-key-id";
/// See [`HDR_ACCESS_KEY`].
pub const HDR_SECRET_KEY: &str = "x-byollm-aws-secret-access-key";
/// See [`HDR_ACCESS_KEY`].
pub const HDR_SESSION_TOKEN: &str = "x-byollm-aws-session-token";
/// See [`HDR_ACCESS_KEY`].
pub const HDR_REGION: &str = "x-byollm-aws-region";

/// Lifetime of the identity tokens the broker mints for STS: long enough for the
/// one call, short enough to be worthless afterwards.
pub const BROKER_TOKEN_TTL_SECONDS: i64 = 300;

/// `max_tokens` sent when an OpenAI-format caller gives none (Bedrock reserves
/// quota for it, so always send one).
pub const DEFAULT_MAX_TOKENS: i32 = 4096;

/// Gateway settings from `byollm serve`.
#[derive(Debug, Clone, Default)]
pub struct GatewayConfig {
    /// STS and Bedrock endpoint override.
    pub aws_endpoint_url: Option<String>,
    /// The Anthropic API.
    pub direct_anthropic: Option<DirectEndpoint>,
    /// The OpenAI API.
    pub direct_openai: Option<DirectEndpoint>,
    /// Most models tried for one request (default 3).
    pub max_fallback_attempts: Option<usize>,
}

/// How long a caller's resolved settings are reused without a store read. A
/// write on this replica invalidates at once; other replicas see it within this.
pub const CONTEXT_TTL_SECONDS: i64 = 1;
const MAX_CONTEXTS: usize = 100_000;

/// The store's view of a caller, cached briefly.
#[derive(Debug)]
struct Base {
    team: Arc<TeamRow>,
    accountable: Option<String>,
    effective: Result<BedrockTarget, NoBedrock>,
    epoch: u64,
    at: i64,
}

/// The gateway.
#[derive(Debug)]
pub struct Gateway {
    pub(crate) core: Arc<Core>,
    contexts: parking_lot::Mutex<std::collections::HashMap<String, Arc<Base>>>,
    pub(crate) bedrock: Bedrock,
    pub(crate) direct: Direct,
    max_models: usize,
}

/// Who is asking, and what the team says about it.
#[derive(Debug)]
pub(crate) struct Ctx {
    pub p: Principal,
    pub team: Arc<TeamRow>,
    pub run_id: Option<String>,
    pub accountable: Option<String>,
    pub caller_creds: Option<CallCredentials>,
    pub effective: Result<BedrockTarget, NoBedrock>,
}

/// What a usage row needs besides the outcome.
#[derive(Debug, Clone)]
pub(crate) struct UsageDraft {
    pub team_uid: String,
    pub run_id: Option<String>,
    pub actor: byollm_api::types::Actor,
    pub member_uid: Option<String>,
    pub agent_uid: Option<String>,
    pub model: String,
}

/// A successful upstream answer, before it becomes a response.
pub(crate) enum Served {
    /// A whole JSON body and its token counts.
    Whole {
        body: Bytes,
        input: u64,
        output: u64,
    },
    /// A stream whose first frames are ready; the pump sends the rest and
    /// records usage when it ends.
    Stream(Body),
}

fn internal(e: CoreError) -> GatewayError {
    match e {
        CoreError::Internal(detail) => {
            tracing::error!(%detail, "gateway internal error");
            GatewayError {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                code: "internal",
                message: "internal error".into(),
                hint: None,
                attempts: Vec::new(),
            }
        }
        other => GatewayError {
            status: StatusCode::FORBIDDEN,
            code: "forbidden",
            message: other.to_string(),
            hint: None,
            attempts: Vec::new(),
        },
    }
}

fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

impl Gateway {
    /// A gateway over the domain.
    pub fn new(core: Arc<Core>, cfg: GatewayConfig) -> Result<Self, reqwest::Error> {
        Ok(Self {
            bedrock: Bedrock::new(cfg.aws_endpoint_url.clone()),
            direct: Direct::new(cfg.direct_anthropic, cfg.direct_openai)?,
            max_models: cfg
                .max_fallback_attempts
                .unwrap_or(plan::MAX_FALLBACK_ATTEMPTS)
                .max(1),
            contexts: Default::default(),
            core,
        })
    }

    /// What the store says about a caller, cached per credential for at most
    /// [`CONTEXT_TTL_SECONDS`] and dropped at once by any write on this replica.
    async fn base(&self, p: &Principal) -> Result<Arc<Base>, GatewayError> {
        let epoch = self.core.current_epoch();
        let now = self.core.clock.now();
        if let Some(b) = self.contexts.lock().get(&p.credential_hash)
            && b.epoch == epoch
            && now - b.at < CONTEXT_TTL_SECONDS
        {
            return Ok(b.clone());
        }
        let store = &self.core.store;
        let team = store
            .get_team(&p.team_uid)
            .await
            .map_err(|e| internal(e.into()))?
            .ok_or_else(|| internal(CoreError::Internal("caller's team is missing".into())))?;
        let agent = match p.actor.actor_type {
            ActorType::ServiceAccount => Some(
                store
                    .get_agent(&p.team_uid, &p.actor.uid)
                    .await
                    .map_err(|e| internal(e.into()))?
                    .ok_or_else(|| {
                        internal(CoreError::forbidden("this agent no longer exists", None))
                    })?,
            ),
            ActorType::User => None,
        };
        let (opt_in, mut accountable) = match p.actor.actor_type {
            ActorType::User => (
                store
                    .get_member(&p.team_uid, &p.actor.uid)
                    .await
                    .map_err(|e| internal(e.into()))?
                    .is_some_and(|m| m.aws_bedrock_opt_in),
                Some(p.actor.uid.clone()),
            ),
            ActorType::ServiceAccount => {
                (false, agent.as_ref().map(|a| a.agent.created_by.clone()))
            }
        };
        if let Some(run_id) = &p.run_id
            && let Some(run) = store
                .get_run(&p.team_uid, run_id)
                .await
                .map_err(|e| internal(e.into()))?
        {
            accountable = self.core.accountable_member(&run).await.map_err(internal)?;
        }
        let override_ = agent.map(|a| a.agent.inference_providers.aws);
        let effective = settings::effective_aws(
            &team.settings,
            p.actor.actor_type,
            override_.as_ref(),
            opt_in,
        );
        let base = Arc::new(Base {
            team: Arc::new(team),
            accountable,
            effective,
            epoch,
            at: now,
        });
        let mut cache = self.contexts.lock();
        if cache.len() >= MAX_CONTEXTS {
            cache.clear();
        }
        cache.insert(p.credential_hash.clone(), base.clone());
        Ok(base)
    }

    pub(crate) async fn context(
        &self,
        p: Principal,
        headers: &HeaderMap,
    ) -> Result<Ctx, GatewayError> {
        let base = self.base(&p).await?;
        let team = Arc::clone(&base.team);
        let accountable = base.accountable.clone();
        let mut effective = base.effective.clone();
        let caller_creds = caller_credentials(headers)?;
        if caller_creds.is_some() {
            // Flow 4: the caller's own credentials stand in for the role; the
            // region comes from the caller, else the effective or team region.
            let region = header(headers, HDR_REGION)
                .map(str::to_owned)
                .or_else(|| effective.as_ref().ok().map(|t| t.region.clone()))
                .or_else(|| team.settings.hosts.aws_bedrock.region.clone());
            if let Some(r) = &region {
                byollm_core::validate::region(HDR_REGION, r)
                    .map_err(|e| GatewayError::invalid(e.to_string()))?;
            }
            effective = match (effective, region) {
                (Ok(_) | Err(NoBedrock::NoRole), Some(region)) => Ok(BedrockTarget {
                    role_arn: "caller-credentials".into(),
                    region,
                }),
                (Err(NoBedrock::NoRegion), None) | (Ok(_), None) => Err(NoBedrock::NoRegion),
                (Err(e), _) => Err(e),
            };
        }
        Ok(Ctx {
            run_id: p.run_id.clone(),
            p,
            team,
            accountable,
            caller_creds,
            effective,
        })
    }

    pub(crate) fn plan_input<'a>(&self, ctx: &'a Ctx, format: ApiFormat) -> PlanInput<'a> {
        PlanInput {
            settings: &ctx.team.settings,
            effective: ctx.effective.clone(),
            direct_anthropic: self.direct.has(Family::Anthropic),
            direct_openai: self.direct.has(Family::Openai),
            format,
            max_models: self.max_models,
        }
    }

    /// Credentials for a Bedrock candidate: the caller's, or brokered.
    async fn credentials(
        &self,
        ctx: &Ctx,
        target: &BedrockTarget,
    ) -> Result<CallCredentials, String> {
        if let Some(c) = &ctx.caller_creds {
            return Ok(c.clone());
        }
        let key = self.broker_key(ctx, target);
        let session_name = match (&ctx.run_id, ctx.p.actor.actor_type) {
            (Some(run), _) => names::run_session_name(run),
            (None, ActorType::User) => names::user_session_name(&ctx.p.actor.uid),
            (None, ActorType::ServiceAccount) => {
                names::sts_name(&format!("byollm-agent-{}", ctx.p.actor.uid))
            }
        };
        let core = self.core.clone();
        let (team, actor, run_id, accountable) = (
            Arc::clone(&ctx.team),
            ctx.p.actor.clone(),
            ctx.run_id.clone(),
            ctx.accountable.clone(),
        );
        let requested_by = match &run_id {
            Some(r) => format!("broker:run:{r}"),
            None => format!("broker:{}:{}", actor.actor_type.as_str(), actor.uid),
        };
        let mint = move || async move {
            let audience = if team
                .settings
                .token_audiences
                .iter()
                .any(|a| a == STS_AUDIENCE)
            {
                STS_AUDIENCE.to_owned()
            } else {
                return Err(BrokerError::Mint(format!(
                    "the team's token_audiences do not include {STS_AUDIENCE}"
                )));
            };
            let subject = MintSubject {
                team: &team,
                actor: &actor,
                run_id: run_id.as_deref(),
                accountable_member: accountable.as_deref(),
                requested_by,
            };
            let req = IdentityTokenRequest {
                audience,
                requested_duration_seconds: BROKER_TOKEN_TTL_SECONDS,
            };
            core.mint(&subject, &req)
                .await
                .map(|m| secrecy::SecretString::from(m.response.token.expose().to_owned()))
                .map_err(|e| BrokerError::Mint(e.to_string()))
        };
        let creds = self
            .core
            .broker
            .credentials(&key, &session_name, mint)
            .await
            .map_err(|e| format!("role assumption failed: {e}"))?;
        Ok(CallCredentials {
            access_key_id: creds.access_key_id.clone(),
            secret_access_key: creds.secret_access_key.clone(),
            session_token: Some(creds.session_token.clone()),
        })
    }

    fn broker_key(&self, ctx: &Ctx, target: &BedrockTarget) -> BrokerKey {
        BrokerKey {
            team_uid: ctx.team.uid.clone(),
            actor: ctx.p.actor.clone(),
            role_arn: target.role_arn.clone(),
            region: target.region.clone(),
            run_id: ctx.run_id.clone(),
        }
    }

    fn draft(ctx: &Ctx, model: &str) -> UsageDraft {
        UsageDraft {
            team_uid: ctx.team.uid.clone(),
            run_id: ctx.run_id.clone(),
            actor: ctx.p.actor.clone(),
            member_uid: ctx.accountable.clone(),
            agent_uid: (ctx.p.actor.actor_type == ActorType::ServiceAccount)
                .then(|| ctx.p.actor.uid.clone()),
            model: model.to_owned(),
        }
    }

    /// Tries the candidates in order (DESIGN §5 rules 2–4) and answers.
    pub(crate) async fn route<F, Fut>(
        &self,
        ctx: &Ctx,
        format: ApiFormat,
        model: &str,
        try_one: F,
    ) -> Response
    where
        F: Fn(Candidate, Option<CallCredentials>, UsageDraft, Vec<Attempt>) -> Fut,
        Fut: std::future::Future<Output = Result<Served, Failure>>,
    {
        let candidates = match plan::plan(Catalog::builtin(), model, &self.plan_input(ctx, format))
        {
            Ok(c) => c,
            Err(e) => return e.into_response(format),
        };
        let draft = Self::draft(ctx, model);
        let mut attempts: Vec<Attempt> = Vec::new();
        let mut bedrock_failed = false;
        let mut global_denied: Option<String> = None;
        // A role that could not be assumed is not tried again for the next model.
        let mut no_credentials: Vec<(BedrockTarget, String)> = Vec::new();
        for c in candidates {
            let route = c.route();
            match &c {
                Candidate::Bedrock {
                    geo_fallback: true,
                    model,
                    ..
                } if global_denied.as_deref() != Some(model) => continue,
                Candidate::Direct { .. }
                    if bedrock_failed && !ctx.team.settings.allow_fallback_outside_cloud =>
                {
                    attempts.push(Attempt {
                        route,
                        outcome: "skipped: allow_fallback_outside_cloud is false".into(),
                    });
                    continue;
                }
                _ => {}
            }
            global_denied = None;
            let known_failure = match &c {
                Candidate::Bedrock { target, .. } => no_credentials
                    .iter()
                    .find(|(t, _)| t == target)
                    .map(|(_, cause)| cause.clone()),
                Candidate::Direct { .. } => None,
            };
            let result = match (&c, known_failure) {
                (Candidate::Bedrock { .. }, Some(cause)) => Err(Failure::Fallback(cause)),
                (Candidate::Bedrock { target, .. }, None) => {
                    match self.credentials(ctx, target).await {
                        Err(cause) => {
                            no_credentials.push((target.clone(), cause.clone()));
                            Err(Failure::Fallback(cause))
                        }
                        Ok(creds) => {
                            let first =
                                try_one(c.clone(), Some(creds), draft.clone(), attempts.clone())
                                    .await;
                            match first {
                                // Expired or unrecognised: new credentials, one more try.
                                Err(Failure::Credentials(_)) if ctx.caller_creds.is_none() => {
                                    self.core.broker.invalidate(&self.broker_key(ctx, target));
                                    match self.credentials(ctx, target).await {
                                        Ok(creds) => {
                                            try_one(
                                                c.clone(),
                                                Some(creds),
                                                draft.clone(),
                                                attempts.clone(),
                                            )
                                            .await
                                        }
                                        Err(cause) => Err(Failure::Fallback(cause)),
                                    }
                                }
                                other => other,
                            }
                        }
                    }
                }
                (Candidate::Direct { .. }, _) => {
                    try_one(c.clone(), None, draft.clone(), attempts.clone()).await
                }
            };
            match result {
                Ok(served) => {
                    attempts.push(Attempt {
                        route: route.clone(),
                        outcome: "ok".into(),
                    });
                    return self.respond(served, &route, &attempts, &c, draft).await;
                }
                Err(Failure::Client { status, message }) => {
                    attempts.push(Attempt {
                        route,
                        outcome: format!("client error {status}"),
                    });
                    self.record(&draft, "none", &attempts, 0, 0, 0).await;
                    let mut e = GatewayError::invalid(message);
                    e.status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
                    e.code = "upstream_rejected_request";
                    e.attempts = attempts;
                    return e.into_response(format);
                }
                Err(f) => {
                    if let Candidate::Bedrock {
                        geo_fallback,
                        model,
                        ..
                    } = &c
                    {
                        bedrock_failed = true;
                        if matches!(f, Failure::AccessDenied(_)) && !geo_fallback {
                            global_denied = Some(model.clone());
                        }
                    }
                    tracing::info!(route = %route, cause = %f.cause(), "attempt failed; trying the next route");
                    attempts.push(Attempt {
                        route,
                        outcome: f.cause(),
                    });
                }
            }
        }
        self.record(&draft, "none", &attempts, 0, 0, 0).await;
        let hint = if bedrock_failed && !ctx.team.settings.allow_fallback_outside_cloud {
            "The team keeps requests inside its cloud (allow_fallback_outside_cloud is false); an admin can fix \
             the AWS role or permissions (see `byollm aws doctor`), or allow the direct API."
        } else {
            "An admin can check the AWS role and permissions with `byollm aws doctor`, or enable another model or host."
        };
        GatewayError {
            status: StatusCode::BAD_GATEWAY,
            code: "no_upstream_succeeded",
            message: format!("no route could serve `{model}`."),
            hint: Some(hint.into()),
            attempts,
        }
        .into_response(format)
    }

    async fn respond(
        &self,
        served: Served,
        route: &str,
        attempts: &[Attempt],
        c: &Candidate,
        draft: UsageDraft,
    ) -> Response {
        let mut resp = match served {
            Served::Whole {
                body,
                input,
                output,
            } => {
                let credits = self.credits(c, input, output);
                self.record(&draft, route, attempts, input, output, credits)
                    .await;
                let mut r = Response::new(Body::from(body));
                r.headers_mut().insert(
                    http::header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                r
            }
            Served::Stream(body) => {
                let mut r = Response::new(body);
                let h = r.headers_mut();
                h.insert(
                    http::header::CONTENT_TYPE,
                    HeaderValue::from_static("text/event-stream"),
                );
                h.insert(
                    http::header::CACHE_CONTROL,
                    HeaderValue::from_static("no-cache"),
                );
                r
            }
        };
        if let Ok(v) = HeaderValue::from_str(route) {
            resp.headers_mut().insert("x-byollm-route", v);
        }
        if let Some(v) = fallback_header(attempts) {
            resp.headers_mut().insert("x-byollm-fallback", v);
        }
        resp
    }

    /// Inference credits: direct-API tokens × catalog price; Bedrock is free here.
    pub(crate) fn credits(&self, c: &Candidate, input: u64, output: u64) -> i64 {
        match c {
            Candidate::Bedrock { .. } => 0,
            Candidate::Direct { model, .. } => Catalog::builtin().get(model).map_or(0, |m| {
                usage::inference_microcredits(&m.price, input, output)
            }),
        }
    }

    /// Queues the usage row of a request.
    pub(crate) async fn record(
        &self,
        draft: &UsageDraft,
        route: &str,
        attempts: &[Attempt],
        input: u64,
        output: u64,
        microcredits: i64,
    ) {
        record_usage(
            &self.core,
            draft,
            route,
            attempts,
            input,
            output,
            microcredits,
        )
        .await;
    }
}

impl Gateway {
    /// Streams the rest of an upstream through `relay` on a background task
    /// (shutdown waits for it) and records usage when it ends.
    pub(crate) fn spawn_stream<U, R>(
        &self,
        first: U::Item,
        upstream: U,
        relay: R,
        c: &Candidate,
        draft: UsageDraft,
        mut attempts: Vec<Attempt>,
    ) -> Served
    where
        U: crate::relay::Upstream,
        R: crate::relay::Relay<Item = U::Item>,
    {
        let (frames, body) = crate::stream::channel();
        let core = self.core.clone();
        let route = c.route();
        let price = match c {
            Candidate::Bedrock { .. } => None,
            Candidate::Direct { model, .. } => Catalog::builtin().get(model).map(|m| m.price),
        };
        self.core.tasks.spawn(async move {
            let (outcome, relay) = crate::relay::pump(first, upstream, relay, frames).await;
            let (input, output) = relay.usage();
            let credits = price.map_or(0, |p| usage::inference_microcredits(&p, input, output));
            attempts.push(Attempt {
                route: route.clone(),
                outcome,
            });
            record_usage(&core, &draft, &route, &attempts, input, output, credits).await;
        });
        Served::Stream(body)
    }
}

/// The first chunk of a vendor stream: the commit point.
pub(crate) async fn first_chunk(resp: &mut reqwest::Response) -> Result<Bytes, Failure> {
    match resp.chunk().await {
        Ok(Some(b)) => Ok(b),
        Ok(None) => Err(Failure::Fallback("direct API stream ended at once".into())),
        Err(e) => Err(Failure::Fallback(format!("direct API stream: {e}"))),
    }
}

/// A vendor's whole JSON response.
pub(crate) async fn whole_body(resp: reqwest::Response) -> Result<(Bytes, Value), Failure> {
    let bytes = resp
        .bytes()
        .await
        .map_err(|e| Failure::Fallback(format!("direct API body: {e}")))?;
    let v = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Ok((bytes, v))
}

/// Queues a usage row (also used by stream pumps when a stream ends).
pub(crate) async fn record_usage(
    core: &Core,
    draft: &UsageDraft,
    route: &str,
    attempts: &[Attempt],
    input: u64,
    output: u64,
    microcredits: i64,
) {
    let row = UsageRow {
        id: ids::new_id("use"),
        team_uid: draft.team_uid.clone(),
        run_id: draft.run_id.clone(),
        actor: draft.actor.clone(),
        member_uid: draft.member_uid.clone(),
        agent_uid: draft.agent_uid.clone(),
        model: draft.model.clone(),
        route: route.to_owned(),
        attempts: serde_json::to_string(attempts).unwrap_or_else(|_| "[]".into()),
        input_tokens: i64::try_from(input).unwrap_or(i64::MAX),
        output_tokens: i64::try_from(output).unwrap_or(i64::MAX),
        inference_microcredits: microcredits,
        created_at: core.clock.now(),
    };
    core.usage.record(row).await;
}

fn caller_credentials(headers: &HeaderMap) -> Result<Option<CallCredentials>, GatewayError> {
    let ak = header(headers, HDR_ACCESS_KEY);
    let sk = header(headers, HDR_SECRET_KEY);
    match (ak, sk) {
        (None, None) => Ok(None),
        (Some(ak), Some(sk)) => Ok(Some(CallCredentials {
            access_key_id: ak.to_owned(),
            secret_access_key: secrecy::SecretString::from(sk.to_owned()),
            session_token: header(headers, HDR_SESSION_TOKEN)
                .map(|t| secrecy::SecretString::from(t.to_owned())),
        })),
        _ => Err(GatewayError::invalid(format!(
            "{HDR_ACCESS_KEY} and {HDR_SECRET_KEY} go together; send both (and {HDR_SESSION_TOKEN} for temporary credentials)"
        ))),
    }
}

/// Parses a request body as a JSON object and reads `model` and `stream`.
pub(crate) fn parse_body(
    bytes: &[u8],
) -> Result<(serde_json::Map<String, Value>, String, bool), GatewayError> {
    let value: Value = serde_json::from_slice(bytes)
        .map_err(|e| GatewayError::invalid(format!("body: malformed JSON: {e}")))?;
    let Value::Object(map) = value else {
        return Err(GatewayError::invalid("body: expected a JSON object"));
    };
    let model = match map.get("model") {
        Some(Value::String(m)) if !m.is_empty() => m.clone(),
        Some(_) => return Err(GatewayError::invalid("model: expected a model id string")),
        None => return Err(GatewayError::invalid("model: required")),
    };
    let stream = match map.get("stream") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(GatewayError::invalid("stream: expected true or false")),
    };
    Ok((map, model, stream))
}
