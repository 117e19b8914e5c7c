//! Property tests: deny monotonicity, StringLike without wildcards = StringEquals,
//! and a parser that never panics on arbitrary bytes or JSON.

use byollm_policy::parse::{ParseOptions, parse};
use byollm_policy::{Context, DecisionKind, Policy, PolicyKind, Request, evaluate_one};
use proptest::prelude::*;
use serde_json::{Value, json};

const ACTIONS: &[&str] = &[
    "s3:GetObject",
    "s3:PutObject",
    "s3:*",
    "*",
    "bedrock:Invoke*",
    "S3:get?bject",
];
const RESOURCES: &[&str] = &[
    "*",
    "arn:aws:s3:::b/*",
    "arn:aws:s3:::b/k",
    "arn:aws:s3:::*/k",
    "arn:aws:bedrock:*::foundation-model/*",
];
const OPS: &[&str] = &[
    "StringEquals",
    "StringNotEquals",
    "StringLike",
    "StringNotLike",
    "StringEqualsIfExists",
    "ForAnyValue:StringEquals",
    "ForAllValues:StringLike",
    "Null",
];
const KEYS: &[&str] = &["k1", "K2", "aws:username"];
const VALUES: &[&str] = &["a", "b", "a*", "?", "true", "false"];

fn statement(effect: &'static str) -> impl Strategy<Value = Value> {
    (
        prop::sample::subsequence(ACTIONS, 1..3),
        prop::sample::subsequence(RESOURCES, 1..3),
        prop::collection::vec(
            (
                prop::sample::select(OPS),
                prop::sample::select(KEYS),
                prop::sample::subsequence(VALUES, 1..3),
            ),
            0..3,
        ),
    )
        .prop_map(move |(actions, resources, conds)| {
            let mut condition = serde_json::Map::new();
            for (op, key, values) in conds {
                let values: Vec<&str> = if op == "Null" {
                    vec![if values.len() % 2 == 0 {
                        "true"
                    } else {
                        "false"
                    }]
                } else {
                    values
                };
                let entry = condition.entry(op).or_insert_with(|| json!({}));
                entry[key] = json!(values);
            }
            let mut st = json!({"Effect": effect, "Action": actions, "Resource": resources});
            if !condition.is_empty() {
                st["Condition"] = Value::Object(condition);
            }
            st
        })
}

fn request() -> impl Strategy<Value = Request> {
    (
        prop::sample::select(
            &[
                "s3:GetObject",
                "s3:putobject",
                "bedrock:InvokeModel",
                "iam:PassRole",
            ][..],
        ),
        prop::sample::select(
            &[
                "arn:aws:s3:::b/k",
                "arn:aws:s3:::c/k",
                "arn:aws:bedrock:::foundation-model/m",
            ][..],
        ),
        prop::collection::vec(
            (
                prop::sample::select(KEYS),
                prop::sample::select(&["a", "b", "ab", "a*", "x"][..]),
            ),
            0..4,
        ),
    )
        .prop_map(|(action, resource, ctx)| {
            let mut context = Context::new();
            for (k, v) in ctx {
                context.insert(k, v);
            }
            Request {
                principal: None,
                action: action.into(),
                resource: resource.into(),
                context,
            }
        })
}

fn policy(statements: &[Value]) -> Policy {
    let doc = json!({"Version": "2012-10-17", "Statement": statements});
    Policy::parse(&doc.to_string(), PolicyKind::Identity).unwrap()
}

