//! Signing keys: ES256 (default: fast, and AWS accepts it) and RS256 (on request),
//! parsed once and kept, so minting never re-parses a private key.

use std::fmt;

use aws_lc_rs::digest;
use aws_lc_rs::encoding::AsDer as _;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _, RSA_PKCS1_SHA256, RsaKeyPair,
};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// Key failures.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Generation failed.
    #[error("could not generate a {0} signing key")]
    Generate(&'static str),
    /// Stored key material did not parse.
    #[error("stored signing key `{0}` is not a valid private key")]
    Parse(String),
    /// Signing failed.
    #[error("signing failed")]
    Sign,
    /// An algorithm name we do not sign with.
    #[error("unsupported signing algorithm `{0}`; expected ES256 or RS256")]
    Algorithm(String),
}

/// JWS algorithms byollm signs with. AWS accepts RS/ES 256/384/512 and rejects
/// EdDSA and HMAC (aws-facts §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum Algorithm {
    /// ECDSA P-256 with SHA-256.
    #[default]
    #[serde(rename = "ES256")]
    Es256,
    /// RSASSA-PKCS1-v1_5 (2048-bit) with SHA-256.
    #[serde(rename = "RS256")]
    Rs256,
}

impl Algorithm {
    /// The JOSE name.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Es256 => "ES256",
            Algorithm::Rs256 => "RS256",
        }
    }

    /// Parses a JOSE name.
    pub fn parse(s: &str) -> Result<Algorithm, KeyError> {
        match s {
            "ES256" => Ok(Algorithm::Es256),
            "RS256" => Ok(Algorithm::Rs256),
            other => Err(KeyError::Algorithm(other.to_owned())),
        }
    }
}

/// A public JSON Web Key as published in the JWKS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    /// `EC` or `RSA`.
    pub kty: String,
    /// The key id (RFC 7638 thumbprint prefix).
    pub kid: String,
    /// `ES256` or `RS256`.
    pub alg: String,
    /// Always `sig`.
    #[serde(rename = "use")]
    pub use_: String,
    /// EC curve.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crv: Option<String>,
    /// EC x coordinate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x: Option<String>,
    /// EC y coordinate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub y: Option<String>,
    /// RSA modulus.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<String>,
    /// RSA exponent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e: Option<String>,
}

enum Inner {
    Ec(EcdsaKeyPair),
    Rsa(RsaKeyPair),
}

/// A parsed private signing key with its public JWK and precomputed JWS header.
pub struct SigningKey {
    alg: Algorithm,
    inner: Inner,
    jwk: Jwk,
    header_b64: String,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.jwk.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Generates a new key; returns it and its PKCS#8 DER for sealing.
    pub fn generate(alg: Algorithm) -> Result<(SigningKey, Zeroizing<Vec<u8>>), KeyError> {
        let der = match alg {
            Algorithm::Es256 => {
                let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
                    .map_err(|_| KeyError::Generate("ES256"))?;
                Zeroizing::new(
                    pair.to_pkcs8v1()
                        .map_err(|_| KeyError::Generate("ES256"))?
                        .as_ref()
                        .to_vec(),
                )
            }
            Algorithm::Rs256 => {
                let pair = RsaKeyPair::generate(KeySize::Rsa2048)
                    .map_err(|_| KeyError::Generate("RS256"))?;
                Zeroizing::new(
                    pair.as_der()
                        .map_err(|_| KeyError::Generate("RS256"))?
                        .as_ref()
                        .to_vec(),
                )
            }
        };
        let key =
            SigningKey::from_pkcs8(alg, &der).map_err(|_| KeyError::Generate(alg.as_str()))?;
        Ok((key, der))
    }

