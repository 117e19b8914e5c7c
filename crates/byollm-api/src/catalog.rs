//! The model catalog (DESIGN §4): every model byollm knows, with its direct-API id,
//! its Bedrock base model id and the inference profiles built from it
//! (`reference/aws-facts.md` §6.3), its Vertex AI publisher model and locations
//! (`reference/gcp-facts.md` §2), its Azure OpenAI model and version
//! (`reference/azure-facts.md` §4), its credit price and its rank for `auto`.
//! Gemini models have no direct-API and no Bedrock route: Vertex AI is their
//! only host.
//!
//! The data lives in `catalog.json` beside this crate's manifest and is compiled in,
//! so the server, the policy generator and the emulator all read the same file.
//! Model choices resolve into the inference profiles a permissions policy
//! grants in [`resolve`] ([`Catalog::resolve_models`]).

mod resolve;

use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

pub use resolve::{ResolveError, RoutedProfile};

/// The catalog file, compiled in.
const CATALOG_JSON: &str = include_str!("../catalog.json");

/// Every known model.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Catalog {
    /// The models, in file order.
    pub models: Vec<CatalogModel>,
}

/// Which vendor's API a model speaks natively.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Family {
    /// Anthropic Messages API.
    Anthropic,
    /// OpenAI Chat Completions API.
    Openai,
    /// Google's Gemini (`generateContent`), served only by Vertex AI: callers
    /// reach it through Chat Completions, translated.
    Google,
}

/// One model.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogModel {
    /// The public name callers use, e.g. `claude-sonnet-4-6`.
    pub id: String,
    /// A name for people.
    pub display_name: String,
    /// The vendor family.
    pub family: Family,
    /// The id the vendor's own API takes, when it has one.
    pub direct_api_id: Option<String>,
    /// How Bedrock serves it, when it does.
    pub bedrock: Option<BedrockModel>,
    /// How Google Vertex AI serves it, when it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vertex: Option<VertexModel>,
    /// How Azure OpenAI (in an Azure AI Foundry resource) serves it, when it
    /// does: what a deployment of it is made from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azure_openai: Option<AzureOpenAiModel>,
    /// Inference credits per million tokens (direct-API requests only).
    pub price: Price,
    /// Higher ranks are preferred by `auto` and tried first on fallback.
    pub rank: u32,
}

/// Credit prices.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    /// Credits per million input tokens.
    pub input_per_mtok: f64,
    /// Credits per million output tokens.
    pub output_per_mtok: f64,
}

/// A model's presence on Bedrock.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BedrockModel {
    /// The foundation model id, e.g. `anthropic.claude-sonnet-4-6`.
    pub base_model_id: String,
    /// The system inference-profile geographies it has (`global`, `us`, `eu`,
    /// `jp`, `apac`), from Anthropic's table (aws-facts §6.3).
    pub geos: Vec<String>,
}

/// A model's presence on Google Vertex AI (gcp-facts §2.1, §2.2): Claude under
/// `publishers/anthropic`, Gemini under `publishers/google`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VertexModel {
    /// The publisher model id in the URL (`…/publishers/anthropic/models/{id}:rawPredict`,
    /// `…/publishers/google/models/{id}:generateContent`), e.g.
    /// `claude-sonnet-4-5@20250929` (newer Claude models drop the `@date`) or
    /// `gemini-2.5-pro`.
    pub model_id: String,
    /// The locations that serve it: `global` (dynamic routing) and regions.
    pub locations: Vec<String>,
}

/// A model's presence on Azure OpenAI (azure-facts §4.1, §4.2): a
/// deployment is created from `model_name` at `model_version`
/// (`az cognitiveservices account deployment create --model-name
/// --model-version`), and callers then name the deployment, not the model.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AzureOpenAiModel {
    /// The model's name in Azure's model catalog, e.g. `gpt-4.1`.
    pub model_name: String,
    /// The version a new deployment pins, e.g. `2025-04-14`; Azure's answers
    /// name the model as `{model_name}-{model_version}`.
    pub model_version: String,
}

