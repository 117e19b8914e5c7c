//! Routing (DESIGN §5): which candidates a request may try, in order.
//!
//! 1. `auto` → refused when the admin disabled any direct-API model; otherwise the
//!    highest-ranked model the team's own cloud (Bedrock) serves for this caller,
//!    or, when Bedrock serves none, the highest-ranked model enabled at all.
//! 2. For the model, then the next enabled models by rank (at most
//!    `max_fallback_attempts` models): the in-customer-cloud hosts in the team's
//!    `host_order` (default Bedrock, then Vertex AI, then Azure AI Foundry —
//!    Claude and GPT alike), each when the team enabled
//!    it, for this model, and the caller has a target there — Bedrock's global
//!    profile, and behind it the geographic profile of the source region, tried
//!    only when the global one is refused; Vertex AI's publisher model in the
//!    team's location —; then the direct API when enabled for the host and the
//!    model (after an in-cloud failure only if `allow_fallback_outside_cloud`,
//!    checked when it is tried).
//!
//! A cloud here is a [`Candidate`] variant and its `candidates_for` arm; what
//! calls it lives in its adapter (`bedrock.rs`, `vertex.rs`).

use byollm_api::catalog::{Catalog, CatalogModel, Family};
use byollm_api::types::{BedrockTarget, CloudHost, LlmSettings, ModelHosts};
use byollm_core::settings::NoBedrock;
use byollm_core::settings::azure::FoundryTarget;
use byollm_core::settings::gcp::VertexTarget;

use crate::error::{ApiFormat, GatewayError};

/// Default number of models tried for one request.
pub const MAX_FALLBACK_ATTEMPTS: usize = 3;

/// The host of a route in the customer's Bedrock.
pub const HOST_BEDROCK: &str = "aws_bedrock";
/// The host of a route in the customer's Vertex AI.
pub const HOST_VERTEX: &str = "gcp_vertex";
/// The host of a route in the customer's Azure AI Foundry.
pub const HOST_FOUNDRY: &str = "azure_foundry";
/// The host of a route to a vendor's own API.
pub const HOST_DIRECT: &str = "direct_api";

/// One route to try.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Candidate {
    /// The customer's Bedrock.
    Bedrock {
        /// The public model id.
        model: String,
        /// The profile or model id sent to Bedrock.
        model_ref: String,
        /// The source region and role.
        target: BedrockTarget,
        /// Tried only when the preceding global profile was refused.
        geo_fallback: bool,
    },
    /// The customer's Vertex AI: Claude through `rawPredict`, Gemini through
    /// `generateContent`.
    Vertex {
        /// The public model id.
        model: String,
        /// The publisher model id in the URL.
        model_ref: String,
        /// The project, location and pool provider.
        target: VertexTarget,
        /// Which publisher serves it (`Anthropic` or `Google`), so which
        /// Vertex AI method and body.
        family: Family,
    },
    /// The customer's Azure AI Foundry resource: Claude through its
    /// Anthropic Messages endpoint, GPT through Azure OpenAI v1.
    Foundry {
        /// The public model id.
        model: String,
        /// The deployment name, sent as `model`.
        deployment: String,
        /// The resource and the Entra identity.
        target: FoundryTarget,
        /// Which endpoint serves it: `Anthropic` (Messages) or `Openai`
        /// (Chat Completions).
        family: Family,
    },
    /// The vendor's own API.
    Direct {
        /// The public model id.
        model: String,
        /// The id the vendor takes.
        direct_id: String,
        /// Which vendor.
        family: Family,
    },
}

impl Candidate {
    /// The `x-byollm-route` value.
    pub fn route(&self) -> String {
        match self {
            Candidate::Bedrock {
                model_ref, target, ..
            } => format!("aws_bedrock:{model_ref}@{}", target.region),
            Candidate::Vertex {
                model_ref, target, ..
            } => format!("gcp_vertex:{model_ref}@{}", target.location),
            Candidate::Foundry {
                deployment, target, ..
            } => format!("azure_foundry:{deployment}@{}", target.resource),
            Candidate::Direct { model, .. } => format!("direct_api:{model}"),
        }
    }

