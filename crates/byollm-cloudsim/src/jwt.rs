//! Web-identity token checks STS makes (aws-facts §2): compact JWS parsing, the
//! RS/ES 256/384/512 signature against a JWK chosen by exact `kid`, and the
//! issuer's keys fetched over HTTP (discovery document, then `jwks_uri`) with a
//! timeout and a small cache.
//!
//! Invariant: an unknown `kid` fetches an issuer's keys again at most once per
//! [`REFETCH_COOLDOWN`], so tokens with made-up `kid`s cannot make the emulator
//! hammer an issuer (STS, too, fails when it makes "too many requests to the
//! IdP", aws-facts §2). Every fetch is counted ([`KeyFetcher::fetch_count`]).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use aws_lc_rs::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use parking_lot::Mutex;
use serde_json::{Map, Value};

/// The algorithms STS accepts (aws-facts §2: no HS*, no EdDSA).
pub const ALGORITHMS: [&str; 6] = ["RS256", "RS384", "RS512", "ES256", "ES384", "ES512"];

/// A parsed, not yet verified, token.
#[derive(Debug, Clone)]
pub struct Token {
    /// The protected header.
    pub header: Map<String, Value>,
    /// The claims.
    pub claims: Map<String, Value>,
    /// `base64(header).base64(payload)`.
    pub signing_input: String,
    /// The decoded signature.
    pub signature: Vec<u8>,
}

impl Token {
    /// Splits and decodes a compact JWS; `None` when it is not one.
    pub fn parse(token: &str) -> Option<Token> {
        let mut parts = token.split('.');
        let (h, p, s) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let header: Map<String, Value> =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(h).ok()?).ok()?;
        let claims: Map<String, Value> =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).ok()?).ok()?;
        let signature = URL_SAFE_NO_PAD.decode(s).ok()?;
        Some(Token {
            header,
            claims,
            signing_input: format!("{h}.{p}"),
            signature,
        })
    }

    /// The header's `alg`.
    pub fn alg(&self) -> Option<&str> {
        self.header.get("alg").and_then(Value::as_str)
    }

    /// The header's `kid`: `None` when absent (an empty string is a `kid`).
    pub fn kid(&self) -> Option<&str> {
        self.header.get("kid").and_then(Value::as_str)
    }
}

/// Whether `jwk` verifies `token` with `alg`.
pub fn verify_with(jwk: &Map<String, Value>, alg: &str, token: &Token) -> bool {
    let b64 = |name: &str| {
        jwk.get(name)
            .and_then(Value::as_str)
            .and_then(|s| URL_SAFE_NO_PAD.decode(s).ok())
    };
    let kty = jwk.get("kty").and_then(Value::as_str).unwrap_or_default();
    if let Some(key_alg) = jwk.get("alg").and_then(Value::as_str)
        && key_alg != alg
    {
        return false;
    }
    let msg = token.signing_input.as_bytes();
    match alg {
        "RS256" | "RS384" | "RS512" => {
            if kty != "RSA" {
                return false;
            }
            let (Some(n), Some(e)) = (b64("n"), b64("e")) else {
                return false;
            };
            let params = match alg {
                "RS256" => &signature::RSA_PKCS1_2048_8192_SHA256,
                "RS384" => &signature::RSA_PKCS1_2048_8192_SHA384,
                _ => &signature::RSA_PKCS1_2048_8192_SHA512,
            };
            RsaPublicKeyComponents { n: &n, e: &e }
                .verify(params, msg, &token.signature)
                .is_ok()
        }
        "ES256" | "ES384" | "ES512" => {
            let (crv, size, params) = match alg {
                "ES256" => ("P-256", 32, &signature::ECDSA_P256_SHA256_FIXED),
                "ES384" => ("P-384", 48, &signature::ECDSA_P384_SHA384_FIXED),
                _ => ("P-521", 66, &signature::ECDSA_P521_SHA512_FIXED),
            };
            if kty != "EC" || jwk.get("crv").and_then(Value::as_str) != Some(crv) {
                return false;
            }
            let (Some(x), Some(y)) = (b64("x"), b64("y")) else {
                return false;
            };
            if x.len() != size || y.len() != size {
                return false;
            }
            let mut point = Vec::with_capacity(1 + 2 * size);
            point.push(4);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            UnparsedPublicKey::new(params, &point)
                .verify(msg, &token.signature)
                .is_ok()
        }
        _ => false,
    }
}

/// How long after a successful fetch an unknown `kid` may trigger the next one.
/// AWS does not document STS's figure; 30 s is the default of a widely used
/// verifier, jose's `createRemoteJWKSet` `cooldownDuration` ("Time in
/// milliseconds after a successful fetch before a missing key can trigger
/// another fetch. Defaults to 30000"). A key published within that time is
/// found once it has passed, or when the cache's TTL runs out.
pub const REFETCH_COOLDOWN: Duration = Duration::from_secs(30);

