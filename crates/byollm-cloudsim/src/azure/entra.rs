//! Entra's token endpoint for a federated client assertion
//! (`POST /{tenant}/oauth2/v2.0/token`, azure-facts §3.3, §3.4).
//!
//! Order of checks: the form (`grant_type=client_credentials`, `client_id`,
//! `scope` ending in `/.default`, the jwt-bearer `client_assertion_type`,
//! `client_assertion`); the tenant; the identity `client_id` names in it; the
//! assertion's form; the identity's FICs (none applied yet: `AADSTS70021`,
//! which Entra also answers while a new FIC propagates); an FIC with the
//! assertion's issuer (`AADSTS700211`); the algorithm (RS256, RS384, RS512,
//! PS256, PS384, PS512; ES256 is `AADSTS5002738`, as Entra answers in
//! practice); the `kid` in the issuer's JWKS (fetched through its discovery
//! document; absent: `AADSTS7000272`) and the signature; `nbf`/`exp`
//! (`AADSTS700024`); an FIC with that issuer and the exact subject
//! (`AADSTS700213`), then with that audience too (`AADSTS700212`).
//!
//! Error bodies have Entra's shape (`error`, `error_description` starting
//! `AADSTSnnnn:` and ending in trace and correlation ids, `error_codes`,
//! `timestamp`, `trace_id`, `correlation_id`, `error_uri`). Where
//! azure-facts quotes Entra's text it is used; elsewhere the message is ours
//! in Entra's shape.

use axum::response::Response;
use serde_json::{Value, json};

use super::{AzureIssued, TOKEN_LIFETIME_SECS, TOKEN_OP};
use crate::Inner;
use crate::gcp::json_response;
use crate::jwt::{Token, verify_with};
use crate::util::{SECRET_ALPHABET, iso8601, parse_form, random_chars, uuid};

/// Algorithms Entra accepts for a federated assertion (microsoft-identity-web#3467).
const ACCEPTED_ALGS: [&str; 6] = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"];

