//! The attempt loop (DESIGN §5 rules 2–4): walk the plan's candidates in order,
//! turn each into an [`AttemptOutcome`], and let [`Walk::after`] decide from it
//! whether to try the next candidate, commit, or stop.
//!
//! - A candidate is skipped, not tried, when a rule says so ([`Walk::skip`]): a
//!   geographic profile unless its global profile was just refused with access
//!   denied; a route out of the cloud after an in-cloud failure unless the team
//!   allows it.
//! - A role that could not be assumed (a pool provider whose token exchange
//!   failed) is not asked again in the same request.
//! - Brokered credentials refused by Bedrock (a token refused by Vertex AI)
//!   are renewed once, on the same route.
//! - The first answer (for a stream, its first chunk) commits; a client error
//!   stops (it would fail everywhere); anything else tries the next candidate.
//! - Each call has `[gateway] first_byte_timeout_ms` to start answering; one
//!   that does not has failed (`timed out: …`) like any other upstream failure.
//!   When every route tried timed out, the request ends with 504, else 502.
//!
//! Every attempt that is listed is listed once, in order, with the words from
//! [`crate::outcome`].

use std::future::Future;

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use bytes::Bytes;

use byollm_api::catalog::{Catalog, Family};
use byollm_telemetry::Stopwatch;
use tracing::Instrument as _;

use crate::bedrock::CallCredentials;
use crate::caller::Ctx;
use crate::error::{ApiFormat, Attempt, GatewayError, fallback_header};
use crate::gateway::{Gateway, HDR_REQUEST_ID, UsageDraft, credits};
use crate::limits::first_byte_within;
use crate::outcome::{AttemptOutcome, FailReason, Failure, RoleRefused, SkipReason};
use crate::plan::{self, Candidate};
use crate::traces::{gen_ai_system, upstream_model};

/// The `route` of a usage row when nothing served.
pub(crate) const NO_ROUTE: &str = "none";

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

/// One upstream call, as a provider (`try_messages`, `try_chat`) receives it.
pub(crate) struct Call {
    pub candidate: Candidate,
    /// Present for Bedrock candidates, absent otherwise.
    pub creds: Option<CallCredentials>,
    /// Present for Vertex AI and Azure AI Foundry candidates: the brokered
    /// access token.
    pub token: Option<std::sync::Arc<byollm_core::broker::Brokered>>,
    /// The usage row a stream records when it ends.
    pub draft: UsageDraft,
    /// The attempts before this one, for that usage row.
    pub attempts: Vec<Attempt>,
}

/// What the walk through the plan has learnt so far in one request.
#[derive(Default)]
struct Walk {
    /// Listed attempts, in order.
    attempts: Vec<Attempt>,
    /// A candidate inside the customer's cloud failed: routes out of it now
    /// need `allow_fallback_outside_cloud`.
    cloud_failed: bool,
    /// The model whose global profile was just refused with access denied;
    /// only its geographic profile may run next.
    global_denied: Option<String>,
    /// Candidates whose credentials could not be had in this request (a role
    /// not assumed, a token not exchanged), and why: a later candidate with
    /// the same credentials is not tried for them again.
    refused_roles: Vec<(Candidate, RoleRefused)>,
    /// A Vertex AI candidate failed (the final hint names Google's side).
    vertex_failed: bool,
    /// The family of the Azure AI Foundry candidate that failed last (the
    /// final hint names Azure's side and the role that family needs).
    azure_failed: Option<Family>,
    /// Tried candidates that failed, and how many of them timed out: when
    /// every failure was a timeout the request ends with 504, not 502.
    failures: usize,
    timeouts: usize,
    /// Failures that may pass later (throttling, outages, STS unreachable).
    transient: usize,
    /// Permanent failures that are permission refusals (role, grant, key).
    permission: usize,
}

/// What to do after an attempt.
enum Step {
    /// Try the next candidate.
    TryNext,
    /// Answer with this.
    Commit(Served),
    /// Stop with this error (its attempts included).
    Stop(GatewayError),
}

