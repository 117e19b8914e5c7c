//! Property tests: generated bodies against the settings, agent and other
//! routes never get a 5xx, and the generator reaches both sides of validation.

use std::cell::Cell;

use axum::http::Method;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::Value;

use byollm_api::routes;

use super::{GOOD_ARN, setup};
use crate::common::{Resp, STS, TeamFx};

// ---------------------------------------------------------------- properties

/// Keys that steer generated documents into the real schemas, so the tests reach
/// past the first unknown field.
const KEYS: &[&str] = &[
    "hosts",
    "aws_bedrock",
    "direct_api",
    "enabled",
    "enforcement",
    "role_arn",
    "region",
    "opt_out_of_new_models",
    "models",
    "claude-sonnet-4-6",
    "aws",
    "model_ref",
    "allow_fallback_outside_cloud",
    "subject_template",
    "session_tags",
    "source_identity",
    "worker_identity_tokens",
    "token_audiences",
    "name",
    "description",
    "available",
    "base_model",
    "inference_providers",
    "disabled",
];

const STRINGS: &[&str] = &[
    GOOD_ARN,
    "us-east-1",
    "enforce",
    "respect_user_setting",
    "scoped_principal",
    "run_id",
    STS,
    "claude-sonnet-4-6",
    "us.anthropic.claude-sonnet-4-6",
    "",
    "\u{0}",
];

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        prop::sample::select(STRINGS).prop_map(Value::from),
        ".{0,24}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        let key = prop_oneof![
            3 => prop::sample::select(KEYS).prop_map(str::to_owned),
            1 => ".{0,12}",
        ];
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(key, inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Raw bodies: generated JSON, mangled JSON, or any bytes.
fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => json_value().prop_map(|v| serde_json::to_vec(&v).unwrap()),
        1 => (json_value(), any::<prop::sample::Index>()).prop_map(|(v, cut)| {
            let bytes = serde_json::to_vec(&v).unwrap();
            let at = cut.index(bytes.len() + 1);
            bytes[..at].to_vec()
        }),
        1 => prop::collection::vec(any::<u8>(), 0..128),
    ]
}

fn check(r: &Resp) -> Result<(), TestCaseError> {
    let status = r.status.as_u16();
    prop_assert!(
        status < 500,
        "{status}: {}",
        String::from_utf8_lossy(&r.raw)
    );
    if status >= 400 {
        let code = r.body.pointer("/error/code").and_then(Value::as_str);
        prop_assert!(
            code.is_some_and(|c| !c.is_empty()),
            "{status} without a JSON error code: {}",
            String::from_utf8_lossy(&r.raw)
        );
        prop_assert!(
            r.body
                .pointer("/error/message")
                .and_then(Value::as_str)
                .is_some()
        );
        if status == 400 {
            // Present, though it may be `""`: a JSON key can be the empty string.
            prop_assert!(r.field().is_some(), "400 without a field: {}", r.body);
        }
    }
    Ok(())
}

/// Runs `cases` generated bodies against one route; returns how many were
/// accepted (2xx) and refused (4xx), so a test can tell the generator reached
/// both sides of validation.
fn fuzz_route(method: Method, route: fn(&TeamFx) -> String, cases: u32) -> (u32, u32) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (h, a) = rt.block_on(setup());
    let path = route(&a);
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let (accepted, refused) = (Cell::new(0), Cell::new(0));
    let result = runner.run(&body(), |bytes| {
        let r = rt.block_on(h.send(method.clone(), &path, Some(&a.admin.key), Some(bytes)));
        match r.status.as_u16() {
            200..=299 => accepted.set(accepted.get() + 1),
            400..=499 => refused.set(refused.get() + 1),
            _ => {}
        }
        check(&r)
    });
    if let Err(e) = result {
        panic!("{method} {path}: {e}");
    }
    (accepted.get(), refused.get())
}

#[test]
fn settings_bodies_never_5xx() {
    // Generated documents are partial: PATCH (a merge) accepts some, PUT (a
    // complete document) refuses them all, naming a field, never with a 5xx.
    let (accepted, refused) =
        fuzz_route(Method::PATCH, |_| routes::TEAM_LLM_SETTINGS.to_owned(), 128);
    assert!(
        accepted > 0 && refused > 0,
        "accepted {accepted}, refused {refused}"
    );
    let (_, refused) = fuzz_route(Method::PUT, |_| routes::TEAM_LLM_SETTINGS.to_owned(), 64);
    assert!(refused > 0, "refused {refused}");
}

#[test]
fn agent_create_bodies_never_5xx() {
    let (_, refused) = fuzz_route(Method::POST, |_| routes::AGENT_IDENTITIES.to_owned(), 96);
    assert!(refused > 0);
}

#[test]
fn agent_patch_bodies_never_5xx() {
    let (accepted, refused) = fuzz_route(
        Method::PATCH,
        |a| routes::fill(routes::AGENT_IDENTITY, &a.agent_uid),
        128,
    );
    assert!(
        accepted > 0 && refused > 0,
        "accepted {accepted}, refused {refused}"
    );
}

#[test]
fn other_bodies_never_5xx() {
    for (method, route) in [
        (
            Method::POST,
            (|_| routes::IDENTITY_TOKEN.to_owned()) as fn(&TeamFx) -> String,
        ),
        (Method::POST, |_| routes::RUNS.to_owned()),
        (Method::POST, |_| routes::TEAM_MEMBERS.to_owned()),
        (Method::POST, |_| routes::API_KEYS.to_owned()),
        (Method::PUT, |_| routes::ME_SETTINGS.to_owned()),
        (Method::POST, |a| {
            routes::fill(routes::RUN_FINISH, &a.agent_run)
        }),
    ] {
        fuzz_route(method, route, 48);
    }
}
