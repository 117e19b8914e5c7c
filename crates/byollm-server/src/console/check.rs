//! **Check setup** (issue 16): the AWS setup page (the team) and an agent's
//! page (its role) run the doctor on the server — the same walk as `byollm
//! aws doctor` (`byollm-doctor`'s AWS walk) — and show each step, its evidence
//! and the fix.
//!
//! Invariants:
//! - Admins only (the doctor reads the team's settings and mints an agent's
//!   token through the admin's diagnosis route); others get the 403 page.
//! - The doctor calls this server over loopback ([`CheckEnv`], the listener's
//!   own address, never a URL taken from the request) with a temporary key of
//!   the signed-in member ([`byollm_core::service::Core::check_setup_key`]),
//!   deleted when the check ends; STS and Bedrock are called at the server's
//!   AWS endpoint override when it has one (the emulator).
//! - Bounded: a check that has not finished in [`CHECK_SECONDS`] is abandoned
//!   with a page that says so (504), never a hung request.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use axum::Extension;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;

use byollm_doctor::{Options, Report, Status, StepName};

use super::agents::agent_path;
use super::html::{self, esc};
use super::session::Session;
use super::{AGENT_CHECK, AWS_SETUP, AWS_SETUP_CHECK};
use crate::app::AppState;

/// How long a check may take before the page gives up on it.
pub const CHECK_SECONDS: u64 = 25;

/// Where the server's own doctor run finds this server and AWS (an
/// extension the listener adds: `crate::app::serve_with`).
#[derive(Debug, Clone)]
pub struct CheckEnv {
    /// `http://` + the listener's address (loopback when it listens on all
    /// addresses).
    pub server: String,
    /// STS and Bedrock endpoint override (`--aws-endpoint-url`).
    pub aws_endpoint_url: Option<String>,
}

impl CheckEnv {
    /// The environment of a server listening on `addr`.
    pub fn new(addr: SocketAddr, aws_endpoint_url: Option<String>) -> CheckEnv {
        let ip = match addr.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        CheckEnv {
            server: format!("http://{}", SocketAddr::new(ip, addr.port())),
            aws_endpoint_url,
        }
    }
}

/// The form (a button) that runs the check: `action` is the check's path.
pub fn button(s: &Session, action: &str, what: &str) -> String {
    format!(
        r#"<h2>Check setup</h2><p class="hint">Runs the doctor on the server: issuer discovery, an identity token, STS and a one-token Bedrock call, as <code>byollm aws doctor</code> does for {what}. It takes a few seconds.</p>
<form method="post" action="{action}">{csrf}<button type="submit">Check setup</button></form>"#,
        action = esc(action),
        csrf = html::csrf_input(s),
        what = esc(what),
    )
}

/// `POST /console/aws-setup/check`: the team's check.
pub async fn team(
    State(state): State<AppState>,
    s: Session,
    env: Option<Extension<CheckEnv>>,
) -> Response {
    run(&state, &s, env.map(|Extension(e)| e), None).await
}

/// `POST /console/agents/{uid}/check`: an agent's check (its own role, or
/// the team's when it has none).
pub async fn agent(
    State(state): State<AppState>,
    s: Session,
    Path(uid): Path<String>,
    env: Option<Extension<CheckEnv>>,
) -> Response {
    if let Err(e) = state.core.get_agent(&s.principal, &uid).await {
        return html::core_error(e, Some(&s));
    }
    run(&state, &s, env.map(|Extension(e)| e), Some(uid)).await
}

async fn run(
    state: &AppState,
    s: &Session,
    env: Option<CheckEnv>,
    agent: Option<String>,
) -> Response {
    let back = agent
        .as_deref()
        .map_or_else(|| AWS_SETUP.to_owned(), agent_path);
    if !s.principal.is_admin() {
        return html::message_page_for(
            StatusCode::FORBIDDEN,
            "Not allowed",
            "Only the team's admins run Check setup.",
            None,
            Some(s),
        );
    }
    let Some(env) = env else {
        return html::message_page_for(
            StatusCode::SERVICE_UNAVAILABLE,
            "Check setup unavailable",
            "This server was started without a listener the check can call.",
            Some("run `byollm aws doctor` from a terminal instead"),
            Some(s),
        );
    };
    let key = match state.core.check_setup_key(&s.principal).await {
        Ok(k) => k,
        Err(e) => return html::core_error(e, Some(s)),
    };
    let opts = Options {
        server: env.server,
        api_key: key.key.clone(),
        agent: agent.clone(),
        aws_endpoint_url: env.aws_endpoint_url,
        iam_endpoint_url: None,
        iam: None,
        duration_seconds: 3600,
        model: None,
    };
    let done = tokio::time::timeout(
        Duration::from_secs(CHECK_SECONDS),
        byollm_doctor::run(&opts),
    )
    .await;
    if let Err(e) = state
        .core
        .drop_check_setup_key(&s.principal.team_uid, &key)
        .await
    {
        tracing::warn!(error = %e, "deleting a Check setup key failed (it expires on its own)");
    }
    let title = match &agent {
        Some(uid) => format!("Check setup: agent {uid}"),
        None => "Check setup: the team".to_owned(),
    };
    match done {
        Ok(report) => html::page(StatusCode::OK, &title, Some(s), &render(&report, &back)),
        Err(_) => html::message_page_for(
            StatusCode::GATEWAY_TIMEOUT,
            &title,
            &format!(
                "The check did not finish within {CHECK_SECONDS} seconds (AWS or this server did not answer in time), so it was stopped."
            ),
            Some(
                "try again; if it keeps timing out, run `byollm aws doctor` from a terminal to see which call hangs",
            ),
            Some(s),
        ),
    }
}

