//! The role's permissions policy for Bedrock inference (DESIGN §7, aws-facts §6.2).
//!
//! Least privilege, from the models the team enabled, each through one system
//! inference profile invoked from the source region:
//! - a geographic profile (`us.`, `eu.`, `jp.`, `apac.`): the profile ARN in the
//!   source region, and the foundation-model ARN in **every destination region**
//!   (Bedrock checks the destination's model ARN), conditioned on
//!   `bedrock:InferenceProfileArn` so the models are reachable only through the
//!   profiles;
//! - a `global.` profile, as AWS documents it (BR-GLOBAL): the profile ARN with
//!   `aws:RequestedRegion` = source, the source region's foundation-model ARN with
//!   `aws:RequestedRegion` = source, and the **region-less** foundation-model ARN
//!   with `aws:RequestedRegion` = `"unspecified"`, both foundation-model grants
//!   conditioned on the profile ARN.
//!
//! A model routed through a global profile also gets the geographic profile of
//! the source region (statements `…WhenGlobalIsRefused`): the gateway tries it
//! when the global one is refused (a region-deny SCP, say), and without the
//! grant the role itself would refuse that retry.
//!
//! Statements are merged across models (one per kind of grant) to stay well under
//! IAM's 10,240-character limit for a role's inline policies; the profile
//! condition lists every enabled profile, which admits no other model because a
//! profile routes to its own model only.
//!
//! `--broad` gives the documented reference policy of BR-IPPRE instead, with the
//! profile ARNs narrowed to the customer's account.
//!
//! An emulator evaluating these policies must supply the request context keys
//! they test, as Bedrock does: `aws:RequestedRegion` (the region of the call, or
//! `unspecified` for the region-less check of a global profile) and
//! `bedrock:InferenceProfileArn` (the profile ARN, on the foundation-model checks
//! made through a profile).

use super::{AccountId, GenerateError, INVOKE_ACTIONS, Region};
use crate::conditions::{BaseOperator, ConditionOperator};
use crate::model::{
    ActionElement, ActionPattern, Condition, Effect, Policy, PolicyVersion, ResourceElement,
    Statement,
};
use crate::pattern::Template;

/// IAM's limit on a role's inline policies, in characters excluding whitespace.
pub const INLINE_POLICY_LIMIT: usize = 10_240;

/// One enabled model and the profile it is invoked through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelProfile {
    /// The public model id (for notes), e.g. `claude-sonnet-4-6`.
    pub model_id: String,
    /// The Bedrock foundation-model id, e.g. `anthropic.claude-sonnet-4-6`.
    pub base_model_id: String,
    /// The system inference profile id, `<geo>.<base_model_id>`.
    pub profile_id: String,
    /// Where a geographic profile routes (ignored for `global.`).
    pub destination_regions: Vec<String>,
}

impl ModelProfile {
    /// Whether this is a `global.` profile.
    pub fn is_global(&self) -> bool {
        self.profile_id.starts_with("global.")
    }

    fn validate(&self, source: &Region) -> Result<(), GenerateError> {
        let bad = |why| GenerateError::Model(self.profile_id.clone(), why);
        let id_ok = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._:-".contains(c))
        };
        if !id_ok(&self.base_model_id) || !id_ok(&self.profile_id) {
            return Err(bad("unexpected characters in the model or profile id"));
        }
        let Some((geo, rest)) = self.profile_id.split_once('.') else {
            return Err(bad("expected <geo>.<base-model-id>"));
        };
        if rest != self.base_model_id || geo.is_empty() {
            return Err(bad("the profile id must be <geo>.<base-model-id>"));
        }
        if !self.is_global() {
            if self.destination_regions.is_empty() {
                return Err(bad(
                    "no destination regions known for this geographic profile",
                ));
            }
            for r in &self.destination_regions {
                Region::parse(r)?;
            }
            if !self
                .destination_regions
                .iter()
                .any(|r| r == source.as_str())
            {
                return Err(bad(
                    "this geographic profile cannot be invoked from the given --region",
                ));
            }
        }
        Ok(())
    }
}

/// What to grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grant {
    /// The documented broad default: every model and profile.
    Broad,
    /// Least privilege for these models.
    Models(Vec<ModelProfile>),
}

/// What a permissions policy is generated from.
#[derive(Debug, Clone)]
pub struct PermissionsOptions {
    /// The customer's account.
    pub account: AccountId,
    /// The source region the team calls Bedrock in.
    pub region: Region,
    /// What to grant.
    pub grant: Grant,
}

fn statement(
    sid: &str,
    actions: &[&str],
    resources: Vec<String>,
    conditions: Vec<Condition>,
) -> Statement {
    Statement {
        sid: Some(sid.to_owned()),
        effect: Effect::Allow,
        principal: None,
        action: ActionElement::Action(actions.iter().map(|a| ActionPattern::new(a)).collect()),
        resource: Some(ResourceElement::Resource(
            resources.iter().map(|r| Template::parse(r)).collect(),
        )),
        conditions,
    }
}

fn string_equals(key: &str, values: Vec<String>) -> Condition {
    Condition::strings(
        ConditionOperator::plain(BaseOperator::StringEquals),
        key,
        values,
    )
}

fn push_unique(list: &mut Vec<String>, item: String) {
    if !list.contains(&item) {
        list.push(item);
    }
}

/// The ARN of a system inference profile in `region`.
pub fn profile_arn(region: &str, account: &AccountId, profile_id: &str) -> String {
    format!(
        "arn:aws:bedrock:{region}:{}:inference-profile/{profile_id}",
        account.as_str()
    )
}

