//! Azure on the emulator, driven by byollm's own Entra client
//! (`byollm_federation::azure::EntraTokenEndpoint`, the one production uses)
//! and raw HTTP for the wire shapes: the client-assertion grant checked
//! against the identity's federated identity credentials (exact issuer,
//! subject and audience), RS256 only, the kid in the issuer's JWKS, the time
//! range; Entra's `AADSTS` codes; and the broker's one exchange per window.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use byollm_api::clock::Clock as _;
use byollm_api::types::Actor;
use byollm_cloudsim::azure::{AzureIdentity, Fic};
use byollm_core::broker::{BrokerKey, CloudCredentials, CloudTarget, CredentialsBroker};
use byollm_federation::azure::{
    COGNITIVE_SERVICES_SCOPE, EntraRetry, EntraTarget, EntraTokenEndpoint, aadsts_code,
};
use byollm_federation::{ErrorClass, Exchange as _, ExchangeError};
use secrecy::{ExposeSecret as _, SecretString};
use serde_json::{Value, json};

use crate::common::{ALICE, FAKE_ISSUER, Key, World};

pub(crate) const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
pub(crate) const CLIENT: &str = "0d3c1f2e-5b6a-4c8d-9e0f-1a2b3c4d5e6f";
pub(crate) const AUD: &str = "api://AzureADTokenExchange";
pub(crate) const TEAM: &str = "scoped_principal:team1";
const USERS: &str = "scoped_principal:team1/user";

pub(crate) struct Azure {
    pub(crate) w: World,
    rsa: Key,
    pub(crate) entra: EntraTokenEndpoint,
}

