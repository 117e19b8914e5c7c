//! STS `AssumeRoleWithWebIdentity` and `GetCallerIdentity` through aws-sdk-sts:
//! the happy path and each refusal with the code and message the SDK surfaces.

use aws_sdk_sts::error::ProvideErrorMetadata as _;
use aws_sdk_sts::operation::assume_role_with_web_identity::AssumeRoleWithWebIdentityError as E;
use serde_json::json;

use crate::common::*;

/// (code, message) of a failed call.
fn fail<T, R>(r: Result<T, aws_sdk_sts::error::SdkError<E, R>>) -> (String, String, E)
where
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let err = match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => e,
    };
    let svc = err.into_service_error();
    (
        svc.code().unwrap_or_default().to_owned(),
        svc.message().unwrap_or_default().to_owned(),
        svc,
    )
}

#[tokio::test]
async fn assume_role_happy_path_and_caller_identity() {
    let w = World::new().await;
    let before = now();
    let out = w.assume(&w.token(ALICE)).await.unwrap();
    let c = out.credentials().unwrap();
    assert!(
        c.access_key_id().starts_with("ASIA"),
        "{}",
        c.access_key_id()
    );
    assert_eq!(c.access_key_id().len(), 20);
    let exp = c.expiration().secs();
    assert!(
        (before + 3600..=now() + 3600).contains(&exp),
        "expiry {exp}"
    );
    assert_eq!(out.subject_from_web_identity_token(), Some(ALICE));
    assert_eq!(out.audience(), Some(STS_AUD));
    assert_eq!(
        out.provider(),
        Some("arn:aws:iam::123456789012:oidc-provider/fake.test")
    );
    let user = out.assumed_role_user().unwrap();
    assert_eq!(
        user.arn(),
        "arn:aws:sts::123456789012:assumed-role/byollm-bedrock/byollm-user-alice"
    );
    assert!(user.assumed_role_id().starts_with("AROA"));
    assert!(user.assumed_role_id().ends_with(":byollm-user-alice"));
    assert_eq!(w.sim.call_count("sts:AssumeRoleWithWebIdentity"), 1);

    // The credentials sign GetCallerIdentity.
    let me = signed_sts_client(&w.sim, to_creds(c))
        .get_caller_identity()
        .send()
        .await
        .unwrap();
    assert_eq!(me.arn(), Some(user.arn()));
    assert_eq!(me.account(), Some("123456789012"));
    // So do the admin's.
    let admin_me = signed_sts_client(&w.sim, admin(&w.sim))
        .get_caller_identity()
        .send()
        .await
        .unwrap();
    assert_eq!(admin_me.account(), Some("123456789012"));
}

