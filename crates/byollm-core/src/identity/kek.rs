//! The key-encryption key (KEK) that wraps signing keys at rest with AES-256-GCM.
//!
//! It is given by reference (`env:NAME`, `file:PATH`); the embedded default creates
//! a 0600 file in the data directory. The stored form is `v1:` + base64 of
//! nonce ‖ ciphertext ‖ tag, with the key id as associated data so a sealed key
//! cannot be moved to another row.

use std::fmt;
use std::io::Write as _;
use std::path::Path;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

use crate::secret_ref::{SecretRef, SecretRefError};

/// KEK failures.
#[derive(Debug, thiserror::Error)]
pub enum KekError {
    /// The reference could not be resolved.
    #[error(transparent)]
    Ref(#[from] SecretRefError),
    /// The key material is not 32 bytes of hex or base64.
    #[error("the key-encryption key must be 32 bytes written as 64 hex characters or base64")]
    Format,
    /// The key file could not be created.
    #[error("cannot create key-encryption key file `{path}`: {source}")]
    Create {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// Sealed data is damaged or was sealed under another KEK.
    #[error("a signing key could not be decrypted: wrong key-encryption key, or damaged data")]
    Open,
    /// The system's random generator failed.
    #[error("random number generator failure")]
    Random,
}

/// The key-encryption key.
pub struct Kek(LessSafeKey);

impl fmt::Debug for Kek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Kek([REDACTED])")
    }
}

impl Kek {
    /// A KEK from its text form (64 hex characters or base64 of 32 bytes).
    pub fn from_secret(secret: &SecretString) -> Result<Kek, KekError> {
        let text = secret.expose_secret().trim();
        let bytes = Zeroizing::new(
            hex::decode(text)
                .ok()
                .or_else(|| STANDARD.decode(text).ok())
                .ok_or(KekError::Format)?,
        );
        if bytes.len() != 32 {
            return Err(KekError::Format);
        }
        let key = UnboundKey::new(&AES_256_GCM, &bytes).map_err(|_| KekError::Format)?;
        Ok(Kek(LessSafeKey::new(key)))
    }

    /// Loads a KEK from a reference.
    pub fn load(reference: &str) -> Result<Kek, KekError> {
        Kek::from_secret(&SecretRef::parse(reference)?.resolve()?)
    }

    /// Loads the KEK file at `path`, creating it (mode 0600, 32 random bytes as
    /// hex) when it does not exist.
    pub fn load_or_create_file(path: &Path) -> Result<Kek, KekError> {
        if !path.exists() {
            let mut bytes = Zeroizing::new([0u8; 32]);
            SystemRandom::new()
                .fill(bytes.as_mut())
                .map_err(|_| KekError::Random)?;
            let text = Zeroizing::new(hex::encode(bytes.as_ref()));
            let create = |e| KekError::Create {
                path: path.display().to_string(),
                source: e,
            };
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt as _;
                options.mode(0o600);
            }
            match options.open(path) {
                Ok(mut file) => file.write_all(text.as_bytes()).map_err(create)?,
                // Another process created it first: use theirs.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(create(e)),
            }
        }
        Kek::load(&format!("file:{}", path.display()))
    }

    /// Seals `plaintext`, binding it to `aad`.
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Result<String, KekError> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| KekError::Random)?;
        let mut buf = Zeroizing::new(plaintext.to_vec());
        self.0
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut *buf,
            )
            .map_err(|_| KekError::Random)?;
        let mut out = Vec::with_capacity(NONCE_LEN + buf.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&buf);
        Ok(format!("v1:{}", STANDARD.encode(out)))
    }

    /// Opens what [`Kek::seal`] produced with the same `aad`.
    pub fn open(&self, sealed: &str, aad: &[u8]) -> Result<Zeroizing<Vec<u8>>, KekError> {
        let body = sealed.strip_prefix("v1:").ok_or(KekError::Open)?;
        let raw = STANDARD.decode(body).map_err(|_| KekError::Open)?;
        if raw.len() < NONCE_LEN {
            return Err(KekError::Open);
        }
        let (nonce, ciphertext) = raw.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| KekError::Open)?;
        let mut buf = Zeroizing::new(ciphertext.to_vec());
        let plain_len = self
            .0
            .open_in_place(nonce, Aad::from(aad), buf.as_mut())
            .map_err(|_| KekError::Open)?
            .len();
        buf.truncate(plain_len);
        Ok(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip_and_binding() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kek");
        let kek = Kek::load_or_create_file(&path).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let sealed = kek.seal(b"private key", b"kid-1").unwrap();
        assert!(!sealed.contains("private key"));
        assert_eq!(
            kek.open(&sealed, b"kid-1").unwrap().as_slice(),
            b"private key"
        );
        assert!(kek.open(&sealed, b"kid-2").is_err(), "aad binds the row");
        // The same file loads the same key.
        let again = Kek::load_or_create_file(&path).unwrap();
        assert_eq!(
            again.open(&sealed, b"kid-1").unwrap().as_slice(),
            b"private key"
        );
        let other = Kek::from_secret(&SecretString::from("00".repeat(32))).unwrap();
        assert!(other.open(&sealed, b"kid-1").is_err());
        assert!(Kek::from_secret(&SecretString::from("abcd")).is_err());
        assert_eq!(format!("{kek:?}"), "Kek([REDACTED])");
    }
}
