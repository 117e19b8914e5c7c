//! One test per misconfiguration the doctor names: each sets the fault up in the
//! emulator (or the team's settings) and asserts the exact cause.

use byollm_api::types::{AgentCreate, LlmSettings};
use byollm_policy::generate::{Actor, DEFAULT_POLICY_NAME, TrustScope};
use secrecy::SecretString;
use serde_json::{Value, json};

use byollm_doctor::{Cause, IamCredentials, Options, Outcome, Report, Status, StepName};
use byollm_stack::{ISSUER, REGION, RoleSpec, Stack};

const MODEL: &str = "claude-sonnet-4-6";
const BROAD: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow",
 "Action":["bedrock:InvokeModel","bedrock:InvokeModelWithResponseStream"],
 "Resource":["arn:aws:bedrock:*::foundation-model/*","arn:aws:bedrock:*:*:inference-profile/*"]}]}"#;

fn team_role() -> RoleSpec<'static> {
    RoleSpec {
        name: "byollm-team",
        scope: TrustScope::Team,
        session_tags: false,
        source_identity: false,
        models: &[MODEL],
    }
}

async fn stack() -> Stack {
    Stack::start("Acme", "owner@acme.example").await.unwrap()
}

/// Bedrock on for the team with `role_arn`, plus `extra` settings merged in.
async fn settings(stack: &Stack, role_arn: &str, extra: Value) {
    let mut doc = json!({
        "hosts": {"aws_bedrock": {"enabled": true, "role_arn": role_arn, "region": REGION}},
    });
    if let (Some(d), Some(e)) = (doc.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            d.insert(k.clone(), v.clone());
        }
    }
    let s: LlmSettings = serde_json::from_value(doc).unwrap();
    stack.owner().unwrap().put_llm_settings(&s).await.unwrap();
}

/// A healthy team: provider, generated role, settings.
async fn healthy() -> (Stack, String) {
    let stack = stack().await;
    stack.register_issuer().unwrap();
    let role = stack.create_role(&team_role()).unwrap();
    settings(&stack, &role, json!({})).await;
    (stack, role)
}

fn opts(stack: &Stack, iam: bool) -> Options {
    let (ak, sk) = stack.sim.admin_credentials();
    Options {
        server: stack.base.clone(),
        api_key: stack.owner_key.clone(),
        agent: None,
        aws_endpoint_url: Some(stack.sim.endpoint_url()),
        iam_endpoint_url: None,
        iam: iam.then(|| IamCredentials {
            access_key_id: ak.to_owned(),
            secret_access_key: SecretString::from(sk.to_owned()),
            session_token: None,
        }),
        duration_seconds: 3600,
        model: Some(MODEL.to_owned()),
    }
}

/// Everything the report says, a line per item (what the CLI prints, without
/// its layout), for the assertions' messages and searches.
fn text(report: &Report) -> String {
    let mut lines = vec![report.target.clone()];
    lines.extend(report.role_arn.clone());
    lines.extend(report.region.clone());
    for s in &report.steps {
        lines.push(format!("{} {:?} {}", s.step.as_str(), s.status, s.detail));
    }
    for m in &report.models {
        lines.push(format!(
            "model {} {} {:?} {}",
            m.model, m.profile, m.status, m.detail
        ));
    }
    lines.extend(
        report
            .not_verified
            .iter()
            .map(|n| format!("not verified: {n}")),
    );
    if let Some(d) = &report.diagnosis {
        lines.push(format!("diagnosis ({}): {}", d.step.as_str(), d.summary));
        lines.push(format!("cause: {}", d.cause.code()));
        lines.extend(d.evidence.iter().map(|e| format!("evidence: {e}")));
        lines.push(format!("fix: {}", d.fix));
    }
    lines.extend(report.notes.iter().map(|n| format!("note: {n}")));
    lines.join("\n")
}