impl VertexModel {
    /// Whether `location` serves this model.
    pub fn serves(&self, location: &str) -> bool {
        self.locations.iter().any(|l| l == location)
    }
}

/// Every Vertex AI location some catalog model is served in.
pub fn vertex_locations(catalog: &Catalog) -> Vec<&str> {
    let mut out: Vec<&str> = catalog
        .models
        .iter()
        .filter_map(|m| m.vertex.as_ref())
        .flat_map(|v| v.locations.iter().map(String::as_str))
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// One system (cross-Region) inference profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BedrockProfile {
    /// The profile id, `<geo>.<base-model-id>`.
    pub id: String,
    /// Its geography.
    pub geo: String,
}

impl Catalog {
    /// The catalog compiled into this build.
    pub fn builtin() -> &'static Catalog {
        static CATALOG: OnceLock<Catalog> = OnceLock::new();
        CATALOG.get_or_init(|| {
            #[expect(
                clippy::expect_used,
                reason = "the compiled-in file is parsed by a unit test; a bad file cannot ship"
            )]
            Catalog::from_json(CATALOG_JSON).expect("catalog.json parses")
        })
    }

    /// Parses a catalog document.
    pub fn from_json(text: &str) -> Result<Catalog, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// The model with this public id.
    pub fn get(&self, model_id: &str) -> Option<&CatalogModel> {
        self.models.iter().find(|m| m.id == model_id)
    }

    /// Models ordered by rank, best first.
    pub fn by_rank(&self) -> Vec<&CatalogModel> {
        let mut models: Vec<&CatalogModel> = self.models.iter().collect();
        models.sort_by(|a, b| b.rank.cmp(&a.rank).then_with(|| a.id.cmp(&b.id)));
        models
    }
}

impl BedrockModel {
    /// Every system inference profile of this model.
    pub fn profiles(&self) -> Vec<BedrockProfile> {
        self.geos
            .iter()
            .map(|geo| BedrockProfile {
                id: format!("{geo}.{}", self.base_model_id),
                geo: geo.clone(),
            })
            .collect()
    }

    /// The profile byollm uses by default from `source_region`: the global profile
    /// where it exists, else the geographic profile of the region's geography.
    pub fn default_profile(&self, source_region: &str) -> Option<BedrockProfile> {
        if self.geos.iter().any(|g| g == "global") {
            return Some(self.profile("global"));
        }
        self.geographic_profile(source_region)
    }

    /// The geographic (non-global) profile for `source_region`, when the model
    /// has one there: the fallback when a global profile is refused.
    pub fn geographic_profile(&self, source_region: &str) -> Option<BedrockProfile> {
        geos_for_region(source_region)
            .iter()
            .find(|geo| self.geos.iter().any(|g| g == *geo))
            .map(|geo| self.profile(geo))
    }

    /// The profiles the gateway routes through from `source_region`, in the
    /// order it tries them: the default profile and, when that is the global
    /// one, the geographic profile tried when the global one is refused (a
    /// region-deny SCP, say). Permissions and the doctor cover all of them.
    pub fn routed_profiles(&self, source_region: &str) -> Vec<BedrockProfile> {
        let Some(first) = self.default_profile(source_region) else {
            return Vec::new();
        };
        let geo = (first.geo == "global")
            .then(|| self.geographic_profile(source_region))
            .flatten();
        std::iter::once(first).chain(geo).collect()
    }

    fn profile(&self, geo: &str) -> BedrockProfile {
        BedrockProfile {
            id: format!("{geo}.{}", self.base_model_id),
            geo: geo.to_owned(),
        }
    }
}

/// The geographic profile prefixes a source region may use, most specific first.
pub fn geos_for_region(region: &str) -> &'static [&'static str] {
    match region {
        "ap-northeast-1" | "ap-northeast-3" => &["jp", "apac"],
        r if r.starts_with("us-gov-") => &["us-gov"],
        r if r.starts_with("us-") || r.starts_with("ca-") => &["us"],
        r if r.starts_with("eu-") => &["eu"],
        r if r.starts_with("ap-") => &["apac"],
        _ => &[],
    }
}

