//! The issuer end to end over a real socket: mint through the HTTP API, fetch
//! discovery and JWKS over HTTP, and verify with `jsonwebtoken` (RustCrypto), a
//! different JOSE implementation than the aws-lc-rs one that signs.

use std::collections::BTreeSet;

use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{DecodingKey, Validation};
use serde_json::{Value, json};

use byollm_api::routes;
use byollm_core::identity::keys::Algorithm;
use byollm_core::identity::{JWKS_MAX_AGE_SECONDS, NBF_BACKDATE_SECONDS, PREPUBLISH_SECONDS};

use crate::common::{ISSUER, Live, STS, mint_body, now};

mod concurrent;
mod rotation;

/// Discovery and JWKS as fetched over HTTP, with their `Cache-Control` max-ages.
struct Published {
    discovery: Value,
    jwks: Value,
}

fn max_age(resp: &reqwest::Response) -> i64 {
    let cc = resp
        .headers()
        .get("cache-control")
        .expect("Cache-Control header")
        .to_str()
        .unwrap()
        .to_owned();
    let age = cc
        .split(',')
        .map(str::trim)
        .find_map(|d| d.strip_prefix("max-age="))
        .unwrap_or_else(|| panic!("no max-age in `{cc}`"));
    age.parse().unwrap()
}

async fn fetch_published(live: &Live) -> Published {
    let d = live
        .http
        .get(live.url(routes::DISCOVERY))
        .send()
        .await
        .unwrap();
    assert_eq!(d.status().as_u16(), 200);
    let d_age = max_age(&d);
    let discovery: Value = d.json().await.unwrap();

    // The relying party follows jwks_uri; it names the configured issuer, so the
    // test fetches the same path from where the server really listens.
    let jwks_uri = discovery["jwks_uri"].as_str().unwrap().to_owned();
    assert_eq!(jwks_uri, format!("{ISSUER}/.well-known/jwks.json"));
    let path = jwks_uri.strip_prefix(ISSUER).unwrap();
    let j = live.http.get(live.url(path)).send().await.unwrap();
    assert_eq!(j.status().as_u16(), 200);
    let j_age = max_age(&j);
    let jwks: Value = j.json().await.unwrap();

    // A deliberate cache lifetime, shorter than the pre-publication window, so
    // every cache has seen a new key before it signs (DESIGN §3).
    for age in [d_age, j_age] {
        assert_eq!(age, JWKS_MAX_AGE_SECONDS);
        assert!(age > 0 && age < PREPUBLISH_SECONDS, "max-age {age}");
    }
    Published { discovery, jwks }
}

/// Verifies a token against the published JWKS with jsonwebtoken; returns the
/// header's kid and the verified claims.
fn verify(
    token: &str,
    published: &Published,
    alg: jsonwebtoken::Algorithm,
    aud: &str,
) -> (String, Value) {
    let header = jsonwebtoken::decode_header(token).unwrap();
    assert_eq!(header.alg, alg);
    assert_eq!(header.typ.as_deref(), Some("JWT"));
    let kid = header.kid.expect("kid in header");
    let jwk_json = published.jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid.as_str())
        .unwrap_or_else(|| panic!("kid {kid} not in JWKS {}", published.jwks))
        .clone();
    assert_eq!(jwk_json["use"], "sig");
    assert_eq!(jwk_json["alg"], format!("{alg:?}"));
    assert!(
        jwk_json.get("d").is_none() && jwk_json.get("p").is_none(),
        "private part published"
    );
    let jwk: Jwk = serde_json::from_value(jwk_json).unwrap();
    let key = DecodingKey::from_jwk(&jwk).unwrap();
    let mut v = Validation::new(alg);
    v.set_issuer(&[ISSUER]);
    v.set_audience(&[aud]);
    v.set_required_spec_claims(&["iss", "sub", "aud", "exp", "nbf", "iat"]);
    v.validate_nbf = true;
    v.leeway = 0;
    let data = jsonwebtoken::decode::<Value>(token, &key, &v).unwrap();

    // A token changed by one character of its payload must not verify.
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let flipped = if parts[1].ends_with('A') { 'B' } else { 'A' };
    parts[1].pop();
    parts[1].push(flipped);
    assert!(jsonwebtoken::decode::<Value>(&parts.join("."), &key, &v).is_err());
    (kid, data.claims)
}

fn int(claims: &Value, name: &str) -> i64 {
    claims[name]
        .as_i64()
        .unwrap_or_else(|| panic!("{name} is not an integer: {}", claims[name]))
}

/// Replaces volatile values with names, for snapshots.
fn redact(claims: &Value, names: &[(&str, &str)]) -> Value {
    let mut c = claims.clone();
    for field in ["iat", "nbf", "exp", "jti"] {
        if c.get(field).is_some() {
            c[field] = json!(format!("[{field}]"));
        }
    }
    let mut text = serde_json::to_string(&c).unwrap();
    for (value, name) in names {
        text = text.replace(value, name);
    }
    serde_json::from_str(&text).unwrap()
}