fn assert_cause(report: &Report, cause: Cause, step: StepName) {
    let text = text(report);
    let d = report
        .diagnosis
        .as_ref()
        .unwrap_or_else(|| panic!("expected {cause:?}, got a healthy report:\n{text}"));
    assert_eq!(d.cause, cause, "{text}");
    assert_eq!(d.step, step, "{text}");
    let failed: Vec<_> = report
        .steps
        .iter()
        .filter(|s| s.status == Status::Failed)
        .collect();
    assert_eq!(failed.len(), 1, "{text}");
    assert!(!d.fix.is_empty());
    // The stable code `--json` carries.
    let json = serde_json::to_value(report).unwrap();
    assert_eq!(json["diagnosis"]["cause"], cause.code(), "{text}");
}

#[tokio::test]
async fn a_healthy_setup_passes_every_step() {
    let (stack, _) = healthy().await;
    let report = byollm_doctor::run(&opts(&stack, true)).await;
    let text = text(&report);
    assert!(report.healthy(), "{text}");
    assert!(
        report.steps.iter().all(|s| s.status == Status::Ok),
        "{text}"
    );
    assert!(
        text.contains("global.anthropic.claude-sonnet-4-6"),
        "{text}"
    );
    stack.shutdown().await;
}

#[tokio::test]
async fn names_a_missing_oidc_provider() {
    let stack = stack().await;
    let role = stack.create_role(&team_role()).unwrap();
    settings(&stack, &role, json!({})).await;
    let report = byollm_doctor::run(&opts(&stack, true)).await;
    assert_cause(&report, Cause::OidcProviderMissing, StepName::Sts);
    stack.shutdown().await;
}

#[tokio::test]
async fn names_an_issuer_registered_with_a_trailing_slash() {
    let stack = stack().await;
    stack
        .sim
        .create_oidc_provider(&format!("{ISSUER}/"), &["sts.amazonaws.com"])
        .unwrap();
    let role = stack.create_role(&team_role()).unwrap();
    settings(&stack, &role, json!({})).await;
    let report = byollm_doctor::run(&opts(&stack, true)).await;
    assert_cause(&report, Cause::IssuerMismatch, StepName::Sts);
    let d = report.diagnosis.unwrap();
    assert!(d.summary.contains("issuer.byollm.test/"), "{}", d.summary);
    stack.shutdown().await;
}

#[tokio::test]
async fn names_an_http_issuer() {
    let stack = Stack::start_with_issuer("Acme", "o@acme.example", "http://127.0.0.1:9")
        .await
        .unwrap();
    stack.register_issuer().unwrap();
    let role = stack.create_role(&team_role()).unwrap();
    settings(&stack, &role, json!({})).await;
    let report = byollm_doctor::run(&opts(&stack, true)).await;
    assert_cause(&report, Cause::IssuerNotHttps, StepName::Discovery);
    stack.shutdown().await;
}

#[tokio::test]
async fn names_an_audience_missing_from_the_client_ids() {
    let stack = stack().await;
    stack
        .sim
        .create_oidc_provider(ISSUER, &["some-other-client"])
        .unwrap();
    let role = stack.create_role(&team_role()).unwrap();
    settings(&stack, &role, json!({})).await;
    let report = byollm_doctor::run(&opts(&stack, true)).await;
    assert_cause(&report, Cause::AudienceNotInClientIds, StepName::Sts);
    let d = report.diagnosis.unwrap();
    assert!(d.fix.contains("add-client-id-to-open-id-connect-provider"));
    assert!(d.evidence.iter().any(|e| e.contains("some-other-client")));
    stack.shutdown().await;
}