impl Walk {
    /// Why `c` is passed over without a call, if it is.
    fn skip(&self, c: &Candidate, allow_outside_cloud: bool) -> Option<SkipReason> {
        match c {
            Candidate::Bedrock {
                geo_fallback: true,
                model,
                ..
            } if self.global_denied.as_deref() != Some(model) => Some(SkipReason::GlobalNotDenied),
            _ if c.leaves_cloud() && self.cloud_failed && !allow_outside_cloud => {
                Some(SkipReason::StayInCloud)
            }
            _ => None,
        }
    }

    /// Why `c`'s credentials could not be had earlier in this request.
    fn refused_role(&self, c: &Candidate) -> Option<&RoleRefused> {
        self.refused_roles
            .iter()
            .find(|(t, _)| same_credentials(t, c))
            .map(|(_, refused)| refused)
    }

    /// Lists the attempt, learns from it, and says what comes next.
    fn after(&mut self, c: &Candidate, outcome: AttemptOutcome) -> Step {
        if let Some(text) = outcome.listed() {
            self.attempts.push(Attempt {
                route: c.route(),
                outcome: text,
            });
        }
        match outcome {
            AttemptOutcome::Skipped(_) => Step::TryNext,
            AttemptOutcome::Served(served) => Step::Commit(served),
            AttemptOutcome::ClientError { status, message } => {
                let attempts = std::mem::take(&mut self.attempts);
                Step::Stop(GatewayError::upstream_rejected(status, message, attempts))
            }
            AttemptOutcome::RoleRefused(refused) => {
                self.failures += 1;
                if refused.is_transient() {
                    self.transient += 1;
                } else {
                    self.permission += 1;
                }
                if self.refused_role(c).is_none() {
                    self.refused_roles.push((c.clone(), refused));
                }
                self.failed(c, false);
                Step::TryNext
            }
            AttemptOutcome::Failed(reason) => {
                self.failures += 1;
                if matches!(reason, FailReason::TimedOut(_)) {
                    self.timeouts += 1;
                }
                if reason.is_transient() {
                    self.transient += 1;
                } else if reason.is_permission() {
                    self.permission += 1;
                }
                self.failed(c, matches!(reason, FailReason::AccessDenied(_)));
                Step::TryNext
            }
        }
    }

    /// Learns from a tried candidate that failed (its attempt already listed).
    fn failed(&mut self, c: &Candidate, access_denied: bool) {
        // Only the geographic profile right after a refused global one may run.
        self.global_denied = match c {
            Candidate::Bedrock {
                geo_fallback: false,
                model,
                ..
            } if access_denied => Some(model.clone()),
            _ => None,
        };
        if !c.leaves_cloud() {
            self.cloud_failed = true;
        }
        match c {
            Candidate::Vertex { .. } => self.vertex_failed = true,
            Candidate::Foundry { family, .. } => self.azure_failed = Some(*family),
            _ => {}
        }
        if let Some(a) = self.attempts.last() {
            tracing::info!(route = %a.route, cause = %a.outcome, "attempt failed; trying the next route");
        }
    }

