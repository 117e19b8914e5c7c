//! Resolves `--model` values through the model catalog (`byollm_api::catalog`)
//! into the inference profiles the permissions policy grants.
//!
//! Forms: a catalog id (`claude-sonnet-4-6`: every profile the server routes it
//! through from the source region — the global profile where it exists and the
//! geographic profile the gateway falls back to when the global one is
//! refused, else the geographic one), `ID=GEO` or
//! `ID=PROFILE-ID` (the team's `model_ref` override, e.g. `us.` instead of
//! `global.`), or a profile id on its own (`us.anthropic.claude-sonnet-4-6`).

use anyhow::{Context as _, anyhow, bail};
use byollm_api::catalog::{
    BedrockModel, BedrockProfile, Catalog, CatalogModel, destination_regions,
};
use byollm_policy::generate::ModelProfile;

/// Resolves every `--model` value for `source_region`.
pub(super) fn resolve_models(
    values: &[String],
    source_region: &str,
) -> anyhow::Result<Vec<ModelProfile>> {
    let catalog = Catalog::builtin();
    let mut out: Vec<ModelProfile> = Vec::new();
    for value in values {
        let value = value.trim();
        if value.is_empty() {
            continue;
        }
        let resolved = resolve_one(catalog, value, source_region)
            .with_context(|| format!("--model {value}"))?;
        for r in resolved {
            if !out.iter().any(|m| m.profile_id == r.profile_id) {
                out.push(r);
            }
        }
    }
    if out.is_empty() {
        bail!("no model given");
    }
    Ok(out)
}

fn resolve_one(
    catalog: &Catalog,
    value: &str,
    source_region: &str,
) -> anyhow::Result<Vec<ModelProfile>> {
    let (id, choice) = match value.split_once('=') {
        Some((id, choice)) => (id, Some(choice)),
        None => (value, None),
    };
    if let Some(model) = catalog.get(id) {
        let bedrock = bedrock_of(model)?;
        let profile = match choice {
            None => {
                let routed = model_profiles(model, bedrock, source_region);
                if routed.is_empty() {
                    bail!(
                        "{} has no global profile and no geographic profile usable from {source_region} (it has: {})",
                        model.id,
                        bedrock.geos.join(", ")
                    );
                }
                return Ok(routed);
            }
            Some(choice) => bedrock
                .profiles()
                .into_iter()
                .find(|p| p.geo == choice || p.id == choice)
                .ok_or_else(|| {
                    anyhow!(
                        "{} has no inference profile `{choice}` (it has: {})",
                        model.id,
                        bedrock.geos.join(", ")
                    )
                })?,
        };
        return Ok(vec![to_profile(model, bedrock, &profile)]);
    }
    if choice.is_none() {
        for model in &catalog.models {
            let Some(bedrock) = &model.bedrock else {
                continue;
            };
            if let Some(profile) = bedrock.profiles().into_iter().find(|p| p.id == value) {
                return Ok(vec![to_profile(model, bedrock, &profile)]);
            }
        }
    }
    let known: Vec<&str> = catalog
        .models
        .iter()
        .filter(|m| m.bedrock.is_some())
        .map(|m| m.id.as_str())
        .collect();
    bail!(
        "unknown model (Bedrock models in the catalog: {})",
        known.join(", ")
    )
}

fn bedrock_of(model: &CatalogModel) -> anyhow::Result<&BedrockModel> {
    model
        .bedrock
        .as_ref()
        .ok_or_else(|| anyhow!("{} is not served by Amazon Bedrock", model.id))
}

/// Every profile the gateway routes `model` through from `source_region`.
fn model_profiles(
    model: &CatalogModel,
    bedrock: &BedrockModel,
    source_region: &str,
) -> Vec<ModelProfile> {
    bedrock
        .routed_profiles(source_region)
        .iter()
        .map(|p| to_profile(model, bedrock, p))
        .collect()
}

fn to_profile(
    model: &CatalogModel,
    bedrock: &BedrockModel,
    profile: &BedrockProfile,
) -> ModelProfile {
    ModelProfile {
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

    #[test]
    fn resolves_catalog_ids_overrides_and_profile_ids() {
        // A catalog id: the global profile and its geographic fallback.
        let m = resolve_models(&["claude-sonnet-4-6".into()], "us-east-1").unwrap();
        assert_eq!(m[0].profile_id, "global.anthropic.claude-sonnet-4-6");
        assert_eq!(m[1].profile_id, "us.anthropic.claude-sonnet-4-6");
        assert_eq!(m.len(), 2);
        let m = resolve_models(&["claude-sonnet-4-6=us".into()], "us-east-1").unwrap();
        assert_eq!(m[0].profile_id, "us.anthropic.claude-sonnet-4-6");
        assert!(m[0].destination_regions.contains(&"us-east-1".to_owned()));
        let m = resolve_models(&["eu.anthropic.claude-sonnet-4-6".into()], "eu-west-1").unwrap();
        assert_eq!(m[0].base_model_id, "anthropic.claude-sonnet-4-6");
        assert!(resolve_models(&["gpt-nothing".into()], "us-east-1").is_err());
        assert!(resolve_models(&["claude-sonnet-4-6=mars".into()], "us-east-1").is_err());
    }
}
