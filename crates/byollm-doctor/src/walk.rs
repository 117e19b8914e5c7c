//! The walk: each step either records its success and hands the next one what
//! it needs, or returns the [`Diagnosis`] that ends the walk.

use base64::Engine as _;
use byollm_api::client::{Client, ClientError};
use byollm_api::routes;
use byollm_api::types::{IdentityTokenRequest, LlmSettings, STS_AUDIENCE};
use secrecy::{ExposeSecret as _, SecretString};
use serde_json::Value;

use super::bedrock::bedrock_check;
use super::iam::{Iam, IamCredentials};
use super::{Cause, Diagnosis, ModelCheck, Report, Status, Step, StepName};

/// Lifetime of the identity token the doctor mints: enough for one STS call.
const TOKEN_SECONDS: i64 = 300;

/// What the doctor checks and with what.
#[derive(Debug, Clone)]
pub struct Options {
    /// The server's base URL.
    pub server: String,
    /// A member's API key (an admin's, for `--agent`).
    pub api_key: SecretString,
    /// Check this named agent instead of the team.
    pub agent: Option<String>,
    /// STS and Bedrock endpoint override (the emulator).
    pub aws_endpoint_url: Option<String>,
    /// IAM endpoint override (defaults to `aws_endpoint_url`, else IAM's).
    pub iam_endpoint_url: Option<String>,
    /// Credentials that may read IAM, for the precise diagnoses.
    pub iam: Option<IamCredentials>,
    /// `DurationSeconds` asked of STS (the broker asks for 3600).
    pub duration_seconds: i32,
    /// The model to call (default: the highest-ranked Claude model the team routes
    /// through Bedrock).
    pub model: Option<String>,
}

/// What the server step learned.
#[derive(Debug, Clone)]
pub(super) struct Ctx {
    pub team_uid: String,
    pub settings: LlmSettings,
    pub role_arn: String,
    pub region: String,
    pub audience: String,
    pub agent: Option<String>,
    /// The role is the agent's own (its override), not the team's.
    pub own_role: bool,
}

/// A minted token and its decoded claims.
#[derive(Debug)]
pub(super) struct Minted {
    pub token: SecretString,
    pub iss: String,
    pub aud: String,
    pub sub: String,
    pub tags: bool,
    pub source_identity: bool,
}

pub(super) struct Walk<'a> {
    pub(super) opts: &'a Options,
    pub(super) client: Client,
    steps: Vec<Step>,
    pub(super) models: Vec<ModelCheck>,
    pub(super) notes: Vec<String>,
    pub(super) iam: Option<Iam>,
    role_arn: Option<String>,
    region: Option<String>,
}

/// Runs the doctor and returns its report (it never fails: a failure is the
/// report's diagnosis). With [`Options::agent`] the agent's token comes from the
/// admin's diagnosis route, so no run is started and nothing is billed.
pub async fn run(opts: &Options) -> Report {
    let target = match &opts.agent {
        Some(a) => format!("agent {a}"),
        None => "team".to_owned(),
    };
    let client = match connect(&opts.server, &opts.api_key, &target) {
        Ok(c) => c,
        Err(report) => return *report,
    };
    let iam_endpoint = opts
        .iam_endpoint_url
        .clone()
        .or_else(|| opts.aws_endpoint_url.clone());
    let mut w = Walk {
        opts,
        client,
        steps: Vec::new(),
        models: Vec::new(),
        notes: Vec::new(),
        iam: opts
            .iam
            .clone()
            .map(|c| Iam::new(iam_endpoint.as_deref(), c)),
        role_arn: None,
        region: None,
    };
    let diagnosis = w.walk().await.err();
    settle_steps(
        &mut w.steps,
        diagnosis.as_ref(),
        &[
            StepName::Server,
            StepName::Discovery,
            StepName::Jwks,
            StepName::Token,
            StepName::Sts,
            StepName::Bedrock,
        ],
    );
    Report::new(
        target, w.role_arn, w.region, w.steps, w.models, diagnosis, w.notes,
    )
}

