//! Tenancy rules over HTTP: another team's objects are 404 and survive the
//! attempt; revocations (finished run, deleted key, removed member, deleted
//! agent) take effect on the next request; role rules inside a team.

use axum::http::Method;
use serde_json::json;

use byollm_api::routes;

use crate::common::{Harness, STS, mint_body, two_teams};

#[tokio::test]
async fn another_teams_objects_are_404_and_survive() {
    let h = Harness::new().await;
    let (a, b) = two_teams(&h).await;
    let a_key_id = h
        .post(
            routes::API_KEYS,
            Some(&a.member.key),
            &json!({"name": "mine"}),
        )
        .await
        .expect(201)
        .str("/id");
    let agent = routes::fill(routes::AGENT_IDENTITY, &a.agent_uid);
    let run = routes::fill(routes::RUN, &a.member_run);
    let finish = routes::fill(routes::RUN_FINISH, &a.member_run);
    let key = routes::fill(routes::API_KEY, &a_key_id);
    let member = routes::fill(routes::TEAM_MEMBER, &a.member.uid);
    for cred in [&b.owner.key, &b.admin.key, &b.member.key] {
        let c = Some(cred.as_str());
        for r in [
            h.get(&agent, c).await,
            h.json(
                Method::PATCH,
                &agent,
                c,
                &json!({"description": "mine now"}),
            )
            .await,
            h.send(Method::DELETE, &agent, c, None).await,
            h.get(&run, c).await,
            h.post(&finish, c, &json!({})).await,
            h.send(Method::DELETE, &key, c, None).await,
            h.send(Method::DELETE, &member, c, None).await,
        ] {
            // A member of B may be refused for its role first; admins and owners
            // must learn nothing but "not found".
            if cred == &b.member.key && r.status == 403 {
                continue;
            }
            assert_eq!(r.status.as_u16(), 404, "{}", r.body);
            assert_eq!(r.body["error"]["code"], "not_found");
        }
    }
    let got = h.get(&agent, Some(&a.admin.key)).await.expect(200);
    assert_eq!(got.body["description"], "", "B's PATCH changed nothing");
    assert_eq!(
        h.get(&run, Some(&a.admin.key)).await.expect(200).body["state"],
        "running"
    );
    h.get(routes::ME, Some(&a.member.key)).await.expect(200);
    h.get(routes::ME, Some(&a.member_run_token))
        .await
        .expect(200);
    let keys = h
        .get(routes::API_KEYS, Some(&a.member.key))
        .await
        .expect(200);
    assert!(
        keys.body["api_keys"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["id"] == a_key_id.as_str())
    );
}

#[tokio::test]
async fn revocations_take_effect_at_once() {
    let h = Harness::new().await;
    let (a, _b) = two_teams(&h).await;

    // A finished run's token: accepted (and cached) before, refused right after.
    let own = routes::fill(routes::RUN_IDENTITY_TOKEN, &a.member_run);
    h.get(routes::ME, Some(&a.member_run_token))
        .await
        .expect(200);
    h.post(&own, Some(&a.member_run_token), &mint_body(STS, 600))
        .await
        .expect(200);
    let done = h
        .post(
            &routes::fill(routes::RUN_FINISH, &a.member_run),
            Some(&a.member.key),
            &json!({}),
        )
        .await
        .expect(200);
    assert_eq!(done.body["state"], "finished");
    assert!(done.body["finished_at"].is_string());
    h.get(routes::ME, Some(&a.member_run_token))
        .await
        .expect(401);
    h.post(&own, Some(&a.member_run_token), &mint_body(STS, 600))
        .await
        .expect(401);
    h.post(
        &routes::fill(routes::RUN_FINISH, &a.member_run),
        Some(&a.member.key),
        &json!({}),
    )
    .await
    .expect(409);

    // A run that finishes itself, as failed.
    let (id, token) = h.run(&a.member.key, &json!({})).await;
    h.get(routes::ME, Some(&token)).await.expect(200);
    let r = h
        .post(
            &routes::fill(routes::RUN_FINISH, &id),
            Some(&token),
            &json!({"state": "failed"}),
        )
        .await
        .expect(200);
    assert_eq!(r.body["state"], "failed");
    h.get(routes::ME, Some(&token)).await.expect(401);

    // A deleted key.
    let k = h
        .post(
            routes::API_KEYS,
            Some(&a.member.key),
            &json!({"name": "short-lived"}),
        )
        .await
        .expect(201);
    let (kid, key) = (k.str("/id"), k.str("/key"));
    h.get(routes::ME, Some(&key)).await.expect(200);
    h.send(
        Method::DELETE,
        &routes::fill(routes::API_KEY, &kid),
        Some(&key),
        None,
    )
    .await
    .expect(204);
    h.get(routes::ME, Some(&key)).await.expect(401);

    // A removed member's keys.
    let m = h
        .add_member(&a.uid, &a.admin.key, "leaver@example.com", "member")
        .await;
    h.get(routes::ME, Some(&m.key)).await.expect(200);
    h.send(
        Method::DELETE,
        &routes::fill(routes::TEAM_MEMBER, &m.uid),
        Some(&a.admin.key),
        None,
    )
    .await
    .expect(204);
    h.get(routes::ME, Some(&m.key)).await.expect(401);

    // A deleted agent's key and its open run's token.
    h.get(routes::ME, Some(&a.agent_key)).await.expect(200);
    h.get(routes::ME, Some(&a.agent_run_token))
        .await
        .expect(200);
    h.send(
        Method::DELETE,
        &routes::fill(routes::AGENT_IDENTITY, &a.agent_uid),
        Some(&a.admin.key),
        None,
    )
    .await
    .expect(204);
    h.get(routes::ME, Some(&a.agent_key)).await.expect(401);
    h.get(routes::ME, Some(&a.agent_run_token))
        .await
        .expect(401);
}

