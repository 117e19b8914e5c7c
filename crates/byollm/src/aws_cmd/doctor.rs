//! `byollm aws doctor` (DESIGN §7, §11): flags and the printing of the report;
//! the walk itself is the `byollm-doctor` library, which returns data only.
//!
//! Additions to DESIGN §11: `--aws-endpoint-url` (STS, Bedrock and, unless
//! `--iam-endpoint-url` says otherwise, IAM: the emulator), `--duration`,
//! `--model` and `--json`. Credentials that may read IAM come from the standard
//! AWS environment (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
//! `AWS_SESSION_TOKEN`); without them the doctor reports what STS and Bedrock
//! said and lists the possible causes.

use anyhow::{Context as _, bail};
use clap::Args;
use secrecy::SecretString;

use byollm_doctor::{IamCredentials, Options, Outcome, Report, Status};

use crate::out::{self, NotVerified};

/// `byollm aws doctor` flags.
#[derive(Debug, Args)]
#[command(
    after_help = "The member's API key is read from BYOLLM_API_KEY, else the one `byollm login` \
    stored (an admin's key for --agent). AWS credentials that may read IAM (iam:GetRole, \
    iam:ListOpenIDConnectProviders, iam:GetOpenIDConnectProvider) are \
    read from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN when set; with \
    them the doctor names the exact trust-policy condition that refused a token. \
    --aws-endpoint-url (or BYOLLM_AWS_ENDPOINT_URL, else AWS_ENDPOINT_URL) points STS, \
    Bedrock and IAM at another endpoint, such as the emulator. With --agent the agent's \
    token is minted through the admin's diagnosis route: no run is started and nothing \
    is billed. Every model the team routes to Bedrock gets a one-token call. Exit status: \
    0 healthy (every step and model checked and working), 1 failing (the diagnosis names \
    the cause and the fix), 3 not verified (nothing failed, but something could not be \
    checked; the report says what and why)."
)]
pub struct DoctorArgs {
    /// The byollm server, e.g. https://byollm.example.com (default: the one
    /// `byollm login` stored).
    #[arg(long, value_name = "URL", env = "BYOLLM_SERVER")]
    server: Option<String>,
    /// Check this named agent (its override role and region) instead of the team.
    #[arg(long, value_name = "UID")]
    agent: Option<String>,
    /// STS, Bedrock (and IAM) endpoint override, e.g. the emulator's
    /// http://127.0.0.1:4566 (default: BYOLLM_AWS_ENDPOINT_URL, else AWS_ENDPOINT_URL).
    #[arg(long, value_name = "URL", env = "BYOLLM_AWS_ENDPOINT_URL")]
    aws_endpoint_url: Option<String>,
    /// IAM endpoint override (defaults to --aws-endpoint-url, else IAM's global endpoint).
    #[arg(long, value_name = "URL")]
    iam_endpoint_url: Option<String>,
    /// DurationSeconds to request from STS (the server's broker asks for 3600).
    #[arg(long, value_name = "SECONDS", default_value_t = 3600)]
    duration: i32,
    /// Check only this model (default: every Claude model the team routes to Bedrock).
    #[arg(long, value_name = "ID")]
    model: Option<String>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

#[expect(
    clippy::disallowed_methods,
    reason = "the binary reads its secrets and the standard AWS environment here, at start-up"
)]
fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// Runs the doctor.
pub async fn run(args: DoctorArgs) -> anyhow::Result<()> {
    let key = crate::credentials::api_key()
        .context("the doctor needs a member's API key (an admin's for --agent)")?;
    let server = crate::credentials::server(args.server.as_deref());
    let iam = match (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")) {
        (Some(id), Some(secret)) => Some(IamCredentials {
            access_key_id: id,
            secret_access_key: SecretString::from(secret),
            session_token: env("AWS_SESSION_TOKEN").map(SecretString::from),
        }),
        _ => None,
    };
    let opts = Options {
        server: server.clone(),
        api_key: key,
        agent: args.agent,
        aws_endpoint_url: args.aws_endpoint_url.or_else(|| env("AWS_ENDPOINT_URL")),
        iam_endpoint_url: args.iam_endpoint_url,
        iam,
        duration_seconds: args.duration,
        model: args.model,
    };
    let agent = opts.agent.clone();
    let report = byollm_doctor::run(&opts).await;
    // `byollm models` marks the routes whose permissions this walk found missing.
    if let Err(e) = remember(&server, agent.as_deref(), &report).await {
        out::err(&format!(
            "warning: the per-model verdicts were not kept for `byollm models`: {e:#}"
        ));
    }
    if args.json {
        out::json(&report)?;
    } else {
        for line in text(&report).lines() {
            out::line(line);
        }
    }
    match report.outcome {
        Outcome::Healthy => Ok(()),
        Outcome::NotVerified => {
            Err(NotVerified(format!("not verified: {}", report.not_verified.join("; "))).into())
        }
        Outcome::Failing => {
            let cause = report.cause().map(|c| c.code()).unwrap_or_default();
            bail!("the doctor found a problem: {cause}")
        }
    }
}

