//! Google's STS token exchange (`POST /v1/token`, gcp-facts §1.4, §1.5) and
//! IAM Credentials `generateAccessToken` (§1.6).
//!
//! Order of checks for `/v1/token`: no `Authorization` header; the form
//! (`grant_type`, `requested_token_type`, `subject_token_type`, `scope`,
//! `audience` as a provider's full name); the provider (exists, and it and its
//! pool are enabled and not deleted: else `invalid_target`); the token's form, `kid` (required) and `alg`
//! (`RS256` or `ES256` only); `iss` equal to the provider's issuer; the key by
//! exact `kid` from the issuer's JWKS and the signature; `aud` (the allowed
//! audiences, or else the provider's name with or without `https:`); `iat` in
//! the past, `exp` ahead and less than 48 h after `iat`; the attribute
//! mapping (`google.subject` at most 127 bytes); the attribute condition.
//!
//! Google's exact wording is quoted where gcp-facts has it; elsewhere the
//! message is ours, in Google's shape, and says so nowhere else.

use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::{Value, json};

use super::{
    IMPERSONATE_OP, Issued, STS_OP, TOKEN_LIFETIME_SECS, WORKLOAD_IDENTITY_USER, cel, google_error,
    json_response, oauth_error,
};
use crate::Inner;
use crate::jwt::{Token, verify_with};
use crate::util::{UPPER_ALNUM, iso8601, parse_form, random_chars};

const AUDIENCE_INVALID: &str = "Invalid value for \"audience\". This value should be the full resource name of the Identity Provider. See https://cloud.google.com/iam/docs/reference/sts/rest/v1/TopLevel/token for the list of possible formats.";
const TARGET_INVALID: &str = "The target service indicated by the \"audience\" parameters is invalid. This might either be because the pool or provider is disabled or deleted or because it doesn't exist.";
const CONDITION_REJECTED: &str = "The given credential is rejected by the attribute condition.";
/// `google.subject` limit (gcp-facts §1.2: "Cannot exceed 127 bytes").
pub const MAX_SUBJECT_BYTES: usize = 127;
/// `exp` must be less than this after `iat` (gcp-facts §1.4).
pub const MAX_LIFETIME_SECS: i64 = 48 * 3600;

