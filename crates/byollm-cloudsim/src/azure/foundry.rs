//! Claude in Azure AI Foundry (azure-facts §4.3): `POST
//! https://{resource}.services.ai.azure.com/anthropic/v1/messages` with
//! `Authorization: Bearer <Entra token>` and the deployment name as `model`.
//!
//! The emulator is one loopback endpoint, so the resource host travels as a
//! path prefix: `POST /_azure/{resource}/anthropic/v1/messages` is what
//! `https://{resource}.services.ai.azure.com/anthropic/v1/messages` is on
//! Azure (`{resource}` is the bare resource name, `acme-ai`).
//!
//! Order of checks: the bearer token — issued by this emulator's Entra and
//! not expired — (401, Azure's `{"error": {"code": "401", …}}`); a role
//! assignment of "Azure AI User" (or the legacy "Cognitive Services User")
//! on the resource for the token's identity (401 `PermissionDenied`, the
//! status Azure answers it with, azure-facts §4.3); the `anthropic-version`
//! header; injected faults; then the body, answered by Anthropic's own
//! Messages code ([`Inner::anthropic_answer`]), since Anthropic's service
//! reads it behind Foundry. A deployment is named like a catalog Claude
//! model (its id or Anthropic API id): others are 404 `DeploymentNotFound`.

use axum::http::{HeaderMap, header};
use axum::response::Response;
use byollm_api::catalog::Family;
use serde_json::{Value, json};

use super::{AZURE_AI_USER, AzureIssued, COGNITIVE_SERVICES_USER, FOUNDRY_MESSAGES_OP};
use crate::Inner;
use crate::direct::{anthropic_error, is_version, model_known};
use crate::gcp::json_response;
use crate::util::{UPPER_ALNUM, random_chars};

/// Azure's error body (`{"error": {"code", "message"}}`).
pub(crate) fn azure_error(status: u16, code: &str, message: &str) -> Response {
    json_response(
        status,
        &json!({"error": {"code": code, "message": message}}),
    )
}

/// Azure's answer to a missing, unknown or expired bearer token.
pub(crate) fn unauthorized() -> Response {
    azure_error(
        401,
        "401",
        "Unauthorized. Access token is missing, invalid, audience is incorrect (https://cognitiveservices.azure.com), or have expired.",
    )
}

impl Inner {
    /// The access token an Azure inference call carries in `Authorization:
    /// Bearer`, when this emulator's Entra issued it and it has not expired
    /// (`None`: answer [`unauthorized`]). Every inference endpoint asks this
    /// first.
    pub(crate) fn azure_caller(&self, headers: &HeaderMap) -> Option<AzureIssued> {
        let now = self.clock.now();
        headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .and_then(|t| self.azure.token(t))
            .filter(|t| t.expires > now)
    }

    /// The refusal of an Azure inference call that fails the checks every
    /// endpoint makes first, in Azure's order: a bearer token this Entra
    /// issued (401 `Unauthorized`), then one of `roles` on `resource` (401
    /// `PermissionDenied` naming the principal, the `data_action` it lacks
    /// and the `operation`); `None` when the call may go on.
    pub(crate) fn azure_refusal(
        &self,
        headers: &HeaderMap,
        resource: &str,
        roles: &[&str],
        data_action: &str,
        operation: &str,
    ) -> Option<Response> {
        let Some(issued) = self.azure_caller(headers) else {
            return Some(unauthorized());
        };
        if roles
            .iter()
            .any(|r| self.azure.has_role(&issued.client_id, r, resource))
        {
            return None;
        }
        tracing::debug!(client_id = %issued.client_id, %resource, ?roles, "no role for the call");
        Some(azure_error(
            401,
            "PermissionDenied",
            &format!(
                "The principal `{}` lacks the required data action `{data_action}` to perform `{operation}` operation.",
                issued.client_id
            ),
        ))
    }

    /// The injected fault for `op`, in Azure's shape: a 429 saying
    /// `throttled` when the rate is exceeded, else a scripted failure (its
    /// code as the status); `None` when there is none.
    pub(crate) fn azure_fault(&self, op: &str, throttled: &str) -> Option<Response> {
        if !self.faults.admit(op) {
            return Some(azure_error(429, "429", throttled));
        }
        let rule = self.faults.take_failure(op, false)?;
        let status = rule.error.parse::<u16>().unwrap_or(500);
        let msg = rule
            .message
            .unwrap_or_else(|| "Internal server error".to_owned());
        Some(azure_error(status, &status.to_string(), &msg))
    }

    /// `POST /_azure/{resource}/anthropic/v1/messages`.
    pub(crate) fn foundry_messages(
        &self,
        resource: &str,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Response {
        self.faults.count(FOUNDRY_MESSAGES_OP);
        if let Some(refused) = self.azure_refusal(
            headers,
            resource,
            &[AZURE_AI_USER, COGNITIVE_SERVICES_USER],
            "Microsoft.CognitiveServices/accounts/MaaS/*",
            "POST /anthropic/v1/messages",
        ) {
            return refused;
        }
        match headers
            .get("anthropic-version")
            .and_then(|v| v.to_str().ok())
        {
            Some(v) if is_version(v) => {}
            Some(v) => {
                return anthropic_error(
                    400,
                    "invalid_request_error",
                    &format!("anthropic-version: invalid version '{v}' (expected YYYY-MM-DD)"),
                );
            }
            None => {
                return anthropic_error(
                    400,
                    "invalid_request_error",
                    "anthropic-version: header is required",
                );
            }
        }
        if let Some(fault) = self.azure_fault(
            FOUNDRY_MESSAGES_OP,
            "Requests to the Anthropic Messages API have exceeded the call rate limit of your current pricing tier. Please retry after 60 seconds.",
        ) {
            return fault;
        }
        let Ok(v) = serde_json::from_slice::<Value>(body) else {
            return anthropic_error(
                400,
                "invalid_request_error",
                "The request body is not valid JSON.",
            );
        };
        let deployment = match v.get("model").and_then(Value::as_str) {
            None => return anthropic_error(400, "invalid_request_error", "model: Field required"),
            Some(m) if !model_known(m, Family::Anthropic) => {
                return azure_error(
                    404,
                    "DeploymentNotFound",
                    &format!("The API deployment for this resource does not exist: {m}"),
                );
            }
            Some(m) => m.to_owned(),
        };
        let id = format!("msg_azr_{}", random_chars(24, UPPER_ALNUM));
        self.anthropic_answer(FOUNDRY_MESSAGES_OP, &id, &deployment, &v)
    }
}
