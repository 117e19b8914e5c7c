//! Bad input gets a 4xx naming the field, never a 5xx or a panic: fixed cases
//! for each kind of mistake, then property tests over the settings and agent
//! bodies.

use axum::http::Method;
use serde_json::{Value, json};

use byollm_api::routes;

use crate::common::{Harness, Resp, STS, TeamFx, mint_body, worker_tokens_on};

mod properties;

const GOOD_ARN: &str = "arn:aws:iam::123456789012:role/byollm-bedrock";

/// Asserts a 400 `invalid_request` naming `field`, with the field in the message.
#[track_caller]
fn assert_invalid(r: &Resp, field: &str) {
    assert_eq!(
        r.status.as_u16(),
        400,
        "expected a 400 naming {field}; got {}",
        r.body
    );
    assert_eq!(r.body["error"]["code"], "invalid_request", "{}", r.body);
    assert_eq!(r.field(), Some(field), "{}", r.body);
    let message = r.body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(field),
        "message `{message}` does not name {field}"
    );
}

async fn setup() -> (Harness, TeamFx) {
    let h = Harness::new().await;
    let a = h.team("alpha").await;
    (h, a)
}

#[tokio::test]
async fn malformed_json_is_a_400() {
    let (h, a) = setup().await;
    let admin = Some(a.admin.key.as_str());
    for (body, field) in [
        (&b"{"[..], "body"),
        (b"not json", "body"),
        (b"{} {}", "body"),
        (b"\xff\xfe", "body"),
        (
            b"{\"hosts\": {\"aws_bedrock\": {\"enabled\": tru}}}",
            "hosts.aws_bedrock.enabled",
        ),
        (b"{\"hosts\":", "hosts"),
    ] {
        let r = h
            .send(
                Method::PUT,
                routes::TEAM_LLM_SETTINGS,
                admin,
                Some(body.to_vec()),
            )
            .await;
        assert_invalid(&r, field);
        assert!(
            r.body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("malformed JSON"),
            "{}",
            r.body
        );
    }
    // Not an object where one is expected.
    let r = h
        .send(
            Method::POST,
            routes::IDENTITY_TOKEN,
            Some(&a.member.key),
            Some(b"[]".to_vec()),
        )
        .await;
    assert_invalid(&r, "body");
}

#[tokio::test]
async fn unknown_fields_are_named() {
    let (h, a) = setup().await;
    let admin = Some(a.admin.key.as_str());
    let r = h
        .put_settings(&a.admin.key, &json!({"worker_identity_token": true}))
        .await;
    assert_invalid(&r, "worker_identity_token");
    let r = h
        .put_settings(
            &a.admin.key,
            &json!({"hosts": {"aws_bedrock": {"enabled": false, "rolearn": "x"}}}),
        )
        .await;
    assert_invalid(&r, "hosts.aws_bedrock.rolearn");
    let r = h
        .post(
            routes::AGENT_IDENTITIES,
            admin,
            &json!({"name": "x", "model": "claude-sonnet-4-6"}),
        )
        .await;
    assert_invalid(&r, "model");
    let r = h
        .post(
            routes::IDENTITY_TOKEN,
            Some(&a.member.key),
            &json!({"audience": STS, "requested_duration_seconds": 60, "scope": "x"}),
        )
        .await;
    assert_invalid(&r, "scope");
    let r = h
        .post(
            routes::TEAM_MEMBERS,
            admin,
            &json!({"email": "x@example.com", "role": "member", "admin": true}),
        )
        .await;
    assert_invalid(&r, "admin");
    // A merge patch may not smuggle fields either, even nested.
    let agent = routes::fill(routes::AGENT_IDENTITY, &a.agent_uid);
    let r = h
        .json(
            Method::PATCH,
            &agent,
            admin,
            &json!({"inference_providers": {"aws": {"role": GOOD_ARN}}}),
        )
        .await;
    assert_eq!(r.status.as_u16(), 400, "{}", r.body);
    assert!(r.field().unwrap().contains("role"), "{}", r.body);
}

