//! The permission table against the router: every route template of
//! `byollm_api::routes` and every method the router serves on it has an action
//! in `byollm_server::routes::ACTIONS` (so a new route without a rule fails
//! here), and what the matrix needs to ask the rules about one of its cells.

use axum::http::Method;
use serde_json::Value;

use byollm_api::routes;
use byollm_api::types::Actor;
use byollm_core::authz::{Action, Target};
use byollm_server::routes::{ACTIONS, action_of};

use crate::common::{Harness, TeamFx};

/// The values of every `pub const …: &str` of `byollm_api::routes`, read from
/// its source so that a route constant added there cannot be forgotten here.
pub fn api_route_constants() -> Vec<String> {
    let source = include_str!("../../../byollm-api/src/routes.rs");
    let found: Vec<String> = source
        .lines()
        .filter(|l| l.starts_with("pub const ") && l.contains(": &str = \""))
        .filter_map(|l| l.split('"').nth(1))
        .map(str::to_owned)
        .collect();
    assert!(
        found.len() >= 19,
        "byollm_api::routes changed shape: {found:?}"
    );
    found
}

/// Routes whose callers no action rules: the public ones, and the inference
/// routes any key or run token may call.
pub fn needs_no_action(template: &str) -> bool {
    routes::PUBLIC_ROUTES.contains(&template) || template.starts_with("/v1/")
}

/// A cell's object, owned, as the rules see it.
pub enum Object {
    Team,
    Member(String),
    NewApiKey(Option<String>),
    ApiKey(Actor),
    Agent(String),
    NewRun(Option<String>),
    Run {
        id: String,
        actor: Actor,
        triggered_by: Actor,
    },
}

impl Object {
    /// The object of `action` on `param` (team A's) with `body`, read from the
    /// store as the domain would.
    pub async fn of(
        h: &Harness,
        a: &TeamFx,
        action: Action,
        param: Option<&str>,
        body: Option<Value>,
    ) -> Object {
        let agent_uid = || {
            body.as_ref()
                .and_then(|b| b.get("agent_uid"))
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        let param = || param.unwrap().to_owned();
        match action {
            Action::CreateApiKey => Object::NewApiKey(agent_uid()),
            Action::CreateRun => Object::NewRun(agent_uid()),
            Action::RevokeApiKey => {
                let key = h
                    .core
                    .store()
                    .get_api_key(&a.uid, &param())
                    .await
                    .unwrap()
                    .unwrap();
                Object::ApiKey(Actor {
                    actor_type: key.owner_type,
                    uid: key.owner_uid,
                })
            }
            Action::ReadRun | Action::FinishRun | Action::MintForRun => {
                let run = h
                    .core
                    .store()
                    .get_run(&a.uid, &param())
                    .await
                    .unwrap()
                    .unwrap();
                Object::Run {
                    id: run.uid,
                    actor: run.actor,
                    triggered_by: run.triggered_by,
                }
            }
            Action::ReadAgent | Action::PatchAgent | Action::DeleteAgent => Object::Agent(param()),
            Action::DeleteMember
            | Action::PatchMember
            | Action::ReissueInvitation
            | Action::RevokeInvitation => Object::Member(param()),
            _ => Object::Team,
        }
    }

    pub fn target(&self) -> Target<'_> {
        match self {
            Object::Team => Target::Team,
            Object::Member(uid) => Target::Member(uid),
            Object::NewApiKey(agent_uid) => Target::NewApiKey {
                agent_uid: agent_uid.as_deref(),
            },
            Object::ApiKey(owner) => Target::ApiKey { owner },
            Object::Agent(uid) => Target::Agent(uid),
            Object::NewRun(agent_uid) => Target::NewRun {
                agent_uid: agent_uid.as_deref(),
            },
            Object::Run {
                id,
                actor,
                triggered_by,
            } => Target::Run {
                id,
                actor,
                triggered_by,
            },
        }
    }
}

/// Every method the router serves on an API route has an action, and every
/// action names a method the router serves.
#[tokio::test]
async fn every_served_route_has_an_action() {
    let h = Harness::new().await;
    let a = h.team("alpha").await;
    for template in api_route_constants() {
        if needs_no_action(&template) {
            continue;
        }
        // A well-formed id of nothing: handlers answer 404 or 400, never 405.
        let path = routes::fill(&template, "nothing");
        for method in [
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ] {
            let served = h
                .send(method.clone(), &path, Some(&a.owner.key), None)
                .await
                .status
                .as_u16()
                != 405;
            assert_eq!(
                served,
                action_of(&method, &template).is_some(),
                "{method} {template}: served by the router {served}, but its action in \
                 byollm_server::routes::ACTIONS is {:?}",
                action_of(&method, &template)
            );
        }
    }
    for (_, template, action) in ACTIONS {
        assert!(
            !needs_no_action(template),
            "{template} ({action:?}) is public or an inference route"
        );
    }
}