#[tokio::test]
async fn member_token_verifies_independently_with_every_claim() {
    let _sorted = crate::common::sorted_snapshots();
    let live = Live::start(Algorithm::Es256).await;
    let core = &live.server.core;
    let team = live.bootstrap_acme().await;
    let key = team.api_key.expose().to_owned();

    let before = now();
    let (status, first) = live
        .post(routes::IDENTITY_TOKEN, &key, &mint_body(STS, 900))
        .await;
    assert_eq!(status, 200, "{first}");
    let (status, second) = live
        .post(routes::IDENTITY_TOKEN, &key, &mint_body(STS, 900))
        .await;
    assert_eq!(status, 200, "{second}");
    let after = now();

    let published = fetch_published(&live).await;
    let d = &published.discovery;
    assert_eq!(
        d["issuer"], ISSUER,
        "the issuer is configured, not derived from the socket"
    );
    assert_eq!(d["jwks_uri"], format!("{ISSUER}{}", routes::JWKS));
    // ES256 for AWS and Google, RS256 for Entra (azure-facts §0.1).
    assert_eq!(
        d["id_token_signing_alg_values_supported"],
        json!(["ES256", "RS256"])
    );
    insta::assert_json_snapshot!("discovery", d);

    let (kid, claims) = verify(
        first["token"].as_str().unwrap(),
        &published,
        jsonwebtoken::Algorithm::ES256,
        STS,
    );
    let active = core.keyring().signer().unwrap();
    assert_eq!(kid, active.kid(), "signed by the active key");
    let keys = published.jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2, "one EC and one RSA key: {keys:?}");
    let rsa = keys.iter().find(|k| k["kty"] == "RSA").unwrap();
    assert_eq!(rsa["alg"], "RS256");
    assert_eq!(rsa["use"], "sig");
    assert_eq!(rsa["e"], "AQAB");
    assert!(rsa["n"].as_str().unwrap().len() >= 342, "2048 bits or more");
    assert_ne!(rsa["kid"], json!(kid), "its own kid");

    // iss equals the configured issuer exactly: scheme, host, no trailing slash.
    assert_eq!(claims["iss"].as_str(), Some(ISSUER));
    assert_eq!(first["issuer"], ISSUER);
    assert_eq!(
        claims["sub"],
        format!("scoped_principal:{}/user:{}", team.team_uid, team.owner_uid)
    );
    assert_eq!(claims["aud"], STS, "a single audience string");
    let (iat, nbf, exp) = (
        int(&claims, "iat"),
        int(&claims, "nbf"),
        int(&claims, "exp"),
    );
    assert!(
        (before..=after).contains(&iat),
        "iat {iat} outside [{before}, {after}]"
    );
    assert_eq!(exp - iat, 900);
    assert_eq!(nbf, iat - NBF_BACKDATE_SECONDS);
    assert_eq!(nbf, iat - 30);
    assert_eq!(
        first["expires_at"],
        byollm_api::clock::rfc3339(exp),
        "expires_at is the token's exp"
    );
    assert_eq!(claims["team_uid"], team.team_uid.as_str());
    assert_eq!(claims["actor_type"], "user");
    assert_eq!(claims["principal_uid"], team.owner_uid.as_str());
    assert!(claims.get("run_id").is_none());
    assert!(
        claims.get("https://aws.amazon.com/tags").is_none(),
        "tags are opt-in"
    );
    assert!(
        claims
            .get("https://aws.amazon.com/source_identity")
            .is_none(),
        "source identity is opt-in"
    );

    let (_, claims2) = verify(
        second["token"].as_str().unwrap(),
        &published,
        jsonwebtoken::Algorithm::ES256,
        STS,
    );
    let jti1 = claims["jti"].as_str().unwrap();
    assert!(!jti1.is_empty());
    assert_ne!(
        jti1,
        claims2["jti"].as_str().unwrap(),
        "jti is unique per token"
    );

    // Every claim is accounted for above: nothing unexpected is added silently.
    let names: BTreeSet<&str> = claims
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let expected: BTreeSet<&str> = [
        "iss",
        "sub",
        "aud",
        "iat",
        "nbf",
        "exp",
        "jti",
        "team_uid",
        "actor_type",
        "principal_uid",
    ]
    .into();
    assert_eq!(names, expected);
    insta::assert_json_snapshot!(
        "member_claims",
        redact(
            &claims,
            &[(&team.team_uid, "<team>"), (&team.owner_uid, "<owner>")]
        )
    );

    // The audit log keeps the token's metadata.
    let audit = core.store().list_audit(&team.team_uid, 10).await.unwrap();
    assert!(
        audit
            .iter()
            .any(|a| a.jti == jti1 && a.kid == kid && a.exp == int(&claims, "exp"))
    );

    live.server.shutdown().await;
}

