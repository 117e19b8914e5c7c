//! Who may call what: every route and method against every kind of caller, and
//! the minting rules of DESIGN §3 (run tokens, audiences, team isolation).

use std::fmt::Write as _;

use axum::http::Method;
use serde_json::{Value, json};

use byollm_api::routes;

use crate::common::{Harness, STS, TeamFx, claims_of, mint_body, worker_tokens_on};

/// The callers, in table column order.
const CALLERS: [&str; 9] = [
    "owner",
    "admin",
    "member",
    "agent key",
    "run (own)",
    "run (other)",
    "B admin",
    "no key",
    "garbage",
];

/// A well-formed key that was never issued: it reaches the store lookup.
const GARBAGE: &str = "byollm_key_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

/// What the `{param}` of a row is filled with; fresh objects are made per cell
/// so destructive calls do not disturb the other cells.
enum Target {
    /// No parameter.
    None,
    /// Team A's named agent.
    Agent,
    /// A new run of team A's member; its own token is the "run (own)" caller.
    FreshRun,
    /// A new agent of team A.
    FreshAgent,
    /// A new member of team A.
    FreshMember,
    /// A new key of team A's member.
    FreshMemberKey,
    /// A new key of team A's named agent.
    FreshAgentKey,
}

struct Row {
    method: Method,
    template: &'static str,
    target: Target,
    body: Option<fn(u32, &TeamFx) -> Value>,
    expect: [u16; 9],
}

fn row(method: Method, template: &'static str, target: Target, expect: [u16; 9]) -> Row {
    Row {
        method,
        template,
        target,
        body: None,
        expect,
    }
}

fn with_body(mut r: Row, body: fn(u32, &TeamFx) -> Value) -> Row {
    r.body = Some(body);
    r
}

/// Every route of `byollm_api::routes`, so a new route cannot skip the matrix.
const ALL_ROUTES: &[&str] = &[
    routes::DISCOVERY,
    routes::JWKS,
    routes::HEALTHZ,
    routes::READYZ,
    routes::ME,
    routes::ME_SETTINGS,
    routes::TEAM_LLM_SETTINGS,
    routes::TEAM_MEMBERS,
    routes::TEAM_MEMBER,
    routes::API_KEYS,
    routes::API_KEY,
    routes::AGENT_IDENTITIES,
    routes::AGENT_IDENTITY,
    routes::RUNS,
    routes::RUN,
    routes::RUN_FINISH,
    routes::RUN_IDENTITY_TOKEN,
    routes::IDENTITY_TOKEN,
    routes::USAGE,
];