/// The Python prelude the SDK tests share: `token()` posts the client
/// assertion (`$ASSERTION`) to the emulator's Entra (`$SIM`, `$TENANT`,
/// `$CLIENT`) and returns the access token, as an `azure_ad_token_provider`
/// would (azure-identity itself insists on https, facts §5.4).
pub(crate) const PY_ENTRA_TOKEN: &str = r#"
import json, os, urllib.parse, urllib.request
sim, tenant, client = os.environ["SIM"], os.environ["TENANT"], os.environ["CLIENT"]
calls = []
def token():
    form = urllib.parse.urlencode({
        "client_id": client, "grant_type": "client_credentials",
        "scope": "https://cognitiveservices.azure.com/.default",
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": os.environ["ASSERTION"]}).encode()
    with urllib.request.urlopen(f"{sim}/{tenant}/oauth2/v2.0/token", form) as r:
        calls.append(1)
        return json.load(r)["access_token"]
"#;

impl Azure {
    /// Runs `script` after [`PY_ENTRA_TOKEN`] with `subject`'s identity
    /// token as the assertion, off the runtime so the emulator can answer;
    /// panics with Python's output unless it exits 0, and returns stdout.
    pub(crate) async fn run_python(&self, subject: &str, script: &str) -> String {
        use secrecy::ExposeSecret as _;
        let assertion = self.token(subject).expose_secret().to_owned();
        let endpoint = self.w.sim.endpoint_url();
        let program = format!("{PY_ENTRA_TOKEN}{script}");
        let out = tokio::task::spawn_blocking(move || {
            std::process::Command::new("python3")
                .args(["-c", &program])
                .env("SIM", endpoint)
                .env("TENANT", TENANT)
                .env("CLIENT", CLIENT)
                .env("ASSERTION", assertion)
                .output()
                .unwrap()
        })
        .await
        .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "python failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }

    /// The world with an RS256 key `r1` beside its ES256 `k1`, and one
    /// identity with an FIC for each subject in `subjects`.
    pub(crate) async fn new(subjects: &[&str]) -> Azure {
        let w = World::new().await;
        let rsa = Key::rsa("RS256", Some("r1"));
        w.issuer.jwks.lock().push(rsa.jwk());
        w.sim
            .azure()
            .create_identity(AzureIdentity {
                tenant_id: TENANT.into(),
                client_id: CLIENT.into(),
                name: "byollm-uami".into(),
            })
            .unwrap();
        for (i, sub) in subjects.iter().enumerate() {
            w.sim
                .azure()
                .add_fic(
                    Fic {
                        client_id: CLIENT.into(),
                        name: format!("fic-{i}"),
                        issuer: FAKE_ISSUER.into(),
                        subject: (*sub).to_owned(),
                        audiences: vec![AUD.into()],
                    },
                    w.clock.now(),
                )
                .unwrap();
        }
        let clock = w.clock.clone();
        let entra =
            EntraTokenEndpoint::new(Some(w.sim.endpoint_url()), Arc::new(move || clock.now_ms()))
                .with_retry(EntraRetry {
                    attempts: 0,
                    delay: Duration::ZERO,
                });
        Azure { w, rsa, entra }
    }

    fn claims(&self, sub: &str, aud: &str) -> Value {
        let now = self.w.clock.now();
        json!({"iss": FAKE_ISSUER, "sub": sub, "aud": aud, "iat": now, "nbf": now - 30,
               "exp": now + 600, "team_uid": "team1", "actor_type": "user"})
    }

    pub(crate) fn token(&self, sub: &str) -> SecretString {
        SecretString::from(self.rsa.sign(&self.claims(sub, AUD)))
    }

    pub(crate) fn target() -> EntraTarget {
        EntraTarget {
            tenant_id: TENANT.into(),
            client_id: CLIENT.into(),
            scope: COGNITIVE_SERVICES_SCOPE.into(),
        }
    }

    async fn refused(&self, token: &SecretString) -> (u32, ExchangeError) {
        let e = self
            .entra
            .exchange(token, &Azure::target())
            .await
            .unwrap_err();
        (
            aadsts_code(&e).unwrap_or_else(|| panic!("no AADSTS code: {e}")),
            e,
        )
    }
}

#[tokio::test]
async fn each_subject_granularity_exchanges_through_its_fic() {
    let az = Azure::new(&[TEAM, USERS, ALICE]).await;
    for sub in [TEAM, USERS, ALICE] {
        let t = az
            .entra
            .exchange(&az.token(sub), &Azure::target())
            .await
            .unwrap();
        assert_eq!(t.expires_at_ms, az.w.clock.now_ms() + 3_599_000, "{sub}");
        let issued = az.w.sim.azure().token(t.token.expose_secret()).unwrap();
        assert_eq!(issued.client_id, CLIENT);
        assert_eq!(issued.tenant_id, TENANT);
        assert_eq!(issued.subject, sub);
        assert_eq!(issued.scope, COGNITIVE_SERVICES_SCOPE);
        assert!(!format!("{t:?}").contains(t.token.expose_secret()));
    }
    assert_eq!(az.w.sim.call_count("azure:entra.token"), 3);
}

#[tokio::test]
async fn refusals_carry_entras_exact_codes() {
    let az = Azure::new(&[TEAM]).await;
    // A subject no FIC names (case matters, no wildcards).
    let (code, e) = az.refused(&az.token("scoped_principal:TEAM1")).await;
    assert_eq!(code, 700_213, "{e}");
    assert_eq!(e.class(), ErrorClass::Refused);
    assert!(
        e.to_string()
            .contains("presented assertion subject 'scoped_principal:TEAM1'")
    );
    let (code, _) = az.refused(&az.token("scoped_principal:team1/*")).await;
    assert_eq!(code, 700_213, "a wildcard is a literal subject");
    // ES256, which Entra refuses in practice.
    let es = SecretString::from(az.w.key.sign(&az.claims(TEAM, AUD)));
    let (code, e) = az.refused(&es).await;
    assert_eq!(code, 5_002_738);
    assert!(
        e.to_string()
            .contains("Invalid JWT token. 'ES256' is not a supported signature algorithm."),
        "{e}"
    );
    // Another audience.
    let sts = SecretString::from(az.rsa.sign(&az.claims(TEAM, "sts.amazonaws.com")));
    let (code, _) = az.refused(&sts).await;
    assert_eq!(code, 700_212);
    // Another issuer.
    let mut other = az.claims(TEAM, AUD);
    other["iss"] = json!("https://other.test");
    let (code, _) = az.refused(&SecretString::from(az.rsa.sign(&other))).await;
    assert_eq!(code, 700_211);
    // A kid the JWKS does not hold (a key not yet published).
    let unpublished = Key::rsa("RS256", Some("r-new"));
    let t = SecretString::from(unpublished.sign(&az.claims(TEAM, AUD)));
    let (code, e) = az.refused(&t).await;
    assert_eq!(code, 7_000_272);
    assert_eq!(e.class(), ErrorClass::RetryLater);
    // Out of its time range.
    let mut old = az.claims(TEAM, AUD);
    old["exp"] = json!(az.w.clock.now() - 1);
    let (code, e) = az.refused(&SecretString::from(az.rsa.sign(&old))).await;
    assert_eq!(code, 700_024);
    assert_eq!(e.class(), ErrorClass::ReMint);
    // Nothing was issued for any of them.
    assert_eq!(az.w.sim.azure().issued_count(), 0);
}

#[tokio::test]
async fn no_matching_fic_is_retried_briefly_then_reported() {
    // An identity whose FIC is not applied yet.
    let az = Azure::new(&[]).await;
    let entra = az.entra.clone().with_retry(EntraRetry {
        attempts: 2,
        delay: Duration::from_millis(20),
    });
    let e = entra
        .exchange(&az.token(TEAM), &Azure::target())
        .await
        .unwrap_err();
    assert_eq!(aadsts_code(&e), Some(70021), "{e}");
    assert!(
        e.to_string()
            .contains("Assertion Subject: 'scoped_principal:team1'")
    );
    assert_eq!(az.w.sim.call_count("azure:entra.token"), 3, "tried 3 times");
    // Other refusals are not retried.
    let es = SecretString::from(az.w.key.sign(&az.claims(TEAM, AUD)));
    az.w.sim
        .azure()
        .add_fic(
            Fic {
                client_id: CLIENT.into(),
                name: "team".into(),
                issuer: FAKE_ISSUER.into(),
                subject: TEAM.into(),
                audiences: vec![AUD.into()],
            },
            az.w.clock.now(),
        )
        .unwrap();
    let e = entra.exchange(&es, &Azure::target()).await.unwrap_err();
    assert_eq!(aadsts_code(&e), Some(5_002_738));
    assert_eq!(az.w.sim.call_count("azure:entra.token"), 4);
}

#[tokio::test]
async fn the_wire_is_entras() {
    let az = Azure::new(&[TEAM]).await;
    let http = reqwest::Client::new();
    let url = format!("{}/{TENANT}/oauth2/v2.0/token", az.w.sim.endpoint_url());
    let es = az.w.key.sign(&az.claims(TEAM, AUD));
    let form = |assertion: &str, client: &str| {
        vec![
            ("client_id", client.to_owned()),
            ("grant_type", "client_credentials".to_owned()),
            ("scope", COGNITIVE_SERVICES_SCOPE.to_owned()),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".to_owned(),
            ),
            ("client_assertion", assertion.to_owned()),
        ]
    };
    let r = http
        .post(&url)
        .form(&form(&es, CLIENT))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"], "invalid_client");
    assert_eq!(v["error_codes"], json!([5_002_738]));
    assert_eq!(
        v["error_uri"],
        "https://login.microsoftonline.com/error?code=5002738"
    );
    let d = v["error_description"].as_str().unwrap();
    assert!(
        d.starts_with("AADSTS5002738: Invalid JWT token. 'ES256' is not a supported signature algorithm. Trace ID: "),
        "{d}"
    );
    assert!(d.contains(" Correlation ID: ") && d.contains(" Timestamp: "));
    // An unknown client in a known tenant; an unknown tenant.
    let rs = az.rsa.sign(&az.claims(TEAM, AUD));
    let r = http
        .post(&url)
        .form(&form(&rs, "11111111-2222-3333-4444-555555555555"))
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error_codes"], json!([700_016]));
    let other = format!(
        "{}/00000000-0000-0000-0000-000000000000/oauth2/v2.0/token",
        az.w.sim.endpoint_url()
    );
    let r = http
        .post(&other)
        .form(&form(&rs, CLIENT))
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error_codes"], json!([90002]));
    // Success: Entra's fields.
    let r = http
        .post(&url)
        .form(&form(&rs, CLIENT))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["token_type"], "Bearer");
    assert_eq!(v["expires_in"], 3599);
    assert!(v["access_token"].as_str().unwrap().len() > 40);
    // The admin route makes identities and FICs too, with Azure's checks.
    let admin = |what: &str, body: Value| {
        let http = http.clone();
        let url = format!("{}/_awsim/azure/{what}", az.w.sim.endpoint_url());
        async move {
            let r = http.post(url).json(&body).send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let (s, _) = admin(
        "identities",
        json!({"tenantId": TENANT, "clientId": "c2", "name": "second"}),
    )
    .await;
    assert_eq!(s, 200);
    let (s, v) = admin(
        "fics",
        json!({"clientId": "c2", "name": "two", "issuer": FAKE_ISSUER, "subject": TEAM,
               "audiences": [AUD, "api://other"]}),
    )
    .await;
    assert_eq!(s, 400);
    assert_eq!(
        v["error"]["message"],
        "Federated identity credentials must have exactly one audience."
    );
    assert!(az.w.sim.azure().fics("c2").is_empty());
}

/// The broker's rules hold for Entra tokens: one exchange per key per
/// window, a refresh ahead of expiry, dropped with the run.
#[tokio::test]
async fn the_broker_exchanges_once_per_window() {
    let az = Azure::new(&[TEAM]).await;
    az.w.sim
        .faults()
        .set_credential_lifetime(Some(Duration::from_secs(60)));
    let clock = az.w.clock.clone();
    let sts = Arc::new(byollm_federation::aws::Sts::new(Some(
        az.w.sim.endpoint_url(),
    )));
    let broker = Arc::new(
        CredentialsBroker::new(sts, clock.clone(), 10.0, 10.0)
            .with_azure(Arc::new(az.entra.clone())),
    );
    let key = BrokerKey {
        team_uid: "team1".into(),
        actor: Actor {
            actor_type: byollm_api::types::ActorType::User,
            uid: "alice".into(),
        },
        target: CloudTarget::Azure(Azure::target()),
        run_id: Some("r1".into()),
    };
    let mints = Arc::new(AtomicU32::new(0));
    let assertion = az.token(TEAM).expose_secret().to_owned();
    let get = || {
        let (broker, key, mints, assertion) = (
            broker.clone(),
            key.clone(),
            mints.clone(),
            assertion.clone(),
        );
        async move {
            let c = broker
                .credentials(&key, "unused", move || async move {
                    mints.fetch_add(1, Ordering::SeqCst);
                    Ok(SecretString::from(assertion))
                })
                .await
                .unwrap();
            match c.credentials() {
                CloudCredentials::Azure(t) => t.token.expose_secret().to_owned(),
                other => panic!("{other:?} for an Azure key"),
            }
        }
    };
    let first = get().await;
    for _ in 0..5 {
        assert_eq!(get().await, first);
    }
    assert_eq!(
        az.w.sim.call_count("azure:entra.token"),
        1,
        "one per window"
    );
    assert_eq!(mints.load(Ordering::SeqCst), 1);
    // Past the refresh point (before expiry): a new exchange, a new token.
    clock.advance(Duration::from_secs(55));
    let _ = get().await;
    broker.close().await;
    let second = get().await;
    assert_ne!(second, first);
    assert_eq!(az.w.sim.call_count("azure:entra.token"), 2);
    assert_eq!(broker.drop_run("team1", "r1"), 1);
    assert!(broker.is_empty());
}
