//! Team LLM settings: validation of the document admins `PUT` (complete: every
//! field named, see [`require_complete`]) or `PATCH` (a JSON Merge Patch of the
//! current document), and the effective-AWS-config resolution of DESIGN §4.
//!
//! Invariant: nothing the admin did not write turns on a path out of the
//! customer's cloud. A new team starts with Bedrock off and the direct API on
//! (its only way to serve a request until an admin sets up Bedrock), and with
//! `allow_fallback_outside_cloud` off, so enabling Bedrock later never brings a
//! silent fallback with it.

use std::collections::BTreeSet;

use byollm_api::types::{
    ActorType, AwsOverride, BedrockTarget, Enforcement, LlmSettings, SUBJECT_RUN_ID,
    SUBJECT_SCOPED_PRINCIPAL,
};

use crate::validate::{self, FieldError};

#[path = "settings_gcp.rs"]
pub mod gcp;

#[path = "settings_azure.rs"]
pub mod azure;

/// Most audiences a team may list.
pub const MAX_AUDIENCES: usize = 10;

/// The longest team maximum key lifetime, in days (100 years).
pub const MAX_KEY_LIFETIME_DAYS: u32 = 36_500;

/// Fields a `PUT` must name, as JSON paths; the others (`role_arn`, `region`,
/// `model_ref` and any later optional field) may be left out and mean `null`.
const REQUIRED: [&str; 12] = [
    "hosts",
    "hosts.aws_bedrock",
    "hosts.aws_bedrock.enabled",
    "hosts.aws_bedrock.enforcement",
    "hosts.aws_bedrock.opt_out_of_new_models",
    "hosts.direct_api",
    "hosts.direct_api.enabled",
    "models",
    "allow_fallback_outside_cloud",
    "subject_template",
    "session_tags",
    "source_identity",
];

/// More top-level fields a `PUT` must name.
const REQUIRED_TOO: [&str; 2] = ["worker_identity_tokens", "token_audiences"];

/// Fields each `models.<id>` entry must name.
const REQUIRED_PER_MODEL: [&str; 4] = [
    "aws_bedrock",
    "aws_bedrock.enabled",
    "direct_api",
    "direct_api.enabled",
];

fn lookup<'a>(doc: &'a serde_json::Value, path: &str) -> Option<&'a serde_json::Value> {
    path.split('.')
        .try_fold(doc, |v, key| v.as_object()?.get(key))
}

