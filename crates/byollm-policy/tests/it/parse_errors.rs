//! Bad input gets a clear error naming where the problem is, never a panic.

use byollm_policy::parse::{ParseOptions, parse};
use byollm_policy::{Policy, PolicyError, PolicyKind};

fn err(doc: &str, kind: PolicyKind) -> String {
    match Policy::parse(doc, kind) {
        Ok(p) => panic!("expected an error for {doc}, got {p:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn errors_name_the_json_path() {
    let id = PolicyKind::Identity;
    let cases: &[(&str, PolicyKind, &str)] = &[
        ("{", id, "not valid JSON (line 1, column 1)"),
        ("[]", id, "$: expected a policy object, found an array"),
        (
            r#"{"Version": "2012-10-17"}"#,
            id,
            "$: missing required element Statement",
        ),
        (
            r#"{"Version": "2010-01-01", "Statement": []}"#,
            id,
            "$.Version: unsupported version `2010-01-01`",
        ),
        (
            r#"{"Version": 2012, "Statement": []}"#,
            id,
            "$.Version: expected a string, found a number",
        ),
        (
            r#"{"Statement": []}"#,
            id,
            "$.Statement: must hold at least one statement",
        ),
        (
            r#"{"Statement": "x"}"#,
            id,
            "$.Statement: expected a statement object or an array of them, found a string",
        ),
        (r#"{"Statment": []}"#, id, "$.Statment: unknown element"),
        (
            r#"{"Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}, 7]}"#,
            id,
            "$.Statement[1]: expected a statement object, found a number",
        ),
        (
            r#"{"Statement": {"Effect": "allow", "Action": "s3:*", "Resource": "*"}}"#,
            id,
            "$.Statement.Effect: `allow` is not Allow or Deny",
        ),
        (
            r#"{"Statement": {"Action": "s3:*", "Resource": "*"}}"#,
            id,
            "$.Statement: missing required element Effect",
        ),
        (
            r#"{"Statement": {"Effect": "Allow", "Resource": "*"}}"#,
            id,
            "missing required element Action or NotAction",
        ),
        (
            r#"{"Statement": {"Effect": "Allow", "Action": "s3:*", "NotAction": "s3:x", "Resource": "*"}}"#,
            id,
            "has both Action and NotAction",
        ),
        (
            r#"{"Statement": {"Effect": "Allow", "Action": ["s3:*", 5], "Resource": "*"}}"#,
            id,
            "$.Statement.Action[1]: expected a string, found a number",
        ),
        (
            r#"{"Statement": {"Effect": "Allow", "Action": [], "Resource": "*"}}"#,
            id,
            "$.Statement.Action: must hold at least one value",
        ),
        (
            r#"{"Statement": {"Effect": "Allow", "Action": ["s3:Get", "GetObject"], "Resource": "*"}}"#,
            id,
            "$.Statement.Action[1]: `GetObject` is not an action",
        ),
        (
            r#"{"Statement": {"Effect": "Allow", "Action": "s3:*"}}"#,
            id,
            "missing required element Resource or NotResource",
        ),
        (
            r#"{"Statement": {"Effect": "Allow", "Action": "s3:*", "Resource": {"a": 1}}}"#,
            id,
            "$.Statement.Resource: expected a string or an array of strings, found an object",
        ),
        (
            r#"{"Statement": {"Effect": "Allow", "Principal": "*", "Action": "s3:*", "Resource": "*"}}"#,
            id,
            "not allowed in an identity-based policy",
        ),
        (
            r#"{"Statement": {"Effect": "Allow", "Action": "sts:AssumeRole"}}"#,
            PolicyKind::Resource,
            "needs Principal or NotPrincipal",
        ),
        (
            r#"{"Statement": {"Effect": "Allow", "Principal": "arn:aws:iam::1:root", "Action": "sts:AssumeRole"}}"#,
            PolicyKind::Resource,
            "$.Statement.Principal: `arn:aws:iam::1:root`: a principal string must be \"*\"",
        ),
        (
            r#"{"Statement": {"Effect": "Allow", "Principal": {"Federate": "x"}, "Action": "sts:AssumeRole"}}"#,
            PolicyKind::Resource,
            "$.Statement.Principal.Federate: unknown principal type",
        ),
        (
            r#"{"Statement": {"Effect": "Allow", "Principal": {"AWS": []}, "Action": "sts:AssumeRole"}}"#,
            PolicyKind::Resource,
            "$.Statement.Principal.AWS: must hold at least one value",
        ),
        (
            r#"{"Statement": {"Effect": "Allow", "Action": "s3:*", "Resource": "*", "Condition": []}}"#,
            id,
            "$.Statement.Condition: expected an object of condition operators, found an array",
        ),
        (
            r#"{"Statement": {"Effect": "Allow", "Action": "s3:*", "Resource": "*", "Condition": {"StringEqual": {"k": "v"}}}}"#,
            id,
            "$.Statement.Condition.StringEqual: unknown condition operator `StringEqual`",
        ),
        (
            r#"{"Statement": {"Effect": "Allow", "Action": "s3:*", "Resource": "*", "Condition": {"NullIfExists": {"k": "true"}}}}"#,
            id,
            "the Null operator takes neither IfExists",
        ),
        (
            r#"{"Statement": {"Effect": "Allow", "Action": "s3:*", "Resource": "*", "Condition": {"StringEquals": "v"}}}"#,
            id,
            "$.Statement.Condition.StringEquals: expected an object of condition keys, found a string",
        ),
        (
            r#"{"Statement": {"Effect": "Allow", "Action": "s3:*", "Resource": "*", "Condition": {"StringEquals": {"k": null}}}}"#,
            id,
            "$.Statement.Condition.StringEquals.k: expected a string, number or boolean, found null",
        ),
        (
            r#"{"Statement": {"Effect": "Allow", "Action": "s3:*", "Resource": "*", "Condition": {"StringEquals": {"k": [{"a": 1}]}}}}"#,
            id,
            "$.Statement.Condition.StringEquals.k[0]: expected a string, number or boolean, found an object",
        ),
        (
            r#"{"Statement": {"Effect": "Allow", "Action": "s3:*", "Resource": "*", "Condition": {"NumericLessThan": {"k": ["1", "ten"]}}}}"#,
            id,
            "$.Statement.Condition.NumericLessThan.k[1]: `ten` is not a number, as NumericLessThan requires",
        ),
        (
            r#"{"Statement": {"Effect": "Allow", "Action": "s3:*", "Resource": "*", "Condition": {"DateLessThan": {"k": "tomorrow"}}}}"#,
            id,
            "`tomorrow` is not a date",
        ),
        (
            r#"{"Statement": {"Effect": "Allow", "Action": "s3:*", "Resource": "*", "Condition": {"Bool": {"k": "yes"}}}}"#,
            id,
            "`yes` is not `true` or `false`, as Bool requires",
        ),
        (
            r#"{"Statement": {"Effect": "Allow", "Action": "s3:*", "Resource": "*", "Condition": {"IpAddress": {"k": "10.0.0.0/99"}}}}"#,
            id,
            "is not an IP address or CIDR block",
        ),
        (
            r#"{"Statement": {"Effect": "Allow", "Action": "s3:*", "Resource": "*", "Condition": {"StringEquals": {}}}}"#,
            id,
            "must name at least one condition key",
        ),
    ];
    for (doc, kind, want) in cases {
        let got = err(doc, *kind);
        assert!(
            got.contains(want),
            "for {doc}\n  want …{want}…\n  got  {got}"
        );
    }
}

#[test]
fn oversized_and_non_utf8_input() {
    let big = format!(
        r#"{{"Statement": {{"Effect": "Allow", "Action": "s3:*", "Resource": "*", "Sid": "{}"}}}}"#,
        "x".repeat(200_000)
    );
    let e = Policy::parse(&big, PolicyKind::Identity).unwrap_err();
    assert!(
        matches!(e, PolicyError::TooLarge { limit: 131_072, .. }),
        "{e}"
    );
    assert!(e.to_string().contains("over the limit of 131072 bytes"));
    let small = ParseOptions {
        kind: PolicyKind::Identity,
        max_bytes: 10,
    };
    assert!(matches!(
        parse(br#"{"Statement": []}"#, small),
        Err(PolicyError::TooLarge { .. })
    ));
    assert!(matches!(
        parse(&[0xff, 0xfe, b'{'], ParseOptions::new(PolicyKind::Identity)),
        Err(PolicyError::Json { .. })
    ));
    // Deep nesting is refused by the JSON parser's recursion limit, not a stack overflow.
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let big_opts = ParseOptions {
        kind: PolicyKind::Identity,
        max_bytes: 1 << 20,
    };
    assert!(parse(deep.as_bytes(), big_opts).is_err());
}

#[test]
fn every_element_form_parses() {
    let doc = r#"{
      "Version": "2012-10-17",
      "Id": "example",
      "Statement": [
        {"Sid": "A", "Effect": "Allow", "Principal": "*", "Action": "sts:AssumeRoleWithWebIdentity"},
        {"Effect": "Allow", "Principal": {"AWS": ["123456789012", "arn:aws:iam::123456789012:role/r"], "Service": "ec2.amazonaws.com"},
         "Action": ["sts:AssumeRole", "sts:TagSession"], "Resource": "*"},
        {"Effect": "Deny", "NotPrincipal": {"Federated": "arn:aws:iam::123456789012:oidc-provider/x.example.com", "CanonicalUser": "abc"},
         "NotAction": "sts:GetCallerIdentity", "NotResource": ["arn:aws:iam::123456789012:role/keep"],
         "Condition": {"ForAllValues:StringLikeIfExists": {"aws:TagKeys": ["a*", "b"]}, "NumericEquals": {"n": 1.5},
                       "Bool": {"b": true}, "Null": {"x": "false"}}}
      ]
    }"#;
    let p = Policy::parse(doc, PolicyKind::Resource).unwrap();
    assert_eq!(p.statements.len(), 3);
    assert_eq!(p.statements[2].conditions.len(), 4);
    // A single statement object is accepted too.
    let one = r#"{"Statement": {"Effect": "Allow", "Action": "*", "Resource": "*"}}"#;
    assert_eq!(
        Policy::parse(one, PolicyKind::Identity)
            .unwrap()
            .statements
            .len(),
        1
    );
}
