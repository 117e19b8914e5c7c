//! AWS setup (admins): account id, role name, Region and scope (whole team,
//! members only, all agents, chosen agents) in; the trust policy, the
//! permissions policy and the setup script (bash, Terraform, CloudFormation)
//! out, each with a copy button and a download.
//!
//! The documents come from `byollm-policy`'s generators, the ones
//! `byollm aws trust-policy | permissions-policy | setup-script` print, fed
//! with this server's issuer URL and the team's uid and token settings
//! (session tags, source identity, subject template, audience). Models
//! chosen with the checkboxes narrow the permissions policy (and the scripts
//! that carry it) to their inference profiles, resolved by the catalog
//! ([`Catalog::resolve_models`], as `byollm aws setup-script --model …`
//! does, so the documents are byte for byte the CLI's); none chosen is the
//! broad documented default. Nothing is written: the page is a GET form, so
//! it needs no CSRF token.

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};

use byollm_api::catalog::{Catalog, ResolveError};
use byollm_api::types::LlmSettings;
use byollm_core::authz::{self, Action, Target};
use byollm_policy::generate::cloudformation::cloudformation;
use byollm_policy::generate::script::setup_script;
use byollm_policy::generate::terraform::terraform;
use byollm_policy::generate::{
    AccountId, GenerateError, Grant, Issuer, ModelProfile, PermissionsOptions, Region,
    SetupOptions, SubjectTemplate, TrustOptions, TrustScope, permissions_policy, trust_policy,
};

use super::html::{self, esc, field_error, form_errors};
use super::session::{BadForm, Session};
use super::{AWS_SETUP, AWS_SETUP_FILE};
use crate::app::AppState;

/// The form's fields as sent.
#[derive(Debug, Default)]
struct Inputs {
    account: String,
    role: String,
    region: String,
    scope: String,
    agents: String,
    /// The chosen models' catalog ids (none: the broad default).
    models: Vec<String>,
}

/// Why the documents could not be generated.
#[derive(Debug)]
enum Refusal {
    Generate(GenerateError),
    Models(ResolveError),
}

impl From<GenerateError> for Refusal {
    fn from(e: GenerateError) -> Self {
        Refusal::Generate(e)
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Generate(e) => e.fmt(f),
            Refusal::Models(e) => e.fmt(f),
        }
    }
}

impl Inputs {
    fn parse(query: Option<&str>) -> Result<(Inputs, Option<String>), BadForm> {
        let pairs = crate::extract::query_pairs(query).map_err(|_| BadForm)?;
        let get = |k: &str| {
            pairs
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.trim().to_owned())
                .unwrap_or_default()
        };
        let format = Some(get("format")).filter(|f| !f.is_empty());
        Ok((
            Inputs {
                account: get("account_id"),
                role: Some(get("role_name"))
                    .filter(|r| !r.is_empty())
                    .unwrap_or_else(|| "byollm-bedrock".to_owned()),
                region: Some(get("region"))
                    .filter(|r| !r.is_empty())
                    .unwrap_or_else(|| "us-east-1".to_owned()),
                scope: Some(get("scope"))
                    .filter(|r| !r.is_empty())
                    .unwrap_or_else(|| "team".to_owned()),
                agents: get("agents"),
                models: pairs
                    .iter()
                    .filter(|(n, v)| n == "model" && !v.trim().is_empty())
                    .map(|(_, v)| v.trim().to_owned())
                    .collect(),
            },
            format,
        ))
    }

    fn query(&self) -> String {
        let enc = |s: &str| {
            percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
        };
        let models: String = self
            .models
            .iter()
            .map(|m| format!("&model={}", enc(m)))
            .collect();
        format!(
            "account_id={}&role_name={}&region={}&scope={}&agents={}{models}",
            enc(&self.account),
            enc(&self.role),
            enc(&self.region),
            enc(&self.scope),
            enc(&self.agents)
        )
    }
}

/// The field a generator error is about, and its message.
fn error_field(e: &Refusal) -> (&'static str, String) {
    let Refusal::Generate(g) = e else {
        return ("models", e.to_string());
    };
    let field = match g {
        GenerateError::Account(_) => "account_id",
        GenerateError::Name { .. } => "role_name",
        GenerateError::Region(_) => "region",
        GenerateError::Scope(_) | GenerateError::Uid { .. } => "agents",
        _ => "general",
    };
    (field, e.to_string())
}