    /// The error when no candidate served, every attempt listed. SDKs retry
    /// 5xx answers, so the status says whether retrying can help: 504 when every
    /// route tried timed out, 503 when any failure may pass (both with
    /// `Retry-After`); when every failure is permanent, 403 if one was a
    /// permission refusal (the role, a grant, a key), else 422 (no route can
    /// serve this model as configured). 502 only when nothing was tried.
    fn exhausted(self, model: &str, allow_outside_cloud: bool) -> GatewayError {
        let status = if self.failures == 0 {
            StatusCode::BAD_GATEWAY
        } else if self.timeouts == self.failures {
            StatusCode::GATEWAY_TIMEOUT
        } else if self.transient > 0 {
            StatusCode::SERVICE_UNAVAILABLE
        } else if self.permission > 0 {
            StatusCode::FORBIDDEN
        } else {
            StatusCode::UNPROCESSABLE_ENTITY
        };
        let azure_hint = self.azure_failed.map(|family| {
            let kept_in = if allow_outside_cloud {
                ""
            } else {
                "The team keeps requests inside its cloud (allow_fallback_outside_cloud is false). "
            };
            format!(
                "{kept_in}An admin can check the team's Azure side (an FIC on the identity for the tokens' subject, \
                 the role \"{}\" for the identity on the resource, the deployment) and `hosts.azure_foundry`, \
                 or enable another model or host.",
                crate::foundry::required_role(family)
            )
        });
        let hint = if let (Some(h), false) = (&azure_hint, self.vertex_failed) {
            h.as_str()
        } else if self.vertex_failed {
            "An admin can check the team's Google Cloud side (the pool provider's attribute condition, \
             the IAM bindings on the project, the model enabled in Model Garden, quota) and `hosts.gcp_vertex`, \
             or the AWS side with `byollm aws doctor`, or enable another model or host."
        } else if self.cloud_failed && !allow_outside_cloud {
            "The team keeps requests inside its cloud (allow_fallback_outside_cloud is false); an admin can fix \
             the AWS role or permissions (see `byollm aws doctor`), or allow the direct API."
        } else {
            "An admin can check the AWS role and permissions with `byollm aws doctor`, or enable another model or host."
        };
        // A model only Vertex AI serves (Gemini) has nothing to fall back to
        // outside the customer's cloud: say so rather than leave the caller
        // wondering why the direct API was not tried.
        let no_direct = Catalog::builtin()
            .get(model)
            .is_some_and(|m| m.direct_api_id.is_none() && m.bedrock.is_none());
        let message = if no_direct && self.vertex_failed {
            format!(
                "no route could serve `{model}`: Vertex AI failed and `{model}` has no direct-API route."
            )
        } else {
            format!("no route could serve `{model}`.")
        };
        GatewayError {
            status,
            code: "no_upstream_succeeded",
            message,
            hint: Some(hint.into()),
            attempts: self.attempts,
        }
    }
}

impl Gateway {
    /// Runs the plan for `model`: tries its candidates in order with `call`
    /// (the caller format's provider dispatch) and answers.
    pub(crate) async fn run_plan<F, Fut>(
        &self,
        ctx: &Ctx,
        format: ApiFormat,
        model: &str,
        call: F,
    ) -> Response
    where
        F: Fn(Call) -> Fut,
        Fut: Future<Output = Result<Served, Failure>>,
    {
        let metrics = self.core.metrics();
        let count = |host, outcome| {
            metrics.gateway_request(
                format.as_label(),
                model_label(model),
                host,
                outcome,
                &ctx.team.uid,
            );
        };
        let planned = {
            let _span = tracing::info_span!("plan", gen_ai.request.model = model).entered();
            plan::plan(Catalog::builtin(), model, &self.plan_input(ctx, format))
        };
        byollm_telemetry::phase("gw.planned");
        let candidates = match planned {
            Ok(c) => c,
            Err(e) => {
                count("none", "no_plan");
                return e.into_response(format);
            }
        };
        let draft = UsageDraft::new(ctx, model);
        let allow_outside_cloud = ctx.team.settings.allow_fallback_outside_cloud;
        let mut walk = Walk::default();
        // The host and reason of the last failed attempt, until a call on the
        // next route makes it a fallback.
        let mut failed: Option<(&'static str, &'static str)> = None;
        for c in candidates {
            let outcome = match walk.skip(&c, allow_outside_cloud) {
                Some(why) => AttemptOutcome::Skipped(why),
                None => {
                    if let Some((from, reason)) = failed.take() {
                        metrics.fallback(from, c.host(), reason);
                    }
                    let span = tracing::info_span!(
                        "attempt",
                        byollm.route = %c.route(),
                        gen_ai.system = gen_ai_system(&c),
                        gen_ai.request.model = model,
                    );
                    self.attempt(ctx, &c, &walk, &draft, &call)
                        .instrument(span)
                        .await
                }
            };
            if let Some(reason) = outcome.fallback_reason() {
                failed = Some((c.host(), reason));
            }
            match walk.after(&c, outcome) {
                Step::TryNext => {}
                Step::Commit(served) => {
                    count(c.host(), "ok");
                    return self.respond(served, &c, &walk.attempts, draft).await;
                }
                Step::Stop(e) => {
                    count(c.host(), "client_error");
                    draft
                        .record(&self.core, NO_ROUTE, &e.attempts, 0, 0, 0)
                        .await;
                    let taken = RouteTaken::new(NO_ROUTE, &e.attempts);
                    return with_request_id(e.into_response(format), &draft.id, taken);
                }
            }
        }
        let e = walk.exhausted(model, allow_outside_cloud);
        count("none", "no_route");
        draft
            .record(&self.core, NO_ROUTE, &e.attempts, 0, 0, 0)
            .await;
        let taken = RouteTaken::new(NO_ROUTE, &e.attempts);
        with_request_id(e.into_response(format), &draft.id, taken)
    }

