//! The Azure walk (`byollm azure doctor`, issue 18): the server and the
//! team's `hosts.azure_foundry` (with a named agent's override), discovery,
//! a JWKS holding an RS256 key (Entra accepts RS256 only), an identity token
//! for `api://AzureADTokenExchange` that is RS256 with the subject the team's
//! granularity gives, the Entra client-assertion exchange, and a one-token
//! Claude call on Azure AI Foundry. An Entra refusal is diagnosed by its
//! `AADSTS` code (azure-facts §3.4), a Foundry refusal by Azure's answer; each
//! names the step, the cause and the fix.
//!
//! Invariants: as the AWS walk — never fails, never prints, one failed step at
//! most, secrets never in the report. The exchange is tried once: a new FIC
//! that is still propagating shows as `AADSTS70021`, and the fix says so.

use byollm_api::catalog::{Catalog, Family};
use byollm_api::client::Client;
use byollm_api::routes;
use byollm_api::types::{AZURE_AUDIENCE, AzureOverride, IdentityTokenRequest, LlmSettings};
use byollm_core::settings::azure::{FoundryTarget, effective_azure};
use byollm_federation::azure::{EntraTokenEndpoint, aadsts_code};
use byollm_federation::gcp::NowMs;
use secrecy::{ExposeSecret as _, SecretString};
use serde_json::json;

use super::walk::{
    Mint, connect, fail, https_discovery, mint, server_error, settle_steps, text, usable_kids,
};
use super::{Cause, Diagnosis, ModelCheck, Report, Status, Step, StepName};

/// What the Azure doctor checks and with what.
#[derive(Clone)]
pub struct AzureOptions {
    /// The server's base URL.
    pub server: String,
    /// A member's API key (an admin's, for `agent`).
    pub api_key: SecretString,
    /// Check this named agent instead of the team.
    pub agent: Option<String>,
    /// Entra's authority and Foundry at one endpoint (the emulator).
    pub endpoint_url: Option<String>,
    /// The catalog model to call (default: the highest-ranked Claude model
    /// the team leaves on for Foundry).
    pub model: Option<String>,
    /// The caller's clock, Unix milliseconds.
    pub now_ms: NowMs,
}

impl std::fmt::Debug for AzureOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AzureOptions")
            .field("server", &self.server)
            .field("agent", &self.agent)
            .field("endpoint_url", &self.endpoint_url)
            .field("model", &self.model)
            .finish_non_exhaustive()
    }
}

const STEPS: [StepName; 6] = [
    StepName::Server,
    StepName::Discovery,
    StepName::Jwks,
    StepName::Token,
    StepName::Entra,
    StepName::Foundry,
];

struct Azure<'a> {
    opts: &'a AzureOptions,
    client: Client,
    http: reqwest::Client,
    steps: Vec<Step>,
    models: Vec<ModelCheck>,
    notes: Vec<String>,
}

/// The team's (or agent's) Azure target, and what the walk compares with.
struct Host {
    target: FoundryTarget,
    settings: LlmSettings,
    issuer: String,
}

/// Runs the Azure walk and returns its report.
pub async fn run(opts: &AzureOptions) -> Report {
    let target = match &opts.agent {
        Some(a) => format!("agent {a}"),
        None => "team".to_owned(),
    };
    let client = match connect(&opts.server, &opts.api_key, &target) {
        Ok(c) => c,
        Err(report) => return *report,
    };
    let mut w = Azure {
        opts,
        client,
        http: reqwest::Client::new(),
        steps: Vec::new(),
        models: Vec::new(),
        notes: Vec::new(),
    };
    let diagnosis = w.walk().await.err();
    settle_steps(&mut w.steps, diagnosis.as_ref(), &STEPS);
    Report::new(target, None, None, w.steps, w.models, diagnosis, w.notes)
}