/// Strings without wildcards or variable syntax.
fn plain() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9:/._-]{0,8}"
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        ".{0,12}".prop_map(Value::String),
        prop::sample::select(
            &[
                "Allow",
                "Deny",
                "*",
                "2012-10-17",
                "s3:*",
                "StringLike",
                "Null"
            ][..]
        )
        .prop_map(|s| json!(s)),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(
                prop::sample::select(
                    &[
                        "Version",
                        "Statement",
                        "Effect",
                        "Action",
                        "NotAction",
                        "Resource",
                        "Principal",
                        "Condition",
                        "AWS",
                        "Federated",
                        "StringEquals",
                        "ForAllValues:StringLike",
                        "NumericLessThan",
                        "IpAddress",
                        "DateGreaterThan",
                        "Null",
                        "k",
                    ][..]
                )
                .prop_map(str::to_owned),
                inner,
                0..5,
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn adding_a_deny_never_allows(
        base in prop::collection::vec(statement("Allow"), 1..4),
        extra in prop::collection::vec(statement("Deny"), 0..2),
        deny in statement("Deny"),
        req in request(),
    ) {
        let mut statements = base;
        statements.extend(extra);
        let before = evaluate_one(&policy(&statements), PolicyKind::Identity, &req);
        statements.push(deny);
        let after = evaluate_one(&policy(&statements), PolicyKind::Identity, &req);
        if before.decision != DecisionKind::Allowed {
            prop_assert_ne!(after.decision, DecisionKind::Allowed);
        }
        if before.decision == DecisionKind::ExplicitDeny {
            prop_assert_eq!(after.decision, DecisionKind::ExplicitDeny);
        }
    }

    #[test]
    fn string_like_without_wildcards_is_string_equals(
        values in prop::collection::vec(plain(), 1..3),
        request_values in prop::collection::vec(plain(), 0..3),
        qualifier in prop::sample::select(&["", "ForAnyValue:", "ForAllValues:"][..]),
        negated in any::<bool>(),
        if_exists in any::<bool>(),
    ) {
        let suffix = if if_exists { "IfExists" } else { "" };
        let (like, equals) = if negated { ("StringNotLike", "StringNotEquals") } else { ("StringLike", "StringEquals") };
        let mk = |op: &str| policy(&[json!({
            "Effect": "Allow", "Action": "*", "Resource": "*",
            "Condition": {format!("{qualifier}{op}{suffix}"): {"aws:TagKeys": values}}
        })]);
        let mut context = Context::new();
        if !request_values.is_empty() {
            context.set("aws:tagkeys", request_values.clone());
        }
        let req = Request { principal: None, action: "s3:GetObject".into(), resource: "*".into(), context };
        let a = evaluate_one(&mk(like), PolicyKind::Identity, &req).decision;
        let b = evaluate_one(&mk(equals), PolicyKind::Identity, &req).decision;
        prop_assert_eq!(a, b);
    }

    #[test]
    fn parser_never_panics_on_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse(&bytes, ParseOptions::new(PolicyKind::Identity));
        let _ = parse(&bytes, ParseOptions::new(PolicyKind::Resource));
    }

    #[test]
    fn parser_never_panics_on_json(value in json_value()) {
        let text = value.to_string();
        for kind in [PolicyKind::Identity, PolicyKind::Resource] {
            if let Ok(p) = Policy::parse(&text, kind) {
                // Whatever parses evaluates and re-serialises without panicking.
                let req = Request { principal: None, action: "s3:GetObject".into(), resource: "*".into(), context: Context::new() };
                let _ = evaluate_one(&p, kind, &req);
                let again = Policy::parse(&p.to_json_pretty(), kind);
                prop_assert!(again.is_ok(), "re-parse failed: {:?}", again.err());
            }
        }
        let wrapped = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*", "Condition": value}]});
        let _ = Policy::parse(&wrapped.to_string(), PolicyKind::Identity);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// For any valid uids, a named-agent trust policy admits that agent's exact
    /// subject (with or without a run) and refuses a longer uid, the other actor
    /// type, a longer team uid and a wrong audience.
    #[test]
    fn named_agent_policy_admits_exactly_that_agent(
        team in "[A-Za-z0-9._@+=-]{1,12}",
        agent in "[A-Za-z0-9._@+=-]{1,12}",
        extra in "[A-Za-z0-9._-]{1,3}",
        run_id in any::<bool>(),
    ) {
        use byollm_policy::generate::{AccountId, Issuer, SubjectTemplate, TrustOptions, TrustScope, trust_policy};
        use crate::common::{ISSUER, ACCOUNT, admits};
        let mut opts = TrustOptions::new(Issuer::parse(ISSUER).unwrap(), &team, AccountId::parse(ACCOUNT).unwrap()).unwrap();
        opts.scope = format!("agent:{agent}").parse::<TrustScope>().unwrap();
        opts.subject_template = SubjectTemplate { run_id };
        let p = trust_policy(&opts).unwrap();
        let aud = "sts.amazonaws.com";
        let exact = format!("scoped_principal:{team}/service_account:{agent}");
        let with_run = format!("{exact}:run_id:r1");
        let longer_agent = format!("{exact}{extra}");
        let as_user = format!("scoped_principal:{team}/user:{agent}");
        let longer_team = format!("scoped_principal:{team}{extra}/service_account:{agent}");
        prop_assert!(admits(&p, &exact, aud));
        prop_assert_eq!(admits(&p, &with_run, aud), run_id);
        prop_assert!(!admits(&p, &longer_agent, aud));
        prop_assert!(!admits(&p, &as_user, aud));
        prop_assert!(!admits(&p, &longer_team, aud));
        prop_assert!(!admits(&p, &exact, "sts.amazonaws.com.evil"));
    }
}