    /// The host kind, the prefix of [`Candidate::route`] (a metrics label).
    pub fn host(&self) -> &'static str {
        match self {
            Candidate::Bedrock { .. } => HOST_BEDROCK,
            Candidate::Vertex { .. } => HOST_VERTEX,
            Candidate::Foundry { .. } => HOST_FOUNDRY,
            Candidate::Direct { .. } => HOST_DIRECT,
        }
    }

    /// Whether this route leaves the customer's cloud: after an in-cloud
    /// failure such a route is tried only when the team allows
    /// (`allow_fallback_outside_cloud`).
    pub fn leaves_cloud(&self) -> bool {
        match self {
            Candidate::Bedrock { .. } | Candidate::Vertex { .. } | Candidate::Foundry { .. } => {
                false
            }
            Candidate::Direct { .. } => true,
        }
    }

    /// The public model id.
    pub fn model(&self) -> &str {
        match self {
            Candidate::Bedrock { model, .. }
            | Candidate::Vertex { model, .. }
            | Candidate::Foundry { model, .. }
            | Candidate::Direct { model, .. } => model,
        }
    }
}

/// What the plan needs to know about the caller.
#[derive(Debug, Clone)]
pub struct PlanInput<'a> {
    /// Team settings.
    pub settings: &'a LlmSettings,
    /// The effective AWS config (DESIGN §4) or why there is none.
    pub effective: Result<BedrockTarget, NoBedrock>,
    /// The team's Vertex AI target, when its host is on.
    pub vertex: Option<VertexTarget>,
    /// The caller's Azure AI Foundry target, when its host is on.
    pub azure: Option<FoundryTarget>,
    /// Which direct APIs this server can reach.
    pub direct_anthropic: bool,
    /// Which direct APIs this server can reach.
    pub direct_openai: bool,
    /// The caller's API.
    pub format: ApiFormat,
    /// Most models to try.
    pub max_models: usize,
}

fn hosts<'a>(settings: &'a LlmSettings, model: &str) -> Option<&'a ModelHosts> {
    settings.models.get(model)
}

/// Bedrock is enabled for this model (absent models follow `opt_out_of_new_models`).
pub fn bedrock_enabled(settings: &LlmSettings, model: &CatalogModel) -> bool {
    model.bedrock.is_some()
        && match hosts(settings, &model.id) {
            Some(h) => h.aws_bedrock.enabled,
            None => !settings.hosts.aws_bedrock.opt_out_of_new_models,
        }
}

/// Vertex AI is enabled for this model in `location`.
pub fn vertex_enabled(settings: &LlmSettings, model: &CatalogModel, location: &str) -> bool {
    model.vertex.as_ref().is_some_and(|v| v.serves(location))
        && hosts(settings, &model.id).is_none_or(|h| h.gcp_vertex.enabled)
}

/// The direct API is enabled for this model.
pub fn direct_enabled(settings: &LlmSettings, model: &CatalogModel) -> bool {
    settings.hosts.direct_api.enabled
        && model.direct_api_id.is_some()
        && hosts(settings, &model.id).is_none_or(|h| h.direct_api.enabled)
}

fn serves_format(model: &CatalogModel, format: ApiFormat) -> bool {
    match format {
        // Anthropic Messages bodies go to Claude only (InvokeModel or the Anthropic API).
        ApiFormat::Anthropic => model.family == Family::Anthropic,
        ApiFormat::OpenAi => true,
    }
}

fn candidates_for(input: &PlanInput<'_>, model: &CatalogModel, out: &mut Vec<Candidate>) {
    for host in input.settings.cloud_hosts() {
        match host {
            CloudHost::AwsBedrock => bedrock_candidates(input, model, out),
            CloudHost::GcpVertex => vertex_candidates(input, model, out),
            CloudHost::AzureFoundry => foundry_candidates(input, model, out),
        }
    }
    direct_candidate(input, model, out);
}

fn vertex_candidates(input: &PlanInput<'_>, model: &CatalogModel, out: &mut Vec<Candidate>) {
    // Claude (rawPredict takes an Anthropic Messages body; Chat Completions
    // callers are translated to one) and Gemini (generateContent, Chat
    // Completions callers only: `serves_format` keeps Messages callers away).
    if !matches!(model.family, Family::Anthropic | Family::Google) {
        return;
    }
    let (Some(target), Some(vertex)) = (&input.vertex, &model.vertex) else {
        return;
    };
    if !vertex_enabled(input.settings, model, &target.location) {
        return;
    }
    let model_ref = hosts(input.settings, &model.id)
        .and_then(|h| h.gcp_vertex.model_ref.clone())
        .unwrap_or_else(|| vertex.model_id.clone());
    out.push(Candidate::Vertex {
        model: model.id.clone(),
        model_ref,
        target: target.clone(),
        family: model.family,
    });
}

