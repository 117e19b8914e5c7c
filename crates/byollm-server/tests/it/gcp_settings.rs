//! Google Vertex AI settings and tokens (issue 17) through the HTTP API, on
//! the test store (SQLite, or PostgreSQL under `BYOLLM_TEST_STORE=postgres`):
//! the host round-trips, a bad field is a 400 naming it, and a team mints for
//! its own workload identity provider (with `team` and `actor_type` claims)
//! but never for another team's.

use axum::http::Method;
use serde_json::{Value, json};

use byollm_api::routes;

use crate::common::{Harness, claims_of, mint_body};

fn provider(pool: &str) -> String {
    format!(
        "//iam.googleapis.com/projects/123456789012/locations/global/workloadIdentityPools/{pool}/providers/byollm-issuer"
    )
}

fn gcp_host(pool: &str) -> Value {
    json!({"hosts": {"gcp_vertex": {
        "enabled": true,
        "project_id": "acme-ml-prod",
        "project_number": "123456789012",
        "pool_id": pool,
        "provider_id": "byollm-issuer",
        "location": "us-east5",
        "service_account": "vertex@acme-ml-prod.iam.gserviceaccount.com",
    }}, "models": {"claude-sonnet-4-6": {
        "aws_bedrock": {"enabled": true},
        "direct_api": {"enabled": true},
        "gcp_vertex": {"enabled": true, "model_ref": "claude-sonnet-4-6"},
    }}})
}

#[tokio::test]
async fn the_gcp_host_round_trips_and_bad_fields_are_named() {
    let h = Harness::new().await;
    let a = h.team("alpha").await;
    let got = h
        .get(routes::TEAM_LLM_SETTINGS, Some(&a.admin.key))
        .await
        .expect(200);
    assert_eq!(
        got.body["hosts"]["gcp_vertex"]["enabled"], false,
        "new teams: off"
    );

    h.put_settings(&a.admin.key, &gcp_host("alpha-pool"))
        .await
        .expect(200);
    let got = h
        .get(routes::TEAM_LLM_SETTINGS, Some(&a.admin.key))
        .await
        .expect(200);
    let host = &got.body["hosts"]["gcp_vertex"];
    assert_eq!(host["pool_id"], "alpha-pool");
    assert_eq!(host["location"], "us-east5");
    assert_eq!(
        host["service_account"],
        "vertex@acme-ml-prod.iam.gserviceaccount.com"
    );
    assert_eq!(host["quota_project"], Value::Null);
    assert_eq!(
        got.body["models"]["claude-sonnet-4-6"]["gcp_vertex"]["model_ref"],
        "claude-sonnet-4-6"
    );

    for (patch, field) in [
        (
            json!({"project_number": "acme"}),
            "hosts.gcp_vertex.project_number",
        ),
        (
            json!({"pool_id": "gcp-reserved"}),
            "hosts.gcp_vertex.pool_id",
        ),
        (json!({"location": "moon-1"}), "hosts.gcp_vertex.location"),
        (json!({"provider_id": null}), "hosts.gcp_vertex.provider_id"),
        (json!({"unknown": 1}), "hosts.gcp_vertex.unknown"),
    ] {
        let r = h
            .json(
                Method::PATCH,
                routes::TEAM_LLM_SETTINGS,
                Some(&a.admin.key),
                &json!({"hosts": {"gcp_vertex": patch}}),
            )
            .await
            .expect(400);
        let named = r.field().unwrap_or_default().to_owned();
        assert!(
            named == field
                || (field.ends_with("unknown") && r.body.to_string().contains("unknown")),
            "{patch}: {}",
            r.body
        );
    }
    // Nothing of the refused patches stuck.
    let got = h
        .get(routes::TEAM_LLM_SETTINGS, Some(&a.admin.key))
        .await
        .expect(200);
    assert_eq!(got.body["hosts"]["gcp_vertex"]["pool_id"], "alpha-pool");
}

#[tokio::test]
async fn a_team_mints_for_its_own_provider_only() {
    let h = Harness::new().await;
    let a = h.team("alpha").await;
    let b = h.team("beta").await;
    // Before the host names a provider, its audience is refused like any other.
    h.post(
        routes::IDENTITY_TOKEN,
        Some(&a.member.key),
        &mint_body(&provider("alpha-pool"), 600),
    )
    .await
    .expect(422);
    h.put_settings(&a.admin.key, &gcp_host("alpha-pool"))
        .await
        .expect(200);
    h.put_settings(&b.admin.key, &gcp_host("beta-pool"))
        .await
        .expect(200);

    let t = h
        .post(
            routes::IDENTITY_TOKEN,
            Some(&a.member.key),
            &mint_body(&provider("alpha-pool"), 600),
        )
        .await
        .expect(200);
    let c = claims_of(&t.str("/token"));
    assert_eq!(c["aud"], provider("alpha-pool"));
    assert_eq!(
        c["sub"],
        format!("scoped_principal:{}/user:{}", a.uid, a.member.uid)
    );
    assert_eq!(c["team"], a.uid.as_str());
    assert_eq!(c["actor_type"], "user");
    assert!(
        c["sub"].as_str().unwrap().len() <= 127,
        "google.subject cap"
    );

    // The https: form names the same provider.
    let https = provider("alpha-pool").replacen("//", "https://", 1);
    h.post(
        routes::IDENTITY_TOKEN,
        Some(&a.member.key),
        &mint_body(&https, 600),
    )
    .await
    .expect(200);

    // Team B's provider is not an audience team A may mint for.
    let r = h
        .post(
            routes::IDENTITY_TOKEN,
            Some(&a.member.key),
            &mint_body(&provider("beta-pool"), 600),
        )
        .await
        .expect(422);
    assert!(
        r.body
            .to_string()
            .contains("not one of the team's token audiences"),
        "{}",
        r.body
    );

    // AWS tokens are unchanged: no `team` claim.
    let t = h
        .post(
            routes::IDENTITY_TOKEN,
            Some(&a.member.key),
            &mint_body(crate::common::STS, 600),
        )
        .await
        .expect(200);
    assert!(claims_of(&t.str("/token")).get("team").is_none());
}