    /// Tries one candidate that no rule skipped: the dispatch to providers.
    async fn attempt<F, Fut>(
        &self,
        ctx: &Ctx,
        c: &Candidate,
        walk: &Walk,
        draft: &UsageDraft,
        call: &F,
    ) -> AttemptOutcome
    where
        F: Fn(Call) -> Fut,
        Fut: Future<Output = Result<Served, Failure>>,
    {
        // Each upstream call gets `first_byte` to start answering; past it the
        // call is dropped (closing its connection) and the next route may serve.
        let limit = self.timeouts.first_byte;
        let call_with = |creds, token| async move {
            let watch = Stopwatch::start();
            // The inference span: GenAI attributes, usage recorded by the
            // format's dispatch (`record_usage`) when the answer is whole.
            let span = tracing::info_span!(
                "upstream",
                otel.kind = "client",
                gen_ai.operation.name = "chat",
                gen_ai.system = gen_ai_system(c),
                gen_ai.request.model = upstream_model(c),
                gen_ai.usage.input_tokens = tracing::field::Empty,
                gen_ai.usage.output_tokens = tracing::field::Empty,
                gen_ai.response.finish_reasons = tracing::field::Empty,
            );
            let result = first_byte_within(
                limit,
                call(Call {
                    candidate: c.clone(),
                    creds,
                    token,
                    draft: draft.clone(),
                    attempts: walk.attempts.clone(),
                })
                .instrument(span),
            )
            .await;
            let streamed = matches!(result, Ok(Served::Stream(_)));
            self.core
                .metrics()
                .upstream_call(c.host(), streamed, watch.seconds());
            result
        };
        match c {
            Candidate::Bedrock { target, .. } => {
                if let Some(refused) = walk.refused_role(c) {
                    return AttemptOutcome::RoleRefused(refused.clone());
                }
                let creds = match self.bedrock_credentials(ctx, target).await {
                    Ok(creds) => creds,
                    Err(refused) => return AttemptOutcome::RoleRefused(refused),
                };
                match call_with(Some(creds), None).await {
                    // Expired or unrecognised brokered credentials: new ones, one
                    // more try on the same route.
                    Err(Failure::Fallback(FailReason::CredentialsRefused(_)))
                        if ctx.caller_creds.is_none() =>
                    {
                        self.forget_bedrock_credentials(ctx, target);
                        match self.bedrock_credentials(ctx, target).await {
                            Ok(creds) => call_with(Some(creds), None).await.into(),
                            Err(refused) => AttemptOutcome::RoleRefused(refused),
                        }
                    }
                    other => other.into(),
                }
            }
            Candidate::Vertex { target, .. } => {
                if let Some(refused) = walk.refused_role(c) {
                    return AttemptOutcome::RoleRefused(refused.clone());
                }
                let token = match self.vertex_token(ctx, target).await {
                    Ok(t) => t,
                    Err(refused) => return AttemptOutcome::RoleRefused(refused),
                };
                match call_with(None, Some(token)).await {
                    // An expired or revoked token: a fresh exchange, one more try.
                    Err(Failure::Fallback(FailReason::CredentialsRefused(_))) => {
                        self.forget_vertex_token(ctx, target);
                        match self.vertex_token(ctx, target).await {
                            Ok(t) => call_with(None, Some(t)).await.into(),
                            Err(refused) => AttemptOutcome::RoleRefused(refused),
                        }
                    }
                    other => other.into(),
                }
            }
            Candidate::Foundry { target, .. } => {
                if let Some(refused) = walk.refused_role(c) {
                    return AttemptOutcome::RoleRefused(refused.clone());
                }
                let token = match self.azure_token(ctx, target).await {
                    Ok(t) => t,
                    Err(refused) => return AttemptOutcome::RoleRefused(refused),
                };
                match call_with(None, Some(token)).await {
                    // An expired or revoked token: a fresh exchange, one more try.
                    Err(Failure::Fallback(FailReason::CredentialsRefused(_))) => {
                        self.forget_azure_token(ctx, target);
                        match self.azure_token(ctx, target).await {
                            Ok(t) => call_with(None, Some(t)).await.into(),
                            Err(refused) => AttemptOutcome::RoleRefused(refused),
                        }
                    }
                    other => other.into(),
                }
            }
            Candidate::Direct { .. } => call_with(None, None).await.into(),
        }
    }

