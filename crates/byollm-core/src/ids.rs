//! Identifiers and credentials: uids, API keys and workload tokens with
//! recognisable prefixes, and their SHA-256 hashes.
//!
//! Keys and tokens carry 256 bits of randomness, so a plain SHA-256 is the right
//! stored form (a password KDF would only slow the hot path; DESIGN §5).
//!
//! ## Credential format
//!
//! `<prefix><body><check>` where `prefix` is [`API_KEY_PREFIX`] or
//! [`WORKLOAD_TOKEN_PREFIX`], `body` is 52 characters of lowercase base32
//! (`a–z2–7`, 256 random bits) and `check` is 7 characters in the same alphabet:
//! the CRC-32 (IEEE) of `prefix ‖ body`, big-endian, base32 with the last
//! character's 3 spare bits zero. 70 characters in all. The checksum is not a
//! secret and adds no strength; it lets the server refuse a mistyped, truncated
//! or made-up credential before any hash or store query (GitHub's token format
//! does the same), and lets secret scanners tell a real key from a look-alike.
//!
//! Credentials minted before the checksum (63 characters, no `check`) are
//! [`CredentialFormat::Legacy`]: accepted until [`LEGACY_FORMAT_ACCEPTED_UNTIL`]
//! (2027-03-01 UTC), refused after it with a hint to create a new key.

use aws_lc_rs::digest;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use secrecy::SecretString;

/// Prefix of API keys, so a leaked key is recognisable (and scannable).
pub const API_KEY_PREFIX: &str = "byollm_key_";
/// Prefix of run workload tokens.
pub const WORKLOAD_TOKEN_PREFIX: &str = "byollm_run_";
/// Prefix of one-time invitation codes (redeemed for a member's first key).
pub const INVITATION_PREFIX: &str = "byollm_inv_";
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

/// Characters of the random body of a key or token (256 bits in base32).
const BODY_LEN: usize = 52;
/// Characters of the checksum (32 bits in base32).
const CHECK_LEN: usize = 7;

/// Unix time (2027-03-01T00:00:00Z) after which credentials without a checksum
/// are refused. Keys made before the checksum keep working until then so
/// deployments can rotate them; run tokens of that age have long expired.
pub const LEGACY_FORMAT_ACCEPTED_UNTIL: i64 = 1_803_859_200;

fn with_check(prefix: &str, body: &str) -> String {
    let mut s = String::with_capacity(prefix.len() + BODY_LEN + CHECK_LEN);
    s.push_str(prefix);
    s.push_str(body);
    let crc = crc32fast::hash(s.as_bytes());
    s.push_str(&base32(&crc.to_be_bytes()));
    s
}

/// A new API key: prefix, 256 random bits, checksum (module docs).
pub fn new_api_key() -> SecretString {
    SecretString::from(with_check(API_KEY_PREFIX, &base32(&random_bytes::<32>())))
}

/// A new one-time invitation code: prefix, 160 random bits, checksum.
pub fn new_invitation_code() -> SecretString {
    SecretString::from(with_check(
        INVITATION_PREFIX,
        &base32(&random_bytes::<20>()),
    ))
}

/// A new run workload token: prefix, 256 random bits, checksum (module docs).
pub fn new_workload_token() -> SecretString {
    SecretString::from(with_check(
        WORKLOAD_TOKEN_PREFIX,
        &base32(&random_bytes::<32>()),
    ))
}

/// A new web console session cookie: 256 random bits in base32 with a prefix of
/// its own (not a credential format: the API refuses it as malformed).
pub fn new_console_session() -> SecretString {
    SecretString::from(format!("bcs_{}", base32(&random_bytes::<32>())))
}

/// A new one-time console sign-in link token: 256 random bits in base32 with
/// a prefix of its own (not a credential: the API refuses it as malformed).
pub fn new_sign_in_link() -> SecretString {
    SecretString::from(format!("bsl_{}", base32(&random_bytes::<32>())))
}

/// What a presented credential looks like, judged without any lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialFormat {
    /// Our prefix, a base32 body and a checksum that matches.
    Current,
    /// Our prefix and a 52-character base32 body with no checksum (minted before
    /// the checksum; see [`LEGACY_FORMAT_ACCEPTED_UNTIL`]).
    Legacy,
    /// Our prefix and the current length, but the checksum does not match.
    BadChecksum,
    /// Not one of our credentials at all.
    Malformed,
}

/// Classifies a presented credential by its shape alone: cheap (one CRC-32 of
/// 63 bytes), no hashing, no store.
pub fn credential_format(presented: &str) -> CredentialFormat {
    let Some(prefix) = [API_KEY_PREFIX, WORKLOAD_TOKEN_PREFIX]
        .into_iter()
        .find(|p| presented.starts_with(p))
    else {
        return CredentialFormat::Malformed;
    };
    let rest = &presented[prefix.len()..];
    if !rest.bytes().all(|b| ALPHABET.contains(&b)) {
        return CredentialFormat::Malformed;
    }
    match rest.len() {
        BODY_LEN => CredentialFormat::Legacy,
        n if n == BODY_LEN + CHECK_LEN => {
            let (body, check) = rest.split_at(BODY_LEN);
            if with_check(prefix, body).ends_with(check) {
                CredentialFormat::Current
            } else {
                CredentialFormat::BadChecksum
            }
        }
        _ => CredentialFormat::Malformed,
    }
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
        assert_eq!(key.expose_secret().len(), API_KEY_PREFIX.len() + 52 + 7);
        assert_eq!(
            hash_secret("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn minted_credentials_carry_a_checksum_that_catches_changes() {
        for secret in [new_api_key(), new_workload_token()] {
            let s = secret.expose_secret();
            assert_eq!(credential_format(s), CredentialFormat::Current, "{s}");
            // Any one changed body character breaks the checksum.
            let mut changed = s.to_owned().into_bytes();
            let i = API_KEY_PREFIX.len() + 10;
            changed[i] = if changed[i] == b'a' { b'b' } else { b'a' };
            let changed = String::from_utf8(changed).unwrap();
            assert_eq!(credential_format(&changed), CredentialFormat::BadChecksum);
            // The pre-checksum shape is recognised as legacy.
            assert_eq!(credential_format(&s[..63]), CredentialFormat::Legacy);
        }
        // A key body under the run prefix fails: the prefix is checksummed too.
        let key = new_api_key();
        let swapped = key
            .expose_secret()
            .replacen(API_KEY_PREFIX, WORKLOAD_TOKEN_PREFIX, 1);
        assert_eq!(credential_format(&swapped), CredentialFormat::BadChecksum);
        for bad in [
            "",
            "byollm_key_",
            "byollm_key_ABC",
            "sk-ant-xyz",
            "byollm_key_a",
        ] {
            assert_eq!(credential_format(bad), CredentialFormat::Malformed, "{bad}");
        }
    }
}
