//! Shared fixtures.

use byollm_policy::generate::{
    AccountId, Grant, Issuer, ModelProfile, PermissionsOptions, Region, SetupOptions, TrustOptions,
    TrustScope,
};
use byollm_policy::{Context, Policy, PolicyKind, Request, RequestPrincipal};

pub const ISSUER: &str = "https://byollm.example.com";
pub const HOST: &str = "byollm.example.com";
pub const TEAM: &str = "team_7f3a";
pub const ACCOUNT: &str = "123456789012";

pub fn trust_opts(scope: &str) -> TrustOptions {
    let mut o = TrustOptions::new(
        Issuer::parse(ISSUER).unwrap(),
        TEAM,
        AccountId::parse(ACCOUNT).unwrap(),
    )
    .unwrap();
    o.scope = scope.parse::<TrustScope>().unwrap();
    o
}

pub fn provider_arn() -> String {
    format!("arn:aws:iam::{ACCOUNT}:oidc-provider/{HOST}")
}

/// A web-identity assumption request as STS evaluates it.
pub fn assume(action: &str, sub: &str, aud: &str) -> Request {
    let mut context = Context::new();
    context.insert(&format!("{HOST}:sub"), sub);
    context.insert(&format!("{HOST}:aud"), aud);
    Request {
        principal: Some(RequestPrincipal::infer(&provider_arn())),
        action: action.to_owned(),
        resource: format!("arn:aws:iam::{ACCOUNT}:role/byollm"),
        context,
    }
}

pub fn admits(policy: &Policy, sub: &str, aud: &str) -> bool {
    byollm_policy::evaluate_one(
        policy,
        PolicyKind::Resource,
        &assume("sts:AssumeRoleWithWebIdentity", sub, aud),
    )
    .is_allowed()
}

pub fn sonnet_global() -> ModelProfile {
    ModelProfile {
        model_id: "claude-sonnet-4-6".into(),
        base_model_id: "anthropic.claude-sonnet-4-6".into(),
        profile_id: "global.anthropic.claude-sonnet-4-6".into(),
        destination_regions: vec![],
    }
}

pub fn sonnet45_us() -> ModelProfile {
    ModelProfile {
        model_id: "claude-sonnet-4-5".into(),
        base_model_id: "anthropic.claude-sonnet-4-5-20250929-v1:0".into(),
        profile_id: "us.anthropic.claude-sonnet-4-5-20250929-v1:0".into(),
        destination_regions: vec!["us-east-1".into(), "us-east-2".into(), "us-west-2".into()],
    }
}

pub fn perms_opts(grant: Grant) -> PermissionsOptions {
    PermissionsOptions {
        account: AccountId::parse(ACCOUNT).unwrap(),
        region: Region::parse("us-east-1").unwrap(),
        grant,
    }
}

pub fn setup_opts(scope: &str, grant: Grant) -> SetupOptions {
    let mut trust = trust_opts(scope);
    trust.session_tags = true;
    SetupOptions::new(trust, perms_opts(grant), "byollm-bedrock").unwrap()
}