/// The generated documents: trust, permissions, bash, Terraform, CloudFormation.
fn generate(
    issuer: &str,
    team_uid: &str,
    settings: &LlmSettings,
    i: &Inputs,
) -> Result<[String; 5], Refusal> {
    let account = AccountId::parse(&i.account)?;
    let mut trust = TrustOptions::new(Issuer::parse(issuer)?, team_uid, account.clone())?;
    trust.scope = match i.scope.as_str() {
        "chosen" => format!("agent:{}", i.agents.replace(' ', "")).parse()?,
        other => other.parse::<TrustScope>()?,
    };
    trust.session_tags = settings.session_tags;
    trust.source_identity = settings.source_identity;
    trust.subject_template = SubjectTemplate::parse(&settings.subject_template)?;
    if let Some(aud) = settings.token_audiences.first() {
        trust.audience = aud.clone();
    }
    let region = Region::parse(&i.region)?;
    let grant = if i.models.is_empty() {
        Grant::Broad
    } else {
        let routed = Catalog::builtin()
            .resolve_models(&i.models, region.as_str())
            .map_err(Refusal::Models)?;
        Grant::Models(
            routed
                .into_iter()
                .map(|r| ModelProfile {
                    model_id: r.model_id,
                    base_model_id: r.base_model_id,
                    profile_id: r.profile_id,
                    destination_regions: r.destination_regions,
                })
                .collect(),
        )
    };
    let permissions = PermissionsOptions {
        account,
        region,
        grant,
    };
    let trust_doc = trust_policy(&trust)?.to_json_pretty();
    let permissions_doc = permissions_policy(&permissions)?.to_json_pretty();
    let opts = SetupOptions::new(trust, permissions, &i.role)?;
    Ok([
        trust_doc,
        permissions_doc,
        setup_script(&opts)?,
        terraform(&opts)?,
        cloudformation(&opts)?,
    ])
}

/// Name, file name and content type of each document, in [`generate`]'s order.
const DOCUMENTS: [(&str, &str, &str, &str); 5] = [
    (
        "trust",
        "Trust policy",
        "trust-policy.json",
        "application/json",
    ),
    (
        "permissions",
        "Permissions policy",
        "permissions-policy.json",
        "application/json",
    ),
    (
        "bash",
        "Setup script (bash)",
        "byollm-setup.sh",
        "text/x-shellscript",
    ),
    ("terraform", "Terraform", "byollm.tf", "text/plain"),
    (
        "cloudformation",
        "CloudFormation",
        "byollm-cloudformation.yaml",
        "text/yaml",
    ),
];

async fn inputs_and_docs(
    state: &AppState,
    s: &Session,
    query: Option<&str>,
) -> Result<(Inputs, Option<String>, Option<Result<[String; 5], Refusal>>), Response> {
    if let Err(e) = authz::check(&s.principal, Action::WriteLlmSettings, Target::Team) {
        return Err(html::core_error(e, Some(s)));
    }
    let (inputs, format) = Inputs::parse(query).map_err(IntoResponse::into_response)?;
    if inputs.account.is_empty() {
        return Ok((inputs, format, None));
    }
    let settings = state
        .core
        .llm_settings(&s.principal)
        .await
        .map_err(|e| html::core_error(e, Some(s)))?
        .value;
    let docs = generate(
        &state.core.config().issuer_url,
        &s.principal.team_uid,
        &settings,
        &inputs,
    );
    Ok((inputs, format, Some(docs)))
}

