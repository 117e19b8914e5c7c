//! The gateway and one request's flow: authenticate (done by the server),
//! resolve the caller (`caller.rs`), plan candidates ([`crate::plan`]), try them
//! in order with credentials from the broker or the caller's own (`attempt.rs`,
//! `credentials.rs`), commit on the first chunk, and record one usage row per
//! request (a stream's when it ends).
//!
//! Invariant: a request's usage row is committed before the caller gets the
//! last byte of its response (a whole body is sent after the commit; a stream's
//! final event waits for it), unless the store fails for longer than
//! [`byollm_core::usage::COMMIT_WAIT`] (then the row stays queued for retry).
//! The row's id is the `x-byollm-request-id` header of the response.

use std::sync::Arc;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use serde_json::Value;

use byollm_api::catalog::{Catalog, Family};
use byollm_api::types::ActorType;
use byollm_core::service::Core;
use byollm_core::store::UsageRow;
use byollm_core::{ids, usage};

use crate::attempt::{Call, Served};
use crate::bedrock::Bedrock;
use crate::caller::{Ctx, StoredCallers};
use crate::direct::{Direct, DirectEndpoint};
use crate::error::{ApiFormat, Attempt, GatewayError};
use crate::foundry::Foundry;
use crate::limits::{DEFAULT_MAX_BODY_BYTES, Timeouts};
use crate::plan::{self, Candidate, PlanInput};
use crate::stream::Streams;
use crate::vertex::Vertex;

/// Caller-supplied AWS credentials (flow 4): used for one request, never stored
/// or logged.
pub const HDR_ACCESS_KEY: &str = "x-byollm-aws-access-key-id";
/// See [`HDR_ACCESS_KEY`].
pub const HDR_SECRET_KEY: &str = "x-byollm-aws-secret-access-key";
/// See [`HDR_ACCESS_KEY`].
pub const HDR_SESSION_TOKEN: &str = "x-byollm-aws-session-token";
/// See [`HDR_ACCESS_KEY`].
pub const HDR_REGION: &str = "x-byollm-aws-region";

/// The response header naming the request: its usage row's id.
pub const HDR_REQUEST_ID: &str = "x-byollm-request-id";

/// Lifetime of the identity tokens the broker mints for STS: long enough for the
/// one call, short enough to be worthless afterwards.
pub const BROKER_TOKEN_TTL_SECONDS: i64 = 300;

/// `max_tokens` sent when an OpenAI-format caller gives none (Bedrock reserves
/// quota for it, so always send one).
pub const DEFAULT_MAX_TOKENS: i32 = 4096;

/// How long a caller's resolved settings are reused without a store read. A
/// write on this replica invalidates at once; other replicas see it within this.
pub const CONTEXT_TTL_SECONDS: i64 = 1;

/// Gateway settings from `byollm serve`.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// STS and Bedrock endpoint override.
    pub aws_endpoint_url: Option<String>,
    /// Vertex AI endpoint override, for every location (the emulator).
    pub gcp_endpoint_url: Option<String>,
    /// Azure AI Foundry endpoint override, for every resource (the emulator:
    /// `{url}/_azure/{resource}` stands for `https://{resource}.services.ai.azure.com`).
    pub azure_endpoint_url: Option<String>,
    /// The Anthropic API.
    pub direct_anthropic: Option<DirectEndpoint>,
    /// The OpenAI API.
    pub direct_openai: Option<DirectEndpoint>,
    /// Most models tried for one request (default 3).
    pub max_fallback_attempts: Option<usize>,
    /// Largest `/v1/*` request body, bytes (`[gateway] max_body_bytes`).
    pub max_body_bytes: usize,
    /// How long to wait on upstreams.
    pub timeouts: Timeouts,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            aws_endpoint_url: None,
            gcp_endpoint_url: None,
            azure_endpoint_url: None,
            direct_anthropic: None,
            direct_openai: None,
            max_fallback_attempts: None,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            timeouts: Timeouts::default(),
        }
    }
}