#[tokio::test]
async fn names_the_sub_condition_that_refused_a_member() {
    let stack = stack().await;
    stack.register_issuer().unwrap();
    // A role for the team's agents only; the doctor's token is a member's.
    let role = stack
        .create_role(&RoleSpec {
            scope: TrustScope::Agents,
            ..team_role()
        })
        .unwrap();
    settings(&stack, &role, json!({})).await;
    let report = byollm_doctor::run(&opts(&stack, true)).await;
    assert_cause(&report, Cause::SubNotAdmitted, StepName::Sts);
    let d = report.diagnosis.as_ref().unwrap();
    let condition = d
        .evidence
        .iter()
        .find(|e| e.contains("condition"))
        .unwrap_or_else(|| panic!("{}", text(&report)));
    assert!(condition.contains("StringLike"), "{condition}");
    assert!(condition.contains("issuer.byollm.test:sub"), "{condition}");
    assert!(condition.contains("/service_account:*"), "{condition}");
    assert!(d.fix.contains("byollm aws trust-policy"), "{}", d.fix);

    // Without IAM access, the doctor says what STS said and lists the causes.
    let report = byollm_doctor::run(&opts(&stack, false)).await;
    assert_cause(&report, Cause::TrustPolicyRefused, StepName::Sts);
    stack.shutdown().await;
}

#[tokio::test]
async fn names_a_missing_tag_session_and_set_source_identity() {
    let (stack, role) = healthy().await;
    settings(&stack, &role, json!({"session_tags": true})).await;
    let report = byollm_doctor::run(&opts(&stack, true)).await;
    assert_cause(&report, Cause::MissingTagSession, StepName::Sts);

    settings(&stack, &role, json!({"source_identity": true})).await;
    let report = byollm_doctor::run(&opts(&stack, true)).await;
    assert_cause(&report, Cause::MissingSetSourceIdentity, StepName::Sts);
    stack.shutdown().await;
}

#[tokio::test]
async fn names_a_duration_above_the_roles_maximum() {
    let (stack, _) = healthy().await;
    let mut o = opts(&stack, true);
    o.duration_seconds = 7200;
    let report = byollm_doctor::run(&o).await;
    assert_cause(&report, Cause::DurationAboveRoleMax, StepName::Sts);
    let d = report.diagnosis.unwrap();
    assert!(
        d.evidence
            .iter()
            .any(|e| e.contains("MaxSessionDuration = 3600"))
    );
    stack.shutdown().await;
}

#[tokio::test]
async fn names_a_missing_role() {
    let (stack, _) = healthy().await;
    let missing = format!("arn:aws:iam::{}:role/nobody", stack.account());
    settings(&stack, &missing, json!({})).await;
    let report = byollm_doctor::run(&opts(&stack, true)).await;
    assert_cause(&report, Cause::RoleMissing, StepName::Sts);
    stack.shutdown().await;
}

#[tokio::test]
async fn names_unreachable_keys_and_sts_throttling() {
    let (stack, _) = healthy().await;
    stack.sim.faults().set_jwks_unreachable(true);
    let report = byollm_doctor::run(&opts(&stack, true)).await;
    assert_cause(&report, Cause::JwksUnreachable, StepName::Sts);
    stack.sim.faults().set_jwks_unreachable(false);

    stack
        .sim
        .faults()
        .fail_next("sts:AssumeRoleWithWebIdentity", "Throttling", 1);
    let report = byollm_doctor::run(&opts(&stack, true)).await;
    assert_cause(&report, Cause::Throttled, StepName::Sts);
    stack.shutdown().await;
}

#[tokio::test]
async fn names_a_missing_destination_region_permission() {
    let (stack, role) = healthy().await;
    // The `us.` profile routes to us-east-1, us-east-2 and us-west-2; this policy
    // grants the foundation model in us-east-1 only.
    let account = stack.account().to_owned();
    let policy = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
    "Action": ["bedrock:InvokeModel"],
    "Resource": [
        format!("arn:aws:bedrock:{REGION}:{account}:inference-profile/us.anthropic.claude-sonnet-4-6"),
        format!("arn:aws:bedrock:{REGION}::foundation-model/anthropic.claude-sonnet-4-6"),
    ]}]});
    stack
        .sim
        .put_role_policy("byollm-team", DEFAULT_POLICY_NAME, &policy.to_string())
        .unwrap();
    settings(
        &stack,
        &role,
        json!({"models": {MODEL: {"aws_bedrock": {"model_ref": "us.anthropic.claude-sonnet-4-6"}}}}),
    )
    .await;
    let report = byollm_doctor::run(&opts(&stack, true)).await;
    assert_cause(&report, Cause::ModelPermissionMissing, StepName::Bedrock);
    let d = report.diagnosis.unwrap();
    assert!(
        d.summary
            .contains("foundation-model/anthropic.claude-sonnet-4-6")
            && !d.summary.contains(&format!("bedrock:{REGION}::")),
        "{}",
        d.summary
    );
    stack.shutdown().await;
}

