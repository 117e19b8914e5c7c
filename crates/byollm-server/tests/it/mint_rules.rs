//! The minting rules of DESIGN §3: a run token mints only when the team enabled
//! worker identity tokens, only for its own run and the team's audiences; no
//! credential of team A ever obtains a token naming team B.

use serde_json::json;

use byollm_api::routes;

use crate::common::{Harness, STS, claims_of, mint_body, two_teams, worker_tokens_on};

#[tokio::test]
async fn run_tokens_mint_only_when_enabled_for_their_own_run_and_team_audiences() {
    let h = Harness::new().await;
    let a = h.team("alpha").await;
    let b = h.team("beta").await;
    let own = routes::fill(routes::RUN_IDENTITY_TOKEN, &a.member_run);

    // Off by default: the server-side broker is the only one that mints for runs.
    let off = h
        .post(&own, Some(&a.member_run_token), &mint_body(STS, 600))
        .await
        .expect(403);
    assert_eq!(off.body["error"]["code"], "forbidden");
    assert!(
        off.body["error"]["hint"]
            .as_str()
            .unwrap()
            .contains("worker_identity_tokens")
    );
    let agent_own = routes::fill(routes::RUN_IDENTITY_TOKEN, &a.agent_run);
    h.post(&agent_own, Some(&a.agent_run_token), &mint_body(STS, 600))
        .await
        .expect(403);

    h.put_settings(&a.admin.key, &worker_tokens_on())
        .await
        .expect(200);
    let t = h
        .post(&own, Some(&a.member_run_token), &mint_body(STS, 600))
        .await
        .expect(200);
    let c = claims_of(&t.str("/token"));
    assert_eq!(
        c["sub"],
        format!("scoped_principal:{}/user:{}", a.uid, a.member.uid)
    );
    assert_eq!(c["run_id"], a.member_run.as_str());
    let t = h
        .post(&agent_own, Some(&a.agent_run_token), &mint_body(STS, 600))
        .await
        .expect(200);
    let c = claims_of(&t.str("/token"));
    assert_eq!(
        c["sub"],
        format!("scoped_principal:{}/service_account:{}", a.uid, a.agent_uid)
    );
    assert_eq!(c["actor_type"], "service_account");

    // Only its own run: another run of the team is 403, another team's run 404.
    h.post(&agent_own, Some(&a.member_run_token), &mint_body(STS, 600))
        .await
        .expect(403);
    h.post(&own, Some(&a.agent_run_token), &mint_body(STS, 600))
        .await
        .expect(403);
    let b_run = routes::fill(routes::RUN_IDENTITY_TOKEN, &b.member_run);
    let nf = h
        .post(&b_run, Some(&a.member_run_token), &mint_body(STS, 600))
        .await
        .expect(404);
    assert_eq!(nf.body["error"]["code"], "not_found");
    // Not even the member who started the run may mint with the run's endpoint.
    h.post(&own, Some(&a.member.key), &mint_body(STS, 600))
        .await
        .expect(403);

    // Only the team's audiences.
    let refused = h
        .post(
            &own,
            Some(&a.member_run_token),
            &mint_body("api.partner.example", 600),
        )
        .await
        .expect(422);
    assert_eq!(refused.body["error"]["code"], "refused");
    h.post(
        routes::IDENTITY_TOKEN,
        Some(&a.member.key),
        &mint_body("api.partner.example", 600),
    )
    .await
    .expect(422);
    h.put_settings(
        &a.admin.key,
        &json!({"worker_identity_tokens": true, "token_audiences": [STS, "api.partner.example"]}),
    )
    .await
    .expect(200);
    let t = h
        .post(
            &own,
            Some(&a.member_run_token),
            &mint_body("api.partner.example", 600),
        )
        .await
        .expect(200);
    assert_eq!(claims_of(&t.str("/token"))["aud"], "api.partner.example");
    // Team B's audiences are its own.
    h.put_settings(&b.admin.key, &worker_tokens_on())
        .await
        .expect(200);
    h.post(
        &b_run,
        Some(&b.member_run_token),
        &mint_body("api.partner.example", 600),
    )
    .await
    .expect(422);

    // Turning it off takes effect on the next request.
    h.put_settings(&a.admin.key, &json!({})).await.expect(200);
    h.post(&own, Some(&a.member_run_token), &mint_body(STS, 600))
        .await
        .expect(403);
}

