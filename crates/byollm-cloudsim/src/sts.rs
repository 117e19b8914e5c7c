//! STS: `AssumeRoleWithWebIdentity` (unsigned; POST form or GET query) with the
//! token validation of aws-facts §2 and the trust evaluation of §3, and
//! `GetCallerIdentity` for signed callers.
//!
//! Order of checks (after the front door's throttling and injected faults):
//! parameters (`ValidationError`), the token's form,
//! algorithm and issuer, the provider by exact `iss`, the issuer's keys by exact
//! `kid`, the signature, the claims (`aud` in the client ids, integer
//! `exp`/`iat`, 5 minutes of grace after `exp`), session tags and source
//! identity from the token, the role and its trust policy (plus `sts:TagSession`
//! / `sts:SetSourceIdentity` when the token carries them), then `DurationSeconds`
//! against the role's maximum.
//!
//! Where aws-facts says "not found", the stricter choice, documented here:
//! `nbf` or `iat` more than 5 minutes in the future is refused
//! (`InvalidIdentityToken`); the discovery document must name the token's issuer;
//! a bad signature answers `InvalidIdentityToken` "The web identity token's
//! signature could not be verified." (AWS's exact text not found).

use std::sync::Arc;

use axum::response::Response;
use byollm_policy::{Context, Request, RequestPrincipal};
use serde_json::Value;

use crate::Inner;
use crate::auth::Caller;
use crate::error::{AwsError, validation_message, violation};
use crate::jwt::{ALGORITHMS, Token, verify_with};
use crate::query::{Params, STS_NS, el, error, ok};
use crate::state::{Provider, Session};
use crate::util::{SECRET_ALPHABET, UPPER_ALNUM, iso8601, random_chars, uuid};

/// Seconds STS accepts a token past its `exp` (aws-facts §2, UG-OIDC).
pub const EXP_GRACE_SECS: i64 = 300;

const KEY_RETRIEVAL: &str = "Couldn't retrieve verification key from your identity provider,  please reference AssumeRoleWithWebIdentity documentation for requirements";
const NOT_AUTHORIZED: &str = "Not authorized to perform sts:AssumeRoleWithWebIdentity";

fn invalid_token(msg: impl Into<String>) -> AwsError {
    AwsError::new(400, "InvalidIdentityToken", msg)
}

/// `[\w+=,.@-]` — role session names and source identities.
pub fn session_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "_+=,.@-".contains(c)
}

fn tag_char(c: char) -> bool {
    c.is_alphanumeric() || c.is_whitespace() || "_.:/=+-@".contains(c)
}

/// What the token carried besides the standard claims.
#[derive(Debug, Default)]
struct TokenExtras {
    tags: Vec<(String, String)>,
    transitive: Vec<String>,
    source_identity: Option<String>,
}

impl Inner {
    pub(crate) async fn assume_role_with_web_identity(&self, p: &Params) -> Response {
        match self.arwwi(p).await {
            Ok(xml) => ok(STS_NS, "AssumeRoleWithWebIdentity", &xml, &uuid()),
            Err(e) => error(STS_NS, &e),
        }
    }

