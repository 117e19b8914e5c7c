//! The GCP walk (`byollm gcp doctor`, issue 17): the server and the team's
//! `hosts.gcp_vertex`, discovery, JWKS (RS256/ES256, which Google takes), an
//! identity token whose audience is the team's provider, the provider's
//! attribute condition when an access token that may read it is given (a
//! provider with none, or one admitting other teams, fails), the STS exchange,
//! impersonation of the service account when one is set, and a one-token
//! Vertex AI `rawPredict` call. Each failure names the step, the cause (from
//! Google's own error code) and the fix.
//!
//! Invariants: as the AWS walk — never fails, never prints, one failed step at
//! most, secrets never in the report.

use byollm_api::client::Client;
use byollm_api::routes;
use byollm_api::types::{GcpVertexHost, IdentityTokenRequest, LlmSettings};
use byollm_federation::gcp::{AccessToken, GoogleSts};
use byollm_policy::gcp::explain::explain_condition;
use secrecy::{ExposeSecret as _, SecretString};
use serde_json::{Value, json};

mod diagnose;

use diagnose::{pick_model, sts_failure};

use super::walk::{
    Mint, connect, fail, https_discovery, mint, server_error, settle_steps, text, usable_kids,
};
use super::{Cause, Diagnosis, ModelCheck, Report, Status, Step, StepName};

/// What the GCP doctor checks and with what.
#[derive(Clone)]
pub struct GcpOptions {
    /// The server's base URL.
    pub server: String,
    /// A member's API key (an admin's, for `agent`).
    pub api_key: SecretString,
    /// Check this named agent instead of the team.
    pub agent: Option<String>,
    /// STS, IAM Credentials, IAM and Vertex AI at one endpoint (the emulator).
    pub endpoint_url: Option<String>,
    /// A Google access token that may read the provider
    /// (`iam.workloadIdentityPoolProviders.get`): enables the condition check.
    pub admin_token: Option<SecretString>,
    /// The catalog model to call (default: the highest-ranked Claude model the
    /// team enables on Vertex, else on Vertex in its location).
    pub model: Option<String>,
    /// The caller's clock, Unix milliseconds.
    pub now_ms: byollm_federation::gcp::NowMs,
}

impl std::fmt::Debug for GcpOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GcpOptions")
            .field("server", &self.server)
            .field("agent", &self.agent)
            .field("endpoint_url", &self.endpoint_url)
            .field("model", &self.model)
            .finish_non_exhaustive()
    }
}

const STEPS: [StepName; 8] = [
    StepName::Server,
    StepName::Discovery,
    StepName::Jwks,
    StepName::Token,
    StepName::Provider,
    StepName::GoogleSts,
    StepName::Impersonation,
    StepName::Vertex,
];

struct Gcp<'a> {
    opts: &'a GcpOptions,
    client: Client,
    http: reqwest::Client,
    steps: Vec<Step>,
    models: Vec<ModelCheck>,
    notes: Vec<String>,
    location: Option<String>,
}

/// Runs the GCP walk and returns its report.
pub async fn run(opts: &GcpOptions) -> Report {
    let target = match &opts.agent {
        Some(a) => format!("agent {a}"),
        None => "team".to_owned(),
    };
    let client = match connect(&opts.server, &opts.api_key, &target) {
        Ok(c) => c,
        Err(report) => return *report,
    };
    let mut w = Gcp {
        opts,
        client,
        http: reqwest::Client::new(),
        steps: Vec::new(),
        models: Vec::new(),
        notes: Vec::new(),
        location: None,
    };
    let diagnosis = w.walk().await.err();
    settle_steps(&mut w.steps, diagnosis.as_ref(), &STEPS);
    Report::new(
        target, None, w.location, w.steps, w.models, diagnosis, w.notes,
    )
}

/// The team's Vertex settings, complete.
struct Host {
    team: String,
    project_id: String,
    /// Sent as `x-goog-user-project` when set, exactly as the gateway does.
    quota_project: Option<String>,
    location: String,
    audience: String,
    service_account: Option<String>,
    settings: LlmSettings,
}

