//! Azure AI Foundry (azure-facts §4): one Foundry resource serves Claude
//! through `POST https://{resource}.services.ai.azure.com/anthropic/v1/messages`
//! and OpenAI's models through Azure OpenAI v1, `POST
//! https://{resource}.openai.azure.com/openai/v1/chat/completions`, both
//! with the caller's brokered Entra access token, over one `reqwest`
//! connection pool.
//!
//! - Claude: the body is the caller's Anthropic Messages body with `model`
//!   set to the deployment name (and `stream: true` for a stream); the
//!   `anthropic-version` header is the caller's (or `2023-06-01`).
//! - GPT: the body is the caller's Chat Completions body with `model` set to
//!   the deployment name (the v1 API takes it there, no `api-version`), tools
//!   and `stream` passed through.
//! - The base is the resource's host, or with the endpoint override
//!   (`--azure-endpoint-url`, the emulator, which is one loopback endpoint)
//!   `{url}/_azure/{resource}` for every resource.
//! - Azure's errors ([`classify`]) become the same [`Failure`]s the other
//!   clouds' do: 429 and 5xx may pass, `PermissionDenied` (which Azure
//!   answers with 401) and 403 are permanent refusals that name the role the
//!   identity lacks, any other 401 renews the token once, 404
//!   `DeploymentNotFound` is a missing route, any other 4xx is the caller's
//!   request.
//! - The access token is sent as a sensitive header and never logged.

use std::time::Duration;

use http::HeaderValue;
use secrecy::{ExposeSecret as _, SecretString};
use serde_json::Value;

use byollm_api::catalog::Family;
use byollm_core::settings::azure::FoundryTarget;

use crate::outcome::{FailReason, Failure};

/// The `anthropic-version` sent when the caller sent none.
pub const DEFAULT_ANTHROPIC_VERSION: &str = "2023-06-01";

/// The data-plane role an identity needs for `family`'s models on a
/// Foundry resource (azure-facts §3.5): named in refusals so that the admin
/// knows what to grant.
pub fn required_role(family: Family) -> &'static str {
    match family {
        Family::Openai => "Cognitive Services OpenAI User",
        Family::Anthropic | Family::Google => "Azure AI User",
    }
}

/// Azure AI Foundry's endpoints (or the emulator's).
#[derive(Debug)]
pub struct Foundry {
    http: reqwest::Client,
    endpoint_url: Option<String>,
}

impl Foundry {
    /// Foundry at Azure, or under `endpoint_url` for every resource, giving
    /// up on a connection after `connect_timeout`.
    pub fn new(
        endpoint_url: Option<String>,
        connect_timeout: Duration,
    ) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .tcp_nodelay(true)
            .pool_idle_timeout(Duration::from_secs(90))
            .connect_timeout(connect_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self {
            http,
            endpoint_url: endpoint_url.map(|u| u.trim_end_matches('/').to_owned()),
        })
    }

    /// The Anthropic Messages URL of `resource` (its bare name).
    pub fn messages_url(&self, resource: &str) -> String {
        match &self.endpoint_url {
            Some(url) => format!("{url}/_azure/{resource}/anthropic/v1/messages"),
            None => format!("https://{resource}.services.ai.azure.com/anthropic/v1/messages"),
        }
    }

    /// The Azure OpenAI v1 Chat Completions URL of `resource` (its bare name).
    pub fn chat_url(&self, resource: &str) -> String {
        match &self.endpoint_url {
            Some(url) => format!("{url}/_azure/{resource}/openai/v1/chat/completions"),
            None => format!("https://{resource}.openai.azure.com/openai/v1/chat/completions"),
        }
    }

    /// Sends a Chat Completions body (its `model` already the deployment
    /// name) to Azure OpenAI on `target`'s resource; the response (JSON, or
    /// SSE when the body asks to stream) once its status is a success.
    pub async fn chat_completions(
        &self,
        target: &FoundryTarget,
        token: &SecretString,
        body: Vec<u8>,
    ) -> Result<reqwest::Response, Failure> {
        let req = self.http.post(self.chat_url(&target.resource));
        self.send(req, target, Family::Openai, token, body).await
    }

    /// Sends an Anthropic Messages body to `deployment`; the response (JSON,
    /// or SSE when `stream`) once its status is a success.
    #[expect(clippy::too_many_arguments, reason = "one call's parts, all needed")]
    pub async fn messages(
        &self,
        target: &FoundryTarget,
        deployment: &str,
        token: &SecretString,
        mut body: serde_json::Map<String, Value>,
        stream: bool,
        version: Option<&str>,
        anthropic_beta: Option<&str>,
    ) -> Result<reqwest::Response, Failure> {
        body.insert("model".into(), Value::String(deployment.to_owned()));
        if stream {
            body.insert("stream".into(), Value::Bool(true));
        } else {
            body.remove("stream");
        }
        let bytes = serde_json::to_vec(&body).map_err(|e| FailReason::Encode(e.to_string()))?;
        let mut req = self.http.post(self.messages_url(&target.resource)).header(
            "anthropic-version",
            version.unwrap_or(DEFAULT_ANTHROPIC_VERSION),
        );
        if let Some(beta) = anthropic_beta {
            req = req.header("anthropic-beta", beta);
        }
        self.send(req, target, Family::Anthropic, token, bytes)
            .await
    }

    /// Sends `req` with the bearer token and a JSON body; its response once
    /// its status is a success, else the [`classify`]d failure.
    async fn send(
        &self,
        req: reqwest::RequestBuilder,
        target: &FoundryTarget,
        family: Family,
        token: &SecretString,
        bytes: Vec<u8>,
    ) -> Result<reqwest::Response, Failure> {
        let mut bearer = HeaderValue::from_str(&format!("Bearer {}", token.expose_secret()))
            .map_err(|_| FailReason::CredentialsRefused("unusable access token".into()))?;
        bearer.set_sensitive(true);
        let mut req = req
            .header(http::header::AUTHORIZATION, bearer)
            .header(http::header::CONTENT_TYPE, "application/json");
        if let Some(tp) = byollm_telemetry::trace::current_traceparent() {
            req = req.header(crate::HDR_TRACEPARENT, tp);
        }
        let resp = req.body(bytes).send().await.map_err(|e| {
            if e.is_timeout() {
                crate::limits::connect_timed_out()
            } else {
                FailReason::Sdk(format!("Azure AI Foundry unreachable: {}", e.without_url()))
            }
        })?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status().as_u16();
        let text = resp.bytes().await.unwrap_or_default();
        Err(classify(status, &text, family, &target.resource))
    }
}