    /// The committed answer, with `x-byollm-route` (the last attempt's route),
    /// `x-byollm-fallback` and `x-byollm-request-id`; a whole body's usage row
    /// is committed here, before the response exists, a stream's when it ends.
    async fn respond(
        &self,
        served: Served,
        c: &Candidate,
        attempts: &[Attempt],
        draft: UsageDraft,
    ) -> Response {
        let route = attempts.last().map_or("", |a| a.route.as_str());
        let id = draft.id.clone();
        let mut resp = match served {
            Served::Whole {
                body,
                input,
                output,
            } => {
                let credits = credits(c, input, output);
                byollm_telemetry::phase("gw.usage_start");
                draft
                    .record(&self.core, route, attempts, input, output, credits)
                    .await;
                byollm_telemetry::phase("gw.usage_done");
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
        with_request_id(resp, &id, RouteTaken::new(route, attempts))
    }
}

/// Whether `a` and `b` need the same brokered credentials (one role and
/// region, one pool provider and service account).
fn same_credentials(a: &Candidate, b: &Candidate) -> bool {
    match (a, b) {
        (Candidate::Bedrock { target: x, .. }, Candidate::Bedrock { target: y, .. }) => x == y,
        (Candidate::Vertex { target: x, .. }, Candidate::Vertex { target: y, .. }) => {
            x.pool == y.pool
        }
        (Candidate::Foundry { target: x, .. }, Candidate::Foundry { target: y, .. }) => {
            x.entra == y.entra
        }
        _ => false,
    }
}

/// `model` as a metrics label: a catalog id, else `other` (callers may send
/// any string; labels stay bounded).
pub(crate) fn model_label(model: &str) -> &str {
    if Catalog::builtin().get(model).is_some() {
        model
    } else {
        "other"
    }
}

/// The route a request took and how many attempts were listed, on the
/// response's extensions for the server's access log (never sent).
#[derive(Debug, Clone)]
pub struct RouteTaken {
    /// The serving route (`x-byollm-route`), or `none`.
    pub route: String,
    /// Attempts listed (tried, or skipped with a listed reason).
    pub attempts: usize,
}

impl RouteTaken {
    fn new(route: &str, attempts: &[Attempt]) -> Self {
        RouteTaken {
            route: route.to_owned(),
            attempts: attempts.len(),
        }
    }
}

/// `resp` with the `x-byollm-request-id` header (the id of its usage row) and
/// the [`RouteTaken`] extension.
fn with_request_id(mut resp: Response, id: &str, taken: RouteTaken) -> Response {
    if let Ok(v) = HeaderValue::from_str(id) {
        resp.headers_mut().insert(HDR_REQUEST_ID, v);
    }
    resp.extensions_mut().insert(taken);
    resp
}

#[cfg(test)]
#[path = "attempt_tests.rs"]
mod tests;