/// The API client for `server`, or the report of a walk that could not start
/// (an unusable `--server`) for `target`.
pub(super) fn connect(
    server: &str,
    api_key: &SecretString,
    target: &str,
) -> Result<Client, Box<Report>> {
    Client::new(server, Some(api_key.clone())).map_err(|e| {
        let d = fail(
            StepName::Server,
            Cause::ServerUnreachable,
            e.to_string(),
            vec![],
            "pass --server http(s)://HOST:PORT",
        );
        Box::new(Report::new(
            target.to_owned(),
            None,
            None,
            vec![],
            vec![],
            Some(d),
            vec![],
        ))
    })
}

/// Completes a walk's steps: the step its diagnosis names is failed, every
/// step of `order` it did not reach is skipped ("not reached"), and the steps
/// are put in `order`, so a report always lists the whole walk.
pub(super) fn settle_steps(
    steps: &mut Vec<Step>,
    diagnosis: Option<&Diagnosis>,
    order: &[StepName],
) {
    if let Some(d) = diagnosis {
        steps.push(Step {
            step: d.step,
            status: Status::Failed,
            detail: d.summary.clone(),
        });
    }
    for &name in order {
        if !steps.iter().any(|s| s.step == name) {
            steps.push(Step {
                step: name,
                status: Status::Skipped,
                detail: "not reached".to_owned(),
            });
        }
    }
    steps.sort_by_key(|s| {
        order
            .iter()
            .position(|n| *n == s.step)
            .unwrap_or(order.len())
    });
}