fn host_of(h: &GcpVertexHost) -> Option<(String, String, String)> {
    Some((h.project_id.clone()?, h.location.clone()?, h.audience()?))
}

impl Gcp<'_> {
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

    fn base(&self, location: &str) -> String {
        match (&self.opts.endpoint_url, location) {
            (Some(u), _) => u.trim_end_matches('/').to_owned(),
            (None, "global") => "https://aiplatform.googleapis.com".to_owned(),
            (None, l) => format!("https://{l}-aiplatform.googleapis.com"),
        }
    }

    async fn walk(&mut self) -> Result<(), Diagnosis> {
        let host = self.server_step().await?;
        let issuer = self.discovery_step().await?;
        let kids = self.jwks_step().await?;
        let token = self.token_step(&host, &issuer, &kids).await?;
        self.provider_step(&host).await?;
        let Some(token) = token else {
            self.skip(
                StepName::GoogleSts,
                "no token to exchange (see the token step)",
            );
            self.skip(StepName::Impersonation, "no token to exchange");
            self.skip(StepName::Vertex, "no token to call Vertex AI with");
            return Ok(());
        };
        let sts = GoogleSts::new(self.opts.endpoint_url.clone(), self.opts.now_ms.clone());
        let federated = sts
            .exchange_token(&token, &host.audience)
            .await
            .map_err(|e| sts_failure(&e.to_string(), &host))?;
        self.ok(
            StepName::GoogleSts,
            format!("exchanged the token at the provider {}", host.audience),
        );
        let access = match &host.service_account {
            None => {
                self.ok(
                    StepName::Impersonation,
                    "no service account set: the federated token calls Vertex AI directly",
                );
                federated
            }
            Some(sa) => {
                let t = sts.impersonate(&federated, sa).await.map_err(|e| {
                    fail(
                        StepName::Impersonation,
                        Cause::GcpImpersonationDenied,
                        format!("impersonating {sa} failed"),
                        vec![e.to_string()],
                        format!(
                            "grant roles/iam.workloadIdentityUser on {sa} to the team's principal \
                             set (byollm gcp setup-script --service-account {sa} writes it)"
                        ),
                    )
                })?;
                self.ok(StepName::Impersonation, format!("acting as {sa}"));
                t
            }
        };
        self.vertex_step(&host, &access).await
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
        let h = &settings.hosts.gcp_vertex;
        let Some((project_id, location, audience)) = host_of(h).filter(|_| h.enabled) else {
            return Err(fail(
                s,
                Cause::GcpNotConfigured,
                "Vertex AI is not enabled for the team, or its project, number, pool, provider or location is not set",
                vec![format!(
                    "hosts.gcp_vertex = {{enabled: {}, project_id: {:?}, project_number: {:?}, pool_id: {:?}, provider_id: {:?}, location: {:?}}}",
                    h.enabled, h.project_id, h.project_number, h.pool_id, h.provider_id, h.location
                )],
                "PATCH /api/v1/team/llm-settings with {\"hosts\":{\"gcp_vertex\":{\"enabled\":true,…}}} (an admin's key); `byollm gcp setup-script` creates the pool and provider",
            ));
        };
        if let Some(uid) = &self.opts.agent {
            self.client.agent(uid).await.map_err(|e| match e.status() {
                Some(404) => fail(
                    s,
                    Cause::AgentNotFound,
                    format!("agent {uid} is not an agent of team {}", me.team.uid),
                    vec![e.to_string()],
                    "list the team's agents with `byollm agents list`",
                ),
                _ => server_error(s, &format!("GET {}", routes::AGENT_IDENTITY), &e),
            })?;
        }
        self.location = Some(location.clone());
        self.ok(
            s,
            format!(
                "team {} ({}): Vertex AI in project {project_id}, {location}",
                me.team.name, me.team.uid
            ),
        );
        Ok(Host {
            team: me.team.uid,
            quota_project: h.quota_project.clone(),
            project_id,
            location,
            audience,
            service_account: h.service_account.clone(),
            settings: settings.clone(),
        })
    }

    async fn discovery_step(&mut self) -> Result<String, Diagnosis> {
        let (issuer, jwks_uri) = https_discovery(
            &self.client,
            "Google requires an HTTPS issuer URI",
            "serve the issuer over https (server.issuer_url) and set the provider's --issuer-uri to exactly that URL",
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
            &["RS256", "ES256"],
            "the JWKS has no key Google can verify (Google STS takes RS256 or ES256 only)",
            "rotate to an ES256 or RS256 key: byollm keys rotate",
        )
        .await?;
        self.ok(
            StepName::Jwks,
            format!("{all} key(s), {} usable by Google", usable.len()),
        );
        Ok(usable)
    }

    async fn token_step(
        &mut self,
        host: &Host,
        issuer: &str,
        kids: &[String],
    ) -> Result<Option<SecretString>, Diagnosis> {
        let s = StepName::Token;
        let req = IdentityTokenRequest {
            audience: host.audience.clone(),
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
        let (iss, aud, sub, kid) = (
            text(&claims, "iss"),
            text(&claims, "aud"),
            text(&claims, "sub"),
            text(&header, "kid"),
        );
        if iss != issuer || !kids.contains(&kid) {
            return Err(fail(
                s,
                Cause::DiscoveryBroken,
                "the token does not match the discovery document",
                vec![format!(
                    "token iss {iss} kid {kid}; discovery issuer {issuer}"
                )],
                "restart the server so it serves its current keys; check server.issuer_url",
            ));
        }
        if sub.len() > byollm_policy::gcp::explain::SUBJECT_MAX_BYTES {
            self.notes.push(format!(
                "the token's sub is {} bytes; Google refuses a google.subject over 127 bytes",
                sub.len()
            ));
        }
        self.ok(
            s,
            format!("sub {sub}, aud {aud}, team {}", text(&claims, "team")),
        );
        Ok(Some(token))
    }

    /// Reads the provider (with the admin token) and explains its condition.
    async fn provider_step(&mut self, host: &Host) -> Result<(), Diagnosis> {
        let s = StepName::Provider;
        let Some(admin) = &self.opts.admin_token else {
            self.skip(
                s,
                "the provider's attribute condition was not read: pass a Google access token \
                 that may read it (--gcp-access-token-file) to check that it admits no other team",
            );
            return Ok(());
        };
        let name = host
            .audience
            .trim_start_matches(byollm_policy::gcp::IAM_PREFIX);
        let base = self
            .opts
            .endpoint_url
            .clone()
            .unwrap_or_else(|| "https://iam.googleapis.com".to_owned());
        let url = format!("{}/v1/{name}", base.trim_end_matches('/'));
        let resp = self
            .http
            .get(&url)
            .bearer_auth(admin.expose_secret())
            .send()
            .await;
        let (status, body) = match resp {
            Ok(r) => (
                r.status().as_u16(),
                r.json::<Value>().await.unwrap_or_default(),
            ),
            Err(e) => {
                self.notes.push(format!("could not read the provider: {e}"));
                self.skip(s, "could not reach IAM to read the provider");
                return Ok(());
            }
        };
        if status == 404 {
            return Err(fail(
                s,
                Cause::GcpProviderMissing,
                format!("the provider {name} does not exist"),
                vec![body.to_string()],
                "run the script `byollm gcp setup-script` prints, or fix hosts.gcp_vertex's pool_id / provider_id",
            ));
        }
        if status != 200 {
            self.notes
                .push(format!("reading the provider answered {status}: {body}"));
            self.skip(s, format!("could not read the provider ({status})"));
            return Ok(());
        }
        let mapping = body["attributeMapping"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                    .collect()
            })
            .unwrap_or_default();
        let condition = body["attributeCondition"]
            .as_str()
            .filter(|c| !c.is_empty());
        let e = explain_condition(&mapping, condition, &host.team, &[]);
        let fix = format!(
            "set the condition to admit the team only: gcloud iam workload-identity-pools providers update-oidc … --attribute-condition=\"assertion.team == '{}'\" (or rerun `byollm gcp setup-script`)",
            host.team
        );
        if e.has_finding("no_condition") {
            return Err(fail(
                s,
                Cause::GcpNoCondition,
                "the provider has no attribute condition: every byollm team's tokens are accepted",
                vec![format!("provider {name}: attributeCondition absent")],
                fix,
            ));
        }
        if e.has_finding("admits_other_teams") {
            return Err(fail(
                s,
                Cause::GcpConditionAdmitsOtherTeams,
                "the provider's attribute condition admits other teams' tokens",
                vec![
                    format!("attributeCondition: {}", condition.unwrap_or_default()),
                    e.summary.clone(),
                ],
                fix,
            ));
        }
        if body["disabled"].as_bool() == Some(true) {
            return Err(fail(
                s,
                Cause::GcpProviderMissing,
                format!("the provider {name} is disabled"),
                vec![],
                "gcloud iam workload-identity-pools providers update-oidc … --no-disabled",
            ));
        }
        self.ok(
            s,
            format!("condition {}: {}", condition.unwrap_or_default(), e.summary),
        );
        Ok(())
    }

    async fn vertex_step(&mut self, host: &Host, access: &AccessToken) -> Result<(), Diagnosis> {
        let s = StepName::Vertex;
        let (model, model_ref) =
            match pick_model(&host.settings, &host.location, self.opts.model.as_deref()) {
                Some(m) => m,
                None => {
                    self.skip(
                        s,
                        format!("no Claude model on Vertex AI in {} to call", host.location),
                    );
                    return Ok(());
                }
            };
        let url = format!(
            "{}/v1/projects/{}/locations/{}/publishers/anthropic/models/{model_ref}:rawPredict",
            self.base(&host.location),
            host.project_id,
            host.location
        );
        let mut req = self
            .http
            .post(&url)
            .bearer_auth(access.token.expose_secret());
        if let Some(q) = &host.quota_project {
            req = req.header("x-goog-user-project", q);
        }
        let resp = req
            .json(
                &json!({"anthropic_version": "vertex-2023-10-16", "max_tokens": 1,
                          "messages": [{"role": "user", "content": "ping"}]}),
            )
            .send()
            .await;
        let (status, body) = match resp {
            Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
            Err(e) => (0, e.to_string()),
        };
        let ok = status == 200;
        let detail = if ok {
            "answered a one-token rawPredict".to_owned()
        } else {
            format!("{status}: {}", body.chars().take(300).collect::<String>())
        };
        if ok {
            self.models.push(ModelCheck {
                model: model.clone(),
                profile: model_ref.clone(),
                status: Status::Ok,
                detail,
                cause: None,
            });
            self.ok(
                s,
                format!("{model} ({model_ref}) answered in {}", host.location),
            );
            return Ok(());
        }
        let (cause, fix) = match status {
            403 => (
                Cause::VertexPermissionDenied,
                format!(
                    "grant roles/aiplatform.user on project {} to the team's principal set (or the service account); byollm gcp setup-script writes the binding",
                    host.project_id
                ),
            ),
            400 if body.contains("FAILED_PRECONDITION") => (
                Cause::VertexModelNotEnabled,
                format!(
                    "enable {model_ref} for project {} in Vertex AI Model Garden",
                    host.project_id
                ),
            ),
            429 => (
                Cause::Throttled,
                "Vertex AI quota: request a quota increase for the model, or try another location"
                    .to_owned(),
            ),
            _ => (
                Cause::VertexFailed,
                "see Vertex AI's answer above".to_owned(),
            ),
        };
        self.models.push(ModelCheck {
            model: model.clone(),
            profile: model_ref.clone(),
            status: Status::Failed,
            detail,
            cause: Some(cause),
        });
        Err(fail(
            s,
            cause,
            format!("Vertex AI refused {model_ref} in {}", host.location),
            vec![format!("{status}: {body}")],
            fix,
        ))
    }
}