/// The ARN of a foundation model in `region` (empty for the region-less ARN).
pub fn foundation_model_arn(region: &str, model_id: &str) -> String {
    format!("arn:aws:bedrock:{region}::foundation-model/{model_id}")
}

/// Generates the permissions policy.
pub fn permissions_policy(opts: &PermissionsOptions) -> Result<Policy, GenerateError> {
    let statements = match &opts.grant {
        Grant::Broad => broad(&opts.account),
        Grant::Models(models) => least_privilege(opts, models)?,
    };
    Ok(Policy {
        version: Some(PolicyVersion::V2012_10_17),
        id: None,
        statements,
    })
}

fn broad(account: &AccountId) -> Vec<Statement> {
    let acct = account.as_str();
    vec![
        statement(
            "BedrockInvoke",
            &INVOKE_ACTIONS,
            vec![
                "arn:aws:bedrock:*::foundation-model/*".to_owned(),
                format!("arn:aws:bedrock:*:{acct}:inference-profile/*"),
                format!("arn:aws:bedrock:*:{acct}:application-inference-profile/*"),
            ],
            Vec::new(),
        ),
        statement(
            "BedrockReadInferenceProfiles",
            &[
                "bedrock:GetInferenceProfile",
                "bedrock:ListInferenceProfiles",
            ],
            vec![
                format!("arn:aws:bedrock:*:{acct}:inference-profile/*"),
                format!("arn:aws:bedrock:*:{acct}:application-inference-profile/*"),
            ],
            Vec::new(),
        ),
    ]
}

fn least_privilege(
    opts: &PermissionsOptions,
    models: &[ModelProfile],
) -> Result<Vec<Statement>, GenerateError> {
    if models.is_empty() {
        return Err(GenerateError::Model(
            String::new(),
            "no models given: name at least one, or ask for the broad policy",
        ));
    }
    let src = opts.region.as_str();
    // A geographic profile of a model that also has its global profile here is
    // the gateway's fallback for when the global one is refused: its own
    // statements, whose Sid says so.
    let has_global = |base: &str| {
        models
            .iter()
            .any(|m| m.is_global() && m.base_model_id == base)
    };
    let mut geo_profiles = Vec::new();
    let mut geo_models = Vec::new();
    let mut fallback_profiles = Vec::new();
    let mut fallback_models = Vec::new();
    let mut global_profiles = Vec::new();
    let mut global_source_models = Vec::new();
    let mut global_models = Vec::new();
    for m in models {
        m.validate(&opts.region)?;
        let profile = profile_arn(src, &opts.account, &m.profile_id);
        if m.is_global() {
            push_unique(&mut global_profiles, profile);
            push_unique(
                &mut global_source_models,
                foundation_model_arn(src, &m.base_model_id),
            );
            push_unique(
                &mut global_models,
                foundation_model_arn("", &m.base_model_id),
            );
        } else {
            let (profiles, models) = if has_global(&m.base_model_id) {
                (&mut fallback_profiles, &mut fallback_models)
            } else {
                (&mut geo_profiles, &mut geo_models)
            };
            push_unique(profiles, profile);
            for dest in &m.destination_regions {
                push_unique(models, foundation_model_arn(dest, &m.base_model_id));
            }
        }
    }
    let mut out = Vec::new();
    if !geo_profiles.is_empty() {
        out.push(statement(
            "BedrockInvokeGeoProfiles",
            &INVOKE_ACTIONS,
            geo_profiles.clone(),
            Vec::new(),
        ));
        out.push(statement(
            "BedrockInvokeGeoProfileModels",
            &INVOKE_ACTIONS,
            geo_models,
            vec![string_equals("bedrock:InferenceProfileArn", geo_profiles)],
        ));
    }
    if !fallback_profiles.is_empty() {
        out.push(statement(
            "BedrockInvokeGeoProfilesWhenGlobalIsRefused",
            &INVOKE_ACTIONS,
            fallback_profiles.clone(),
            Vec::new(),
        ));
        out.push(statement(
            "BedrockInvokeGeoProfileModelsWhenGlobalIsRefused",
            &INVOKE_ACTIONS,
            fallback_models,
            vec![string_equals(
                "bedrock:InferenceProfileArn",
                fallback_profiles,
            )],
        ));
    }
    if !global_profiles.is_empty() {
        out.push(statement(
            "BedrockInvokeGlobalProfiles",
            &INVOKE_ACTIONS,
            global_profiles.clone(),
            vec![string_equals("aws:RequestedRegion", vec![src.to_owned()])],
        ));
        out.push(statement(
            "BedrockInvokeGlobalProfileModelsInSourceRegion",
            &INVOKE_ACTIONS,
            global_source_models,
            vec![
                string_equals("aws:RequestedRegion", vec![src.to_owned()]),
                string_equals("bedrock:InferenceProfileArn", global_profiles.clone()),
            ],
        ));
        out.push(statement(
            "BedrockInvokeGlobalProfileModels",
            &INVOKE_ACTIONS,
            global_models,
            vec![
                // AWS: global routing checks the region-less ARN with RequestedRegion
                // "unspecified", which region-name SCP denies do not match (BR-GLOBAL).
                string_equals("aws:RequestedRegion", vec!["unspecified".to_owned()]),
                string_equals("bedrock:InferenceProfileArn", global_profiles),
            ],
        ));
    }
    Ok(out)
}

/// The size IAM counts against its policy limits: characters excluding whitespace.
pub fn counted_size(document: &str) -> usize {
    document.chars().filter(|c| !c.is_whitespace()).count()
}