#[tokio::test]
async fn wrong_types_are_named() {
    let (h, a) = setup().await;
    let admin = Some(a.admin.key.as_str());
    let r = h
        .put_settings(
            &a.admin.key,
            &json!({"hosts": {"aws_bedrock": {"enabled": "yes"}}}),
        )
        .await;
    assert_invalid(&r, "hosts.aws_bedrock.enabled");
    let r = h
        .put_settings(
            &a.admin.key,
            &json!({"hosts": {"aws_bedrock": {"enforcement": "always"}}}),
        )
        .await;
    assert_invalid(&r, "hosts.aws_bedrock.enforcement");
    let r = h
        .put_settings(&a.admin.key, &json!({"token_audiences": STS}))
        .await;
    assert_invalid(&r, "token_audiences");
    let r = h
        .put_settings(
            &a.admin.key,
            &json!({"models": {"claude-sonnet-4-6": {"direct_api": {"enabled": 1}}}}),
        )
        .await;
    assert_invalid(&r, "models.claude-sonnet-4-6.direct_api.enabled");
    let r = h
        .post(
            routes::IDENTITY_TOKEN,
            Some(&a.member.key),
            &json!({"audience": STS, "requested_duration_seconds": "900"}),
        )
        .await;
    assert_invalid(&r, "requested_duration_seconds");
    let r = h
        .post(
            routes::IDENTITY_TOKEN,
            Some(&a.member.key),
            &json!({"audience": STS, "requested_duration_seconds": 900.5}),
        )
        .await;
    assert_invalid(&r, "requested_duration_seconds");
    let r = h
        .post(
            routes::TEAM_MEMBERS,
            admin,
            &json!({"email": "x@example.com", "role": "root"}),
        )
        .await;
    assert_invalid(&r, "role");
    let r = h
        .post(
            routes::AGENT_IDENTITIES,
            admin,
            &json!({"name": "x", "available": "true"}),
        )
        .await;
    assert_invalid(&r, "available");
    let r = h
        .json(
            Method::PUT,
            routes::ME_SETTINGS,
            Some(&a.member.key),
            &json!({"aws_bedrock_opt_in": null}),
        )
        .await;
    assert_invalid(&r, "aws_bedrock_opt_in");
}

/// PATCH applies the merge patch and then parses the result: a wrong type there
/// must name the field too, not the offending value.
#[tokio::test]
async fn wrong_types_in_an_agent_patch_are_named() {
    let (h, a) = setup().await;
    let agent = routes::fill(routes::AGENT_IDENTITY, &a.agent_uid);
    let admin = Some(a.admin.key.as_str());
    for (patch, field) in [
        (json!({"name": 5}), "name"),
        (json!({"available": "yes"}), "available"),
        (json!({"description": ["a"]}), "description"),
        (
            json!({"inference_providers": {"aws": {"disabled": "no"}}}),
            "inference_providers.aws.disabled",
        ),
    ] {
        let r = h.json(Method::PATCH, &agent, admin, &patch).await;
        assert_invalid(&r, field);
    }
}

#[tokio::test]
async fn missing_required_fields_are_named() {
    let (h, a) = setup().await;
    let member = Some(a.member.key.as_str());
    let admin = Some(a.admin.key.as_str());
    let r = h
        .post(
            routes::IDENTITY_TOKEN,
            member,
            &json!({"requested_duration_seconds": 900}),
        )
        .await;
    assert_invalid(&r, "audience");
    let r = h
        .post(routes::IDENTITY_TOKEN, member, &json!({"audience": STS}))
        .await;
    assert_invalid(&r, "requested_duration_seconds");
    // An empty body reads as `{}`.
    let r = h
        .send(Method::POST, routes::IDENTITY_TOKEN, member, None)
        .await;
    assert_invalid(&r, "audience");
    let r = h
        .post(
            routes::TEAM_MEMBERS,
            admin,
            &json!({"email": "x@example.com"}),
        )
        .await;
    assert_invalid(&r, "role");
    let r = h
        .post(
            routes::AGENT_IDENTITIES,
            admin,
            &json!({"description": "x"}),
        )
        .await;
    assert_invalid(&r, "name");
    let r = h.post(routes::API_KEYS, member, &json!({})).await;
    assert_invalid(&r, "name");
    // The run's own endpoint parses the same body.
    h.put_settings(&a.admin.key, &worker_tokens_on())
        .await
        .expect(200);
    let path = routes::fill(routes::RUN_IDENTITY_TOKEN, &a.member_run);
    let r = h
        .post(
            &path,
            Some(&a.member_run_token),
            &json!({"requested_duration_seconds": 900}),
        )
        .await;
    assert_invalid(&r, "audience");
}

