//! The team's AI settings: the Bedrock host (on/off, enforcement, role ARN,
//! region), the direct API, fallback outside the cloud, worker identity
//! tokens, session tags, source identity and audiences, and the per-model
//! table ([`super::models`]).
//!
//! This page is the settings' edit form, so opening it needs the rule of
//! [`Action::WriteLlmSettings`] (admins): a member gets the 403 page, and reads
//! the Bedrock status on the overview. Saving sends a JSON Merge Patch of the
//! fields of the form through [`byollm_core::service::Core::patch_llm_settings`]
//! with the version the form was read at (so a change made meanwhile is a
//! "changed meanwhile" page, not lost); a validation error is shown next to its
//! field in the API's words.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::LOCATION;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use byollm_api::types::{Enforcement, LlmSettings};
use byollm_core::CoreError;
use byollm_core::authz::{self, Action, Target};
use byollm_core::versioned::IfMatch;

use super::html::{self, esc, field_error, form_errors};
use super::models;
use super::session::{Session, form_pairs};
use super::{AI_SETTINGS, OVERVIEW};
use crate::app::AppState;

/// The fields of the form, as sent or as stored.
#[derive(Debug, Default)]
struct Form {
    enabled: bool,
    enforce: bool,
    role_arn: String,
    region: String,
    fallback: bool,
    direct: bool,
    worker_tokens: bool,
    session_tags: bool,
    source_identity: bool,
    audiences: String,
    /// `opt_out_of_new_models` as read (what a model with no entry means).
    opt_out: bool,
    models: Vec<models::Row>,
    version: i64,
}

impl Form {
    fn of(s: &LlmSettings, version: i64) -> Form {
        let b = &s.hosts.aws_bedrock;
        Form {
            enabled: b.enabled,
            enforce: b.enforcement == Enforcement::Enforce,
            role_arn: b.role_arn.clone().unwrap_or_default(),
            region: b.region.clone().unwrap_or_default(),
            fallback: s.allow_fallback_outside_cloud,
            direct: s.hosts.direct_api.enabled,
            worker_tokens: s.worker_identity_tokens,
            session_tags: s.session_tags,
            source_identity: s.source_identity,
            audiences: s.token_audiences.join(", "),
            opt_out: b.opt_out_of_new_models,
            models: models::rows(s),
            version,
        }
    }

    fn parse(pairs: &[(String, String)]) -> Form {
        let text = |k: &str| {
            pairs
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.trim().to_owned())
                .unwrap_or_default()
        };
        let on = |k: &str| pairs.iter().any(|(n, v)| n == k && v == "on");
        Form {
            enabled: on("aws_bedrock_enabled"),
            enforce: text("enforcement") != "respect_user_setting",
            role_arn: text("role_arn"),
            region: text("region"),
            fallback: on("allow_fallback_outside_cloud"),
            direct: on("direct_api_enabled"),
            worker_tokens: on("worker_identity_tokens"),
            session_tags: on("session_tags"),
            source_identity: on("source_identity"),
            audiences: text("token_audiences"),
            opt_out: text("opt_out") == "1",
            models: models::parse(pairs),
            version: text("version").parse().unwrap_or(-1),
        }
    }

    /// The JSON Merge Patch of the form's fields (an empty text field unsets).
    fn patch(&self) -> Value {
        let opt = |s: &str| {
            if s.is_empty() {
                Value::Null
            } else {
                Value::String(s.to_owned())
            }
        };
        let audiences: Vec<&str> = self
            .audiences
            .split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .collect();
        let mut patch = json!({
            "hosts": {
                "aws_bedrock": {
                    "enabled": self.enabled,
                    "enforcement": if self.enforce { "enforce" } else { "respect_user_setting" },
                    "role_arn": opt(&self.role_arn),
                    "region": opt(&self.region),
                },
                "direct_api": { "enabled": self.direct },
            },
            "allow_fallback_outside_cloud": self.fallback,
            "worker_identity_tokens": self.worker_tokens,
            "session_tags": self.session_tags,
            "source_identity": self.source_identity,
            "token_audiences": audiences,
        });
        if let Some(m) = models::patch(&self.models, self.opt_out) {
            patch["models"] = m;
        }
        patch
    }
}

fn checkbox(name: &str, label: &str, on: bool, errors: &[(String, String)], field: &str) -> String {
    format!(
        r#"<p><input type="checkbox" id="{name}" name="{name}"{checked}><label class="inline" for="{name}">{label}</label></p>{err}"#,
        checked = if on { " checked" } else { "" },
        err = field_error(errors, field),
    )
}

fn text(name: &str, label: &str, value: &str, errors: &[(String, String)], field: &str) -> String {
    format!(
        r#"<label for="{name}">{label}</label><input type="text" id="{name}" name="{name}" value="{value}" aria-describedby="{id}-error">{err}"#,
        value = esc(value),
        id = esc(&field.replace('.', "-")),
        err = field_error(errors, field),
    )
}