#[tokio::test]
async fn run_token_carries_run_id_session_tags_and_source_identity() {
    let _sorted = crate::common::sorted_snapshots();
    let live = Live::start(Algorithm::Es256).await;
    let team = live.bootstrap_acme().await;
    let owner = team.api_key.expose().to_owned();
    let (status, body) = live
        .put(
            routes::TEAM_LLM_SETTINGS,
            &owner,
            &crate::common::complete_settings(&json!({
                "worker_identity_tokens": true,
                "subject_template": ["scoped_principal", "run_id"],
                "session_tags": true,
                "source_identity": true,
            })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, agent) = live
        .post(
            routes::AGENT_IDENTITIES,
            &owner,
            &json!({"name": "reviewer"}),
        )
        .await;
    assert_eq!(status, 201, "{agent}");
    let agent_uid = agent["uid"].as_str().unwrap().to_owned();
    let (status, run) = live
        .post(routes::RUNS, &owner, &json!({"agent_uid": agent_uid}))
        .await;
    assert_eq!(status, 201, "{run}");
    let run_id = run["run_id"].as_str().unwrap().to_owned();
    let workload = run["workload_token"].as_str().unwrap().to_owned();
    assert_eq!(
        run["actor"],
        json!({"type": "service_account", "uid": agent_uid})
    );

    let path = routes::fill(routes::RUN_IDENTITY_TOKEN, &run_id);
    let (status, minted) = live.post(&path, &workload, &mint_body(STS, 3600)).await;
    assert_eq!(status, 200, "{minted}");
    let published = fetch_published(&live).await;
    let (_, claims) = verify(
        minted["token"].as_str().unwrap(),
        &published,
        jsonwebtoken::Algorithm::ES256,
        STS,
    );

    assert_eq!(
        claims["sub"],
        format!(
            "scoped_principal:{}/service_account:{agent_uid}:run_id:{run_id}",
            team.team_uid
        )
    );
    assert_eq!(claims["run_id"], run_id.as_str());
    assert_eq!(claims["actor_type"], "service_account");
    assert_eq!(claims["principal_uid"], agent_uid.as_str());
    assert_eq!(int(&claims, "exp") - int(&claims, "iat"), 3600);

    // AWS's exact shapes: each principal tag a single-element array of strings,
    // and transitive keys a list naming existing tags.
    let tags = &claims["https://aws.amazon.com/tags"];
    let principal_tags = tags["principal_tags"]
        .as_object()
        .expect("principal_tags object");
    assert!(!principal_tags.is_empty());
    for (k, v) in principal_tags {
        let values = v
            .as_array()
            .unwrap_or_else(|| panic!("tag {k} is not an array"));
        assert_eq!(values.len(), 1, "tag {k} must have exactly one value");
        assert!(values[0].is_string(), "tag {k}");
    }
    assert_eq!(principal_tags["byollm-team"], json!([team.team_uid]));
    assert_eq!(
        principal_tags["byollm-actor-type"],
        json!(["service_account"])
    );
    assert_eq!(principal_tags["byollm-principal"], json!([agent_uid]));
    assert_eq!(principal_tags["byollm-run"], json!([run_id]));
    let transitive = tags["transitive_tag_keys"]
        .as_array()
        .expect("transitive_tag_keys array");
    assert!(!transitive.is_empty());
    for k in transitive {
        assert!(
            principal_tags.contains_key(k.as_str().unwrap()),
            "transitive key {k} is not a tag"
        );
    }
    // The accountable human: the owner who started the agent's run.
    assert_eq!(
        claims["https://aws.amazon.com/source_identity"],
        "owner@example.com"
    );
    insta::assert_json_snapshot!(
        "run_claims",
        redact(
            &claims,
            &[
                (&team.team_uid, "<team>"),
                (&agent_uid, "<agent>"),
                (&run_id, "<run>")
            ]
        )
    );

    // The member endpoint appends no run id even with the run_id template.
    let (status, m) = live
        .post(routes::IDENTITY_TOKEN, &owner, &mint_body(STS, 60))
        .await;
    assert_eq!(status, 200, "{m}");
    let (_, mc) = verify(
        m["token"].as_str().unwrap(),
        &published,
        jsonwebtoken::Algorithm::ES256,
        STS,
    );
    assert_eq!(
        mc["sub"],
        format!("scoped_principal:{}/user:{}", team.team_uid, team.owner_uid)
    );
    assert!(mc.get("run_id").is_none());
    assert_eq!(
        mc["https://aws.amazon.com/tags"]["principal_tags"].get("byollm-run"),
        None
    );

    live.server.shutdown().await;
}

#[tokio::test]
async fn rs256_issuer_tokens_verify_as_rs256() {
    let live = Live::start(Algorithm::Rs256).await;
    let team = live.bootstrap_acme().await;
    let (status, minted) = live
        .post(
            routes::IDENTITY_TOKEN,
            team.api_key.expose(),
            &mint_body(STS, 600),
        )
        .await;
    assert_eq!(status, 200, "{minted}");
    let published = fetch_published(&live).await;
    assert_eq!(
        published.discovery["id_token_signing_alg_values_supported"],
        json!(["RS256"])
    );
    let keys = published.jwks["keys"].as_array().unwrap();
    assert!(
        keys.iter()
            .all(|k| k["kty"] == "RSA" && k["alg"] == "RS256")
    );
    let (_, claims) = verify(
        minted["token"].as_str().unwrap(),
        &published,
        jsonwebtoken::Algorithm::RS256,
        STS,
    );
    assert_eq!(claims["iss"], ISSUER);
    assert_eq!(
        claims["sub"],
        format!("scoped_principal:{}/user:{}", team.team_uid, team.owner_uid)
    );
    // An ES256 verifier must refuse it.
    let mut v = Validation::new(jsonwebtoken::Algorithm::ES256);
    v.set_audience(&[STS]);
    let jwk: Jwk = serde_json::from_value(keys[0].clone()).unwrap();
    assert!(
        jsonwebtoken::decode::<Value>(
            minted["token"].as_str().unwrap(),
            &DecodingKey::from_jwk(&jwk).unwrap(),
            &v
        )
        .is_err()
    );
    live.server.shutdown().await;
}

#[tokio::test]
async fn public_routes_answer_without_credentials_over_http() {
    let live = Live::start(Algorithm::Es256).await;
    for path in [
        routes::HEALTHZ,
        routes::READYZ,
        routes::DISCOVERY,
        routes::JWKS,
    ] {
        let r = live.http.get(live.url(path)).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200, "{path}");
    }
    let r = live.http.get(live.url(routes::ME)).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unauthenticated");
    live.server.shutdown().await;
}

