//! The one HTTP endpoint: requests are routed by path and, for the query
//! protocol (`/`), by `Action` — IAM and STS share `/` as they would share a
//! proxy — and every call is counted and passed through the fault knobs.
//!
//! | path | service |
//! |---|---|
//! | `POST /` or `GET /?Action=…` | STS (`AssumeRoleWithWebIdentity`, `GetCallerIdentity`) or IAM (the operations in [`crate::iam::OPERATIONS`]) |
//! | `POST /model/{modelId}/{converse,converse-stream,invoke,invoke-with-response-stream}` | Bedrock Runtime |
//! | `POST /anthropic/v1/messages`, `GET /anthropic/v1/models` | Anthropic direct API |
//! | `POST /openai/v1/chat/completions`, `GET /openai/v1/models` | OpenAI direct API |
//! | `POST /anthropic/v1/chat/completions` | Anthropic's OpenAI-compatible endpoint |
//! | `POST /v1/token`, `POST /v1/projects/…` | Google STS, IAM Credentials, Vertex AI (see [`crate::gcp`]) |
//! | `POST /{tenant}/oauth2/v2.0/token` | Entra's token endpoint (see [`crate::azure`]) |
//! | `POST /_azure/{resource}/anthropic/v1/messages` | Claude in Azure AI Foundry (see [`crate::azure`]) |
//! | `POST /_azure/{resource}/openai/…/chat/completions` | Azure OpenAI, v1 and classic (see [`crate::azure`]) |
//! | `/_awsim/…` | control: faults, counters, health (see [`crate::control`]); `/_awsim/gcp/…` Google's (see [`crate::gcp`]); `/_awsim/azure/…` Azure's (see [`crate::azure`]) |

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{Method, Request};
use axum::response::Response;
use byollm_api::catalog::Family;

use crate::Inner;
use crate::auth::{Caller, Dialect};
use crate::bedrock::{self, Op, json_error};
use crate::direct::{self, ANTHROPIC_COMPAT_OP, ANTHROPIC_OP, OPENAI_OP};
use crate::error::AwsError;
use crate::iam;
use crate::query::{IAM_NS, Params, STS_NS, error};
use crate::sigv4::Signed;
use crate::util::{parse_form, percent_decode};

/// Largest body read (Bedrock's InvokeModel takes up to 25,000,000 bytes).
pub const MAX_BODY: usize = 26 * 1024 * 1024;

/// What a gate refused with.
enum Refusal {
    Throttled,
    Fault(crate::faults::FailRule),
}

impl Inner {
    /// Counts the call, then applies throttling, injected failures (those that
    /// fail before any byte) and added latency.
    async fn gate(&self, op: &str) -> Result<(), Refusal> {
        if !self.faults.admit(op) {
            return Err(Refusal::Throttled);
        }
        if let Some(rule) = self.faults.take_failure(op, false) {
            return Err(Refusal::Fault(rule));
        }
        let latency = self.faults.latency(op);
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        Ok(())
    }
}

fn query_refusal(r: Refusal) -> AwsError {
    match r {
        Refusal::Throttled => AwsError::new(400, "Throttling", "Rate exceeded"),
        Refusal::Fault(rule) => {
            let status = match rule.error.as_str() {
                "IDPRejectedClaim" | "AccessDenied" | "RegionDisabledException" => 403,
                "ServiceUnavailable" => 503,
                "InternalFailure" | "ServiceFailure" => 500,
                _ => 400,
            };
            let msg = rule.message.unwrap_or_else(|| match rule.error.as_str() {
                "Throttling" => "Rate exceeded".to_owned(),
                "IDPCommunicationError" => {
                    "The identity provider could not be reached. Try again.".to_owned()
                }
                _ => "Injected fault".to_owned(),
            });
            AwsError::new(status, &rule.error, msg)
        }
    }
}

