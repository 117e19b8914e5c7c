//! The emulator's STS and IAM Credentials against Google's own client
//! library: `google-auth`'s `identity_pool.Credentials` with a file-sourced
//! token and `token_url` (and the impersonation URL) at the emulator
//! (gcp-facts §5.1). The access tokens it obtains then call Vertex AI.

use std::process::Command;

use byollm_cloudsim::gcp::{Binding, WORKLOAD_IDENTITY_USER};
use serde_json::{Value, json};

use crate::common::ALICE;

const SCRIPT: &str = r#"
import json, sys
from google.auth import identity_pool
from google.auth.transport.requests import Request
info = json.loads(sys.argv[1])
creds = identity_pool.Credentials.from_info(info, scopes=["https://www.googleapis.com/auth/cloud-platform"])
try:
    creds.refresh(Request())
    print(json.dumps({"token": creds.token}))
except Exception as e:
    print(json.dumps({"error": str(e)}))
"#;

fn google_auth(info: &Value) -> Value {
    let out = Command::new("python3")
        .args(["-c", SCRIPT, &info.to_string()])
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON line")
}

fn have_google_auth() -> bool {
    Command::new("python3")
        .args(["-c", "import google.auth, requests"])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[tokio::test]
async fn google_auth_identity_pool_credentials_exchange_at_the_emulator() {
    if !byollm_core::testing::require(
        "google_auth_identity_pool_credentials_exchange_at_the_emulator",
        "the Python google-auth library (pip install google-auth)",
        have_google_auth(),
    ) {
        return;
    }
    let g = super::gcp::Gcp::new().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token.jwt");
    std::fs::write(&file, secrecy::ExposeSecret::expose_secret(&g.token(ALICE))).unwrap();
    let endpoint = g.w.sim.endpoint_url();
    let info = json!({
        "type": "external_account",
        "audience": super::gcp::AUD,
        "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
        "token_url": format!("{endpoint}/v1/token"),
        "credential_source": {"file": file, "format": {"type": "text"}},
    });
    // The blocking Python call runs off the runtime so the emulator can answer.
    let direct = tokio::task::spawn_blocking({
        let info = info.clone();
        move || google_auth(&info)
    })
    .await
    .unwrap();
    let token = direct["token"]
        .as_str()
        .unwrap_or_else(|| panic!("{direct}"));
    assert!(token.starts_with("ya29.awsim-fed-"), "{token}");
    let (status, text) = g
        .predict(
            token,
            "rawPredict",
            &super::gcp::body("hi from google-auth"),
        )
        .await;
    assert_eq!(status, 200, "{text}");

    // Impersonation through the library's own URL handling.
    g.w.sim.gcp().add_service_account("acme-ml-prod", "vertex");
    g.w.sim.gcp().add_binding(Binding {
        resource: format!("serviceAccounts/{}", super::gcp::SA),
        role: WORKLOAD_IDENTITY_USER.into(),
        member: format!("principal:{}/subject/{ALICE}", super::gcp::POOL),
    });
    let mut via_sa = info;
    via_sa["service_account_impersonation_url"] = json!(format!(
        "{endpoint}/v1/projects/-/serviceAccounts/{}:generateAccessToken",
        super::gcp::SA
    ));
    let sa = tokio::task::spawn_blocking(move || google_auth(&via_sa))
        .await
        .unwrap();
    let token = sa["token"].as_str().unwrap_or_else(|| panic!("{sa}"));
    assert!(token.starts_with("ya29.awsim-sa-"), "{token}");

    // A token the condition refuses surfaces Google's words in the library.
    std::fs::write(
        &file,
        secrecy::ExposeSecret::expose_secret(&g.token("scoped_principal:team2/user:eve")),
    )
    .unwrap();
    let info = json!({
        "type": "external_account",
        "audience": super::gcp::AUD,
        "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
        "token_url": format!("{endpoint}/v1/token"),
        "credential_source": {"file": file, "format": {"type": "text"}},
    });
    let refused = tokio::task::spawn_blocking(move || google_auth(&info))
        .await
        .unwrap();
    let e = refused["error"]
        .as_str()
        .unwrap_or_else(|| panic!("{refused}"));
    assert!(e.contains("unauthorized_client"), "{e}");
    assert!(e.contains("rejected by the attribute condition"), "{e}");
}
