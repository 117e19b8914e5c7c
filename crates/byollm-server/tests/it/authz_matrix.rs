//! Who may call what: every route of `byollm_api::routes` and its methods
//! against every kind of caller, in one printed table, each cell checked against
//! the rule of the route's action (`byollm_core::authz`); unsupported methods,
//! credential headers and path parameters.

use std::fmt::Write as _;

use axum::http::Method;
use serde_json::{Value, json};

use byollm_api::routes;
use byollm_core::authz;
use byollm_server::routes::action_of;

use crate::authz_table::{Object, api_route_constants, needs_no_action};
use crate::common::{Harness, STS, TeamFx, mint_body, two_teams, worker_tokens_on};

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

/// Every route of `byollm_api::routes` (and the gateway's `GET /v1/models`), so a
/// new route cannot skip the matrix.
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
    routes::AGENT_IDENTITY_TOKEN,
    routes::USAGE,
    routes::TEAM_MEMBER_INVITATION,
    routes::INVITATIONS_REDEEM,
    routes::AUDIT,
    routes::MODELS,
    routes::MESSAGES,
    routes::CHAT_COMPLETIONS,
];

fn matrix() -> Vec<Row> {
    use Method as M;
    use Target as T;
    const ALL_OK: [u16; 9] = [200; 9];
    const MEMBERS_READ: [u16; 9] = [200, 200, 200, 403, 403, 403, 200, 401, 401];
    const ADMINS: [u16; 9] = [200, 200, 403, 403, 403, 403, 200, 401, 401];
    const GATEWAY_BAD_BODY: [u16; 9] = [400, 400, 400, 400, 400, 400, 400, 401, 401];
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
            |_, _| crate::common::complete_settings(&worker_tokens_on()),
        ),
        with_body(
            row(M::PATCH, routes::TEAM_LLM_SETTINGS, T::None, ADMINS),
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
        // Members list their own runs, admins the team's.
        row(M::GET, routes::RUNS, T::None, MEMBERS_READ),
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
        // Admins mint an agent's token to check its setup (the doctor); the
        // other team's admin does not find the agent.
        with_body(
            row(
                M::POST,
                routes::AGENT_IDENTITY_TOKEN,
                T::Agent,
                [200, 200, 403, 403, 403, 403, 404, 401, 401],
            ),
            |_, _| mint_body(STS, 600),
        ),
        // Members see their own usage, admins the team's.
        row(M::GET, routes::USAGE, T::None, MEMBERS_READ),
        with_body(
            row(
                M::PATCH,
                routes::TEAM_MEMBER,
                T::FreshMember,
                [200, 200, 403, 403, 403, 403, 404, 401, 401],
            ),
            |_, _| json!({"role": "admin"}),
        ),
        row(
            M::POST,
            routes::TEAM_MEMBER_INVITATION,
            T::FreshMember,
            [201, 201, 403, 403, 403, 403, 404, 401, 401],
        ),
        row(
            M::DELETE,
            routes::TEAM_MEMBER_INVITATION,
            T::FreshMember,
            [204, 204, 403, 403, 403, 403, 404, 401, 401],
        ),
        // Public: whoever calls, a code that is not live is a 401.
        with_body(
            row(M::POST, routes::INVITATIONS_REDEEM, T::None, [401; 9]),
            |_, _| json!({"code": "byollm_inv_notacode"}),
        ),
        // The audit trail is the admins'.
        row(M::GET, routes::AUDIT, T::None, ADMINS),
        // Keys and run tokens list the models they may use (DESIGN §5).
        row(
            M::GET,
            routes::MODELS,
            T::None,
            [200, 200, 200, 200, 200, 200, 200, 401, 401],
        ),
        // Any key or run token reaches the gateway, which then refuses the
        // empty body (no model) as bad input; no credential is a 401 first.
        with_body(
            row(M::POST, routes::MESSAGES, T::None, GATEWAY_BAD_BODY),
            |_, _| json!({}),
        ),
        with_body(
            row(M::POST, routes::CHAT_COMPLETIONS, T::None, GATEWAY_BAD_BODY),
            |_, _| json!({}),
        ),
    ]
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
    for route in api_route_constants() {
        assert!(
            ALL_ROUTES.contains(&route.as_str()),
            "{route} of byollm_api::routes is missing from ALL_ROUTES"
        );
    }
    // Every authenticated API route has an action, and every action's route a row.
    for r in &rows {
        assert!(
            needs_no_action(r.template) || action_of(&r.method, r.template).is_some(),
            "{} {} has no action in byollm_server::routes::ACTIONS",
            r.method,
            r.template
        );
    }
    for (method, template, action) in byollm_server::routes::ACTIONS {
        assert!(
            rows.iter()
                .any(|r| r.method == *method && r.template == *template),
            "{method} {template} ({action:?}) has no row in the matrix"
        );
    }
    // Cells that disagree with the rule of their route's action.
    let mut disagreements = Vec::new();

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
            let object = match action_of(&r.method, r.template) {
                Some(action) => Some((
                    action,
                    Object::of(&h, &a, action, param.as_deref(), r.body.map(|f| f(0, &a))).await,
                )),
                None => None,
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
            // What the rule says, asked before the call (which may end the
            // credential, as finishing a run does). Unauthenticated columns are
            // the auth layer's, not a rule's.
            let allowed = match (&object, cred) {
                (Some((action, object)), Some(c)) if col < 7 => {
                    let p = h.core.authenticate(c).await.unwrap();
                    Some((*action, authz::allows(&p, *action, object.target())))
                }
                _ => None,
            };
            let body = r.body.map(|f| serde_json::to_vec(&f(n, &a)).unwrap());
            let resp = h.send(r.method.clone(), &path, cred, body).await;
            let got = resp.status.as_u16();
            // Allowed: never a 403. Refused: a 403, or a 404 when the object is
            // not the caller's team's. A 2xx needs the rule; a 403 needs its refusal.
            if let Some((action, allowed)) = allowed {
                let agrees = if allowed {
                    expected != 403
                } else {
                    expected == 403 || expected == 404
                };
                if !agrees {
                    disagreements.push(format!(
                        "{} {label} as {}: expected {expected} but {action:?} ({:?}) {}",
                        r.method,
                        CALLERS[col],
                        action.rule(),
                        if allowed { "allows" } else { "refuses" }
                    ));
                }
            }
            if got == expected {
                let _ = write!(table, " {got:>11}");
            } else {
                failures += 1;
                let _ = write!(table, " {:>11}", format!("!{got}≠{expected}"));
            }
            // Every refusal is a JSON error body with a stable code (the
            // gateway answers in the caller's format: Anthropic's `error.type`).
            if got >= 400 {
                assert!(
                    resp.body
                        .pointer("/error/code")
                        .or_else(|| resp.body.pointer("/error/type"))
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
    assert!(
        disagreements.is_empty(),
        "the matrix and byollm_core::authz disagree:\n{}",
        disagreements.join("\n")
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
        (Method::DELETE, routes::RUNS.to_owned()),
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
async fn path_parameters_are_checked() {
    let h = Harness::new().await;
    let a = h.team("alpha").await;
    let admin = Some(a.admin.key.as_str());
    for (path, field) in [
        (routes::fill(routes::RUN, "NOT*A*UID"), "id"),
        (routes::fill(routes::AGENT_IDENTITY, "a%2Fb"), "uid"),
        (routes::fill(routes::RUN_FINISH, &"x".repeat(65)), "id"),
        (routes::fill(routes::API_KEY, "%00"), "id"),
    ] {
        let method = if path.ends_with("/finish") {
            Method::POST
        } else if path.starts_with(routes::API_KEYS) {
            Method::DELETE
        } else {
            Method::GET
        };
        let r = h.send(method, &path, admin, None).await;
        assert_eq!(r.status.as_u16(), 400, "{path}: {}", r.body);
        assert_eq!(r.field(), Some(field), "{path}: {}", r.body);
    }
    // Unknown but well-formed ids are plain 404s.
    for path in [
        routes::fill(routes::API_KEY, "key_nope"),
        routes::fill(routes::TEAM_MEMBER, "nope"),
        routes::fill(routes::AGENT_IDENTITY, "nope"),
    ] {
        let r = h.send(Method::DELETE, &path, admin, None).await;
        assert_eq!(r.status.as_u16(), 404, "{path}: {}", r.body);
    }
    let r = h.get(&routes::fill(routes::RUN, "nope"), admin).await;
    assert_eq!(r.status.as_u16(), 404, "{}", r.body);
}
