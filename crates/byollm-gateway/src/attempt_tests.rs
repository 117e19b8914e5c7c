//! The attempt loop's rules, on plans built by [`crate::plan`].

use byollm_api::types::LlmSettings;
use byollm_core::broker::BrokerError;

use super::*;
use crate::outcome::OK;
use crate::plan::PlanInput;

/// Global profile, geographic profile, direct API (DESIGN §5 rule 2).
fn candidates() -> Vec<Candidate> {
    let mut s = LlmSettings::default();
    s.hosts.aws_bedrock.enabled = true;
    let input = PlanInput {
        settings: &s,
        vertex: None,
        azure: None,
        effective: Ok(byollm_api::types::BedrockTarget {
            role_arn: "arn:aws:iam::123456789012:role/t".into(),
            region: "us-east-1".into(),
        }),
        direct_anthropic: true,
        direct_openai: true,
        format: ApiFormat::Anthropic,
        max_models: 1,
    };
    let c = plan::plan(Catalog::builtin(), "claude-sonnet-4-6", &input).unwrap();
    assert_eq!(c.len(), 3);
    c
}

fn served() -> AttemptOutcome {
    AttemptOutcome::Served(Served::Whole {
        body: Bytes::new(),
        input: 0,
        output: 0,
    })
}

fn outcomes(walk: &Walk) -> Vec<&str> {
    walk.attempts.iter().map(|a| a.outcome.as_str()).collect()
}