fn mark(status: Status) -> &'static str {
    match status {
        Status::Ok => "ok",
        Status::Failed => "failed",
        Status::Skipped => "skipped",
    }
}

/// The report as HTML: the verdict, each step, the diagnosis (evidence, fix).
fn render(r: &Report, back: &str) -> String {
    let verdict = match &r.diagnosis {
        None if r.healthy() => {
            r#"<p class="ok" id="check-verdict" role="status">Healthy: every step worked, the path to Bedrock is set up.</p>"#.to_owned()
        }
        None => format!(
            r#"<p class="error" id="check-verdict" role="status">Not verified: nothing failed, but these were not checked:</p><ul>{}</ul>"#,
            r.not_verified
                .iter()
                .map(|n| format!("<li>{}</li>", esc(n)))
                .collect::<String>()
        ),
        Some(d) => format!(
            r#"<div class="diagnosis" id="check-verdict" role="alert"><p class="error">Refused at the <strong>{step}</strong> step: {summary}</p>
<p>Cause: <code>{cause}</code></p>{evidence}<p class="fix"><strong>Fix:</strong> {fix}</p>
<p class="hint">The <a href="{AWS_SETUP}">AWS setup</a> page generates the trust and permissions policies and a setup script (bash, Terraform, CloudFormation) for this team.</p></div>"#,
            step = d.step.as_str(),
            summary = esc(&d.summary),
            cause = esc(&d.cause.code()),
            evidence = if d.evidence.is_empty() {
                String::new()
            } else {
                format!(
                    "<p>Evidence:</p><ul>{}</ul>",
                    d.evidence
                        .iter()
                        .map(|e| format!("<li><code>{}</code></li>", esc(e)))
                        .collect::<String>()
                )
            },
            fix = esc(&d.fix),
        ),
    };
    let role = match (&r.role_arn, &r.region) {
        (Some(role), Some(region)) => format!(
            "<p>Role <code>{}</code> in <code>{}</code>.</p>",
            esc(role),
            esc(region)
        ),
        _ => String::new(),
    };
    let mut rows = String::new();
    for step in &r.steps {
        rows.push_str(&format!(
            r#"<tr class="step-{status}"><th scope="row">{name}</th><td>{status}</td><td>{detail}</td></tr>"#,
            name = step.step.as_str(),
            status = mark(step.status),
            detail = esc(&step.detail),
        ));
        if step.step == StepName::Bedrock {
            for m in &r.models {
                rows.push_str(&format!(
                    r#"<tr><th scope="row">{model}</th><td>{status}</td><td>{profile}: {detail}</td></tr>"#,
                    model = esc(&m.model),
                    status = mark(m.status),
                    profile = esc(&m.profile),
                    detail = esc(&m.detail),
                ));
            }
        }
    }
    let notes: String = r
        .notes
        .iter()
        .map(|n| format!(r#"<p class="hint">Note: {}</p>"#, esc(n)))
        .collect();
    format!(
        r#"{verdict}{role}<table id="check-steps"><caption>The doctor's steps, in order</caption>
<thead><tr><th scope="col">Step</th><th scope="col">Result</th><th scope="col">What was seen</th></tr></thead>
<tbody>{rows}</tbody></table>{notes}<p><a href="{back}">Back</a></p>"#,
        back = esc(back),
    )
}

/// The check's path for the team ([`AWS_SETUP_CHECK`]) or an agent.
pub fn path(agent: Option<&str>) -> String {
    match agent {
        Some(uid) => AGENT_CHECK.replace("{uid}", uid),
        None => AWS_SETUP_CHECK.to_owned(),
    }
}
