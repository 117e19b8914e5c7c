//! Identity-token claims and compact JWS encoding (DESIGN §3).
//!
//! The JWS is built here on top of the parsed key (header precomputed per key), so
//! minting costs one JSON serialization, two base64 passes and one signature.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use super::keys::{KeyError, SigningKey};

/// The session-tags claim name AWS reads (aws-facts §3.5).
pub const TAGS_CLAIM: &str = "https://aws.amazon.com/tags";
/// The source-identity claim name AWS reads (aws-facts §3.6).
pub const SOURCE_IDENTITY_CLAIM: &str = "https://aws.amazon.com/source_identity";

/// Every claim of an identity token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The configured issuer URL, exactly.
    pub iss: String,
    /// `scoped_principal:<team>/<actor-type>:<uid>[:run_id:<run>]`.
    pub sub: String,
    /// A single audience string (AWS: `sts.amazonaws.com`).
    pub aud: String,
    /// Issued at (integer seconds; AWS rejects floats).
    pub iat: i64,
    /// Not before (back-dated for clock skew).
    pub nbf: i64,
    /// Expiry (integer seconds).
    pub exp: i64,
    /// Unique token id, recorded in the audit log.
    pub jti: String,
    /// The team.
    pub team_uid: String,
    /// `user` or `service_account`.
    pub actor_type: String,
    /// The member's or agent's uid.
    pub principal_uid: String,
    /// The run, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// Session tags, when the team enables them.
    #[serde(
        rename = "https://aws.amazon.com/tags",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub session_tags: Option<SessionTags>,
    /// The accountable human, when the team enables source identity.
    #[serde(
        rename = "https://aws.amazon.com/source_identity",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub source_identity: Option<String>,
    /// The team's uid again, under the short name a Google attribute mapping
    /// reads (`attribute.team=assertion.team`); only in tokens for the team's
    /// own workload identity provider, so AWS tokens are unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
    /// The full actor subject (`scoped_principal:<team>/<type>:<uid>`, with
    /// the run when the template asks) when `sub` is coarser: an Azure token
    /// at `team` or `actor_type` granularity, whose `sub` one FIC matches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
}

/// AWS's session-tag claim shape: each tag a single-element array (STS does not
/// support multi-valued tags), plus the keys that are transitive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionTags {
    /// Tag key → `[value]`.
    pub principal_tags: BTreeMap<String, Vec<String>>,
    /// Keys that pass on through role chaining.
    pub transitive_tag_keys: Vec<String>,
}

/// Signs `claims` into a compact JWS.
pub fn encode(key: &SigningKey, claims: &Claims) -> Result<SecretString, KeyError> {
    let payload = serde_json::to_vec(claims).map_err(|_| KeyError::Sign)?;
    let header = key.header_b64();
    let payload_len = base64::encoded_len(payload.len(), false).unwrap_or(0);
    let mut out = String::with_capacity(header.len() + payload_len + 350);
    out.push_str(header);
    out.push('.');
    URL_SAFE_NO_PAD.encode_string(&payload, &mut out);
    let signature = key.sign(out.as_bytes())?;
    out.push('.');
    URL_SAFE_NO_PAD.encode_string(&signature, &mut out);
    Ok(SecretString::from(out))
}

/// Decodes the payload of a compact JWS without verifying it: for displaying a
/// token's claims to its owner (the demo, the doctor), never for trusting them.
pub fn decode_unverified(token: &str) -> Option<serde_json::Value> {
    let payload = token.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload).ok()?;
    serde_json::from_slice(&bytes).ok()
}