    async fn arwwi(&self, p: &Params) -> Result<String, AwsError> {
        // 1. Parameters.
        let role_arn = p.get("RoleArn");
        let session_name = p.get("RoleSessionName");
        let token_text = p.get("WebIdentityToken");
        let mut v = vec![];
        match role_arn {
            None => v.push(violation(None, "roleArn", "Member must not be null")),
            Some(a) if a.chars().count() < 20 => v.push(violation(
                Some(a),
                "roleArn",
                "Member must have length greater than or equal to 20",
            )),
            Some(a) if a.chars().count() > 2048 => v.push(violation(
                Some(a),
                "roleArn",
                "Member must have length less than or equal to 2048",
            )),
            Some(_) => {}
        }
        match session_name {
            None => v.push(violation(
                None,
                "roleSessionName",
                "Member must not be null",
            )),
            Some(n) if n.chars().count() < 2 => v.push(violation(
                Some(n),
                "roleSessionName",
                "Member must have length greater than or equal to 2",
            )),
            Some(n) if n.chars().count() > 64 => v.push(violation(
                Some(n),
                "roleSessionName",
                "Member must have length less than or equal to 64",
            )),
            Some(n) if !n.chars().all(session_name_char) => v.push(violation(
                Some(n),
                "roleSessionName",
                "Member must satisfy regular expression pattern: [\\w+=,.@-]*",
            )),
            Some(_) => {}
        }
        // The token is sensitive: its value is never echoed.
        match token_text {
            None => v.push(violation(None, "webIdentityToken", "Member must not be null")),
            Some(t) if t.chars().count() < 4 => v.push("Value at 'webIdentityToken' failed to satisfy constraint: Member must have length greater than or equal to 4".to_owned()),
            Some(t) if t.chars().count() > 20_000 => v.push("Value at 'webIdentityToken' failed to satisfy constraint: Member must have length less than or equal to 20000".to_owned()),
            Some(_) => {}
        }
        let duration = match p.get("DurationSeconds") {
            None => 3600,
            Some(d) => match d.parse::<i64>() {
                Ok(n) if n < 900 => {
                    v.push(violation(
                        Some(d),
                        "durationSeconds",
                        "Member must have value greater than or equal to 900",
                    ));
                    n
                }
                Ok(n) if n > 43_200 => {
                    v.push(violation(
                        Some(d),
                        "durationSeconds",
                        "Member must have value less than or equal to 43200",
                    ));
                    n
                }
                Ok(n) => n,
                Err(_) => {
                    v.push(violation(
                        Some(d),
                        "durationSeconds",
                        "Member must be an integer",
                    ));
                    0
                }
            },
        };
        if let Some(pol) = p.get("Policy")
            && (pol.is_empty() || pol.chars().count() > 2048)
        {
            v.push("Value at 'policy' failed to satisfy constraint: Member must have length less than or equal to 2048".to_owned());
        }
        if !v.is_empty() {
            return Err(AwsError::new(
                400,
                "ValidationError",
                validation_message(&v),
            ));
        }
        if p.get("Policy").is_some() || !p.struct_list("PolicyArns", &["arn"]).is_empty() {
            // Session policies would narrow the session; the emulator does not
            // model them and refuses rather than silently ignoring them.
            return Err(AwsError::new(
                400,
                "MalformedPolicyDocument",
                "Session policies are not supported by byollm-cloudsim",
            ));
        }
        if p.get("ProviderId").is_some() {
            return Err(invalid_token(
                "ProviderId is only for OAuth 2.0 access tokens; do not specify it for OpenID Connect ID tokens",
            ));
        }
        let (role_arn, session_name, token_text) = (
            role_arn.unwrap_or_default(),
            session_name.unwrap_or_default(),
            token_text.unwrap_or_default(),
        );

        // 2. The token's form and issuer.
        let token = Token::parse(token_text).ok_or_else(|| invalid_token("The ID Token provided is not a valid JWT. (You may see this error if you sent an Access Token)"))?;
        let alg = token.alg().unwrap_or_default().to_owned();
        if !ALGORITHMS.contains(&alg.as_str()) {
            return Err(invalid_token(format!(
                "Unsupported token signing algorithm '{alg}': tokens must be signed with RS256, RS384, RS512, ES256, ES384 or ES512"
            )));
        }
        let iss = token
            .claims
            .get("iss")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid_token("Missing a required claim: iss"))?
            .to_owned();
        if !iss.starts_with("https://") {
            return Err(invalid_token(format!(
                "The iss claim must begin with https://, not {iss}"
            )));
        }
        let provider = self
            .account
            .iam
            .read()
            .providers
            .get(&iss["https://".len()..])
            .cloned()
            .ok_or_else(|| {
                invalid_token(format!(
                    "No OpenIDConnect provider found in your account for {iss}"
                ))
            })?;