/// The issuer is configuration: no request header can change what the
/// discovery document or a token says.
#[tokio::test]
async fn host_headers_do_not_change_the_issuer() {
    let h = crate::common::Harness::new().await;
    let a = h.team("alpha").await;
    for host in ["evil.example", "127.0.0.1:1", "issuer.test.evil.example"] {
        let req = |path: &str, body: Option<Value>| {
            let mut b = axum::http::Request::builder()
                .uri(path)
                .header("host", host)
                .header("x-forwarded-host", host)
                .header("x-forwarded-proto", "http")
                .header("authorization", format!("Bearer {}", a.member.key));
            match body {
                Some(v) => {
                    b = b.method("POST").header("content-type", "application/json");
                    b.body(axum::body::Body::from(v.to_string())).unwrap()
                }
                None => b.body(axum::body::Body::empty()).unwrap(),
            }
        };
        use tower::ServiceExt as _;
        let r = h
            .router
            .clone()
            .oneshot(req(routes::DISCOVERY, None))
            .await
            .unwrap();
        let d: Value = serde_json::from_slice(
            &axum::body::to_bytes(r.into_body(), usize::MAX)
                .await
                .unwrap(),
        )
        .unwrap();
        assert_eq!(d["issuer"], ISSUER);
        assert_eq!(d["jwks_uri"], format!("{ISSUER}{}", routes::JWKS));
        let r = h
            .router
            .clone()
            .oneshot(req(routes::IDENTITY_TOKEN, Some(mint_body(STS, 60))))
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        let m: Value = serde_json::from_slice(
            &axum::body::to_bytes(r.into_body(), usize::MAX)
                .await
                .unwrap(),
        )
        .unwrap();
        assert_eq!(m["issuer"], ISSUER);
        assert_eq!(
            crate::common::claims_of(m["token"].as_str().unwrap())["iss"],
            ISSUER
        );
    }
}

/// JWKS as published, with the key material redacted.
#[tokio::test]
async fn jwks_snapshot() {
    let _sorted = crate::common::sorted_snapshots();
    let h = crate::common::Harness::new().await;
    let mut jwks = h.get(routes::JWKS, None).await.expect(200).body;
    // Keys made together are published in kid order: sort by type for a
    // stable snapshot.
    jwks["keys"]
        .as_array_mut()
        .unwrap()
        .sort_by_key(|k| k["kty"].as_str().unwrap().to_owned());
    insta::assert_json_snapshot!("jwks", jwks, {
        ".keys[].kid" => "[kid]",
        ".keys[].x" => "[x]",
        ".keys[].y" => "[y]",
        ".keys[].n" => "[n]",
    });
}