#[test]
fn denied_global_profile_opens_the_geographic_one_only() {
    let [global, geo, direct] = <[Candidate; 3]>::try_from(candidates()).unwrap();
    let mut walk = Walk::default();
    assert_eq!(walk.skip(&global, true), None);
    let denied = AttemptOutcome::Failed(FailReason::AccessDenied("scp".into()));
    assert!(matches!(walk.after(&global, denied), Step::TryNext));
    assert_eq!(walk.skip(&geo, false), None);
    let throttled = AttemptOutcome::Failed(FailReason::Throttled("slow".into()));
    assert!(matches!(walk.after(&geo, throttled), Step::TryNext));
    // In-cloud failures keep the request inside the cloud when the team says so.
    assert_eq!(walk.skip(&direct, true), None);
    let skip = walk.skip(&direct, false).unwrap();
    assert_eq!(skip, SkipReason::StayInCloud);
    assert!(matches!(
        walk.after(&direct, AttemptOutcome::Skipped(skip)),
        Step::TryNext
    ));
    assert_eq!(
        outcomes(&walk),
        [
            "access denied: scp",
            "throttled: slow",
            "skipped: allow_fallback_outside_cloud is false"
        ]
    );
    let e = walk.exhausted("claude-sonnet-4-6", false);
    // A throttle may pass: 503, which SDKs retry after `Retry-After`.
    assert_eq!(e.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(e.code, "no_upstream_succeeded");
    assert!(e.hint.unwrap().contains("inside its cloud"));
    assert_eq!(
        e.attempts[1].route,
        "aws_bedrock:us.anthropic.claude-sonnet-4-6@us-east-1"
    );
}

#[test]
fn other_failures_skip_the_geographic_profile_silently() {
    let [global, geo, direct] = <[Candidate; 3]>::try_from(candidates()).unwrap();
    let mut walk = Walk::default();
    let refused = AttemptOutcome::RoleRefused(RoleRefused(BrokerError::RateLimited));
    assert!(matches!(walk.after(&global, refused), Step::TryNext));
    // Remembered: the same role is not asked again in this request.
    assert!(walk.refused_role(&global).is_some());
    assert!(walk.refused_role(&geo).is_some());
    assert!(walk.refused_role(&direct).is_none());
    let skip = walk.skip(&geo, true).unwrap();
    assert_eq!(skip, SkipReason::GlobalNotDenied);
    assert!(matches!(
        walk.after(&geo, AttemptOutcome::Skipped(skip)),
        Step::TryNext
    ));
    assert_eq!(walk.skip(&direct, true), None);
    assert!(matches!(walk.after(&direct, served()), Step::Commit(_)));
    assert_eq!(
        outcomes(&walk),
        [
            "role assumption failed: too many STS calls from this server; try again shortly",
            OK
        ]
    );
    assert_eq!(walk.attempts[1].route, "direct_api:claude-sonnet-4-6");
}

#[test]
fn only_timeouts_end_with_504() {
    let [global, _, direct] = <[Candidate; 3]>::try_from(candidates()).unwrap();
    let timed_out = || AttemptOutcome::Failed(FailReason::TimedOut("late".into()));
    let mut walk = Walk::default();
    walk.after(&global, timed_out());
    walk.after(&direct, timed_out());
    let e = walk.exhausted("claude-sonnet-4-6", true);
    assert_eq!(e.status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(e.attempts[0].outcome, "timed out: late");
    let mut walk = Walk::default();
    walk.after(&global, timed_out());
    walk.after(
        &direct,
        AttemptOutcome::Failed(FailReason::DirectStatus {
            status: 529,
            message: "busy".into(),
        }),
    );
    let e = walk.exhausted("claude-sonnet-4-6", true);
    assert_eq!(e.status, StatusCode::SERVICE_UNAVAILABLE);
}

/// SDKs retry 5xx answers: a failure no retry can fix must be a 4xx, or one
/// refused request becomes three (and three usage rows).
#[test]
fn permanent_failures_end_with_a_4xx_that_sdks_do_not_retry() {
    let [global, _, direct] = <[Candidate; 3]>::try_from(candidates()).unwrap();
    let refused = || {
        AttemptOutcome::RoleRefused(RoleRefused(BrokerError::Sts(
            byollm_federation::ExchangeError::AccessDenied("trust".into()),
        )))
    };
    let mut walk = Walk::default();
    walk.after(&global, refused());
    walk.after(
        &direct,
        AttemptOutcome::Failed(FailReason::DirectStatus {
            status: 401,
            message: "bad key".into(),
        }),
    );
    let e = walk.exhausted("claude-sonnet-4-6", true);
    assert_eq!(e.status, StatusCode::FORBIDDEN);
    let body = e.body(ApiFormat::Anthropic);
    assert_eq!(body["error"]["type"], "permission_error");

    let mut walk = Walk::default();
    walk.after(
        &global,
        AttemptOutcome::Failed(FailReason::ModelNotAvailable("no".into())),
    );
    walk.after(
        &direct,
        AttemptOutcome::Failed(FailReason::DirectNotConfigured),
    );
    assert_eq!(
        walk.exhausted("claude-sonnet-4-6", true).status,
        StatusCode::UNPROCESSABLE_ENTITY
    );

    // One transient failure among permanent ones: retrying may help.
    let mut walk = Walk::default();
    walk.after(&global, refused());
    walk.after(
        &direct,
        AttemptOutcome::Failed(FailReason::DirectUnreachable("reset".into())),
    );
    let e = walk.exhausted("claude-sonnet-4-6", true);
    assert_eq!(e.status, StatusCode::SERVICE_UNAVAILABLE);
    let resp = e.into_response(ApiFormat::OpenAi);
    assert_eq!(
        resp.headers()[axum::http::header::RETRY_AFTER],
        crate::error::RETRY_AFTER_SECONDS.to_string()
    );
}

#[test]
fn a_client_error_stops_with_every_attempt() {
    let [global, ..] = <[Candidate; 3]>::try_from(candidates()).unwrap();
    let mut walk = Walk::default();
    let rejected = AttemptOutcome::ClientError {
        status: 413,
        message: "too big".into(),
    };
    let Step::Stop(e) = walk.after(&global, rejected) else {
        panic!("a client error must stop the walk")
    };
    assert_eq!(e.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(e.code, "upstream_rejected_request");
    assert_eq!(e.message, "too big");
    assert_eq!(e.attempts.len(), 1);
    assert_eq!(e.attempts[0].outcome, "client error 413");
}
