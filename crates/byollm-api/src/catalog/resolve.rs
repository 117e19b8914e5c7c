//! Resolves model choices (`byollm aws setup-script --model …`, the
//! console's AWS setup checkboxes) through the catalog into the inference
//! profiles a least-privilege permissions policy grants.
//!
//! Forms: a catalog id (`claude-sonnet-4-6`: every profile the server routes it
//! through from the source region — the global profile where it exists and the
//! geographic profile the gateway falls back to when the global one is
//! refused, else the geographic one), `ID=GEO` or
//! `ID=PROFILE-ID` (the team's `model_ref` override, e.g. `us.` instead of
//! `global.`), or a profile id on its own (`us.anthropic.claude-sonnet-4-6`).
//!
//! Invariant: the result names each profile once, in the order of the
//! choices; an empty choice list is an error, never "every model".

use super::{BedrockModel, BedrockProfile, Catalog, CatalogModel, destination_regions};

/// One inference profile to grant, and the model it serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutedProfile {
    /// The public model id, e.g. `claude-sonnet-4-6`.
    pub model_id: String,
    /// The Bedrock foundation-model id, e.g. `anthropic.claude-sonnet-4-6`.
    pub base_model_id: String,
    /// The system inference profile id, `<geo>.<base_model_id>`.
    pub profile_id: String,
    /// Where the profile routes (empty for `global.`, which routes anywhere).
    pub destination_regions: Vec<String>,
}

/// Why a model choice names no profile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    /// The choice list was empty (or only blanks).
    #[error("no model given")]
    NoModel,
    /// One choice resolves to nothing.
    #[error("{value}: {message}")]
    Model {
        /// The choice as given.
        value: String,
        /// Why, e.g. `unknown model (Bedrock models in the catalog: …)`.
        message: String,
    },
}

impl Catalog {
    /// Every profile `values` name, for `source_region` (module docs).
    pub fn resolve_models<S: AsRef<str>>(
        &self,
        values: &[S],
        source_region: &str,
    ) -> Result<Vec<RoutedProfile>, ResolveError> {
        let mut out: Vec<RoutedProfile> = Vec::new();
        for value in values {
            let value = value.as_ref().trim();
            if value.is_empty() {
                continue;
            }
            let resolved =
                self.resolve_one(value, source_region)
                    .map_err(|message| ResolveError::Model {
                        value: value.to_owned(),
                        message,
                    })?;
            for r in resolved {
                if !out.iter().any(|m| m.profile_id == r.profile_id) {
                    out.push(r);
                }
            }
        }
        if out.is_empty() {
            return Err(ResolveError::NoModel);
        }
        Ok(out)
    }

    fn resolve_one(&self, value: &str, source_region: &str) -> Result<Vec<RoutedProfile>, String> {
        let (id, choice) = match value.split_once('=') {
            Some((id, choice)) => (id, Some(choice)),
            None => (value, None),
        };
        if let Some(model) = self.get(id) {
            let bedrock = model
                .bedrock
                .as_ref()
                .ok_or_else(|| format!("{} is not served by Amazon Bedrock", model.id))?;
            let profile = match choice {
                None => {
                    let routed: Vec<RoutedProfile> = bedrock
                        .routed_profiles(source_region)
                        .iter()
                        .map(|p| routed(model, bedrock, p))
                        .collect();
                    if routed.is_empty() {
                        return Err(format!(
                            "{} has no global profile and no geographic profile usable from {source_region} (it has: {})",
                            model.id,
                            bedrock.geos.join(", ")
                        ));
                    }
                    return Ok(routed);
                }
                Some(choice) => bedrock
                    .profiles()
                    .into_iter()
                    .find(|p| p.geo == choice || p.id == choice)
                    .ok_or_else(|| {
                        format!(
                            "{} has no inference profile `{choice}` (it has: {})",
                            model.id,
                            bedrock.geos.join(", ")
                        )
                    })?,
            };
            return Ok(vec![routed(model, bedrock, &profile)]);
        }
        if choice.is_none() {
            for model in &self.models {
                let Some(bedrock) = &model.bedrock else {
                    continue;
                };
                if let Some(profile) = bedrock.profiles().into_iter().find(|p| p.id == value) {
                    return Ok(vec![routed(model, bedrock, &profile)]);
                }
            }
        }
        let known: Vec<&str> = self
            .models
            .iter()
            .filter(|m| m.bedrock.is_some())
            .map(|m| m.id.as_str())
            .collect();
        Err(format!(
            "unknown model (Bedrock models in the catalog: {})",
            known.join(", ")
        ))
    }
}

fn routed(model: &CatalogModel, bedrock: &BedrockModel, profile: &BedrockProfile) -> RoutedProfile {
    RoutedProfile {
        model_id: model.id.clone(),
        base_model_id: bedrock.base_model_id.clone(),
        profile_id: profile.id.clone(),
        destination_regions: destination_regions(&profile.geo)
            .iter()
            .map(|r| (*r).to_owned())
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(values: &[&str], region: &str) -> Result<Vec<RoutedProfile>, ResolveError> {
        Catalog::builtin().resolve_models(values, region)
    }

    #[test]
    fn resolves_catalog_ids_overrides_and_profile_ids() {
        // A catalog id: the global profile and its geographic fallback.
        let m = resolve(&["claude-sonnet-4-6"], "us-east-1").unwrap();
        assert_eq!(m[0].profile_id, "global.anthropic.claude-sonnet-4-6");
        assert_eq!(m[1].profile_id, "us.anthropic.claude-sonnet-4-6");
        assert_eq!(m.len(), 2);
        let m = resolve(&["claude-sonnet-4-6=us"], "us-east-1").unwrap();
        assert_eq!(m[0].profile_id, "us.anthropic.claude-sonnet-4-6");
        assert!(m[0].destination_regions.contains(&"us-east-1".to_owned()));
        let m = resolve(&["eu.anthropic.claude-sonnet-4-6"], "eu-west-1").unwrap();
        assert_eq!(m[0].base_model_id, "anthropic.claude-sonnet-4-6");
        assert!(resolve(&["gpt-nothing"], "us-east-1").is_err());
        assert!(resolve(&["claude-sonnet-4-6=mars"], "us-east-1").is_err());
        assert_eq!(resolve(&[" "], "us-east-1"), Err(ResolveError::NoModel));
    }
}