/// Every model the team routes to Bedrock is called; one the role's policy does
/// not grant fails the walk, and the fix keeps every routed model in the one
/// inline policy (same name as the setup script's), with the account filled in.
#[tokio::test]
async fn checks_every_routed_model_and_names_the_one_refused() {
    let (stack, role) = healthy().await;
    // The generated role grants MODEL only; route Haiku as well.
    let haiku = "claude-haiku-4-5";
    settings(
        &stack,
        &role,
        json!({"hosts": {"aws_bedrock": {"enabled": true, "role_arn": role, "region": REGION,
               "opt_out_of_new_models": true}},
               "models": {MODEL: {"aws_bedrock": {"enabled": true}},
                          haiku: {"aws_bedrock": {"enabled": true}}}}),
    )
    .await;
    let mut o = opts(&stack, true);
    o.model = None;
    let report = byollm_doctor::run(&o).await;
    assert_cause(&report, Cause::ModelPermissionMissing, StepName::Bedrock);
    let t = text(&report);
    let status = |id: &str| {
        report
            .models
            .iter()
            .find(|m| m.model == id)
            .map(|m| m.status)
    };
    let mut models: Vec<&str> = report.models.iter().map(|m| m.model.as_str()).collect();
    models.dedup();
    assert_eq!(models, [MODEL, haiku], "{t}");
    assert_eq!(status(MODEL), Some(Status::Ok), "{t}");
    // The geographic profile the gateway falls back to was called too, and the
    // generated role grants it.
    let geo = report
        .models
        .iter()
        .find(|m| m.model == MODEL && m.profile.starts_with("us."))
        .map(|m| m.status);
    assert_eq!(geo, Some(Status::Ok), "{t}");
    assert_eq!(status(haiku), Some(Status::Failed), "{t}");
    let fix = &report.diagnosis.as_ref().unwrap().fix;
    assert!(
        fix.contains(&format!("--account {}", stack.account())),
        "{fix}"
    );
    assert!(
        fix.contains(&format!("--policy-name {DEFAULT_POLICY_NAME}")),
        "{fix}"
    );
    assert!(fix.contains(MODEL) && fix.contains(haiku), "{fix}");
    assert!(!fix.contains("(;"), "{fix}");

    // Granting both models makes the whole walk healthy.
    stack
        .sim
        .put_role_policy("byollm-team", DEFAULT_POLICY_NAME, BROAD)
        .unwrap();
    let report = byollm_doctor::run(&o).await;
    assert_eq!(report.outcome, Outcome::Healthy, "{}", text(&report));
    // Each model through its global profile and the geographic fallback.
    assert_eq!(report.models.len(), 4, "{}", text(&report));
    stack.shutdown().await;
}

#[tokio::test]
async fn names_a_model_without_access_and_bedrock_throttling() {
    let (stack, _) = healthy().await;
    stack
        .sim
        .faults()
        .disable_model(REGION, "anthropic.claude-sonnet-4-6");
    let report = byollm_doctor::run(&opts(&stack, true)).await;
    assert_cause(&report, Cause::ModelNotEnabled, StepName::Bedrock);
    stack
        .sim
        .faults()
        .enable_model(REGION, "anthropic.claude-sonnet-4-6");

    stack
        .sim
        .faults()
        .fail_next("bedrock:InvokeModel", "ThrottlingException", 1);
    let report = byollm_doctor::run(&opts(&stack, true)).await;
    assert_cause(&report, Cause::Throttled, StepName::Bedrock);
    stack.shutdown().await;
}