/// A refusal: HTTP status, OAuth `error`, `AADSTS` code, description.
type Refusal = (u16, &'static str, u32, String);

fn client(code: u32, msg: impl Into<String>) -> Refusal {
    (401, "invalid_client", code, msg.into())
}

fn request(code: u32, msg: impl Into<String>) -> Refusal {
    (400, "invalid_request", code, msg.into())
}

/// Entra's error body.
fn entra_error(status: u16, error: &str, code: u32, message: &str, now: i64) -> Response {
    let trace = uuid();
    let correlation = uuid();
    let ts = iso8601(now).replace('T', " ");
    json_response(
        status,
        &json!({
            "error": error,
            "error_description": format!(
                "AADSTS{code}: {message} Trace ID: {trace} Correlation ID: {correlation} Timestamp: {ts}"
            ),
            "error_codes": [code],
            "timestamp": ts,
            "trace_id": trace,
            "correlation_id": correlation,
            "error_uri": format!("https://login.microsoftonline.com/error?code={code}"),
        }),
    )
}

impl Inner {
    /// `POST /{tenant}/oauth2/v2.0/token`.
    pub(crate) async fn entra_token(&self, tenant: &str, body: &[u8]) -> Response {
        self.faults.count(TOKEN_OP);
        let now = self.clock.now();
        if let Some(rule) = self.faults.take_failure(TOKEN_OP, false) {
            let status = rule.error.parse::<u16>().unwrap_or(429);
            let msg = rule.message.unwrap_or_else(|| "Injected fault".to_owned());
            return entra_error(status, "temporarily_unavailable", 50196, &msg, now);
        }
        match self.entra_exchange(tenant, body, now).await {
            Ok(v) => json_response(200, &v),
            Err((status, error, code, msg)) => entra_error(status, error, code, &msg, now),
        }
    }

    async fn entra_exchange(&self, tenant: &str, body: &[u8], now: i64) -> Result<Value, Refusal> {
        let form = parse_form(&String::from_utf8_lossy(body));
        let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        let required = |k: &str| {
            get(k).filter(|v| !v.is_empty()).ok_or_else(|| {
                request(
                    900_144,
                    format!("The request body must contain the following parameter: '{k}'."),
                )
            })
        };
        let grant_type = required("grant_type")?;
        if grant_type != "client_credentials" {
            return Err((
                400,
                "unsupported_grant_type",
                70003,
                "The app requested an unsupported grant type.".into(),
            ));
        }
        let client_id = required("client_id")?;
        let scope = required("scope")?;
        if get("client_assertion_type")
            != Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
        {
            return Err(request(
                900_144,
                "The request body must contain the following parameter: 'client_assertion_type'.",
            ));
        }
        let assertion = required("client_assertion")?;
        if !self.azure.has_tenant(tenant) {
            return Err((
                400,
                "invalid_request",
                90002,
                format!("Tenant '{tenant}' not found."),
            ));
        }
        let identity = self
            .azure
            .identity(client_id)
            .filter(|i| i.tenant_id == tenant)
            .ok_or_else(|| {
                (
                    400,
                    "unauthorized_client",
                    700_016,
                    format!(
                        "Application with identifier '{client_id}' was not found in the directory '{tenant}'."
                    ),
                )
            })?;
        if !scope.ends_with("/.default") {
            return Err((
                400,
                "invalid_scope",
                1_002_012,
                format!(
                    "The provided value for scope {scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."
                ),
            ));
        }

        let token = Token::parse(assertion)
            .ok_or_else(|| request(50027, "JWT token is invalid or malformed."))?;
        let c = &token.claims;
        let text = |k: &str| c.get(k).and_then(Value::as_str).unwrap_or_default();
        let (iss, sub) = (text("iss"), text("sub"));
        let aud: Vec<&str> = match c.get("aud") {
            Some(Value::String(s)) => vec![s.as_str()],
            Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        let aud_text = aud.join(",");
        let fics = self.azure.visible_fics(&identity.client_id, now);
        if fics.is_empty() {
            return Err(client(
                70021,
                format!(
                    "No matching federated identity record found for presented assertion. \
                     Assertion Issuer: '{iss}'. Assertion Subject: '{sub}'. Assertion Audience: '{aud_text}'."
                ),
            ));
        }
        if !fics.iter().any(|f| f.issuer == iss) {
            return Err(client(
                700_211,
                format!(
                    "No matching federated identity record found for presented assertion issuer '{iss}'. \
                     Please check your federated identity credential Subject, Audience and Issuer against the presented assertion."
                ),
            ));
        }
        let alg = token.alg().unwrap_or_default().to_owned();
        if !ACCEPTED_ALGS.contains(&alg.as_str()) {
            return Err(client(
                5_002_738,
                format!("Invalid JWT token. '{alg}' is not a supported signature algorithm."),
            ));
        }
        let kid = token.kid().unwrap_or_default().to_owned();
        if self.faults.jwks_unreachable() {
            return Err(client(
                50166,
                format!("Request to External OIDC endpoint failed. Issuer: '{iss}'."),
            ));
        }
        let find = |keys: &[serde_json::Map<String, Value>]| {
            keys.iter()
                .find(|k| k.get("kid").and_then(Value::as_str) == Some(kid.as_str()))
                .cloned()
        };
        let fetch_failed = |e: crate::jwt::FetchError| {
            tracing::debug!(issuer = %iss, error = %e.0, "JWKS fetch failed");
            client(
                50166,
                format!("Request to External OIDC endpoint failed. Issuer: '{iss}'."),
            )
        };
        let not_found = || {
            client(
                7_000_272,
                format!(
                    "The certificate with identifier '{kid}' used to sign the federated credential \
                     could not be found in the metadata of identity provider '{iss}'."
                ),
            )
        };
        let now_f = self.clock.unix_f64();
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
                find(&keys).ok_or_else(not_found)?
            }
            (None, false) => return Err(not_found()),
        };
        if !verify_with(&jwk, &alg, &token) {
            return Err(client(
                50012,
                "Client assertion contains an invalid signature.",
            ));
        }
        let int = |k: &str| c.get(k).and_then(Value::as_i64);
        let exp = int("exp").unwrap_or(0);
        let nbf = int("nbf").or_else(|| int("iat")).unwrap_or(0);
        if exp <= now || nbf > now {
            return Err(client(
                700_024,
                format!(
                    "Client assertion is not within its valid time range. Current time: {}, \
                     assertion valid from {}, expiry time of assertion {}.",
                    iso8601(now),
                    iso8601(nbf),
                    iso8601(exp)
                ),
            ));
        }
        let same_subject: Vec<_> = fics
            .iter()
            .filter(|f| f.issuer == iss && f.subject == sub)
            .collect();
        if same_subject.is_empty() {
            return Err(client(
                700_213,
                format!(
                    "No matching federated identity record found for presented assertion subject '{sub}'. \
                     Please check your federated identity credential Subject, Audience and Issuer against the presented assertion."
                ),
            ));
        }
        if !same_subject
            .iter()
            .any(|f| f.audiences.iter().any(|a| aud.contains(&a.as_str())))
        {
            return Err(client(
                700_212,
                format!(
                    "No matching federated identity record found for presented assertion audience '{aud_text}'. \
                     Please check your federated identity credential Subject, Audience and Issuer against the presented assertion."
                ),
            ));
        }

        let lifetime = self
            .faults
            .credential_lifetime()
            .map_or(TOKEN_LIFETIME_SECS, |d| {
                i64::try_from(d.as_secs()).unwrap_or(1).max(1)
            });
        let access_token = format!("awsim-entra-{}", random_chars(64, SECRET_ALPHABET));
        self.azure.issue(
            access_token.clone(),
            AzureIssued {
                client_id: identity.client_id.clone(),
                tenant_id: identity.tenant_id.clone(),
                scope: scope.to_owned(),
                subject: sub.to_owned(),
                expires: now.saturating_add(lifetime),
            },
            now,
        );
        Ok(json!({
            "token_type": "Bearer",
            "expires_in": lifetime,
            "ext_expires_in": lifetime,
            "access_token": access_token,
        }))
    }
}