/// Checks that a `PUT` body is a complete settings document: a JSON object
/// naming every required field (a missing one is an error naming it), so an
/// empty or partial body can never reset the team to defaults.
pub fn require_complete(doc: &serde_json::Value) -> Result<(), FieldError> {
    if !doc.is_object() {
        return Err(FieldError::new(
            "body",
            "expected the complete settings document as a JSON object (use PATCH for a partial change)",
        ));
    }
    for path in REQUIRED.iter().chain(REQUIRED_TOO.iter()) {
        if lookup(doc, path).is_none_or(serde_json::Value::is_null) {
            return Err(FieldError::new(
                *path,
                "missing; PUT replaces the whole document, so every field is required \
                 (use PATCH to change some fields)",
            ));
        }
    }
    if let Some(serde_json::Value::Object(models)) = doc.get("models") {
        for (id, entry) in models {
            for path in REQUIRED_PER_MODEL {
                if lookup(entry, path).is_none_or(serde_json::Value::is_null) {
                    return Err(FieldError::new(
                        format!("models.{id}.{path}"),
                        "missing; PUT replaces the whole document, so every field is required",
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Checks a settings document before it is stored.
pub fn validate_llm_settings(s: &LlmSettings) -> Result<(), FieldError> {
    if let Some(days) = s.api_key_max_lifetime_days
        && !(1..=MAX_KEY_LIFETIME_DAYS).contains(&days)
    {
        return Err(FieldError::new(
            "api_key_max_lifetime_days",
            format!("{days} is out of range; expected 1 to {MAX_KEY_LIFETIME_DAYS}"),
        ));
    }
    let bedrock = &s.hosts.aws_bedrock;
    if let Some(arn) = &bedrock.role_arn {
        validate::role_arn("hosts.aws_bedrock.role_arn", arn)?;
    }
    if let Some(region) = &bedrock.region {
        validate::region("hosts.aws_bedrock.region", region)?;
    }
    if bedrock.enabled {
        if bedrock.role_arn.is_none() {
            return Err(FieldError::new(
                "hosts.aws_bedrock.role_arn",
                "required while hosts.aws_bedrock.enabled is true; expected \
                 arn:aws:iam::<12-digit account>:role/<name>",
            ));
        }
        if bedrock.region.is_none() {
            return Err(FieldError::new(
                "hosts.aws_bedrock.region",
                "required while hosts.aws_bedrock.enabled is true; expected a Region like us-east-1",
            ));
        }
    }
    gcp::validate_host(&s.hosts.gcp_vertex)?;
    gcp::validate_models(s)?;
    azure::validate_host(&s.hosts.azure_foundry)?;
    azure::validate_models(s)?;
    for (i, h) in s.host_order.iter().enumerate() {
        if s.host_order[..i].contains(h) {
            return Err(FieldError::new(
                "host_order",
                format!(
                    "`{}` is listed twice; expected each of aws_bedrock, gcp_vertex at most once",
                    h.as_str()
                ),
            ));
        }
    }
    for (model, hosts) in &s.models {
        validate::model_id(&format!("models.{model}"), model)?;
        if let Some(model_ref) = &hosts.aws_bedrock.model_ref {
            validate::model_ref(&format!("models.{model}.aws_bedrock.model_ref"), model_ref)?;
        }
    }
    let template: Vec<&str> = s.subject_template.iter().map(String::as_str).collect();
    if template != [SUBJECT_SCOPED_PRINCIPAL]
        && template != [SUBJECT_SCOPED_PRINCIPAL, SUBJECT_RUN_ID]
    {
        return Err(FieldError::new(
            "subject_template",
            "expected [\"scoped_principal\"] or [\"scoped_principal\", \"run_id\"]",
        ));
    }
    if s.token_audiences.is_empty() || s.token_audiences.len() > MAX_AUDIENCES {
        return Err(FieldError::new(
            "token_audiences",
            format!("expected 1-{MAX_AUDIENCES} audiences, e.g. [\"sts.amazonaws.com\"]"),
        ));
    }
    let mut seen = BTreeSet::new();
    for (i, aud) in s.token_audiences.iter().enumerate() {
        // IAM client ids are 1–255 characters (aws-facts §2).
        if aud.is_empty()
            || aud.len() > 255
            || aud.chars().any(|c| c.is_control() || c.is_whitespace())
        {
            return Err(FieldError::new(
                format!("token_audiences[{i}]"),
                "expected 1-255 characters without spaces, e.g. sts.amazonaws.com",
            ));
        }
        if !seen.insert(aud.as_str()) {
            return Err(FieldError::new(
                format!("token_audiences[{i}]"),
                format!("`{aud}` is listed twice"),
            ));
        }
    }
    Ok(())
}

/// Checks an agent's AWS override.
pub fn validate_override(o: &AwsOverride) -> Result<(), FieldError> {
    if let Some(arn) = &o.role_arn {
        validate::role_arn("inference_providers.aws.role_arn", arn)?;
    }
    if let Some(region) = &o.region {
        validate::region("inference_providers.aws.region", region)?;
    }
    Ok(())
}

/// Why a principal does not use Bedrock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NoBedrock {
    /// The team has not enabled the Bedrock host.
    #[error("the team has not enabled AWS Bedrock")]
    TeamDisabled,
    /// The named agent's override says `disabled: true`.
    #[error("this agent's AWS override is disabled")]
    AgentDisabled,
    /// Enforcement is `respect_user_setting` and the member has not opted in.
    #[error("the member has not opted in to AWS Bedrock")]
    MemberNotOptedIn,
    /// No role ARN is configured (team or override).
    #[error("no AWS role ARN is configured")]
    NoRole,
    /// No Region is configured (team or override).
    #[error("no AWS Region is configured")]
    NoRegion,
}

/// The effective AWS config for a request (DESIGN §4): a named agent's override
/// where set (and `disabled: true` keeps it off Bedrock), else the team's; members
/// take the team's, subject to enforcement and their own opt-in.
pub fn effective_aws(
    settings: &LlmSettings,
    actor: ActorType,
    agent_override: Option<&AwsOverride>,
    member_opt_in: bool,
) -> Result<BedrockTarget, NoBedrock> {
    let host = &settings.hosts.aws_bedrock;
    if !host.enabled {
        return Err(NoBedrock::TeamDisabled);
    }
    let (role, region) = match actor {
        ActorType::ServiceAccount => {
            let o = agent_override.cloned().unwrap_or_default();
            if o.disabled {
                return Err(NoBedrock::AgentDisabled);
            }
            (
                o.role_arn.or_else(|| host.role_arn.clone()),
                o.region.or_else(|| host.region.clone()),
            )
        }
        ActorType::User => {
            if host.enforcement == Enforcement::RespectUserSetting && !member_opt_in {
                return Err(NoBedrock::MemberNotOptedIn);
            }
            (host.role_arn.clone(), host.region.clone())
        }
    };
    Ok(BedrockTarget {
        role_arn: role.ok_or(NoBedrock::NoRole)?,
        region: region.ok_or(NoBedrock::NoRegion)?,
    })
}

#[cfg(test)]
mod tests {
    use byollm_api::types::ModelHosts;

    use super::*;

    fn enabled() -> LlmSettings {
        let mut s = LlmSettings::default();
        s.hosts.aws_bedrock.enabled = true;
        s.hosts.aws_bedrock.role_arn = Some("arn:aws:iam::123456789012:role/team".into());
        s.hosts.aws_bedrock.region = Some("us-east-1".into());
        s
    }

    #[test]
    fn defaults_validate_and_enabled_needs_role_and_region() {
        assert!(validate_llm_settings(&LlmSettings::default()).is_ok());
        let mut s = enabled();
        assert!(validate_llm_settings(&s).is_ok());
        s.hosts.aws_bedrock.region = None;
        assert_eq!(
            validate_llm_settings(&s).unwrap_err().field,
            "hosts.aws_bedrock.region"
        );
        let mut s = enabled();
        s.models.insert("nope".into(), ModelHosts::default());
        assert_eq!(validate_llm_settings(&s).unwrap_err().field, "models.nope");
        let mut s = enabled();
        s.subject_template = vec!["run_id".into()];
        assert_eq!(
            validate_llm_settings(&s).unwrap_err().field,
            "subject_template"
        );
        let mut s = enabled();
        s.token_audiences = vec!["a".into(), "a".into()];
        assert_eq!(
            validate_llm_settings(&s).unwrap_err().field,
            "token_audiences[1]"
        );
    }

    #[test]
    fn put_needs_every_required_field() {
        let full = serde_json::to_value(LlmSettings::default()).unwrap();
        assert!(require_complete(&full).is_ok());
        for body in [
            serde_json::json!({}),
            serde_json::json!([]),
            serde_json::Value::Null,
        ] {
            assert!(require_complete(&body).is_err(), "{body}");
        }
        for path in REQUIRED.iter().chain(REQUIRED_TOO.iter()) {
            let mut doc = full.clone();
            let (parent, leaf) = path.rsplit_once('.').unwrap_or(("", path));
            let target = if parent.is_empty() {
                &mut doc
            } else {
                parent
                    .split('.')
                    .fold(&mut doc, |v, k| v.get_mut(k).unwrap())
            };
            target.as_object_mut().unwrap().remove(leaf);
            assert_eq!(require_complete(&doc).unwrap_err().field, *path);
        }
        let mut doc = full.clone();
        doc["models"] =
            serde_json::json!({"claude-sonnet-4-6": {"aws_bedrock": {"enabled": true}}});
        assert_eq!(
            require_complete(&doc).unwrap_err().field,
            "models.claude-sonnet-4-6.direct_api"
        );
        // Optional fields may be left out.
        let mut doc = full;
        doc["hosts"]["aws_bedrock"]
            .as_object_mut()
            .unwrap()
            .remove("role_arn");
        assert!(require_complete(&doc).is_ok());
    }

    #[test]
    fn a_new_team_never_falls_back_outside_its_cloud() {
        let s = LlmSettings::default();
        assert!(!s.allow_fallback_outside_cloud);
        assert!(!s.hosts.aws_bedrock.enabled);
    }

    #[test]
    fn effective_config_follows_override_then_team() {
        let s = enabled();
        let team = effective_aws(&s, ActorType::ServiceAccount, None, false).unwrap();
        assert_eq!(team.region, "us-east-1");
        let o = AwsOverride {
            role_arn: Some("arn:aws:iam::123456789012:role/agent".into()),
            region: None,
            disabled: false,
        };
        let agent = effective_aws(&s, ActorType::ServiceAccount, Some(&o), false).unwrap();
        assert_eq!(agent.role_arn, "arn:aws:iam::123456789012:role/agent");
        assert_eq!(agent.region, "us-east-1");
        let off = AwsOverride {
            disabled: true,
            ..o
        };
        assert_eq!(
            effective_aws(&s, ActorType::ServiceAccount, Some(&off), false),
            Err(NoBedrock::AgentDisabled)
        );
        // Members ignore agent overrides and follow enforcement.
        assert!(effective_aws(&s, ActorType::User, None, false).is_ok());
        let mut r = s.clone();
        r.hosts.aws_bedrock.enforcement = Enforcement::RespectUserSetting;
        assert_eq!(
            effective_aws(&r, ActorType::User, None, false),
            Err(NoBedrock::MemberNotOptedIn)
        );
        assert!(effective_aws(&r, ActorType::User, None, true).is_ok());
        assert_eq!(
            effective_aws(&LlmSettings::default(), ActorType::User, None, true),
            Err(NoBedrock::TeamDisabled)
        );
    }
}
