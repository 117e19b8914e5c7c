//! Subjects, `RoleSessionName`s, session tags and source identities: the names
//! AWS sees for an actor.

use std::collections::BTreeMap;

use aws_lc_rs::digest;
use byollm_api::types::{ActorType, SUBJECT_RUN_ID};

use super::jwt::SessionTags;

/// The token subject (DESIGN §3):
/// `scoped_principal:<team-uid>/<actor-type>:<principal-uid>`, with
/// `:run_id:<run-id>` appended when the team's template asks for it and there is a run.
pub fn subject(
    team_uid: &str,
    actor: ActorType,
    principal_uid: &str,
    run_id: Option<&str>,
    template: &[String],
) -> String {
    let mut sub = format!(
        "scoped_principal:{team_uid}/{}:{principal_uid}",
        actor.as_str()
    );
    if let Some(run) = run_id
        && template.iter().any(|t| t == SUBJECT_RUN_ID)
    {
        sub.push_str(":run_id:");
        sub.push_str(run);
    }
    sub
}

/// Characters STS allows in `RoleSessionName` and `SourceIdentity`: `[\w+=,.@-]`.
fn allowed(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '+' | '=' | ',' | '.' | '@' | '-')
}

/// Makes a valid STS name (2–64 characters of `[\w+=,.@-]`, aws-facts §1.2) from
/// `raw`: other characters become `-`; a longer name keeps its start and ends
/// with a hash of the whole, so distinct inputs stay distinct.
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

/// The source identity naming the accountable human: their email when it is a
/// valid STS name, else `byollm-user-<uid>`.
pub fn source_identity(email: Option<&str>, user_uid: &str) -> String {
    match email {
        Some(e) if (2..=64).contains(&e.len()) && e.chars().all(allowed) => e.to_owned(),
        _ => user_session_name(user_uid),
    }
}

/// The session tags byollm sends: who and which run, so CloudTrail and ABAC
/// policies (`aws:PrincipalTag/…`) can tell actors apart. Tag values use only
/// characters AWS allows (`[\p{L}\p{Z}\p{N}_.:/=+\-@]`, aws-facts §3.5).
pub fn session_tags(
    team_uid: &str,
    actor: ActorType,
    principal_uid: &str,
    run_id: Option<&str>,
) -> SessionTags {
    let mut tags = BTreeMap::new();
    tags.insert("byollm-team".to_owned(), vec![team_uid.to_owned()]);
    tags.insert(
        "byollm-actor-type".to_owned(),
        vec![actor.as_str().to_owned()],
    );
    tags.insert(
        "byollm-principal".to_owned(),
        vec![principal_uid.to_owned()],
    );
    if let Some(run) = run_id {
        tags.insert("byollm-run".to_owned(), vec![run.to_owned()]);
    }
    SessionTags {
        principal_tags: tags,
        transitive_tag_keys: vec![
            "byollm-team".to_owned(),
            "byollm-actor-type".to_owned(),
            "byollm-principal".to_owned(),
        ],
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn subjects() {
        let plain = vec!["scoped_principal".to_owned()];
        let with_run = vec!["scoped_principal".to_owned(), "run_id".to_owned()];
        assert_eq!(
            subject("t1", ActorType::ServiceAccount, "a1", Some("r1"), &plain),
            "scoped_principal:t1/service_account:a1"
        );
        assert_eq!(
            subject("t1", ActorType::ServiceAccount, "a1", Some("r1"), &with_run),
            "scoped_principal:t1/service_account:a1:run_id:r1"
        );
        assert_eq!(
            subject("t1", ActorType::User, "u1", None, &with_run),
            "scoped_principal:t1/user:u1"
        );
    }

    #[test]
    fn session_names_and_source_identity() {
        assert_eq!(run_session_name("abc"), "byollm-run-abc");
        assert_eq!(user_session_name("u/1:x"), "byollm-user-u-1-x");
        let long = sts_name(&"x".repeat(100));
        assert_eq!(long.len(), 64);
        assert_ne!(long, sts_name(&"x".repeat(101)));
        assert_eq!(sts_name(""), "--");
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