/// The `(kid, alg)` of each key a JWKS document lists (empty strings for a
/// missing member), for the walks' JWKS steps.
pub(super) fn jwks_keys(jwks: &Value) -> Vec<(String, String)> {
    let field = |k: &Value, n: &str| {
        k.get(n)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    jwks.get("keys")
        .and_then(Value::as_array)
        .map(|ks| {
            ks.iter()
                .map(|k| (field(k, "kid"), field(k, "alg")))
                .collect()
        })
        .unwrap_or_default()
}

pub(super) fn fail(
    step: StepName,
    cause: Cause,
    summary: impl Into<String>,
    evidence: Vec<String>,
    fix: impl Into<String>,
) -> Diagnosis {
    Diagnosis {
        step,
        cause,
        summary: summary.into(),
        evidence,
        fix: fix.into(),
    }
}

pub(super) fn server_error(step: StepName, what: &str, e: &ClientError) -> Diagnosis {
    match e {
        ClientError::Transport { .. } | ClientError::Config(_) => fail(
            step,
            Cause::ServerUnreachable,
            format!("{what}: {e}"),
            vec![],
            "check --server (or BYOLLM_SERVER) and that `byollm serve` is running there",
        ),
        ClientError::Api { status: 401, .. } => fail(
            step,
            Cause::ApiKeyRefused,
            format!("{what}: the server refused the API key"),
            vec![e.to_string()],
            "set BYOLLM_API_KEY to a member's API key of the team (an admin's for --agent)",
        ),
        _ => fail(
            step,
            Cause::TokenRefused,
            format!("{what}: {e}"),
            vec![],
            "see the server's message and hint above",
        ),
    }
}

impl Walk<'_> {
    pub(super) fn ok(&mut self, step: StepName, detail: impl Into<String>) {
        self.steps.push(Step {
            step,
            status: Status::Ok,
            detail: detail.into(),
        });
    }

    pub(super) fn skip(&mut self, step: StepName, detail: impl Into<String>) {
        self.steps.push(Step {
            step,
            status: Status::Skipped,
            detail: detail.into(),
        });
    }

    async fn walk(&mut self) -> Result<(), Diagnosis> {
        let ctx = self.server_step().await?;
        let issuer = self.discovery_step().await?;
        self.trust_notes(&ctx, &issuer).await;
        let kids = self.jwks_step().await?;
        let minted = self.token_step(&ctx, &issuer, &kids).await?;
        let creds = self.sts_step(&ctx, minted.as_ref()).await?;
        match creds {
            Some(creds) => {
                let (models, failure) = bedrock_check(self.opts, &ctx, &creds).await;
                let called = models.iter().filter(|m| m.status == Status::Ok).count();
                let total = models.len();
                let mut names: Vec<&str> = models.iter().map(|m| m.model.as_str()).collect();
                names.dedup();
                let model_count = names.len();
                self.models = models;
                if let Some(d) = failure {
                    return Err(d);
                }
                self.ok(
                    StepName::Bedrock,
                    format!(
                        "{called} of {total} inference profile(s) of {model_count} model(s) \
                         answered a one-token InvokeModel"
                    ),
                );
            }
            None => self.skip(
                StepName::Bedrock,
                "no credentials to call Bedrock with (see the sts step)",
            ),
        }
        Ok(())
    }

    async fn server_step(&mut self) -> Result<Ctx, Diagnosis> {
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
        let bedrock = &settings.hosts.aws_bedrock;
        let (mut role_arn, mut region) = (bedrock.role_arn.clone(), bedrock.region.clone());
        let mut own_role = false;
        let mut who = format!("team {} ({})", me.team.name, me.team.uid);
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
            let aws = &agent.inference_providers.aws;
            if aws.disabled {
                return Err(fail(
                    s,
                    Cause::AgentBedrockDisabled,
                    format!(
                        "agent {} ({uid}) has Bedrock disabled by its override",
                        agent.name
                    ),
                    vec!["inference_providers.aws.disabled = true".to_owned()],
                    format!(
                        "byollm agents update {uid} --aws-disabled false (PATCH \
                         {{\"inference_providers\":{{\"aws\":{{\"disabled\":false}}}}}})"
                    ),
                ));
            }
            if aws.role_arn.is_some() {
                role_arn.clone_from(&aws.role_arn);
                own_role = true;
            }
            if aws.region.is_some() {
                region.clone_from(&aws.region);
            }
            who = format!("agent {} ({uid}) of {who}", agent.name);
        }
        let (Some(role_arn), Some(region), true) = (role_arn, region, bedrock.enabled) else {
            return Err(fail(
                s,
                Cause::BedrockNotConfigured,
                "Bedrock is not enabled for the team, or its role ARN or region is not set",
                vec![format!(
                    "hosts.aws_bedrock = {{enabled: {}, role_arn: {:?}, region: {:?}}}",
                    bedrock.enabled, bedrock.role_arn, bedrock.region
                )],
                "byollm settings set --bedrock on --role-arn ARN --region REGION (an admin's key)",
            ));
        };
        let audience = if settings.token_audiences.iter().any(|a| a == STS_AUDIENCE) {
            STS_AUDIENCE.to_owned()
        } else {
            let first = settings
                .token_audiences
                .first()
                .cloned()
                .unwrap_or_default();
            self.notes.push(format!(
                "the team's token_audiences do not include {STS_AUDIENCE}; trying {first}"
            ));
            first
        };
        self.role_arn = Some(role_arn.clone());
        self.region = Some(region.clone());
        self.ok(s, format!("{who}: Bedrock role {role_arn} in {region}"));
        Ok(Ctx {
            team_uid: me.team.uid,
            settings,
            role_arn,
            region,
            audience,
            agent: self.opts.agent.clone(),
            own_role,
        })
    }

    async fn discovery_step(&mut self) -> Result<String, Diagnosis> {
        let s = StepName::Discovery;
        let doc = self
            .client
            .discovery()
            .await
            .map_err(|e| server_error(s, &format!("GET {}", routes::DISCOVERY), &e))?;
        let issuer = doc
            .get("issuer")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let jwks_uri = doc
            .get("jwks_uri")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if !issuer.starts_with("https://") {
            return Err(fail(
                s,
                Cause::IssuerNotHttps,
                format!("the issuer is `{issuer}`; AWS accepts only https:// issuers"),
                vec![format!("discovery document: issuer = {issuer}")],
                "serve the issuer over https and start the server with --issuer-url \
                 https://HOST (server.issuer_url); then register exactly that URL as the IAM OIDC provider",
            ));
        }
        if !jwks_uri.starts_with("https://") {
            return Err(fail(
                s,
                Cause::DiscoveryBroken,
                format!("the discovery document's jwks_uri is `{jwks_uri}`"),
                vec![],
                "AWS fetches the keys from jwks_uri over https; fix server.issuer_url",
            ));
        }
        if issuer.ends_with('/') {
            self.notes.push(
                "the issuer URL ends with `/`: the IAM provider URL and the trust policy's \
                 condition keys must end with `/` too"
                    .to_owned(),
            );
        }
        self.ok(s, format!("issuer {issuer}, jwks_uri {jwks_uri}"));
        Ok(issuer)
    }

    async fn jwks_step(&mut self) -> Result<Vec<String>, Diagnosis> {
        let s = StepName::Jwks;
        let jwks = self
            .client
            .jwks()
            .await
            .map_err(|e| server_error(s, &format!("GET {}", routes::JWKS), &e))?;
        const AWS_ALGS: [&str; 6] = ["RS256", "RS384", "RS512", "ES256", "ES384", "ES512"];
        let keys = jwks_keys(&jwks);
        let usable: Vec<String> = keys
            .iter()
            .filter(|(_, alg)| AWS_ALGS.contains(&alg.as_str()))
            .map(|(kid, _)| kid.clone())
            .collect();
        if usable.is_empty() {
            return Err(fail(
                s,
                Cause::DiscoveryBroken,
                "the JWKS has no key AWS can verify (RS/ES 256/384/512)",
                vec![format!("keys: {keys:?}")],
                "rotate to an ES256 or RS256 key: byollm keys rotate",
            ));
        }
        let algs: Vec<&str> = keys.iter().map(|(_, a)| a.as_str()).collect();
        self.ok(s, format!("{} key(s): {}", keys.len(), algs.join(", ")));
        Ok(usable)
    }

    async fn token_step(
        &mut self,
        ctx: &Ctx,
        issuer: &str,
        kids: &[String],
    ) -> Result<Option<Minted>, Diagnosis> {
        let s = StepName::Token;
        let req = IdentityTokenRequest {
            audience: ctx.audience.clone(),
            requested_duration_seconds: TOKEN_SECONDS,
        };
        let minted =
            match &ctx.agent {
                None => self.client.identity_token(&req).await.map_err(|e| {
                    server_error(s, &format!("POST {}", routes::IDENTITY_TOKEN), &e)
                })?,
                Some(agent) => match self.client.agent_identity_token(agent, &req).await {
                    Ok(t) => t,
                    Err(e) if e.status() == Some(403) => {
                        self.skip(
                            s,
                            format!(
                                "the server refused to mint the agent's token for this key (an \
                             admin's API key can): {e}"
                            ),
                        );
                        return Ok(None);
                    }
                    Err(e) => {
                        return Err(server_error(
                            s,
                            &format!("POST {}", routes::AGENT_IDENTITY_TOKEN),
                            &e,
                        ));
                    }
                },
            };
        let token = SecretString::from(minted.token.expose().to_owned());
        let (header, claims) = decode_jwt(token.expose_secret()).ok_or_else(|| {
            fail(
                s,
                Cause::TokenRefused,
                "the server returned a token that is not a JWT",
                vec![],
                "report this as a bug",
            )
        })?;
        let text = |v: &Value, n: &str| {
            v.get(n)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let m = Minted {
            iss: text(&claims, "iss"),
            aud: text(&claims, "aud"),
            sub: text(&claims, "sub"),
            tags: claims.get("https://aws.amazon.com/tags").is_some(),
            source_identity: claims
                .get("https://aws.amazon.com/source_identity")
                .is_some(),
            token,
        };
        let kid = text(&header, "kid");
        if m.iss != issuer || !kids.contains(&kid) {
            return Err(fail(
                s,
                Cause::DiscoveryBroken,
                "the token does not match the discovery document",
                vec![format!(
                    "token iss {} kid {kid}; discovery issuer {issuer}",
                    m.iss
                )],
                "restart the server so it serves its current keys; check server.issuer_url",
            ));
        }
        let mut extras = Vec::new();
        if m.tags {
            extras.push("session tags");
        }
        if m.source_identity {
            extras.push("a source identity");
        }
        let extras = if extras.is_empty() {
            String::new()
        } else {
            format!(", carries {}", extras.join(" and "))
        };
        self.ok(s, format!("sub {}, aud {}{extras}", m.sub, m.aud));
        Ok(Some(m))
    }
}

