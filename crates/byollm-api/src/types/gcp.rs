//! Google Vertex AI settings: the team's host (`hosts.gcp_vertex`) and each
//! model's (`models.<id>.gcp_vertex`), and the audience they imply.
//!
//! The host names the team's workload identity pool provider; its full
//! resource name is the audience of the identity tokens Google's STS accepts
//! for it (gcp-facts §1.4: there is no global audience as with AWS, so the
//! team's settings carry it). A new team has the host off, and turning it on
//! never opens a path out of the customer's cloud.

use serde::{Deserialize, Serialize};

/// The `https:` form of a provider's resource name that Google's STS also
/// accepts as its default audience (gcp-facts §1.4).
pub const HTTPS_IAM_PREFIX: &str = "https://iam.googleapis.com/";
/// The canonical form's prefix.
pub const IAM_PREFIX: &str = "//iam.googleapis.com/";

/// The team's Vertex AI host.
///
/// `PUT` may leave the whole object out (it then means off); every field
/// except `service_account` and `quota_project` is required while `enabled`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GcpVertexHost {
    /// Route through Vertex AI at all.
    pub enabled: bool,
    /// The project billed for inference, e.g. `acme-ml-prod` (6–30 characters).
    pub project_id: Option<String>,
    /// The project's number, which names the pool (`projects/NUMBER/…`).
    pub project_number: Option<String>,
    /// The workload identity pool id (4–32 characters of `[a-z0-9-]`).
    pub pool_id: Option<String>,
    /// The pool's OIDC provider id (4–32 characters of `[a-z0-9-]`).
    pub provider_id: Option<String>,
    /// `global` or a region that serves the models, e.g. `us-east5`.
    pub location: Option<String>,
    /// A service account to impersonate (`NAME@PROJECT.iam.gserviceaccount.com`);
    /// absent: the federated token calls Vertex directly.
    pub service_account: Option<String>,
    /// The project charged for quota, sent as `x-goog-user-project`; absent: no
    /// header, so Google charges the project the call is made in (`project_id`).
    pub quota_project: Option<String>,
}

impl GcpVertexHost {
    /// The provider's full resource name, the identity tokens' audience:
    /// `//iam.googleapis.com/projects/NUMBER/locations/global/workloadIdentityPools/POOL/providers/PROVIDER`;
    /// `None` until the number, pool and provider are all set.
    pub fn audience(&self) -> Option<String> {
        Some(provider_audience(
            self.project_number.as_deref()?,
            self.pool_id.as_deref()?,
            self.provider_id.as_deref()?,
        ))
    }
}

/// A provider's full resource name (gcp-facts §1.4).
pub fn provider_audience(project_number: &str, pool_id: &str, provider_id: &str) -> String {
    format!(
        "{IAM_PREFIX}projects/{project_number}/locations/global/workloadIdentityPools/{pool_id}/providers/{provider_id}"
    )
}

/// A named agent's Google Cloud override (`inference_providers.gcp`): each
/// field set replaces the team's `hosts.gcp_vertex` one for this agent (the
/// pool stays in the team's pool project, `project_number`); `disabled`
/// keeps the agent off Vertex AI. A field left out (or `null` in a merge
/// patch) is unset.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GcpOverride {
    /// The project whose Vertex AI serves the agent.
    pub project_id: Option<String>,
    /// Another workload identity pool of the team's pool project.
    pub pool_id: Option<String>,
    /// Another provider (of that pool).
    pub provider_id: Option<String>,
    /// Another location.
    pub location: Option<String>,
    /// Another service account to impersonate.
    pub service_account: Option<String>,
    /// Keep this agent off Vertex AI.
    pub disabled: bool,
}

impl GcpOverride {
    /// Nothing overridden (left out of answers).
    pub fn is_unset(&self) -> bool {
        self == &GcpOverride::default()
    }
}

/// A model on Vertex AI.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelVertex {
    /// Route this model through Vertex AI.
    pub enabled: bool,
    /// Overrides the catalog's publisher model id (e.g. a dated
    /// `claude-sonnet-4-5@20250929`).
    pub model_ref: Option<String>,
}

impl Default for ModelVertex {
    fn default() -> Self {
        Self {
            enabled: true,
            model_ref: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audience_needs_number_pool_and_provider() {
        let mut h = GcpVertexHost {
            project_number: Some("123456789012".into()),
            pool_id: Some("byollm".into()),
            ..GcpVertexHost::default()
        };
        assert_eq!(h.audience(), None);
        h.provider_id = Some("issuer".into());
        assert_eq!(
            h.audience().as_deref(),
            Some(
                "//iam.googleapis.com/projects/123456789012/locations/global/workloadIdentityPools/byollm/providers/issuer"
            )
        );
    }
}
