//! `POST /v1/chat/completions` (OpenAI Chat Completions): Claude on Bedrock
//! through `Converse` / `ConverseStream` with a faithful translation, Claude
//! on Vertex AI through the same translation bridged to Anthropic Messages
//! (`translate::converse_to_anthropic`), Gemini on Vertex AI bridged to
//! `generateContent` (`translate::converse_to_gemini`), Claude on Azure AI
//! Foundry bridged the same way, GPT on Azure OpenAI passed through, or the
//! vendors' APIs (OpenAI's, and Anthropic's OpenAI-compatible endpoint).

use std::sync::Arc;

use axum::body::Body;
use axum::http::HeaderMap;
use axum::response::Response;
use bytes::Bytes;
use serde_json::Value;

use byollm_api::catalog::Family;
use byollm_core::auth::Principal;
use byollm_core::broker::CloudCredentials;
use byollm_core::ids;

use crate::attempt::{Call, Served};
use crate::direct::{first_chunk, whole_body};
use crate::error::ApiFormat;
use crate::gateway::{DEFAULT_MAX_TOKENS, Gateway, parse_body};
use crate::outcome::{FailReason, Failure};
use crate::plan::Candidate;
use crate::relay::{OpenAiFromConverse, OpenAiPassthrough, openai_usage};
use crate::traces::{finish_reasons, record_usage};
use crate::translate::{self, OpenAiStream};

impl Gateway {
    /// Handles `POST /v1/chat/completions`.
    pub async fn chat_completions(
        self: &Arc<Self>,
        p: Principal,
        headers: &HeaderMap,
        body: Body,
    ) -> Response {
        let format = ApiFormat::OpenAi;
        let body = match self.read_body(body, format).await {
            Ok(b) => b,
            Err(e) => return e,
        };
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
        self.run_plan(&ctx, format, &model, move |call| {
            let (this, req) = (this.clone(), req.clone());
            async move { this.try_chat(call, &req, stream, include_usage).await }
        })
        .await
    }