/// The Regions a geographic profile routes to (its destination Regions), which a
/// permissions policy must allow for the foundation model. `global` routes to every
/// commercial Region and is granted through the region-less foundation-model ARN
/// instead (aws-facts §6.1, §6.2), so it has no list here.
///
/// These lists are byollm's reading of AWS's published tables; AWS may add Regions,
/// in which case the generated least-privilege policy is narrower than needed and
/// Bedrock names the missing destination ARN in its `AccessDeniedException`.
pub fn destination_regions(geo: &str) -> &'static [&'static str] {
    match geo {
        "us" => &["us-east-1", "us-east-2", "us-west-2"],
        "eu" => &["eu-central-1", "eu-west-1", "eu-west-3", "eu-north-1"],
        "jp" => &["ap-northeast-1", "ap-northeast-3"],
        "apac" => &[
            "ap-northeast-1",
            "ap-northeast-2",
            "ap-south-1",
            "ap-southeast-1",
            "ap-southeast-2",
        ],
        "us-gov" => &["us-gov-east-1", "us-gov-west-1"],
        _ => &[],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_catalog_parses_and_ids_are_unique() {
        let catalog = Catalog::from_json(CATALOG_JSON).unwrap();
        let mut ids: Vec<&str> = catalog.models.iter().map(|m| m.id.as_str()).collect();
        ids.sort_unstable();
        let before = ids.len();
        ids.dedup();
        assert_eq!(before, ids.len(), "duplicate model ids in catalog.json");
        assert!(catalog.get("claude-sonnet-4-6").is_some());
    }

    #[test]
    fn gemini_is_on_vertex_only() {
        let catalog = Catalog::builtin();
        for id in ["gemini-2.5-pro", "gemini-2.5-flash"] {
            let m = catalog.get(id).unwrap();
            assert_eq!(m.family, Family::Google);
            assert!(m.bedrock.is_none() && m.direct_api_id.is_none(), "{id}");
            let v = m.vertex.as_ref().unwrap();
            assert_eq!(v.model_id, id);
            assert!(v.serves("global") && v.serves("us-central1"), "{id}");
        }
        assert!(vertex_locations(catalog).contains(&"us-central1"));
    }

    #[test]
    fn default_profile_prefers_global_then_region_geo() {
        let catalog = Catalog::builtin();
        let sonnet = catalog
            .get("claude-sonnet-4-6")
            .unwrap()
            .bedrock
            .as_ref()
            .unwrap();
        assert_eq!(
            sonnet.default_profile("us-west-2").unwrap().id,
            "global.anthropic.claude-sonnet-4-6"
        );
        assert_eq!(
            sonnet.geographic_profile("eu-west-1").unwrap().id,
            "eu.anthropic.claude-sonnet-4-6"
        );
        let old = catalog
            .get("claude-3-7-sonnet")
            .unwrap()
            .bedrock
            .as_ref()
            .unwrap();
        assert_eq!(
            old.default_profile("us-east-1").unwrap().id,
            "us.anthropic.claude-3-7-sonnet-20250219-v1:0"
        );
        assert!(old.default_profile("sa-east-1").is_none());
        // Routed: global, then the geographic fallback; a geographic default alone.
        let ids = |b: &BedrockModel, r: &str| -> Vec<String> {
            b.routed_profiles(r).into_iter().map(|p| p.id).collect()
        };
        assert_eq!(
            ids(sonnet, "eu-west-1"),
            [
                "global.anthropic.claude-sonnet-4-6",
                "eu.anthropic.claude-sonnet-4-6"
            ]
        );
        assert_eq!(
            ids(old, "us-east-1"),
            ["us.anthropic.claude-3-7-sonnet-20250219-v1:0"]
        );
        assert!(ids(old, "sa-east-1").is_empty());
    }

    #[test]
    fn every_geo_in_the_catalog_has_destinations() {
        for model in &Catalog::builtin().models {
            for geo in model.bedrock.iter().flat_map(|b| b.geos.iter()) {
                assert!(
                    geo == "global" || !destination_regions(geo).is_empty(),
                    "{}: geo {geo} has no destination regions",
                    model.id
                );
            }
        }
    }
}
