//! Identifiers and credentials: uids, API keys and workload tokens with
//! recognisable prefixes, and their SHA-256 hashes.
//!
//! Keys and tokens carry 256 bits of randomness, so a plain SHA-256 is the right
//! stored form (a password KDF would only slow the hot path; DESIGN §5).

use aws_lc_rs::digest;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use secrecy::SecretString;

/// Prefix of API keys, so a leaked key is recognisable (and scannable).
pub const API_KEY_PREFIX: &str = "byollm_key_";
/// Prefix of run workload tokens.
pub const WORKLOAD_TOKEN_PREFIX: &str = "byollm_run_";
/// Characters of a key kept in clear to recognise it in listings.
pub const VISIBLE_PREFIX_LEN: usize = 16;

const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    // SystemRandom reads the OS generator; it fails only if the OS has none, and
    // then nothing secure can be made: a zero buffer would be worse than a stop.
    if SystemRandom::new().fill(&mut bytes).is_err() {
        #[expect(
            clippy::panic,
            reason = "no OS randomness: refusing to mint predictable ids"
        )]
        {
            panic!("the operating system's random number generator failed");
        }
    }
    bytes
}

fn base32(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 8 / 5 + 1);
    let mut buffer: u32 = 0;
    let mut bits = 0;
    for &b in bytes {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((buffer >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((buffer << (5 - bits)) & 31) as usize]));
    }
    out
}

/// A new uid: 20 characters of lowercase base32 (100 random bits). Uids appear in
/// token subjects and trust policies, so they never contain `*`, `?`, `/` or `:`.
pub fn new_uid() -> String {
    base32(&random_bytes::<13>())[..20].to_owned()
}

/// A new opaque id with a kind prefix, e.g. `key_…`.
pub fn new_id(kind: &str) -> String {
    format!("{kind}_{}", new_uid())
}

/// A new API key: prefix plus 256 random bits.
pub fn new_api_key() -> SecretString {
    SecretString::from(format!("{API_KEY_PREFIX}{}", base32(&random_bytes::<32>())))
}

/// A new run workload token: prefix plus 256 random bits.
pub fn new_workload_token() -> SecretString {
    SecretString::from(format!(
        "{WORKLOAD_TOKEN_PREFIX}{}",
        base32(&random_bytes::<32>())
    ))
}

/// The stored form of a key or token: hex SHA-256.
pub fn hash_secret(secret: &str) -> String {
    hex::encode(digest::digest(&digest::SHA256, secret.as_bytes()))
}

/// The part of a key shown in listings.
pub fn visible_prefix(secret: &str) -> String {
    secret.chars().take(VISIBLE_PREFIX_LEN).collect()
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    #[test]
    fn uids_are_distinct_and_safe() {
        let a = new_uid();
        let b = new_uid();
        assert_ne!(a, b);
        assert_eq!(a.len(), 20);
        assert!(
            a.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        );
    }

    #[test]
    fn keys_have_prefix_and_hash_is_sha256_hex() {
        let key = new_api_key();
        assert!(key.expose_secret().starts_with(API_KEY_PREFIX));
        assert_eq!(key.expose_secret().len(), API_KEY_PREFIX.len() + 52);
        assert_eq!(
            hash_secret("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
