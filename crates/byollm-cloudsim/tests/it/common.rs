//! Fixtures: a fake OIDC issuer whose keys the tests hold (so they can sign
//! expired, mis-signed or oddly-formed tokens), the emulator wired to it, and
//! SDK clients pointed at the emulator with retries off.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_credential_types::Credentials;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    self, ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING,
    ECDSA_P521_SHA512_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _,
};
use aws_sdk_sts::config::{BehaviorVersion, Region};
use axum::Json;
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use byollm_api::clock::{Clock, FakeClock, Sleep, SystemClock};
use byollm_cloudsim::{Cloudsim, CloudsimConfig};
use parking_lot::Mutex;
use serde_json::{Value, json};

pub const FAKE_ISSUER: &str = "https://fake.test";
pub const FAKE_HOST: &str = "fake.test";
pub const STS_AUD: &str = "sts.amazonaws.com";
pub const ALICE: &str = "scoped_principal:team1/user:alice";
pub const BOB: &str = "scoped_principal:team1/user:bob";
pub const ROLE: &str = "byollm-bedrock";

pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A signing key of the fake issuer.
pub enum Key {
    Ec {
        kid: Option<String>,
        alg: &'static str,
        crv: &'static str,
        pair: EcdsaKeyPair,
    },
    Rsa {
        kid: Option<String>,
        alg: &'static str,
        pair: aws_lc_rs::rsa::KeyPair,
    },
}

impl Key {
    pub fn ec(alg: &'static str, kid: Option<&str>) -> Key {
        let (crv, a) = match alg {
            "ES256" => ("P-256", &ECDSA_P256_SHA256_FIXED_SIGNING),
            "ES384" => ("P-384", &ECDSA_P384_SHA384_FIXED_SIGNING),
            _ => ("P-521", &ECDSA_P521_SHA512_FIXED_SIGNING),
        };
        Key::Ec {
            kid: kid.map(str::to_owned),
            alg,
            crv,
            pair: EcdsaKeyPair::generate(a).unwrap(),
        }
    }

    pub fn rsa(alg: &'static str, kid: Option<&str>) -> Key {
        Key::Rsa {
            kid: kid.map(str::to_owned),
            alg,
            pair: aws_lc_rs::rsa::KeyPair::generate(KeySize::Rsa2048).unwrap(),
        }
    }

    pub fn kid(&self) -> Option<&str> {
        match self {
            Key::Ec { kid, .. } | Key::Rsa { kid, .. } => kid.as_deref(),
        }
    }

    pub fn alg(&self) -> &'static str {
        match self {
            Key::Ec { alg, .. } | Key::Rsa { alg, .. } => alg,
        }
    }

    /// The public JWK.
    pub fn jwk(&self) -> Value {
        let mut jwk = match self {
            Key::Ec { alg, crv, pair, .. } => {
                let point = pair.public_key().as_ref();
                let size = (point.len() - 1) / 2;
                json!({"kty": "EC", "crv": crv, "alg": alg, "use": "sig",
                       "x": URL_SAFE_NO_PAD.encode(&point[1..1 + size]),
                       "y": URL_SAFE_NO_PAD.encode(&point[1 + size..])})
            }
            Key::Rsa { alg, pair, .. } => {
                let pk = pair.public_key();
                json!({"kty": "RSA", "alg": alg, "use": "sig",
                       "n": URL_SAFE_NO_PAD.encode(pk.modulus().big_endian_without_leading_zero()),
                       "e": URL_SAFE_NO_PAD.encode(pk.exponent().big_endian_without_leading_zero())})
            }
        };
        if let Some(k) = self.kid() {
            jwk["kid"] = json!(k);
        }
        jwk
    }

    /// A compact JWS of `claims` with this key (header `alg`/`kid` as given).
    pub fn sign_with_header(&self, header: &Value, claims: &Value) -> String {
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let rng = SystemRandom::new();
        let sig = match self {
            Key::Ec { pair, .. } => pair.sign(&rng, input.as_bytes()).unwrap().as_ref().to_vec(),
            Key::Rsa { alg, pair, .. } => {
                let enc: &'static dyn signature::RsaEncoding = match *alg {
                    "RS256" => &signature::RSA_PKCS1_SHA256,
                    "RS384" => &signature::RSA_PKCS1_SHA384,
                    _ => &signature::RSA_PKCS1_SHA512,
                };
                let mut sig = vec![0u8; pair.public_modulus_len()];
                pair.sign(enc, &rng, input.as_bytes(), &mut sig).unwrap();
                sig
            }
        };
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
    }

    pub fn sign(&self, claims: &Value) -> String {
        let mut header = json!({"alg": self.alg(), "typ": "JWT"});
        if let Some(k) = self.kid() {
            header["kid"] = json!(k);
        }
        self.sign_with_header(&header, claims)
    }
}

