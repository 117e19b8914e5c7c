//! The explainer decides admission through the evaluator and lints.

use byollm_policy::explain::{ExplainOptions, SubjectClass, explain_trust};
use byollm_policy::generate::{Issuer, trust_policy};
use byollm_policy::{Policy, PolicyKind};

use crate::common::*;

fn opts() -> ExplainOptions {
    ExplainOptions {
        issuer: Issuer::parse(ISSUER).unwrap(),
        team_uid: TEAM.into(),
        session_tags: false,
        source_identity: false,
    }
}

fn seed_policy(sub_op: &str, sub: &str, extra: &str) -> Policy {
    let doc = format!(
        r#"{{"Version": "2012-10-17", "Statement": [{{"Effect": "Allow",
          "Principal": {{"Federated": "arn:aws:iam::{ACCOUNT}:oidc-provider/{HOST}"}},
          "Action": ["sts:AssumeRoleWithWebIdentity"{extra}],
          "Condition": {{"StringEquals": {{"{HOST}:aud": "sts.amazonaws.com"}},
                         "{sub_op}": {{"{HOST}:sub": {sub}}}}}}}]}}"#
    );
    Policy::parse(&doc, PolicyKind::Resource).unwrap()
}

#[test]
fn wide_team_policy_admits_every_user_and_agent() {
    let p = seed_policy("StringLike", &format!("\"scoped_principal:{TEAM}/*\""), "");
    let e = explain_trust(&p, &opts());
    assert!(e.probe(&SubjectClass::TeamUsers).unwrap().admitted);
    assert!(e.probe(&SubjectClass::TeamAgents).unwrap().admitted);
    assert!(!e.probe(&SubjectClass::OtherTeam).unwrap().admitted);
    assert!(!e.probe(&SubjectClass::TeamUidPrefix).unwrap().admitted);
    assert!(!e.probe(&SubjectClass::AnySubject).unwrap().admitted);
    assert!(!e.probe(&SubjectClass::WrongAudience).unwrap().admitted);
    assert_eq!(
        e.summary,
        format!("Admits every user and every agent of team {TEAM}.")
    );
    assert!(e.findings.is_empty(), "{:?}", e.findings);
    insta::assert_snapshot!("explain_team", e.to_text());
}

#[test]
fn per_agent_policy_admits_exactly_that_agent() {
    let p = trust_policy(&trust_opts("agent:agt_01")).unwrap();
    let e = explain_trust(&p, &opts());
    assert!(!e.probe(&SubjectClass::TeamUsers).unwrap().admitted);
    assert!(!e.probe(&SubjectClass::TeamAgents).unwrap().admitted);
    assert!(
        e.probe(&SubjectClass::NamedAgent("agt_01".into()))
            .unwrap()
            .admitted
    );
    assert!(
        !e.probe(&SubjectClass::NamedAgentPrefix("agt_01".into()))
            .unwrap()
            .admitted
    );
    assert_eq!(
        e.summary,
        format!("Admits exactly agent agt_01 of team {TEAM}.")
    );
    let admitted: Vec<_> = e
        .probes
        .iter()
        .filter(|p| p.admitted)
        .map(|p| p.subject.clone())
        .collect();
    assert_eq!(admitted, vec![SubjectClass::NamedAgent("agt_01".into())]);
    assert!(e.findings.is_empty(), "{:?}", e.findings);
    insta::assert_json_snapshot!("explain_agent_json", e);
}

#[test]
fn findings() {
    // StringEquals with a wildcard matches nothing.
    let p = seed_policy(
        "StringEquals",
        &format!("\"scoped_principal:{TEAM}/*\""),
        "",
    );
    let e = explain_trust(&p, &opts());
    assert!(e.has_finding("string_equals_with_wildcard"));
    assert!(e.has_finding("admits_no_team_subject"));
    assert!(!e.probe(&SubjectClass::TeamUsers).unwrap().admitted);

    // Prefix without the slash admits a longer team uid.
    let p = seed_policy("StringLike", &format!("\"scoped_principal:{TEAM}*\""), "");
    let e = explain_trust(&p, &opts());
    assert!(e.has_finding("admits_team_uid_prefix"));

    // Named agents plus a wildcard that admits every agent.
    let sub = format!(
        "[\"scoped_principal:{TEAM}/service_account:agt_01\", \"scoped_principal:{TEAM}/service_account:*\"]"
    );
    let p = seed_policy("StringLike", &sub, "");
    let e = explain_trust(&p, &opts());
    assert!(e.has_finding("wildcard_admits_every_actor"));

    // No sub and no aud conditions: admits anyone, any audience.
    let doc = format!(
        r#"{{"Version": "2012-10-17", "Statement": {{"Effect": "Allow",
          "Principal": {{"Federated": "arn:aws:iam::{ACCOUNT}:oidc-provider/{HOST}"}},
          "Action": "sts:AssumeRoleWithWebIdentity"}}}}"#
    );
    let e = explain_trust(&Policy::parse(&doc, PolicyKind::Resource).unwrap(), &opts());
    for code in [
        "no_sub_condition",
        "no_aud_condition",
        "admits_any_subject",
        "admits_other_team",
        "admits_wrong_audience",
    ] {
        assert!(e.has_finding(code), "{code}: {:?}", e.findings);
    }

    // Tags sent but TagSession missing: the team's subjects are not admitted.
    let p = seed_policy("StringLike", &format!("\"scoped_principal:{TEAM}/*\""), "");
    let mut o = opts();
    o.session_tags = true;
    let e = explain_trust(&p, &o);
    assert!(e.has_finding("missing_tag_session"));
    assert!(!e.probe(&SubjectClass::TeamUsers).unwrap().admitted);
    let p = seed_policy(
        "StringLike",
        &format!("\"scoped_principal:{TEAM}/*\""),
        ", \"sts:TagSession\"",
    );
    assert!(!explain_trust(&p, &o).has_finding("missing_tag_session"));

    // Another issuer's provider.
    let doc = format!(
        r#"{{"Version": "2012-10-17", "Statement": {{"Effect": "Allow",
          "Principal": {{"Federated": "arn:aws:iam::{ACCOUNT}:oidc-provider/other.example.com"}},
          "Action": "sts:AssumeRoleWithWebIdentity",
          "Condition": {{"StringEquals": {{"{HOST}:aud": "sts.amazonaws.com", "{HOST}:email": "a@b.c"}}}}}}}}"#
    );
    let e = explain_trust(&Policy::parse(&doc, PolicyKind::Resource).unwrap(), &opts());
    assert!(e.has_finding("federated_principal_mismatch"));
    assert!(e.has_finding("unsupported_claim_key"));
    assert!(!e.probe(&SubjectClass::AnySubject).unwrap().admitted);
}
