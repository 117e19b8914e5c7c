//! Evaluating a 10-statement trust policy for one web-identity request.
//!
//! Nine statements for other teams and agents that do not match, then the one
//! that admits the request, so every statement is evaluated.

use std::hint::black_box;

use byollm_policy::{Context, Policy, PolicyKind, Request, RequestPrincipal, evaluate_one};
use criterion::{Criterion, criterion_group, criterion_main};

const HOST: &str = "byollm.example.com";

fn statement(i: usize, sub_op: &str, sub: &str) -> String {
    format!(
        r#"{{"Sid": "S{i}", "Effect": "Allow",
            "Principal": {{"Federated": "arn:aws:iam::123456789012:oidc-provider/{HOST}"}},
            "Action": ["sts:AssumeRoleWithWebIdentity", "sts:TagSession"],
            "Condition": {{"StringEquals": {{"{HOST}:aud": "sts.amazonaws.com"}},
                           "{sub_op}": {{"{HOST}:sub": {sub}}}}}}}"#
    )
}

fn policy() -> Policy {
    let mut statements = Vec::new();
    for i in 0..5 {
        statements.push(statement(
            i,
            "StringLike",
            &format!("\"scoped_principal:team_{i:03}/*\""),
        ));
    }
    for i in 5..9 {
        statements.push(statement(
            i,
            "StringEquals",
            &format!(
                "[\"scoped_principal:team_main/service_account:agt_{i}a\", \"scoped_principal:team_main/service_account:agt_{i}b\"]"
            ),
        ));
    }
    statements.push(statement(
        9,
        "StringLike",
        "[\"scoped_principal:team_main/service_account:agt_target\", \"scoped_principal:team_main/service_account:agt_target:run_id:*\"]",
    ));
    let doc = format!(
        r#"{{"Version": "2012-10-17", "Statement": [{}]}}"#,
        statements.join(",")
    );
    match Policy::parse(&doc, PolicyKind::Resource) {
        Ok(p) => p,
        Err(e) => unreachable!("bench policy parses: {e}"),
    }
}

fn bench(c: &mut Criterion) {
    let policy = policy();
    assert_eq!(policy.statements.len(), 10);
    let mut context = Context::new();
    context.insert(&format!("{HOST}:aud"), "sts.amazonaws.com");
    context.insert(
        &format!("{HOST}:sub"),
        "scoped_principal:team_main/service_account:agt_target:run_id:run_01JH8Z",
    );
    let request = Request {
        principal: Some(RequestPrincipal::infer(&format!(
            "arn:aws:iam::123456789012:oidc-provider/{HOST}"
        ))),
        action: "sts:AssumeRoleWithWebIdentity".into(),
        resource: "arn:aws:iam::123456789012:role/byollm".into(),
        context,
    };
    assert!(evaluate_one(&policy, PolicyKind::Resource, &request).is_allowed());
    c.bench_function("trust_policy_10_statements", |b| {
        b.iter(|| {
            evaluate_one(
                black_box(&policy),
                PolicyKind::Resource,
                black_box(&request),
            )
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
