//! Each trust-policy scope admits exactly the intended subjects and refuses the
//! rest: other actor type, other agent, other team, a team uid that has ours as a
//! prefix, wrong `aud`, missing `sts:TagSession`.

use byollm_policy::generate::{SubjectTemplate, trust_policy};
use byollm_policy::{Context, PolicyKind, Request, RequestPrincipal, evaluate_one};

use crate::common::*;

const AUD: &str = "sts.amazonaws.com";

fn sub(team: &str, kind: &str, uid: &str) -> String {
    format!("scoped_principal:{team}/{kind}:{uid}")
}

struct Expect {
    scope: &'static str,
    run_id: bool,
    admitted: &'static [&'static str],
    refused: &'static [&'static str],
}

#[test]
fn every_scope_admits_exactly_its_subjects() {
    let user_u1 = sub(TEAM, "user", "u1");
    let agent_a1 = sub(TEAM, "service_account", "a1");
    let cases = [
        Expect {
            scope: "team",
            run_id: false,
            admitted: &["user:u1", "agent:a1", "agent:a2", "user:u1 run"],
            refused: &["other-team", "prefix-team", "any", "no-actor"],
        },
        Expect {
            scope: "users",
            run_id: false,
            admitted: &["user:u1", "user:u2"],
            refused: &["agent:a1", "other-team", "prefix-team", "any"],
        },
        Expect {
            scope: "agents",
            run_id: false,
            admitted: &["agent:a1", "agent:a2", "agent:a1 run"],
            refused: &["user:u1", "other-team", "prefix-team", "any"],
        },
        Expect {
            scope: "agent:a1",
            run_id: false,
            admitted: &["agent:a1"],
            refused: &[
                "agent:a2",
                "agent:a1x",
                "user:a1",
                "user:u1",
                "agent:a1 run",
                "other-team",
                "prefix-team",
                "any",
            ],
        },
        Expect {
            scope: "agent:a1",
            run_id: true,
            admitted: &["agent:a1", "agent:a1 run"],
            refused: &[
                "agent:a2",
                "agent:a1x",
                "agent:a1x run",
                "user:a1",
                "other-team",
                "prefix-team",
                "any",
            ],
        },
        Expect {
            scope: "user:u1,u2,agent:a1",
            run_id: false,
            admitted: &["user:u1", "user:u2", "agent:a1"],
            refused: &[
                "user:u3",
                "agent:u1",
                "agent:a2",
                "user:u1x",
                "other-team",
                "any",
            ],
        },
    ];
    let subject_of = |label: &str| -> String {
        match label {
            "other-team" => sub("team_other", "user", "u1"),
            "prefix-team" => format!("scoped_principal:{TEAM}x/user:u1"),
            "any" => "u1".to_owned(),
            "no-actor" => format!("scoped_principal:{TEAM}"),
            _ => {
                let (who, run) = match label.split_once(' ') {
                    Some((w, _)) => (w, true),
                    None => (label, false),
                };
                let (kind, uid) = who.split_once(':').unwrap();
                let kind = if kind == "agent" {
                    "service_account"
                } else {
                    "user"
                };
                let s = sub(TEAM, kind, uid);
                if run { format!("{s}:run_id:r1") } else { s }
            }
        }
    };
    for case in &cases {
        let mut opts = trust_opts(case.scope);
        opts.subject_template = SubjectTemplate {
            run_id: case.run_id,
        };
        let policy = trust_policy(&opts).unwrap();
        let name = format!("scope {} (run_id: {})", case.scope, case.run_id);
        for label in case.admitted {
            let s = subject_of(label);
            assert!(admits(&policy, &s, AUD), "{name} must admit {label} ({s})");
            assert!(
                !admits(&policy, &s, "other-audience"),
                "{name} must refuse {label} with a wrong aud"
            );
        }
        for label in case.refused {
            let s = subject_of(label);
            assert!(
                !admits(&policy, &s, AUD),
                "{name} must refuse {label} ({s})"
            );
        }
    }
    // Sanity of the fixtures themselves.
    assert_ne!(user_u1, agent_a1);
}

#[test]
fn other_provider_and_missing_aud_are_refused() {
    let policy = trust_policy(&trust_opts("team")).unwrap();
    let s = sub(TEAM, "user", "u1");
    // A token from another issuer: another provider principal and other keys.
    let mut ctx = Context::new();
    ctx.insert("evil.example.com:sub", s.as_str());
    ctx.insert("evil.example.com:aud", AUD);
    let req = Request {
        principal: Some(RequestPrincipal::infer(
            "arn:aws:iam::123456789012:oidc-provider/evil.example.com",
        )),
        action: "sts:AssumeRoleWithWebIdentity".into(),
        resource: "arn:aws:iam::123456789012:role/byollm".into(),
        context: ctx,
    };
    assert!(!evaluate_one(&policy, PolicyKind::Resource, &req).is_allowed());
    // Right provider, no aud key at all.
    let mut req = assume("sts:AssumeRoleWithWebIdentity", &s, AUD);
    req.context = Context::new();
    req.context.insert(&format!("{HOST}:sub"), s.as_str());
    assert!(!evaluate_one(&policy, PolicyKind::Resource, &req).is_allowed());
    // Another action is not granted.
    let req = assume("sts:AssumeRole", &s, AUD);
    assert!(!evaluate_one(&policy, PolicyKind::Resource, &req).is_allowed());
}

#[test]
fn tags_and_source_identity_add_their_actions() {
    let s = sub(TEAM, "service_account", "a1");
    let plain = trust_policy(&trust_opts("agent:a1")).unwrap();
    let tag_req = assume("sts:TagSession", &s, AUD);
    let src_req = assume("sts:SetSourceIdentity", &s, AUD);
    assert!(!evaluate_one(&plain, PolicyKind::Resource, &tag_req).is_allowed());
    let mut opts = trust_opts("agent:a1");
    opts.session_tags = true;
    opts.source_identity = true;
    let full = trust_policy(&opts).unwrap();
    assert!(evaluate_one(&full, PolicyKind::Resource, &tag_req).is_allowed());
    assert!(evaluate_one(&full, PolicyKind::Resource, &src_req).is_allowed());
    // Still conditioned: another agent cannot tag a session either.
    let other = assume("sts:TagSession", &sub(TEAM, "service_account", "a2"), AUD);
    assert!(!evaluate_one(&full, PolicyKind::Resource, &other).is_allowed());
}

#[test]
fn generated_policies_reparse_to_the_same_model() {
    for scope in ["team", "users", "agents", "agent:a1,a2", "user:u1"] {
        let policy = trust_policy(&trust_opts(scope)).unwrap();
        let text = policy.to_json_pretty();
        let reparsed = byollm_policy::Policy::parse(&text, PolicyKind::Resource).unwrap();
        assert_eq!(reparsed.to_json_pretty(), text, "{scope}");
    }
}