#[tokio::test]
async fn role_rules_within_a_team() {
    let h = Harness::new().await;
    let a = h.team("alpha").await;
    // Only owners add or remove owners; the last owner stays.
    h.post(
        routes::TEAM_MEMBERS,
        Some(&a.admin.key),
        &json!({"email": "o2@example.com", "role": "owner"}),
    )
    .await
    .expect(403);
    h.send(
        Method::DELETE,
        &routes::fill(routes::TEAM_MEMBER, &a.owner.uid),
        Some(&a.admin.key),
        None,
    )
    .await
    .expect(403);
    h.send(
        Method::DELETE,
        &routes::fill(routes::TEAM_MEMBER, &a.owner.uid),
        Some(&a.owner.key),
        None,
    )
    .await
    .expect(409);
    h.post(
        routes::TEAM_MEMBERS,
        Some(&a.owner.key),
        &json!({"email": "o2@example.com", "role": "owner"}),
    )
    .await
    .expect(201);
    // A duplicate email is a conflict.
    h.post(
        routes::TEAM_MEMBERS,
        Some(&a.owner.key),
        &json!({"email": "o2@example.com", "role": "member"}),
    )
    .await
    .expect(409);
    // An agent key starts runs only for its own agent.
    let other = h
        .post(
            routes::AGENT_IDENTITIES,
            Some(&a.admin.key),
            &json!({"name": "other"}),
        )
        .await
        .expect(201)
        .str("/uid");
    h.post(
        routes::RUNS,
        Some(&a.agent_key),
        &json!({"agent_uid": other}),
    )
    .await
    .expect(403);
    // An unavailable agent gets no runs.
    h.json(
        Method::PATCH,
        &routes::fill(routes::AGENT_IDENTITY, &other),
        Some(&a.admin.key),
        &json!({"available": false}),
    )
    .await
    .expect(200);
    h.post(
        routes::RUNS,
        Some(&a.member.key),
        &json!({"agent_uid": other}),
    )
    .await
    .expect(422);
    // A member sees only their own keys; an admin sees the team's.
    let mine = h
        .get(routes::API_KEYS, Some(&a.member.key))
        .await
        .expect(200);
    let mine = mine.body["api_keys"].as_array().unwrap().clone();
    assert!(!mine.is_empty());
    assert!(
        mine.iter()
            .all(|k| k["owner"]["uid"] == a.member.uid.as_str())
    );
    assert!(
        mine.iter().all(|k| k.get("key").is_none()),
        "keys are never listed"
    );
    let all = h
        .get(routes::API_KEYS, Some(&a.admin.key))
        .await
        .expect(200);
    assert!(all.body["api_keys"].as_array().unwrap().len() > mine.len());
}

/// Removing a member must end what acts as them: their keys die at once (see
/// `revocations_take_effect_at_once`), and so must the workload tokens of their
/// open runs, or a removed member's sandbox keeps minting `user:<them>` tokens.
#[tokio::test]
async fn removing_a_member_ends_their_runs() {
    let h = Harness::new().await;
    let (a, _b) = two_teams(&h).await;
    let m = h
        .add_member(&a.uid, &a.admin.key, "leaver@example.com", "member")
        .await;
    let (run, token) = h.run(&m.key, &json!({})).await;
    let mint = routes::fill(routes::RUN_IDENTITY_TOKEN, &run);
    h.post(&mint, Some(&token), &mint_body(STS, 600))
        .await
        .expect(200);
    h.send(
        Method::DELETE,
        &routes::fill(routes::TEAM_MEMBER, &m.uid),
        Some(&a.admin.key),
        None,
    )
    .await
    .expect(204);
    h.post(&mint, Some(&token), &mint_body(STS, 600))
        .await
        .expect(401);
    h.get(routes::ME, Some(&token)).await.expect(401);
}

