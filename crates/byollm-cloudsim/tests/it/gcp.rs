//! Google Cloud on the emulator, driven by byollm's own Google client
//! (`byollm_federation::gcp::GoogleSts`, the one production uses) and raw HTTP
//! for the wire shapes: STS with real JWT checks against the issuer's JWKS,
//! the attribute mapping and condition in CEL, IAM bindings on every Vertex
//! call, impersonation, and Claude's `:rawPredict` / `:streamRawPredict`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use byollm_api::clock::Clock as _;
use byollm_cloudsim::gcp::{AIPLATFORM_USER, Binding, GcpProvider, WORKLOAD_IDENTITY_USER};
use byollm_federation::gcp::{GoogleSts, PoolTarget};
use byollm_federation::{ErrorClass, Exchange as _, ExchangeError};
use secrecy::{ExposeSecret as _, SecretString};
use serde_json::{Value, json};

use crate::common::{ALICE, FAKE_ISSUER, Key, World};

pub(crate) const AUD: &str = "//iam.googleapis.com/projects/123456789012/locations/global/workloadIdentityPools/byollm-pool/providers/byollm-issuer";
pub(crate) const POOL: &str =
    "//iam.googleapis.com/projects/123456789012/locations/global/workloadIdentityPools/byollm-pool";
const PROJECT: &str = "acme-ml-prod";
pub(crate) const SA: &str = "vertex@acme-ml-prod.iam.gserviceaccount.com";
const TEAM2: &str = "scoped_principal:team2/user:mallory";

fn provider(condition: Option<&str>) -> GcpProvider {
    GcpProvider {
        project_number: "123456789012".into(),
        pool_id: "byollm-pool".into(),
        provider_id: "byollm-issuer".into(),
        issuer_uri: FAKE_ISSUER.into(),
        allowed_audiences: vec![],
        attribute_mapping: BTreeMap::from([
            ("google.subject".into(), "assertion.sub".into()),
            (
                "attribute.team".into(),
                "assertion.sub.extract('scoped_principal:{team}/')".into(),
            ),
        ]),
        attribute_condition: condition.map(str::to_owned),
        disabled: false,
    }
}

pub(crate) struct Gcp {
    pub(crate) w: World,
    pub(crate) sts: GoogleSts,
    pub(crate) http: reqwest::Client,
}

impl Gcp {
    /// The world, a provider admitting team1 only, and Vertex granted to team1.
    pub(crate) async fn new() -> Gcp {
        let w = World::new().await;
        w.sim
            .gcp()
            .create_provider(provider(Some(
                "assertion.sub.startsWith('scoped_principal:team1/')",
            )))
            .unwrap();
        w.sim.gcp().add_binding(Binding {
            resource: format!("projects/{PROJECT}"),
            role: AIPLATFORM_USER.into(),
            member: format!("principalSet:{POOL}/attribute.team/team1"),
        });
        let clock = w.clock.clone();
        let sts = GoogleSts::new(Some(w.sim.endpoint_url()), Arc::new(move || clock.now_ms()));
        Gcp {
            w,
            sts,
            http: reqwest::Client::new(),
        }
    }

    /// Claims for the provider, timed by the emulator's clock (whose time
    /// only the test moves).
    fn claims(&self, sub: &str) -> Value {
        let now = self.w.clock.now();
        json!({"iss": FAKE_ISSUER, "sub": sub, "aud": AUD, "iat": now - 5, "nbf": now - 5,
               "exp": now + 600, "team": "team1", "actor_type": "user"})
    }

    pub(crate) fn token(&self, sub: &str) -> SecretString {
        SecretString::from(self.w.key.sign(&self.claims(sub)))
    }

    fn url(&self, model: &str, verb: &str) -> String {
        format!(
            "{}/v1/projects/{PROJECT}/locations/us-east5/publishers/anthropic/models/{model}:{verb}",
            self.w.sim.endpoint_url()
        )
    }

