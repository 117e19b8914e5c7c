//! `POST /v1/messages` (Anthropic Messages): to Claude on Bedrock through
//! `InvokeModel` / `InvokeModelWithResponseStream`, on Vertex AI through
//! `rawPredict` / `streamRawPredict`, on Azure AI Foundry through its
//! Anthropic Messages endpoint, with the body passed through (tools,
//! thinking and caching unchanged), or to the Anthropic API.

use std::sync::Arc;

use axum::body::Body;
use axum::http::HeaderMap;
use axum::response::Response;
use bytes::Bytes;
use serde_json::Value;

use byollm_core::auth::Principal;
use byollm_core::broker::CloudCredentials;

use crate::attempt::{Call, Served};
use crate::body::Patched;
use crate::direct::{first_chunk, whole_body};
use crate::error::{ApiFormat, GatewayError};
use crate::gateway::{Gateway, parse_body};
use crate::outcome::{FailReason, Failure};
use crate::plan::Candidate;
use crate::relay::{AnthropicFromBedrock, AnthropicPassthrough, anthropic_usage};
use crate::traces::record_usage;

/// The `anthropic_version` Bedrock requires in the body (aws-facts §5.5).
pub const BEDROCK_ANTHROPIC_VERSION: &str = "bedrock-2023-05-31";

impl Gateway {
    /// Handles Claude in Vertex AI's shape (`…/models/MODEL:rawPredict` or
    /// `:streamRawPredict`, [`byollm_api::routes::VERTEX_RAW_PREDICT`]) for
    /// Anthropic's `AnthropicVertex` client: the body is an Anthropic
    /// Messages body with `anthropic_version` and without `model`; it is
    /// routed as `POST /v1/messages` with the model from the URL (a catalog
    /// id, or the Vertex publisher model id of one).
    pub async fn vertex_raw_predict(
        self: &Arc<Self>,
        p: Principal,
        headers: &HeaderMap,
        model_verb: &str,
        body: Body,
    ) -> Response {
        let format = ApiFormat::Anthropic;
        let stream = match model_verb.rsplit_once(':') {
            Some((_, "rawPredict")) => false,
            Some((_, "streamRawPredict")) => true,
            _ => {
                return GatewayError::invalid(format!(
                    "`{model_verb}`: expected MODEL:rawPredict or MODEL:streamRawPredict"
                ))
                .into_response(format);
            }
        };
        let model = model_verb.rsplit_once(':').map_or(model_verb, |(m, _)| m);
        let catalog = byollm_api::catalog::Catalog::builtin();
        let model = catalog
            .models
            .iter()
            .find(|m| m.id == model || m.vertex.as_ref().is_some_and(|v| v.model_id == model))
            .map_or_else(|| model.to_owned(), |m| m.id.clone());
        let bytes = match self.read_body(body, format).await {
            Ok(b) => b,
            Err(e) => return e,
        };
        let Ok(Value::Object(mut req)) = serde_json::from_slice::<Value>(&bytes) else {
            return GatewayError::invalid("the body must be a JSON object").into_response(format);
        };
        if req.contains_key("model") {
            return GatewayError::invalid(
                "model: Extra inputs are not permitted (on Vertex AI the model is in the URL)",
            )
            .into_response(format);
        }
        // Vertex's version field; the gateway sets its own per upstream.
        req.remove("anthropic_version");
        req.insert("model".into(), Value::String(model));
        req.insert("stream".into(), Value::Bool(stream));
        let body = Body::from(Value::Object(req).to_string());
        self.messages(p, headers, body).await
    }

    /// Handles `POST /v1/messages`.
    pub async fn messages(
        self: &Arc<Self>,
        p: Principal,
        headers: &HeaderMap,
        body: Body,
    ) -> Response {
        let format = ApiFormat::Anthropic;
        let body = match self.read_body(body, format).await {
            Ok(b) => b,
            Err(e) => return e,
        };
        byollm_telemetry::phase("gw.body_read");
        let (mut req, model, stream) = match parse_body(&body) {
            Ok(v) => v,
            Err(e) => return e.into_response(format),
        };
        if !req.get("max_tokens").is_some_and(Value::is_u64) {
            return GatewayError::invalid("max_tokens: required, a positive integer")
                .into_response(format);
        }
        byollm_telemetry::phase("gw.parsed");
        let ctx = match self.context(p, headers).await {
            Ok(c) => c,
            Err(e) => return e.into_response(format),
        };
        byollm_telemetry::phase("gw.context");
        let model = if model == "auto" {
            match crate::plan::resolve_auto(
                byollm_api::catalog::Catalog::builtin(),
                &self.plan_input(&ctx, format),
            ) {
                Ok(m) => m,
                Err(e) => return e.into_response(format),
            }
        } else {
            model
        };
        req.remove("stream");
        let version = headers
            .get("anthropic-version")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let beta = headers
            .get("anthropic-beta")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let req = Arc::new(req);
        let this = self.clone();
        self.run_plan(&ctx, format, &model, move |call| {
            let (this, req, version, beta) =
                (this.clone(), req.clone(), version.clone(), beta.clone());
            async move {
                this.try_messages(call, &req, stream, version.as_deref(), beta.as_deref())
                    .await
            }
        })
        .await
    }

