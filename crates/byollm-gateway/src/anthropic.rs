//! `POST /v1/messages` (Anthropic Messages): to Claude on Bedrock through
//! `InvokeModel` / `InvokeModelWithResponseStream` with the body passed through
//! (tools, thinking and caching unchanged), or to the Anthropic API.

use std::sync::Arc;

use axum::http::HeaderMap;
use axum::response::Response;
use bytes::Bytes;
use serde_json::Value;

use byollm_core::auth::Principal;

use crate::bedrock::{CallCredentials, Failure};
use crate::error::{ApiFormat, Attempt, GatewayError};
use crate::gateway::{Gateway, Served, UsageDraft, parse_body, record_usage};
use crate::plan::Candidate;
use crate::sse::{self, SseParser};
use crate::stream;

/// The `anthropic_version` Bedrock requires in the body (aws-facts §5.5).
pub const BEDROCK_ANTHROPIC_VERSION: &str = "bedrock-2023-05-31";

/// Input and output tokens of an Anthropic message or stream event.
fn usage_of(v: &Value) -> (Option<u64>, Option<u64>) {
    let u = if v.get("type").and_then(Value::as_str) == Some("message_start") {
        &v["message"]["usage"]
    } else {
        &v["usage"]
    };
    (u["input_tokens"].as_u64(), u["output_tokens"].as_u64())
}

impl Gateway {
    /// Handles `POST /v1/messages`.
    pub async fn messages(
        self: &Arc<Self>,
        p: Principal,
        headers: &HeaderMap,
        body: Bytes,
    ) -> Response {
        let format = ApiFormat::Anthropic;
        let (mut req, model, stream) = match parse_body(&body) {
            Ok(v) => v,
            Err(e) => return e.into_response(format),
        };
        if !req.get("max_tokens").is_some_and(Value::is_u64) {
            return GatewayError::invalid("max_tokens: required, a positive integer")
                .into_response(format);
        }
        let ctx = match self.context(p, headers).await {
            Ok(c) => c,
            Err(e) => return e.into_response(format),
        };
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
        self.route(&ctx, format, &model, move |c, creds, draft, attempts| {
            let (this, req, version, beta) =
                (this.clone(), req.clone(), version.clone(), beta.clone());
            async move {
                this.try_messages(
                    c,
                    creds,
                    &req,
                    stream,
                    version.as_deref(),
                    beta.as_deref(),
                    draft,
                    attempts,
                )
                .await
            }
        })
        .await
    }

