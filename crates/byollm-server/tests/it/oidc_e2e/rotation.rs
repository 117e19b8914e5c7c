//! Signing-key rotation seen over HTTP: the next key is published before it
//! signs, and tokens of the old key stay verifiable; the RS256 key beside the
//! ES256 one rotates with it.

use std::collections::BTreeSet;

use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{DecodingKey, Validation};
use serde_json::Value;

use byollm_api::routes;
use byollm_core::identity::PREPUBLISH_SECONDS;
use byollm_core::identity::keys::Algorithm;

use crate::common::{ISSUER, Live, STS, mint_body, now};

/// Verifies a token against a JWKS by its header's kid, signature, issuer and
/// audience only: the rotation test runs on a fake clock, so time claims are
/// checked against that clock by hand.
fn verifies_with(token: &str, jwks: &Value) -> bool {
    let header = jsonwebtoken::decode_header(token).unwrap();
    let Some(jwk) = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| Some(k["kid"].as_str().unwrap()) == header.kid.as_deref())
    else {
        return false;
    };
    let jwk: Jwk = serde_json::from_value(jwk.clone()).unwrap();
    let mut v = Validation::new(header.alg);
    v.set_issuer(&[ISSUER]);
    v.set_audience(&[STS]);
    v.validate_exp = false;
    v.validate_nbf = false;
    jsonwebtoken::decode::<Value>(token, &DecodingKey::from_jwk(&jwk).unwrap(), &v).is_ok()
}

#[tokio::test]
async fn rotation_over_http_prepublishes_then_switches_kid_and_keeps_old_tokens_verifiable() {
    use byollm_api::clock::Clock as _;
    use byollm_core::identity::RETIRE_LEEWAY_SECONDS;
    use byollm_core::identity::keyring::RotateOutcome;

    let clock = byollm_api::clock::FakeClock::new(now());
    let dir = tempfile::tempdir().unwrap();
    let cfg = crate::common::config(dir.path(), Algorithm::Es256);
    let server = byollm_server::start(&cfg, std::sync::Arc::new(clock.clone()))
        .await
        .unwrap();
    let live = Live {
        dir,
        base: format!("http://{}", server.addr),
        server,
        http: reqwest::Client::new(),
    };
    let core = live.server.core.clone();
    let team = live.bootstrap_acme().await;
    let key = team.api_key.expose().to_owned();
    let mint = || async {
        let (status, body) = live
            .post(routes::IDENTITY_TOKEN, &key, &mint_body(STS, 3600))
            .await;
        assert_eq!(status, 200, "{body}");
        body["token"].as_str().unwrap().to_owned()
    };
    let kid_of = |t: &str| jsonwebtoken::decode_header(t).unwrap().kid.unwrap();
    let jwks = || async {
        let r = live.http.get(live.url(routes::JWKS)).send().await.unwrap();
        r.json::<Value>().await.unwrap()
    };
    let kids = |j: &Value| -> BTreeSet<String> {
        j["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap().to_owned())
            .collect()
    };

    let old = mint().await;
    let k1 = kid_of(&old);
    let r1 = core
        .keyring()
        .signer_for(Algorithm::Rs256)
        .unwrap()
        .kid()
        .to_owned();
    let old_exp = crate::common::claims_of(&old)["exp"].as_i64().unwrap();

    // Rotation publishes the next key before it signs.
    let RotateOutcome::Published {
        kid: k2,
        activate_after,
        companions,
    } = core.keyring().rotate().await.unwrap()
    else {
        panic!("the first rotation publishes a key");
    };
    assert_ne!(k1, k2);
    let [r2] = companions.as_slice() else {
        panic!("one RS256 key is published beside the ES256 one: {companions:?}");
    };
    let r2 = r2.clone();
    assert_eq!(activate_after, clock.now() + PREPUBLISH_SECONDS);
    let all = BTreeSet::from([k1.clone(), k2.clone(), r1.clone(), r2.clone()]);
    assert_eq!(kids(&jwks().await), all);
    assert_eq!(kid_of(&mint().await), k1, "a pending key does not sign");

    // Once due, the new key signs; the old one stays published.
    clock.advance(PREPUBLISH_SECONDS);
    byollm_server::app::maintain(&core).await;
    let new = mint().await;
    assert_eq!(kid_of(&new), k2, "a new token uses the new kid");
    let published = jwks().await;
    assert_eq!(kids(&published), all);
    assert_eq!(
        core.keyring().signer_for(Algorithm::Rs256).unwrap().kid(),
        r2,
        "the RS256 key switched with it"
    );
    assert!(
        verifies_with(&old, &published),
        "a token signed before rotation still verifies"
    );
    assert!(verifies_with(&new, &published));

    // The retired key stays until every token it signed has expired plus leeway.
    let info = core.keyring().keys();
    let retired = info.info.iter().find(|k| k.kid == k1).unwrap();
    assert_eq!(retired.state, "retired");
    let verify_until = retired.verify_until.unwrap();
    assert!(
        verify_until >= old_exp + RETIRE_LEEWAY_SECONDS,
        "{verify_until} < {old_exp} + leeway"
    );
    clock.set(old_exp + 300);
    byollm_server::app::maintain(&core).await;
    let published = jwks().await;
    assert!(
        kids(&published).contains(&k1),
        "removed before exp + AWS's 5 min skew"
    );
    assert!(verifies_with(&old, &published));

    clock.set(verify_until);
    byollm_server::app::maintain(&core).await;
    let published = jwks().await;
    assert_eq!(kids(&published), BTreeSet::from([k2.clone(), r2.clone()]));
    assert!(!verifies_with(&old, &published), "the retired key is gone");
    assert!(verifies_with(&new, &published));
    live.server.shutdown().await;
}