#[tokio::test]
async fn oversized_bodies_are_413() {
    let (h, a) = setup().await;
    // Valid JSON just over 1 MiB: the size alone refuses it.
    let mut big = b"{\"description\": \"".to_vec();
    big.resize(1024 * 1024 + 1, b'x');
    big.extend_from_slice(b"\"}");
    for (method, path, cred) in [
        (
            Method::PUT,
            routes::TEAM_LLM_SETTINGS.to_owned(),
            &a.admin.key,
        ),
        (
            Method::POST,
            routes::AGENT_IDENTITIES.to_owned(),
            &a.admin.key,
        ),
        (
            Method::POST,
            routes::IDENTITY_TOKEN.to_owned(),
            &a.member.key,
        ),
        (
            Method::PATCH,
            routes::fill(routes::AGENT_IDENTITY, &a.agent_uid),
            &a.admin.key,
        ),
    ] {
        let r = h
            .send(method.clone(), &path, Some(cred), Some(big.clone()))
            .await;
        assert_eq!(r.status.as_u16(), 413, "{method} {path}: {}", r.body);
        assert_eq!(r.body["error"]["code"], "payload_too_large");
    }
    // Just under the limit is read (and then judged on its content).
    let mut fits = b"{\"name\": \"big\", \"description\": \"".to_vec();
    fits.resize(1024 * 1024 - 2, b'x');
    fits.extend_from_slice(b"\"}");
    let r = h
        .send(
            Method::POST,
            routes::AGENT_IDENTITIES,
            Some(&a.admin.key),
            Some(fits),
        )
        .await;
    assert_invalid(&r, "description");
}

#[tokio::test]
async fn durations_outside_60_to_3600_are_named() {
    let (h, a) = setup().await;
    h.put_settings(&a.admin.key, &worker_tokens_on())
        .await
        .expect(200);
    let run_path = routes::fill(routes::RUN_IDENTITY_TOKEN, &a.member_run);
    for (path, cred) in [
        (routes::IDENTITY_TOKEN.to_owned(), &a.member.key),
        (run_path, &a.member_run_token),
    ] {
        for seconds in [59, 3601, 0, -1, i64::MAX] {
            let r = h.post(&path, Some(cred), &mint_body(STS, seconds)).await;
            assert_invalid(&r, "requested_duration_seconds");
        }
        for seconds in [60, 3600] {
            h.post(&path, Some(cred), &mint_body(STS, seconds))
                .await
                .expect(200);
        }
    }
}

#[tokio::test]
async fn invalid_arns_and_regions_are_named() {
    let (h, a) = setup().await;
    let admin = Some(a.admin.key.as_str());
    let bedrock = |arn: &str, region: &str| json!({"hosts": {"aws_bedrock": {"enabled": true, "role_arn": arn, "region": region}}});
    for arn in [
        "arn:aws:iam::123:role/x",
        "arn:aws:iam::123456789012:user/x",
        "arn:aws:sts::123456789012:assumed-role/x/y",
        "role/x",
        "",
    ] {
        let r = h
            .put_settings(&a.admin.key, &bedrock(arn, "us-east-1"))
            .await;
        assert_invalid(&r, "hosts.aws_bedrock.role_arn");
        assert!(
            r.body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("arn:aws:iam::<12-digit account>:role/"),
            "the expected form is shown: {}",
            r.body
        );
    }
    for region in ["moon", "US-EAST-1", "us-east", ""] {
        let r = h
            .put_settings(&a.admin.key, &bedrock(GOOD_ARN, region))
            .await;
        assert_invalid(&r, "hosts.aws_bedrock.region");
    }
    // Enabled Bedrock needs both.
    let r = h
        .put_settings(
            &a.admin.key,
            &json!({"hosts": {"aws_bedrock": {"enabled": true, "region": "us-east-1"}}}),
        )
        .await;
    assert_invalid(&r, "hosts.aws_bedrock.role_arn");
    h.put_settings(&a.admin.key, &bedrock(GOOD_ARN, "us-east-1"))
        .await
        .expect(200);

    // The agent override, on create and on PATCH.
    let r = h
        .post(
            routes::AGENT_IDENTITIES,
            admin,
            &json!({"name": "x", "inference_providers": {"aws": {"role_arn": "arn:aws:iam::1:role/x"}}}),
        )
        .await;
    assert_invalid(&r, "inference_providers.aws.role_arn");
    let r = h
        .post(
            routes::AGENT_IDENTITIES,
            admin,
            &json!({"name": "x", "inference_providers": {"aws": {"region": "mars-1"}}}),
        )
        .await;
    assert_invalid(&r, "inference_providers.aws.region");
    let agent = routes::fill(routes::AGENT_IDENTITY, &a.agent_uid);
    let r = h
        .json(
            Method::PATCH,
            &agent,
            admin,
            &json!({"inference_providers": {"aws": {"region": "eu-west"}}}),
        )
        .await;
    assert_invalid(&r, "inference_providers.aws.region");
    let r = h
        .json(
            Method::PATCH,
            &agent,
            admin,
            &json!({"inference_providers": {"aws": {"role_arn": "x"}}}),
        )
        .await;
    assert_invalid(&r, "inference_providers.aws.role_arn");
    // Nothing was stored by the refused writes.
    let got = h.get(&agent, admin).await.expect(200);
    assert_eq!(
        got.body["inference_providers"]["aws"],
        json!({"role_arn": null, "region": null, "disabled": false})
    );
}

