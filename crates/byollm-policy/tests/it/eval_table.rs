//! Table-driven evaluator tests: every operator, qualifier and missing-key rule of
//! aws-facts §3.3, each with the decision AWS makes and why.

use byollm_policy::{Context, DecisionKind, Policy, PolicyKind, Request, evaluate, evaluate_one};

struct Case {
    condition: &'static str,
    context: &'static [(&'static str, &'static [&'static str])],
    allowed: bool,
    reason: &'static str,
}

const fn c(
    condition: &'static str,
    context: &'static [(&'static str, &'static [&'static str])],
    allowed: bool,
    reason: &'static str,
) -> Case {
    Case {
        condition,
        context,
        allowed,
        reason,
    }
}

const SUB: &str = "byollm.example.com:sub";

#[rustfmt::skip]
const CASES: &[Case] = &[
    // String operators.
    c(r#"{"StringEquals": {"aws:username": "alice"}}"#, &[("aws:username", &["alice"])], true, "StringEquals: exact match"),
    c(r#"{"StringEquals": {"aws:username": "alice"}}"#, &[("aws:username", &["Alice"])], false, "StringEquals is case-sensitive in the value"),
    c(r#"{"StringEquals": {"aws:username": ["bob", "alice"]}}"#, &[("aws:username", &["alice"])], true, "values of one key are ORed"),
    c(r#"{"StringEquals": {"AWS:UserName": "alice"}}"#, &[("aws:username", &["alice"])], true, "condition key names are case-insensitive"),
    c(r#"{"StringEquals": {"aws:username": "alice"}}"#, &[], false, "missing key: a positive operator is false"),
    c(r#"{"StringEquals": {"aws:username": "al*"}}"#, &[("aws:username", &["alice"])], false, "StringEquals has no wildcards: * is literal"),
    c(r#"{"StringEquals": {"aws:username": "al*"}}"#, &[("aws:username", &["al*"])], true, "StringEquals compares * literally"),
    c(r#"{"StringNotEquals": {"aws:username": "alice"}}"#, &[], true, "missing key: a negated operator is true"),
    c(r#"{"StringNotEquals": {"aws:username": ["bob", "alice"]}}"#, &[("aws:username", &["alice"])], false, "negated operator: values ANDed, must match none"),
    c(r#"{"StringNotEquals": {"aws:username": ["bob", "alice"]}}"#, &[("aws:username", &["carol"])], true, "negated operator: matches none of the values"),
    c(r#"{"StringEqualsIgnoreCase": {"aws:username": "alice"}}"#, &[("aws:username", &["ALICE"])], true, "StringEqualsIgnoreCase ignores case"),
    c(r#"{"StringNotEqualsIgnoreCase": {"aws:username": "alice"}}"#, &[("aws:username", &["ALICE"])], false, "StringNotEqualsIgnoreCase: equal ignoring case"),
    c(r#"{"StringNotEqualsIgnoreCase": {"aws:username": "alice"}}"#, &[("aws:username", &["bob"])], true, "StringNotEqualsIgnoreCase: different"),
    c(r#"{"StringLike": {"byollm.example.com:sub": "scoped_principal:t1/*"}}"#, &[(SUB, &["scoped_principal:t1/user:u1"])], true, "StringLike * crosses / and :"),
    c(r#"{"StringLike": {"byollm.example.com:sub": "scoped_principal:t1/*"}}"#, &[(SUB, &["scoped_principal:t12/user:u1"])], false, "a longer team uid does not match the slash"),
    c(r#"{"StringLike": {"aws:username": "a?c"}}"#, &[("aws:username", &["abc"])], true, "? matches exactly one character"),
    c(r#"{"StringLike": {"aws:username": "a?c"}}"#, &[("aws:username", &["abbc"])], false, "? does not match two characters"),
    c(r#"{"StringLike": {"aws:username": "Al*"}}"#, &[("aws:username", &["alice"])], false, "StringLike is case-sensitive"),
    c(r#"{"StringLike": {"aws:username": "*"}}"#, &[("aws:username", &[""])], true, "* matches the empty string"),
    c(r#"{"StringLike": {"aws:username": "*"}}"#, &[], false, "StringLike * still needs the key present"),
    c(r#"{"StringNotLike": {"aws:username": "a*"}}"#, &[("aws:username", &["alice"])], false, "StringNotLike: matches a pattern"),
    c(r#"{"StringNotLike": {"aws:username": "a*"}}"#, &[], true, "StringNotLike: missing key is true"),
    c(r#"{"StringEqualsIfExists": {"aws:username": "alice"}}"#, &[], true, "IfExists: missing key is true"),
    c(r#"{"StringEqualsIfExists": {"aws:username": "alice"}}"#, &[("aws:username", &["bob"])], false, "IfExists: present key is evaluated"),
    c(r#"{"StringLikeIfExists": {"aws:username": "a*"}}"#, &[("aws:username", &["alice"])], true, "StringLikeIfExists: present and matching"),
    // Numeric.
    c(r#"{"NumericLessThan": {"s3:max-keys": "10"}}"#, &[("s3:max-keys", &["5"])], true, "5 < 10"),
    c(r#"{"NumericLessThan": {"s3:max-keys": 10}}"#, &[("s3:max-keys", &["10"])], false, "10 is not < 10 (JSON number operand)"),
    c(r#"{"NumericLessThanEquals": {"s3:max-keys": "10"}}"#, &[("s3:max-keys", &["10"])], true, "10 <= 10"),
    c(r#"{"NumericGreaterThan": {"s3:max-keys": "10"}}"#, &[("s3:max-keys", &["10.5"])], true, "10.5 > 10"),
    c(r#"{"NumericGreaterThanEquals": {"s3:max-keys": "10"}}"#, &[("s3:max-keys", &["9"])], false, "9 is not >= 10"),
    c(r#"{"NumericEquals": {"s3:max-keys": "3"}}"#, &[("s3:max-keys", &["3.0"])], true, "numbers compare numerically"),
    c(r#"{"NumericEquals": {"s3:max-keys": "3"}}"#, &[("s3:max-keys", &["three"])], false, "a non-numeric request value never matches"),
    c(r#"{"NumericNotEquals": {"s3:max-keys": "3"}}"#, &[("s3:max-keys", &["4"])], true, "4 != 3"),
    c(r#"{"NumericNotEquals": {"s3:max-keys": "3"}}"#, &[], true, "NumericNotEquals: missing key is true"),
    c(r#"{"NumericLessThanIfExists": {"s3:max-keys": "3"}}"#, &[], true, "NumericLessThanIfExists: missing key is true"),
    // Date.
    c(r#"{"DateLessThan": {"aws:CurrentTime": "2026-01-01T00:00:00Z"}}"#, &[("aws:CurrentTime", &["2025-06-01T12:00:00Z"])], true, "earlier date"),
    c(r#"{"DateLessThan": {"aws:CurrentTime": "2026-01-01T00:00:00Z"}}"#, &[("aws:CurrentTime", &["2026-01-01T00:00:00Z"])], false, "equal is not less"),
    c(r#"{"DateLessThanEquals": {"aws:CurrentTime": "2026-01-01"}}"#, &[("aws:CurrentTime", &["2026-01-01T00:00:00Z"])], true, "a date means its midnight UTC"),
    c(r#"{"DateGreaterThan": {"aws:EpochTime": "1700000000"}}"#, &[("aws:EpochTime", &["1700000001"])], true, "epoch seconds compare as dates"),
    c(r#"{"DateGreaterThanEquals": {"aws:CurrentTime": "2026-01-01T01:00:00+01:00"}}"#, &[("aws:CurrentTime", &["2026-01-01T00:00:00Z"])], true, "offsets are honoured"),
    c(r#"{"DateEquals": {"aws:CurrentTime": "2026-01-01T00:00:00Z"}}"#, &[("aws:CurrentTime", &["1767225600"])], true, "ISO 8601 equals the same epoch second"),
    c(r#"{"DateNotEquals": {"aws:CurrentTime": "2026-01-01T00:00:00Z"}}"#, &[("aws:CurrentTime", &["2026-01-02T00:00:00Z"])], true, "different dates"),
    c(r#"{"DateNotEquals": {"aws:CurrentTime": "2026-01-01T00:00:00Z"}}"#, &[], true, "DateNotEquals: missing key is true"),
    c(r#"{"DateLessThan": {"aws:CurrentTime": "2026-01-01T00:00:00Z"}}"#, &[], false, "DateLessThan: missing key is false"),
    // Bool and Binary.
    c(r#"{"Bool": {"aws:SecureTransport": "true"}}"#, &[("aws:SecureTransport", &["true"])], true, "Bool true"),
    c(r#"{"Bool": {"aws:SecureTransport": true}}"#, &[("aws:SecureTransport", &["false"])], false, "Bool false vs true (JSON boolean operand)"),
    c(r#"{"Bool": {"aws:SecureTransport": "false"}}"#, &[], false, "Bool: missing key is false"),
    c(r#"{"BoolIfExists": {"aws:SecureTransport": "false"}}"#, &[], true, "BoolIfExists: missing key is true"),
    c(r#"{"BinaryEquals": {"key": "QmluYXJ5"}}"#, &[("key", &["QmluYXJ5"])], true, "BinaryEquals: same base64"),
    // IP.
    c(r#"{"IpAddress": {"aws:SourceIp": "203.0.113.0/24"}}"#, &[("aws:SourceIp", &["203.0.113.9"])], true, "address inside the block"),
    c(r#"{"IpAddress": {"aws:SourceIp": ["198.51.100.0/24", "203.0.113.0/24"]}}"#, &[("aws:SourceIp", &["192.0.2.1"])], false, "address in neither block"),
    c(r#"{"IpAddress": {"aws:SourceIp": "2001:db8::/32"}}"#, &[("aws:SourceIp", &["2001:db8:1::5"])], true, "IPv6 block"),
    c(r#"{"NotIpAddress": {"aws:SourceIp": "203.0.113.0/24"}}"#, &[("aws:SourceIp", &["203.0.113.9"])], false, "NotIpAddress: inside the block"),
    c(r#"{"NotIpAddress": {"aws:SourceIp": "203.0.113.0/24"}}"#, &[], true, "NotIpAddress: missing key is true"),
    // ARN.
    c(r#"{"ArnLike": {"aws:SourceArn": "arn:aws:iam::123456789012:role/*"}}"#, &[("aws:SourceArn", &["arn:aws:iam::123456789012:role/a/b"])], true, "ArnLike: * in the resource component"),
    c(r#"{"ArnLike": {"aws:SourceArn": "arn:aws:iam:*:role/x"}}"#, &[("aws:SourceArn", &["arn:aws:iam:us-east-1:123456789012:role/x"])], false, "ArnLike: * stays inside one component"),
    c(r#"{"StringLike": {"aws:SourceArn": "arn:aws:iam:*:role/x"}}"#, &[("aws:SourceArn", &["arn:aws:iam:us-east-1:123456789012:role/x"])], true, "StringLike: the same * crosses colons"),
    c(r#"{"ArnLike": {"aws:SourceArn": "arn:aws:bedrock:*::foundation-model/*"}}"#, &[("aws:SourceArn", &["arn:aws:bedrock:::foundation-model/anthropic.x-v1:0"])], true, "ArnLike: * matches an empty region; the resource keeps its colons"),
    c(r#"{"ArnEquals": {"aws:SourceArn": "arn:aws:sns:us-east-1:123456789012:topic"}}"#, &[("aws:SourceArn", &["arn:aws:sns:us-east-1:123456789012:topic"])], true, "ArnEquals: same ARN"),
    c(r#"{"ArnEquals": {"aws:SourceArn": "arn:aws:sns:us-east-1:123456789012:topic"}}"#, &[("aws:SourceArn", &["arn:aws:sns:us-east-1:123456789012:Topic"])], false, "ArnEquals is case-sensitive"),
    c(r#"{"ArnNotLike": {"aws:SourceArn": "arn:aws:sns:*:123456789012:*"}}"#, &[("aws:SourceArn", &["arn:aws:sns:us-east-1:999999999999:topic"])], true, "ArnNotLike: other account"),
    c(r#"{"ArnNotEquals": {"aws:SourceArn": "arn:aws:sns:us-east-1:123456789012:topic"}}"#, &[], true, "ArnNotEquals: missing key is true"),
    c(r#"{"ArnLike": {"aws:SourceArn": "arn:aws:sns:*:123456789012:*"}}"#, &[("aws:SourceArn", &["not-an-arn"])], false, "ArnLike: a non-ARN value never matches"),
    // Null.
    c(r#"{"Null": {"aws:TokenIssueTime": "true"}}"#, &[], true, "Null true: key absent"),
    c(r#"{"Null": {"aws:TokenIssueTime": "true"}}"#, &[("aws:TokenIssueTime", &["2026-01-01T00:00:00Z"])], false, "Null true: key present"),
    c(r#"{"Null": {"aws:TokenIssueTime": false}}"#, &[("aws:TokenIssueTime", &["2026-01-01T00:00:00Z"])], true, "Null false: key present"),
    c(r#"{"Null": {"aws:TokenIssueTime": "false"}}"#, &[], false, "Null false: key absent"),
    // Set qualifiers.
    c(r#"{"ForAnyValue:StringEquals": {"aws:TagKeys": ["b", "c"]}}"#, &[("aws:TagKeys", &["a", "b"])], true, "ForAnyValue: one request value matches"),
    c(r#"{"ForAnyValue:StringEquals": {"aws:TagKeys": ["b", "c"]}}"#, &[("aws:TagKeys", &["x"])], false, "ForAnyValue: no request value matches"),
    c(r#"{"ForAnyValue:StringEquals": {"aws:TagKeys": ["b"]}}"#, &[], false, "ForAnyValue: missing key is false"),
    c(r#"{"ForAnyValue:StringEquals": {"aws:TagKeys": ["b"]}}"#, &[("aws:TagKeys", &[])], false, "ForAnyValue: empty set is false"),
    c(r#"{"ForAnyValue:StringEqualsIfExists": {"aws:TagKeys": ["b"]}}"#, &[], true, "ForAnyValue…IfExists: missing key is true"),
    c(r#"{"ForAllValues:StringEquals": {"aws:TagKeys": ["a", "b", "c"]}}"#, &[("aws:TagKeys", &["a", "b"])], true, "ForAllValues: every request value is allowed"),
    c(r#"{"ForAllValues:StringEquals": {"aws:TagKeys": ["a", "b", "c"]}}"#, &[("aws:TagKeys", &["a", "z"])], false, "ForAllValues: one request value is not"),
    c(r#"{"ForAllValues:StringEquals": {"aws:TagKeys": ["a"]}}"#, &[], true, "ForAllValues: missing key is (vacuously) true"),
    c(r#"{"ForAllValues:StringEquals": {"aws:TagKeys": ["a"]}}"#, &[("aws:TagKeys", &[])], true, "ForAllValues: empty set is true"),
    c(r#"{"ForAllValues:StringLike": {"aws:TagKeys": ["team-*"]}}"#, &[("aws:TagKeys", &["team-a", "team-b"])], true, "ForAllValues:StringLike: all match the pattern"),
    c(r#"{"ForAnyValue:StringNotEquals": {"aws:TagKeys": ["a"]}}"#, &[("aws:TagKeys", &["a", "b"])], true, "ForAnyValue:StringNotEquals: b differs from every value"),
    c(r#"{"ForAllValues:StringNotEquals": {"aws:TagKeys": ["a"]}}"#, &[("aws:TagKeys", &["a", "b"])], false, "ForAllValues:StringNotEquals: a equals a value"),
    c(r#"{"ForAnyValue:StringNotLike": {"aws:TagKeys": ["a*"]}}"#, &[], false, "ForAnyValue with a negated operator: missing key is still false"),
    // Multi-valued keys without a qualifier.
    c(r#"{"StringEquals": {"aws:TagKeys": "b"}}"#, &[("aws:TagKeys", &["a", "b"])], true, "no qualifier, positive: some request value matches"),
    c(r#"{"StringNotEquals": {"aws:TagKeys": "b"}}"#, &[("aws:TagKeys", &["a", "b"])], false, "no qualifier, negated: some request value matches, so false"),
    // AND across keys and operators.
    c(r#"{"StringEquals": {"aws:username": "alice", "aws:SourceAccount": "123456789012"}}"#, &[("aws:username", &["alice"]), ("aws:SourceAccount", &["999999999999"])], false, "keys under one operator are ANDed"),
    c(r#"{"StringEquals": {"aws:username": "alice"}, "Bool": {"aws:SecureTransport": "true"}}"#, &[("aws:username", &["alice"]), ("aws:SecureTransport", &["true"])], true, "operators are ANDed: both hold"),
    c(r#"{"StringEquals": {"aws:username": "alice"}, "Bool": {"aws:SecureTransport": "true"}}"#, &[("aws:username", &["alice"])], false, "operators are ANDed: Bool key missing"),
    // Policy variables (Version 2012-10-17).
    c(r#"{"StringEquals": {"aws:PrincipalTag/team": "${aws:username}"}}"#, &[("aws:username", &["alice"]), ("aws:PrincipalTag/team", &["alice"])], true, "a policy variable is substituted"),
    c(r#"{"StringEquals": {"aws:PrincipalTag/team": "${aws:username}"}}"#, &[("aws:PrincipalTag/team", &["alice"])], false, "an unresolved variable matches nothing"),
    c(r#"{"StringEquals": {"aws:PrincipalTag/team": "${aws:username, 'nobody'}"}}"#, &[("aws:PrincipalTag/team", &["nobody"])], true, "a variable's default applies when the key is missing"),
    c(r#"{"StringLike": {"aws:username": "a${*}"}}"#, &[("aws:username", &["a*"])], true, "${*} is a literal asterisk"),
    c(r#"{"StringLike": {"aws:username": "a${*}"}}"#, &[("aws:username", &["ab"])], false, "${*} is not a wildcard"),
    c(r#"{"StringLike": {"aws:username": "${aws:PrincipalTag/p}*"}}"#, &[("aws:PrincipalTag/p", &["a?"]), ("aws:username", &["a?x"])], true, "a substituted value is literal text, then *"),
    c(r#"{"StringLike": {"aws:username": "${aws:PrincipalTag/p}*"}}"#, &[("aws:PrincipalTag/p", &["a?"]), ("aws:username", &["abx"])], false, "a ? inside a substituted value is not a wildcard"),
];

fn policy_with(condition: &str, version: &str) -> Policy {
    let doc = format!(
        r#"{{"Version": "{version}", "Statement": {{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*", "Condition": {condition}}}}}"#
    );
    Policy::parse(&doc, PolicyKind::Identity).unwrap_or_else(|e| panic!("{condition}: {e}"))
}

fn request(context: &[(&str, &[&str])]) -> Request {
    let mut ctx = Context::new();
    for (key, values) in context {
        ctx.set(key, values.iter().map(|v| (*v).to_owned()).collect());
    }
    Request {
        principal: None,
        action: "s3:GetObject".into(),
        resource: "arn:aws:s3:::bucket/key".into(),
        context: ctx,
    }
}

#[test]
fn condition_operator_table() {
    let mut failures = Vec::new();
    for case in CASES {
        let policy = policy_with(case.condition, "2012-10-17");
        let decision = evaluate_one(&policy, PolicyKind::Identity, &request(case.context));
        if decision.is_allowed() != case.allowed {
            failures.push(format!(
                "{} — expected {}, got {:?}: {}",
                case.condition,
                if case.allowed {
                    "allowed"
                } else {
                    "implicit deny"
                },
                decision.decision,
                case.reason
            ));
        }
        if !decision.is_allowed() {
            assert_eq!(
                decision.decision,
                DecisionKind::ImplicitDeny,
                "{}",
                case.reason
            );
            assert!(decision.statements.is_empty());
            assert!(
                matches!(
                    decision.not_matched.first(),
                    Some((_, byollm_policy::eval::Mismatch::Condition { .. }))
                ),
                "{}: the reason is a condition",
                case.reason
            );
        }
    }
    assert!(
        failures.is_empty(),
        "{} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(CASES.len() >= 80);
}

#[test]
fn version_2008_has_no_variables() {
    let policy = policy_with(
        r#"{"StringEquals": {"aws:username": "${aws:username}"}}"#,
        "2008-10-17",
    );
    let literal = request(&[("aws:username", &["${aws:username}"])]);
    assert!(evaluate_one(&policy, PolicyKind::Identity, &literal).is_allowed());
    let alice = request(&[("aws:username", &["alice"])]);
    assert!(!evaluate_one(&policy, PolicyKind::Identity, &alice).is_allowed());
}

fn doc(statements: &str) -> Policy {
    Policy::parse(
        &format!(r#"{{"Version": "2012-10-17", "Statement": [{statements}]}}"#),
        PolicyKind::Identity,
    )
    .unwrap()
}

fn req(action: &str, resource: &str) -> Request {
    Request {
        principal: None,
        action: action.into(),
        resource: resource.into(),
        context: Context::new(),
    }
}

#[test]
fn actions_resources_and_effects() {
    let p = doc(
        r#"{"Sid": "Read", "Effect": "Allow", "Action": "S3:Get*", "Resource": "arn:aws:s3:::bucket/*"}"#,
    );
    // Actions are case-insensitive, with wildcards.
    assert!(
        evaluate_one(
            &p,
            PolicyKind::Identity,
            &req("s3:getobject", "arn:aws:s3:::bucket/k")
        )
        .is_allowed()
    );
    assert!(
        !evaluate_one(
            &p,
            PolicyKind::Identity,
            &req("s3:PutObject", "arn:aws:s3:::bucket/k")
        )
        .is_allowed()
    );
    // Resources are case-sensitive.
    assert!(
        !evaluate_one(
            &p,
            PolicyKind::Identity,
            &req("s3:GetObject", "arn:aws:s3:::Bucket/k")
        )
        .is_allowed()
    );

    // Explicit deny wins over any allow, and names the deny.
    let p = doc(
        r#"{"Sid": "All", "Effect": "Allow", "Action": "*", "Resource": "*"},
           {"Sid": "NoDelete", "Effect": "Deny", "Action": "s3:Delete*", "Resource": "*"}"#,
    );
    let d = evaluate_one(
        &p,
        PolicyKind::Identity,
        &req("s3:DeleteObject", "arn:aws:s3:::b/k"),
    );
    assert_eq!(d.decision, DecisionKind::ExplicitDeny);
    assert_eq!(d.statements.len(), 1);
    assert_eq!(d.statements[0].sid.as_deref(), Some("NoDelete"));
    let d = evaluate_one(
        &p,
        PolicyKind::Identity,
        &req("s3:GetObject", "arn:aws:s3:::b/k"),
    );
    assert_eq!(d.decision, DecisionKind::Allowed);
    assert_eq!(d.statements[0].sid.as_deref(), Some("All"));

    // NotAction / NotResource.
    let p =
        doc(r#"{"Effect": "Allow", "NotAction": "iam:*", "NotResource": "arn:aws:s3:::secret/*"}"#);
    assert!(
        evaluate_one(
            &p,
            PolicyKind::Identity,
            &req("s3:GetObject", "arn:aws:s3:::b/k")
        )
        .is_allowed()
    );
    assert!(
        !evaluate_one(
            &p,
            PolicyKind::Identity,
            &req("IAM:CreateUser", "arn:aws:s3:::b/k")
        )
        .is_allowed()
    );
    assert!(
        !evaluate_one(
            &p,
            PolicyKind::Identity,
            &req("s3:GetObject", "arn:aws:s3:::secret/k")
        )
        .is_allowed()
    );

    // Resource with a policy variable.
    let p = doc(
        r#"{"Effect": "Allow", "Action": "s3:*", "Resource": "arn:aws:s3:::home/${aws:username}/*"}"#,
    );
    let mut r = req("s3:GetObject", "arn:aws:s3:::home/alice/notes");
    assert!(!evaluate_one(&p, PolicyKind::Identity, &r).is_allowed());
    r.context.insert("aws:username", "alice");
    assert!(evaluate_one(&p, PolicyKind::Identity, &r).is_allowed());

    // Nothing matches: implicit deny.
    let d = evaluate_one(&p, PolicyKind::Identity, &req("ec2:RunInstances", "*"));
    assert_eq!(d.decision, DecisionKind::ImplicitDeny);
}

#[test]
fn explicit_deny_across_policies() {
    let allow = doc(r#"{"Effect": "Allow", "Action": "bedrock:*", "Resource": "*"}"#);
    let deny = doc(
        r#"{"Effect": "Deny", "Action": "bedrock:InvokeModel", "Resource": "*", "Condition": {"StringNotEquals": {"aws:RequestedRegion": "us-east-1"}}}"#,
    );
    let set = [
        (&allow, PolicyKind::Identity),
        (&deny, PolicyKind::Identity),
    ];
    let mut r = req(
        "bedrock:InvokeModel",
        "arn:aws:bedrock:eu-west-1::foundation-model/x",
    );
    r.context.insert("aws:RequestedRegion", "eu-west-1");
    let d = evaluate(&set, &r);
    assert_eq!(d.decision, DecisionKind::ExplicitDeny);
    assert_eq!(d.statements[0].policy, 1);
    r.context
        .set("aws:RequestedRegion", vec!["us-east-1".into()]);
    assert!(evaluate(&set, &r).is_allowed());
}