type Refusal = (u16, &'static str, String);

fn grant(msg: impl Into<String>) -> Refusal {
    (400, "invalid_grant", msg.into())
}

fn request(msg: impl Into<String>) -> Refusal {
    (400, "invalid_request", msg.into())
}

impl Inner {
    /// `POST /v1/token`.
    pub(crate) async fn gcp_sts_token(&self, headers: &HeaderMap, body: &[u8]) -> Response {
        self.faults.count(STS_OP);
        if let Some(rule) = self.faults.take_failure(STS_OP, false) {
            let status = if rule.error == "rate_limit_exceeded" {
                429
            } else {
                400
            };
            let msg = rule.message.unwrap_or_else(|| "Injected fault".to_owned());
            return oauth_error(status, &rule.error, &msg);
        }
        match self.exchange(headers, body).await {
            Ok(v) => json_response(200, &v),
            Err((status, error, msg)) => oauth_error(status, error, &msg),
        }
    }

    async fn exchange(&self, headers: &HeaderMap, body: &[u8]) -> Result<Value, Refusal> {
        // gcp-facts §1.5: "using the header can cause the request to fail";
        // the emulator makes that certain, so a client that sends one is caught.
        if headers.contains_key("authorization") {
            return Err(request(
                "The token exchange must not carry an Authorization header",
            ));
        }
        let form: Vec<(String, String)> = parse_form(&String::from_utf8_lossy(body));
        let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        match get("grant_type") {
            Some("urn:ietf:params:oauth:grant-type:token-exchange") => {}
            Some(_) => {
                return Err((
                    400,
                    "unsupported_grant_type",
                    "Unsupported grant type.".into(),
                ));
            }
            None => return Err(request("Missing grant_type")),
        }
        if get("requested_token_type") != Some("urn:ietf:params:oauth:token-type:access_token") {
            return Err(request(
                "Invalid value for \"requested_token_type\": expected urn:ietf:params:oauth:token-type:access_token",
            ));
        }
        if !matches!(
            get("subject_token_type"),
            Some(
                "urn:ietf:params:oauth:token-type:jwt"
                    | "urn:ietf:params:oauth:token-type:id_token"
            )
        ) {
            return Err(request("Invalid value for \"subject_token_type\""));
        }
        if get("scope").is_none_or(str::is_empty) {
            return Err(request("Scope(s) must be provided"));
        }
        let audience = get("audience").unwrap_or_default();
        let name = audience
            .strip_prefix("//iam.googleapis.com/")
            .or_else(|| audience.strip_prefix("https://iam.googleapis.com/"))
            .filter(|n| n.split('/').count() == 8 && n.starts_with("projects/"))
            .ok_or_else(|| request(AUDIENCE_INVALID))?;
        let provider = self.gcp.active_provider(name).ok_or((
            400,
            "invalid_target",
            TARGET_INVALID.to_owned(),
        ))?;

        // The token.
        let text = get("subject_token").ok_or_else(|| request("Missing subject_token"))?;
        let token =
            Token::parse(text).ok_or_else(|| grant("The subject token is not a valid JWT"))?;
        let kid = token
            .kid()
            .ok_or_else(|| grant("The JWT header must carry a kid"))?
            .to_owned();
        let alg = token.alg().unwrap_or_default().to_owned();
        if alg != "RS256" && alg != "ES256" {
            return Err(grant(format!(
                "Unsupported signing algorithm {alg}: must be RS256 or ES256"
            )));
        }
        let c = &token.claims;
        let iss = c.get("iss").and_then(Value::as_str).unwrap_or_default();
        if iss != provider.issuer_uri {
            return Err(grant(format!(
                "The issuer in ID Token {iss} does not match the expected ISSUER {}",
                provider.issuer_uri
            )));
        }
        if self.faults.jwks_unreachable() {
            return Err(grant("Unable to retrieve the issuer's public keys"));
        }
        let now_f = self.clock.unix_f64();
        let find = |keys: &[serde_json::Map<String, Value>]| {
            keys.iter()
                .find(|k| k.get("kid").and_then(Value::as_str) == Some(kid.as_str()))
                .cloned()
        };
        let fetch_failed = |e: crate::jwt::FetchError| {
            tracing::debug!(issuer = %iss, error = %e.0, "JWKS fetch failed");
            grant("Unable to retrieve the issuer's public keys")
        };
        let (keys, cached) = self
            .keys
            .keys(iss, now_f, false)
            .await
            .map_err(fetch_failed)?;
        let jwk = match (find(&keys), cached) {
            (Some(k), _) => k,
            (None, true) => {
                let (keys, _) = self
                    .keys
                    .keys(iss, now_f, true)
                    .await
                    .map_err(fetch_failed)?;
                find(&keys)
                    .ok_or_else(|| grant(format!("No key with kid {kid} in the issuer's JWKS")))?
            }
            (None, false) => {
                return Err(grant(format!("No key with kid {kid} in the issuer's JWKS")));
            }
        };
        if !verify_with(&jwk, &alg, &token) {
            return Err(grant("Invalid JWT signature"));
        }
        let aud = match c.get("aud") {
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
            _ => vec![],
        };
        let defaults = [
            format!("//iam.googleapis.com/{}", provider.name()),
            format!("https://iam.googleapis.com/{}", provider.name()),
        ];
        let accepted = |a: &String| match provider.allowed_audiences.is_empty() {
            true => defaults.contains(a),
            false => provider.allowed_audiences.contains(a),
        };
        if !aud.iter().any(accepted) {
            return Err(grant(format!(
                "The audience in ID Token [{}] does not match the expected audience.",
                aud.join(", ")
            )));
        }
        let now = self.clock.now();
        let int = |k: &str| c.get(k).and_then(Value::as_i64);
        let (Some(iat), Some(exp)) = (int("iat"), int("exp")) else {
            return Err(grant("The ID Token must carry integer iat and exp claims"));
        };
        if iat > now {
            return Err(grant("The ID Token's iat must be in the past"));
        }
        if exp <= now {
            return Err(grant("The ID Token has expired"));
        }
        if exp - iat >= MAX_LIFETIME_SECS {
            return Err(grant(
                "The ID Token's exp must be less than 48 hours after iat",
            ));
        }

        // Mapping and condition.
        let mapped = cel::map(&provider.attribute_mapping, c)
            .map_err(|e| grant(format!("The attribute mapping failed: {e}")))?;
        let subject = mapped
            .subject
            .clone()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| grant("The mapped google.subject is empty"))?;
        if subject.len() > MAX_SUBJECT_BYTES {
            return Err(grant(format!(
                "The mapped google.subject is {} bytes; it cannot exceed {MAX_SUBJECT_BYTES} bytes",
                subject.len()
            )));
        }
        if let Some(cond) = &provider.attribute_condition
            && cel::admits(cond, c, &mapped) != Ok(true)
        {
            return Err((400, "unauthorized_client", CONDITION_REJECTED.to_owned()));
        }

        let pool = format!("//iam.googleapis.com/{}", provider.pool());
        let principal = format!("principal:{pool}/subject/{subject}");
        let mut members = vec![principal.clone(), format!("principalSet:{pool}/*")];
        members.extend(
            mapped
                .groups
                .iter()
                .map(|g| format!("principalSet:{pool}/group/{g}")),
        );
        members.extend(
            mapped
                .attributes
                .iter()
                .map(|(k, v)| format!("principalSet:{pool}/attribute.{k}/{v}")),
        );
        let lifetime = self
            .faults
            .credential_lifetime()
            .map_or(TOKEN_LIFETIME_SECS, |d| {
                i64::try_from(d.as_secs()).unwrap_or(1).max(1)
            });
        let access_token = format!("ya29.awsim-fed-{}", random_chars(48, UPPER_ALNUM));
        self.gcp.prune(now);
        self.gcp.issue(
            access_token.clone(),
            Issued {
                members,
                expires: now + lifetime,
                principal,
            },
        );
        Ok(json!({
            "access_token": access_token,
            "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
            "token_type": "Bearer",
            "expires_in": lifetime,
        }))
    }

    /// The issued token behind `Authorization: Bearer …`, unexpired; `None`
    /// answers [`unauthenticated`].
    pub(crate) fn gcp_caller(&self, headers: &HeaderMap) -> Option<Issued> {
        let bearer = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))?;
        self.gcp
            .token(bearer)
            .filter(|t| t.expires > self.clock.now())
    }

    /// `POST /v1/projects/-/serviceAccounts/{SA}:generateAccessToken`.
    pub(crate) async fn gcp_generate_access_token(
        &self,
        service_account: &str,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Response {
        self.faults.count(IMPERSONATE_OP);
        let Some(caller) = self.gcp_caller(headers) else {
            return unauthenticated();
        };
        let Ok(req) = serde_json::from_slice::<Value>(body) else {
            return google_error(400, "INVALID_ARGUMENT", "Invalid JSON payload received.");
        };
        if req["scope"].as_array().is_none_or(Vec::is_empty) {
            return google_error(400, "INVALID_ARGUMENT", "Scope required.");
        }
        let resource = format!("serviceAccounts/{service_account}");
        // A missing account is refused like a missing grant: Google's message
        // says "(or it may not exist)" and reveals nothing more.
        if !self.gcp.service_account_exists(service_account)
            || !self
                .gcp
                .allowed(&resource, WORKLOAD_IDENTITY_USER, &caller.members)
        {
            return json_response(
                403,
                &json!({"error": {"code": 403,
                    "message": "Permission 'iam.serviceAccounts.getAccessToken' denied on resource (or it may not exist).",
                    "status": "PERMISSION_DENIED",
                    "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo",
                        "reason": "IAM_PERMISSION_DENIED", "domain": "iam.googleapis.com",
                        "metadata": {"permission": "iam.serviceAccounts.getAccessToken"}}]}}),
            );
        }
        let now = self.clock.now();
        let lifetime = match req["lifetime"].as_str() {
            None => TOKEN_LIFETIME_SECS,
            Some(l) => match l.strip_suffix('s').and_then(|n| n.parse::<i64>().ok()) {
                Some(n) if (1..=TOKEN_LIFETIME_SECS).contains(&n) => n,
                _ => {
                    return google_error(
                        400,
                        "INVALID_ARGUMENT",
                        "The lifetime must be a duration of at most 3600s (longer needs constraints/iam.allowServiceAccountCredentialLifetimeExtension).",
                    );
                }
            },
        };
        let lifetime = self.faults.credential_lifetime().map_or(lifetime, |d| {
            i64::try_from(d.as_secs()).unwrap_or(1).clamp(1, lifetime)
        });
        let token = format!("ya29.awsim-sa-{}", random_chars(48, UPPER_ALNUM));
        let member = format!("serviceAccount:{service_account}");
        self.gcp.issue(
            token.clone(),
            Issued {
                members: vec![member.clone()],
                expires: now + lifetime,
                principal: member,
            },
        );
        json_response(
            200,
            &json!({"accessToken": token, "expireTime": iso8601(now + lifetime)}),
        )
    }
}

/// Google's 401 for a missing, unknown or expired access token.
pub(crate) fn unauthenticated() -> Response {
    google_error(
        401,
        "UNAUTHENTICATED",
        "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.",
    )
}
