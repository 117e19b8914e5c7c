//! Validation of what users type. Each check returns a [`FieldError`] naming the
//! field and the expected form, which the HTTP edge turns into a 400.

use std::sync::LazyLock;

use regex::Regex;

use byollm_api::catalog::Catalog;

/// A rejected field: which one, and what form it must take.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    /// The field's JSON path, e.g. `hosts.aws_bedrock.role_arn`.
    pub field: String,
    /// What was wrong and the expected form.
    pub message: String,
}

impl FieldError {
    /// A new error for `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Compiles a constant pattern (the callers' unit tests exercise each).
pub(crate) fn regex(pattern: &str) -> Regex {
    #[expect(
        clippy::expect_used,
        reason = "constant patterns, exercised by the unit tests"
    )]
    Regex::new(pattern).expect("valid constant regex")
}

// IAM role names are 1–64 of [\w+=,.@-]; paths are /-separated runs of printable
// ASCII (IAM `CreateRole`, aws-facts §4.1). Partitions: aws, aws-cn, aws-us-gov.
static ROLE_ARN: LazyLock<Regex> = LazyLock::new(|| {
    regex(
        r"^arn:aws(?:-cn|-us-gov)?:iam::[0-9]{12}:role/(?:[\x21-\x2E\x30-\x7E]+/)*[\w+=,.@-]{1,64}$",
    )
});
static REGION: LazyLock<Regex> =
    LazyLock::new(|| regex(r"^[a-z]{2}(?:-gov|-iso[a-z]*)?-[a-z]+-[0-9]{1,2}$"));
static UID: LazyLock<Regex> = LazyLock::new(|| regex(r"^[a-z0-9][a-z0-9_-]{0,63}$"));
// Bedrock accepts bare ids `[a-zA-Z0-9-:.]+` and profile/model ARNs (aws-facts §5.2).
static MODEL_REF: LazyLock<Regex> = LazyLock::new(|| {
    regex(
        r"^(?:[a-zA-Z0-9][a-zA-Z0-9.:-]{0,255}|arn:aws(?:-[a-z-]+)?:bedrock:[a-z0-9-]*:[0-9]{0,12}:[a-z-]+/[a-zA-Z0-9.:/_-]{1,512})$",
    )
});

/// Checks an IAM role ARN.
pub fn role_arn(field: &str, value: &str) -> Result<(), FieldError> {
    if value.len() <= 2048 && ROLE_ARN.is_match(value) {
        Ok(())
    } else {
        Err(FieldError::new(
            field,
            format!(
                "`{}` is not an IAM role ARN; expected arn:aws:iam::<12-digit account>:role/<name> \
                 (partitions aws, aws-cn, aws-us-gov)",
                shorten(value)
            ),
        ))
    }
}

/// Checks an AWS Region name.
pub fn region(field: &str, value: &str) -> Result<(), FieldError> {
    if REGION.is_match(value) {
        Ok(())
    } else {
        Err(FieldError::new(
            field,
            format!(
                "`{}` is not an AWS Region; expected a name like us-east-1",
                shorten(value)
            ),
        ))
    }
}

/// Checks a uid typed by a user.
pub fn uid(field: &str, value: &str) -> Result<(), FieldError> {
    if UID.is_match(value) {
        Ok(())
    } else {
        Err(FieldError::new(
            field,
            format!(
                "`{}` is not a uid; expected 1-64 characters of a-z, 0-9, `_` and `-`",
                shorten(value)
            ),
        ))
    }
}

/// Checks a public model id against the catalog.
pub fn model_id(field: &str, value: &str) -> Result<(), FieldError> {
    if Catalog::builtin().get(value).is_some() {
        Ok(())
    } else {
        let known: Vec<&str> = Catalog::builtin()
            .models
            .iter()
            .map(|m| m.id.as_str())
            .collect();
        Err(FieldError::new(
            field,
            format!(
                "unknown model `{}`; expected one of {}",
                shorten(value),
                known.join(", ")
            ),
        ))
    }
}

/// Checks a Bedrock model reference (profile id, model id or ARN).
pub fn model_ref(field: &str, value: &str) -> Result<(), FieldError> {
    if MODEL_REF.is_match(value) {
        Ok(())
    } else {
        Err(FieldError::new(
            field,
            format!(
                "`{}` is not a Bedrock model reference; expected an inference profile id like \
                 us.anthropic.claude-sonnet-4-6 or an inference-profile ARN",
                shorten(value)
            ),
        ))
    }
}

