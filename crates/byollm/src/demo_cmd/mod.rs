//! `byollm demo`: the whole system on loopback in one command, finished in
//! seconds, with nothing touching AWS or the network.
//!
//! It starts the AWS emulator and the server, bootstraps a team, registers the
//! issuer as an IAM OIDC provider and creates roles from the generated trust and
//! permissions policies (through the emulator's IAM library API: a fresh machine
//! has no AWS CLI), configures the team and a named agent, starts a run, streams
//! a Bedrock reply, and prints the token's decoded `sub`, the `x-byollm-route`
//! header verbatim, the STS call count and the credit buckets. Then it shows an
//! agent the AWS side refuses, and the doctor's diagnosis of it; then a second
//! team whose Claude runs on Google Vertex AI through its workload identity
//! pool ([`gcp`]), and a third on Azure AI Foundry through its federated
//! identity credential ([`azure`]).
//!
//! Secrets (API keys, workload and identity tokens, AWS credentials) are never
//! printed; the token's decoded claims are.

use std::io::Write as _;
use std::time::Instant;

use anyhow::{Context as _, bail};
use byollm_api::client::Client;
use byollm_api::routes;
use byollm_api::types::{
    AgentCreate, AwsOverride, IdentityTokenRequest, InferenceProviders, LlmSettings, RunCreate,
    RunFinish, STS_AUDIENCE, UsageQuery,
};
use byollm_cloudsim::DEFAULT_ACCOUNT_ID;
use byollm_policy::generate::{Actor, TrustScope};
use clap::Args;
use futures::StreamExt as _;
use reqwest::header::HeaderMap;
use secrecy::SecretString;
use serde_json::{Value, json};

use byollm_doctor::{IamCredentials, Options};
use byollm_stack::{ISSUER, REGION, RoleSpec, Stack};

use crate::out;

mod azure;
mod gcp;

/// The model the demo's agent uses.
const MODEL: &str = "claude-sonnet-4-6";
/// What the run asks (the emulator's model echoes it back, word by word).
const PROMPT: &str = "Hello from a byollm agent run: this reply streamed from Amazon Bedrock \
                      in the team's own AWS account, signed with one-hour credentials nobody stored.";

/// `byollm demo` flags.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Keep the emulator and the server running after the demo (until Ctrl-C),
    /// to explore the web console with the printed sign-in link.
    #[arg(long)]
    pub keep_running: bool,
}

fn header(n: u32, title: &str) {
    out::line("");
    out::line(&format!("{n}. {title}"));
}

fn say(text: &str) {
    if text.is_empty() {
        out::line("");
    } else {
        out::line(&format!("   {text}"));
    }
}

/// Runs the demo.
pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    #[expect(
        clippy::disallowed_methods,
        reason = "the demo reports its own wall-clock duration to the person watching"
    )]
    let started = Instant::now();
    out::line(
        "byollm demo: an OIDC issuer and inference gateway, an AWS, Google Cloud and Azure emulator, three teams —",
    );
    out::line("all on loopback in this process; nothing here talks to AWS, Google or Microsoft.");

    header(1, "Start the AWS emulator and the byollm server");
    let stack = Stack::start("Acme Robotics", "owner@acme.example").await?;
    let result = match demo(&stack).await {
        Ok(()) => {
            header(
                9,
                "A second team on Google Vertex AI, through its workload identity pool",
            );
            match gcp::vertex_team(&stack).await {
                Ok(()) => {
                    header(
                        10,
                        "A third team on Azure AI Foundry, through its federated identity credential",
                    );
                    match azure::foundry_team(&stack).await {
                        Ok(()) => console(&stack).await,
                        Err(e) => Err(e),
                    }
                }
                Err(e) => Err(e),
            }
        }
        Err(e) => Err(e),
    };
    if result.is_err() {
        stack.shutdown().await;
        return result;
    }
    out::line("");
    out::line(&format!(
        "Done in {:.1} s. Try the pieces yourself: byollm cloudsim, byollm serve, byollm aws setup-script, byollm aws doctor, byollm gcp setup-script, byollm gcp doctor, byollm azure setup-script.",
        started.elapsed().as_secs_f64()
    ));
    if args.keep_running {
        out::line("Still running (--keep-running): open the link above; Ctrl-C stops.");
        crate::operator::shutdown_signal().await;
        out::line("Stopping.");
    }
    stack.shutdown().await;
    Ok(())
}

