//! Read-only IAM calls for the doctor: the account's OIDC providers, and a
//! role's trust policy and maximum session duration.
//!
//! IAM speaks the query protocol (form-encoded `POST /`, XML answers) and wants
//! SigV4 with signing name `iam` in `us-east-1` (aws-facts §0 BC-IAM). The calls
//! are signed here with `aws-sigv4` rather than through the IAM SDK, which would
//! add a large crate for three read-only operations. Policy documents come back
//! URL-encoded inside the XML.

use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use secrecy::{ExposeSecret as _, SecretString};

/// The global IAM endpoint.
pub const IAM_ENDPOINT: &str = "https://iam.amazonaws.com";

/// Why an IAM call failed (shown to the user as evidence, never retried).
#[derive(Debug, thiserror::Error)]
pub(crate) enum IamError {
    /// The request could not be signed.
    #[error("cannot sign the IAM request: {0}")]
    Sign(String),
    /// IAM could not be reached, or the answer broke off.
    #[error("cannot reach IAM at {endpoint}: {detail}")]
    Transport {
        endpoint: String,
        /// The transport error and its causes, innermost last.
        detail: String,
    },
    /// IAM answered with an error.
    #[error("IAM {action}: {code}: {message} (HTTP {status})")]
    Api {
        action: String,
        code: String,
        message: String,
        status: reqwest::StatusCode,
    },
    /// `GetRole` answered without a trust policy.
    #[error("GetRole returned no trust policy")]
    NoTrustPolicy,
}

impl IamError {
    fn transport(endpoint: &str, e: &reqwest::Error) -> Self {
        let mut parts = Vec::new();
        let mut cur: Option<&dyn std::error::Error> = Some(e);
        while let Some(err) = cur {
            parts.push(err.to_string());
            cur = err.source();
        }
        IamError::Transport {
            endpoint: endpoint.to_owned(),
            detail: parts.join(": "),
        }
    }
}

/// Credentials allowed to read IAM (from the standard AWS environment).
#[derive(Debug, Clone)]
pub struct IamCredentials {
    /// `AWS_ACCESS_KEY_ID`.
    pub access_key_id: String,
    /// `AWS_SECRET_ACCESS_KEY`.
    pub secret_access_key: SecretString,
    /// `AWS_SESSION_TOKEN`, for temporary credentials.
    pub session_token: Option<SecretString>,
}

/// An IAM OIDC provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderInfo {
    /// Its ARN.
    pub arn: String,
    /// Its URL as IAM stores it (without `https://`).
    pub url: String,
    /// The audiences (client ids) it accepts.
    pub client_ids: Vec<String>,
}

/// A role as the doctor needs it.
#[derive(Debug, Clone)]
pub struct RoleInfo {
    /// Its name.
    pub name: String,
    /// Its trust policy (JSON).
    pub trust_policy: String,
    /// `MaxSessionDuration`, seconds.
    pub max_session_duration: i64,
}

/// An IAM client with fixed credentials.
#[derive(Debug)]
pub struct Iam {
    endpoint: String,
    creds: IamCredentials,
    http: reqwest::Client,
}

impl Iam {
    /// IAM at `endpoint` (the global endpoint unless overridden).
    pub fn new(endpoint: Option<&str>, creds: IamCredentials) -> Self {
        Iam {
            endpoint: endpoint
                .unwrap_or(IAM_ENDPOINT)
                .trim_end_matches('/')
                .to_owned(),
            creds,
            http: reqwest::Client::new(),
        }
    }