/// Checks an email address (loosely: one `@`, no spaces, at most 254 characters).
pub fn email(field: &str, value: &str) -> Result<(), FieldError> {
    let ok = value.len() <= 254
        && value.split('@').count() == 2
        && value.split('@').all(|p| !p.is_empty())
        && !value.chars().any(|c| c.is_whitespace() || c.is_control());
    if ok {
        Ok(())
    } else {
        Err(FieldError::new(
            field,
            format!(
                "`{}` is not an email address; expected name@example.com",
                shorten(value)
            ),
        ))
    }
}

/// Checks a display name: 1–`max` characters, no control characters.
pub fn name(field: &str, value: &str, max: usize) -> Result<(), FieldError> {
    let len = value.chars().count();
    if len == 0 || len > max || value.chars().any(char::is_control) || value.trim().is_empty() {
        Err(FieldError::new(
            field,
            format!("expected 1-{max} printable characters"),
        ))
    } else {
        Ok(())
    }
}

/// Checks free text (descriptions, prompts): no NUL or other control characters
/// except newline, carriage return and tab (PostgreSQL text cannot hold NUL).
pub fn free_text(field: &str, value: &str, max_chars: usize) -> Result<(), FieldError> {
    if value.chars().count() > max_chars {
        return Err(FieldError::new(
            field,
            format!("expected at most {max_chars} characters"),
        ));
    }
    if value
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        return Err(FieldError::new(
            field,
            "contains a control character; only text, newlines and tabs are allowed",
        ));
    }
    Ok(())
}

/// Deserializes a JSON value, naming the path of the first field that fails.
pub fn from_json_value<T: serde::de::DeserializeOwned>(
    doc: serde_json::Value,
) -> Result<T, FieldError> {
    serde_path_to_error::deserialize(doc).map_err(|e| {
        let path = e.path().to_string();
        let message = e.into_inner().to_string();
        // serde reports a missing field at the parent's path and names it in the
        // message; an unknown field's path already ends with it.
        let missing = message
            .strip_prefix("missing field `")
            .and_then(|m| m.split('`').next());
        let field = match (path.as_str(), missing) {
            (".", Some(f)) => f.to_owned(),
            (p, Some(f)) => format!("{p}.{f}"),
            (".", None) => "body".to_owned(),
            (p, None) => p.to_owned(),
        };
        FieldError::new(field, message)
    })
}

/// Cuts a value for echoing in an error message, escaping what would not show:
/// a control or invisible character appears as `\u0000`, never dropped, so the
/// message names the value as received.
fn shorten(value: &str) -> String {
    let mut s = String::new();
    for c in value.chars().take(80) {
        if c.is_control() || is_invisible(c) || c == '`' || c == '\\' {
            s.push_str(&format!("\\u{:04x}", u32::from(c)));
        } else {
            s.push(c);
        }
    }
    if value.chars().count() > 80 {
        s.push('…');
    }
    s
}

/// Quotes a value as received for an error message (escaped, cut at 80
/// characters).
pub fn quote(value: &str) -> String {
    format!("`{}`", shorten(value))
}

/// Characters that look like `-` but are not: refused in names, so "a-b" and
/// "a‐b" cannot be two agents.
const HYPHEN_LOOKALIKES: [char; 11] = [
    '\u{2010}', '\u{2011}', '\u{2012}', '\u{2013}', '\u{2014}', '\u{2015}', '\u{2043}', '\u{2212}',
    '\u{fe58}', '\u{fe63}', '\u{ff0d}',
];

/// Invisible characters (soft hyphen, zero-width spaces and joiners, BOM): a
/// name holding one looks like another name.
fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00ad}' | '\u{200b}'..='\u{200f}' | '\u{2060}'..='\u{2064}' | '\u{feff}'
    )
}