/// Claims a well-behaved issuer would mint.
pub fn claims(sub: &str) -> Value {
    let now = now();
    json!({"iss": FAKE_ISSUER, "sub": sub, "aud": STS_AUD, "iat": now, "nbf": now,
           "exp": now + 600, "jti": format!("jti-{now}")})
}

/// The emulator's clock in tests: the real time when the world starts, then only
/// what the test moves it by, so cool-downs and TTLs pass without sleeping.
#[derive(Debug)]
pub struct TestClock(FakeClock);

impl Default for TestClock {
    fn default() -> Self {
        TestClock(FakeClock::from_ms(SystemClock.now_ms()))
    }
}

impl TestClock {
    pub fn advance(&self, by: Duration) {
        self.0
            .advance_ms(i64::try_from(by.as_millis()).unwrap_or(i64::MAX));
    }
}

impl Clock for TestClock {
    fn now_ms(&self) -> i64 {
        self.0.now_ms()
    }

    fn sleep_until(&self, deadline_ms: i64) -> Sleep<'_> {
        self.0.sleep_until(deadline_ms)
    }
}

/// An OIDC issuer served over plain HTTP whose JWKS the test controls.
pub struct FakeIssuer {
    pub addr: SocketAddr,
    pub jwks: Arc<Mutex<Vec<Value>>>,
    /// GETs of the JWKS document so far.
    pub jwks_hits: Arc<AtomicU64>,
}

impl FakeIssuer {
    pub async fn start(issuer: &'static str, keys: &[&Key]) -> FakeIssuer {
        let jwks = Arc::new(Mutex::new(keys.iter().map(|k| k.jwk()).collect::<Vec<_>>()));
        let j = jwks.clone();
        let jwks_hits = Arc::new(AtomicU64::new(0));
        let hits = jwks_hits.clone();
        let app = axum::Router::new()
            .route(
                "/.well-known/openid-configuration",
                get(move || async move {
                    Json(json!({"issuer": issuer,
                                "jwks_uri": format!("{issuer}/.well-known/jwks.json"),
                                "response_types_supported": ["id_token"],
                                "subject_types_supported": ["public"],
                                "id_token_signing_alg_values_supported": ["ES256", "RS256"]}))
                }),
            )
            .route(
                "/.well-known/jwks.json",
                get(move || {
                    hits.fetch_add(1, Ordering::SeqCst);
                    let keys = j.lock().clone();
                    async move { Json(json!({"keys": keys})) }
                }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        FakeIssuer {
            addr,
            jwks,
            jwks_hits,
        }
    }
}

/// Trust policy admitting `sub_condition` (StringEquals or StringLike by the
/// presence of `*`) from the fake issuer, with these actions.
pub fn trust(sub: &str, actions: &[&str]) -> String {
    let op = if sub.contains('*') {
        "StringLike"
    } else {
        "StringEquals"
    };
    json!({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow",
        "Principal": {"Federated": format!("arn:aws:iam::123456789012:oidc-provider/{FAKE_HOST}")},
        "Action": actions,
        "Condition": {
            "StringEquals": {format!("{FAKE_HOST}:aud"): STS_AUD},
            op: {format!("{FAKE_HOST}:sub"): sub}
        }
    }]})
    .to_string()
}

/// The broad Bedrock policy (every model, every profile).
pub const BROAD: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow",
 "Action":["bedrock:InvokeModel","bedrock:InvokeModelWithResponseStream"],
 "Resource":["arn:aws:bedrock:*::foundation-model/*","arn:aws:bedrock:*:*:inference-profile/*"]}]}"#;

/// The emulator, the fake issuer (ES256 key `k1`), a provider and role `ROLE`
/// admitting ALICE with the broad policy.
pub struct World {
    pub sim: Cloudsim,
    /// The emulator's clock.
    pub clock: Arc<TestClock>,
    pub key: Key,
    pub issuer: FakeIssuer,
    pub role_arn: String,
    pub sts: aws_sdk_sts::Client,
}

