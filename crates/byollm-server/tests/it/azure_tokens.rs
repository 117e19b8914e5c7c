//! Azure AI Foundry settings and tokens (issue 18) through the HTTP API, on
//! the test store (SQLite, or PostgreSQL under `BYOLLM_TEST_STORE=postgres`):
//! the host round-trips and a bad field is a 400 naming it and its fix; the
//! Azure audience is minted for only while the team's host is on, RS256 with
//! the RSA key's kid, its `sub` at the team's granularity and the full actor
//! in the `actor` claim and the audit row; PyJWT verifies such a token
//! against the published JWKS.

use std::io::Write as _;
use std::process::{Command, Stdio};

use axum::http::Method;
use serde_json::{Value, json};

use byollm_api::routes;
use byollm_api::types::AZURE_AUDIENCE;

use crate::common::{Harness, ISSUER, claims_of, mint_body, worker_tokens_on};

const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const CLIENT: &str = "0d3c1f2e-5b6a-4c8d-9e0f-1a2b3c4d5e6f";

fn azure_host(granularity: &str) -> Value {
    json!({"hosts": {"azure_foundry": {
        "enabled": true,
        "tenant_id": TENANT,
        "client_id": CLIENT,
        "resource": "acme-ai.services.ai.azure.com",
        "subject_granularity": granularity,
    }}, "worker_identity_tokens": true,
    "models": {"claude-sonnet-4-6": {
        "aws_bedrock": {"enabled": true},
        "direct_api": {"enabled": true},
        "azure_foundry": {"enabled": true, "deployment": "claude-sonnet-4-6"},
    }}})
}

