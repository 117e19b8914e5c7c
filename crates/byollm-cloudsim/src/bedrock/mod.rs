//! Bedrock Runtime (REST-JSON, SigV4 signing name `bedrock`, double-encoded
//! canonical path): `Converse`, `ConverseStream`, `InvokeModel`,
//! `InvokeModelWithResponseStream` (aws-facts §5, §6).
//!
//! Checks, in order: the signature and session (`UnrecognizedClientException`,
//! `InvalidSignatureException`, `ExpiredTokenException`), throttling and injected
//! faults, the model id in the source region (`ValidationException` "The provided
//! model identifier is invalid."), the caller's identity policies for every
//! resource the model id implies (`AccessDeniedException` naming the first
//! resource refused), on-demand support (`ValidationException`), model access
//! (the `disable_model` knob), then the body.

pub mod anthropic_schema;
pub mod converse;
pub mod invoke;
pub mod models;

use std::convert::Infallible;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use byollm_policy::{Context, PolicyKind, Request, RequestPrincipal};
use bytes::Bytes;
use futures::StreamExt as _;

use crate::Inner;
use crate::auth::Caller;
use crate::error::AwsError;
use crate::eventstream;
use crate::faults::FailRule;
use crate::util::{iso8601, uuid};

/// The four operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `POST /model/{id}/converse`.
    Converse,
    /// `POST /model/{id}/converse-stream`.
    ConverseStream,
    /// `POST /model/{id}/invoke`.
    InvokeModel,
    /// `POST /model/{id}/invoke-with-response-stream`.
    InvokeModelWithResponseStream,
}

impl Op {
    /// From the last path segment.
    pub fn from_suffix(s: &str) -> Option<Op> {
        Some(match s {
            "converse" => Op::Converse,
            "converse-stream" => Op::ConverseStream,
            "invoke" => Op::InvokeModel,
            "invoke-with-response-stream" => Op::InvokeModelWithResponseStream,
            _ => return None,
        })
    }

    /// `bedrock:<Op>`, the counter and fault scope name.
    pub fn name(self) -> &'static str {
        match self {
            Op::Converse => "bedrock:Converse",
            Op::ConverseStream => "bedrock:ConverseStream",
            Op::InvokeModel => "bedrock:InvokeModel",
            Op::InvokeModelWithResponseStream => "bedrock:InvokeModelWithResponseStream",
        }
    }

    /// The IAM action (Converse needs InvokeModel, ConverseStream the streaming one).
    pub fn action(self) -> &'static str {
        match self {
            Op::Converse | Op::InvokeModel => "bedrock:InvokeModel",
            Op::ConverseStream | Op::InvokeModelWithResponseStream => {
                "bedrock:InvokeModelWithResponseStream"
            }
        }
    }

    /// Whether the answer is an event stream.
    pub fn streaming(self) -> bool {
        matches!(self, Op::ConverseStream | Op::InvokeModelWithResponseStream)
    }
}

/// Status and default message of a Bedrock error code (aws-facts §5.7).
pub fn error_for_code(code: &str, message: Option<&str>) -> AwsError {
    let (status, default) = match code {
        "ThrottlingException" => (429, "Too many requests, please wait before trying again."),
        "ServiceUnavailableException" => (503, "Bedrock is unable to process your request."),
        "InternalServerException" => (
            500,
            "The server encountered an internal error while processing the request.",
        ),
        "ModelTimeoutException" => (408, "Model has timed out in processing the request."),
        "ModelNotReadyException" => (429, "Model is not ready to serve inference requests."),
        "AccessDeniedException" => (
            403,
            "You don't have access to the model with the specified model ID.",
        ),
        "ValidationException" => (400, "The provided model identifier is invalid."),
        "ModelStreamErrorException" | "ModelErrorException" => {
            (424, "The model returned an error.")
        }
        "ServiceQuotaExceededException" => (400, "You have exceeded your service quota."),
        "ResourceNotFoundException" => (404, "The requested resource was not found."),
        _ => (500, "Injected fault."),
    };
    AwsError::new(status, code, message.unwrap_or(default))
}

