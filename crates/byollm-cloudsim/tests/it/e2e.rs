//! End to end with byollm's own issuer: a member mints an identity token over
//! HTTP, the emulator fetches the issuer's discovery document and JWKS through
//! `--resolve`, STS admits the member's subject, and Bedrock answers.

use std::sync::Arc;

use aws_sdk_bedrockruntime::types::{ContentBlock, ConversationRole, Message};
use byollm_api::clock::SystemClock;
use byollm_cloudsim::{Cloudsim, CloudsimConfig};
use byollm_core::config::CoreConfig;
use byollm_server::ServerConfig;
use serde_json::{Value, json};

use crate::common::{BROAD, bedrock_client, sts_client, to_creds};

const ISSUER: &str = "https://issuer.test";

#[tokio::test]
async fn byollm_issuer_token_to_bedrock() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = ServerConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        dir.path().to_owned(),
        CoreConfig::new(ISSUER),
    );
    let server = byollm_server::start(&cfg, Arc::new(SystemClock))
        .await
        .unwrap();
    let made = byollm_core::service::bootstrap_team(
        server.core.store(),
        server.core.clock().as_ref(),
        "acme",
        "owner@acme.test",
    )
    .await
    .unwrap();
    let resp: Value = reqwest::Client::new()
        .post(format!("http://{}/api/v1/identity-token", server.addr))
        .bearer_auth(made.api_key.expose())
        .json(&json!({"audience": "sts.amazonaws.com", "requested_duration_seconds": 900}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = resp["token"].as_str().expect("a token").to_owned();

    let sim = Cloudsim::start(CloudsimConfig {
        resolve: vec![("issuer.test".to_owned(), server.addr)],
        ..CloudsimConfig::default()
    })
    .await
    .unwrap();
    sim.create_oidc_provider(ISSUER, &["sts.amazonaws.com"])
        .unwrap();
    let subject = format!("scoped_principal:{}/user:{}", made.team_uid, made.owner_uid);
    let trust = json!({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow",
        "Principal": {"Federated": "arn:aws:iam::123456789012:oidc-provider/issuer.test"},
        "Action": "sts:AssumeRoleWithWebIdentity",
        "Condition": {"StringEquals": {"issuer.test:aud": "sts.amazonaws.com"},
                      "StringLike": {"issuer.test:sub": format!("scoped_principal:{}/*", made.team_uid)}}}]});
    let role = sim
        .create_role("byollm-bedrock", &trust.to_string(), None)
        .unwrap();
    sim.put_role_policy("byollm-bedrock", "invoke", BROAD)
        .unwrap();

    let out = sts_client(&sim)
        .assume_role_with_web_identity()
        .role_arn(role)
        .role_session_name(format!("byollm-user-{}", made.owner_uid))
        .web_identity_token(token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        out.subject_from_web_identity_token(),
        Some(subject.as_str())
    );
    let reply = bedrock_client(&sim, "us-east-1", to_creds(out.credentials().unwrap()))
        .converse()
        .model_id("global.anthropic.claude-sonnet-4-6")
        .messages(
            Message::builder()
                .role(ConversationRole::User)
                .content(ContentBlock::Text("from the issuer".into()))
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let text = reply.output().unwrap().as_message().unwrap().content()[0]
        .as_text()
        .unwrap()
        .clone();
    assert_eq!(text, "from the issuer");
    sim.shutdown().await;
    server.shutdown().await;
}
