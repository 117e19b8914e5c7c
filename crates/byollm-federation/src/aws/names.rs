//! The names STS sees for an actor: `RoleSessionName`s (`byollm-run-<run-id>`,
//! `byollm-user-<user-uid>`) and the source identity. The server's broker and
//! the agent runtime both name sessions here, so CloudTrail shows one name per
//! run whichever side assumed the role.
//!
//! Invariant: every name returned is valid for STS (2–64 characters of
//! `[\w+=,.@-]`, aws-facts §1.2), and distinct inputs stay distinct.

use aws_lc_rs::digest;

/// Characters STS allows in `RoleSessionName` and `SourceIdentity`: `[\w+=,.@-]`.
fn allowed(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '+' | '=' | ',' | '.' | '@' | '-')
}

/// Makes a valid STS name from `raw`: other characters become `-`; a longer
/// name keeps its start and ends with a hash of the whole, so distinct inputs
/// stay distinct.
pub fn sts_name(raw: &str) -> String {
    let mut name: String = raw
        .chars()
        .map(|c| if allowed(c) { c } else { '-' })
        .collect();
    if name.len() > 64 {
        let hash = hex::encode(&digest::digest(&digest::SHA256, raw.as_bytes()).as_ref()[..6]);
        name.truncate(64 - 1 - hash.len());
        name.push('-');
        name.push_str(&hash);
    }
    while name.len() < 2 {
        name.push('-');
    }
    name
}

/// `RoleSessionName` for a run: `byollm-run-<run-id>`.
pub fn run_session_name(run_id: &str) -> String {
    sts_name(&format!("byollm-run-{run_id}"))
}

/// `RoleSessionName` for interactive use: `byollm-user-<user-uid>`.
pub fn user_session_name(user_uid: &str) -> String {
    sts_name(&format!("byollm-user-{user_uid}"))
}

/// The source identity naming the accountable human (the token's
/// `https://aws.amazon.com/source_identity` claim, which STS copies onto the
/// session): their email when it is a valid STS name, else `byollm-user-<uid>`.
pub fn source_identity(email: Option<&str>, user_uid: &str) -> String {
    match email {
        Some(e) if (2..=64).contains(&e.len()) && e.chars().all(allowed) => e.to_owned(),
        _ => user_session_name(user_uid),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn session_names_and_source_identity() {
        assert_eq!(run_session_name("abc"), "byollm-run-abc");
        assert_eq!(user_session_name("u/1:x"), "byollm-user-u-1-x");
        let long = sts_name(&"x".repeat(100));
        assert_eq!(long.len(), 64);
        assert_ne!(long, sts_name(&"x".repeat(101)));
        assert_eq!(run_session_name(&"x".repeat(80)).len(), 64);
        assert_eq!(sts_name(""), "--");
        assert_eq!(sts_name("a"), "a-");
        assert_eq!(sts_name("a/b:c"), "a-b-c");
        assert_eq!(
            source_identity(Some("ann@example.com"), "u1"),
            "ann@example.com"
        );
        assert_eq!(
            source_identity(Some("ann smith@example.com"), "u1"),
            "byollm-user-u1"
        );
    }

    proptest! {
        #[test]
        fn sts_names_are_always_valid(raw in ".{0,200}") {
            let name = sts_name(&raw);
            prop_assert!((2..=64).contains(&name.len()));
            prop_assert!(name.chars().all(allowed));
        }
    }
}
