//! The Azure walk against a whole stack in process: the team of `byollm demo`
//! on Azure AI Foundry (managed identity, one FIC at granularity `team`,
//! "Azure AI User"), healthy first, then each fault Entra or Foundry answers,
//! with the cause and a fix naming what to change.

use byollm_api::types::LlmSettings;
use byollm_cloudsim::azure::{AZURE_AI_USER, Fic, RoleAssignment};
use byollm_doctor::azure::AzureOptions;
use byollm_doctor::{Cause, Outcome, Report, Status, StepName};
use byollm_stack::Stack;
use byollm_stack::azure::{AZURE_CLIENT_ID, AZURE_RESOURCE, AzureTeam};
use serde_json::json;

async fn team() -> (Stack, AzureTeam) {
    let stack = Stack::start("Acme", "owner@acme.example").await.unwrap();
    let team = stack
        .bootstrap_azure_team("Initech", "owner@initech.example")
        .await
        .unwrap();
    (stack, team)
}

async fn walk(stack: &Stack, team: &AzureTeam) -> Report {
    byollm_doctor::azure::run(&AzureOptions {
        server: stack.base.clone(),
        api_key: team.owner_key.clone(),
        agent: None,
        endpoint_url: Some(stack.sim.endpoint_url()),
        model: None,
        now_ms: std::sync::Arc::new(|| {
            #[expect(
                clippy::disallowed_methods,
                reason = "the emulator's clock is the wall clock"
            )]
            let now = std::time::SystemTime::now();
            now.duration_since(std::time::UNIX_EPOCH)
                .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
                .unwrap_or_default()
        }),
    })
    .await
}

fn failing(report: &Report, step: StepName, cause: Cause) -> &byollm_doctor::Diagnosis {
    assert_eq!(report.outcome, Outcome::Failing, "{report:#?}");
    let d = report.diagnosis.as_ref().unwrap();
    assert_eq!((d.step, d.cause), (step, cause), "{d:#?}");
    d
}

#[tokio::test]
async fn a_healthy_team_walks_every_step() {
    let (stack, team) = team().await;
    let report = walk(&stack, &team).await;
    assert_eq!(report.outcome, Outcome::Healthy, "{report:#?}");
    let steps: Vec<_> = report.steps.iter().map(|s| (s.step, s.status)).collect();
    assert_eq!(
        steps,
        [
            StepName::Server,
            StepName::Discovery,
            StepName::Jwks,
            StepName::Token,
            StepName::Entra,
            StepName::Foundry
        ]
        .map(|s| (s, Status::Ok))
    );
    let token = &report.steps[3].detail;
    assert!(
        token.contains(&format!(
            "RS256, sub scoped_principal:{} (actor",
            team.team_uid
        )),
        "{token}"
    );
    assert!(
        report.steps[5].detail.contains(AZURE_RESOURCE),
        "{report:#?}"
    );
}

#[tokio::test]
async fn a_missing_fic_names_the_subject_to_add() {
    let (stack, team) = team().await;
    stack
        .sim
        .azure()
        .remove_fic(AZURE_CLIENT_ID, &team.fic.name);
    let report = walk(&stack, &team).await;
    let d = failing(&report, StepName::Entra, Cause::EntraNoMatchingFic);
    let sub = format!("scoped_principal:{}", team.team_uid);
    assert!(d.evidence[0].contains("AADSTS70021"), "{d:#?}");
    assert!(d.fix.contains(&format!("--subject {sub} ")), "{}", d.fix);
    assert_eq!(report.steps[5].status, Status::Skipped);
}

#[tokio::test]
async fn another_granularity_than_the_fics_is_named() {
    let (stack, team) = team().await;
    // The identity has the team's FIC; the team switches to per-actor subjects.
    let owner = byollm_api::client::Client::new(&stack.base, Some(team.owner_key.clone())).unwrap();
    let mut s: LlmSettings = owner.llm_settings().await.unwrap();
    s.hosts.azure_foundry.subject_granularity = serde_json::from_value(json!("actor")).unwrap();
    owner.put_llm_settings(&s).await.unwrap();
    let report = walk(&stack, &team).await;
    let d = failing(&report, StepName::Entra, Cause::EntraNoMatchingFic);
    assert!(d.evidence[1].contains("/user:"), "{d:#?}");
    assert!(d.fix.contains("subject_granularity"), "{}", d.fix);
}

#[tokio::test]
async fn a_fic_for_another_issuer_is_named() {
    let (stack, team) = team().await;
    let az = stack.sim.azure();
    az.remove_fic(AZURE_CLIENT_ID, &team.fic.name);
    az.add_fic(
        Fic {
            issuer: format!("{}/", team.fic.issuer),
            ..team.fic.clone()
        },
        0,
    )
    .unwrap();
    let report = walk(&stack, &team).await;
    let d = failing(&report, StepName::Entra, Cause::EntraIssuerMismatch);
    assert!(d.evidence[0].contains("AADSTS700211"), "{d:#?}");
    assert!(d.fix.contains("https://issuer.byollm.test "), "{}", d.fix);
}

#[tokio::test]
async fn a_missing_role_is_foundrys_401_with_the_role_to_assign() {
    let (stack, team) = team().await;
    stack.sim.azure().remove_role(&RoleAssignment {
        client_id: AZURE_CLIENT_ID.into(),
        role: AZURE_AI_USER.into(),
        resource: AZURE_RESOURCE.into(),
    });
    let report = walk(&stack, &team).await;
    assert_eq!(report.steps[4].status, Status::Ok, "{report:#?}");
    let d = failing(&report, StepName::Foundry, Cause::FoundryPermissionDenied);
    assert!(d.evidence[0].starts_with("401"), "{d:#?}");
    assert!(d.fix.contains("\"Azure AI User\""), "{}", d.fix);
    assert!(d.fix.contains(AZURE_CLIENT_ID), "{}", d.fix);
}

#[tokio::test]
async fn azure_off_is_not_configured() {
    let (stack, team) = team().await;
    let owner = byollm_api::client::Client::new(&stack.base, Some(team.owner_key.clone())).unwrap();
    let mut s: LlmSettings = owner.llm_settings().await.unwrap();
    s.hosts.azure_foundry.enabled = false;
    owner.put_llm_settings(&s).await.unwrap();
    let report = walk(&stack, &team).await;
    failing(&report, StepName::Server, Cause::AzureNotConfigured);
}