/// The rest-json error: `x-amzn-ErrorType: Name:namespace` and `{"message"}`.
pub fn json_error(e: &AwsError) -> Response {
    let ns = match e.code.as_str() {
        "UnrecognizedClientException"
        | "InvalidSignatureException"
        | "IncompleteSignatureException"
        | "MissingAuthenticationTokenException"
        | "ExpiredTokenException"
        | "UnknownOperationException" => {
            "http://internal.amazon.com/coral/com.amazon.coral.service/"
        }
        _ => "http://internal.amazon.com/coral/com.amazon.bedrock/",
    };
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = serde_json::json!({ "message": e.message }).to_string();
    let mut resp = (status, body).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("{}:{ns}", e.code)) {
        h.insert("x-amzn-errortype", v);
    }
    if let Ok(v) = HeaderValue::from_str(&uuid()) {
        h.insert("x-amzn-requestid", v);
    }
    resp
}

/// The lowerCamel union member for an exception inside a stream, when the
/// operation models it.
fn stream_member(op: Op, code: &str) -> Option<String> {
    let allowed: &[&str] = match op {
        Op::ConverseStream => &[
            "InternalServerException",
            "ModelStreamErrorException",
            "ValidationException",
            "ThrottlingException",
            "ServiceUnavailableException",
        ],
        _ => &[
            "InternalServerException",
            "ModelStreamErrorException",
            "ValidationException",
            "ThrottlingException",
            "ModelTimeoutException",
            "ServiceUnavailableException",
        ],
    };
    let code = allowed.iter().find(|c| c.eq_ignore_ascii_case(code))?;
    let mut s = code.to_owned().to_owned();
    if let Some(first) = s.get_mut(0..1) {
        first.make_ascii_lowercase();
    }
    Some(s)
}

/// Frames as a streaming 200 response, cut by `failure` after its event count,
/// with `delay` before each frame.
pub fn stream_response(
    op: Op,
    mut frames: Vec<Vec<u8>>,
    failure: Option<FailRule>,
    delay: Duration,
    extra_headers: &[(&'static str, &'static str)],
) -> Response {
    if let Some(rule) = failure {
        let n = usize::try_from(rule.after_events.unwrap_or(0)).unwrap_or(usize::MAX);
        frames.truncate(n);
        let err = error_for_code(&rule.error, rule.message.as_deref());
        frames.push(match stream_member(op, &rule.error) {
            Some(member) => eventstream::exception(&member, &err.message),
            None => eventstream::encode(
                &[
                    (":message-type", "error"),
                    (":error-code", &rule.error),
                    (":error-message", &err.message),
                ],
                b"",
            ),
        });
    }
    let body = if delay.is_zero() {
        Body::from(frames.concat())
    } else {
        Body::from_stream(futures::stream::iter(frames).then(move |f| async move {
            tokio::time::sleep(delay).await;
            Ok::<_, Infallible>(Bytes::from(f))
        }))
    };
    let mut resp = (StatusCode::OK, body).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/vnd.amazon.eventstream"),
    );
    for (k, v) in extra_headers {
        h.insert(*k, HeaderValue::from_static(v));
    }
    if let Ok(v) = HeaderValue::from_str(&uuid()) {
        h.insert("x-amzn-requestid", v);
    }
    resp
}