#[tokio::test]
async fn names_a_model_that_needs_an_inference_profile() {
    let (stack, role) = healthy().await;
    stack
        .sim
        .put_role_policy("byollm-team", DEFAULT_POLICY_NAME, BROAD)
        .unwrap();
    settings(
        &stack,
        &role,
        json!({"models": {MODEL: {"aws_bedrock": {"model_ref": "anthropic.claude-sonnet-4-6"}}}}),
    )
    .await;
    let report = byollm_doctor::run(&opts(&stack, true)).await;
    assert_cause(&report, Cause::NeedsInferenceProfile, StepName::Bedrock);
    assert!(
        report
            .diagnosis
            .unwrap()
            .fix
            .contains("global.anthropic.claude-sonnet-4-6")
    );
    stack.shutdown().await;
}

#[tokio::test]
async fn checks_one_agent_against_its_own_role() {
    let (stack, _) = healthy().await;
    let owner = stack.owner().unwrap();
    let agent = |name: &str| AgentCreate {
        name: name.to_owned(),
        description: None,
        available: None,
        base_model: None,
        inference_providers: None,
    };
    let bot = owner.create_agent(&agent("bot")).await.unwrap();
    let other = owner.create_agent(&agent("other")).await.unwrap();
    let bot_role = stack
        .create_role(&RoleSpec {
            name: "byollm-bot",
            scope: TrustScope::Named(vec![(Actor::Agent, bot.uid.clone())]),
            ..team_role()
        })
        .unwrap();
    for uid in [&bot.uid, &other.uid] {
        owner
            .patch_agent(
                uid,
                &json!({"inference_providers": {"aws": {"role_arn": bot_role}}}),
            )
            .await
            .unwrap();
    }
    // The team role (scope team) also admits the agents that have their own role.
    let report = byollm_doctor::run(&opts(&stack, true)).await;
    assert!(report.healthy(), "{}", text(&report));
    assert!(
        report
            .notes
            .iter()
            .any(|n| n.contains("admits every agent of the team") && n.contains(&bot.uid)),
        "{}",
        text(&report)
    );

    // Worker tokens off (the default): the admin's diagnosis route mints the
    // agent's token, so STS and Bedrock are really called, and no run is started
    // (nothing billed).
    let mut o = opts(&stack, true);
    o.agent = Some(bot.uid.clone());
    let sts_before = stack
        .sim
        .faults()
        .call_count("sts:AssumeRoleWithWebIdentity");
    let report = byollm_doctor::run(&o).await;
    assert!(report.healthy(), "{}", text(&report));
    assert_eq!(report.outcome, Outcome::Healthy);
    assert!(
        stack
            .sim
            .faults()
            .call_count("sts:AssumeRoleWithWebIdentity")
            > sts_before,
        "the agent's token went to STS"
    );
    assert!(
        report.steps.iter().all(|s| s.status == Status::Ok),
        "{}",
        text(&report)
    );
    let usage = owner.usage(&Default::default()).await.unwrap();
    assert_eq!(
        usage.buckets.platform, 0.0,
        "the doctor started a billed run"
    );
    assert!(
        !report.notes.iter().any(|n| n.contains("warning")),
        "{:?}",
        report.notes
    );
    o.agent = Some(other.uid.clone());
    let report = byollm_doctor::run(&o).await;
    assert_cause(&report, Cause::SubNotAdmitted, StepName::Sts);
    // The fix has no placeholder the doctor could have filled.
    let fix = &report.diagnosis.as_ref().unwrap().fix;
    for placeholder in ["OTHER_UID", "NEW_ROLE", "ACCOUNT"] {
        assert!(!fix.contains(placeholder), "{fix}");
    }
    assert!(
        fix.contains(&format!("service_account:{}", other.uid)),
        "{fix}"
    );
    // Without IAM access STS's refusal is reported with its possible causes.
    o.iam = None;
    let report = byollm_doctor::run(&o).await;
    assert_cause(&report, Cause::TrustPolicyRefused, StepName::Sts);

    // With worker tokens on, the agent's own token goes to STS.
    let role = owner
        .llm_settings()
        .await
        .unwrap()
        .hosts
        .aws_bedrock
        .role_arn
        .unwrap();
    settings(&stack, &role, json!({"worker_identity_tokens": true})).await;
    let mut o = opts(&stack, true);
    o.agent = Some(bot.uid.clone());
    let report = byollm_doctor::run(&o).await;
    assert!(report.healthy(), "{}", text(&report));
    o.agent = Some(other.uid.clone());
    let report = byollm_doctor::run(&o).await;
    assert_cause(&report, Cause::SubNotAdmitted, StepName::Sts);
    assert!(text(&report).contains("StringEquals"), "{}", text(&report));

    // An agent's own role that admits the whole team is flagged.
    let wide = stack
        .create_role(&RoleSpec {
            name: "byollm-wide",
            ..team_role()
        })
        .unwrap();
    owner
        .patch_agent(
            &bot.uid,
            &json!({"inference_providers": {"aws": {"role_arn": wide}}}),
        )
        .await
        .unwrap();
    let mut w = opts(&stack, true);
    w.agent = Some(bot.uid.clone());
    let report = byollm_doctor::run(&w).await;
    assert!(report.healthy(), "{}", text(&report));
    assert!(
        report
            .notes
            .iter()
            .any(|n| n.contains("own role") && n.contains("--scope agent:")),
        "{:?}",
        report.notes
    );

    // An override that disables Bedrock for the agent.
    owner
        .patch_agent(
            &other.uid,
            &json!({"inference_providers": {"aws": {"disabled": true}}}),
        )
        .await
        .unwrap();
    let report = byollm_doctor::run(&o).await;
    assert_cause(&report, Cause::AgentBedrockDisabled, StepName::Server);
    stack.shutdown().await;
}

