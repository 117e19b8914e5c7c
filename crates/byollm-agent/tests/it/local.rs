//! `LocalChain` through aws-config: a profile whose `credential_process` hands
//! out expired credentials until the auth-refresh command has run.

use std::sync::Arc;

use secrecy::ExposeSecret as _;

use byollm_agent::{CredentialState, LocalChain, LocalChainConfig, LocalError};
use byollm_api::clock::{Clock as _, SystemClock, rfc3339_ms};

fn creds_json(expiration: &str, key: &str) -> String {
    format!(
        r#"{{"Version": 1, "AccessKeyId": "{key}", "SecretAccessKey": "local-secret",
            "SessionToken": "local-session", "Expiration": "{expiration}"}}"#
    )
}

fn setup(dir: &std::path::Path) -> std::path::PathBuf {
    std::fs::write(
        dir.join("creds.json"),
        creds_json("2001-01-01T00:00:00Z", "ASIAEXPIREDEXAMPLE"),
    )
    .unwrap();
    let later = rfc3339_ms(SystemClock.now_ms() + 3_600_000);
    std::fs::write(
        dir.join("fresh.json"),
        creds_json(&later, "ASIAFRESHEXAMPLE00"),
    )
    .unwrap();
    std::fs::write(dir.join("credentials"), "").unwrap();
    let config = dir.join("config");
    std::fs::write(
        &config,
        format!(
            "[profile dev]\nregion = eu-west-1\ncredential_process = cat {}\n",
            dir.join("creds.json").display()
        ),
    )
    .unwrap();
    config
}

#[tokio::test]
async fn expired_credentials_run_the_auth_refresh_command_then_reload() {
    let dir = tempfile::tempdir().unwrap();
    let config = setup(dir.path());
    let refresh = vec![
        "cp".to_owned(),
        dir.path().join("fresh.json").display().to_string(),
        dir.path().join("creds.json").display().to_string(),
    ];
    let chain = LocalChain::new(
        LocalChainConfig {
            profile: Some("dev".into()),
            refresh_command: Some(refresh),
            config_file: Some(config),
            credentials_file: Some(dir.path().join("credentials")),
            disabled: false,
        },
        Arc::new(SystemClock),
    );
    assert_eq!(chain.status().state, CredentialState::Missing);
    let c = chain.credentials().await.unwrap();
    assert_eq!(c.access_key_id, "ASIAFRESHEXAMPLE00");
    assert_eq!(c.secret_access_key.expose_secret(), "local-secret");
    assert_eq!(chain.region().as_deref(), Some("eu-west-1"));
    let status = chain.status();
    assert_eq!(status.state, CredentialState::Loaded, "{status}");
    assert!(status.message.contains("AWS profile `dev`"), "{status}");
    assert!(status.message.contains("expire in"), "{status}");
    assert!(!status.message.contains("local-secret"), "{status}");
}

#[tokio::test]
async fn expired_credentials_without_a_refresh_command_fail_with_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let config = setup(dir.path());
    let chain = LocalChain::new(
        LocalChainConfig {
            profile: Some("dev".into()),
            config_file: Some(config),
            credentials_file: Some(dir.path().join("credentials")),
            ..LocalChainConfig::default()
        },
        Arc::new(SystemClock),
    );
    let err = chain.credentials().await.unwrap_err();
    assert!(matches!(err, LocalError::Failed(_)), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("expired"), "{text}");
    assert!(text.contains("aws sso login --profile dev"), "{text}");
    assert_eq!(chain.status().state, CredentialState::Failed);
}

#[tokio::test]
async fn a_failing_refresh_command_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let config = setup(dir.path());
    let chain = LocalChain::new(
        LocalChainConfig {
            profile: Some("dev".into()),
            refresh_command: Some(vec!["false".into()]),
            config_file: Some(config),
            credentials_file: Some(dir.path().join("credentials")),
            disabled: false,
        },
        Arc::new(SystemClock),
    );
    let err = chain.credentials().await.unwrap_err();
    assert!(
        err.to_string()
            .contains("auth-refresh command `false` failed"),
        "{err}"
    );
    let status = chain.status();
    assert_eq!(status.state, CredentialState::Failed, "{status}");
}

#[tokio::test]
async fn a_disabled_chain_says_so() {
    let chain = LocalChain::new(
        LocalChainConfig {
            disabled: true,
            ..LocalChainConfig::default()
        },
        Arc::new(SystemClock),
    );
    assert_eq!(chain.status().state, CredentialState::Disabled);
    assert!(matches!(
        chain.credentials().await,
        Err(LocalError::Disabled)
    ));
}