/// The `bedrock` of a run is the effective AWS config of DESIGN §4: a named
/// agent's override where set (`disabled` keeps it off), else the team's; a
/// member under `respect_user_setting` only once opted in.
#[tokio::test]
async fn runs_get_the_effective_aws_config() {
    const TEAM_ROLE: &str = "arn:aws:iam::123456789012:role/team";
    const AGENT_ROLE: &str = "arn:aws:iam::210987654321:role/agent";
    let h = Harness::new().await;
    let a = h.team("alpha").await;
    let bedrock = |body: &serde_json::Value| body["bedrock"].clone();
    let member_run = || async {
        h.post(routes::RUNS, Some(&a.member.key), &json!({}))
            .await
            .expect(201)
            .body
    };
    let agent_run = || async {
        h.post(
            routes::RUNS,
            Some(&a.member.key),
            &json!({"agent_uid": a.agent_uid}),
        )
        .await
        .expect(201)
        .body
    };
    assert_eq!(
        bedrock(&member_run().await),
        json!(null),
        "Bedrock is off by default"
    );

    let on = |enforcement: &str| {
        json!({"hosts": {"aws_bedrock": {"enabled": true, "enforcement": enforcement,
               "role_arn": TEAM_ROLE, "region": "us-east-1"}}})
    };
    h.put_settings(&a.admin.key, &on("enforce"))
        .await
        .expect(200);
    let team_target = json!({"role_arn": TEAM_ROLE, "region": "us-east-1"});
    assert_eq!(bedrock(&member_run().await), team_target);
    assert_eq!(bedrock(&agent_run().await), team_target);

    let agent = routes::fill(routes::AGENT_IDENTITY, &a.agent_uid);
    h.json(
        Method::PATCH,
        &agent,
        Some(&a.admin.key),
        &json!({"inference_providers": {"aws": {"role_arn": AGENT_ROLE}}}),
    )
    .await
    .expect(200);
    assert_eq!(
        bedrock(&agent_run().await),
        json!({"role_arn": AGENT_ROLE, "region": "us-east-1"})
    );
    assert_eq!(
        bedrock(&member_run().await),
        team_target,
        "members ignore agent overrides"
    );
    h.json(
        Method::PATCH,
        &agent,
        Some(&a.admin.key),
        &json!({"inference_providers": {"aws": {"disabled": true}}}),
    )
    .await
    .expect(200);
    assert_eq!(bedrock(&agent_run().await), json!(null));

    h.put_settings(&a.admin.key, &on("respect_user_setting"))
        .await
        .expect(200);
    let run = member_run().await;
    assert_eq!(bedrock(&run), json!(null), "not opted in");
    h.json(
        Method::PUT,
        routes::ME_SETTINGS,
        Some(&a.member.key),
        &json!({"aws_bedrock_opt_in": true}),
    )
    .await
    .expect(200);
    assert_eq!(
        h.get(routes::ME_SETTINGS, Some(&a.member.key))
            .await
            .expect(200)
            .body,
        json!({"aws_bedrock_opt_in": true})
    );
    assert_eq!(bedrock(&member_run().await), team_target);
    // A run that exists already sees the change on its next read, and an ended
    // run has no target.
    let id = run["run_id"].as_str().unwrap();
    let info = h
        .get(&routes::fill(routes::RUN, id), Some(&a.member.key))
        .await
        .expect(200);
    assert_eq!(bedrock(&info.body), team_target);
    h.post(
        &routes::fill(routes::RUN_FINISH, id),
        Some(&a.member.key),
        &json!({}),
    )
    .await
    .expect(200);
    let info = h
        .get(&routes::fill(routes::RUN, id), Some(&a.member.key))
        .await
        .expect(200);
    assert_eq!(bedrock(&info.body), json!(null));
}

/// Keys are shown once, recognisable by their prefix, and listed by prefix only.
#[tokio::test]
async fn keys_are_prefixed_and_listed_without_the_secret() {
    let h = Harness::new().await;
    let a = h.team("alpha").await;
    let created = h
        .post(
            routes::API_KEYS,
            Some(&a.member.key),
            &json!({"name": "laptop"}),
        )
        .await
        .expect(201);
    let key = created.str("/key");
    assert!(key.starts_with("byollm_key_"), "{key}");
    assert!(a.member_run_token.starts_with("byollm_run_"));
    assert_eq!(
        created.body["owner"],
        json!({"type": "user", "uid": a.member.uid})
    );
    let listed = h
        .get(routes::API_KEYS, Some(&a.member.key))
        .await
        .expect(200);
    let text = String::from_utf8_lossy(&listed.raw).into_owned();
    assert!(
        !text.contains(&key) && !text.contains(&a.member.key),
        "a listing shows a key"
    );
    let entry = listed.body["api_keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == created.body["id"])
        .unwrap()
        .clone();
    assert_eq!(entry["prefix"], key[..16]);
    assert_eq!(entry["name"], "laptop");
}