/// The gateway.
#[derive(Debug)]
pub struct Gateway {
    pub(crate) core: Arc<Core>,
    pub(crate) callers: StoredCallers,
    pub(crate) bedrock: Bedrock,
    pub(crate) vertex: Vertex,
    pub(crate) foundry: Foundry,
    pub(crate) direct: Direct,
    streams: Streams,
    max_models: usize,
    max_body_bytes: usize,
    pub(crate) timeouts: Timeouts,
}

/// What the gateway holds in memory, for tests and operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GatewayStats {
    /// Bedrock SDK clients alive, each built from one set of AWS credentials
    /// (held by a broker entry, or by a request in flight).
    pub bedrock_clients: u64,
    /// Callers' resolved settings cached (nothing secret).
    pub callers: u64,
}

/// What a usage row needs besides the outcome.
#[derive(Debug, Clone)]
pub(crate) struct UsageDraft {
    /// The row's id, chosen up front so the response can name it.
    pub id: String,
    pub team_uid: String,
    pub run_id: Option<String>,
    pub actor: byollm_api::types::Actor,
    pub member_uid: Option<String>,
    pub agent_uid: Option<String>,
    pub model: String,
}

impl UsageDraft {
    /// The draft for `ctx` asking for `model` (as requested, `auto` resolved).
    pub(crate) fn new(ctx: &Ctx, model: &str) -> Self {
        UsageDraft {
            id: ctx.request_id.clone().unwrap_or_else(|| ids::new_id("use")),
            team_uid: ctx.team.uid.clone(),
            run_id: ctx.run_id.clone(),
            actor: ctx.p.actor.clone(),
            member_uid: ctx.accountable.clone(),
            agent_uid: (ctx.p.actor.actor_type == ActorType::ServiceAccount)
                .then(|| ctx.p.actor.uid.clone()),
            model: model.to_owned(),
        }
    }

    /// Writes the request's usage row; returns once it is committed (or the
    /// commit wait ran out and the row is left queued for retry).
    pub(crate) async fn record(
        &self,
        core: &Core,
        route: &str,
        attempts: &[Attempt],
        input: u64,
        output: u64,
        microcredits: i64,
    ) {
        let row = UsageRow {
            id: self.id.clone(),
            team_uid: self.team_uid.clone(),
            run_id: self.run_id.clone(),
            actor: self.actor.clone(),
            member_uid: self.member_uid.clone(),
            agent_uid: self.agent_uid.clone(),
            model: self.model.clone(),
            route: route.to_owned(),
            attempts: serde_json::to_string(attempts).unwrap_or_else(|_| "[]".into()),
            input_tokens: i64::try_from(input).unwrap_or(i64::MAX),
            output_tokens: i64::try_from(output).unwrap_or(i64::MAX),
            inference_microcredits: microcredits,
            created_at: core.clock().now(),
        };
        let host = match route.split_once(':') {
            Some((crate::plan::HOST_BEDROCK, _)) => crate::plan::HOST_BEDROCK,
            Some((crate::plan::HOST_VERTEX, _)) => crate::plan::HOST_VERTEX,
            Some((crate::plan::HOST_DIRECT, _)) => crate::plan::HOST_DIRECT,
            _ => "none",
        };
        core.metrics().tokens(
            host,
            crate::attempt::model_label(&self.model),
            &self.team_uid,
            input,
            output,
        );
        let _ = core.usage_sink().record(row).await;
    }
}

impl Gateway {
    /// A gateway over the domain.
    pub fn new(core: Arc<Core>, cfg: GatewayConfig) -> Result<Self, reqwest::Error> {
        Ok(Self {
            bedrock: Bedrock::new(cfg.aws_endpoint_url.clone(), cfg.timeouts.connect),
            vertex: Vertex::new(cfg.gcp_endpoint_url.clone(), cfg.timeouts.connect)?,
            foundry: Foundry::new(cfg.azure_endpoint_url.clone(), cfg.timeouts.connect)?,
            direct: Direct::new(
                cfg.direct_anthropic,
                cfg.direct_openai,
                cfg.timeouts.connect,
            )?,
            max_models: cfg
                .max_fallback_attempts
                .unwrap_or(plan::MAX_FALLBACK_ATTEMPTS)
                .max(1),
            max_body_bytes: cfg.max_body_bytes,
            timeouts: cfg.timeouts,
            callers: StoredCallers::default(),
            streams: Streams::default(),
            core,
        })
    }

