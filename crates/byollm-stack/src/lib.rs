//! The whole system in one process on loopback: the AWS emulator, the server
//! (issuer, API and gateway on a fresh SQLite store in a temporary directory) and
//! a bootstrapped team — what `byollm demo` shows and what the doctor's tests
//! misconfigure — and, on request, a second team on Google Vertex AI ([`gcp`])
//! and a third on Azure AI Foundry ([`azure`]).
//!
//! The issuer keeps a real `https://` URL (`ISSUER`), exactly as in production;
//! the emulator is told to fetch its discovery document and JWKS from the
//! server's loopback address (`resolve`, DESIGN §8). AWS-side resources are
//! created through the emulator's IAM library API from the documents
//! `byollm-policy` generates — the same documents `byollm aws setup-script`
//! writes — because a fresh machine has no AWS CLI.

pub mod azure;
pub mod gcp;

use std::sync::Arc;

use anyhow::Context as _;
use byollm_api::catalog::Catalog;
use byollm_api::client::Client;
use byollm_api::clock::SystemClock;
use byollm_cloudsim::{Cloudsim, CloudsimConfig};
use byollm_core::config::CoreConfig;
use byollm_policy::generate::{
    AccountId, DEFAULT_POLICY_NAME, Grant, Issuer, ModelProfile, PermissionsOptions, Region,
    TrustOptions, TrustScope, permissions_policy, trust_policy,
};
use byollm_server::config::{ServerConfig, Upstreams};
use byollm_server::{Server, app};
use secrecy::SecretString;

/// The issuer's host (resolved to the server's loopback address by the emulator).
pub const ISSUER_HOST: &str = "issuer.byollm.test";
/// The issuer URL the server mints with and the OIDC provider is registered for.
pub const ISSUER: &str = "https://issuer.byollm.test";
/// The region the demo team calls Bedrock in.
pub const REGION: &str = "us-east-1";

/// A running emulator + server + team.
#[derive(Debug)]
pub struct Stack {
    /// The emulator.
    pub sim: Cloudsim,
    server: Option<Server>,
    /// `http://127.0.0.1:PORT` of the server.
    pub base: String,
    /// The bootstrapped team.
    pub team_uid: String,
    /// Its owner.
    pub owner_uid: String,
    /// The owner's key (never printed).
    pub owner_key: SecretString,
    /// The server's store (what an operator's offline command acts on, e.g.
    /// the one-time console sign-in link).
    pub store: byollm_core::store::Store,
    /// Holds the store and the direct-API key; removed on drop.
    _dir: tempfile::TempDir,
}

/// What a generated role admits and grants.
#[derive(Debug, Clone)]
pub struct RoleSpec<'a> {
    /// The IAM role name.
    pub name: &'a str,
    /// Whom the trust policy admits.
    pub scope: TrustScope,
    /// Add `sts:TagSession`.
    pub session_tags: bool,
    /// Add `sts:SetSourceIdentity`.
    pub source_identity: bool,
    /// Catalog model ids granted (least privilege) in [`REGION`].
    pub models: &'a [&'a str],
}

impl Stack {
    /// Starts the emulator and the server on loopback ports and bootstraps a team.
    pub async fn start(team_name: &str, owner_email: &str) -> anyhow::Result<Stack> {
        Self::start_with_issuer(team_name, owner_email, ISSUER).await
    }

    /// [`Stack::start`] with another issuer URL (the doctor's tests use a wrong one).
    pub async fn start_with_issuer(
        team_name: &str,
        owner_email: &str,
        issuer: &str,
    ) -> anyhow::Result<Stack> {
        let dir = tempfile::tempdir().context("cannot create a temporary directory")?;
        // Pre-bind the server so the emulator can be told where the issuer lives.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("cannot listen on 127.0.0.1")?;
        let addr = listener.local_addr()?;
        let sim = Cloudsim::start(CloudsimConfig {
            resolve: vec![(ISSUER_HOST.to_owned(), addr)],
            ..CloudsimConfig::default()
        })
        .await
        .context("cannot start the AWS emulator")?;
        let cfg = ServerConfig {
            listen: addr,
            data_dir: dir.path().join("data"),
            store_url: None,
            kek: None,
            core: CoreConfig::new(issuer),
            gateway: Default::default(),
            connections: Default::default(),
            upstreams: emulator_upstreams(&sim, &dir.path().join("direct-api-key"))?,
            shutdown: Default::default(),
            telemetry: Default::default(),
        };
        let gateway = app::gateway_config(&cfg)?;
        let core = app::build_core(&cfg, Arc::new(SystemClock)).await?;
        let boot = byollm_core::service::bootstrap_team(
            core.store(),
            &SystemClock,
            team_name,
            owner_email,
        )
        .await?;
        let store = core.store().clone();
        let server = app::serve_on(listener, core, gateway).await?;
        Ok(Stack {
            sim,
            server: Some(server),
            base: format!("http://{addr}"),
            team_uid: boot.team_uid,
            owner_uid: boot.owner_uid,
            owner_key: SecretString::from(boot.api_key.expose().to_owned()),
            store,
            _dir: dir,
        })
    }