impl Azure<'_> {
    fn ok(&mut self, step: StepName, detail: impl Into<String>) {
        self.steps.push(Step {
            step,
            status: Status::Ok,
            detail: detail.into(),
        });
    }

    fn skip(&mut self, step: StepName, detail: impl Into<String>) {
        self.steps.push(Step {
            step,
            status: Status::Skipped,
            detail: detail.into(),
        });
    }

    async fn walk(&mut self) -> Result<(), Diagnosis> {
        let mut host = self.server_step().await?;
        host.issuer = self.discovery_step().await?;
        let kids = self.jwks_step().await?;
        let Some((token, sub)) = self.token_step(&host, &kids).await? else {
            self.skip(StepName::Entra, "no token to exchange (see the token step)");
            self.skip(StepName::Foundry, "no token to call Foundry with");
            return Ok(());
        };
        let entra =
            EntraTokenEndpoint::new(self.opts.endpoint_url.clone(), self.opts.now_ms.clone());
        let access = entra
            .request_token(&token, &host.target.entra)
            .await
            .map_err(|e| entra_failure(&e.to_string(), aadsts_code(&e), &host, &sub))?;
        self.ok(
            StepName::Entra,
            format!(
                "Entra exchanged the token for identity {} in tenant {}",
                host.target.entra.client_id, host.target.entra.tenant_id
            ),
        );
        self.foundry_step(&host, &access.token).await
    }

    async fn server_step(&mut self) -> Result<Host, Diagnosis> {
        let s = StepName::Server;
        let me = self
            .client
            .me()
            .await
            .map_err(|e| server_error(s, &format!("GET {}", routes::ME), &e))?;
        let settings = self
            .client
            .llm_settings()
            .await
            .map_err(|e| server_error(s, &format!("GET {}", routes::TEAM_LLM_SETTINGS), &e))?;
        let mut own: Option<AzureOverride> = None;
        if let Some(uid) = &self.opts.agent {
            let agent = self.client.agent(uid).await.map_err(|e| match e.status() {
                Some(404) => fail(
                    s,
                    Cause::AgentNotFound,
                    format!("agent {uid} is not an agent of team {}", me.team.uid),
                    vec![e.to_string()],
                    "list the team's agents with `byollm agents list`",
                ),
                _ => server_error(s, &format!("GET {}", routes::AGENT_IDENTITY), &e),
            })?;
            own = Some(agent.inference_providers.azure);
        }
        let h = &settings.hosts.azure_foundry;
        let Some(target) = effective_azure(&settings, own.as_ref()) else {
            let disabled = own.as_ref().is_some_and(|o| o.disabled);
            return Err(fail(
                s,
                Cause::AzureNotConfigured,
                if disabled {
                    "the agent's inference_providers.azure says disabled: true".to_owned()
                } else {
                    "Azure AI Foundry is not enabled for the team, or its tenant, client or resource is not set".to_owned()
                },
                vec![format!(
                    "hosts.azure_foundry = {{enabled: {}, tenant_id: {:?}, client_id: {:?}, resource: {:?}, subject_granularity: {}}}",
                    h.enabled,
                    h.tenant_id,
                    h.client_id,
                    h.resource,
                    h.subject_granularity.as_str()
                )],
                "PATCH /api/v1/team/llm-settings with {\"hosts\":{\"azure_foundry\":{\"enabled\":true,\"tenant_id\":…,\"client_id\":…,\"resource\":…}}} (an admin's key); `byollm azure setup-script` prints these values",
            ));
        };
        self.ok(
            s,
            format!(
                "team {} ({}): Azure AI Foundry {} as identity {}, subject granularity {}",
                me.team.name,
                me.team.uid,
                target.resource,
                target.entra.client_id,
                target.granularity.as_str()
            ),
        );
        Ok(Host {
            target,
            settings,
            issuer: String::new(),
        })
    }

    async fn discovery_step(&mut self) -> Result<String, Diagnosis> {
        let (issuer, jwks_uri) = https_discovery(
            &self.client,
            "Entra fetches an issuer's keys over https only",
            "serve the issuer over https (server.issuer_url) and give the FICs exactly that URL as --issuer",
        )
        .await?;
        self.ok(
            StepName::Discovery,
            format!("issuer {issuer}, jwks_uri {jwks_uri}"),
        );
        Ok(issuer)
    }

    async fn jwks_step(&mut self) -> Result<Vec<String>, Diagnosis> {
        let (all, usable) = usable_kids(
            &self.client,
            &["RS256"],
            "the JWKS has no RS256 key, and Entra verifies RS256 only (it answers AADSTS5002738 to ES256)",
            "upgrade the server (it adds an RS256 key beside the ES256 one) or run `byollm keys rotate`",
        )
        .await?;
        self.ok(
            StepName::Jwks,
            format!("{all} key(s), {} RS256 for Entra", usable.len()),
        );
        Ok(usable)
    }

    async fn token_step(
        &mut self,
        host: &Host,
        rsa_kids: &[String],
    ) -> Result<Option<(SecretString, String)>, Diagnosis> {
        let s = StepName::Token;
        let req = IdentityTokenRequest {
            audience: AZURE_AUDIENCE.to_owned(),
            requested_duration_seconds: 300,
        };
        let (token, header, claims) =
            match mint(&self.client, self.opts.agent.as_deref(), &req).await? {
                Mint::Token {
                    token,
                    header,
                    claims,
                } => (token, header, claims),
                Mint::NotForThisKey(why) => {
                    self.skip(s, why);
                    return Ok(None);
                }
            };
        let (iss, sub, alg, kid) = (
            text(&claims, "iss"),
            text(&claims, "sub"),
            text(&header, "alg"),
            text(&header, "kid"),
        );
        if iss != host.issuer || alg != "RS256" || !rsa_kids.contains(&kid) {
            return Err(fail(
                s,
                Cause::DiscoveryBroken,
                "the Azure token is not an RS256 token of the discovery document's issuer and keys",
                vec![format!(
                    "token iss {iss} alg {alg} kid {kid}; discovery issuer {}",
                    host.issuer
                )],
                "restart the server so it serves its current keys; check server.issuer_url",
            ));
        }
        let actor = text(&claims, "actor");
        let who = if actor.is_empty() || actor == sub {
            String::new()
        } else {
            format!(" (actor {actor})")
        };
        self.ok(
            s,
            format!(
                "RS256, sub {sub}{who}, aud {AZURE_AUDIENCE}, granularity {}",
                host.target.granularity.as_str()
            ),
        );
        Ok(Some((token, sub)))
    }

    async fn foundry_step(&mut self, host: &Host, access: &SecretString) -> Result<(), Diagnosis> {
        let s = StepName::Foundry;
        let Some((model, deployment)) = pick_model(&host.settings, self.opts.model.as_deref())
        else {
            self.skip(s, "no Claude model is on for Azure AI Foundry to call");
            return Ok(());
        };
        let resource = &host.target.resource;
        let url = match &self.opts.endpoint_url {
            Some(u) => format!(
                "{}/_azure/{resource}/anthropic/v1/messages",
                u.trim_end_matches('/')
            ),
            None => format!("https://{resource}.services.ai.azure.com/anthropic/v1/messages"),
        };
        let resp = self
            .http
            .post(&url)
            .bearer_auth(access.expose_secret())
            .header("anthropic-version", "2023-06-01")
            .json(&json!({"model": deployment, "max_tokens": 1,
                          "messages": [{"role": "user", "content": "ping"}]}))
            .send()
            .await;
        let (status, body) = match resp {
            Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
            Err(e) => (0, e.to_string()),
        };
        if status == 200 {
            self.models.push(ModelCheck {
                model: model.clone(),
                profile: deployment.clone(),
                status: Status::Ok,
                detail: "answered a one-token Messages call".to_owned(),
                cause: None,
            });
            self.ok(
                s,
                format!("{model} (deployment {deployment}) answered on {resource}"),
            );
            return Ok(());
        }
        let client_id = &host.target.entra.client_id;
        let (cause, fix) = match status {
            401 | 403
                if body.contains("PermissionDenied")
                    || body.contains("does not have access")
                    || status == 403 =>
            {
                (
                    Cause::FoundryPermissionDenied,
                    format!(
                        "assign \"Azure AI User\" on the Foundry resource {resource} to the identity {client_id}: az role assignment create --assignee-object-id PRINCIPAL_ID --assignee-principal-type ServicePrincipal --role \"Azure AI User\" --scope RESOURCE_ID (byollm azure setup-script writes it; assignments take up to 5 minutes to apply)"
                    ),
                )
            }
            404 => (
                Cause::FoundryDeploymentMissing,
                format!(
                    "deploy {model} on {resource} as `{deployment}`, or set models.{model}.azure_foundry.deployment to the deployment's name"
                ),
            ),
            429 => (
                Cause::Throttled,
                "Foundry's rate limit for the deployment: raise its quota, or try again later"
                    .to_owned(),
            ),
            _ => (
                Cause::FoundryFailed,
                "see Foundry's answer above".to_owned(),
            ),
        };
        self.models.push(ModelCheck {
            model: model.clone(),
            profile: deployment.clone(),
            status: Status::Failed,
            detail: format!("{status}: {}", body.chars().take(300).collect::<String>()),
            cause: Some(cause),
        });
        Err(fail(
            s,
            cause,
            format!("Azure AI Foundry refused {deployment} on {resource}"),
            vec![format!("{status}: {body}")],
            fix,
        ))
    }
}