/// Checks and normalises an agent name: trimmed, NFC, 1–`max` characters, no
/// control or invisible characters and no look-alike hyphens (refused, not
/// rewritten: the name stored is the name the admin typed, minus outer spaces).
/// Returns the name to store; [`name_key`] of it is unique per team.
pub fn agent_name(field: &str, value: &str, max: usize) -> Result<String, FieldError> {
    use unicode_normalization::UnicodeNormalization as _;
    let normal: String = value.trim().nfc().collect();
    if let Some(c) = normal.chars().find(|c| HYPHEN_LOOKALIKES.contains(c)) {
        return Err(FieldError::new(
            field,
            format!(
                "{} contains U+{:04X}, which looks like a hyphen; use the ASCII `-`",
                quote(value),
                u32::from(c)
            ),
        ));
    }
    let len = normal.chars().count();
    if len == 0 || len > max || normal.chars().any(|c| c.is_control() || is_invisible(c)) {
        return Err(FieldError::new(
            field,
            format!(
                "{} is not a name; expected 1-{max} printable characters",
                quote(value)
            ),
        ));
    }
    Ok(normal)
}

/// The key under which names are unique: case-insensitive (full Unicode
/// lower case) of an already normalised name.
pub fn name_key(normalised: &str) -> String {
    normalised.to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_arns() {
        for ok in [
            "arn:aws:iam::123456789012:role/byollm-bedrock",
            "arn:aws-cn:iam::123456789012:role/a",
            "arn:aws-us-gov:iam::123456789012:role/path/to/Role_1+=,.@-",
        ] {
            assert!(role_arn("f", ok).is_ok(), "{ok}");
        }
        for bad in [
            "arn:aws:iam::12345678901:role/x",
            "arn:aws:iam::123456789012:user/x",
            "arn:aws:sts::123456789012:role/x",
            "arn:aws-xx:iam::123456789012:role/x",
            "arn:aws:iam::123456789012:role/",
            "arn:aws:iam::123456789012:role/has space",
            "",
        ] {
            let err = role_arn("hosts.aws_bedrock.role_arn", bad).unwrap_err();
            assert_eq!(err.field, "hosts.aws_bedrock.role_arn");
            assert!(
                err.message.contains("arn:aws:iam::<12-digit account>"),
                "{bad}"
            );
        }
    }

    #[test]
    fn regions_uids_models() {
        assert!(region("r", "us-east-1").is_ok());
        assert!(region("r", "us-gov-west-1").is_ok());
        assert!(region("r", "ap-southeast-2").is_ok());
        assert!(region("r", "US-EAST-1").is_err());
        assert!(region("r", "moon").is_err());
        assert!(uid("u", "abc123").is_ok());
        assert!(uid("u", "a/b").is_err());
        assert!(uid("u", "*").is_err());
        assert!(model_id("m", "claude-sonnet-4-6").is_ok());
        assert!(
            model_id("m", "claude-nope")
                .unwrap_err()
                .message
                .contains("claude-sonnet-4-6")
        );
        assert!(model_ref("m", "us.anthropic.claude-sonnet-4-6").is_ok());
        assert!(
            model_ref(
                "m",
                "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc"
            )
            .is_ok()
        );
        assert!(model_ref("m", "has space").is_err());
        assert!(email("e", "a@b.c").is_ok());
        assert!(email("e", "a b@c").is_err());
        assert!(email("e", "@c").is_err());
        assert!(name("n", "ok", 10).is_ok());
        assert!(name("n", "", 10).is_err());
        assert!(name("n", "   ", 10).is_err());
    }

    #[test]
    fn agent_names_are_trimmed_nfc_and_refuse_lookalikes() {
        assert_eq!(agent_name("n", "  ci-bot \t", 100).unwrap(), "ci-bot");
        // "e" + combining acute is NFC "é".
        assert_eq!(
            agent_name("n", "caf\u{65}\u{301}", 100).unwrap(),
            "caf\u{e9}"
        );
        assert_eq!(name_key("CI-Bot"), "ci-bot");
        let e = agent_name("name", "ci\u{2010}bot", 100).unwrap_err();
        assert!(e.message.contains("U+2010"), "{e}");
        assert!(agent_name("n", "ci\u{200b}bot", 100).is_err());
        assert!(agent_name("n", "   ", 100).is_err());
    }

    #[test]
    fn messages_quote_the_value_escaped() {
        let e = region("r", "us-east-1\u{0}").unwrap_err();
        assert!(e.message.contains("`us-east-1\\u0000`"), "{}", e.message);
        let e = agent_name("n", "a\u{0}b", 100).unwrap_err();
        assert!(e.message.contains("a\\u0000b"), "{}", e.message);
    }
}
