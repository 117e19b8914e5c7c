//! Named agents: the list (name, uid with a copy button, AWS override,
//! available), create (admins), a page per agent whose URL carries its uid,
//! editing its `inference_providers.aws` override and deleting it (admins).
//!
//! Every operation is the API's ([`byollm_core::service::Core`]'s agent
//! operations): a member who is not an admin gets the 403 page for a write,
//! another team's agent is the 404 page, and a validation error is shown next
//! to its field in the API's words.

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::http::header::LOCATION;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use byollm_api::types::{
    Agent, AgentCreate, AgentListQuery, AwsOverride, InferenceProviders, RunListQuery,
};
use byollm_core::CoreError;
use byollm_core::versioned::IfMatch;

use super::html::{self, esc, field_error, form_errors};
use super::session::{Session, form_pairs};
use super::{AGENT, AGENT_DELETE, AGENTS};
use crate::app::AppState;

/// The agent page's path (it carries the uid).
pub fn agent_path(uid: &str) -> String {
    AGENT.replace("{uid}", uid)
}

type Errors = Vec<(String, String)>;

fn value<'a>(pairs: &'a [(String, String)], key: &str) -> &'a str {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map_or("", |(_, v)| v.trim())
}

fn opt(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

fn override_of(pairs: &[(String, String)]) -> AwsOverride {
    AwsOverride {
        role_arn: opt(value(pairs, "role_arn")),
        region: opt(value(pairs, "region")),
        disabled: value(pairs, "disabled") == "on",
    }
}

fn describe(o: &AwsOverride) -> String {
    if o.disabled {
        return "kept off Bedrock".to_owned();
    }
    match (&o.role_arn, &o.region) {
        (None, None) => "team's role".to_owned(),
        (role, region) => format!(
            "{}{}",
            role.as_deref()
                .map_or_else(String::new, |r| format!("<code>{}</code>", esc(r))),
            region
                .as_deref()
                .map_or_else(String::new, |r| format!(" in {}", esc(r)))
        ),
    }
}

/// The override's three fields, filled from `o`.
fn override_fields(o: &AwsOverride, errors: &Errors) -> String {
    let f = "inference_providers.aws";
    format!(
        r#"<label for="role_arn">Role ARN (empty: the team's)</label>
<input type="text" id="role_arn" name="role_arn" value="{role}" aria-describedby="{id}-role_arn-error">{role_err}
<label for="region">Region (empty: the team's)</label>
<input type="text" id="region" name="region" value="{region}" aria-describedby="{id}-region-error">{region_err}
<p><input type="checkbox" id="disabled" name="disabled"{checked}><label class="inline" for="disabled">Keep this agent off Bedrock</label></p>{dis_err}"#,
        role = esc(o.role_arn.as_deref().unwrap_or("")),
        region = esc(o.region.as_deref().unwrap_or("")),
        checked = if o.disabled { " checked" } else { "" },
        id = "inference_providers-aws",
        role_err = field_error(errors, &format!("{f}.role_arn")),
        region_err = field_error(errors, &format!("{f}.region")),
        dis_err = field_error(errors, &format!("{f}.disabled")),
    )
}

const FIELDS: &[&str] = &[
    "name",
    "description",
    "inference_providers.aws.role_arn",
    "inference_providers.aws.region",
    "inference_providers.aws.disabled",
];

async fn list_page(
    state: &AppState,
    s: &Session,
    sent: &[(String, String)],
    errors: &Errors,
    status: StatusCode,
    cursor: Option<String>,
) -> Response {
    let query = AgentListQuery {
        cursor,
        ..AgentListQuery::default()
    };
    let list = match state.core.list_agents(&s.principal, query).await {
        Ok(l) => l,
        Err(e) => return html::core_error(e, Some(s)),
    };
    let rows: String = list
        .agents
        .iter()
        .map(|a| {
            format!(
                r#"<tr><td><a href="{href}">{name}</a></td><td><code id="uid-{uid}">{uid}</code> <button type="button" class="secondary" data-copy="uid-{uid}">Copy</button></td><td>{aws}</td><td>{avail}</td></tr>"#,
                href = esc(&agent_path(&a.uid)),
                name = esc(&a.name),
                uid = esc(&a.uid),
                aws = describe(&a.inference_providers.aws),
                avail = if a.available { "yes" } else { "no" },
            )
        })
        .collect();
    let table = if list.agents.is_empty() {
        "<p>No agents yet.</p>".to_owned()
    } else {
        format!(
            r#"<table><caption>The team's agents</caption><thead><tr><th scope="col">Name</th><th scope="col">Uid</th><th scope="col">AWS</th><th scope="col">Available</th></tr></thead><tbody>{rows}</tbody></table>"#
        )
    };
    let create = if s.principal.is_admin() {
        format!(
            r#"<h2>Create an agent</h2>{general}<form method="post" action="{AGENTS}" novalidate>{csrf}
<label for="name">Name</label><input type="text" id="name" name="name" value="{name}" aria-describedby="name-error">{name_err}
<label for="description">Description</label><input type="text" id="description" name="description" value="{desc}">{desc_err}
{aws}
<button type="submit">Create agent</button></form>"#,
            general = form_errors(errors, FIELDS),
            csrf = html::csrf_input(s),
            name = esc(value(sent, "name")),
            desc = esc(value(sent, "description")),
            name_err = field_error(errors, "name"),
            desc_err = field_error(errors, "description"),
            aws = override_fields(&override_of(sent), errors),
        )
    } else {
        r#"<p class="hint">Only the team's admins create agents.</p>"#.to_owned()
    };
    let more = html::next_page(AGENTS, &[], list.next_cursor.as_deref());
    html::page(status, "Agents", Some(s), &format!("{table}{more}{create}"))
}

/// `GET /console/agents`.
pub async fn list(State(state): State<AppState>, s: Session, RawQuery(q): RawQuery) -> Response {
    let cursor = html::query_value(q.as_deref(), "cursor");
    list_page(&state, &s, &[], &Vec::new(), StatusCode::OK, cursor).await
}

/// `POST /console/agents`: creates an agent and opens its page.
pub async fn create(State(state): State<AppState>, s: Session, body: Bytes) -> Response {
    let pairs = match form_pairs(&body) {
        Ok(p) => p,
        Err(bad) => return bad.into_response(),
    };
    let req = AgentCreate {
        name: value(&pairs, "name").to_owned(),
        description: opt(value(&pairs, "description")),
        available: None,
        base_model: None,
        inference_providers: Some(InferenceProviders {
            aws: override_of(&pairs),
            ..InferenceProviders::default()
        }),
    };
    match state.core.create_agent(&s.principal, req).await {
        Ok(agent) => redirect(&agent_path(&agent.uid)),
        Err(CoreError::Invalid(f)) => {
            let message = format!("{}: {}", f.field, f.message);
            list_page(
                &state,
                &s,
                &pairs,
                &vec![(f.field, message)],
                StatusCode::BAD_REQUEST,
                None,
            )
            .await
        }
        Err(e) => html::core_error(e, Some(&s)),
    }
}

fn redirect(to: &str) -> Response {
    (StatusCode::SEE_OTHER, [(LOCATION, to.to_owned())]).into_response()
}

fn agent_page(
    s: &Session,
    a: &Agent,
    version: i64,
    shown: &AwsOverride,
    errors: &Errors,
    runs: &str,
) -> Response {
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::BAD_REQUEST
    };
    let admin = if s.principal.is_admin() {
        format!(
            r#"<h2>AWS override</h2>{general}<form method="post" action="{path}" novalidate>{csrf}<input type="hidden" name="version" value="{version}">
{aws}
<button type="submit">Save override</button></form>
{check}
<h2>Delete</h2><form method="post" action="{delete}">{csrf}<button type="submit" class="danger">Delete agent {name}</button></form>"#,
            check = super::check::button(s, &super::check::path(Some(&a.uid)), "this agent's role"),
            general = form_errors(errors, FIELDS),
            path = esc(&agent_path(&a.uid)),
            delete = esc(&AGENT_DELETE.replace("{uid}", &a.uid)),
            csrf = html::csrf_input(s),
            aws = override_fields(shown, errors),
            name = esc(&a.name),
        )
    } else {
        String::new()
    };
    let body = format!(
        r#"<dl>
<dt>Uid</dt><dd><code id="agent-uid">{uid}</code> <button type="button" class="secondary" data-copy="agent-uid">Copy</button></dd>
<dt>Description</dt><dd>{desc}</dd>
<dt>Available</dt><dd>{avail}</dd>
<dt>AWS</dt><dd id="agent-aws">{aws}</dd>
<dt>Created</dt><dd>{created} by <code>{by}</code></dd>
</dl>{admin}<h2>Its runs</h2>{runs}<p><a href="{AGENTS}">All agents</a></p>"#,
        uid = esc(&a.uid),
        desc = esc(&a.description),
        avail = if a.available { "yes" } else { "no" },
        aws = describe(&a.inference_providers.aws),
        created = esc(&a.created_at),
        by = esc(&a.created_by),
    );
    html::page(status, &format!("Agent {}", a.name), Some(s), &body)
}

/// `GET /console/agents/{uid}`.
pub async fn show(State(state): State<AppState>, s: Session, Path(uid): Path<String>) -> Response {
    let v = match state.core.get_agent(&s.principal, &uid).await {
        Ok(v) => v,
        Err(e) => return html::core_error(e, Some(&s)),
    };
    let actor = format!("service_account:{uid}");
    let query = RunListQuery {
        actor: Some(actor.clone()),
        ..RunListQuery::default()
    };
    let runs = match state.core.list_runs(&s.principal, query).await {
        Ok(list) => format!(
            "{}{}",
            super::runs::table(&list.runs),
            html::next_page(
                super::RUNS,
                &[("actor", Some(actor))],
                list.next_cursor.as_deref()
            )
        ),
        Err(e) => return html::core_error(e, Some(&s)),
    };
    agent_page(
        &s,
        &v.value,
        v.version,
        &v.value.inference_providers.aws,
        &Vec::new(),
        &runs,
    )
}

/// `POST /console/agents/{uid}`: sets the agent's AWS override.
pub async fn save(
    State(state): State<AppState>,
    s: Session,
    Path(uid): Path<String>,
    body: Bytes,
) -> Response {
    let pairs = match form_pairs(&body) {
        Ok(p) => p,
        Err(bad) => return bad.into_response(),
    };
    let sent = override_of(&pairs);
    let patch = json!({ "inference_providers": { "aws": {
        "role_arn": sent.role_arn, "region": sent.region, "disabled": sent.disabled,
    }}});
    let version = value(&pairs, "version").parse().unwrap_or(-1);
    let if_match = Some(IfMatch::Versions(vec![version]));
    match state
        .core
        .patch_agent(&s.principal, &uid, patch, if_match)
        .await
    {
        Ok(_) => redirect(&agent_path(&uid)),
        Err(CoreError::Invalid(f)) => match state.core.get_agent(&s.principal, &uid).await {
            Ok(v) => {
                let message = format!("{}: {}", f.field, f.message);
                agent_page(
                    &s,
                    &v.value,
                    v.version,
                    &sent,
                    &vec![(f.field, message)],
                    "",
                )
            }
            Err(e) => html::core_error(e, Some(&s)),
        },
        Err(e) => html::core_error(e, Some(&s)),
    }
}

/// `POST /console/agents/{uid}/delete`.
pub async fn delete(
    State(state): State<AppState>,
    s: Session,
    Path(uid): Path<String>,
) -> Response {
    match state.core.delete_agent(&s.principal, &uid).await {
        Ok(()) => redirect(AGENTS),
        Err(e) => html::core_error(e, Some(&s)),
    }
}