impl World {
    pub async fn new() -> World {
        let key = Key::ec("ES256", Some("k1"));
        let issuer = FakeIssuer::start(FAKE_ISSUER, &[&key]).await;
        let clock = Arc::new(TestClock::default());
        let sim = Cloudsim::start(CloudsimConfig {
            resolve: vec![(FAKE_HOST.to_owned(), issuer.addr)],
            clock: clock.clone(),
            ..CloudsimConfig::default()
        })
        .await
        .unwrap();
        sim.create_oidc_provider(FAKE_ISSUER, &[STS_AUD]).unwrap();
        let role_arn = sim
            .create_role(
                ROLE,
                &trust(ALICE, &["sts:AssumeRoleWithWebIdentity"]),
                None,
            )
            .unwrap();
        sim.put_role_policy(ROLE, "bedrock", BROAD).unwrap();
        let sts = sts_client(&sim);
        World {
            sim,
            clock,
            key,
            issuer,
            role_arn,
            sts,
        }
    }

    /// A token for `sub` with the default claims.
    pub fn token(&self, sub: &str) -> String {
        self.key.sign(&claims(sub))
    }

    /// AssumeRoleWithWebIdentity on ROLE.
    pub async fn assume(
        &self,
        token: &str,
    ) -> Result<
        aws_sdk_sts::operation::assume_role_with_web_identity::AssumeRoleWithWebIdentityOutput,
        aws_sdk_sts::error::SdkError<
            aws_sdk_sts::operation::assume_role_with_web_identity::AssumeRoleWithWebIdentityError,
        >,
    > {
        self.sts
            .assume_role_with_web_identity()
            .role_arn(&self.role_arn)
            .role_session_name("byollm-user-alice")
            .web_identity_token(token)
            .send()
            .await
    }

    /// Credentials for ALICE on ROLE.
    pub async fn creds(&self) -> Credentials {
        let out = self.assume(&self.token(ALICE)).await.unwrap();
        to_creds(&out.credentials.unwrap())
    }

    pub async fn bedrock(&self, region: &str) -> aws_sdk_bedrockruntime::Client {
        bedrock_client(&self.sim, region, self.creds().await)
    }
}

pub fn to_creds(c: &aws_sdk_sts::types::Credentials) -> Credentials {
    // No expiry for the SDK: the emulator alone decides when they expire.
    Credentials::new(
        c.access_key_id(),
        c.secret_access_key(),
        Some(c.session_token().to_owned()),
        None,
        "awsim-test",
    )
}

pub fn sts_client(sim: &Cloudsim) -> aws_sdk_sts::Client {
    let conf = aws_sdk_sts::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(sim.endpoint_url())
        .retry_config(aws_sdk_sts::config::retry::RetryConfig::disabled())
        .build();
    aws_sdk_sts::Client::from_conf(conf)
}

pub fn signed_sts_client(sim: &Cloudsim, creds: Credentials) -> aws_sdk_sts::Client {
    let conf = aws_sdk_sts::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(sim.endpoint_url())
        .credentials_provider(creds)
        .retry_config(aws_sdk_sts::config::retry::RetryConfig::disabled())
        .build();
    aws_sdk_sts::Client::from_conf(conf)
}

pub fn bedrock_client(
    sim: &Cloudsim,
    region: &str,
    creds: Credentials,
) -> aws_sdk_bedrockruntime::Client {
    let conf = aws_sdk_bedrockruntime::Config::builder()
        .behavior_version(aws_sdk_bedrockruntime::config::BehaviorVersion::latest())
        .region(aws_sdk_bedrockruntime::config::Region::new(
            region.to_owned(),
        ))
        .endpoint_url(sim.endpoint_url())
        .credentials_provider(creds)
        .retry_config(aws_sdk_bedrockruntime::config::retry::RetryConfig::disabled())
        .build();
    aws_sdk_bedrockruntime::Client::from_conf(conf)
}

/// The admin's credentials.
pub fn admin(sim: &Cloudsim) -> Credentials {
    let (id, secret) = sim.admin_credentials();
    Credentials::new(id, secret, None, None, "awsim-admin")
}