    /// A client acting as the team's owner.
    pub fn owner(&self) -> anyhow::Result<Client> {
        Ok(Client::new(&self.base, Some(self.owner_key.clone()))?)
    }

    /// The emulator's account id.
    pub fn account(&self) -> &str {
        self.sim.account_id()
    }

    /// Registers the issuer as an IAM OIDC provider with the STS audience
    /// (`CreateOpenIDConnectProvider`); returns the provider ARN.
    pub fn register_issuer(&self) -> anyhow::Result<String> {
        Ok(self
            .sim
            .create_oidc_provider(ISSUER, &[byollm_api::types::STS_AUDIENCE])?)
    }

    /// Creates a role from the generated trust and permissions policies; returns
    /// its ARN.
    pub fn create_role(&self, spec: &RoleSpec<'_>) -> anyhow::Result<String> {
        let trust = self.trust_policy_json(spec)?;
        let arn = self.sim.create_role(spec.name, &trust, None)?;
        let permissions = PermissionsOptions {
            account: AccountId::parse(self.account())?,
            region: Region::parse(REGION)?,
            grant: Grant::Models(profiles(spec.models)?),
        };
        let doc = permissions_policy(&permissions)?.to_json_pretty();
        self.sim
            .put_role_policy(spec.name, DEFAULT_POLICY_NAME, &doc)?;
        Ok(arn)
    }

    /// The generated trust policy for `spec`.
    pub fn trust_policy_json(&self, spec: &RoleSpec<'_>) -> anyhow::Result<String> {
        let mut opts = TrustOptions::new(
            Issuer::parse(ISSUER)?,
            &self.team_uid,
            AccountId::parse(self.account())?,
        )?;
        opts.scope = spec.scope.clone();
        opts.session_tags = spec.session_tags;
        opts.source_identity = spec.source_identity;
        Ok(trust_policy(&opts)?.to_json_pretty())
    }

    /// Stops the server and the emulator.
    pub async fn shutdown(mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown().await;
        }
        self.sim.shutdown().await;
    }
}

/// Every inference profile the gateway routes each catalog model through from
/// [`REGION`] (the global one and its geographic fallback), for the
/// least-privilege permissions policy.
pub fn profiles(models: &[&str]) -> anyhow::Result<Vec<ModelProfile>> {
    let routed = Catalog::builtin().resolve_models(models, REGION)?;
    Ok(routed
        .into_iter()
        .map(|r| ModelProfile {
            model_id: r.model_id,
            base_model_id: r.base_model_id,
            profile_id: r.profile_id,
            destination_regions: r.destination_regions,
        })
        .collect())
}

/// Upstreams that point the gateway at the emulator: STS and Bedrock, and
/// Google's STS and Vertex AI, at its endpoint, the direct APIs at its `/anthropic` and `/openai` paths. The
/// emulator's direct-API key is written to `key_file` (a `file:` reference, as
/// an operator's config would give it), never put in the config in plain text.
pub fn emulator_upstreams(
    sim: &Cloudsim,
    key_file: &std::path::Path,
) -> std::io::Result<Upstreams> {
    std::fs::write(key_file, sim.direct_api_key())?;
    let key_ref = format!("file:{}", key_file.display());
    Ok(Upstreams {
        aws_endpoint_url: Some(sim.endpoint_url()),
        gcp_endpoint_url: Some(sim.endpoint_url()),
        azure_endpoint_url: Some(sim.endpoint_url()),
        direct_anthropic_url: Some(format!("{}/anthropic", sim.endpoint_url())),
        direct_anthropic_key: Some(key_ref.clone()),
        direct_openai_url: Some(format!("{}/openai", sim.endpoint_url())),
        direct_openai_key: Some(key_ref),
    })
}
