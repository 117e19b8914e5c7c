//! Azure AI Foundry settings: the team's host (`hosts.azure_foundry`), each
//! model's (`models.<id>.azure_foundry`), a named agent's override
//! (`inference_providers.azure`), and the identity-token subject Entra's
//! federated identity credentials (FICs) match.
//!
//! Entra matches an FIC's issuer, subject and audience exactly, with no
//! wildcards for an issuer like ours, and holds at most 20 FICs per identity
//! (azure-facts §0.2). So the team chooses how coarse the `sub` of its Azure
//! tokens is ([`SubjectGranularity`]); the full actor stays in other claims and
//! in byollm's own audit rows. A new team has the host off.

use serde::{Deserialize, Serialize};

/// The one audience Entra accepts for a federated assertion on a managed
/// identity (and recommends for an app registration).
pub const AZURE_AUDIENCE: &str = "api://AzureADTokenExchange";

/// How coarse the subject of the team's Azure tokens is: what one FIC admits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubjectGranularity {
    /// `scoped_principal:<team-uid>`: one FIC admits every member and agent.
    #[default]
    Team,
    /// `scoped_principal:<team-uid>/user` or `…/service_account`: two FICs.
    ActorType,
    /// `scoped_principal:<team-uid>/<actor-type>:<uid>`: one FIC per member
    /// or agent (at most 20 per identity).
    Actor,
}

impl SubjectGranularity {
    /// The name the settings use.
    pub fn as_str(self) -> &'static str {
        match self {
            SubjectGranularity::Team => "team",
            SubjectGranularity::ActorType => "actor_type",
            SubjectGranularity::Actor => "actor",
        }
    }
}

/// The team's Azure AI Foundry host.
///
/// `PUT` may leave the whole object out (it then means off); `tenant_id`,
/// `client_id` and `resource` are required while `enabled`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AzureFoundryHost {
    /// Route through Azure AI Foundry at all.
    pub enabled: bool,
    /// The Entra tenant (directory) id, a GUID.
    pub tenant_id: Option<String>,
    /// The client id (a GUID) of the user-assigned managed identity or app
    /// registration that holds the team's FICs.
    pub client_id: Option<String>,
    /// The Foundry (Cognitive Services) resource: its name (`acme-ai`) or one
    /// of its host names (`acme-ai.openai.azure.com`,
    /// `acme-ai.services.ai.azure.com`, `acme-ai.cognitiveservices.azure.com`).
    pub resource: Option<String>,
    /// How coarse the subject of the team's Azure tokens is.
    pub subject_granularity: SubjectGranularity,
}

/// The host name suffixes one Foundry resource answers on.
pub const AZURE_RESOURCE_SUFFIXES: [&str; 3] = [
    ".openai.azure.com",
    ".services.ai.azure.com",
    ".cognitiveservices.azure.com",
];

/// A resource setting's bare name: `acme-ai` for `acme-ai`,
/// `acme-ai.openai.azure.com` or `acme-ai.services.ai.azure.com`.
pub fn azure_resource_name(resource: &str) -> &str {
    AZURE_RESOURCE_SUFFIXES
        .iter()
        .find_map(|s| resource.strip_suffix(s))
        .unwrap_or(resource)
}

/// A named agent's Azure override (`inference_providers.azure`): each field
/// set replaces the team's `hosts.azure_foundry` one for this agent (e.g.
/// its own managed identity, to spread `actor` FICs over several
/// identities); `disabled` keeps the agent off Azure. A field left out (or
/// `null` in a merge patch) is unset.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AzureOverride {
    /// Another tenant.
    pub tenant_id: Option<String>,
    /// Another managed identity or app registration.
    pub client_id: Option<String>,
    /// Another Foundry resource.
    pub resource: Option<String>,
    /// Keep this agent off Azure.
    pub disabled: bool,
}

impl AzureOverride {
    /// Nothing overridden (left out of answers).
    pub fn is_unset(&self) -> bool {
        self == &AzureOverride::default()
    }
}

/// A model on Azure AI Foundry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelFoundry {
    /// Route this model through Azure AI Foundry.
    pub enabled: bool,
    /// The deployment name (Azure calls a model by its deployment, sent as
    /// `model`); absent: a deployment named like the catalog model.
    pub deployment: Option<String>,
}

impl Default for ModelFoundry {
    fn default() -> Self {
        Self {
            enabled: true,
            deployment: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_names_come_from_any_of_the_hosts() {
        for r in [
            "acme-ai",
            "acme-ai.openai.azure.com",
            "acme-ai.services.ai.azure.com",
            "acme-ai.cognitiveservices.azure.com",
        ] {
            assert_eq!(azure_resource_name(r), "acme-ai", "{r}");
        }
        let g: SubjectGranularity = serde_json::from_str(r#""actor_type""#).unwrap();
        assert_eq!(g, SubjectGranularity::ActorType);
        assert_eq!(g.as_str(), "actor_type");
        assert!(serde_json::from_str::<SubjectGranularity>(r#""run""#).is_err());
    }
}