fn matrix() -> Vec<Row> {
    use Method as M;
    use Target as T;
    const ALL_OK: [u16; 9] = [200; 9];
    const MEMBERS_READ: [u16; 9] = [200, 200, 200, 403, 403, 403, 200, 401, 401];
    const ADMINS: [u16; 9] = [200, 200, 403, 403, 403, 403, 200, 401, 401];
    vec![
        row(M::GET, routes::DISCOVERY, T::None, ALL_OK),
        row(M::GET, routes::JWKS, T::None, ALL_OK),
        row(M::GET, routes::HEALTHZ, T::None, ALL_OK),
        row(M::GET, routes::READYZ, T::None, ALL_OK),
        row(
            M::GET,
            routes::ME,
            T::None,
            [200, 200, 200, 200, 200, 200, 200, 401, 401],
        ),
        row(M::GET, routes::ME_SETTINGS, T::None, MEMBERS_READ),
        with_body(
            row(M::PUT, routes::ME_SETTINGS, T::None, MEMBERS_READ),
            |_, _| json!({"aws_bedrock_opt_in": false}),
        ),
        row(M::GET, routes::TEAM_LLM_SETTINGS, T::None, MEMBERS_READ),
        // Keeps worker identity tokens on, which the run rows below rely on.
        with_body(
            row(M::PUT, routes::TEAM_LLM_SETTINGS, T::None, ADMINS),
            |_, _| worker_tokens_on(),
        ),
        row(M::GET, routes::TEAM_MEMBERS, T::None, ADMINS),
        with_body(
            row(
                M::POST,
                routes::TEAM_MEMBERS,
                T::None,
                [201, 201, 403, 403, 403, 403, 201, 401, 401],
            ),
            |n, _| json!({"email": format!("new{n}@example.com"), "role": "member"}),
        ),
        row(
            M::DELETE,
            routes::TEAM_MEMBER,
            T::FreshMember,
            [204, 204, 403, 403, 403, 403, 404, 401, 401],
        ),
        row(
            M::GET,
            routes::API_KEYS,
            T::None,
            [200, 200, 200, 200, 403, 403, 200, 401, 401],
        ),
        with_body(
            row(
                M::POST,
                routes::API_KEYS,
                T::None,
                [201, 201, 201, 403, 403, 403, 201, 401, 401],
            ),
            |n, _| json!({"name": format!("key {n}")}),
        ),
        with_body(
            row(
                M::POST,
                routes::API_KEYS,
                T::None,
                [201, 201, 403, 403, 403, 403, 404, 401, 401],
            ),
            |n, a| json!({"name": format!("agent key {n}"), "agent_uid": a.agent_uid}),
        ),
        row(
            M::DELETE,
            routes::API_KEY,
            T::FreshMemberKey,
            [204, 204, 204, 403, 403, 403, 404, 401, 401],
        ),
        row(
            M::DELETE,
            routes::API_KEY,
            T::FreshAgentKey,
            [204, 204, 403, 204, 403, 403, 404, 401, 401],
        ),
        row(M::GET, routes::AGENT_IDENTITIES, T::None, MEMBERS_READ),
        with_body(
            row(
                M::POST,
                routes::AGENT_IDENTITIES,
                T::None,
                [201, 201, 403, 403, 403, 403, 201, 401, 401],
            ),
            |n, _| json!({"name": format!("agent {n}")}),
        ),
        // An agent's key, and its runs' tokens, may read the agent itself.
        row(
            M::GET,
            routes::AGENT_IDENTITY,
            T::Agent,
            [200, 200, 200, 200, 403, 200, 404, 401, 401],
        ),
        with_body(
            row(
                M::PATCH,
                routes::AGENT_IDENTITY,
                T::Agent,
                [200, 200, 403, 403, 403, 403, 404, 401, 401],
            ),
            |n, _| json!({"description": format!("edit {n}")}),
        ),
        row(
            M::DELETE,
            routes::AGENT_IDENTITY,
            T::FreshAgent,
            [204, 204, 403, 403, 403, 403, 404, 401, 401],
        ),
        with_body(
            row(
                M::POST,
                routes::RUNS,
                T::None,
                [201, 201, 201, 201, 403, 403, 201, 401, 401],
            ),
            |_, _| json!({}),
        ),
        with_body(
            row(
                M::POST,
                routes::RUNS,
                T::None,
                [201, 201, 201, 201, 403, 403, 404, 401, 401],
            ),
            |_, a| json!({"agent_uid": a.agent_uid}),
        ),
        row(
            M::GET,
            routes::RUN,
            T::FreshRun,
            [200, 200, 200, 403, 200, 403, 404, 401, 401],
        ),
        with_body(
            row(
                M::POST,
                routes::RUN_FINISH,
                T::FreshRun,
                [200, 200, 200, 403, 200, 403, 404, 401, 401],
            ),
            |_, _| json!({}),
        ),
        with_body(
            row(
                M::POST,
                routes::RUN_IDENTITY_TOKEN,
                T::FreshRun,
                [403, 403, 403, 403, 200, 403, 404, 401, 401],
            ),
            |_, _| mint_body(STS, 600),
        ),
        with_body(
            row(
                M::POST,
                routes::IDENTITY_TOKEN,
                T::None,
                [200, 200, 200, 403, 403, 403, 200, 401, 401],
            ),
            |_, _| mint_body(STS, 600),
        ),
        // Usage arrives with the credits issue: until then an authenticated caller
        // gets the JSON 404 of an unknown route, and anyone else still a 401.
        row(
            M::GET,
            routes::USAGE,
            T::None,
            [404, 404, 404, 404, 404, 404, 404, 401, 401],
        ),
    ]
}