    /// Parses a PKCS#8 private key.
    pub fn from_pkcs8(alg: Algorithm, der: &[u8]) -> Result<SigningKey, KeyError> {
        let (inner, mut jwk) = match alg {
            Algorithm::Es256 => {
                let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der)
                    .map_err(|_| KeyError::Parse(alg.as_str().into()))?;
                // Uncompressed SEC1 point: 0x04 ‖ x ‖ y.
                let point = pair.public_key().as_ref();
                if point.len() != 65 {
                    return Err(KeyError::Parse(alg.as_str().into()));
                }
                let jwk = Jwk {
                    kty: "EC".into(),
                    kid: String::new(),
                    alg: alg.as_str().into(),
                    use_: "sig".into(),
                    crv: Some("P-256".into()),
                    x: Some(URL_SAFE_NO_PAD.encode(&point[1..33])),
                    y: Some(URL_SAFE_NO_PAD.encode(&point[33..65])),
                    n: None,
                    e: None,
                };
                (Inner::Ec(pair), jwk)
            }
            Algorithm::Rs256 => {
                let pair = RsaKeyPair::from_pkcs8(der)
                    .map_err(|_| KeyError::Parse(alg.as_str().into()))?;
                let public = pair.public_key();
                let jwk = Jwk {
                    kty: "RSA".into(),
                    kid: String::new(),
                    alg: alg.as_str().into(),
                    use_: "sig".into(),
                    crv: None,
                    x: None,
                    y: None,
                    n: Some(
                        URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero()),
                    ),
                    e: Some(
                        URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero()),
                    ),
                };
                (Inner::Rsa(pair), jwk)
            }
        };
        jwk.kid = thumbprint(&jwk);
        let header = format!(
            r#"{{"alg":"{}","kid":"{}","typ":"JWT"}}"#,
            alg.as_str(),
            jwk.kid
        );
        Ok(SigningKey {
            alg,
            inner,
            header_b64: URL_SAFE_NO_PAD.encode(header),
            jwk,
        })
    }

    /// The key id.
    pub fn kid(&self) -> &str {
        &self.jwk.kid
    }

    /// The algorithm.
    pub fn alg(&self) -> Algorithm {
        self.alg
    }

    /// The public JWK.
    pub fn jwk(&self) -> &Jwk {
        &self.jwk
    }

    /// The base64url JWS protected header (`alg`, `kid`, `typ`).
    pub fn header_b64(&self) -> &str {
        &self.header_b64
    }

    /// Signs a JWS signing input; the signature is in JWS form (ES256: r ‖ s).
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        match &self.inner {
            Inner::Ec(pair) => pair
                .sign(&SystemRandom::new(), message)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| KeyError::Sign),
            Inner::Rsa(pair) => {
                let mut sig = vec![0u8; pair.public_modulus_len()];
                pair.sign(&RSA_PKCS1_SHA256, &SystemRandom::new(), message, &mut sig)
                    .map_err(|_| KeyError::Sign)?;
                Ok(sig)
            }
        }
    }
}

/// RFC 7638 JWK thumbprint (SHA-256, base64url), cut to 22 characters (128 bits):
/// a `kid` that is stable for the key and reveals nothing else.
fn thumbprint(jwk: &Jwk) -> String {
    // Required members only, in lexicographic order, no whitespace (RFC 7638 §3.2).
    let canonical = match (&jwk.crv, &jwk.x, &jwk.y, &jwk.n, &jwk.e) {
        (Some(crv), Some(x), Some(y), _, _) => {
            format!(r#"{{"crv":"{crv}","kty":"EC","x":"{x}","y":"{y}"}}"#)
        }
        (_, _, _, Some(n), Some(e)) => format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#),
        _ => String::new(),
    };
    let hash = digest::digest(&digest::SHA256, canonical.as_bytes());
    let mut kid = URL_SAFE_NO_PAD.encode(hash.as_ref());
    kid.truncate(22);
    kid
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generate_parse_and_sign_both_algorithms() {
        for alg in [Algorithm::Es256, Algorithm::Rs256] {
            let (key, der) = SigningKey::generate(alg).unwrap();
            let again = SigningKey::from_pkcs8(alg, &der).unwrap();
            assert_eq!(
                key.kid(),
                again.kid(),
                "kid is a thumbprint of the public key"
            );
            assert_eq!(key.kid().len(), 22);
            let sig = key.sign(b"payload").unwrap();
            assert_eq!(sig.len(), if alg == Algorithm::Es256 { 64 } else { 256 });
            assert_eq!(key.jwk().alg, alg.as_str());
            assert!(!format!("{key:?}").contains("Inner"));
        }
        assert!(SigningKey::from_pkcs8(Algorithm::Es256, b"junk").is_err());
        assert!(Algorithm::parse("EdDSA").is_err());
    }
}