    /// Reads a `/v1/*` request body up to `[gateway] max_body_bytes`; over it,
    /// the 413 in the caller's format.
    pub(crate) async fn read_body(&self, body: Body, format: ApiFormat) -> Result<Bytes, Response> {
        crate::limits::read_body(body, self.max_body_bytes)
            .await
            .map_err(|e| e.into_response(format))
    }

    /// What the gateway holds in memory.
    pub fn stats(&self) -> GatewayStats {
        GatewayStats {
            bedrock_clients: self.bedrock.live_clients(),
            callers: self.callers.len(),
        }
    }

    /// The committed streams in flight (a gauge for metrics and tests; ended
    /// early at shutdown).
    pub fn streams(&self) -> &Streams {
        &self.streams
    }

    pub(crate) fn plan_input<'a>(&self, ctx: &'a Ctx, format: ApiFormat) -> PlanInput<'a> {
        PlanInput {
            settings: &ctx.team.settings,
            effective: ctx.effective.clone(),
            vertex: ctx.vertex.clone(),
            azure: ctx.azure.clone(),
            direct_anthropic: self.direct.has(Family::Anthropic),
            direct_openai: self.direct.has(Family::Openai),
            format,
            max_models: self.max_models,
        }
    }

    /// Commits to `call`'s route with a stream: pumps the rest of `upstream`
    /// through `relay` on a stream task (see [`Streams`]), and when it ends
    /// commits the usage row, with the stream's end as the last attempt, before
    /// the final frames go out. The current (`upstream`) span lives as long as
    /// the stream and gets its usage and stop reasons at the end.
    pub(crate) fn spawn_stream<U, R>(
        &self,
        first: U::Item,
        upstream: U,
        relay: R,
        call: Call,
    ) -> Served
    where
        U: crate::relay::Upstream,
        R: crate::relay::Relay<Item = U::Item>,
    {
        let Call {
            candidate: c,
            draft,
            mut attempts,
            ..
        } = call;
        let (frames, body) = crate::stream::channel();
        let core = self.core.clone();
        let idle = self.timeouts.stream_idle;
        let end_now = self.streams.end_token().clone();
        let route = c.route();
        // The inference (`upstream`) span this stream was opened in: it stays
        // open until the stream ends, when its usage and stop reason are known.
        let span = tracing::Span::current();
        let price = match &c {
            Candidate::Bedrock { .. } | Candidate::Vertex { .. } | Candidate::Foundry { .. } => {
                None
            }
            Candidate::Direct { model, .. } => Catalog::builtin().get(model).map(|m| m.price),
        };
        self.streams.tracker().spawn(async move {
            let pumped = crate::relay::pump(first, upstream, relay, &frames, &end_now, idle).await;
            let (input, output) = pumped.relay.usage();
            let finish = pumped.relay.finish_reasons();
            span.in_scope(|| {
                crate::traces::record_usage(Some(input), Some(output), finish.as_deref());
            });
            drop(span);
            let credits = price.map_or(0, |p| usage::inference_microcredits(&p, input, output));
            attempts.push(Attempt {
                route: route.clone(),
                outcome: pumped.end.to_string(),
            });
            draft
                .record(&core, &route, &attempts, input, output, credits)
                .await;
            for frame in pumped.held {
                if !frames.send(frame).await {
                    break;
                }
            }
        });
        Served::Stream(body)
    }
}

/// Inference credits: direct-API tokens × catalog price; the customer's own
/// cloud (Bedrock, Vertex AI) bills the customer, so it is free here.
pub(crate) fn credits(c: &Candidate, input: u64, output: u64) -> i64 {
    match c {
        Candidate::Bedrock { .. } | Candidate::Vertex { .. } | Candidate::Foundry { .. } => 0,
        Candidate::Direct { model, .. } => Catalog::builtin().get(model).map_or(0, |m| {
            usage::inference_microcredits(&m.price, input, output)
        }),
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
