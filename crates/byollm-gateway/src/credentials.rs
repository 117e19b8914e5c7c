//! Credentials for an in-cloud candidate: for Bedrock the caller's own (flow
//! 4), or brokered for the caller by assuming the candidate's role; for
//! Vertex AI an access token brokered through the team's pool provider. Both
//! are exchanged for an identity token the server mints for itself (DESIGN
//! §5), for STS's audience or the provider's resource name. The broker
//! caches, refreshes and single-flights; this module only says whose
//! credentials and how to mint.

use std::sync::Arc;

use byollm_api::types::{
    AZURE_AUDIENCE, ActorType, BedrockTarget, IdentityTokenRequest, STS_AUDIENCE,
};
use byollm_core::broker::{BrokerError, BrokerKey, Brokered, CloudTarget};
use byollm_core::service::MintSubject;
use byollm_core::settings::azure::FoundryTarget;
use byollm_core::settings::gcp::VertexTarget;
use byollm_federation::aws::names;

use crate::bedrock::CallCredentials;
use crate::caller::Ctx;
use crate::gateway::{BROKER_TOKEN_TTL_SECONDS, Gateway};
use crate::outcome::RoleRefused;

impl Gateway {
    /// Credentials for a Bedrock candidate: the caller's, or brokered.
    pub(crate) async fn bedrock_credentials(
        &self,
        ctx: &Ctx,
        target: &BedrockTarget,
    ) -> Result<CallCredentials, RoleRefused> {
        if let Some(c) = &ctx.caller_creds {
            return Ok(c.clone());
        }
        let key = broker_key(ctx, aws(target));
        let session_name = match (&ctx.run_id, ctx.p.actor.actor_type) {
            (Some(run), _) => names::run_session_name(run),
            (None, ActorType::User) => names::user_session_name(&ctx.p.actor.uid),
            (None, ActorType::ServiceAccount) => {
                names::sts_name(&format!("byollm-agent-{}", ctx.p.actor.uid))
            }
        };
        let audience = if ctx
            .team
            .settings
            .token_audiences
            .iter()
            .any(|a| a == STS_AUDIENCE)
        {
            Ok(STS_AUDIENCE.to_owned())
        } else {
            Err(format!(
                "the team's token_audiences do not include {STS_AUDIENCE}"
            ))
        };
        let mint = self.minter(ctx, audience);
        let creds = self
            .core
            .broker()
            .credentials(&key, &session_name, mint)
            .await
            .map_err(RoleRefused)?;
        Ok(CallCredentials::Brokered(creds))
    }

    /// Drops the brokered credentials for this caller and target, so the next
    /// [`Gateway::bedrock_credentials`] assumes the role afresh.
    pub(crate) fn forget_bedrock_credentials(&self, ctx: &Ctx, target: &BedrockTarget) {
        self.core.broker().invalidate(&broker_key(ctx, aws(target)));
    }

    /// A Google access token for a Vertex AI candidate, brokered through the
    /// team's pool provider (and service account) with an identity token
    /// whose audience is the provider's resource name.
    pub(crate) async fn vertex_token(
        &self,
        ctx: &Ctx,
        target: &VertexTarget,
    ) -> Result<Arc<Brokered>, RoleRefused> {
        let key = broker_key(ctx, CloudTarget::Gcp(target.pool.clone()));
        let mint = self.minter(ctx, Ok(target.pool.audience.clone()));
        // Google's exchange has no session name.
        self.core
            .broker()
            .credentials(&key, "", mint)
            .await
            .map_err(RoleRefused)
    }

    /// Drops the brokered token for this caller and target, so the next
    /// [`Gateway::vertex_token`] exchanges afresh.
    pub(crate) fn forget_vertex_token(&self, ctx: &Ctx, target: &VertexTarget) {
        self.core
            .broker()
            .invalidate(&broker_key(ctx, CloudTarget::Gcp(target.pool.clone())));
    }

    /// An Entra access token for an Azure AI Foundry candidate, exchanged
    /// for an identity token whose audience is `api://AzureADTokenExchange`
    /// (RS256, the team's subject granularity: the issuer decides).
    pub(crate) async fn azure_token(
        &self,
        ctx: &Ctx,
        target: &FoundryTarget,
    ) -> Result<Arc<Brokered>, RoleRefused> {
        let key = broker_key(ctx, CloudTarget::Azure(target.entra.clone()));
        let mint = self.minter(ctx, Ok(AZURE_AUDIENCE.to_owned()));
        // Entra's exchange has no session name.
        self.core
            .broker()
            .credentials(&key, "", mint)
            .await
            .map_err(RoleRefused)
    }

    /// Drops the brokered Entra token for this caller and target, so the
    /// next [`Gateway::azure_token`] exchanges afresh.
    pub(crate) fn forget_azure_token(&self, ctx: &Ctx, target: &FoundryTarget) {
        self.core
            .broker()
            .invalidate(&broker_key(ctx, CloudTarget::Azure(target.entra.clone())));
    }

    /// Mints, when the broker asks, an identity token for `audience` (or
    /// fails with why there is none) naming the caller.
    fn minter(
        &self,
        ctx: &Ctx,
        audience: Result<String, String>,
    ) -> impl FnOnce() -> std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<secrecy::SecretString, BrokerError>> + Send>,
    > + Send
    + 'static {
        let core = self.core.clone();
        let (team, actor, run_id, accountable) = (
            Arc::clone(&ctx.team),
            ctx.p.actor.clone(),
            ctx.run_id.clone(),
            ctx.accountable.clone(),
        );
        let requested_by = match &run_id {
            Some(r) => format!("broker:run:{r}"),
            None => format!("broker:{}:{}", actor.actor_type.as_str(), actor.uid),
        };
        move || {
            Box::pin(async move {
                let audience = audience.map_err(BrokerError::Mint)?;
                let subject = MintSubject {
                    team: &team,
                    actor: &actor,
                    run_id: run_id.as_deref(),
                    accountable_member: accountable.as_deref(),
                    requested_by,
                };
                let req = IdentityTokenRequest {
                    audience,
                    requested_duration_seconds: BROKER_TOKEN_TTL_SECONDS,
                };
                core.mint(&subject, &req)
                    .await
                    .map(|m| secrecy::SecretString::from(m.response.token.expose().to_owned()))
                    .map_err(|e| BrokerError::Mint(e.to_string()))
            })
        }
    }
}

/// The broker's target for a Bedrock candidate's role and region.
fn aws(target: &BedrockTarget) -> CloudTarget {
    CloudTarget::Aws {
        role_arn: target.role_arn.clone(),
        region: target.region.clone(),
    }
}

/// The broker's cache key: whose credentials, for which cloud target and run.
fn broker_key(ctx: &Ctx, target: CloudTarget) -> BrokerKey {
    BrokerKey {
        team_uid: ctx.team.uid.clone(),
        actor: ctx.p.actor.clone(),
        target,
        run_id: ctx.run_id.clone(),
    }
}
