//! Azure OpenAI's Chat Completions (azure-facts §4.1, §4.2), on the one
//! loopback endpoint with the resource host as a path prefix:
//!
//! - v1: `POST /_azure/{resource}/openai/v1/chat/completions` is
//!   `https://{resource}.openai.azure.com/openai/v1/chat/completions`; the
//!   body's `model` names the deployment and no `api-version` is needed.
//! - classic: `POST /_azure/{resource}/openai/deployments/{deployment}/chat/completions?api-version=…`,
//!   the path openai-python's `AzureOpenAI` always uses (facts §5.5); the
//!   `api-version` query parameter is required, the body's `model` ignored.
//!
//! Order of checks, as on the Foundry route: the bearer token — issued by
//! this emulator's Entra and not expired — (401, Azure's
//! `{"error": {"code": "401", …}}`); a role assignment on the resource for
//! the token's identity, one of "Cognitive Services OpenAI User", "…OpenAI
//! Contributor" or "Cognitive Services User" (401 `PermissionDenied`, the
//! status Azure answers it with, facts §4.3 — "Azure AI User" alone does not
//! admit: it grants Foundry's models); the classic path's `api-version`;
//! injected faults; then the deployment, which must exist on the resource
//! (404 `DeploymentNotFound`); then the body, answered by OpenAI's own Chat
//! Completions code ([`Inner::openai_answer`]), naming the deployed model as
//! Azure does (`{model_name}-{model_version}`).

use axum::http::HeaderMap;
use axum::response::Response;
use byollm_api::catalog::Catalog;
use serde_json::Value;

use super::foundry::azure_error;
use super::{
    COGNITIVE_SERVICES_OPENAI_CONTRIBUTOR, COGNITIVE_SERVICES_OPENAI_USER, COGNITIVE_SERVICES_USER,
    OPENAI_CHAT_OP,
};
use crate::Inner;
use crate::direct::openai_error;

/// The roles whose data actions include Chat Completions on an OpenAI
/// deployment (azure-facts §3.5).
const OPENAI_ROLES: [&str; 3] = [
    COGNITIVE_SERVICES_OPENAI_USER,
    COGNITIVE_SERVICES_OPENAI_CONTRIBUTOR,
    COGNITIVE_SERVICES_USER,
];

/// The `api-version` query parameter's value, when present and non-empty.
fn api_version(query: &str) -> Option<&str> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == "api-version")
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty())
}

impl Inner {
    /// `POST /_azure/{resource}/openai/v1/chat/completions` (`deployment`
    /// `None`: the body's `model` names it) and `POST
    /// /_azure/{resource}/openai/deployments/{deployment}/chat/completions`.
    pub(crate) fn azure_openai_chat(
        &self,
        resource: &str,
        deployment: Option<&str>,
        query: &str,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Response {
        self.faults.count(OPENAI_CHAT_OP);
        if let Some(refused) = self.azure_refusal(
            headers,
            resource,
            &OPENAI_ROLES,
            "Microsoft.CognitiveServices/accounts/OpenAI/deployments/chat/completions/action",
            "POST /openai/deployments/{deployment-id}/chat/completions",
        ) {
            return refused;
        }
        if deployment.is_some() && api_version(query).is_none() {
            // Azure answers a classic path without a version as an unknown
            // resource; the message names the missing parameter.
            return azure_error(
                404,
                "404",
                "Resource not found: the api-version query parameter is required on /openai/deployments/ paths",
            );
        }
        if let Some(fault) = self.azure_fault(
            OPENAI_CHAT_OP,
            "Requests to the ChatCompletions_Create Operation have exceeded call rate limit of your current OpenAI S0 pricing tier. Please retry after 60 seconds.",
        ) {
            return fault;
        }
        let Ok(v) = serde_json::from_slice::<Value>(body) else {
            return openai_error(
                400,
                "invalid_request_error",
                None,
                "We could not parse the JSON body of your request.",
            );
        };
        let name = match deployment {
            Some(d) => d.to_owned(),
            None => match v.get("model").and_then(Value::as_str) {
                Some(m) => m.to_owned(),
                None => {
                    return openai_error(
                        400,
                        "invalid_request_error",
                        None,
                        "model: you must provide a model parameter (the deployment name)",
                    );
                }
            },
        };
        let served = self
            .azure
            .deployment(resource, &name)
            .and_then(|d| Catalog::builtin().get(&d.model))
            .and_then(|m| m.azure_openai.as_ref());
        let Some(served) = served else {
            return azure_error(
                404,
                "DeploymentNotFound",
                "The API deployment for this resource does not exist. If you created the deployment within the last 5 minutes, please wait a moment and try again.",
            );
        };
        let model = format!("{}-{}", served.model_name, served.model_version);
        self.openai_answer(OPENAI_CHAT_OP, &model, &v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_version_is_read_from_the_query() {
        assert_eq!(api_version("api-version=2024-10-21"), Some("2024-10-21"));
        assert_eq!(api_version("x=1&api-version=preview"), Some("preview"));
        assert_eq!(api_version("api-version="), None);
        assert_eq!(api_version(""), None);
    }
}
