//! Which model a Bedrock `modelId` names, whether the source region offers it,
//! and what IAM must allow for it (aws-facts §6).
//!
//! - A bare foundation-model id (or its ARN in the source region) exists where
//!   one of its geographies routes (every served region for a model with a
//!   `global` profile). Claude 4 and later cannot be invoked on demand: they need
//!   an inference profile (`ValidationException … on-demand throughput isn't
//!   supported`); Claude 3.x can.
//! - A system profile `<geo>.<base>` (or its ARN in the source region) exists
//!   when the model has that geography and the source region belongs to it
//!   (`global` from anywhere).
//! - Authorization (the caller's identity policies): a foundation model directly
//!   needs its ARN in the source region; a geographic profile needs the profile
//!   ARN plus the foundation-model ARN in *every* destination region (with
//!   `bedrock:InferenceProfileArn` and `aws:RequestedRegion` = that region); a
//!   global profile needs the profile ARN, the foundation-model ARN in the source
//!   region and the region-less ARN with `aws:RequestedRegion` = `unspecified`.
//! - Each model's output limit ([`max_output_tokens`]): a request asking for
//!   more is refused, and Converse without `maxTokens` gets the limit.

use byollm_api::catalog::{
    BedrockModel, Catalog, CatalogModel, destination_regions, geos_for_region,
};

use crate::error::AwsError;

/// Geography prefixes of system inference profiles.
const GEOS: [&str; 7] = ["global", "us", "eu", "jp", "apac", "us-gov", "au"];

/// A resolved model id.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The catalog entry.
    pub model: &'static CatalogModel,
    /// Its Bedrock facts.
    pub bedrock: &'static BedrockModel,
    /// The profile ARN when invoked through a profile.
    pub profile_arn: Option<String>,
    /// The profile's geography.
    pub geo: Option<String>,
    /// The name Bedrock reports as the model (the Anthropic-style id).
    pub model_name: String,
}

/// One authorization check: a resource and the extra context keys.
#[derive(Debug, Clone)]
pub struct Check {
    /// The resource ARN.
    pub resource: String,
    /// `aws:RequestedRegion`.
    pub requested_region: String,
}

pub fn invalid_id() -> AwsError {
    AwsError::new(
        400,
        "ValidationException",
        "The provided model identifier is invalid.",
    )
}

fn by_base(base: &str) -> Option<(&'static CatalogModel, &'static BedrockModel)> {
    Catalog::builtin().models.iter().find_map(|m| {
        m.bedrock
            .as_ref()
            .filter(|b| b.base_model_id == base)
            .map(|b| (m, b))
    })
}

/// Whether the foundation model is offered in `region`.
pub fn offered_in(b: &BedrockModel, region: &str) -> bool {
    b.geos
        .iter()
        .any(|g| g == "global" || destination_regions(g).contains(&region))
}

/// The most output tokens a model produces, by base model id (Anthropic's model
/// pages, platform.claude.com/docs/en/models/<model>/overview, "Max output";
/// Claude Opus 4.5 confirmed by the API's own refusal "max_tokens: 128001 >
/// 64000, which is the maximum allowed number of output tokens for
/// claude-opus-4-5-20251101", anthropics/claude-code#24451). Sonnet 3.7's
/// 128K needs a beta header; without it the limit is 64K. Kept here, not in the
/// catalog: only the emulated Bedrock enforces it, and a unit test holds every
/// catalog Bedrock model to having an entry.
const MAX_OUTPUT_TOKENS: [(&str, u64); 7] = [
    ("anthropic.claude-opus-4-6-v1", 128_000),
    ("anthropic.claude-sonnet-4-6", 128_000),
    ("anthropic.claude-opus-4-5-20251101-v1:0", 64_000),
    ("anthropic.claude-sonnet-4-5-20250929-v1:0", 64_000),
    ("anthropic.claude-haiku-4-5-20251001-v1:0", 64_000),
    ("anthropic.claude-sonnet-4-20250514-v1:0", 64_000),
    ("anthropic.claude-3-7-sonnet-20250219-v1:0", 64_000),
];

/// A model with no entry in the table gets the smallest limit Bedrock has
/// refused Claude requests with (4096, vercel/ai#2772).
const FALLBACK_MAX_OUTPUT_TOKENS: u64 = 4096;

/// The model's output-token limit: the most `max_tokens` / `maxTokens` Bedrock
/// accepts, and what Converse uses when `maxTokens` is absent (the service
/// model: "The default value is the maximum allowed value for the model").
pub fn max_output_tokens(b: &BedrockModel) -> u64 {
    MAX_OUTPUT_TOKENS
        .iter()
        .find(|(id, _)| *id == b.base_model_id)
        .map_or(FALLBACK_MAX_OUTPUT_TOKENS, |(_, n)| *n)
}

/// Bedrock's refusal of a `max_tokens` above the model's limit, the same for
/// Converse, ConverseStream and Anthropic bodies on InvokeModel [obs]:
/// vercel/ai#2772 and BerriAI/litellm#5656 ("The maximum tokens you requested
/// exceeds the model limit of 4096. Try again with a maximum tokens value that
/// is lower than 4096."), charmbracelet/crush#946 (Bedrock's Messages API).
pub fn max_tokens_exceeded(limit: u64) -> AwsError {
    AwsError::new(
        400,
        "ValidationException",
        format!(
            "The maximum tokens you requested exceeds the model limit of {limit}. Try again with a maximum tokens value that is lower than {limit}."
        ),
    )
}

