//! IAM seeding through the library API: validation and errors as IAM answers
//! them (the wire protocol is exercised by the AWS CLI in crates/byollm).

use byollm_cloudsim::{Cloudsim, CloudsimConfig};

use crate::common::{ALICE, trust};

#[tokio::test]
async fn iam_validation_and_errors() {
    let sim = Cloudsim::start(CloudsimConfig::default()).await.unwrap();
    let arn = sim
        .create_oidc_provider("https://issuer.test", &["sts.amazonaws.com"])
        .unwrap();
    assert_eq!(arn, "arn:aws:iam::123456789012:oidc-provider/issuer.test");
    let e = sim
        .create_oidc_provider("https://issuer.test", &["x"])
        .unwrap_err();
    assert_eq!((e.status, e.code.as_str()), (409, "EntityAlreadyExists"));
    let e = sim
        .create_oidc_provider("http://issuer.test", &["x"])
        .unwrap_err();
    assert_eq!(e.code, "InvalidInput");
    sim.add_client_id_to_oidc_provider(&arn, "api://other")
        .unwrap();
    sim.add_client_id_to_oidc_provider(&arn, "api://other")
        .unwrap();

    let doc = trust(ALICE, &["sts:AssumeRoleWithWebIdentity"]);
    let role = sim.create_role("agent", &doc, Some(7200)).unwrap();
    assert_eq!(role, "arn:aws:iam::123456789012:role/agent");
    let e = sim.create_role("AGENT", &doc, None).unwrap_err();
    assert_eq!((e.status, e.code.as_str()), (409, "EntityAlreadyExists"));
    let e = sim.create_role("bad name", &doc, None).unwrap_err();
    assert_eq!(e.code, "ValidationError");
    assert_eq!(
        e.message,
        "1 validation error detected: Value 'bad name' at 'roleName' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\w+=,.@-]+"
    );
    let e = sim.create_role("r2", &doc, Some(60)).unwrap_err();
    assert!(
        e.message
            .contains("Member must have value greater than or equal to 3600"),
        "{}",
        e.message
    );
    let e = sim
        .create_role("r3", "{\"Statement\": 1}", None)
        .unwrap_err();
    assert_eq!(e.code, "MalformedPolicyDocument");
    // A permissions policy is an identity policy: a Principal is refused.
    let e = sim.put_role_policy("agent", "p", &doc).unwrap_err();
    assert_eq!(e.code, "MalformedPolicyDocument");
    let e = sim
        .put_role_policy("nobody", "p", crate::common::BROAD)
        .unwrap_err();
    assert_eq!(
        (e.status, e.code.as_str(), e.message.as_str()),
        (
            404,
            "NoSuchEntity",
            "The role with name nobody cannot be found."
        )
    );
    sim.put_role_policy("agent", "p", crate::common::BROAD)
        .unwrap();
    let e = sim.delete_role("agent").unwrap_err();
    assert_eq!(e.code, "DeleteConflict");
    sim.delete_role_policy("agent", "p").unwrap();
    sim.delete_role("agent").unwrap();
}

#[tokio::test]
async fn configuration_is_validated() {
    for cfg in [
        CloudsimConfig {
            account_id: "12".into(),
            ..CloudsimConfig::default()
        },
        CloudsimConfig {
            regions: vec![],
            ..CloudsimConfig::default()
        },
        CloudsimConfig {
            regions: vec!["US-EAST-1".into()],
            ..CloudsimConfig::default()
        },
        CloudsimConfig {
            admin_access_key_id: "ASIAAAAAAAAAAAAAAAAA".into(),
            ..CloudsimConfig::default()
        },
    ] {
        assert!(Cloudsim::start(cfg).await.is_err());
    }
    let sim = Cloudsim::start(CloudsimConfig {
        regions: vec!["us-gov-west-1".into(), "eu-west-3".into()],
        ..CloudsimConfig::default()
    })
    .await
    .unwrap();
    sim.faults().disable_model("eu-west-3", "claude-sonnet-4-6");
    assert_eq!(
        sim.faults().view().disabled_models,
        vec![(
            "eu-west-3".to_owned(),
            "anthropic.claude-sonnet-4-6".to_owned()
        )]
    );
}