    /// One attempt of `POST /v1/chat/completions` on `call`'s route.
    async fn try_chat(
        &self,
        call: Call,
        req: &serde_json::Map<String, Value>,
        stream: bool,
        include_usage: bool,
    ) -> Result<Served, Failure> {
        let id = format!("chatcmpl-{}", ids::new_uid());
        let created = self.core.clock().now();
        match &call.candidate {
            Candidate::Bedrock {
                model_ref,
                target,
                model,
                ..
            } => {
                let creds = call.creds.as_ref().ok_or(FailReason::NoCredentials)?;
                let converse =
                    translate::openai_to_converse(&Value::Object(req.clone()), DEFAULT_MAX_TOKENS)
                        .map_err(|e| Failure::Client {
                            status: 400,
                            message: e.to_string(),
                        })?;
                if !stream {
                    let out = self
                        .bedrock
                        .converse(&target.region, creds, model_ref, converse)
                        .await?;
                    let (input, output) = translate::usage_of(&out);
                    record_usage(Some(input), Some(output), Some(out.stop_reason().as_str()));
                    let body = translate::converse_to_openai(&out, model, &id, created);
                    return Ok(Served::Whole {
                        body: Bytes::from(body.to_string()),
                        input,
                        output,
                    });
                }
                let (first, rest) = self
                    .bedrock
                    .converse_stream(&target.region, creds, model_ref, converse)
                    .await?;
                let relay =
                    OpenAiFromConverse(OpenAiStream::new(model, &id, created, include_usage));
                Ok(self.spawn_stream(first, rest, relay, call))
            }
            Candidate::Vertex {
                model_ref,
                target,
                model,
                family,
            } => {
                let token = call.token.as_ref().ok_or(FailReason::NoCredentials)?;
                let CloudCredentials::Gcp(access) = token.credentials() else {
                    return Err(FailReason::NoCredentials.into());
                };
                let converse =
                    translate::openai_to_converse(&Value::Object(req.clone()), DEFAULT_MAX_TOKENS)
                        .map_err(|e| Failure::Client {
                            status: 400,
                            message: e.to_string(),
                        })?;
                if *family == Family::Google {
                    let body = translate::converse_to_gemini(&converse);
                    let mut resp = self
                        .vertex
                        .generate_content(target, model_ref, &access.token, body, stream)
                        .await?;
                    // Gemini's calls carry no id: the answer's own id names them.
                    let call_prefix = id.replacen("chatcmpl-", "call_", 1);
                    if !stream {
                        let (bytes, _) = whole_body(resp).await?;
                        let v: Value = serde_json::from_slice(&bytes)
                            .map_err(|e| FailReason::DirectBody(e.to_string()))?;
                        let out =
                            translate::gemini_to_converse(&v, &call_prefix).ok_or_else(|| {
                                FailReason::DirectBody(
                                    "not a Gemini GenerateContentResponse".into(),
                                )
                            })?;
                        let (input, output) = translate::usage_of(&out);
                        record_usage(Some(input), Some(output), Some(out.stop_reason().as_str()));
                        let body = translate::converse_to_openai(&out, model, &id, created);
                        return Ok(Served::Whole {
                            body: Bytes::from(body.to_string()),
                            input,
                            output,
                        });
                    }
                    let first = crate::vertex::first_chunk(&mut resp).await?;
                    let relay = translate::OpenAiFromGemini::new(
                        OpenAiStream::new(model, &id, created, include_usage),
                        &call_prefix,
                    );
                    return Ok(self.spawn_stream(first, resp, relay, call));
                }
                let body = translate::converse_to_anthropic(&converse);
                let mut resp = self
                    .vertex
                    .raw_predict(target, model_ref, &access.token, body, stream, None)
                    .await?;
                if !stream {
                    // The whole message is translated, so it is parsed whole
                    // (`whole_body`'s value is only a usage summary).
                    let (bytes, _) = whole_body(resp).await?;
                    let v: Value = serde_json::from_slice(&bytes)
                        .map_err(|e| FailReason::DirectBody(e.to_string()))?;
                    let out = translate::anthropic_to_converse(&v)
                        .ok_or_else(|| FailReason::DirectBody("not an Anthropic message".into()))?;
                    let (input, output) = translate::usage_of(&out);
                    record_usage(Some(input), Some(output), Some(out.stop_reason().as_str()));
                    let body = translate::converse_to_openai(&out, model, &id, created);
                    return Ok(Served::Whole {
                        body: Bytes::from(body.to_string()),
                        input,
                        output,
                    });
                }
                let first = crate::vertex::first_chunk(&mut resp).await?;
                let relay = translate::OpenAiFromAnthropic::new(OpenAiStream::new(
                    model,
                    &id,
                    created,
                    include_usage,
                ));
                Ok(self.spawn_stream(first, resp, relay, call))
            }
            Candidate::Foundry {
                deployment,
                target,
                model,
                family,
            } => {
                let token = call.token.as_ref().ok_or(FailReason::NoCredentials)?;
                let CloudCredentials::Azure(access) = token.credentials() else {
                    return Err(FailReason::NoCredentials.into());
                };
                if *family == Family::Openai {
                    // Azure OpenAI speaks the caller's wire: the body passes
                    // through (tools included) with the deployment as `model`.
                    let bytes = openai_body(req, deployment, stream)?;
                    let mut resp = self
                        .foundry
                        .chat_completions(target, &access.token, bytes)
                        .await?;
                    if !stream {
                        let (body, v) = whole_body(resp).await?;
                        let (i, o) = openai_usage(&v);
                        record_usage(i, o, finish_reasons(&v).as_deref());
                        return Ok(Served::Whole {
                            body,
                            input: i.unwrap_or(0),
                            output: o.unwrap_or(0),
                        });
                    }
                    let first = crate::vertex::first_chunk(&mut resp).await?;
                    return Ok(self.spawn_stream(
                        first,
                        resp,
                        OpenAiPassthrough::new(include_usage),
                        call,
                    ));
                }
                let converse =
                    translate::openai_to_converse(&Value::Object(req.clone()), DEFAULT_MAX_TOKENS)
                        .map_err(|e| Failure::Client {
                            status: 400,
                            message: e.to_string(),
                        })?;
                let body = translate::converse_to_anthropic(&converse);
                let mut resp = self
                    .foundry
                    .messages(target, deployment, &access.token, body, stream, None, None)
                    .await?;
                if !stream {
                    let (bytes, _) = whole_body(resp).await?;
                    let v: Value = serde_json::from_slice(&bytes)
                        .map_err(|e| FailReason::DirectBody(e.to_string()))?;
                    let out = translate::anthropic_to_converse(&v)
                        .ok_or_else(|| FailReason::DirectBody("not an Anthropic message".into()))?;
                    let (input, output) = translate::usage_of(&out);
                    record_usage(Some(input), Some(output), Some(out.stop_reason().as_str()));
                    let body = translate::converse_to_openai(&out, model, &id, created);
                    return Ok(Served::Whole {
                        body: Bytes::from(body.to_string()),
                        input,
                        output,
                    });
                }
                let first = crate::vertex::first_chunk(&mut resp).await?;
                let relay = translate::OpenAiFromAnthropic::new(OpenAiStream::new(
                    model,
                    &id,
                    created,
                    include_usage,
                ));
                Ok(self.spawn_stream(first, resp, relay, call))
            }
            Candidate::Direct {
                direct_id, family, ..
            } => {
                let bytes = openai_body(req, direct_id, stream)?;
                let mut resp = self
                    .direct
                    .send(*family, ApiFormat::OpenAi, bytes, None, None)
                    .await?;
                if !stream {
                    let (body, v) = whole_body(resp).await?;
                    let (i, o) = openai_usage(&v);
                    record_usage(i, o, finish_reasons(&v).as_deref());
                    return Ok(Served::Whole {
                        body,
                        input: i.unwrap_or(0),
                        output: o.unwrap_or(0),
                    });
                }
                let first = first_chunk(&mut resp).await?;
                Ok(self.spawn_stream(first, resp, OpenAiPassthrough::new(include_usage), call))
            }
        }
    }
}

/// The caller's Chat Completions body for an upstream that speaks it, with
/// `model` set to the upstream's name for the model; a stream asks for usage
/// so the request can be accounted (the extra chunk is dropped when the
/// caller did not ask for it).
fn openai_body(
    req: &serde_json::Map<String, Value>,
    model: &str,
    stream: bool,
) -> Result<Vec<u8>, Failure> {
    let mut set = vec![("model", Value::String(model.to_owned()))];
    if stream {
        let mut opts = req
            .get("stream_options")
            .cloned()
            .unwrap_or_else(|| Value::Object(Default::default()));
        if let Some(o) = opts.as_object_mut() {
            o.insert("include_usage".into(), Value::Bool(true));
        }
        set.push(("stream_options", opts));
    }
    crate::body::Patched {
        base: req,
        drop: &[],
        set: &set,
    }
    .to_vec()
    .map_err(|e| FailReason::Encode(e.to_string()).into())
}