fn header_of(token: &str) -> Value {
    use base64::Engine as _;
    let h = token.split('.').next().unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(h)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

#[tokio::test]
async fn the_azure_host_round_trips_and_bad_fields_are_named() {
    let h = Harness::new().await;
    let a = h.team("alpha").await;
    let got = h
        .get(routes::TEAM_LLM_SETTINGS, Some(&a.admin.key))
        .await
        .expect(200);
    let host = &got.body["hosts"]["azure_foundry"];
    assert_eq!(host["enabled"], false, "new teams: off");
    assert_eq!(host["subject_granularity"], "team");

    h.put_settings(&a.admin.key, &azure_host("actor_type"))
        .await
        .expect(200);
    let got = h
        .get(routes::TEAM_LLM_SETTINGS, Some(&a.admin.key))
        .await
        .expect(200);
    let host = &got.body["hosts"]["azure_foundry"];
    assert_eq!(host["tenant_id"], TENANT);
    assert_eq!(host["client_id"], CLIENT);
    assert_eq!(host["resource"], "acme-ai.services.ai.azure.com");
    assert_eq!(host["subject_granularity"], "actor_type");
    assert_eq!(
        got.body["models"]["claude-sonnet-4-6"]["azure_foundry"]["deployment"],
        "claude-sonnet-4-6"
    );

    for (patch, field, fix) in [
        (
            json!({"tenant_id": "contoso.onmicrosoft.com"}),
            "hosts.azure_foundry.tenant_id",
            "GUID",
        ),
        (
            json!({"client_id": "byollm-uami"}),
            "hosts.azure_foundry.client_id",
            "GUID",
        ),
        (
            json!({"resource": "https://acme-ai.openai.azure.com"}),
            "hosts.azure_foundry.resource",
            "without `https://`",
        ),
        (
            json!({"resource": null}),
            "hosts.azure_foundry.resource",
            "required while",
        ),
        (
            json!({"subject_granularity": "run"}),
            "hosts.azure_foundry.subject_granularity",
            "",
        ),
    ] {
        let r = h
            .json(
                Method::PATCH,
                routes::TEAM_LLM_SETTINGS,
                Some(&a.admin.key),
                &json!({"hosts": {"azure_foundry": patch}}),
            )
            .await
            .expect(400);
        let body = r.body.to_string();
        assert!(
            r.field() == Some(field) || body.contains("subject_granularity"),
            "{patch}: {body}"
        );
        assert!(body.contains(fix), "{patch}: {body}");
    }
    // An agent's override is checked field by field too.
    let r = h
        .json(
            Method::PATCH,
            &routes::fill(routes::AGENT_IDENTITY, &a.agent_uid),
            Some(&a.admin.key),
            &json!({"inference_providers": {"azure": {"client_id": "nope"}}}),
        )
        .await
        .expect(400);
    assert_eq!(r.field(), Some("inference_providers.azure.client_id"));
    let got = h
        .get(routes::TEAM_LLM_SETTINGS, Some(&a.admin.key))
        .await
        .expect(200);
    assert_eq!(got.body["hosts"]["azure_foundry"]["client_id"], CLIENT);
}

#[tokio::test]
async fn azure_tokens_are_rs256_with_the_teams_subject_granularity() {
    let h = Harness::new().await;
    let a = h.team("alpha").await;
    // Off: the audience is refused, even when listed among the audiences.
    let mut listed = worker_tokens_on();
    listed["token_audiences"] = json!(["sts.amazonaws.com", AZURE_AUDIENCE]);
    h.put_settings(&a.admin.key, &listed).await.expect(200);
    let r = h
        .post(
            routes::IDENTITY_TOKEN,
            Some(&a.member.key),
            &mint_body(AZURE_AUDIENCE, 600),
        )
        .await
        .expect(422);
    assert!(
        r.body.to_string().contains("Azure AI Foundry"),
        "{}",
        r.body
    );

    let jwks = h.get(routes::JWKS, None).await.expect(200).body;
    let rsa_kid = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kty"] == "RSA")
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .unwrap();
    let full = format!("scoped_principal:{}/user:{}", a.uid, a.member.uid);
    for (granularity, sub) in [
        ("team", format!("scoped_principal:{}", a.uid)),
        ("actor_type", format!("scoped_principal:{}/user", a.uid)),
        ("actor", full.clone()),
    ] {
        h.put_settings(&a.admin.key, &azure_host(granularity))
            .await
            .expect(200);
        let t = h
            .post(
                routes::IDENTITY_TOKEN,
                Some(&a.member.key),
                &mint_body(AZURE_AUDIENCE, 600),
            )
            .await
            .expect(200);
        let token = t.str("/token");
        let header = header_of(&token);
        assert_eq!(header["alg"], "RS256", "{granularity}");
        assert_eq!(header["kid"], rsa_kid.as_str());
        let c = claims_of(&token);
        assert_eq!(c["aud"], AZURE_AUDIENCE);
        assert_eq!(c["sub"], sub.as_str(), "{granularity}");
        assert_eq!(c["actor_type"], "user");
        assert_eq!(c["principal_uid"], a.member.uid.as_str());
        let audit = h.core.store().list_audit(&a.uid, 100).await.unwrap();
        let row = audit.iter().find(|r| c["jti"] == r.jti.as_str()).unwrap();
        assert_eq!(row.sub, sub);
        assert_eq!(row.kid, rsa_kid);
        if granularity == "actor" {
            assert!(c.get("actor").is_none(), "sub is the full subject already");
            assert_eq!(row.actor, None);
        } else {
            assert_eq!(c["actor"], full.as_str(), "{granularity}");
            assert_eq!(row.actor.as_deref(), Some(full.as_str()));
        }
        // The agent's run gets its own actor type at `actor_type`.
        let r = h
            .post(
                &routes::fill(routes::RUN_IDENTITY_TOKEN, &a.agent_run),
                Some(&a.agent_run_token),
                &mint_body(AZURE_AUDIENCE, 600),
            )
            .await
            .expect(200);
        let c = claims_of(&r.str("/token"));
        if granularity == "actor_type" {
            assert_eq!(
                c["sub"],
                format!("scoped_principal:{}/service_account", a.uid)
            );
        }
        assert_eq!(c["run_id"], a.agent_run.as_str());
        assert!(
            !c["sub"].as_str().unwrap().contains("run_id"),
            "no FIC could match a per-run subject"
        );
    }
    // AWS tokens stay ES256 with the full subject.
    let t = h
        .post(
            routes::IDENTITY_TOKEN,
            Some(&a.member.key),
            &mint_body(crate::common::STS, 600),
        )
        .await
        .expect(200);
    let token = t.str("/token");
    assert_eq!(header_of(&token)["alg"], "ES256");
    assert_eq!(claims_of(&token)["sub"], full.as_str());
    assert!(claims_of(&token).get("actor").is_none());

    // An agent whose override keeps it off Azure is refused.
    h.json(
        Method::PATCH,
        &routes::fill(routes::AGENT_IDENTITY, &a.agent_uid),
        Some(&a.admin.key),
        &json!({"inference_providers": {"azure": {"disabled": true}}}),
    )
    .await
    .expect(200);
    let r = h
        .post(
            &routes::fill(routes::RUN_IDENTITY_TOKEN, &a.agent_run),
            Some(&a.agent_run_token),
            &mint_body(AZURE_AUDIENCE, 600),
        )
        .await
        .expect(422);
    assert!(r.body.to_string().contains("this agent"), "{}", r.body);
}

/// PyJWT, as a relying party that is not ours, verifies an Azure token
/// against the published JWKS by its kid, RS256 only.
#[tokio::test]
async fn pyjwt_verifies_an_azure_token_against_the_jwks() {
    let present = Command::new("python3")
        .args(["-c", "import jwt, cryptography"])
        .status()
        .is_ok_and(|s| s.success());
    if !byollm_core::testing::require(
        "pyjwt_verifies_an_azure_token_against_the_jwks",
        "PyJWT with cryptography (pip install 'PyJWT[crypto]')",
        present,
    ) {
        return;
    }
    let h = Harness::new().await;
    let a = h.team("alpha").await;
    h.put_settings(&a.admin.key, &azure_host("team"))
        .await
        .expect(200);
    let t = h
        .post(
            routes::IDENTITY_TOKEN,
            Some(&a.member.key),
            &mint_body(AZURE_AUDIENCE, 600),
        )
        .await
        .expect(200);
    let jwks = h.get(routes::JWKS, None).await.expect(200).body;
    let script = r#"
import json, sys, jwt
d = json.load(sys.stdin)
kid = jwt.get_unverified_header(d["token"])["kid"]
key = jwt.PyJWKSet.from_dict(d["jwks"])[kid]
assert key.key_type == "RSA", key.key_type
c = jwt.decode(d["token"], key.key, algorithms=["RS256"], audience=d["aud"], issuer=d["iss"])
print(json.dumps({"alg": key.algorithm_name, "sub": c["sub"]}))
"#;
    let mut child = Command::new("python3")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let input =
        json!({"token": t.str("/token"), "jwks": jwks, "aud": AZURE_AUDIENCE, "iss": ISSUER});
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(got["alg"], "RS256");
    assert_eq!(got["sub"], format!("scoped_principal:{}", a.uid));
}