/// Claude (Chat Completions callers are translated to a Messages body) and
/// the catalog's Azure OpenAI models (Chat Completions callers only:
/// `serves_format` keeps Messages callers away) on the caller's Azure AI
/// Foundry resource, when the caller has a target and the model is not
/// turned off there; the deployment is the model's setting, else the
/// catalog id.
fn foundry_candidates(input: &PlanInput<'_>, model: &CatalogModel, out: &mut Vec<Candidate>) {
    let served = match model.family {
        Family::Anthropic => true,
        Family::Openai => model.azure_openai.is_some(),
        Family::Google => false,
    };
    if !served {
        return;
    }
    let Some(target) = &input.azure else {
        return;
    };
    let own = hosts(input.settings, &model.id).map(|h| &h.azure_foundry);
    if own.is_some_and(|f| !f.enabled) {
        return;
    }
    let deployment = own
        .and_then(|f| f.deployment.clone())
        .unwrap_or_else(|| model.id.clone());
    out.push(Candidate::Foundry {
        model: model.id.clone(),
        deployment,
        target: target.clone(),
        family: model.family,
    });
}

fn bedrock_candidates(input: &PlanInput<'_>, model: &CatalogModel, out: &mut Vec<Candidate>) {
    let s = input.settings;
    if s.hosts.aws_bedrock.enabled
        && bedrock_enabled(s, model)
        && let (Ok(target), Some(bedrock)) = (&input.effective, &model.bedrock)
    {
        let override_ref = hosts(s, &model.id).and_then(|h| h.aws_bedrock.model_ref.clone());
        match override_ref {
            Some(model_ref) => out.push(Candidate::Bedrock {
                model: model.id.clone(),
                model_ref,
                target: target.clone(),
                geo_fallback: false,
            }),
            None => {
                for (i, p) in bedrock
                    .routed_profiles(&target.region)
                    .into_iter()
                    .enumerate()
                {
                    out.push(Candidate::Bedrock {
                        model: model.id.clone(),
                        model_ref: p.id,
                        target: target.clone(),
                        geo_fallback: i > 0,
                    });
                }
            }
        }
    }
}

fn direct_candidate(input: &PlanInput<'_>, model: &CatalogModel, out: &mut Vec<Candidate>) {
    let s = input.settings;
    let reachable = match model.family {
        Family::Anthropic => input.direct_anthropic,
        Family::Openai => input.direct_openai,
        Family::Google => false,
    };
    if reachable
        && direct_enabled(s, model)
        && let Some(direct_id) = &model.direct_api_id
    {
        out.push(Candidate::Direct {
            model: model.id.clone(),
            direct_id: direct_id.clone(),
            family: model.family,
        });
    }
}

/// Models enabled for this team on some host, best first.
pub fn enabled_models<'c>(catalog: &'c Catalog, input: &PlanInput<'_>) -> Vec<&'c CatalogModel> {
    catalog
        .by_rank()
        .into_iter()
        .filter(|m| serves_format(m, input.format))
        .filter(|m| {
            let mut c = Vec::new();
            candidates_for(input, m, &mut c);
            !c.is_empty()
        })
        .collect()
}

/// Resolves `auto` to a model id.
pub fn resolve_auto(catalog: &Catalog, input: &PlanInput<'_>) -> Result<String, GatewayError> {
    if let Some((id, _)) = input
        .settings
        .models
        .iter()
        .find(|(_, h)| !h.direct_api.enabled)
    {
        return Err(GatewayError::no_route(
            format!("model `auto` is refused because the admin disabled the direct API for `{id}`"),
            "name a model explicitly",
        ));
    }
    let enabled = enabled_models(catalog, input);
    // The team's own cloud first: a model Bedrock serves for this caller beats
    // a higher-ranked one that only the direct API would serve.
    let in_cloud = enabled.iter().find(|m| {
        let mut c = Vec::new();
        candidates_for(input, m, &mut c);
        c.iter().any(|c| !c.leaves_cloud())
    });
    in_cloud
        .or(enabled.first())
        .map(|m| m.id.clone())
        .ok_or_else(|| {
            GatewayError::no_route(
                "no model is enabled for this team",
                "an admin can enable a model or host",
            )
        })
}