    /// One attempt of `POST /v1/messages` on `call`'s route.
    async fn try_messages(
        &self,
        call: Call,
        req: &serde_json::Map<String, Value>,
        stream: bool,
        version: Option<&str>,
        beta: Option<&str>,
    ) -> Result<Served, Failure> {
        match &call.candidate {
            Candidate::Bedrock {
                model_ref, target, ..
            } => {
                let creds = call.creds.as_ref().ok_or(FailReason::NoCredentials)?;
                // Bedrock takes the model in the path and refuses keys its
                // Anthropic body does not define (aws-facts §5.5): `metadata`
                // (a caller tag for Anthropic's own API) is dropped, not sent.
                let mut set = vec![(
                    "anthropic_version",
                    Value::String(BEDROCK_ANTHROPIC_VERSION.into()),
                )];
                if let Some(beta) = beta
                    && !req.contains_key("anthropic_beta")
                {
                    let list: Vec<Value> = beta
                        .split(',')
                        .map(|b| Value::String(b.trim().to_owned()))
                        .collect();
                    set.push(("anthropic_beta", Value::Array(list)));
                }
                let bytes = Patched {
                    base: req,
                    drop: &["model", "metadata"],
                    set: &set,
                }
                .to_vec()
                .map_err(|e| FailReason::Encode(e.to_string()))?;
                if !stream {
                    let out = self
                        .bedrock
                        .invoke(&target.region, creds, model_ref, bytes)
                        .await?;
                    let v: Value = serde_json::from_slice(&out.body).unwrap_or(Value::Null);
                    let (i, o) = anthropic_usage(&v);
                    record_usage(i, o, v["stop_reason"].as_str());
                    return Ok(Served::Whole {
                        body: Bytes::from(out.body),
                        input: i.unwrap_or(0),
                        output: o.unwrap_or(0),
                    });
                }
                let (first, rest) = self
                    .bedrock
                    .invoke_stream(&target.region, creds, model_ref, bytes)
                    .await?;
                Ok(self.spawn_stream(first, rest, AnthropicFromBedrock::default(), call))
            }
            Candidate::Vertex {
                model_ref,
                target,
                family,
                ..
            } => {
                // The plan sends Messages bodies to Claude only; a Gemini
                // route here would be a planning bug, refused as the caller's.
                if *family != byollm_api::catalog::Family::Anthropic {
                    return Err(Failure::Client {
                        status: 400,
                        message: "this model does not speak the Anthropic Messages API; use POST /v1/chat/completions".into(),
                    });
                }
                let token = call.token.as_ref().ok_or(FailReason::NoCredentials)?;
                let CloudCredentials::Gcp(access) = token.credentials() else {
                    return Err(FailReason::NoCredentials.into());
                };
                let mut resp = self
                    .vertex
                    .raw_predict(target, model_ref, &access.token, req.clone(), stream, beta)
                    .await?;
                if !stream {
                    let (body, v) = whole_body(resp).await?;
                    let (i, o) = anthropic_usage(&v);
                    record_usage(i, o, v["stop_reason"].as_str());
                    return Ok(Served::Whole {
                        body,
                        input: i.unwrap_or(0),
                        output: o.unwrap_or(0),
                    });
                }
                let first = crate::vertex::first_chunk(&mut resp).await?;
                Ok(self.spawn_stream(first, resp, AnthropicPassthrough::default(), call))
            }
            Candidate::Foundry {
                deployment,
                target,
                family,
                ..
            } => {
                // The plan sends Messages bodies to Claude only; a GPT route
                // here would be a planning bug, refused as the caller's.
                if *family != byollm_api::catalog::Family::Anthropic {
                    return Err(Failure::Client {
                        status: 400,
                        message: "this model does not speak the Anthropic Messages API; use POST /v1/chat/completions".into(),
                    });
                }
                let token = call.token.as_ref().ok_or(FailReason::NoCredentials)?;
                let CloudCredentials::Azure(access) = token.credentials() else {
                    return Err(FailReason::NoCredentials.into());
                };
                let mut resp = self
                    .foundry
                    .messages(
                        target,
                        deployment,
                        &access.token,
                        req.clone(),
                        stream,
                        version,
                        beta,
                    )
                    .await?;
                if !stream {
                    let (body, v) = whole_body(resp).await?;
                    let (i, o) = anthropic_usage(&v);
                    record_usage(i, o, v["stop_reason"].as_str());
                    return Ok(Served::Whole {
                        body,
                        input: i.unwrap_or(0),
                        output: o.unwrap_or(0),
                    });
                }
                let first = crate::vertex::first_chunk(&mut resp).await?;
                Ok(self.spawn_stream(first, resp, AnthropicPassthrough::default(), call))
            }
            Candidate::Direct {
                direct_id, family, ..
            } => {
                let model = ("model", Value::String(direct_id.clone()));
                let set = if stream {
                    vec![model, ("stream", Value::Bool(true))]
                } else {
                    vec![model]
                };
                let bytes = Patched {
                    base: req,
                    drop: &[],
                    set: &set,
                }
                .to_vec()
                .map_err(|e| FailReason::Encode(e.to_string()))?;
                byollm_telemetry::phase("gw.body_built");
                let mut resp = self
                    .direct
                    .send(*family, ApiFormat::Anthropic, bytes, version, beta)
                    .await?;
                byollm_telemetry::phase("gw.upstream_head");
                if !stream {
                    let (body, v) = whole_body(resp).await?;
                    byollm_telemetry::phase("gw.upstream_body");
                    let (i, o) = anthropic_usage(&v);
                    record_usage(i, o, v["stop_reason"].as_str());
                    return Ok(Served::Whole {
                        body,
                        input: i.unwrap_or(0),
                        output: o.unwrap_or(0),
                    });
                }
                let first = first_chunk(&mut resp).await?;
                Ok(self.spawn_stream(first, resp, AnthropicPassthrough::default(), call))
            }
        }
    }
}