/// Two teams with worker identity tokens on.
async fn two_teams(h: &Harness) -> (TeamFx, TeamFx) {
    let a = h.team("alpha").await;
    let b = h.team("beta").await;
    for t in [&a, &b] {
        h.put_settings(&t.admin.key, &worker_tokens_on())
            .await
            .expect(200);
    }
    (a, b)
}

#[tokio::test]
async fn every_route_by_every_caller() {
    let h = Harness::new().await;
    let (a, b) = two_teams(&h).await;
    let rows = matrix();
    for route in ALL_ROUTES {
        assert!(
            rows.iter().any(|r| r.template == *route),
            "{route} is missing from the matrix"
        );
    }

    let mut table = String::new();
    let _ = write!(table, "{:<7} {:<46}", "", "");
    for c in CALLERS {
        let _ = write!(table, " {c:>11}");
    }
    table.push('\n');
    let mut failures = 0;
    let mut n = 0u32;
    for r in &rows {
        let label = match (&r.target, r.body.map(|f| f(0, &a))) {
            (Target::FreshMemberKey, _) => format!("{} (member's)", r.template),
            (Target::FreshAgentKey, _) => format!("{} (agent's)", r.template),
            (_, Some(b)) if b.get("agent_uid").is_some() => format!("{} +agent_uid", r.template),
            _ => r.template.to_owned(),
        };
        let _ = write!(table, "{:<7} {label:<46}", r.method.as_str());
        for (col, &expected) in r.expect.iter().enumerate() {
            n += 1;
            let mut own_token = None;
            let param = match r.target {
                Target::None => None,
                Target::Agent => Some(a.agent_uid.clone()),
                Target::FreshRun => {
                    let (id, token) = h.run(&a.member.key, &json!({})).await;
                    own_token = Some(token);
                    Some(id)
                }
                Target::FreshAgent => Some(
                    h.post(
                        routes::AGENT_IDENTITIES,
                        Some(&a.admin.key),
                        &json!({"name": format!("doomed {n}")}),
                    )
                    .await
                    .expect(201)
                    .str("/uid"),
                ),
                Target::FreshMember => Some(
                    h.post(
                        routes::TEAM_MEMBERS,
                        Some(&a.owner.key),
                        &json!({"email": format!("doomed{n}@example.com"), "role": "member"}),
                    )
                    .await
                    .expect(201)
                    .str("/uid"),
                ),
                Target::FreshMemberKey => Some(
                    h.post(
                        routes::API_KEYS,
                        Some(&a.member.key),
                        &json!({"name": "doomed"}),
                    )
                    .await
                    .expect(201)
                    .str("/id"),
                ),
                Target::FreshAgentKey => Some(
                    h.post(
                        routes::API_KEYS,
                        Some(&a.admin.key),
                        &json!({"name": "doomed", "agent_uid": a.agent_uid}),
                    )
                    .await
                    .expect(201)
                    .str("/id"),
                ),
            };
            let path = match &param {
                Some(p) => routes::fill(r.template, p),
                None => r.template.to_owned(),
            };
            let cred: Option<&str> = match col {
                0 => Some(&a.owner.key),
                1 => Some(&a.admin.key),
                2 => Some(&a.member.key),
                3 => Some(&a.agent_key),
                4 => Some(own_token.as_deref().unwrap_or(&a.member_run_token)),
                5 => Some(&a.agent_run_token),
                6 => Some(&b.admin.key),
                7 => None,
                _ => Some(GARBAGE),
            };
            let body = r.body.map(|f| serde_json::to_vec(&f(n, &a)).unwrap());
            let resp = h.send(r.method.clone(), &path, cred, body).await;
            let got = resp.status.as_u16();
            if got == expected {
                let _ = write!(table, " {got:>11}");
            } else {
                failures += 1;
                let _ = write!(table, " {:>11}", format!("!{got}≠{expected}"));
            }
            // Every refusal is a JSON error body with a stable code.
            if got >= 400 {
                assert!(
                    resp.body
                        .pointer("/error/code")
                        .and_then(Value::as_str)
                        .is_some(),
                    "{} {path} as {}: {got} without a JSON error body: {:?}",
                    r.method,
                    CALLERS[col],
                    String::from_utf8_lossy(&resp.raw)
                );
            }
        }
        table.push('\n');
    }
    assert!(
        failures == 0,
        "{failures} cells differ (!actual≠expected):\n{table}"
    );
}