/// The ordered candidates for `model`.
pub fn plan(
    catalog: &Catalog,
    model_id: &str,
    input: &PlanInput<'_>,
) -> Result<Vec<Candidate>, GatewayError> {
    let Some(model) = catalog.get(model_id) else {
        let known: Vec<&str> = catalog.models.iter().map(|m| m.id.as_str()).collect();
        return Err(GatewayError::invalid(format!(
            "unknown model `{model_id}`; expected `auto` or one of {}",
            known.join(", ")
        )));
    };
    if !serves_format(model, input.format) {
        return Err(GatewayError::invalid(format!(
            "model `{model_id}` does not speak the Anthropic Messages API; use POST /v1/chat/completions"
        )));
    }
    let only_vertex = model.direct_api_id.is_none() && model.bedrock.is_none();
    let mut out = Vec::new();
    candidates_for(input, model, &mut out);
    // The next models by rank, each planned once; a model with no route does
    // not count against the limit.
    let mut models = 1;
    for next in catalog.by_rank() {
        if models >= input.max_models {
            break;
        }
        if next.id == model.id || next.rank > model.rank || !serves_format(next, input.format) {
            continue;
        }
        let before = out.len();
        candidates_for(input, next, &mut out);
        if out.len() > before {
            models += 1;
        }
    }
    if out.is_empty() {
        let why = match &input.effective {
            _ if only_vertex => {
                " (it has no Bedrock or direct-API route: only Vertex AI serves it, through `hosts.gcp_vertex`)".to_owned()
            }
            Err(reason) if input.settings.hosts.aws_bedrock.enabled => {
                format!(" (Bedrock: {reason})")
            }
            _ => String::new(),
        };
        return Err(GatewayError::no_route(
            format!("no route can serve `{model_id}` for this principal{why}"),
            "an admin can enable the model on AWS Bedrock, Vertex AI or the direct API in the team's LLM settings",
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use byollm_api::types::{ModelBedrock, ModelDirect};

    use super::*;

    fn bedrock_team() -> LlmSettings {
        let mut s = LlmSettings::default();
        s.hosts.aws_bedrock.enabled = true;
        s.hosts.aws_bedrock.role_arn = Some("arn:aws:iam::123456789012:role/t".into());
        s.hosts.aws_bedrock.region = Some("us-east-1".into());
        s
    }

    fn input(s: &LlmSettings) -> PlanInput<'_> {
        PlanInput {
            settings: s,
            effective: Ok(BedrockTarget {
                role_arn: "arn:aws:iam::123456789012:role/t".into(),
                region: "us-east-1".into(),
            }),
            vertex: None,
            azure: None,
            direct_anthropic: true,
            direct_openai: true,
            format: ApiFormat::Anthropic,
            max_models: 1,
        }
    }

    #[test]
    fn global_then_geographic_then_direct() {
        let s = bedrock_team();
        let c = plan(Catalog::builtin(), "claude-sonnet-4-6", &input(&s)).unwrap();
        let routes: Vec<String> = c.iter().map(Candidate::route).collect();
        assert_eq!(
            routes,
            [
                "aws_bedrock:global.anthropic.claude-sonnet-4-6@us-east-1",
                "aws_bedrock:us.anthropic.claude-sonnet-4-6@us-east-1",
                "direct_api:claude-sonnet-4-6"
            ]
        );
    }

    #[test]
    fn model_ref_override_and_disabled_hosts() {
        let mut s = bedrock_team();
        s.models.insert(
            "claude-sonnet-4-6".into(),
            ModelHosts {
                aws_bedrock: ModelBedrock {
                    enabled: true,
                    model_ref: Some("us.anthropic.claude-sonnet-4-6".into()),
                },
                direct_api: ModelDirect { enabled: false },
                ..ModelHosts::default()
            },
        );
        let c = plan(Catalog::builtin(), "claude-sonnet-4-6", &input(&s)).unwrap();
        assert_eq!(c.len(), 1);
        assert_eq!(
            c[0].route(),
            "aws_bedrock:us.anthropic.claude-sonnet-4-6@us-east-1"
        );
        // `auto` is refused once a direct-API model is disabled.
        assert_eq!(
            resolve_auto(Catalog::builtin(), &input(&s))
                .unwrap_err()
                .status
                .as_u16(),
            422
        );
    }

    #[test]
    fn agent_disabled_goes_direct_or_nowhere() {
        let mut s = bedrock_team();
        let mut i = input(&s);
        i.effective = Err(NoBedrock::AgentDisabled);
        let c = plan(Catalog::builtin(), "claude-sonnet-4-6", &i).unwrap();
        assert_eq!(
            c,
            vec![Candidate::Direct {
                model: "claude-sonnet-4-6".into(),
                direct_id: "claude-sonnet-4-6".into(),
                family: Family::Anthropic
            }]
        );
        s.hosts.direct_api.enabled = false;
        let mut i = input(&s);
        i.effective = Err(NoBedrock::AgentDisabled);
        let e = plan(Catalog::builtin(), "claude-sonnet-4-6", &i).unwrap_err();
        assert_eq!(e.status.as_u16(), 422);
        assert!(
            e.message.contains("agent's AWS override is disabled"),
            "{}",
            e.message
        );
    }

    #[test]
    fn next_models_by_rank_and_format() {
        let s = bedrock_team();
        let mut i = input(&s);
        i.max_models = 2;
        i.direct_anthropic = false;
        let c = plan(Catalog::builtin(), "claude-sonnet-4-6", &i).unwrap();
        let models: Vec<&str> = c.iter().map(Candidate::model).collect();
        assert_eq!(
            models,
            [
                "claude-sonnet-4-6",
                "claude-sonnet-4-6",
                "claude-opus-4-5",
                "claude-opus-4-5"
            ]
        );
        assert!(
            plan(Catalog::builtin(), "gpt-5", &i)
                .unwrap_err()
                .message
                .contains("chat/completions")
        );
        assert_eq!(
            resolve_auto(Catalog::builtin(), &i).unwrap(),
            "claude-opus-4-6"
        );
    }

    #[test]
    fn auto_prefers_a_model_the_teams_cloud_serves() {
        // Opus 4.6 is off Bedrock (the role may not call it) but on the direct
        // API; `auto` stays in the cloud with the best model Bedrock serves.
        let mut s = bedrock_team();
        s.models.insert(
            "claude-opus-4-6".into(),
            ModelHosts {
                aws_bedrock: ModelBedrock {
                    enabled: false,
                    model_ref: None,
                },
                direct_api: ModelDirect { enabled: true },
                ..ModelHosts::default()
            },
        );
        assert_eq!(
            resolve_auto(Catalog::builtin(), &input(&s)).unwrap(),
            "claude-sonnet-4-6"
        );
        // With Bedrock off for the caller, the best direct model it is.
        let mut i = input(&s);
        i.effective = Err(NoBedrock::AgentDisabled);
        assert_eq!(
            resolve_auto(Catalog::builtin(), &i).unwrap(),
            "claude-opus-4-6"
        );
    }

    fn vertex_target() -> VertexTarget {
        VertexTarget {
            project_id: "acme-ml-prod".into(),
            location: "global".into(),
            quota_project: None,
            pool: byollm_federation::gcp::PoolTarget {
                audience: "//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/providers/q".into(),
                service_account: None,
            },
        }
    }

    #[test]
    fn cloud_hosts_in_the_teams_order_then_direct() {
        let mut s = bedrock_team();
        let routes = |s: &LlmSettings| -> Vec<String> {
            let mut i = input(s);
            i.vertex = Some(vertex_target());
            plan(Catalog::builtin(), "claude-opus-4-5", &i)
                .unwrap()
                .iter()
                .map(Candidate::route)
                .collect()
        };
        assert_eq!(
            routes(&s),
            [
                "aws_bedrock:global.anthropic.claude-opus-4-5-20251101-v1:0@us-east-1",
                "aws_bedrock:us.anthropic.claude-opus-4-5-20251101-v1:0@us-east-1",
                "gcp_vertex:claude-opus-4-5@20251101@global",
                "direct_api:claude-opus-4-5"
            ]
        );
        s.host_order = vec![CloudHost::GcpVertex];
        let r = routes(&s);
        assert_eq!(r[0], "gcp_vertex:claude-opus-4-5@20251101@global");
        assert!(r[1].starts_with("aws_bedrock:global."), "{r:?}");
        assert_eq!(r.last().unwrap(), "direct_api:claude-opus-4-5");
        // Off for the model: no Vertex route; GPT never goes to rawPredict.
        let mut off = ModelHosts::default();
        off.gcp_vertex.enabled = false;
        s.models.insert("claude-opus-4-5".into(), off);
        assert!(!routes(&s).iter().any(|r| r.starts_with("gcp_vertex:")));
        let mut i = input(&s);
        i.vertex = Some(vertex_target());
        i.format = ApiFormat::OpenAi;
        let gpt = plan(Catalog::builtin(), "gpt-5", &i).unwrap();
        assert!(gpt.iter().all(|c| c.host() != HOST_VERTEX));
        // Chat Completions callers reach Claude on Vertex AI too.
        let chat = plan(Catalog::builtin(), "claude-sonnet-4-6", &i).unwrap();
        assert!(chat.iter().any(|c| c.host() == HOST_VERTEX));
        // Vertex alone is a route; a Vertex route stays in the cloud.
        s.hosts.aws_bedrock.enabled = false;
        s.models.clear();
        let c = {
            let mut i = input(&s);
            i.vertex = Some(vertex_target());
            plan(Catalog::builtin(), "claude-sonnet-4-6", &i).unwrap()
        };
        assert_eq!(c[0].route(), "gcp_vertex:claude-sonnet-4-6@global");
        assert!(!c[0].leaves_cloud());
    }

    fn foundry_target() -> FoundryTarget {
        FoundryTarget {
            resource: "acme-ai".into(),
            granularity: byollm_api::types::SubjectGranularity::Team,
            entra: byollm_federation::azure::EntraTarget {
                tenant_id: "72f988bf-86f1-41af-91ab-2d7cd011db47".into(),
                client_id: "0d3c1f2e-5b6a-4c8d-9e0f-1a2b3c4d5e6f".into(),
                scope: byollm_federation::azure::COGNITIVE_SERVICES_SCOPE.into(),
            },
        }
    }

    #[test]
    fn gpt_and_claude_share_the_foundry_host_in_the_teams_order() {
        let mut s = bedrock_team();
        s.host_order = vec![CloudHost::AzureFoundry];
        let mut i = input(&s);
        i.azure = Some(foundry_target());
        i.format = ApiFormat::OpenAi;
        let routes = |i: &PlanInput<'_>, model: &str| -> Vec<String> {
            plan(Catalog::builtin(), model, i)
                .unwrap()
                .iter()
                .map(Candidate::route)
                .collect()
        };
        assert_eq!(
            routes(&i, "gpt-5"),
            ["azure_foundry:gpt-5@acme-ai", "direct_api:gpt-5"]
        );
        let claude = routes(&i, "claude-sonnet-4-6");
        assert_eq!(claude[0], "azure_foundry:claude-sonnet-4-6@acme-ai");
        assert!(claude[1].starts_with("aws_bedrock:global."), "{claude:?}");
        // The model's deployment setting; off for the model: no Azure route.
        let mut named = ModelHosts::default();
        named.azure_foundry.deployment = Some("prod-gpt41".into());
        s.models.insert("gpt-4.1".into(), named);
        let mut off = ModelHosts::default();
        off.azure_foundry.enabled = false;
        s.models.insert("gpt-5".into(), off);
        let mut i = input(&s);
        i.azure = Some(foundry_target());
        i.format = ApiFormat::OpenAi;
        assert_eq!(routes(&i, "gpt-4.1")[0], "azure_foundry:prod-gpt41@acme-ai");
        assert_eq!(routes(&i, "gpt-5"), ["direct_api:gpt-5"]);
        // Gemini never goes to Azure; Messages callers never reach GPT.
        assert!(plan(Catalog::builtin(), "gemini-2.5-pro", &i).is_err());
        i.format = ApiFormat::Anthropic;
        assert!(plan(Catalog::builtin(), "gpt-4.1", &i).is_err());
    }
}
