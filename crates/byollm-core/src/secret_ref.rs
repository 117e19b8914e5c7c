//! Secret references (`env:NAME` or `file:PATH`), resolved once at load time so
//! configuration files never hold secrets themselves (STYLE "Secrets").

use std::path::PathBuf;

use secrecy::SecretString;

/// Why a reference could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum SecretRefError {
    /// Not `env:` or `file:`.
    #[error("secret reference `{0}` must be `env:NAME` or `file:PATH`")]
    Form(String),
    /// The variable is unset or not UTF-8.
    #[error("environment variable `{0}` named by a secret reference is not set")]
    MissingEnv(String),
    /// The file could not be read.
    #[error("cannot read secret file `{path}`: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// A parsed reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretRef {
    /// An environment variable.
    Env(String),
    /// A file; surrounding whitespace is trimmed.
    File(PathBuf),
}

impl SecretRef {
    /// Parses `env:NAME` or `file:PATH`.
    pub fn parse(reference: &str) -> Result<SecretRef, SecretRefError> {
        if let Some(name) = reference.strip_prefix("env:").filter(|n| !n.is_empty()) {
            Ok(SecretRef::Env(name.to_owned()))
        } else if let Some(path) = reference.strip_prefix("file:").filter(|p| !p.is_empty()) {
            Ok(SecretRef::File(PathBuf::from(path)))
        } else {
            Err(SecretRefError::Form(reference.to_owned()))
        }
    }

    /// Reads the secret.
    pub fn resolve(&self) -> Result<SecretString, SecretRefError> {
        match self {
            SecretRef::Env(name) => {
                #[expect(
                    clippy::disallowed_methods,
                    reason = "secret references are config loading"
                )]
                let value =
                    std::env::var(name).map_err(|_| SecretRefError::MissingEnv(name.clone()))?;
                Ok(SecretString::from(value.trim().to_owned()))
            }
            SecretRef::File(path) => {
                let value =
                    std::fs::read_to_string(path).map_err(|source| SecretRefError::File {
                        path: path.clone(),
                        source,
                    })?;
                Ok(SecretString::from(value.trim().to_owned()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    #[test]
    fn parses_and_reads_files() {
        assert!(SecretRef::parse("plain").is_err());
        assert!(SecretRef::parse("env:").is_err());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        std::fs::write(&path, "hunter2\n").unwrap();
        let r = SecretRef::parse(&format!("file:{}", path.display())).unwrap();
        assert_eq!(r.resolve().unwrap().expose_secret(), "hunter2");
        let missing = SecretRef::parse("env:BYOLLM_TEST_SURELY_UNSET_VAR").unwrap();
        assert!(matches!(
            missing.resolve(),
            Err(SecretRefError::MissingEnv(_))
        ));
    }
}