/// An issuer's keys (JWK objects).
pub type Keys = Arc<Vec<Map<String, Value>>>;

/// Why the keys could not be had.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchError(pub String);

/// Fetches and caches issuers' keys.
#[derive(Debug)]
pub struct KeyFetcher {
    http: reqwest::Client,
    resolve: Vec<(String, SocketAddr)>,
    ttl_secs: f64,
    cache: Mutex<HashMap<String, (f64, Keys)>>,
    fetches: AtomicU64,
}

impl KeyFetcher {
    /// A fetcher with this per-request `timeout` (AWS gives up past 5 s), cache
    /// `ttl` and `--resolve` table.
    pub fn new(timeout: Duration, ttl: Duration, resolve: Vec<(String, SocketAddr)>) -> Self {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .no_proxy()
            .tcp_nodelay(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        KeyFetcher {
            http,
            resolve,
            ttl_secs: ttl.as_secs_f64(),
            cache: Mutex::new(HashMap::new()),
            fetches: AtomicU64::new(0),
        }
    }

    /// Where `url` is really fetched: `https://HOST[:port]/p` becomes
    /// `http://ADDR:PORT/p` when HOST (or HOST:port) is in the `--resolve` table.
    /// Anything else is unreachable: the emulator is offline by design and never
    /// looks a name up or leaves the machine.
    pub fn effective_url(&self, url: &str) -> Option<String> {
        let rest = url.strip_prefix("https://")?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let host = authority.split(':').next().unwrap_or(authority);
        self.resolve
            .iter()
            .find(|(h, _)| h == authority || h == host)
            .map(|(_, addr)| format!("http://{addr}{path}"))
    }

    /// The keys of `issuer` at `now` (Unix seconds) and whether they came from
    /// the cache: cached keys younger than the TTL are reused; `refresh` (an
    /// unknown `kid`) fetches anew only when they are at least
    /// [`REFETCH_COOLDOWN`] old.
    pub async fn keys(
        &self,
        issuer: &str,
        now: f64,
        refresh: bool,
    ) -> Result<(Keys, bool), FetchError> {
        if let Some((at, keys)) = self.cache.lock().get(issuer) {
            let age = now - at;
            if age < self.ttl_secs && (!refresh || age < REFETCH_COOLDOWN.as_secs_f64()) {
                return Ok((keys.clone(), true));
            }
        }
        let keys = Arc::new(self.fetch(issuer).await?);
        self.cache
            .lock()
            .insert(issuer.to_owned(), (now, keys.clone()));
        Ok((keys, false))
    }

    /// How many times an issuer's keys were fetched (successfully or not).
    pub fn fetch_count(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    /// Forgets every cached key set.
    pub fn clear(&self) {
        self.cache.lock().clear();
    }

    async fn fetch(&self, issuer: &str) -> Result<Vec<Map<String, Value>>, FetchError> {
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let discovery_url = format!(
            "{}/.well-known/openid-configuration",
            issuer.trim_end_matches('/')
        );
        let discovery = self.get_json(&discovery_url).await?;
        // The discovery document must name the same issuer, or a host could
        // vouch for another's tokens.
        if discovery.get("issuer").and_then(Value::as_str) != Some(issuer) {
            return Err(FetchError(format!(
                "discovery document at {discovery_url} names issuer {:?}, not {issuer}",
                discovery.get("issuer")
            )));
        }
        let jwks_uri = discovery
            .get("jwks_uri")
            .and_then(Value::as_str)
            .ok_or_else(|| FetchError("discovery document has no jwks_uri".to_owned()))?;
        let jwks = self.get_json(jwks_uri).await?;
        let keys = jwks
            .get("keys")
            .and_then(Value::as_array)
            .ok_or_else(|| FetchError("JWKS has no keys array".to_owned()))?;
        let keys: Vec<Map<String, Value>> =
            keys.iter().filter_map(|k| k.as_object().cloned()).collect();
        if keys.is_empty() {
            return Err(FetchError("JWKS has no keys".to_owned()));
        }
        Ok(keys)
    }

    async fn get_json(&self, url: &str) -> Result<Value, FetchError> {
        let target = self.effective_url(url).ok_or_else(|| {
            FetchError(format!(
                "{url}: not an https:// URL with a --resolve entry for its host"
            ))
        })?;
        let resp = self
            .http
            .get(&target)
            .send()
            .await
            .map_err(|e| FetchError(format!("GET {url} (via {target}): {e}")))?;
        if !resp.status().is_success() {
            return Err(FetchError(format!("GET {url}: HTTP {}", resp.status())));
        }
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| FetchError(format!("GET {url}: {e}")))?;
        serde_json::from_slice(&bytes).map_err(|e| FetchError(format!("GET {url}: {e}")))
    }
}