const FIELDS: &[&str] = &[
    "hosts.aws_bedrock.enabled",
    "hosts.aws_bedrock.role_arn",
    "hosts.aws_bedrock.region",
    "hosts.aws_bedrock.enforcement",
    "hosts.direct_api.enabled",
    "allow_fallback_outside_cloud",
    "worker_identity_tokens",
    "session_tags",
    "source_identity",
    "token_audiences",
];

fn render(s: &Session, f: &Form, errors: &[(String, String)], status: StatusCode) -> Response {
    let enforce = |v: bool| if v == f.enforce { " selected" } else { "" };
    let model_fields = models::fields(&f.models);
    let shown: Vec<&str> = FIELDS
        .iter()
        .copied()
        .chain(model_fields.iter().map(String::as_str))
        .collect();
    let body = format!(
        r#"{general}<form method="post" action="{AI_SETTINGS}" novalidate>
{csrf}<input type="hidden" name="version" value="{version}"><input type="hidden" name="opt_out" value="{opt_out}">
<fieldset><legend>Amazon Bedrock</legend>
{enabled}
<label for="enforcement">Enforcement</label>
<select id="enforcement" name="enforcement"><option value="enforce"{e1}>Every member uses Bedrock</option><option value="respect_user_setting"{e2}>Each member opts in</option></select>{enf_err}
{role}
<p class="hint">The team role, arn:aws:iam::ACCOUNT:role/NAME.</p>
{region}
</fieldset>
<fieldset><legend>Outside your cloud</legend>
{direct}
{fallback}
</fieldset>
<fieldset><legend>Identity tokens</legend>
{worker}
{tags}
{source}
{audiences}
<p class="hint">Comma-separated, e.g. sts.amazonaws.com.</p>
</fieldset>
{models}
<button type="submit">Save settings</button>
</form>"#,
        general = form_errors(errors, &shown),
        opt_out = u8::from(f.opt_out),
        models = models::form_table(&f.models, errors),
        csrf = html::csrf_input(s),
        version = f.version,
        enabled = checkbox(
            "aws_bedrock_enabled",
            "Route requests through the team's Amazon Bedrock",
            f.enabled,
            errors,
            "hosts.aws_bedrock.enabled"
        ),
        e1 = enforce(true),
        e2 = enforce(false),
        enf_err = field_error(errors, "hosts.aws_bedrock.enforcement"),
        role = text(
            "role_arn",
            "Role ARN",
            &f.role_arn,
            errors,
            "hosts.aws_bedrock.role_arn"
        ),
        region = text(
            "region",
            "Region",
            &f.region,
            errors,
            "hosts.aws_bedrock.region"
        ),
        direct = checkbox(
            "direct_api_enabled",
            "Allow the vendors' own APIs",
            f.direct,
            errors,
            "hosts.direct_api.enabled"
        ),
        fallback = checkbox(
            "allow_fallback_outside_cloud",
            "Fall back to the vendors' APIs when Bedrock cannot serve",
            f.fallback,
            errors,
            "allow_fallback_outside_cloud"
        ),
        worker = checkbox(
            "worker_identity_tokens",
            "Let cloud run workers mint identity tokens",
            f.worker_tokens,
            errors,
            "worker_identity_tokens"
        ),
        tags = checkbox(
            "session_tags",
            "Put session tags in identity tokens",
            f.session_tags,
            errors,
            "session_tags"
        ),
        source = checkbox(
            "source_identity",
            "Put a source identity in identity tokens",
            f.source_identity,
            errors,
            "source_identity"
        ),
        audiences = text(
            "token_audiences",
            "Token audiences",
            &f.audiences,
            errors,
            "token_audiences"
        ),
    );
    html::page(status, "AI settings", Some(s), &body)
}

/// The page is the edit form: admins only (module docs).
fn may_edit(s: &Session) -> Option<Response> {
    authz::check(&s.principal, Action::WriteLlmSettings, Target::Team)
        .err()
        .map(|e| html::core_error(e, Some(s)))
}

/// `GET /console/ai-settings`.
pub async fn show(State(state): State<AppState>, s: Session) -> Response {
    if let Some(refused) = may_edit(&s) {
        return refused;
    }
    match state.core.llm_settings(&s.principal).await {
        Ok(v) => render(&s, &Form::of(&v.value, v.version), &[], StatusCode::OK),
        Err(e) => html::core_error(e, Some(&s)),
    }
}

/// `POST /console/ai-settings`.
pub async fn save(State(state): State<AppState>, s: Session, body: Bytes) -> Response {
    if let Some(refused) = may_edit(&s) {
        return refused;
    }
    let pairs = match form_pairs(&body) {
        Ok(p) => p,
        Err(bad) => return bad.into_response(),
    };
    let form = Form::parse(&pairs);
    let if_match = IfMatch::Versions(vec![form.version]);
    match state
        .core
        .patch_llm_settings(&s.principal, form.patch(), Some(if_match))
        .await
    {
        Ok(_) => (StatusCode::SEE_OTHER, [(LOCATION, OVERVIEW)]).into_response(),
        Err(CoreError::Invalid(f)) => {
            let message = format!("{}: {}", f.field, f.message);
            render(&s, &form, &[(f.field, message)], StatusCode::BAD_REQUEST)
        }
        Err(e) => html::core_error(e, Some(&s)),
    }
}