/// Records the report's per-model verdicts for the server, team and actor it
/// checked (`crate::verdicts`).
async fn remember(server: &str, agent: Option<&str>, report: &Report) -> anyhow::Result<()> {
    if report.models.is_empty() {
        return Ok(());
    }
    let me = crate::credentials::client(server)?.me().await?;
    let actor = match agent {
        Some(uid) => format!("service_account:{uid}"),
        None => format!("{}:{}", me.actor.actor_type.as_str(), me.actor.uid),
    };
    let at = byollm_api::clock::rfc3339(byollm_api::clock::Clock::now(
        &byollm_api::clock::SystemClock,
    ));
    crate::verdicts::record(server, &me.team.uid, &actor, report, &at)
}

/// The report for people: a header, one line per step (the bedrock step with a
/// line per model), the diagnosis (cause, evidence, fix), the all-clear or what
/// was not verified, then the notes. The README's transcript and
/// the CLI tests read this layout.
pub(crate) fn text(report: &Report) -> String {
    let mut s = format!("byollm aws doctor: {}", report.target);
    if let (Some(role), Some(region)) = (&report.role_arn, &report.region) {
        s.push_str(&format!(" (role {role}, region {region})"));
    }
    s.push('\n');
    for step in &report.steps {
        let mark = mark_of(step.status);
        s.push_str(&format!(
            "  [{mark}] {:<9} {}\n",
            step.step.as_str(),
            step.detail
        ));
        if step.step == byollm_doctor::StepName::Bedrock {
            for m in &report.models {
                s.push_str(&format!(
                    "           {} {}: {}\n",
                    mark_of(m.status).trim_end(),
                    m.model,
                    m.detail
                ));
            }
        }
    }
    match &report.diagnosis {
        None if report.healthy() => {
            s.push_str("\nEverything works: the path to Bedrock is healthy.\n");
        }
        None => {
            s.push_str("\nNot verified: nothing failed, but these were not checked:\n");
            for r in &report.not_verified {
                s.push_str(&format!("  - {r}\n"));
            }
        }
        Some(d) => {
            s.push_str(&format!(
                "\nDiagnosis ({} step): {}\n  cause: {}\n",
                d.step.as_str(),
                d.summary,
                d.cause.code()
            ));
            for e in &d.evidence {
                s.push_str(&format!("  evidence: {e}\n"));
            }
            s.push_str(&format!("  fix: {}\n", d.fix));
        }
    }
    for n in &report.notes {
        s.push_str(&format!("note: {n}\n"));
    }
    s
}

fn mark_of(status: Status) -> &'static str {
    match status {
        Status::Ok => "ok  ",
        Status::Failed => "FAIL",
        Status::Skipped => "skip",
    }
}

/// How `byollm gcp doctor` and `byollm azure doctor` end: the report as JSON
/// or as [`text`] under `command`'s name (its all-clear naming `path`), then
/// the exit status the verdict gives (0, 1 or 3).
pub(crate) fn finish(report: &Report, json: bool, command: &str, path: &str) -> anyhow::Result<()> {
    if json {
        out::json(report)?;
    } else {
        let text = text(report)
            .replacen("byollm aws doctor", command, 1)
            .replace(
                "the path to Bedrock is healthy",
                &format!("the path to {path} is healthy"),
            );
        for line in text.lines() {
            out::line(line);
        }
    }
    match report.outcome {
        Outcome::Healthy => Ok(()),
        Outcome::NotVerified => {
            Err(NotVerified(format!("not verified: {}", report.not_verified.join("; "))).into())
        }
        Outcome::Failing => {
            let cause = report.cause().map(|c| c.code()).unwrap_or_default();
            bail!("the doctor found a problem: {cause}")
        }
    }
}