        // 3. The key, by exact kid, and the signature.
        if self.faults.jwks_unreachable() {
            return Err(invalid_token(KEY_RETRIEVAL));
        }
        let now = self.clock.now();
        let kid = token.kid().map(str::to_owned);
        let find = |keys: &[serde_json::Map<String, Value>]| {
            keys.iter()
                .find(|k| k.get("kid").and_then(Value::as_str).map(str::to_owned) == kid)
                .cloned()
        };
        let now_f64 = self.clock.unix_f64();
        let (keys, cached) = self.keys.keys(&iss, now_f64, false).await.map_err(|e| {
            tracing::debug!(issuer = %iss, error = %e.0, "JWKS fetch failed");
            invalid_token(KEY_RETRIEVAL)
        })?;
        let jwk = match find(&keys) {
            Some(k) => k,
            // An unknown kid may be a key published after the cache was filled
            // (refetched at most once per cool-down, see `jwt`).
            None if cached => {
                let (keys, _) = self
                    .keys
                    .keys(&iss, now_f64, true)
                    .await
                    .map_err(|_| invalid_token(KEY_RETRIEVAL))?;
                find(&keys).ok_or_else(|| invalid_token(KEY_RETRIEVAL))?
            }
            None => return Err(invalid_token(KEY_RETRIEVAL)),
        };
        if !verify_with(&jwk, &alg, &token) {
            return Err(invalid_token(
                "The web identity token's signature could not be verified.",
            ));
        }