/// Routes one request.
pub(crate) async fn dispatch(State(inner): State<Arc<Inner>>, req: Request<Body>) -> Response {
    let (parts, body) = req.into_parts();
    let Ok(body) = axum::body::to_bytes(body, MAX_BODY).await else {
        return json_error(&AwsError::new(
            413,
            "ValidationException",
            "The request body is too large.",
        ));
    };
    let path = parts.uri.path().to_owned();
    let query = parts.uri.query().unwrap_or("").to_owned();
    let signed = Signed {
        method: parts.method.as_str(),
        raw_path: &path,
        raw_query: &query,
        headers: &parts.headers,
        body: &body,
    };
    if let Some(what) = path.strip_prefix("/_awsim/gcp/")
        && parts.method == Method::POST
    {
        return crate::gcp::control(&inner.gcp, what, &body);
    }
    if let Some(what) = path.strip_prefix("/_awsim/azure/")
        && parts.method == Method::POST
    {
        return crate::azure::control(&inner.azure, what, &body, inner.clock.now());
    }
    if let Some(rest) = path.strip_prefix("/_awsim/") {
        return inner.control(&parts.method, rest, &body);
    }
    if path.starts_with("/v1/")
        && let Some(resp) = crate::gcp::resources::dispatch(
            &inner.gcp,
            &parts.method,
            &path,
            &query,
            &parts.headers,
            &body,
        )
    {
        return resp;
    }
    if path.starts_with("/v1/")
        && let Some(resp) =
            crate::gcp::dispatch(&inner, &parts.method, &path, &query, &parts.headers, &body).await
    {
        return resp;
    }
    if (path.ends_with("/oauth2/v2.0/token") || path.starts_with("/_azure/"))
        && let Some(resp) =
            crate::azure::dispatch(&inner, &parts.method, &path, &query, &parts.headers, &body)
                .await
    {
        return resp;
    }
    if let Some(rest) = path.strip_prefix("/model/")
        && parts.method == Method::POST
    {
        let Some((raw_id, suffix)) = rest.rsplit_once('/') else {
            return json_error(&unknown_op());
        };
        let Some(op) = Op::from_suffix(suffix) else {
            return json_error(&unknown_op());
        };
        inner.faults.count(op.name());
        let (caller, info) = match inner.authenticate(signed, "bedrock", |r| !r.is_empty()) {
            Ok(ok) => ok,
            Err(f) => return json_error(&f.to_error(Dialect::Json)),
        };
        if let Err(r) = inner.gate(op.name()).await {
            let e = match r {
                Refusal::Throttled => bedrock::error_for_code("ThrottlingException", None),
                Refusal::Fault(rule) => {
                    bedrock::error_for_code(&rule.error, rule.message.as_deref())
                }
            };
            return json_error(&e);
        }
        let model_id = percent_decode(raw_id, false);
        return match inner.bedrock(op, &model_id, &info.region, &caller, &parts.headers, &body) {
            Ok(resp) => resp,
            Err(e) => json_error(&e),
        };
    }
    match (parts.method.clone(), path.as_str()) {
        (Method::POST, "/anthropic/v1/messages") => {
            // Phase marks for the gateway benchmark (`byollm_telemetry::phase`).
            tracing::trace!(target: "byollm::phase", phase = "sim.in");
            inner.faults.count(ANTHROPIC_OP);
            if let Err(r) = inner.gate_direct(ANTHROPIC_OP).await {
                return r;
            }
            let resp = inner.anthropic_messages(&parts.headers, &body);
            tracing::trace!(target: "byollm::phase", phase = "sim.out");
            resp
        }
        (Method::POST, "/openai/v1/chat/completions") => {
            inner.faults.count(OPENAI_OP);
            if let Err(r) = inner.gate_direct(OPENAI_OP).await {
                return r;
            }
            inner.openai_chat(&parts.headers, &body, Family::Openai)
        }
        (Method::POST, "/anthropic/v1/chat/completions") => {
            inner.faults.count(ANTHROPIC_COMPAT_OP);
            if let Err(r) = inner.gate_direct(ANTHROPIC_COMPAT_OP).await {
                return r;
            }
            inner.openai_chat(&parts.headers, &body, Family::Anthropic)
        }
        (Method::GET, "/anthropic/v1/models") => inner.direct_models(Family::Anthropic),
        (Method::GET, "/openai/v1/models") => inner.direct_models(Family::Openai),
        (Method::POST | Method::GET, "/") => {
            let mut params = parse_form(&query);
            if parts.method == Method::POST {
                params.extend(parse_form(&String::from_utf8_lossy(&body)));
            }
            inner.query(signed, Params(params)).await
        }
        _ => json_error(&unknown_op()),
    }
}