/// The last step: the web console's URL and a one-time sign-in link for the
/// owner (printed: it is the way in, works once, for 10 minutes).
async fn console(stack: &Stack) -> anyhow::Result<()> {
    header(11, "The web console");
    let link = byollm_core::service::create_sign_in_link(
        &stack.store,
        &byollm_api::clock::SystemClock,
        &stack.team_uid,
        &stack.owner_uid,
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    say(&format!(
        "console:         {}{}",
        stack.base,
        byollm_server::console::PREFIX
    ));
    say(&format!(
        "sign-in link:    {}",
        crate::operator::sign_in_link_url(
            &stack.base,
            secrecy::ExposeSecret::expose_secret(&link.token)
        )
    ));
    say(
        "                 (one-time, for the owner, valid 10 minutes; byollm admin login-link makes more)",
    );
    Ok(())
}

async fn demo(stack: &Stack) -> anyhow::Result<()> {
    say(&format!(
        "AWS emulator (IAM, STS, Bedrock Runtime): {} (account {DEFAULT_ACCOUNT_ID})",
        stack.sim.endpoint_url()
    ));
    say(&format!(
        "byollm server (issuer, API, gateway):     {} serving issuer {ISSUER}",
        stack.base
    ));
    say(&format!(
        "team \"Acme Robotics\" bootstrapped: team {}, owner {} owner@acme.example (its API key stays hidden)",
        stack.team_uid, stack.owner_uid
    ));
    let owner = stack.owner()?;

    header(2, "The customer's AWS side, from the generated setup");
    let provider = stack.register_issuer()?;
    say(&format!("OIDC provider  {provider}"));
    say(&format!("               client ids [{STS_AUDIENCE}]"));
    let team_role = stack.create_role(&RoleSpec {
        name: "byollm-acme",
        scope: TrustScope::Team,
        session_tags: false,
        source_identity: false,
        models: &[MODEL, "claude-haiku-4-5"],
    })?;
    say(&format!("role           {team_role}"));
    say(&format!(
        "  trust        sub like scoped_principal:{}/*  (every member and agent of the team)",
        stack.team_uid
    ));
    say(&format!(
        "  permissions  InvokeModel on {MODEL} and claude-haiku-4-5 via their inference profiles from {REGION}"
    ));

    header(3, "Team settings and a named agent with its own role");
    let settings: LlmSettings = serde_json::from_value(json!({
        "hosts": {"aws_bedrock": {"enabled": true, "enforcement": "enforce",
                                  "role_arn": team_role, "region": REGION}},
        "allow_fallback_outside_cloud": false,
        "worker_identity_tokens": true,
    }))?;
    owner.put_llm_settings(&settings).await?;
    say(&format!(
        "Bedrock on for the team (role byollm-acme, {REGION}); fallback outside the cloud: off"
    ));
    say("worker identity tokens: on (so this demo can show the token a run gets)");
    let bot = owner
        .create_agent(&AgentCreate {
            name: "release-bot".into(),
            description: Some("Cuts releases".into()),
            available: None,
            base_model: Some(MODEL.into()),
            inference_providers: None,
        })
        .await?;
    let bot_role = stack.create_role(&RoleSpec {
        name: "byollm-release-bot",
        scope: TrustScope::Named(vec![(Actor::Agent, bot.uid.clone())]),
        session_tags: false,
        source_identity: false,
        models: &[MODEL],
    })?;
    let patch = json!({"inference_providers": {"aws": {"role_arn": bot_role}}});
    owner.patch_agent(&bot.uid, &patch).await?;
    say(&format!("agent \"release-bot\" {}", bot.uid));
    say(&format!("  own role     {bot_role}"));
    say(&format!(
        "  trust        sub equals scoped_principal:{}/service_account:{}  (this agent only)",
        stack.team_uid, bot.uid
    ));

    header(4, "A cloud run for release-bot");
    let run = owner
        .create_run(&RunCreate {
            agent_uid: Some(bot.uid.clone()),
            prompt: Some(PROMPT.into()),
            model: Some(MODEL.into()),
        })
        .await?;
    let workload = SecretString::from(run.workload_token.expose().to_owned());
    let worker = owner.with_key(workload.clone());
    say(&format!("run {} ({})", run.run_id, run.state.as_str()));
    if let Some(b) = &run.bedrock {
        say(&format!(
            "effective AWS config: {} in {}",
            b.role_arn, b.region
        ));
    }
    let token = worker
        .run_identity_token(
            &run.run_id,
            &IdentityTokenRequest {
                audience: STS_AUDIENCE.into(),
                requested_duration_seconds: 300,
            },
        )
        .await?;
    let (_, claims) = byollm_doctor::decode_jwt(token.token.expose())
        .context("the server minted a token that is not a JWT")?;
    let claim = |n: &str| {
        claims
            .get(n)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    say("identity token for the run (decoded; the token itself is not shown):");
    say(&format!("  sub = {}", claim("sub")));
    say(&format!("  iss = {}", claim("iss")));
    say(&format!("  aud = {}", claim("aud")));

    header(
        5,
        &format!(
            "Stream a reply through the gateway (POST {}, stream: true)",
            routes::MESSAGES
        ),
    );
    let reply = stream_message(&worker, PROMPT).await?;
    say(&format!("x-byollm-route: {}", reply.route));
    if let Some(f) = &reply.fallback {
        say(&format!("x-byollm-fallback: {f}"));
    }
    let sts_first = stack.sim.call_count("sts:AssumeRoleWithWebIdentity");
    say(&format!("STS AssumeRoleWithWebIdentity calls: {sts_first}"));
    let again = send_message(&worker, "And once more, please.", false).await?;
    let sts_second = stack.sim.call_count("sts:AssumeRoleWithWebIdentity");
    say(&format!(
        "a second request (HTTP {}, route {}): STS calls still {sts_second} (the server's broker reuses the credentials)",
        again.status, again.route
    ));

    header(6, "Finish the run; its credits");
    owner
        .finish_run(&run.run_id, &RunFinish { state: None })
        .await?;
    let usage = owner
        .usage(&UsageQuery {
            run_id: Some(run.run_id.clone()),
            ..UsageQuery::default()
        })
        .await?;
    let b = usage.buckets;
    say(&format!(
        "credits: inference {:.2} (Bedrock tokens are billed by AWS, not here), platform {:.2} (per cloud run), compute {:.2} (per started minute)",
        b.inference, b.platform, b.compute
    ));
    for r in &usage.requests {
        say(&format!(
            "  request {} via {}: {} tokens in, {} out, {:.4} credits",
            r.model, r.route, r.input_tokens, r.output_tokens, r.credits
        ));
    }

    header(
        7,
        "A refused agent: \"intruder-bot\" pointed at release-bot's role",
    );
    let intruder = owner
        .create_agent(&AgentCreate {
            name: "intruder-bot".into(),
            description: Some("Misconfigured on purpose".into()),
            available: None,
            base_model: Some(MODEL.into()),
            inference_providers: Some(InferenceProviders {
                aws: AwsOverride {
                    role_arn: Some(bot_role.clone()),
                    region: None,
                    disabled: false,
                },
                ..InferenceProviders::default()
            }),
        })
        .await?;
    say(&format!("agent \"intruder-bot\" {}", intruder.uid));
    let bad_run = owner
        .create_run(&RunCreate {
            agent_uid: Some(intruder.uid.clone()),
            prompt: Some("Deploy everything.".into()),
            model: Some(MODEL.into()),
        })
        .await?;
    let bad_worker = owner.with_key(SecretString::from(
        bad_run.workload_token.expose().to_owned(),
    ));
    let refused = send_message(&bad_worker, "Deploy everything.", false).await?;
    say(&format!(
        "POST {} -> HTTP {}",
        routes::MESSAGES,
        refused.status
    ));
    say(&format!("  {}", refused.message));
    if refused.status < 400 {
        bail!("the misconfigured agent was served; the demo expected a refusal");
    }
    owner
        .finish_run(&bad_run.run_id, &RunFinish { state: None })
        .await?;

    header(8, &format!("byollm aws doctor --agent {}", intruder.uid));
    let (ak, sk) = stack.sim.admin_credentials();
    let report = byollm_doctor::run(&Options {
        server: stack.base.clone(),
        api_key: stack.owner_key.clone(),
        agent: Some(intruder.uid.clone()),
        aws_endpoint_url: Some(stack.sim.endpoint_url()),
        iam_endpoint_url: None,
        iam: Some(IamCredentials {
            access_key_id: ak.to_owned(),
            secret_access_key: SecretString::from(sk.to_owned()),
            session_token: None,
        }),
        duration_seconds: 3600,
        model: None,
    })
    .await;
    for line in crate::aws_cmd::doctor::text(&report).lines() {
        say(line);
    }
    if report.cause().is_none() {
        bail!("the doctor found nothing wrong with the misconfigured agent");
    }
    Ok(())
}

/// What a gateway call answered.
#[derive(Debug)]
struct Answer {
    status: u16,
    route: String,
    fallback: Option<String>,
    message: String,
}

fn headers_of(resp: &reqwest::Response) -> (String, Option<String>) {
    let get = |n: &str| {
        resp.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    (
        get("x-byollm-route").unwrap_or_else(|| "(none)".to_owned()),
        get("x-byollm-fallback"),
    )
}

async fn send_message(client: &Client, text: &str, stream: bool) -> anyhow::Result<Answer> {
    let body = json!({"model": MODEL, "max_tokens": 64, "stream": stream,
                      "messages": [{"role": "user", "content": text}]});
    let resp = client
        .gateway_post(routes::MESSAGES, &body, HeaderMap::new())
        .await?;
    let status = resp.status().as_u16();
    let (route, fallback) = headers_of(&resp);
    let v: Value = resp.json().await.unwrap_or(Value::Null);
    let message = v
        .pointer("/error/message")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    Ok(Answer {
        status,
        route,
        fallback,
        message,
    })
}

/// Streams `prompt` and prints the text as it arrives.
async fn stream_message(client: &Client, prompt: &str) -> anyhow::Result<Answer> {
    let body = json!({"model": MODEL, "max_tokens": 64, "stream": true,
                      "messages": [{"role": "user", "content": prompt}]});
    let resp = client
        .gateway_post(routes::MESSAGES, &body, HeaderMap::new())
        .await?;
    let status = resp.status().as_u16();
    let (route, fallback) = headers_of(&resp);
    if status != 200 {
        let text = resp.text().await.unwrap_or_default();
        bail!("the gateway answered HTTP {status}: {text}");
    }
    let mut stdout = std::io::stdout().lock();
    let _ = write!(stdout, "   > ");
    let mut stream = resp.bytes_stream();
    let mut buf = String::new();
    while let Some(chunk) = stream.next().await {
        buf.push_str(&String::from_utf8_lossy(&chunk?));
        while let Some(end) = buf.find("\n\n") {
            let event: String = buf.drain(..end + 2).collect();
            for line in event.lines() {
                if let Some(data) = line.strip_prefix("data: ")
                    && let Ok(v) = serde_json::from_str::<Value>(data)
                    && let Some(t) = v.pointer("/delta/text").and_then(Value::as_str)
                {
                    let _ = write!(stdout, "{t}");
                    let _ = stdout.flush();
                }
            }
        }
    }
    let _ = writeln!(stdout);
    Ok(Answer {
        status,
        route,
        fallback,
        message: String::new(),
    })
}