    #[expect(
        clippy::too_many_arguments,
        reason = "one attempt's inputs, all needed"
    )]
    async fn try_messages(
        &self,
        c: Candidate,
        creds: Option<CallCredentials>,
        req: &serde_json::Map<String, Value>,
        stream: bool,
        version: Option<&str>,
        beta: Option<&str>,
        draft: UsageDraft,
        attempts: Vec<Attempt>,
    ) -> Result<Served, Failure> {
        match &c {
            Candidate::Bedrock {
                model_ref, target, ..
            } => {
                let creds = creds.ok_or_else(|| Failure::Fallback("no credentials".into()))?;
                let mut body = req.clone();
                body.remove("model");
                body.insert(
                    "anthropic_version".into(),
                    Value::String(BEDROCK_ANTHROPIC_VERSION.into()),
                );
                if let Some(beta) = beta {
                    let list: Vec<Value> = beta
                        .split(',')
                        .map(|b| Value::String(b.trim().to_owned()))
                        .collect();
                    body.entry("anthropic_beta").or_insert(Value::Array(list));
                }
                let bytes =
                    serde_json::to_vec(&body).map_err(|e| Failure::Fallback(e.to_string()))?;
                if !stream {
                    let out = self
                        .bedrock
                        .invoke(&target.region, &creds, model_ref, bytes)
                        .await?;
                    let v: Value = serde_json::from_slice(&out.body).unwrap_or(Value::Null);
                    let (i, o) = usage_of(&v);
                    return Ok(Served::Whole {
                        body: Bytes::from(out.body),
                        input: i.unwrap_or(0),
                        output: o.unwrap_or(0),
                    });
                }
                let (first, mut rest) = self
                    .bedrock
                    .invoke_stream(&target.region, &creds, model_ref, bytes)
                    .await?;
                let (frames, body) = stream::channel();
                let core = self.core.clone();
                let route = c.route();
                self.core.tasks.spawn(async move {
                    let (mut input, mut output) = (0, 0);
                    let mut chunk: Option<Result<Vec<u8>, Failure>> = Some(Ok(first));
                    let mut attempts = attempts;
                    let mut outcome = "ok".to_owned();
                    while let Some(item) = chunk.take() {
                        match item {
                            Ok(bytes) => {
                                let Ok(mut v) = serde_json::from_slice::<Value>(&bytes) else { break };
                                let (i, o) = usage_of(&v);
                                input = i.unwrap_or(input);
                                output = o.unwrap_or(output);
                                let kind = v["type"].as_str().unwrap_or("message").to_owned();
                                if let Some(obj) = v.as_object_mut() {
                                    // Bedrock's own metrics are not part of Anthropic's event.
                                    obj.remove("amazon-bedrock-invocationMetrics");
                                }
                                if !frames.send(sse::named(&kind, &v.to_string())).await {
                                    outcome = "client disconnected".into();
                                    break;
                                }
                            }
                            Err(f) => {
                                // After the first byte there is no fallback: end the
                                // stream with a proper error event.
                                outcome = format!("failed mid-stream: {}", f.cause());
                                let err = serde_json::json!({
                                    "type": "error",
                                    "error": {"type": "api_error", "message": format!("upstream failed mid-stream: {}", f.cause())}
                                });
                                let _ = frames.send(sse::named("error", &err.to_string())).await;
                                break;
                            }
                        }
                        chunk = rest.next().await;
                    }
                    attempts.push(Attempt { route: route.clone(), outcome });
                    record_usage(&core, &draft, &route, &attempts, input, output, 0).await;
                });
                Ok(Served::Stream(body))
            }
            Candidate::Direct {
                direct_id, family, ..
            } => {
                let mut body = req.clone();
                body.insert("model".into(), Value::String(direct_id.clone()));
                if stream {
                    body.insert("stream".into(), Value::Bool(true));
                }
                let bytes =
                    serde_json::to_vec(&body).map_err(|e| Failure::Fallback(e.to_string()))?;
                let mut resp = self
                    .direct
                    .send(*family, ApiFormat::Anthropic, bytes, version, beta)
                    .await?;
                if !stream {
                    let whole = resp
                        .bytes()
                        .await
                        .map_err(|e| Failure::Fallback(format!("direct API body: {e}")))?;
                    let v: Value = serde_json::from_slice(&whole).unwrap_or(Value::Null);
                    let (i, o) = usage_of(&v);
                    return Ok(Served::Whole {
                        body: whole,
                        input: i.unwrap_or(0),
                        output: o.unwrap_or(0),
                    });
                }
                let first = match resp.chunk().await {
                    Ok(Some(b)) => b,
                    Ok(None) => {
                        return Err(Failure::Fallback("direct API stream ended at once".into()));
                    }
                    Err(e) => return Err(Failure::Fallback(format!("direct API stream: {e}"))),
                };
                let (frames, out) = stream::channel();
                let (core, route) = (self.core.clone(), c.route());
                let credits_for = {
                    let c = c.clone();
                    let gw_price = byollm_api::catalog::Catalog::builtin()
                        .get(c.model())
                        .map(|m| m.price);
                    move |i: u64, o: u64| {
                        gw_price.map_or(0, |p| byollm_core::usage::inference_microcredits(&p, i, o))
                    }
                };
                self.core.tasks.spawn(async move {
                    let mut parser = SseParser::default();
                    let (mut input, mut output) = (0, 0);
                    let mut next = Some(first);
                    let mut attempts = attempts;
                    let mut outcome = "ok".to_owned();
                    while let Some(bytes) = next.take() {
                        for ev in parser.push(&bytes) {
                            if let Ok(v) = serde_json::from_str::<Value>(&ev.data) {
                                let (i, o) = usage_of(&v);
                                input = i.unwrap_or(input);
                                output = o.unwrap_or(output);
                            }
                        }
                        // Anthropic's own SSE goes through byte for byte.
                        if !frames.send(bytes).await {
                            outcome = "client disconnected".into();
                            break;
                        }
                        next = match resp.chunk().await {
                            Ok(b) => b,
                            Err(e) => {
                                outcome = format!("failed mid-stream: {e}");
                                let err = serde_json::json!({"type": "error", "error": {"type": "api_error", "message": "upstream failed mid-stream"}});
                                let _ = frames.send(sse::named("error", &err.to_string())).await;
                                None
                            }
                        };
                    }
                    attempts.push(Attempt { route: route.clone(), outcome });
                    record_usage(&core, &draft, &route, &attempts, input, output, credits_for(input, output)).await;
                });
                Ok(Served::Stream(out))
            }
        }
    }
}
