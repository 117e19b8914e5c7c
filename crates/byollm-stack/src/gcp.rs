//! A second team whose Claude runs on (emulated) Google Vertex AI, beside the
//! AWS one: what `byollm demo` shows for Google Cloud.
//!
//! Google's side is built from the same values `byollm gcp setup-script`
//! writes — the attribute mapping, the team's attribute condition and the
//! project grants of [`GcpSetup`] — through the emulator's library API (a
//! fresh machine has no gcloud). The team's settings turn Vertex AI on and
//! Bedrock and the direct APIs off, so every Claude call it makes routes
//! `gcp_vertex:MODEL@global` or fails.

use anyhow::Context as _;
use byollm_api::client::Client;
use byollm_api::types::LlmSettings;
use byollm_cloudsim::gcp::{Binding, GcpProvider};
use byollm_policy::gcp::GcpSetup;
use byollm_policy::generate::{Issuer, TrustScope};
use secrecy::SecretString;

use crate::{ISSUER, Stack};

/// The emulated Google project the GCP team's inference runs in.
pub const GCP_PROJECT: &str = "acme-ml-prod";
/// Its project number (the one in the pool's resource names).
pub const GCP_PROJECT_NUMBER: &str = "123456789012";
/// The Vertex AI location the GCP team calls.
pub const GCP_LOCATION: &str = "global";

/// A team routed to Vertex AI through its workload identity pool.
#[derive(Debug)]
pub struct GcpTeam {
    /// The team's uid.
    pub team_uid: String,
    /// Its owner's key (never printed).
    pub owner_key: SecretString,
    /// The setup its pool, provider and grants were made from.
    pub setup: GcpSetup,
}

impl GcpTeam {
    /// The provider's resource name: the team's token audience.
    pub fn audience(&self) -> String {
        self.setup.audience()
    }
}

impl Stack {
    /// Bootstraps a team on Vertex AI: the project, the pool's OIDC provider
    /// with the generated mapping and the team's condition, the generated
    /// project grants, and settings with only `hosts.gcp_vertex` on.
    pub async fn bootstrap_gcp_team(
        &self,
        team_name: &str,
        owner_email: &str,
    ) -> anyhow::Result<GcpTeam> {
        let boot = byollm_core::service::bootstrap_team(
            &self.store,
            &byollm_api::clock::SystemClock,
            team_name,
            owner_email,
        )
        .await?;
        let setup = GcpSetup {
            issuer: Issuer::parse(ISSUER)?,
            team_uid: boot.team_uid.clone(),
            project_id: GCP_PROJECT.into(),
            project_number: GCP_PROJECT_NUMBER.into(),
            pool_id: "byollm-pool".into(),
            provider_id: "byollm-issuer".into(),
            scope: TrustScope::Team,
            service_account: None,
        };
        setup.validate()?;
        let gcp = self.sim.gcp();
        gcp.add_project(GCP_PROJECT, GCP_PROJECT_NUMBER);
        gcp.create_provider(GcpProvider {
            project_number: setup.project_number.clone(),
            pool_id: setup.pool_id.clone(),
            provider_id: setup.provider_id.clone(),
            issuer_uri: ISSUER.into(),
            allowed_audiences: vec![],
            attribute_mapping: setup.attribute_mapping(),
            attribute_condition: Some(setup.attribute_condition()),
            disabled: false,
        })
        .map_err(|e| anyhow::anyhow!("the emulator refused the provider: {e}"))?;
        for (role, member) in setup.project_grants() {
            gcp.add_binding(Binding {
                resource: format!("projects/{GCP_PROJECT}"),
                role: role.to_owned(),
                member,
            });
        }
        let owner_key = SecretString::from(boot.api_key.expose().to_owned());
        let settings: LlmSettings = serde_json::from_value(serde_json::json!({
            "hosts": {
                "gcp_vertex": {"enabled": true, "project_id": GCP_PROJECT,
                               "project_number": GCP_PROJECT_NUMBER,
                               "pool_id": setup.pool_id, "provider_id": setup.provider_id,
                               "location": GCP_LOCATION},
                "aws_bedrock": {"enabled": false},
                "direct_api": {"enabled": false}},
            "allow_fallback_outside_cloud": false,
        }))
        .context("the GCP team's settings")?;
        Client::new(&self.base, Some(owner_key.clone()))?
            .put_llm_settings(&settings)
            .await?;
        Ok(GcpTeam {
            team_uid: boot.team_uid,
            owner_key,
            setup,
        })
    }
}