#[tokio::test]
async fn names_a_team_without_bedrock_and_a_refused_key() {
    let stack = stack().await;
    let report = byollm_doctor::run(&opts(&stack, false)).await;
    assert_cause(&report, Cause::BedrockNotConfigured, StepName::Server);
    let mut o = opts(&stack, false);
    o.api_key = SecretString::from("byollm_key_not_a_real_key_000000000000".to_owned());
    let report = byollm_doctor::run(&o).await;
    assert_cause(&report, Cause::ApiKeyRefused, StepName::Server);
    stack.shutdown().await;
}

#[tokio::test]
async fn names_an_aud_condition_and_a_foreign_provider_in_the_trust_policy() {
    let (stack, _) = healthy().await;
    let account = stack.account().to_owned();
    let trust = |provider: &str, aud: &str| {
        json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
            "Principal": {"Federated": format!("arn:aws:iam::{account}:oidc-provider/{provider}")},
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {"StringEquals": {"issuer.byollm.test:aud": aud},
                          "StringLike": {"issuer.byollm.test:sub": "scoped_principal:*"}}}]})
        .to_string()
    };
    stack
        .sim
        .update_assume_role_policy("byollm-team", &trust("issuer.byollm.test", "my-app"))
        .unwrap();
    let report = byollm_doctor::run(&opts(&stack, true)).await;
    assert_cause(&report, Cause::AudienceNotAdmitted, StepName::Sts);
    assert!(text(&report).contains("\"my-app\""), "{}", text(&report));
    // The fix is the audience's own, not the sub condition's.
    let fix = &report.diagnosis.as_ref().unwrap().fix;
    assert!(
        fix.contains("issuer.byollm.test:aud") && fix.contains("sts.amazonaws.com"),
        "{fix}"
    );
    assert!(
        !fix.contains("OTHER_UID") && !fix.contains("--scope"),
        "{fix}"
    );

    stack
        .sim
        .update_assume_role_policy(
            "byollm-team",
            &trust("token.actions.githubusercontent.com", "sts.amazonaws.com"),
        )
        .unwrap();
    let report = byollm_doctor::run(&opts(&stack, true)).await;
    assert_cause(&report, Cause::ProviderNotTrusted, StepName::Sts);
    stack.shutdown().await;
}