/// Maps an Azure AI Foundry error answer for a `family` model on `resource`
/// to what the gateway does next. Azure's bodies are `{"error": {"code",
/// "message"}}`; Anthropic's (the body itself refused) `{"type": "error",
/// "error": {"type", "message"}}`; OpenAI's `{"error": {"message", "type",
/// "param", "code"}}`. A `PermissionDenied` names the role to grant: Azure's
/// own message names only a data action.
pub fn classify(status: u16, body: &[u8], family: Family, resource: &str) -> Failure {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let err = &v["error"];
    let code = err["code"]
        .as_str()
        .or_else(|| err["type"].as_str())
        .unwrap_or("")
        .to_owned();
    let message = match err["message"].as_str() {
        Some(m) => m.to_owned(),
        None => String::from_utf8_lossy(body).chars().take(300).collect(),
    };
    let text = format!("Azure AI Foundry {status} {code}: {message}");
    let reason = match (status, code.as_str()) {
        (429, _) => FailReason::Throttled(text),
        (_, "PermissionDenied") | (403, _) => FailReason::AccessDenied(format!(
            "{text} (the Entra identity needs the role \"{}\" on the resource `{resource}`)",
            required_role(family)
        )),
        (401, _) => FailReason::CredentialsRefused(text),
        (404, _) => FailReason::NotFound(text),
        (500.., _) => FailReason::Unavailable {
            code: format!("Azure AI Foundry {status}"),
            message,
        },
        _ => return Failure::Client { status, message },
    };
    Failure::Fallback(reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn azure_errors_become_failures() {
        let denied = br#"{"error":{"code":"PermissionDenied","message":"The principal `x` lacks the required data action"}}"#;
        let Failure::Fallback(r) = classify(401, denied, Family::Openai, "acme-ai") else {
            panic!("a refusal falls back")
        };
        assert!(!r.is_transient() && r.is_permission(), "{r}");
        assert!(
            r.to_string().contains(
                "needs the role \"Cognitive Services OpenAI User\" on the resource `acme-ai`"
            ),
            "{r}"
        );
        assert!(matches!(
            classify(
                401,
                br#"{"error":{"code":"401","message":"Unauthorized."}}"#,
                Family::Anthropic,
                "acme-ai"
            ),
            Failure::Fallback(FailReason::CredentialsRefused(_))
        ));
        let Failure::Fallback(r) = classify(
            429,
            br#"{"error":{"code":"429","message":"x"}}"#,
            Family::Anthropic,
            "acme-ai",
        ) else {
            panic!("throttling falls back")
        };
        assert!(r.is_transient());
        let bad = br#"{"type":"error","error":{"type":"invalid_request_error","message":"max_tokens: Field required"}}"#;
        assert_eq!(
            classify(400, bad, Family::Anthropic, "acme-ai"),
            Failure::Client {
                status: 400,
                message: "max_tokens: Field required".into()
            }
        );
    }

    #[test]
    fn urls_per_resource_and_override() {
        let azure = Foundry::new(None, Duration::from_secs(1)).unwrap();
        assert_eq!(
            azure.messages_url("acme-ai"),
            "https://acme-ai.services.ai.azure.com/anthropic/v1/messages"
        );
        let sim = Foundry::new(
            Some("http://127.0.0.1:4566/".into()),
            Duration::from_secs(1),
        )
        .unwrap();
        assert_eq!(
            sim.messages_url("acme-ai"),
            "http://127.0.0.1:4566/_azure/acme-ai/anthropic/v1/messages"
        );
        assert_eq!(
            azure.chat_url("acme-ai"),
            "https://acme-ai.openai.azure.com/openai/v1/chat/completions"
        );
        assert_eq!(
            sim.chat_url("acme-ai"),
            "http://127.0.0.1:4566/_azure/acme-ai/openai/v1/chat/completions"
        );
    }
}
