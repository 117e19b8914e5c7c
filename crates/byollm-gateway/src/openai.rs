//! `POST /v1/chat/completions` (OpenAI Chat Completions): Claude on Bedrock
//! through `Converse` / `ConverseStream` with a faithful translation, or the
//! vendors' APIs (OpenAI's, and Anthropic's OpenAI-compatible endpoint).

use std::sync::Arc;

use axum::http::HeaderMap;
use axum::response::Response;
use bytes::Bytes;
use serde_json::Value;

use byollm_core::auth::Principal;
use byollm_core::ids;

use crate::bedrock::{CallCredentials, Failure};
use crate::error::{ApiFormat, Attempt};
use crate::gateway::{DEFAULT_MAX_TOKENS, Gateway, Served, UsageDraft, parse_body, record_usage};
use crate::plan::Candidate;
use crate::sse::{self, SseParser};
use crate::stream;
use crate::translate::{self, OpenAiStream};

fn openai_usage(v: &Value) -> (Option<u64>, Option<u64>) {
    (
        v["usage"]["prompt_tokens"].as_u64(),
        v["usage"]["completion_tokens"].as_u64(),
    )
}

impl Gateway {
    /// Handles `POST /v1/chat/completions`.
    pub async fn chat_completions(
        self: &Arc<Self>,
        p: Principal,
        headers: &HeaderMap,
        body: Bytes,
    ) -> Response {
        let format = ApiFormat::OpenAi;
        let (req, model, stream) = match parse_body(&body) {
            Ok(v) => v,
            Err(e) => return e.into_response(format),
        };
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
        let include_usage = req
            .get("stream_options")
            .and_then(|o| o.get("include_usage"))
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let req = Arc::new(req);
        let this = self.clone();
        self.route(&ctx, format, &model, move |c, creds, draft, attempts| {
            let (this, req) = (this.clone(), req.clone());
            async move {
                this.try_chat(c, creds, &req, stream, include_usage, draft, attempts)
                    .await
            }
        })
        .await
    }

    #[expect(
        clippy::too_many_arguments,
        reason = "one attempt's inputs, all needed"
    )]
    async fn try_chat(
        &self,
        c: Candidate,
        creds: Option<CallCredentials>,
        req: &serde_json::Map<String, Value>,
        stream: bool,
        include_usage: bool,
        draft: UsageDraft,
        attempts: Vec<Attempt>,
    ) -> Result<Served, Failure> {
        let id = format!("chatcmpl-{}", ids::new_uid());
        let created = self.core.clock.now();
        match &c {
            Candidate::Bedrock {
                model_ref,
                target,
                model,
                ..
            } => {
                let creds = creds.ok_or_else(|| Failure::Fallback("no credentials".into()))?;
                let converse =
                    translate::openai_to_converse(&Value::Object(req.clone()), DEFAULT_MAX_TOKENS)
                        .map_err(|e| Failure::Client {
                            status: 400,
                            message: e.to_string(),
                        })?;
                if !stream {
                    let out = self
                        .bedrock
                        .converse(&target.region, &creds, model_ref, converse)
                        .await?;
                    let (input, output) = translate::usage_of(&out);
                    let body = translate::converse_to_openai(&out, model, &id, created);
                    return Ok(Served::Whole {
                        body: Bytes::from(body.to_string()),
                        input,
                        output,
                    });
                }
                let (first, mut rest) = self
                    .bedrock
                    .converse_stream(&target.region, &creds, model_ref, converse)
                    .await?;
                let (frames, body) = stream::channel();
                let (core, route) = (self.core.clone(), c.route());
                let mut tr = OpenAiStream::new(model, &id, created, include_usage);
                self.core.tasks.spawn(async move {
                    let mut next: Option<Result<_, Failure>> = Some(Ok(first));
                    let mut attempts = attempts;
                    let mut outcome = "ok".to_owned();
                    'pump: while let Some(item) = next.take() {
                        match item {
                            Ok(ev) => {
                                for chunk in tr.on_event(&ev) {
                                    if !frames.send(sse::data(&chunk.to_string())).await {
                                        outcome = "client disconnected".into();
                                        break 'pump;
                                    }
                                }
                            }
                            Err(f) => {
                                outcome = format!("failed mid-stream: {}", f.cause());
                                let err = serde_json::json!({"error": {"message": format!("upstream failed mid-stream: {}", f.cause()), "type": "api_error", "code": "upstream_stream_error"}});
                                let _ = frames.send(sse::data(&err.to_string())).await;
                                break;
                            }
                        }
                        next = rest.next().await;
                    }
                    if outcome == "ok" {
                        let _ = frames.send(Bytes::from_static(sse::DONE)).await;
                    }
                    let (input, output) = tr.usage().unwrap_or((0, 0));
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
                    // Ask for usage so the request can be billed; the extra chunk is
                    // dropped below when the caller did not ask for it.
                    let opts = body
                        .entry("stream_options")
                        .or_insert_with(|| Value::Object(Default::default()));
                    if let Some(o) = opts.as_object_mut() {
                        o.insert("include_usage".into(), Value::Bool(true));
                    }
                }
                let bytes =
                    serde_json::to_vec(&body).map_err(|e| Failure::Fallback(e.to_string()))?;
                let mut resp = self
                    .direct
                    .send(*family, ApiFormat::OpenAi, bytes, None, None)
                    .await?;
                if !stream {
                    let whole = resp
                        .bytes()
                        .await
                        .map_err(|e| Failure::Fallback(format!("direct API body: {e}")))?;
                    let v: Value = serde_json::from_slice(&whole).unwrap_or(Value::Null);
                    let (i, o) = openai_usage(&v);
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
                let price = byollm_api::catalog::Catalog::builtin()
                    .get(c.model())
                    .map(|m| m.price);
                self.core.tasks.spawn(async move {
                    let mut parser = SseParser::default();
                    let (mut input, mut output) = (0, 0);
                    let mut next = Some(first);
                    let mut attempts = attempts;
                    let mut outcome = "ok".to_owned();
                    'pump: while let Some(bytes) = next.take() {
                        for ev in parser.push(&bytes) {
                            if ev.data == "[DONE]" {
                                if !frames.send(Bytes::from_static(sse::DONE)).await {
                                    outcome = "client disconnected".into();
                                    break 'pump;
                                }
                                continue;
                            }
                            let Ok(v) = serde_json::from_str::<Value>(&ev.data) else { continue };
                            let (i, o) = openai_usage(&v);
                            input = i.unwrap_or(input);
                            output = o.unwrap_or(output);
                            let usage_only = v["choices"].as_array().is_some_and(Vec::is_empty) && !v["usage"].is_null();
                            if usage_only && !include_usage {
                                continue;
                            }
                            if !frames.send(sse::data(&ev.data)).await {
                                outcome = "client disconnected".into();
                                break 'pump;
                            }
                        }
                        next = match resp.chunk().await {
                            Ok(b) => b,
                            Err(e) => {
                                outcome = format!("failed mid-stream: {e}");
                                let err = serde_json::json!({"error": {"message": "upstream failed mid-stream", "type": "api_error", "code": "upstream_stream_error"}});
                                let _ = frames.send(sse::data(&err.to_string())).await;
                                None
                            }
                        };
                    }
                    let credits = price.map_or(0, |p| byollm_core::usage::inference_microcredits(&p, input, output));
                    attempts.push(Attempt { route: route.clone(), outcome });
                    record_usage(&core, &draft, &route, &attempts, input, output, credits).await;
                });
                Ok(Served::Stream(out))
            }
        }
    }
}