impl Inner {
    /// Serves one authenticated Bedrock call.
    pub(crate) fn bedrock(
        &self,
        op: Op,
        model_id: &str,
        region: &str,
        caller: &Caller,
        headers: &axum::http::HeaderMap,
        body: &[u8],
    ) -> Result<Response, AwsError> {
        if !self.cfg.regions.iter().any(|r| r == region) {
            return Err(models::invalid_id());
        }
        let resolved = models::resolve(model_id, region, &self.account.id)?;
        self.authorize_bedrock(op, caller, region, &resolved)?;
        if resolved.profile_arn.is_none() && !models::on_demand(resolved.bedrock) {
            return Err(AwsError::new(
                400,
                "ValidationException",
                format!(
                    "Invocation of model ID {} with on-demand throughput isn't supported. Retry your request with the ID or ARN of an inference profile that contains this model.",
                    resolved.bedrock.base_model_id
                ),
            ));
        }
        if self
            .faults
            .model_disabled(region, &resolved.bedrock.base_model_id)
        {
            return Err(AwsError::new(
                403,
                "AccessDeniedException",
                "You don't have access to the model with the specified model ID.",
            ));
        }
        let failure = if op.streaming() {
            self.faults.take_failure(op.name(), true)
        } else {
            None
        };
        let delay = self.faults.stream_event_delay();
        let max_output = models::max_output_tokens(resolved.bedrock);
        match op {
            Op::Converse => converse::converse(body, max_output),
            Op::ConverseStream => converse::converse_stream(body, max_output, failure, delay),
            Op::InvokeModel => invoke::invoke(&resolved, headers, body),
            Op::InvokeModelWithResponseStream => {
                invoke::invoke_stream(&resolved, headers, body, failure, delay)
            }
        }
    }

    fn authorize_bedrock(
        &self,
        op: Op,
        caller: &Caller,
        region: &str,
        resolved: &models::Resolved,
    ) -> Result<(), AwsError> {
        let Caller::Session(session) = caller else {
            // The admin credentials act as the account's administrator.
            return Ok(());
        };
        let Some(role) = self.account.role(&session.role_name) else {
            return Err(AwsError::new(
                403,
                "AccessDeniedException",
                format!(
                    "User: {} is not authorized to perform: {} because the role no longer exists",
                    session.assumed_role_arn,
                    op.action()
                ),
            ));
        };
        let policies: Vec<(&byollm_policy::Policy, PolicyKind)> = role
            .policies
            .values()
            .map(|p| (p.policy.as_ref(), PolicyKind::Identity))
            .collect();
        let now = self.clock.now();
        let mut base = Context::new();
        base.insert("aws:PrincipalArn", role.arn.clone());
        base.insert("aws:PrincipalAccount", self.account.id.clone());
        base.insert("aws:PrincipalType", "AssumedRole");
        base.insert("aws:userid", session.assumed_role_id.clone());
        base.insert("aws:FederatedProvider", session.provider_arn.clone());
        base.insert("aws:CurrentTime", iso8601(now));
        base.insert("aws:EpochTime", now.to_string());
        base.insert("aws:SecureTransport", "true");
        for (k, v) in &session.tags {
            base.insert(&format!("aws:PrincipalTag/{k}"), v.clone());
        }
        if let Some(si) = &session.source_identity {
            base.insert("aws:SourceIdentity", si.clone());
        }
        if let Some(p) = &resolved.profile_arn {
            base.insert("bedrock:InferenceProfileArn", p.clone());
        }
        for check in resolved.checks(region) {
            let mut ctx = base.clone();
            ctx.insert("aws:RequestedRegion", check.requested_region.clone());
            let req = Request {
                principal: Some(RequestPrincipal::infer(&session.assumed_role_arn)),
                action: op.action().to_owned(),
                resource: check.resource.clone(),
                context: ctx,
            };
            let d = byollm_policy::evaluate(&policies, &req);
            if !d.is_allowed() {
                let why = if d.decision == byollm_policy::DecisionKind::ExplicitDeny {
                    "with an explicit deny in an identity-based policy".to_owned()
                } else {
                    format!(
                        "because no identity-based policy allows the {} action",
                        op.action()
                    )
                };
                return Err(AwsError::new(
                    403,
                    "AccessDeniedException",
                    format!(
                        "User: {} is not authorized to perform: {} on resource: {} {why}",
                        session.assumed_role_arn,
                        op.action(),
                        check.resource
                    ),
                ));
            }
        }
        Ok(())
    }
}