#[tokio::test]
async fn agent_patch_semantics_and_read_only_fields() {
    let (h, a) = setup().await;
    let admin = Some(a.admin.key.as_str());
    let agent = routes::fill(routes::AGENT_IDENTITY, &a.agent_uid);
    for field in ["uid", "created_at", "created_by"] {
        let r = h
            .json(Method::PATCH, &agent, admin, &json!({field: "x"}))
            .await;
        assert_invalid(&r, field);
    }
    let r = h.json(Method::PATCH, &agent, admin, &json!([1])).await;
    assert_eq!(r.status.as_u16(), 400, "{}", r.body);

    // Omitted is unchanged, null clears, nested objects merge.
    let set = json!({"description": "d", "inference_providers": {"aws": {"role_arn": GOOD_ARN, "region": "us-west-2"}}});
    h.json(Method::PATCH, &agent, admin, &set).await.expect(200);
    let r = h
        .json(
            Method::PATCH,
            &agent,
            admin,
            &json!({"inference_providers": {"aws": {"region": null}}}),
        )
        .await
        .expect(200);
    assert_eq!(r.body["description"], "d");
    assert_eq!(r.body["inference_providers"]["aws"]["role_arn"], GOOD_ARN);
    assert_eq!(r.body["inference_providers"]["aws"]["region"], Value::Null);
    assert_eq!(r.body["uid"], a.agent_uid.as_str());
    // The name is required; null would clear it.
    let r = h
        .json(Method::PATCH, &agent, admin, &json!({"name": null}))
        .await;
    assert_invalid(&r, "name");
    // Path uids are validated.
    let r = h
        .get(&routes::fill(routes::AGENT_IDENTITY, "NOT*A*UID"), admin)
        .await;
    assert_invalid(&r, "uid");
}

/// The error bodies people read, as they read them.
#[tokio::test]
async fn error_bodies_snapshot() {
    let _sorted = crate::common::sorted_snapshots();
    let (h, a) = setup().await;
    let unauthenticated = h.get(routes::ME, None).await.expect(401).body;
    let run_mint = routes::fill(routes::RUN_IDENTITY_TOKEN, &a.member_run);
    let worker_off = h
        .post(&run_mint, Some(&a.member_run_token), &mint_body(STS, 600))
        .await
        .expect(403)
        .body;
    let bad_arn = h
        .put_settings(
            &a.admin.key,
            &json!({"hosts": {"aws_bedrock": {"enabled": true, "role_arn": "arn:aws:iam::123:role/x", "region": "us-east-1"}}}),
        )
        .await
        .expect(400)
        .body;
    // Sent as is (a wrong type is named before a missing field).
    let wrong_type = h
        .json(
            Method::PUT,
            routes::TEAM_LLM_SETTINGS,
            Some(&a.admin.key),
            &json!({"hosts": {"aws_bedrock": {"enabled": "yes"}}}),
        )
        .await
        .expect(400)
        .body;
    let duration = h
        .post(
            routes::IDENTITY_TOKEN,
            Some(&a.member.key),
            &mint_body(STS, 3601),
        )
        .await
        .expect(400)
        .body;
    let audience = h
        .post(
            routes::IDENTITY_TOKEN,
            Some(&a.member.key),
            &mint_body("example.com", 600),
        )
        .await
        .expect(422)
        .body;
    let not_found = h
        .get(
            &routes::fill(routes::AGENT_IDENTITY, "nope"),
            Some(&a.member.key),
        )
        .await
        .expect(404)
        .body;
    let too_large = h
        .send(
            Method::PUT,
            routes::TEAM_LLM_SETTINGS,
            Some(&a.admin.key),
            Some(vec![b' '; 1024 * 1024 + 1]),
        )
        .await
        .expect(413)
        .body;
    insta::assert_json_snapshot!(
        "error_bodies",
        json!({
            "401 no key": unauthenticated,
            "403 worker tokens off": worker_off,
            "400 role ARN": bad_arn,
            "400 wrong type": wrong_type,
            "400 duration": duration,
            "422 audience": audience,
            "404 agent": not_found,
            "413 body": too_large,
        }),
        // Every error body names its request (a fresh id each run).
        { ".*.error.request_id" => "[request_id]" }
    );
}
