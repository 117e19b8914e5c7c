//! A secret string for wire bodies: redacted in `Debug`, serialized as itself
//! (it is on the wire because the caller must see it exactly once).

use std::fmt;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A secret carried in a request or response body (an API key shown once, a
/// workload token, an identity token). `Debug` never prints it.
#[derive(Clone)]
pub struct SecretValue(SecretString);

impl SecretValue {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Self(SecretString::from(value.into()))
    }

    /// The secret itself; call only at the line that uses it.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl From<SecretString> for SecretValue {
    fn from(value: SecretString) -> Self {
        Self(value)
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretValue([REDACTED])")
    }
}

impl Serialize for SecretValue {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.0.expose_secret())
    }
}

impl<'de> Deserialize<'de> for SecretValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(SecretValue::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted_and_serde_round_trips() {
        let s = SecretValue::new("byk_secret");
        assert_eq!(format!("{s:?}"), "SecretValue([REDACTED])");
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(json, "\"byk_secret\"");
        let back: SecretValue = serde_json::from_str(&json).unwrap();
        assert_eq!(back.expose(), "byk_secret");
    }
}