#[tokio::test]
async fn unsupported_methods_are_405_after_authentication() {
    let h = Harness::new().await;
    let a = h.team("alpha").await;
    for (method, path) in [
        (Method::DELETE, routes::ME.to_owned()),
        (Method::POST, routes::TEAM_LLM_SETTINGS.to_owned()),
        (Method::PUT, routes::TEAM_MEMBERS.to_owned()),
        (Method::GET, routes::fill(routes::API_KEY, "key_x")),
        (
            Method::PUT,
            routes::fill(routes::AGENT_IDENTITY, &a.agent_uid),
        ),
        (Method::GET, routes::RUNS.to_owned()),
        (Method::GET, routes::fill(routes::RUN_FINISH, &a.member_run)),
        (Method::GET, routes::IDENTITY_TOKEN.to_owned()),
    ] {
        let anon = h.send(method.clone(), &path, None, None).await;
        assert_eq!(anon.status.as_u16(), 401, "{method} {path} anonymous");
        let authed = h
            .send(method.clone(), &path, Some(&a.owner.key), None)
            .await;
        assert_eq!(authed.status.as_u16(), 405, "{method} {path}");
        // DESIGN §6: errors are `{"error": {"code", "message"}}`, this one too.
        assert!(
            authed
                .body
                .pointer("/error/code")
                .and_then(Value::as_str)
                .is_some(),
            "{method} {path}: 405 without a JSON error body: {:?}",
            String::from_utf8_lossy(&authed.raw)
        );
        assert!(
            authed.headers.contains_key("allow"),
            "{method} {path}: 405 without Allow"
        );
    }
}

#[tokio::test]
async fn credentials_in_either_header_and_malformed_ones_refused() {
    let h = Harness::new().await;
    let a = h.team("alpha").await;
    let me = |header: &'static str, value: String| {
        let router = h.router.clone();
        async move {
            use tower::ServiceExt as _;
            let req = axum::http::Request::builder()
                .uri(routes::ME)
                .header(header, value)
                .body(axum::body::Body::empty())
                .unwrap();
            router.oneshot(req).await.unwrap().status().as_u16()
        }
    };
    assert_eq!(me("x-api-key", a.member.key.clone()).await, 200);
    assert_eq!(
        me("authorization", format!("bearer {}", a.member.key)).await,
        200
    );
    assert_eq!(
        me("authorization", format!("Bearer {}", a.member_run_token)).await,
        200
    );
    assert_eq!(
        me("authorization", format!("Basic {}", a.member.key)).await,
        401
    );
    assert_eq!(me("authorization", a.member.key.clone()).await, 401);
    assert_eq!(
        me("authorization", format!("Bearer {}x", a.member.key)).await,
        401
    );
    assert_eq!(
        me(
            "authorization",
            format!("Bearer {}", &a.member.key[..a.member.key.len() - 1])
        )
        .await,
        401
    );
    assert_eq!(
        me(
            "authorization",
            format!("Bearer byollm_key_{}", "a".repeat(500))
        )
        .await,
        401
    );
    assert_eq!(me("authorization", "Bearer ".to_owned()).await, 401);

    let me_body = h
        .get(routes::ME, Some(&a.agent_run_token))
        .await
        .expect(200);
    assert_eq!(me_body.body["credential"], "run_token");
    assert_eq!(me_body.body["run_id"], a.agent_run.as_str());
    assert_eq!(
        me_body.body["actor"],
        json!({"type": "service_account", "uid": a.agent_uid})
    );
    let me_body = h.get(routes::ME, Some(&a.admin.key)).await.expect(200);
    assert_eq!(me_body.body["role"], "admin");
    assert_eq!(me_body.body["team"]["uid"], a.uid.as_str());
}

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
