//! A third team whose Claude runs on (emulated) Azure AI Foundry, beside the
//! AWS and Google Cloud ones: what `byollm demo` shows for Azure.
//!
//! Microsoft's side is what the admin guide's `az` commands make — a
//! user-assigned managed identity, one federated identity credential for the
//! team's subject (granularity `team`: one FIC admits every member and agent
//! of the team) and "Azure AI User" on the Foundry resource — made through
//! the emulator's library API (a fresh machine has no `az`). The team's
//! settings turn Azure on and Bedrock and the direct APIs off, so every Claude
//! call it makes routes `azure_foundry:DEPLOYMENT@RESOURCE` or fails.

use anyhow::Context as _;
use byollm_api::client::Client;
use byollm_api::types::{AZURE_AUDIENCE, LlmSettings};
use byollm_cloudsim::azure::{AZURE_AI_USER, AzureIdentity, Fic, RoleAssignment};
use secrecy::SecretString;

use crate::{ISSUER, Stack};

/// The emulated Entra tenant (directory) the Azure team's identity lives in.
pub const AZURE_TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
/// The client id of its user-assigned managed identity.
pub const AZURE_CLIENT_ID: &str = "0d3c1f2e-5b6a-4c8d-9e0f-1a2b3c4d5e6f";
/// The managed identity's name.
pub const AZURE_IDENTITY: &str = "byollm-uami";
/// The Foundry (AI Services) resource the team calls.
pub const AZURE_RESOURCE: &str = "initech-ai";

/// A team routed to Azure AI Foundry through its federated identity credential.
#[derive(Debug)]
pub struct AzureTeam {
    /// The team's uid.
    pub team_uid: String,
    /// Its owner's key (never printed).
    pub owner_key: SecretString,
    /// The FIC the identity carries for the team.
    pub fic: Fic,
}

impl AzureTeam {
    /// The audience of the team's Azure tokens.
    pub fn audience(&self) -> &'static str {
        AZURE_AUDIENCE
    }
}

impl Stack {
    /// Bootstraps a team on Azure AI Foundry: the managed identity, one FIC for
    /// the team's subject, "Azure AI User" on the resource, and settings with
    /// only `hosts.azure_foundry` on at subject granularity `team`.
    pub async fn bootstrap_azure_team(
        &self,
        team_name: &str,
        owner_email: &str,
    ) -> anyhow::Result<AzureTeam> {
        let boot = byollm_core::service::bootstrap_team(
            &self.store,
            &byollm_api::clock::SystemClock,
            team_name,
            owner_email,
        )
        .await?;
        let az = self.sim.azure();
        az.create_identity(AzureIdentity {
            tenant_id: AZURE_TENANT.into(),
            client_id: AZURE_CLIENT_ID.into(),
            name: AZURE_IDENTITY.into(),
        })
        .map_err(|e| anyhow::anyhow!("the emulator refused the managed identity: {e}"))?;
        let fic = Fic {
            client_id: AZURE_CLIENT_ID.into(),
            name: format!("byollm-team-{}", boot.team_uid),
            issuer: ISSUER.into(),
            subject: format!("scoped_principal:{}", boot.team_uid),
            audiences: vec![AZURE_AUDIENCE.into()],
        };
        // Visible at once: the demo does not wait out Entra's propagation.
        az.add_fic(fic.clone(), 0)
            .map_err(|e| anyhow::anyhow!("the emulator refused the FIC: {e}"))?;
        az.assign_role(RoleAssignment {
            client_id: AZURE_CLIENT_ID.into(),
            role: AZURE_AI_USER.into(),
            resource: AZURE_RESOURCE.into(),
        })
        .map_err(|e| anyhow::anyhow!("the emulator refused the role assignment: {e}"))?;
        let owner_key = SecretString::from(boot.api_key.expose().to_owned());
        let settings: LlmSettings = serde_json::from_value(serde_json::json!({
            "hosts": {
                "azure_foundry": {"enabled": true, "tenant_id": AZURE_TENANT,
                                  "client_id": AZURE_CLIENT_ID,
                                  "resource": format!("{AZURE_RESOURCE}.services.ai.azure.com"),
                                  "subject_granularity": "team"},
                "aws_bedrock": {"enabled": false},
                "direct_api": {"enabled": false}},
            "allow_fallback_outside_cloud": false,
        }))
        .context("the Azure team's settings")?;
        Client::new(&self.base, Some(owner_key.clone()))?
            .put_llm_settings(&settings)
            .await?;
        Ok(AzureTeam {
            team_uid: boot.team_uid,
            owner_key,
            fic,
        })
    }
}