/// The catalog model to call and its deployment name: `wanted`, else the
/// highest-ranked Claude model the team leaves on for Foundry.
fn pick_model(settings: &LlmSettings, wanted: Option<&str>) -> Option<(String, String)> {
    let catalog = Catalog::builtin();
    let on = |id: &str| {
        settings
            .models
            .get(id)
            .is_none_or(|h| h.azure_foundry.enabled)
    };
    let claude: Vec<_> = catalog
        .by_rank()
        .into_iter()
        .filter(|m| m.family == Family::Anthropic)
        .collect();
    let chosen = match wanted {
        Some(w) => claude.iter().find(|m| m.id == w)?,
        None => claude.iter().find(|m| on(&m.id))?,
    };
    let deployment = settings
        .models
        .get(&chosen.id)
        .and_then(|h| h.azure_foundry.deployment.clone())
        .unwrap_or_else(|| chosen.id.clone());
    Some((chosen.id.clone(), deployment))
}

/// Entra's refusal, as a diagnosis: the `AADSTS` code names the cause.
fn entra_failure(message: &str, code: Option<u32>, host: &Host, sub: &str) -> Diagnosis {
    let s = StepName::Entra;
    let t = &host.target;
    let fic = format!(
        "az identity federated-credential create --name byollm-… --identity-name IDENTITY --resource-group RG --issuer {} --subject {sub} --audiences {AZURE_AUDIENCE}",
        host.issuer
    );
    let evidence = vec![
        message.to_owned(),
        format!(
            "assertion: iss {}, sub {sub}, aud {AZURE_AUDIENCE}; identity {} in tenant {}",
            host.issuer, t.entra.client_id, t.entra.tenant_id
        ),
    ];
    let (cause, summary, fix) = match code {
        Some(70021 | 700213) => (
            Cause::EntraNoMatchingFic,
            format!(
                "no federated identity credential on identity {} has the subject {sub}",
                t.entra.client_id
            ),
            format!(
                "add the FIC ({fic}), or set the team's subject_granularity to the one the identity's FICs were made for (`byollm azure explain` lists whom they admit); a new FIC can take a few minutes to apply"
            ),
        ),
        Some(700211) => (
            Cause::EntraIssuerMismatch,
            format!(
                "the identity's FICs name another issuer than {}",
                host.issuer
            ),
            format!(
                "recreate the FIC with --issuer exactly {} (scheme, host, path and trailing slash all count)",
                host.issuer
            ),
        ),
        Some(700212) => (
            Cause::EntraAudienceMismatch,
            format!("the FIC for {sub} does not list the audience {AZURE_AUDIENCE}"),
            format!("recreate the FIC with --audiences {AZURE_AUDIENCE}"),
        ),
        Some(700024) => (
            Cause::TokenExpired,
            "Entra saw the token outside its valid time range".to_owned(),
            "synchronise the byollm server's clock (NTP)".to_owned(),
        ),
        Some(5002738 | 5002730) => (
            Cause::EntraAlgorithmRefused,
            "Entra refused the token's signing algorithm (it takes RS256)".to_owned(),
            "Azure tokens must be RS256: upgrade the server so it publishes and signs with its RS256 key".to_owned(),
        ),
        Some(7000272) => (
            Cause::JwksUnreachable,
            "Entra did not find the token's key in the issuer's JWKS".to_owned(),
            "make /.well-known/openid-configuration and its jwks_uri reachable from the internet over https; a key published moments ago shows once Entra fetches again".to_owned(),
        ),
        Some(90002 | 700016 | 7000215) => (
            Cause::AzureNotConfigured,
            format!(
                "Entra does not know tenant {} or identity {}",
                t.entra.tenant_id, t.entra.client_id
            ),
            "set hosts.azure_foundry's tenant_id and client_id to the managed identity's (az identity show -g RG -n IDENTITY --query '{tenant:tenantId, client:clientId}')".to_owned(),
        ),
        _ if message.contains("429") || message.contains("throttl") => (
            Cause::Throttled,
            "Entra throttled the exchange".to_owned(),
            "try again later; the gateway's broker exchanges once per token lifetime".to_owned(),
        ),
        _ => (
            Cause::EntraFailed,
            "Entra refused the exchange".to_owned(),
            "see Entra's answer in the evidence (docs/troubleshooting.md lists the AADSTS codes)"
                .to_owned(),
        ),
    };
    fail(s, cause, summary, evidence, fix)
}
