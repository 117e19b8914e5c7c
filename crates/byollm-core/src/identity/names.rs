//! Subjects and session tags: the claims that name an actor in its identity
//! token. The names STS itself checks (`RoleSessionName`, source identity) live
//! with the exchange, in `byollm_federation::aws::names`.

use std::collections::BTreeMap;

use byollm_api::types::{ActorType, SUBJECT_RUN_ID};

use super::jwt::SessionTags;

/// Re-exported so the mint keeps naming it `names::source_identity`; its rules
/// are STS's, so it lives with the exchange.
pub use byollm_federation::aws::names::source_identity;

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
}
