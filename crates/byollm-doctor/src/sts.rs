//! The STS step: `AssumeRoleWithWebIdentity` with the minted token through the
//! server's own STS code path (`byollm_federation::aws`), and what each refusal
//! means. When the agent's token cannot be minted (worker identity tokens off),
//! its trust is decided offline by the policy engine on the role's trust policy.

use byollm_api::routes;
use byollm_api::types::STS_AUDIENCE;
use byollm_federation::aws::{AssumeRole, Sts, TemporaryCredentials};
use byollm_federation::{Exchange as _, ExchangeError as StsError};
use serde_json::Value;

use super::iam::{ProviderInfo, RoleInfo, role_name};
use super::trust::{TrustQuery, analyse_trust};
use super::walk::{Ctx, Minted, Walk, fail};
use super::{Cause, Diagnosis, StepName};

impl Walk<'_> {
    async fn iam_role(&mut self, role_arn: &str) -> Option<Result<Option<RoleInfo>, String>> {
        let iam = self.iam.as_ref()?;
        let name = role_name(role_arn)?;
        Some(iam.role(name).await.map_err(|e| format!("{e:#}")))
    }

    async fn iam_providers(&mut self) -> Option<Result<Vec<ProviderInfo>, String>> {
        let iam = self.iam.as_ref()?;
        Some(iam.providers().await.map_err(|e| format!("{e:#}")))
    }

    pub(super) async fn sts_step(
        &mut self,
        ctx: &Ctx,
        minted: Option<&Minted>,
    ) -> Result<Option<TemporaryCredentials>, Diagnosis> {
        let s = StepName::Sts;
        let Some(m) = minted else {
            return self.sts_offline(ctx).await;
        };
        let sts = Sts::new(self.opts.aws_endpoint_url.clone());
        let target = AssumeRole {
            role_arn: ctx.role_arn.clone(),
            role_session_name: "byollm-doctor".to_owned(),
            region: ctx.region.clone(),
            duration_seconds: Some(self.opts.duration_seconds),
        };
        let result = sts.exchange(&m.token, &target).await;
        let err = match result {
            Ok(creds) => {
                self.ok(
                    s,
                    format!(
                        "AssumeRoleWithWebIdentity {} for {} s: credentials issued",
                        ctx.role_arn, self.opts.duration_seconds
                    ),
                );
                return Ok(Some(creds));
            }
            Err(e) => e,
        };
        let text = err.to_string();
        let host = m.iss.trim_start_matches("https://").to_owned();
        let evidence = vec![format!("STS: {text}")];
        if text.contains("No OpenIDConnect provider found") {
            return Err(self.provider_missing(&m.iss, &host, evidence).await);
        }
        if text.contains("Couldn't retrieve verification key") {
            return Err(fail(
                s,
                Cause::JwksUnreachable,
                "AWS could not fetch the issuer's signing keys",
                evidence,
                format!(
                    "make {}{} and its jwks_uri reachable from the \
                     internet over https with a publicly trusted certificate",
                    m.iss.trim_end_matches('/'),
                    routes::DISCOVERY
                ),
            ));
        }
        if text.contains("Incorrect token audience") {
            let mut evidence = evidence;
            evidence.push(format!("token aud = {}", m.aud));
            let mut arn = "PROVIDER_ARN".to_owned();
            if let Some(Ok(ps)) = self.iam_providers().await
                && let Some(p) = ps.iter().find(|p| p.url == host)
            {
                evidence.push(format!(
                    "provider {} client ids = {:?}",
                    p.arn, p.client_ids
                ));
                arn.clone_from(&p.arn);
            }
            return Err(fail(
                s,
                Cause::AudienceNotInClientIds,
                format!(
                    "the audience `{}` is not in the OIDC provider's client id list",
                    m.aud
                ),
                evidence,
                format!(
                    "aws iam add-client-id-to-open-id-connect-provider \
                     --open-id-connect-provider-arn {arn} --client-id {}",
                    m.aud
                ),
            ));
        }
        match err {
            StsError::AccessDenied(_) => {
                let query = TrustQuery {
                    issuer: m.iss.clone(),
                    sub: m.sub.clone(),
                    aud: m.aud.clone(),
                    tags: m.tags,
                    source_identity: m.source_identity,
                    role_arn: ctx.role_arn.clone(),
                    team_uid: ctx.team_uid.clone(),
                    agent: ctx.agent.clone(),
                };
                let role = self.iam_role(&ctx.role_arn).await;
                let providers = self.iam_providers().await;
                Err(
                    analyse_trust(&query, role, providers, evidence).unwrap_or_else(|| {
                        fail(
                            s,
                            Cause::TrustPolicyRefused,
                            "STS refused, yet the role's trust policy admits this token",
                            vec![format!("STS: {text}")],
                            "check for an SCP or permissions boundary, and that the role ARN names \
                         the account where the OIDC provider is registered",
                        )
                    }),
                )
            }
            StsError::Validation(_) if text.contains("MaxSessionDuration") => {
                let mut evidence = evidence;
                evidence.push(format!(
                    "requested DurationSeconds = {}",
                    self.opts.duration_seconds
                ));
                let name = role_name(&ctx.role_arn).unwrap_or("ROLE").to_owned();
                if let Some(Ok(Some(role))) = self.iam_role(&ctx.role_arn).await {
                    evidence.push(format!(
                        "role {} MaxSessionDuration = {}",
                        role.name, role.max_session_duration
                    ));
                }
                Err(fail(
                    s,
                    Cause::DurationAboveRoleMax,
                    "the requested session is longer than the role's maximum session duration",
                    evidence,
                    format!(
                        "aws iam update-role --role-name {name} --max-session-duration {} \
                         (3600 to 43200), or request a shorter session",
                        self.opts.duration_seconds.clamp(3600, 43200)
                    ),
                ))
            }
            StsError::Throttled(_) => Err(fail(
                s,
                Cause::Throttled,
                "STS throttled AssumeRoleWithWebIdentity",
                evidence,
                "STS rate quotas cannot be raised: cache credentials until they near expiry \
                 (the server's broker does) and retry with backoff",
            )),
            StsError::ExpiredToken(_) => Err(fail(
                s,
                Cause::TokenExpired,
                "STS saw the fresh token as expired: the server's clock is off",
                evidence,
                "synchronise the server's clock (NTP)",
            )),
            StsError::Unavailable(_) | StsError::IdpCommunication(_) => Err(fail(
                s,
                Cause::StsFailed,
                "STS could not be reached or did not answer",
                evidence,
                format!(
                    "check that this machine reaches https://sts.{}.amazonaws.com (proxy, firewall, \
                     DNS), or pass --aws-endpoint-url; AWS's own IdP errors are often transient",
                    ctx.region
                ),
            )),
            _ => Err(fail(
                s,
                Cause::StsFailed,
                "STS refused the call",
                evidence,
                "see STS's message above",
            )),
        }
    }

    async fn provider_missing(
        &mut self,
        iss: &str,
        host: &str,
        mut evidence: Vec<String>,
    ) -> Diagnosis {
        let s = StepName::Sts;
        let create = format!(
            "aws iam create-open-id-connect-provider --url {iss} --client-id-list {STS_AUDIENCE} \
             (or run the script of byollm aws setup-script)"
        );
        match self.iam_providers().await {
            Some(Ok(ps)) => {
                let norm = |u: &str| {
                    u.trim_start_matches("https://")
                        .trim_start_matches("http://")
                        .trim_end_matches('/')
                        .to_lowercase()
                };
                let urls: Vec<String> = ps.iter().map(|p| format!("https://{}", p.url)).collect();
                evidence.push(format!("IAM OIDC providers: {urls:?}"));
                if let Some(p) = ps.iter().find(|p| norm(&p.url) == norm(host)) {
                    return fail(
                        s,
                        Cause::IssuerMismatch,
                        format!(
                            "an OIDC provider exists for https://{}, but the token's issuer is {iss}; \
                             IAM compares them exactly (scheme, case, path and trailing slash)",
                            p.url
                        ),
                        evidence,
                        format!(
                            "register the exact issuer: {create}; then point the trust policy at the \
                             new provider (byollm aws trust-policy --issuer {iss} …) and delete {}",
                            p.arn
                        ),
                    );
                }
                fail(
                    s,
                    Cause::OidcProviderMissing,
                    format!("no IAM OIDC provider for {iss} in the role's account"),
                    evidence,
                    create,
                )
            }
            other => {
                if let Some(Err(e)) = other {
                    evidence.push(format!("could not read IAM: {e}"));
                }
                fail(
                    s,
                    Cause::OidcProviderMissing,
                    format!(
                        "no IAM OIDC provider for {iss} (or one registered under another spelling: \
                         trailing slash, http://, case)"
                    ),
                    evidence,
                    create,
                )
            }
        }
    }

    /// The agent's token could not be minted: decide its trust offline.
    async fn sts_offline(&mut self, ctx: &Ctx) -> Result<Option<TemporaryCredentials>, Diagnosis> {
        let s = StepName::Sts;
        let agent = ctx.agent.clone().unwrap_or_default();
        let sub = format!("scoped_principal:{}/service_account:{agent}", ctx.team_uid);
        let query = TrustQuery {
            issuer: String::new(),
            sub: sub.clone(),
            aud: ctx.audience.clone(),
            tags: ctx.settings.session_tags,
            source_identity: ctx.settings.source_identity,
            role_arn: ctx.role_arn.clone(),
            team_uid: ctx.team_uid.clone(),
            agent: ctx.agent.clone(),
        };
        let Some(role) = self.iam_role(&ctx.role_arn).await else {
            return Err(fail(
                s,
                Cause::AgentNotTestable,
                "the agent's token cannot be minted here and IAM cannot be read, so its trust \
                 cannot be checked",
                vec![],
                "give the doctor AWS credentials that may read IAM (AWS_ACCESS_KEY_ID, …: \
                 iam:GetRole, iam:ListOpenIDConnectProviders, \
                 iam:GetOpenIDConnectProvider), or run the doctor with an admin's API key, which mints \
                 the agent's token for the check",
            ));
        };
        let issuer = match self.client.discovery().await {
            Ok(d) => d
                .get("issuer")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            Err(_) => String::new(),
        };
        let query = TrustQuery { issuer, ..query };
        let providers = self.iam_providers().await;
        let evidence = vec![format!(
            "decided by the policy engine on the role's trust policy for sub {sub} (STS not called)"
        )];
        match analyse_trust(&query, Some(role), providers, evidence) {
            Some(d) => Err(d),
            None => {
                self.skip(
                    s,
                    format!(
                        "not called (no agent token); the role's trust policy admits sub {sub} \
                         (policy engine)"
                    ),
                );
                Ok(None)
            }
        }
    }
}