        // 4. Claims.
        let c = &token.claims;
        let aud = match c.get("aud") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Array(a)) if a.len() == 1 => a[0].as_str().unwrap_or_default().to_owned(),
            Some(Value::Array(_)) => return Err(invalid_token("Incorrect token audience")),
            _ => return Err(invalid_token("Missing a required claim: aud")),
        };
        if !provider.client_ids.contains(&aud) {
            return Err(invalid_token("Incorrect token audience"));
        }
        let int_claim = |name: &str, required: bool| -> Result<Option<i64>, AwsError> {
            match c.get(name) {
                None if required => Err(invalid_token(format!("Missing a required claim: {name}"))),
                None => Ok(None),
                Some(Value::Number(n)) if n.is_i64() || n.is_u64() => Ok(n.as_i64()),
                Some(_) => Err(invalid_token(
                    "Timestamps in the token must be formatted as either an integer or a long integer",
                )),
            }
        };
        let exp = int_claim("exp", true)?.unwrap_or_default();
        let iat = int_claim("iat", true)?.unwrap_or_default();
        let nbf = int_claim("nbf", false)?;
        if now > exp + EXP_GRACE_SECS {
            return Err(AwsError::new(
                400,
                "ExpiredTokenException",
                format!(
                    "Token expired: current date/time {now} must be before the expiration date/time {exp}"
                ),
            ));
        }
        if iat > now + EXP_GRACE_SECS || nbf.is_some_and(|n| n > now + EXP_GRACE_SECS) {
            return Err(invalid_token(
                "The token is not yet valid (iat or nbf is in the future)",
            ));
        }
        let sub = match c.get("sub").and_then(Value::as_str) {
            Some(s) if (6..=255).contains(&s.chars().count()) => s.to_owned(),
            Some(_) => return Err(invalid_token("The sub claim must be 6 to 255 characters")),
            None => return Err(invalid_token("Missing a required claim: sub")),
        };
        let extras = token_extras(c)?;

        // 5. The role and its trust policy.
        let role = self
            .role_by_arn(role_arn)
            .ok_or_else(|| AwsError::new(403, "AccessDenied", NOT_AUTHORIZED))?;
        let prefix = &provider.host_path;
        let mut ctx = Context::new();
        ctx.insert(&format!("{prefix}:aud"), aud.clone());
        ctx.insert(&format!("{prefix}:sub"), sub.clone());
        ctx.insert("sts:RoleSessionName", session_name);
        ctx.insert("aws:FederatedProvider", provider.arn.clone());
        ctx.insert("aws:CurrentTime", iso8601(now));
        ctx.insert("aws:EpochTime", now.to_string());
        ctx.insert("aws:SecureTransport", "true");
        if !extras.tags.is_empty() {
            for (k, val) in &extras.tags {
                ctx.insert(&format!("aws:RequestTag/{k}"), val.clone());
            }
            ctx.set(
                "aws:TagKeys",
                extras.tags.iter().map(|(k, _)| k.clone()).collect(),
            );
            if !extras.transitive.is_empty() {
                ctx.set("sts:TransitiveTagKeys", extras.transitive.clone());
            }
        }
        if let Some(si) = &extras.source_identity {
            ctx.insert("sts:SourceIdentity", si.clone());
        }
        let decide = |action: &str| {
            let req = Request {
                principal: Some(RequestPrincipal::infer(&provider.arn)),
                action: action.to_owned(),
                resource: role.arn.clone(),
                context: ctx.clone(),
            };
            byollm_policy::evaluate_one(&role.trust, byollm_policy::PolicyKind::Resource, &req)
                .is_allowed()
        };
        if !decide("sts:AssumeRoleWithWebIdentity")
            || (!extras.tags.is_empty() && !decide("sts:TagSession"))
            || (extras.source_identity.is_some() && !decide("sts:SetSourceIdentity"))
        {
            return Err(AwsError::new(403, "AccessDenied", NOT_AUTHORIZED));
        }
        if duration > i64::from(role.max_session_duration) {
            return Err(AwsError::new(
                400,
                "ValidationError",
                "The requested DurationSeconds exceeds the MaxSessionDuration set for this role.",
            ));
        }

        // 6. Credentials.
        let mut expiration = now + duration;
        if let Some(cap) = self.faults.credential_lifetime() {
            expiration = expiration.min(now + i64::try_from(cap.as_secs()).unwrap_or(i64::MAX));
        }
        let session = self.issue(
            &role.name,
            &role.arn,
            &role.id,
            session_name,
            expiration,
            &provider,
            sub,
            aud,
            extras,
        );
        Ok(arwwi_xml(&session, &provider))
    }

    /// Finds a role by ARN in this account.
    fn role_by_arn(&self, arn: &str) -> Option<Arc<crate::state::Role>> {
        let rest = arn.strip_prefix(&format!("arn:aws:iam::{}:role/", self.account.id))?;
        let name = rest.rsplit('/').next()?;
        self.account.role(name).filter(|r| r.arn == arn)
    }

    #[expect(clippy::too_many_arguments, reason = "one session's fields, once")]
    fn issue(
        &self,
        role_name: &str,
        role_arn: &str,
        role_id: &str,
        session_name: &str,
        expiration: i64,
        provider: &Provider,
        subject: String,
        audience: String,
        extras: TokenExtras,
    ) -> Arc<Session> {
        let session = Arc::new(Session {
            access_key_id: format!("ASIA{}", random_chars(16, UPPER_ALNUM)),
            secret_access_key: random_chars(40, SECRET_ALPHABET),
            session_token: format!("IQoJb3JpZ2luX2Vj{}", random_chars(300, SECRET_ALPHABET)),
            expiration,
            role_arn: role_arn.to_owned(),
            role_name: role_name.to_owned(),
            assumed_role_id: format!("{role_id}:{session_name}"),
            assumed_role_arn: format!(
                "arn:aws:sts::{}:assumed-role/{role_name}/{session_name}",
                self.account.id
            ),
            session_name: session_name.to_owned(),
            tags: extras.tags,
            transitive_tag_keys: extras.transitive,
            source_identity: extras.source_identity,
            provider_arn: provider.arn.clone(),
            subject,
            audience,
        });
        let now = self.clock.now();
        if self.account.sessions.read().len() > 10_000 {
            self.account.prune_sessions(now);
        }
        self.account
            .sessions
            .write()
            .insert(session.access_key_id.clone(), session.clone());
        session
    }

    pub(crate) fn get_caller_identity(&self, caller: &Caller) -> Response {
        let (arn, user_id) = match caller {
            Caller::Admin => (
                format!("arn:aws:iam::{}:user/awsim-admin", self.account.id),
                "AIDAAWSIMADMINEXAMPLE".to_owned(),
            ),
            Caller::Session(s) => (s.assumed_role_arn.clone(), s.assumed_role_id.clone()),
        };
        let xml = format!(
            "{}{}{}",
            el(4, "Arn", &arn),
            el(4, "UserId", &user_id),
            el(4, "Account", &self.account.id)
        );
        ok(STS_NS, "GetCallerIdentity", &xml, &uuid())
    }

    pub(crate) fn sts_error(&self, e: &AwsError) -> Response {
        error(STS_NS, e)
    }
}