    pub(crate) async fn predict(&self, bearer: &str, verb: &str, body: &Value) -> (u16, String) {
        let r = self
            .http
            .post(self.url("claude-sonnet-4-5@20250929", verb))
            .bearer_auth(bearer)
            .json(body)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    async fn form(&self, pairs: &[(&str, &str)], auth: bool) -> (u16, Value) {
        let mut req = self
            .http
            .post(format!("{}/v1/token", self.w.sim.endpoint_url()))
            .form(pairs);
        if auth {
            req = req.bearer_auth("x");
        }
        let r = req.send().await.unwrap();
        (r.status().as_u16(), r.json().await.unwrap())
    }
}

pub(crate) fn body(text: &str) -> Value {
    json!({"anthropic_version": "vertex-2023-10-16", "max_tokens": 64,
           "messages": [{"role": "user", "content": text}]})
}

fn refused(e: &ExchangeError) -> &str {
    assert_eq!(e.class(), ErrorClass::Refused, "{e}");
    match e {
        ExchangeError::Cloud { message, .. } => message,
        other => panic!("not a cloud error: {other}"),
    }
}

#[tokio::test]
async fn a_team_token_reaches_claude_through_the_pool() {
    let g = Gcp::new().await;
    let target = PoolTarget {
        audience: AUD.into(),
        service_account: None,
    };
    let t = g.sts.exchange(&g.token(ALICE), &target).await.unwrap();
    assert!(!t.impersonated);
    let left = t.expires_at_ms - g.w.clock.now_ms();
    assert!((3_590_000..=3_600_000).contains(&left), "{left}");
    assert_eq!(g.w.sim.call_count("gcp:sts.token"), 1);

    let (status, text) = g
        .predict(t.token.expose_secret(), "rawPredict", &body("hello vertex"))
        .await;
    assert_eq!(status, 200, "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["type"], "message");
    assert_eq!(v["model"], "claude-sonnet-4-5@20250929");
    assert!(
        v["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("hello vertex")
    );

    let mut streaming = body("stream me");
    streaming["stream"] = json!(true);
    let (status, text) = g
        .predict(t.token.expose_secret(), "streamRawPredict", &streaming)
        .await;
    assert_eq!(status, 200, "{text}");
    assert!(text.starts_with("event: message_start"), "{text}");
    assert!(text.contains("event: content_block_delta") && text.contains("event: message_stop"));

    // The https: form of the audience is the provider's too.
    let mut c = g.claims(ALICE);
    c["aud"] = json!(AUD.replacen("//", "https://", 1));
    let https = SecretString::from(g.w.key.sign(&c));
    g.sts.exchange(&https, &target).await.unwrap();

    // Tokens expire on the emulator's clock.
    g.w.clock.advance(Duration::from_secs(3601));
    let (status, text) = g
        .predict(t.token.expose_secret(), "rawPredict", &body("late"))
        .await;
    assert_eq!(status, 401, "{text}");
    assert!(text.contains("\"UNAUTHENTICATED\""), "{text}");
}

#[tokio::test]
async fn the_condition_and_the_token_checks_refuse_with_googles_errors() {
    let g = Gcp::new().await;
    let target = PoolTarget {
        audience: AUD.into(),
        service_account: None,
    };
    let e = g.sts.exchange(&g.token(TEAM2), &target).await.unwrap_err();
    assert_eq!(
        refused(&e),
        "Google STS: unauthorized_client: The given credential is rejected by the attribute condition."
    );

    let sign = |edit: &dyn Fn(&mut Value)| {
        let mut c = g.claims(ALICE);
        edit(&mut c);
        SecretString::from(g.w.key.sign(&c))
    };
    let now = g.w.clock.now();
    // An expired token is the one refusal that means "mint again".
    let e = g
        .sts
        .exchange(&sign(&|c| c["exp"] = json!(now - 1)), &target)
        .await
        .unwrap_err();
    assert_eq!(e.class(), ErrorClass::ReMint, "{e}");
    let cases: Vec<(SecretString, &str)> = vec![
        (
            sign(&|c| c["aud"] = json!("sts.amazonaws.com")),
            "does not match the expected audience",
        ),
        (
            sign(&|c| c["iat"] = json!(now + 120)),
            "iat must be in the past",
        ),
        (
            sign(&|c| {
                c["iat"] = json!(now - 10);
                c["exp"] = json!(now - 10 + 48 * 3600);
            }),
            "less than 48 hours after iat",
        ),
        (
            sign(&|c| c["sub"] = json!(format!("scoped_principal:team1/user:{}", "u".repeat(110)))),
            "cannot exceed 127 bytes",
        ),
        (
            sign(&|c| c["iss"] = json!("https://other.test")),
            "does not match the expected ISSUER",
        ),
    ];
    for (token, words) in cases {
        let e = g.sts.exchange(&token, &target).await.unwrap_err();
        let msg = refused(&e).to_owned();
        assert!(msg.starts_with("Google STS: invalid_grant: "), "{msg}");
        assert!(msg.contains(words), "{words}: {msg}");
    }

    // kid required; only RS256 and ES256.
    let c = g.claims(ALICE);
    let no_kid = Key::ec("ES256", None).sign(&c);
    let rs384 = Key::rsa("RS384", Some("k1")).sign(&c);
    for (t, words) in [(no_kid, "kid"), (rs384, "must be RS256 or ES256")] {
        let e = g
            .sts
            .exchange(&SecretString::from(t), &target)
            .await
            .unwrap_err();
        assert!(refused(&e).contains(words), "{e}");
    }

    // The wire: scope required, no Authorization header, the audience's form,
    // an unknown provider.
    let good = g.token(ALICE);
    let base = |aud: &'static str, scope: &'static str| {
        vec![
            (
                "grant_type",
                "urn:ietf:params:oauth:grant-type:token-exchange",
            ),
            ("audience", aud),
            ("scope", scope),
            (
                "requested_token_type",
                "urn:ietf:params:oauth:token-type:access_token",
            ),
            ("subject_token_type", "urn:ietf:params:oauth:token-type:jwt"),
        ]
    };
    let with_token = |mut f: Vec<(&'static str, &'static str)>, t: &'static str| {
        f.push(("subject_token", t));
        f
    };
    let t: &'static str = Box::leak(good.expose_secret().to_owned().into_boxed_str());
    let (s, v) = g.form(&with_token(base(AUD, ""), t), false).await;
    assert_eq!(
        (s, v["error_description"].as_str()),
        (400, Some("Scope(s) must be provided"))
    );
    let scope = "https://www.googleapis.com/auth/cloud-platform";
    let (s, v) = g.form(&with_token(base(AUD, scope), t), true).await;
    assert_eq!(
        (s, v["error"].as_str()),
        (400, Some("invalid_request")),
        "{v}"
    );
    let (s, v) = g
        .form(&with_token(base("byollm-pool", scope), t), false)
        .await;
    assert_eq!(s, 400);
    assert!(
        v["error_description"]
            .as_str()
            .unwrap()
            .starts_with("Invalid value for \"audience\""),
        "{v}"
    );
    let other = "//iam.googleapis.com/projects/123456789012/locations/global/workloadIdentityPools/nope/providers/byollm-issuer";
    let (s, v) = g.form(&with_token(base(other, scope), t), false).await;
    assert_eq!(
        (s, v["error"].as_str()),
        (400, Some("invalid_target")),
        "{v}"
    );
    let (s, v) = g.form(&with_token(base(AUD, scope), t), false).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["token_type"], "Bearer");
    assert_eq!(
        v["issued_token_type"],
        "urn:ietf:params:oauth:token-type:access_token"
    );
}

#[tokio::test]
async fn every_vertex_call_needs_a_binding_and_impersonation_needs_its_own() {
    let g = Gcp::new().await;
    // team1's attribute set holds the role; a provider admitting every token
    // (no condition) lets team2 exchange, but Vertex still refuses it.
    g.w.sim.gcp().create_provider(provider(None)).unwrap();
    let direct = PoolTarget {
        audience: AUD.into(),
        service_account: None,
    };
    let t2 = g.sts.exchange(&g.token(TEAM2), &direct).await.unwrap();
    let (status, text) = g
        .predict(t2.token.expose_secret(), "rawPredict", &body("hi"))
        .await;
    assert_eq!(status, 403, "{text}");
    assert!(
        text.contains("Permission 'aiplatform.endpoints.predict' denied"),
        "{text}"
    );

    // Impersonation: refused until the principal is a workload identity user
    // of the service account, then the service account needs its own role.
    let via_sa = PoolTarget {
        audience: AUD.into(),
        service_account: Some(SA.into()),
    };
    assert_eq!(g.w.sim.gcp().add_service_account(PROJECT, "vertex"), SA);
    let e = g.sts.exchange(&g.token(ALICE), &via_sa).await.unwrap_err();
    assert!(
        refused(&e)
            .contains("PERMISSION_DENIED: Permission 'iam.serviceAccounts.getAccessToken' denied"),
        "{e}"
    );
    g.w.sim.gcp().add_binding(Binding {
        resource: format!("serviceAccounts/{SA}"),
        role: WORKLOAD_IDENTITY_USER.into(),
        member: format!("principal:{POOL}/subject/{ALICE}"),
    });
    let sa = g.sts.exchange(&g.token(ALICE), &via_sa).await.unwrap();
    assert!(sa.impersonated);
    assert_eq!(
        g.w.sim.call_count("gcp:iamcredentials.generateAccessToken"),
        2
    );
    let (status, _) = g
        .predict(sa.token.expose_secret(), "rawPredict", &body("hi"))
        .await;
    assert_eq!(status, 403);
    g.w.sim.gcp().add_binding(Binding {
        resource: format!("projects/{PROJECT}"),
        role: AIPLATFORM_USER.into(),
        member: format!("serviceAccount:{SA}"),
    });
    let (status, text) = g
        .predict(sa.token.expose_secret(), "rawPredict", &body("hi"))
        .await;
    assert_eq!(status, 200, "{text}");
}

#[tokio::test]
async fn vertex_checks_the_body_the_model_and_answers_quota_errors() {
    let g = Gcp::new().await;
    let direct = PoolTarget {
        audience: AUD.into(),
        service_account: None,
    };
    let t = g.sts.exchange(&g.token(ALICE), &direct).await.unwrap();
    let bearer = t.token.expose_secret();
    let mut b = body("x");
    b["anthropic_version"] = json!("bedrock-2023-05-31");
    let (s, text) = g.predict(bearer, "rawPredict", &b).await;
    assert_eq!(s, 400, "{text}");
    assert!(text.contains("vertex-2023-10-16"), "{text}");
    let mut b = body("x");
    b["model"] = json!("claude-sonnet-4-5");
    assert_eq!(g.predict(bearer, "rawPredict", &b).await.0, 400);

    let r = g
        .http
        .post(g.url("claude-unknown", "rawPredict"))
        .bearer_auth(bearer)
        .json(&body("x"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["status"], "NOT_FOUND");

    g.w.sim
        .faults()
        .fail_next("gcp:vertex.rawPredict", "RESOURCE_EXHAUSTED", 1);
    let (s, text) = g.predict(bearer, "rawPredict", &body("x")).await;
    assert_eq!(s, 429);
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["error"]["status"], "RESOURCE_EXHAUSTED");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("Quota exceeded")
    );
    assert_eq!(g.predict(bearer, "rawPredict", &body("x")).await.0, 200);
}