/// Whether the model can be invoked without a profile.
pub fn on_demand(b: &BedrockModel) -> bool {
    b.base_model_id.contains("claude-3")
}

/// Resolves `model_id` (percent-decoded) for a request from `region` of `account`.
pub fn resolve(model_id: &str, region: &str, account: &str) -> Result<Resolved, AwsError> {
    let (kind, id) = if let Some(rest) = model_id.strip_prefix("arn:") {
        let parts: Vec<&str> = rest.splitn(5, ':').collect();
        let [partition, service, arn_region, arn_account, resource] = parts.as_slice() else {
            return Err(invalid_id());
        };
        if *partition != "aws" || *service != "bedrock" || *arn_region != region {
            return Err(invalid_id());
        }
        if let Some(id) = resource.strip_prefix("foundation-model/") {
            if !arn_account.is_empty() {
                return Err(invalid_id());
            }
            ("fm", id)
        } else if let Some(id) = resource.strip_prefix("inference-profile/") {
            if *arn_account != account {
                return Err(invalid_id());
            }
            ("profile", id)
        } else {
            return Err(invalid_id());
        }
    } else {
        let is_profile = model_id
            .split_once('.')
            .is_some_and(|(g, rest)| GEOS.contains(&g) && rest.contains('.'));
        (if is_profile { "profile" } else { "fm" }, model_id)
    };
    if kind == "fm" {
        let (model, bedrock) = by_base(id).ok_or_else(invalid_id)?;
        if !offered_in(bedrock, region) {
            return Err(invalid_id());
        }
        return Ok(Resolved {
            model,
            bedrock,
            profile_arn: None,
            geo: None,
            model_name: model_name(model),
        });
    }
    let (geo, base) = id.split_once('.').ok_or_else(invalid_id)?;
    let (model, bedrock) = by_base(base).ok_or_else(invalid_id)?;
    let has_geo = bedrock.geos.iter().any(|g| g == geo);
    let reachable = geo == "global" || geos_for_region(region).contains(&geo);
    if !has_geo || !reachable {
        return Err(invalid_id());
    }
    Ok(Resolved {
        model,
        bedrock,
        profile_arn: Some(format!(
            "arn:aws:bedrock:{region}:{account}:inference-profile/{id}"
        )),
        geo: Some(geo.to_owned()),
        model_name: model_name(model),
    })
}

fn model_name(m: &CatalogModel) -> String {
    m.direct_api_id.clone().unwrap_or_else(|| m.id.clone())
}

impl Resolved {
    /// What IAM must allow, in the order Bedrock checks it.
    pub fn checks(&self, region: &str) -> Vec<Check> {
        let base = &self.bedrock.base_model_id;
        let fm = |r: &str| Check {
            resource: format!("arn:aws:bedrock:{r}::foundation-model/{base}"),
            requested_region: r.to_owned(),
        };
        let Some(profile) = &self.profile_arn else {
            return vec![fm(region)];
        };
        let mut checks = vec![Check {
            resource: profile.clone(),
            requested_region: region.to_owned(),
        }];
        match self.geo.as_deref() {
            Some("global") => {
                checks.push(fm(region));
                checks.push(Check {
                    resource: format!("arn:aws:bedrock:::foundation-model/{base}"),
                    requested_region: "unspecified".to_owned(),
                });
            }
            Some(geo) => checks.extend(destination_regions(geo).iter().map(|r| fm(r))),
            None => {}
        }
        checks
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_catalog_bedrock_model_has_an_output_limit() {
        for m in &Catalog::builtin().models {
            if let Some(b) = &m.bedrock {
                assert!(
                    MAX_OUTPUT_TOKENS
                        .iter()
                        .any(|(id, _)| *id == b.base_model_id),
                    "{} has no output-token limit",
                    b.base_model_id
                );
            }
        }
    }

    #[test]
    fn resolution() {
        let acct = "123456789012";
        let r = resolve("global.anthropic.claude-sonnet-4-6", "us-west-2", acct).unwrap();
        assert_eq!(r.checks("us-west-2").len(), 3);
        let r = resolve(
            "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
            "us-east-1",
            acct,
        )
        .unwrap();
        assert_eq!(r.checks("us-east-1").len(), 4);
        assert!(resolve("us.anthropic.claude-sonnet-4-6", "eu-west-1", acct).is_err());
        assert!(resolve("apac.anthropic.claude-sonnet-4-6", "ap-northeast-1", acct).is_err());
        assert!(resolve("jp.anthropic.claude-sonnet-4-6", "ap-northeast-1", acct).is_ok());
        let fm = resolve("anthropic.claude-sonnet-4-6", "us-east-1", acct).unwrap();
        assert!(!on_demand(fm.bedrock));
        let old = resolve(
            "anthropic.claude-3-7-sonnet-20250219-v1:0",
            "eu-west-1",
            acct,
        )
        .unwrap();
        assert!(on_demand(old.bedrock));
        assert!(resolve(
            "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-sonnet-4-6",
            "us-east-1",
            acct
        )
        .is_ok());
        assert!(resolve(
            "arn:aws:bedrock:us-east-2:123456789012:inference-profile/us.anthropic.claude-sonnet-4-6",
            "us-east-1",
            acct
        )
        .is_err());
        assert!(resolve("anthropic.nope-v1:0", "us-east-1", acct).is_err());
    }
}
