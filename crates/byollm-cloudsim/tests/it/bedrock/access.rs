//! Who may call what: signatures, sessions, profiles and their regions,
//! on-demand support.

use aws_sdk_bedrockruntime::error::ProvideErrorMetadata as _;
use serde_json::json;

use super::*;
use crate::common::*;

#[tokio::test]
async fn expired_session_credentials() {
    let w = World::new().await;
    let c = w.bedrock("us-east-1").await;
    converse(&c, SONNET46_GLOBAL, "ok").await.unwrap();
    w.sim.expire_sessions();
    let err = converse(&c, SONNET46_GLOBAL, "ok").await.unwrap_err();
    assert_eq!(err.code(), Some("ExpiredTokenException"));
    assert_eq!(
        err.message(),
        Some("The security token included in the request is expired")
    );
    assert_eq!(err.raw_response().unwrap().status().as_u16(), 403);
}

#[tokio::test]
async fn bad_signature_and_unknown_keys() {
    let w = World::new().await;
    let creds = w.creds().await;
    let forged = aws_credential_types::Credentials::new(
        creds.access_key_id(),
        "wrong-secret",
        creds.session_token().map(str::to_owned),
        None,
        "t",
    );
    let err = converse(
        &bedrock_client(&w.sim, "us-east-1", forged),
        SONNET46_GLOBAL,
        "x",
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Some("InvalidSignatureException"));
    let no_token = aws_credential_types::Credentials::new(
        creds.access_key_id(),
        creds.secret_access_key(),
        None,
        None,
        "t",
    );
    let err = converse(
        &bedrock_client(&w.sim, "us-east-1", no_token),
        SONNET46_GLOBAL,
        "x",
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Some("UnrecognizedClientException"));
    assert_eq!(
        err.message(),
        Some("The security token included in the request is invalid.")
    );
    // The admin is the account's administrator.
    converse(
        &bedrock_client(&w.sim, "us-east-1", admin(&w.sim)),
        SONNET46_GLOBAL,
        "x",
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn geographic_profile_needs_every_destination_region() {
    let w = World::new().await;
    let profile = format!("arn:aws:bedrock:us-east-1:123456789012:inference-profile/{SONNET45_US}");
    let fm = |r: &str| {
        format!("arn:aws:bedrock:{r}::foundation-model/anthropic.claude-sonnet-4-5-20250929-v1:0")
    };
    let policy = |regions: &[&str]| {
        json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "bedrock:InvokeModel", "Resource": profile},
            {"Effect": "Allow", "Action": "bedrock:InvokeModel",
             "Resource": regions.iter().map(|r| fm(r)).collect::<Vec<_>>(),
             "Condition": {"StringEquals": {"bedrock:InferenceProfileArn": profile}}}]})
        .to_string()
    };
    w.sim
        .put_role_policy(ROLE, "bedrock", &policy(&["us-east-1", "us-east-2"]))
        .unwrap();
    let c = w.bedrock("us-east-1").await;
    let err = converse(&c, SONNET45_US, "x").await.unwrap_err();
    assert_eq!(err.code(), Some("AccessDeniedException"));
    assert_eq!(
        err.message().unwrap(),
        format!(
            "User: arn:aws:sts::123456789012:assumed-role/byollm-bedrock/byollm-user-alice is not authorized to perform: bedrock:InvokeModel on resource: {} because no identity-based policy allows the bedrock:InvokeModel action",
            fm("us-west-2")
        )
    );
    assert!(matches!(
        err.into_service_error(),
        ConverseError::AccessDeniedException(_)
    ));
    w.sim
        .put_role_policy(
            ROLE,
            "bedrock",
            &policy(&["us-east-1", "us-east-2", "us-west-2"]),
        )
        .unwrap();
    converse(&c, SONNET45_US, "x").await.unwrap();
    // ConverseStream needs the streaming action, which this policy lacks.
    let err = c
        .converse_stream()
        .model_id(SONNET45_US)
        .messages(user("x"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("AccessDeniedException"));
    assert!(err.message().unwrap().contains("bedrock:InvokeModelWithResponseStream on resource: arn:aws:bedrock:us-east-1:123456789012:inference-profile/"));
}

#[tokio::test]
async fn global_profile_needs_the_region_less_arn() {
    let w = World::new().await;
    let profile = "arn:aws:bedrock:us-east-1:123456789012:inference-profile/global.anthropic.claude-sonnet-4-6";
    let statements = |with_global: bool| {
        let mut s = vec![
            json!({"Effect": "Allow", "Action": "bedrock:InvokeModel", "Resource": profile,
                   "Condition": {"StringEquals": {"aws:RequestedRegion": "us-east-1"}}}),
            json!({"Effect": "Allow", "Action": "bedrock:InvokeModel",
                   "Resource": "arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-sonnet-4-6",
                   "Condition": {"StringEquals": {"aws:RequestedRegion": "us-east-1", "bedrock:InferenceProfileArn": profile}}}),
        ];
        if with_global {
            s.push(json!({"Effect": "Allow", "Action": "bedrock:InvokeModel",
                   "Resource": "arn:aws:bedrock:::foundation-model/anthropic.claude-sonnet-4-6",
                   "Condition": {"StringEquals": {"aws:RequestedRegion": "unspecified", "bedrock:InferenceProfileArn": profile}}}));
        }
        json!({"Version": "2012-10-17", "Statement": s}).to_string()
    };
    w.sim
        .put_role_policy(ROLE, "bedrock", &statements(false))
        .unwrap();
    let c = w.bedrock("us-east-1").await;
    let err = converse(&c, SONNET46_GLOBAL, "x").await.unwrap_err();
    assert!(
        err.message().unwrap().contains(
            "on resource: arn:aws:bedrock:::foundation-model/anthropic.claude-sonnet-4-6 because"
        ),
        "{:?}",
        err.message()
    );
    w.sim
        .put_role_policy(ROLE, "bedrock", &statements(true))
        .unwrap();
    converse(&c, SONNET46_GLOBAL, "x").await.unwrap();
    // The same policy does not cover another source region.
    let c2 = w.bedrock("us-west-2").await;
    assert_eq!(
        converse(&c2, SONNET46_GLOBAL, "x")
            .await
            .unwrap_err()
            .code(),
        Some("AccessDeniedException")
    );
}

#[tokio::test]
async fn bare_claude_4_id_needs_a_profile() {
    let w = World::new().await;
    let c = w.bedrock("us-east-1").await;
    let err = converse(&c, "anthropic.claude-sonnet-4-6", "x")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("ValidationException"));
    assert_eq!(
        err.message(),
        Some(
            "Invocation of model ID anthropic.claude-sonnet-4-6 with on-demand throughput isn't supported. Retry your request with the ID or ARN of an inference profile that contains this model."
        )
    );
    assert!(matches!(
        err.into_service_error(),
        ConverseError::ValidationException(_)
    ));
    // Claude 3.7 is invocable on demand where it is offered.
    converse(&c, "anthropic.claude-3-7-sonnet-20250219-v1:0", "x")
        .await
        .unwrap();
    // Unknown ids, and profiles of another geography.
    for bad in [
        "anthropic.claude-nope-v1:0",
        "eu.anthropic.claude-sonnet-4-6",
        "apac.anthropic.claude-sonnet-4-6",
    ] {
        let err = converse(&c, bad, "x").await.unwrap_err();
        assert_eq!(
            err.message(),
            Some("The provided model identifier is invalid."),
            "{bad}"
        );
    }
    // The profile ARN works as a model id.
    converse(
        &c,
        "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-sonnet-4-6",
        "x",
    )
    .await
    .unwrap();
}