/// Decodes a JWT's header and claims without verifying it (the doctor only reads
/// what the server minted).
pub fn decode_jwt(token: &str) -> Option<(Value, Value)> {
    let mut parts = token.split('.');
    let (h, p) = (parts.next()?, parts.next()?);
    let dec = |s: &str| -> Option<Value> {
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(s.trim_end_matches('='))
            .ok()?;
        serde_json::from_slice(&bytes).ok()
    };
    Some((dec(h)?, dec(p)?))
}

/// The discovery step the GCP and Azure walks share: the issuer and its
/// `jwks_uri`, both `https://` (`why` says which cloud requires it, `fix` what
/// to change), or the failure naming them.
pub(super) async fn https_discovery(
    client: &Client,
    why: &str,
    fix: &str,
) -> Result<(String, String), Diagnosis> {
    let s = StepName::Discovery;
    let doc = client
        .discovery()
        .await
        .map_err(|e| server_error(s, &format!("GET {}", routes::DISCOVERY), &e))?;
    let text = |n: &str| {
        doc.get(n)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let (issuer, jwks_uri) = (text("issuer"), text("jwks_uri"));
    if !issuer.starts_with("https://") || !jwks_uri.starts_with("https://") {
        return Err(fail(
            s,
            Cause::IssuerNotHttps,
            format!("the issuer is `{issuer}` (keys at `{jwks_uri}`); {why}"),
            vec![format!(
                "discovery document: issuer = {issuer}, jwks_uri = {jwks_uri}"
            )],
            fix,
        ));
    }
    Ok((issuer, jwks_uri))
}

/// What minting the walked actor's token gave: the token with its decoded
/// header and claims, or why it could not be minted with this key (an
/// agent's, with a member's key).
pub(super) enum Mint {
    /// The token, its JOSE header and its claims.
    Token {
        /// The token itself (never printed).
        token: SecretString,
        /// Its header (`alg`, `kid`).
        header: Value,
        /// Its claims.
        claims: Value,
    },
    /// The server refused to mint the agent's token for this key.
    NotForThisKey(String),
}

/// The string claim or header member `name` of `v`, empty when absent.
pub(super) fn text(v: &Value, name: &str) -> String {
    v.get(name)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// The JWKS step the GCP and Azure walks share: the kids of the keys whose
/// `alg` is one of `algs` with the count of all keys, or the failure saying
/// `why` none is usable and `fix`.
pub(super) async fn usable_kids(
    client: &Client,
    algs: &[&str],
    why: &str,
    fix: &str,
) -> Result<(usize, Vec<String>), Diagnosis> {
    let s = StepName::Jwks;
    let jwks = client
        .jwks()
        .await
        .map_err(|e| server_error(s, &format!("GET {}", routes::JWKS), &e))?;
    let keys = jwks_keys(&jwks);
    let usable: Vec<String> = keys
        .iter()
        .filter(|(_, alg)| algs.contains(&alg.as_str()))
        .map(|(kid, _)| kid.clone())
        .collect();
    if usable.is_empty() {
        return Err(fail(
            s,
            Cause::DiscoveryBroken,
            why,
            vec![format!("keys: {keys:?}")],
            fix,
        ));
    }
    Ok((keys.len(), usable))
}

/// Mints the token for `req`: the caller's own, or (with `agent`) the
/// agent's through the admin's diagnosis route; 403 there is not a failure
/// of the path, only of this key.
pub(super) async fn mint(
    client: &Client,
    agent: Option<&str>,
    req: &IdentityTokenRequest,
) -> Result<Mint, Diagnosis> {
    let s = StepName::Token;
    let minted = match agent {
        None => client
            .identity_token(req)
            .await
            .map_err(|e| server_error(s, &format!("POST {}", routes::IDENTITY_TOKEN), &e))?,
        Some(agent) => match client.agent_identity_token(agent, req).await {
            Ok(t) => t,
            Err(e) if e.status() == Some(403) => {
                return Ok(Mint::NotForThisKey(format!(
                    "the server refused to mint the agent's token for this key (an admin's API key can): {e}"
                )));
            }
            Err(e) => {
                return Err(server_error(
                    s,
                    &format!("POST {}", routes::AGENT_IDENTITY_TOKEN),
                    &e,
                ));
            }
        },
    };
    let token = SecretString::from(minted.token.expose().to_owned());
    let Some((header, claims)) = decode_jwt(token.expose_secret()) else {
        return Err(fail(
            s,
            Cause::TokenRefused,
            "the server returned a token that is not a JWT",
            vec![],
            "report this as a bug",
        ));
    };
    Ok(Mint::Token {
        token,
        header,
        claims,
    })
}