#[tokio::test]
async fn get_form_of_the_query_is_accepted() {
    let w = World::new().await;
    let url = format!(
        "{}/?Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn={}&RoleSessionName=s1&WebIdentityToken={}",
        w.sim.endpoint_url(),
        w.role_arn,
        w.token(ALICE)
    );
    let resp = reqwest::get(url).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/xml");
    let body = resp.text().await.unwrap();
    assert!(body.starts_with("<AssumeRoleWithWebIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">"), "{body}");
    assert!(body.contains("<AssumeRoleWithWebIdentityResult>"));
    assert!(body.contains("<RequestId>"));
}

#[tokio::test]
async fn error_envelope_is_the_query_protocol_one() {
    let w = World::new().await;
    let url = format!(
        "{}/?Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn={}&RoleSessionName=s1&WebIdentityToken={}",
        w.sim.endpoint_url(),
        w.role_arn,
        w.token(BOB)
    );
    let resp = reqwest::get(url).await.unwrap();
    assert_eq!(resp.status(), 403);
    let body = resp.text().await.unwrap();
    let expected_start = "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\n  <Error>\n    <Type>Sender</Type>\n    <Code>AccessDenied</Code>\n    <Message>Not authorized to perform sts:AssumeRoleWithWebIdentity</Message>\n  </Error>\n  <RequestId>";
    assert!(body.starts_with(expected_start), "{body}");
}

#[tokio::test]
async fn every_accepted_algorithm_verifies() {
    let keys = [
        Key::ec("ES256", Some("es256")),
        Key::ec("ES384", Some("es384")),
        Key::ec("ES512", Some("es512")),
        Key::rsa("RS256", Some("rs256")),
        Key::rsa("RS384", Some("rs384")),
        Key::rsa("RS512", Some("rs512")),
    ];
    let w = World::new().await;
    *w.issuer.jwks.lock() = keys.iter().map(Key::jwk).collect();
    w.sim.clear_jwks_cache();
    for k in &keys {
        let out = w.assume(&k.sign(&claims(ALICE))).await;
        assert!(out.is_ok(), "{}: {:?}", k.alg(), out.err());
    }
}

#[tokio::test]
async fn wrong_audience() {
    let w = World::new().await;
    let mut c = claims(ALICE);
    c["aud"] = json!("api://other");
    let (code, msg, e) = fail(w.assume(&w.key.sign(&c)).await);
    assert_eq!(
        (code.as_str(), msg.as_str()),
        ("InvalidIdentityToken", "Incorrect token audience")
    );
    assert!(matches!(e, E::InvalidIdentityTokenException(_)));
    // A one-element array naming the right audience is accepted (EKS tokens).
    c["aud"] = json!([STS_AUD]);
    w.assume(&w.key.sign(&c)).await.unwrap();
    c.as_object_mut().unwrap().remove("aud");
    let (_, msg, _) = fail(w.assume(&w.key.sign(&c)).await);
    assert_eq!(msg, "Missing a required claim: aud");
}

#[tokio::test]
async fn unknown_issuer() {
    let w = World::new().await;
    let mut c = claims(ALICE);
    c["iss"] = json!("https://unknown.test");
    let (code, msg, e) = fail(w.assume(&w.key.sign(&c)).await);
    assert_eq!(code, "InvalidIdentityToken");
    assert_eq!(
        msg,
        "No OpenIDConnect provider found in your account for https://unknown.test"
    );
    assert!(matches!(e, E::InvalidIdentityTokenException(_)));
    // The trailing slash is part of the URL.
    c["iss"] = json!("https://fake.test/");
    let (_, msg, _) = fail(w.assume(&w.key.sign(&c)).await);
    assert_eq!(
        msg,
        "No OpenIDConnect provider found in your account for https://fake.test/"
    );
}

#[tokio::test]
async fn bad_signature() {
    let w = World::new().await;
    // Same kid, another key.
    let impostor = Key::ec("ES256", Some("k1"));
    let (code, msg, e) = fail(w.assume(&impostor.sign(&claims(ALICE))).await);
    assert_eq!(code, "InvalidIdentityToken");
    assert_eq!(
        msg,
        "The web identity token's signature could not be verified."
    );
    assert!(matches!(e, E::InvalidIdentityTokenException(_)));
    // A tampered payload.
    let token = w.token(ALICE);
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    use base64::Engine as _;
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut claims: serde_json::Value =
        serde_json::from_slice(&engine.decode(&parts[1]).unwrap()).unwrap();
    claims["sub"] = json!(BOB);
    parts[1] = engine.encode(claims.to_string());
    let (_, msg, _) = fail(w.assume(&parts.join(".")).await);
    assert_eq!(
        msg,
        "The web identity token's signature could not be verified."
    );
}

const KEY_RETRIEVAL: &str = "Couldn't retrieve verification key from your identity provider,  please reference AssumeRoleWithWebIdentity documentation for requirements";

#[tokio::test]
async fn unknown_kid_and_unreachable_jwks() {
    let w = World::new().await;
    let other = Key::ec("ES256", Some("k2"));
    let (code, msg, e) = fail(w.assume(&other.sign(&claims(ALICE))).await);
    assert_eq!(
        (code.as_str(), msg.as_str()),
        ("InvalidIdentityToken", KEY_RETRIEVAL)
    );
    assert!(matches!(e, E::InvalidIdentityTokenException(_)));
    // kid matching is exact: no kid in the token does not match kid "k1".
    let header = json!({"alg": "ES256", "typ": "JWT"});
    let (_, msg, _) = fail(
        w.assume(&w.key.sign_with_header(&header, &claims(ALICE)))
            .await,
    );
    assert_eq!(msg, KEY_RETRIEVAL);
    // A key published later is found by refetching on the unknown kid, once the
    // refetch cool-down since the last fetch has passed.
    w.assume(&w.token(ALICE)).await.unwrap();
    w.issuer.jwks.lock().push(other.jwk());
    w.clock.advance(byollm_cloudsim::jwt::REFETCH_COOLDOWN);
    w.assume(&other.sign(&claims(ALICE))).await.unwrap();
    // The JWKS fault.
    w.sim.faults().set_jwks_unreachable(true);
    let (_, msg, _) = fail(w.assume(&w.token(ALICE)).await);
    assert_eq!(msg, KEY_RETRIEVAL);
    w.sim.faults().set_jwks_unreachable(false);
    w.assume(&w.token(ALICE)).await.unwrap();
}

#[tokio::test]
async fn unknown_kid_refetch_is_throttled() {
    let w = World::new().await;
    let hits = || w.issuer.jwks_hits.load(std::sync::atomic::Ordering::SeqCst);
    let later = Key::ec("ES256", Some("k2"));
    // A flood of tokens with a kid the issuer does not publish: the first call
    // fetches the keys, the rest are refused from the cache.
    for _ in 0..5 {
        let (_, msg, _) = fail(w.assume(&later.sign(&claims(ALICE))).await);
        assert_eq!(msg, KEY_RETRIEVAL);
    }
    assert_eq!((hits(), w.sim.jwks_fetch_count()), (1, 1));
    // The key is published: still refused until the cool-down has passed.
    w.issuer.jwks.lock().push(later.jwk());
    w.clock
        .advance(byollm_cloudsim::jwt::REFETCH_COOLDOWN - std::time::Duration::from_secs(1));
    let (_, msg, _) = fail(w.assume(&later.sign(&claims(ALICE))).await);
    assert_eq!(msg, KEY_RETRIEVAL);
    assert_eq!(hits(), 1);
    w.clock.advance(std::time::Duration::from_secs(1));
    w.assume(&later.sign(&claims(ALICE))).await.unwrap();
    assert_eq!(hits(), 2);
    // The cool-down counts from that fetch: another unknown kid waits again.
    let stranger = Key::ec("ES256", Some("k3"));
    for _ in 0..3 {
        let (_, msg, _) = fail(w.assume(&stranger.sign(&claims(ALICE))).await);
        assert_eq!(msg, KEY_RETRIEVAL);
    }
    w.assume(&w.token(ALICE)).await.unwrap();
    assert_eq!((hits(), w.sim.jwks_fetch_count()), (2, 2));
}

#[tokio::test]
async fn unreachable_issuer_host() {
    // No --resolve for the provider's host: nothing answers.
    let w = World::new().await;
    w.sim
        .create_oidc_provider("https://nowhere.test", &[STS_AUD])
        .unwrap();
    let mut c = claims(ALICE);
    c["iss"] = json!("https://nowhere.test");
    let (_, msg, _) = fail(w.assume(&w.key.sign(&c)).await);
    assert_eq!(msg, KEY_RETRIEVAL);
}

#[tokio::test]
async fn expiry_grace_is_five_minutes() {
    let w = World::new().await;
    let mut c = claims(ALICE);
    let now = now();
    c["iat"] = json!(now - 900);
    c["nbf"] = json!(now - 900);
    c["exp"] = json!(now - 200);
    w.assume(&w.key.sign(&c)).await.unwrap();
    c["exp"] = json!(now - 400);
    let (code, msg, e) = fail(w.assume(&w.key.sign(&c)).await);
    assert_eq!(code, "ExpiredTokenException");
    assert!(
        msg.starts_with("Token expired: current date/time "),
        "{msg}"
    );
    assert!(
        msg.ends_with(&format!(
            "must be before the expiration date/time {}",
            now - 400
        )),
        "{msg}"
    );
    assert!(matches!(e, E::ExpiredTokenException(_)));
}

#[tokio::test]
async fn timestamps_must_be_integers_and_algorithms_asymmetric() {
    let w = World::new().await;
    let mut c = claims(ALICE);
    c["exp"] = json!(now() as f64 + 600.5);
    let (code, msg, _) = fail(w.assume(&w.key.sign(&c)).await);
    assert_eq!(code, "InvalidIdentityToken");
    assert_eq!(
        msg,
        "Timestamps in the token must be formatted as either an integer or a long integer"
    );
    let mut c = claims(ALICE);
    c.as_object_mut().unwrap().remove("iat");
    let (_, msg, _) = fail(w.assume(&w.key.sign(&c)).await);
    assert_eq!(msg, "Missing a required claim: iat");
    let header = json!({"alg": "HS256", "typ": "JWT", "kid": "k1"});
    let (code, msg, _) = fail(
        w.assume(&w.key.sign_with_header(&header, &claims(ALICE)))
            .await,
    );
    assert_eq!(code, "InvalidIdentityToken");
    assert!(
        msg.starts_with("Unsupported token signing algorithm 'HS256'"),
        "{msg}"
    );
    let (_, msg, _) = fail(w.assume("not-a-jwt").await);
    assert!(
        msg.starts_with("The ID Token provided is not a valid JWT"),
        "{msg}"
    );
}

#[tokio::test]
async fn subject_not_admitted() {
    let w = World::new().await;
    let (code, msg, e) = fail(w.assume(&w.token(BOB)).await);
    assert_eq!(code, "AccessDenied");
    assert_eq!(
        msg,
        "Not authorized to perform sts:AssumeRoleWithWebIdentity"
    );
    // Unmodeled in the STS model: the SDK surfaces only its code.
    assert!(!matches!(e, E::InvalidIdentityTokenException(_)));
    // An unknown role is the same refusal (existence is not revealed).
    let r = w
        .sts
        .assume_role_with_web_identity()
        .role_arn("arn:aws:iam::123456789012:role/nope")
        .role_session_name("s1")
        .web_identity_token(w.token(ALICE))
        .send()
        .await;
    assert_eq!(code_of(r), "AccessDenied");
}

fn code_of<T, R: std::fmt::Debug + Send + Sync + 'static>(
    r: Result<T, aws_sdk_sts::error::SdkError<E, R>>,
) -> String {
    fail(r).0
}

#[tokio::test]
async fn session_tags_need_tag_session() {
    let w = World::new().await;
    let mut c = claims(ALICE);
    c["https://aws.amazon.com/tags"] = json!({
        "principal_tags": {"team": ["team1"], "actor": ["user"]},
        "transitive_tag_keys": ["team"]
    });
    let tagged = w.key.sign(&c);
    let (code, msg, _) = fail(w.assume(&tagged).await);
    assert_eq!(
        (code.as_str(), msg.as_str()),
        (
            "AccessDenied",
            "Not authorized to perform sts:AssumeRoleWithWebIdentity"
        )
    );
    w.sim
        .update_assume_role_policy(
            ROLE,
            &trust(ALICE, &["sts:AssumeRoleWithWebIdentity", "sts:TagSession"]),
        )
        .unwrap();
    let out = w.assume(&tagged).await.unwrap();
    let s = w
        .sim
        .session(out.credentials().unwrap().access_key_id())
        .unwrap();
    assert_eq!(
        s.tags,
        vec![
            ("actor".to_owned(), "user".to_owned()),
            ("team".to_owned(), "team1".to_owned())
        ]
    );
    assert_eq!(s.transitive_tag_keys, vec!["team".to_owned()]);
    // Multi-valued tags are refused.
    c["https://aws.amazon.com/tags"] = json!({"principal_tags": {"team": ["a", "b"]}});
    let (code, _, _) = fail(w.assume(&w.key.sign(&c)).await);
    assert_eq!(code, "InvalidIdentityToken");
}

#[tokio::test]
async fn source_identity_needs_set_source_identity() {
    let w = World::new().await;
    let mut c = claims(ALICE);
    c["https://aws.amazon.com/source_identity"] = json!("alice@example.com");
    let token = w.key.sign(&c);
    assert_eq!(fail(w.assume(&token).await).0, "AccessDenied");
    w.sim
        .update_assume_role_policy(
            ROLE,
            &trust(
                ALICE,
                &["sts:AssumeRoleWithWebIdentity", "sts:SetSourceIdentity"],
            ),
        )
        .unwrap();
    let out = w.assume(&token).await.unwrap();
    assert_eq!(out.source_identity(), Some("alice@example.com"));
}

#[tokio::test]
async fn duration_above_the_role_maximum() {
    let w = World::new().await;
    let r = w
        .sts
        .assume_role_with_web_identity()
        .role_arn(&w.role_arn)
        .role_session_name("s1")
        .web_identity_token(w.token(ALICE))
        .duration_seconds(7200)
        .send()
        .await;
    let (code, msg, e) = fail(r);
    assert_eq!(code, "ValidationError");
    assert_eq!(
        msg,
        "The requested DurationSeconds exceeds the MaxSessionDuration set for this role."
    );
    assert!(!matches!(e, E::InvalidIdentityTokenException(_)));
    // Raise the maximum and it passes.
    w.sim.set_max_session_duration(ROLE, 7200).unwrap();
    let out = w
        .sts
        .assume_role_with_web_identity()
        .role_arn(&w.role_arn)
        .role_session_name("s1")
        .web_identity_token(w.token(ALICE))
        .duration_seconds(7200)
        .send()
        .await
        .unwrap();
    assert!(out.credentials().unwrap().expiration().secs() >= now() + 7190);
    // Out of the API's range.
    let r = w
        .sts
        .assume_role_with_web_identity()
        .role_arn(&w.role_arn)
        .role_session_name("s1")
        .web_identity_token(w.token(ALICE))
        .duration_seconds(86400)
        .send()
        .await;
    let (_, msg, _) = fail(r);
    assert_eq!(
        msg,
        "1 validation error detected: Value '86400' at 'durationSeconds' failed to satisfy constraint: Member must have value less than or equal to 43200"
    );
}

#[tokio::test]
async fn invalid_session_name() {
    let w = World::new().await;
    let r = w
        .sts
        .assume_role_with_web_identity()
        .role_arn(&w.role_arn)
        .role_session_name("pic-ro- 123")
        .web_identity_token(w.token(ALICE))
        .send()
        .await;
    let (code, msg, _) = fail(r);
    assert_eq!(code, "ValidationError");
    assert_eq!(
        msg,
        "1 validation error detected: Value 'pic-ro- 123' at 'roleSessionName' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\w+=,.@-]*"
    );
    // The platform's subject cannot be used verbatim.
    let r = w
        .sts
        .assume_role_with_web_identity()
        .role_arn(&w.role_arn)
        .role_session_name(ALICE)
        .web_identity_token(w.token(ALICE))
        .send()
        .await;
    assert_eq!(fail(r).0, "ValidationError");
}

#[tokio::test]
async fn throttling_and_injected_faults() {
    let w = World::new().await;
    w.sim.faults().set_throttle("sts", 0.0, 1);
    w.assume(&w.token(ALICE)).await.unwrap();
    let (code1, msg, _) = fail(w.assume(&w.token(ALICE)).await);
    assert_eq!(
        (code1.as_str(), msg.as_str()),
        ("Throttling", "Rate exceeded")
    );
    w.sim.faults().clear_throttle("sts");
    w.sim
        .faults()
        .fail_next("sts:AssumeRoleWithWebIdentity", "IDPCommunicationError", 1);
    let (c, _, e) = fail(w.assume(&w.token(ALICE)).await);
    assert_eq!(c, "IDPCommunicationError");
    assert!(matches!(e, E::IdpCommunicationErrorException(_)));
    w.assume(&w.token(ALICE)).await.unwrap();
    assert_eq!(w.sim.call_count("sts:AssumeRoleWithWebIdentity"), 4);
}

#[tokio::test]
async fn credential_lifetime_knob() {
    let w = World::new().await;
    w.sim
        .set_credential_lifetime(Some(std::time::Duration::from_secs(30)));
    let out = w.assume(&w.token(ALICE)).await.unwrap();
    let exp = out.credentials().unwrap().expiration().secs();
    assert!(exp <= now() + 30 && exp >= now() + 25, "{exp}");
}

#[tokio::test]
async fn get_caller_identity_refuses_bad_signatures() {
    let w = World::new().await;
    let (id, _) = w.sim.admin_credentials();
    let bad = aws_credential_types::Credentials::new(id, "not-the-secret", None, None, "t");
    let err = signed_sts_client(&w.sim, bad)
        .get_caller_identity()
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("SignatureDoesNotMatch"));
    let unknown =
        aws_credential_types::Credentials::new("AKIAUNKNOWN000000000", "x", None, None, "t");
    let err = signed_sts_client(&w.sim, unknown)
        .get_caller_identity()
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("InvalidClientTokenId"));
    assert_eq!(
        err.message(),
        Some("The security token included in the request is invalid.")
    );
}