/// Session tags (`https://aws.amazon.com/tags`) and source identity
/// (`https://aws.amazon.com/source_identity`) from the claims (aws-facts §3.5, §3.6).
fn token_extras(c: &serde_json::Map<String, Value>) -> Result<TokenExtras, AwsError> {
    let mut out = TokenExtras::default();
    if let Some(tags) = c.get("https://aws.amazon.com/tags") {
        let principal = tags
            .get("principal_tags")
            .and_then(Value::as_object)
            .ok_or_else(|| {
                invalid_token("The https://aws.amazon.com/tags claim must contain principal_tags")
            })?;
        if principal.len() > 50 {
            return Err(invalid_token("The token carries more than 50 session tags"));
        }
        for (k, v) in principal {
            let values = v.as_array().ok_or_else(|| {
                invalid_token(format!("Session tag {k} must be an array of one string"))
            })?;
            let [Value::String(val)] = values.as_slice() else {
                return Err(invalid_token(format!(
                    "Session tag {k} must have exactly one value: AWS STS does not support multi-valued session tags"
                )));
            };
            if k.is_empty()
                || k.chars().count() > 128
                || !k.chars().all(tag_char)
                || k.to_lowercase().starts_with("aws:")
            {
                return Err(invalid_token(format!("Session tag key '{k}' is invalid")));
            }
            if val.chars().count() > 256 || !val.chars().all(tag_char) {
                return Err(invalid_token(format!(
                    "Session tag value for '{k}' is invalid"
                )));
            }
            out.tags.push((k.clone(), val.clone()));
        }
        if let Some(t) = tags.get("transitive_tag_keys") {
            let keys = t
                .as_array()
                .ok_or_else(|| invalid_token("transitive_tag_keys must be an array"))?;
            for key in keys {
                let key = key.as_str().unwrap_or_default();
                if !principal.contains_key(key) {
                    return Err(invalid_token(format!(
                        "Transitive tag key '{key}' is not a session tag"
                    )));
                }
                out.transitive.push(key.to_owned());
            }
        }
    }
    if let Some(si) = c.get("https://aws.amazon.com/source_identity") {
        let si = si.as_str().unwrap_or_default();
        let n = si.chars().count();
        if !(2..=64).contains(&n)
            || !si.chars().all(session_name_char)
            || si.to_lowercase().starts_with("aws:")
        {
            return Err(invalid_token(format!(
                "Source identity '{si}' is invalid: 2-64 characters of [\\w+=,.@-], not starting with aws:"
            )));
        }
        out.source_identity = Some(si.to_owned());
    }
    Ok(out)
}

/// The result XML, in the element order real OIDC responses use.
fn arwwi_xml(s: &Session, provider: &Provider) -> String {
    let mut x = el(4, "Audience", &s.audience);
    x.push_str("    <AssumedRoleUser>\n");
    x.push_str(&el(6, "AssumedRoleId", &s.assumed_role_id));
    x.push_str(&el(6, "Arn", &s.assumed_role_arn));
    x.push_str("    </AssumedRoleUser>\n");
    x.push_str(&el(4, "Provider", &provider.arn));
    x.push_str("    <Credentials>\n");
    x.push_str(&el(6, "AccessKeyId", &s.access_key_id));
    x.push_str(&el(6, "SecretAccessKey", &s.secret_access_key));
    x.push_str(&el(6, "SessionToken", &s.session_token));
    x.push_str(&el(6, "Expiration", &iso8601(s.expiration)));
    x.push_str("    </Credentials>\n");
    if let Some(si) = &s.source_identity {
        x.push_str(&el(4, "SourceIdentity", si));
    }
    x.push_str(&el(4, "SubjectFromWebIdentityToken", &s.subject));
    x
}