fn unknown_op() -> AwsError {
    AwsError::new(404, "UnknownOperationException", "")
}

impl Inner {
    /// Throttling and latency for the direct APIs (their handlers take
    /// injected failures themselves, to answer in the vendor's shape).
    async fn gate_direct(&self, op: &str) -> Result<(), Response> {
        if !self.faults.admit(op) {
            return Err(if op == ANTHROPIC_OP {
                direct::anthropic_error(
                    429,
                    "rate_limit_error",
                    "Number of requests has exceeded your rate limit",
                )
            } else {
                direct::openai_error(
                    429,
                    "requests",
                    Some("rate_limit_exceeded"),
                    "Rate limit reached for requests",
                )
            });
        }
        let latency = self.faults.latency(op);
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        Ok(())
    }

    async fn query(&self, signed: Signed<'_>, p: Params) -> Response {
        let Some(action) = p.get("Action").map(str::to_owned) else {
            return error(
                STS_NS,
                &AwsError::new(400, "MissingAction", "Missing Action"),
            );
        };
        match action.as_str() {
            "AssumeRoleWithWebIdentity" => {
                let op = "sts:AssumeRoleWithWebIdentity";
                self.faults.count(op);
                // Unsigned by design (noAuth): a signature, if any, is ignored.
                if let Err(r) = self.gate(op).await {
                    return self.sts_error(&query_refusal(r));
                }
                self.assume_role_with_web_identity(&p).await
            }
            "GetCallerIdentity" => {
                let op = "sts:GetCallerIdentity";
                self.faults.count(op);
                let regions_ok =
                    |r: &str| r == "us-east-1" || self.cfg.regions.iter().any(|x| x == r);
                let caller = match self.authenticate(signed, "sts", regions_ok) {
                    Ok((c, _)) => c,
                    Err(f) => return error(STS_NS, &f.to_error(Dialect::Query)),
                };
                if let Err(r) = self.gate(op).await {
                    return self.sts_error(&query_refusal(r));
                }
                self.get_caller_identity(&caller)
            }
            a if iam::OPERATIONS.contains(&a) => {
                let op = format!("iam:{a}");
                self.faults.count(&op);
                let caller = match self.authenticate(signed, "iam", |r| r == "us-east-1") {
                    Ok((c, _)) => c,
                    Err(f) => return error(IAM_NS, &f.to_error(Dialect::Query)),
                };
                if let Caller::Session(s) = caller {
                    return error(
                        IAM_NS,
                        &AwsError::new(
                            403,
                            "AccessDenied",
                            format!(
                                "User: {} is not authorized to perform: iam:{a} (byollm-cloudsim grants IAM to the admin credentials only)",
                                s.assumed_role_arn
                            ),
                        ),
                    );
                }
                if let Err(r) = self.gate(&op).await {
                    return error(IAM_NS, &query_refusal(r));
                }
                self.iam_action(a, &p)
            }
            other => {
                let ns = if signed
                    .headers
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|a| a.contains("/iam/aws4_request"))
                {
                    IAM_NS
                } else {
                    STS_NS
                };
                error(
                    ns,
                    &AwsError::new(
                        400,
                        "InvalidAction",
                        format!(
                            "Could not find operation {other} (byollm-cloudsim does not emulate it)"
                        ),
                    ),
                )
            }
        }
    }
}