#[tokio::test]
async fn team_a_never_obtains_a_token_naming_team_b() {
    let h = Harness::new().await;
    let (a, b) = two_teams(&h).await;
    h.put_settings(
        &b.admin.key,
        &json!({"worker_identity_tokens": true, "subject_template": ["scoped_principal", "run_id"]}),
    )
    .await
    .expect(200);
    let a_creds = [
        ("owner", a.owner.key.clone()),
        ("admin", a.admin.key.clone()),
        ("member", a.member.key.clone()),
        ("agent key", a.agent_key.clone()),
        ("member run", a.member_run_token.clone()),
        ("agent run", a.agent_run_token.clone()),
    ];
    let mut tokens = Vec::new();
    for (who, cred) in &a_creds {
        let cred = Some(cred.as_str());
        // The interactive route: for the caller only.
        let r = h
            .post(routes::IDENTITY_TOKEN, cred, &mint_body(STS, 600))
            .await;
        if r.status == 200 {
            tokens.push(r.str("/token"));
        }
        // B's runs, by id: 404 whoever asks.
        for run in [&b.member_run, &b.agent_run] {
            let r = h
                .post(
                    &routes::fill(routes::RUN_IDENTITY_TOKEN, run),
                    cred,
                    &mint_body(STS, 600),
                )
                .await;
            assert_eq!(
                r.status.as_u16(),
                404,
                "{who} minting for B's run: {}",
                r.body
            );
        }
        // A run as B's agent, or a key for it: never.
        let r = h
            .post(routes::RUNS, cred, &json!({"agent_uid": b.agent_uid}))
            .await;
        assert!(
            matches!(r.status.as_u16(), 403 | 404),
            "{who} starting B's agent: {}",
            r.body
        );
        let r = h
            .post(
                routes::API_KEYS,
                cred,
                &json!({"name": "x", "agent_uid": b.agent_uid}),
            )
            .await;
        assert!(
            matches!(r.status.as_u16(), 403 | 404),
            "{who} keying B's agent: {}",
            r.body
        );
        for path in [
            routes::fill(routes::RUN, &b.member_run),
            routes::fill(routes::AGENT_IDENTITY, &b.agent_uid),
        ] {
            let r = h.get(&path, cred).await;
            assert_eq!(r.status.as_u16(), 404, "{who} reading {path}");
        }
        // Runs it may start, and their tokens' own mints.
        let r = h.post(routes::RUNS, cred, &json!({})).await;
        if r.status == 201 {
            let (id, token) = (r.str("/run_id"), r.str("/workload_token"));
            let m = h
                .post(
                    &routes::fill(routes::RUN_IDENTITY_TOKEN, &id),
                    Some(&token),
                    &mint_body(STS, 600),
                )
                .await
                .expect(200);
            tokens.push(m.str("/token"));
        }
    }
    for (run, token) in [
        (&a.member_run, &a.member_run_token),
        (&a.agent_run, &a.agent_run_token),
    ] {
        let m = h
            .post(
                &routes::fill(routes::RUN_IDENTITY_TOKEN, run),
                Some(token),
                &mint_body(STS, 600),
            )
            .await
            .expect(200);
        tokens.push(m.str("/token"));
    }
    // owner, admin, member interactive + runs by owner, admin, member, agent key +
    // the two fixture runs.
    assert_eq!(tokens.len(), 3 + 4 + 2);
    let prefix = format!("scoped_principal:{}/", a.uid);
    for t in &tokens {
        let c = claims_of(t);
        let sub = c["sub"].as_str().unwrap();
        assert!(sub.starts_with(&prefix), "{sub}");
        assert!(
            !sub.contains(&b.uid) && !sub.contains(&b.agent_uid),
            "{sub}"
        );
        assert_eq!(c["team_uid"], a.uid.as_str());
        assert_ne!(c["principal_uid"], b.agent_uid.as_str());
    }
}

/// The doctor's route: an admin mints a named agent's token without starting a
/// run (nothing billed), whatever `worker_identity_tokens` says; the audit row
/// names the admin; a member cannot, and another team's agent is not found.
#[tokio::test]
async fn admins_mint_an_agents_token_for_diagnosis_without_a_run() {
    let h = Harness::new().await;
    let a = h.team("alpha").await;
    let b = h.team("beta").await;
    let path = routes::fill(routes::AGENT_IDENTITY_TOKEN, &a.agent_uid);
    let t = h
        .post(&path, Some(&a.admin.key), &mint_body(STS, 300))
        .await
        .expect(200);
    let c = claims_of(&t.str("/token"));
    assert_eq!(
        c["sub"],
        format!("scoped_principal:{}/service_account:{}", a.uid, a.agent_uid)
    );
    assert!(
        c.get("run_id").is_none_or(serde_json::Value::is_null),
        "{c}"
    );
    let audit = h.core.store().list_audit(&a.uid, 100).await.unwrap();
    assert!(
        audit.iter().any(|r| r.jti == c["jti"].as_str().unwrap()
            && r.requested_by.contains(&a.admin.uid)
            && r.requested_by.contains(&a.agent_uid)),
        "{audit:?}"
    );
    let usage = h.get(routes::USAGE, Some(&a.admin.key)).await.expect(200);
    let platform_before = usage.body["buckets"]["platform"].as_f64().unwrap();
    h.post(&path, Some(&a.admin.key), &mint_body(STS, 300))
        .await
        .expect(200);
    let usage = h.get(routes::USAGE, Some(&a.admin.key)).await.expect(200);
    assert_eq!(
        usage.body["buckets"]["platform"].as_f64().unwrap(),
        platform_before,
        "minting for diagnosis must not bill a run"
    );
    h.post(&path, Some(&a.member.key), &mint_body(STS, 300))
        .await
        .expect(403);
    h.post(&path, Some(&b.admin.key), &mint_body(STS, 300))
        .await
        .expect(404);
    // Audience and lifetime follow the same rules as every mint.
    h.post(
        &path,
        Some(&a.admin.key),
        &mint_body("https://elsewhere.example", 300),
    )
    .await
    .expect(422);
}

#[tokio::test]
async fn an_unavailable_agents_run_mints_nothing() {
    let h = Harness::new().await;
    let a = h.team("alpha").await;
    h.put_settings(&a.admin.key, &worker_tokens_on())
        .await
        .expect(200);
    let own = routes::fill(routes::RUN_IDENTITY_TOKEN, &a.agent_run);
    h.post(&own, Some(&a.agent_run_token), &mint_body(STS, 600))
        .await
        .expect(200);
    h.json(
        axum::http::Method::PATCH,
        &routes::fill(routes::AGENT_IDENTITY, &a.agent_uid),
        Some(&a.admin.key),
        &json!({"available": false}),
    )
    .await
    .expect(200);
    let refused = h
        .post(&own, Some(&a.agent_run_token), &mint_body(STS, 600))
        .await
        .expect(403);
    assert!(
        refused.body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("not available")),
        "{}",
        refused.body
    );
}