#[cfg(test)]
mod tests {
    use byollm_doctor::{Cause, Diagnosis, ModelCheck, Step, StepName};

    use super::*;

    fn step(step: StepName, status: Status, detail: &str) -> Step {
        Step {
            step,
            status,
            detail: detail.to_owned(),
        }
    }

    #[test]
    fn prints_the_steps_the_diagnosis_and_the_notes() {
        let steps = vec![
            step(StepName::Server, Status::Ok, "team Acme"),
            step(StepName::Sts, Status::Failed, "no provider"),
            step(StepName::Bedrock, Status::Skipped, "not reached"),
        ];
        let report = Report::new(
            "team".to_owned(),
            Some("arn:aws:iam::111122223333:role/r".to_owned()),
            Some("us-east-1".to_owned()),
            steps,
            vec![],
            Some(Diagnosis {
                step: StepName::Sts,
                cause: Cause::OidcProviderMissing,
                summary: "no provider".to_owned(),
                evidence: vec!["STS: No OpenIDConnect provider found".to_owned()],
                fix: "create it".to_owned(),
            }),
            vec!["a note".to_owned()],
        );
        assert_eq!(report.outcome, Outcome::Failing);
        assert_eq!(
            text(&report),
            "byollm aws doctor: team (role arn:aws:iam::111122223333:role/r, region us-east-1)\n\
             \x20 [ok  ] server    team Acme\n\
             \x20 [FAIL] sts       no provider\n\
             \x20 [skip] bedrock   not reached\n\
             \n\
             Diagnosis (sts step): no provider\n\
             \x20 cause: oidc_provider_missing\n\
             \x20 evidence: STS: No OpenIDConnect provider found\n\
             \x20 fix: create it\n\
             note: a note\n"
        );

        let ok = |name| step(name, Status::Ok, "fine");
        let model = |status| ModelCheck {
            model: "claude-sonnet-4-6".to_owned(),
            profile: "global.anthropic.claude-sonnet-4-6".to_owned(),
            status,
            detail: "answered".to_owned(),
            cause: None,
        };
        let healthy = Report::new(
            "team".to_owned(),
            None,
            None,
            vec![ok(StepName::Server), ok(StepName::Bedrock)],
            vec![model(Status::Ok)],
            None,
            vec![],
        );
        assert_eq!(healthy.outcome, Outcome::Healthy);
        let t = text(&healthy);
        assert!(t.starts_with("byollm aws doctor: team\n"), "{t}");
        assert!(
            t.contains("\n           ok claude-sonnet-4-6: answered\n"),
            "{t}"
        );
        assert!(
            t.ends_with("\n\nEverything works: the path to Bedrock is healthy.\n"),
            "{t}"
        );

        // A skipped step with nothing failed is "not verified", never healthy.
        let skipped = Report::new(
            "agent a".to_owned(),
            None,
            None,
            vec![
                ok(StepName::Server),
                step(
                    StepName::Sts,
                    Status::Skipped,
                    "not called (no agent token)",
                ),
            ],
            vec![],
            None,
            vec![],
        );
        assert_eq!(skipped.outcome, Outcome::NotVerified);
        assert!(!skipped.healthy());
        let t = text(&skipped);
        assert!(!t.contains("Everything works"), "{t}");
        assert!(t.contains("Not verified"), "{t}");
        assert!(t.contains("  - sts: not called (no agent token)\n"), "{t}");
        let json = serde_json::to_value(&skipped).unwrap();
        assert_eq!(json["outcome"], "not_verified");
    }

    #[test]
    fn not_verified_exits_3_and_failures_1() {
        let nv: anyhow::Error = NotVerified("x".into()).into();
        assert_eq!(out::exit_status(&nv), 3);
        assert_eq!(out::exit_status(&anyhow::anyhow!("boom")), 1);
    }
}