    async fn call(&self, action: &str, params: &[(&str, &str)]) -> Result<String, IamError> {
        let mut body = format!("Action={action}&Version=2010-05-08");
        for (k, v) in params {
            body.push('&');
            body.push_str(k);
            body.push('=');
            body.push_str(&form_encode(v));
        }
        let url = format!("{}/", self.endpoint);
        let identity = Credentials::new(
            self.creds.access_key_id.clone(),
            self.creds.secret_access_key.expose_secret().to_owned(),
            self.creds
                .session_token
                .as_ref()
                .map(|t| t.expose_secret().to_owned()),
            None,
            "byollm-doctor",
        )
        .into();
        #[expect(
            clippy::disallowed_methods,
            reason = "SigV4 signs with the wall-clock time; AWS rejects skewed signatures"
        )]
        let now = SystemTime::now();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region("us-east-1")
            .name("iam")
            .time(now)
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| IamError::Sign(e.to_string()))?
            .into();
        let content_type = "application/x-www-form-urlencoded; charset=utf-8";
        let headers = [("content-type", content_type)];
        let signable = SignableRequest::new(
            "POST",
            &url,
            headers.iter().copied(),
            SignableBody::Bytes(body.as_bytes()),
        )
        .map_err(|e| IamError::Sign(e.to_string()))?;
        let (instructions, _) = sign(signable, &params)
            .map_err(|e| IamError::Sign(e.to_string()))?
            .into_parts();
        let mut req = self
            .http
            .post(&url)
            .header("content-type", content_type)
            .body(body);
        for (name, value) in instructions.headers() {
            let mut v = reqwest::header::HeaderValue::from_str(value)
                .map_err(|e| IamError::Sign(e.to_string()))?;
            v.set_sensitive(true);
            req = req.header(name, v);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| IamError::transport(&self.endpoint, &e))?;
        let status = resp.status();
        let text = resp
            .text()
            .await
            .map_err(|e| IamError::transport(&self.endpoint, &e))?;
        if !status.is_success() {
            return Err(IamError::Api {
                action: action.to_owned(),
                code: tag(&text, "Code").unwrap_or_default(),
                message: tag(&text, "Message").unwrap_or_default(),
                status,
            });
        }
        Ok(text)
    }

    /// Every OIDC provider of the account, with its URL and client ids.
    pub(crate) async fn providers(&self) -> Result<Vec<ProviderInfo>, IamError> {
        let list = self.call("ListOpenIDConnectProviders", &[]).await?;
        let mut out = Vec::new();
        for arn in tags(&list, "Arn") {
            let one = self
                .call(
                    "GetOpenIDConnectProvider",
                    &[("OpenIDConnectProviderArn", &arn)],
                )
                .await?;
            let client_ids = section(&one, "ClientIDList")
                .map(|s| tags(s, "member"))
                .unwrap_or_default();
            out.push(ProviderInfo {
                url: tag(&one, "Url").unwrap_or_default(),
                arn,
                client_ids,
            });
        }
        Ok(out)
    }

    /// A role, or `None` when IAM says it does not exist.
    pub(crate) async fn role(&self, name: &str) -> Result<Option<RoleInfo>, IamError> {
        let text = match self.call("GetRole", &[("RoleName", name)]).await {
            Ok(t) => t,
            Err(IamError::Api { code, .. }) if code == "NoSuchEntity" => return Ok(None),
            Err(e) => return Err(e),
        };
        let trust = tag(&text, "AssumeRolePolicyDocument")
            .map(|d| percent_decode(&d))
            .ok_or(IamError::NoTrustPolicy)?;
        let max = tag(&text, "MaxSessionDuration")
            .and_then(|v| v.parse().ok())
            .unwrap_or(3600);
        Ok(Some(RoleInfo {
            name: name.to_owned(),
            trust_policy: trust,
            max_session_duration: max,
        }))
    }
}

/// The role name of a role ARN (`arn:aws:iam::ACCOUNT:role/PATH/NAME`).
pub fn role_name(arn: &str) -> Option<&str> {
    let rest = arn.split_once(":role/")?.1;
    rest.rsplit('/').next().filter(|n| !n.is_empty())
}

fn form_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Decodes `%XX` escapes (and `+` as a space, as IAM's documents are
/// form-encoded by some clients).
pub fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(&s.replace('+', " "))
        .decode_utf8_lossy()
        .into_owned()
}

fn xml_unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The text of the first `<name>…</name>`.
fn tag(xml: &str, name: &str) -> Option<String> {
    tags(xml, name).into_iter().next()
}

/// The texts of every `<name>…</name>` (no nesting of the same name).
fn tags(xml: &str, name: &str) -> Vec<String> {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(start) = rest.find(&open) {
        let after = &rest[start + open.len()..];
        let Some(end) = after.find(&close) else {
            break;
        };
        out.push(xml_unescape(after[..end].trim()));
        rest = &after[end + close.len()..];
    }
    out
}

/// The raw inside of the first `<name>…</name>`.
fn section<'a>(xml: &'a str, name: &str) -> Option<&'a str> {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&close)? + start;
    Some(&xml[start..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_xml_and_decodes_documents() {
        let xml = "<R><PolicyNames><member>a</member><member>b&amp;c</member></PolicyNames>\
                   <AssumeRolePolicyDocument>%7B%22a%22%3A1%7D</AssumeRolePolicyDocument></R>";
        assert_eq!(
            tags(section(xml, "PolicyNames").unwrap(), "member"),
            ["a", "b&c"]
        );
        assert_eq!(
            percent_decode(&tag(xml, "AssumeRolePolicyDocument").unwrap()),
            "{\"a\":1}"
        );
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(
            role_name("arn:aws:iam::123456789012:role/x/y/Name"),
            Some("Name")
        );
        assert_eq!(form_encode("a b/c"), "a%20b%2Fc");
    }
}