/// `GET /console/aws-setup`: the form, and the documents once an account is
/// given.
pub async fn show(State(state): State<AppState>, s: Session, RawQuery(q): RawQuery) -> Response {
    let (inputs, _, docs) = match inputs_and_docs(&state, &s, q.as_deref()).await {
        Ok(v) => v,
        Err(resp) => return resp,
    };
    let (errors, out, status) = match docs {
        None => (Vec::new(), String::new(), StatusCode::OK),
        Some(Err(e)) => {
            let (field, message) = error_field(&e);
            (
                vec![(field.to_owned(), message)],
                String::new(),
                StatusCode::BAD_REQUEST,
            )
        }
        Some(Ok(docs)) => {
            let query = inputs.query();
            let out: String = DOCUMENTS
                .iter()
                .zip(docs.iter())
                .map(|((key, title, file, _), doc)| {
                    format!(
                        r#"<section aria-labelledby="{key}-h"><h2 id="{key}-h">{title}</h2>
<p><button type="button" class="secondary" data-copy="{key}-doc">Copy</button> <a href="{AWS_SETUP_FILE}?{query}&amp;format={key}" download="{file}">Download {file}</a></p>
<pre><code id="{key}-doc">{doc}</code></pre></section>"#,
                        query = esc(&query),
                        doc = esc(doc),
                    )
                })
                .collect();
            (Vec::new(), out, StatusCode::OK)
        }
    };
    let scope = |v: &str| if inputs.scope == v { " selected" } else { "" };
    let body = format!(
        r#"<p>Create the IAM OIDC provider and the role Bedrock requests run as, in your AWS account. Fill in the account and role, then copy or download the documents.</p>
{general}<form method="get" action="{AWS_SETUP}" novalidate>
<label for="account_id">AWS account id</label><input type="text" id="account_id" name="account_id" value="{account}" inputmode="numeric" aria-describedby="account_id-error">{account_err}
<label for="role_name">Role name</label><input type="text" id="role_name" name="role_name" value="{role}" aria-describedby="role_name-error">{role_err}
<label for="region">Region</label><input type="text" id="region" name="region" value="{region}" aria-describedby="region-error">{region_err}
<label for="scope">Who may use the role</label><select id="scope" name="scope"><option value="team"{s_team}>The whole team</option><option value="users"{s_users}>Members only</option><option value="agents"{s_agents}>All agents</option><option value="chosen"{s_chosen}>Chosen agents</option></select>
<label for="agents">Chosen agents' uids (comma-separated)</label><input type="text" id="agents" name="agents" value="{agents}" aria-describedby="agents-error">{agents_err}
{models}
<button type="submit">Generate</button></form>{out}{check}"#,
        check = super::check::button(&s, &super::check::path(None), "the team"),
        general = form_errors(
            &errors,
            &["account_id", "role_name", "region", "agents", "models"]
        ),
        models = model_choices(&inputs.models, &errors),
        account = esc(&inputs.account),
        role = esc(&inputs.role),
        region = esc(&inputs.region),
        agents = esc(&inputs.agents),
        account_err = field_error(&errors, "account_id"),
        role_err = field_error(&errors, "role_name"),
        region_err = field_error(&errors, "region"),
        agents_err = field_error(&errors, "agents"),
        s_team = scope("team"),
        s_users = scope("users"),
        s_agents = scope("agents"),
        s_chosen = scope("chosen"),
    );
    html::page(status, "AWS setup", Some(&s), &body)
}

/// A checkbox per Bedrock model of the catalog, best first: the chosen ones
/// narrow the permissions policy.
fn model_choices(chosen: &[String], errors: &[(String, String)]) -> String {
    let boxes: String = Catalog::builtin()
        .by_rank()
        .into_iter()
        .filter(|m| m.bedrock.is_some())
        .map(|m| {
            format!(
                r#"<p><input type="checkbox" id="model-{id}" name="model" value="{id}"{checked}><label class="inline" for="model-{id}">{name} (<code>{id}</code>)</label></p>"#,
                id = esc(&m.id),
                name = esc(&m.display_name),
                checked = if chosen.contains(&m.id) { " checked" } else { "" },
            )
        })
        .collect();
    format!(
        r#"<fieldset><legend>Models the role may invoke</legend>
<p class="hint">Choose the team's models for a least-privilege permissions policy (their inference profiles and foundation models, from this Region); choose none for the broad documented default (every Bedrock model).</p>
{boxes}{err}</fieldset>"#,
        err = field_error(errors, "models"),
    )
}

/// `GET /console/aws-setup/file?…&format=…`: one document as a download.
pub async fn file(State(state): State<AppState>, s: Session, RawQuery(q): RawQuery) -> Response {
    let (_, format, docs) = match inputs_and_docs(&state, &s, q.as_deref()).await {
        Ok(v) => v,
        Err(resp) => return resp,
    };
    let found = DOCUMENTS
        .iter()
        .position(|(key, _, _, _)| Some(*key) == format.as_deref());
    match (found, docs) {
        (Some(at), Some(Ok(docs))) => {
            let (_, _, name, kind) = DOCUMENTS[at];
            // A text file ends with a line break, as `byollm aws` prints it:
            // the download is byte for byte the CLI's output.
            let mut doc = docs[at].clone();
            if !doc.ends_with('\n') {
                doc.push('\n');
            }
            (
                StatusCode::OK,
                [
                    (CONTENT_TYPE, format!("{kind}; charset=utf-8")),
                    (
                        CONTENT_DISPOSITION,
                        format!("attachment; filename=\"{name}\""),
                    ),
                ],
                doc,
            )
                .into_response()
        }
        (_, Some(Err(e))) => html::message_page_for(
            StatusCode::BAD_REQUEST,
            "Invalid input",
            &e.to_string(),
            None,
            Some(&s),
        ),
        _ => html::message_page_for(
            StatusCode::BAD_REQUEST,
            "Invalid input",
            "Name an account id and one of the documents (format=trust, permissions, bash, \
             terraform or cloudformation).",
            None,
            Some(&s),
        ),
    }
}
