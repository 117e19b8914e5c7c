//! `GET /v1/models`: the models this principal may use and the route each would
//! take first. The shape serves both SDKs: OpenAI's `{"object":"list","data":[…]}`
//! and Anthropic's `{"data":[…],"has_more":false}`.

use axum::Json;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use byollm_api::catalog::{Catalog, Family};
use byollm_core::auth::Principal;

use crate::error::ApiFormat;
use crate::gateway::Gateway;
use crate::plan::{self, Candidate};

impl Gateway {
    /// Handles `GET /v1/models`.
    pub async fn models(&self, p: Principal, headers: &HeaderMap) -> Response {
        let ctx = match self.context(p, headers).await {
            Ok(c) => c,
            Err(e) => return e.into_response(ApiFormat::OpenAi),
        };
        let input = self.plan_input(&ctx, ApiFormat::OpenAi);
        let mut data = Vec::new();
        for m in Catalog::builtin().by_rank() {
            let mut single = input.clone();
            single.max_models = 1;
            let Ok(candidates) = plan::plan(Catalog::builtin(), &m.id, &single) else {
                continue;
            };
            let routes: Vec<String> = candidates
                .iter()
                .filter(|c| {
                    !matches!(
                        c,
                        Candidate::Bedrock {
                            geo_fallback: true,
                            ..
                        }
                    )
                })
                .map(Candidate::route)
                .collect();
            data.push(json!({
                "id": m.id,
                "object": "model",
                "type": "model",
                "display_name": m.display_name,
                "created": 0,
                "created_at": "1970-01-01T00:00:00Z",
                "owned_by": match m.family { Family::Anthropic => "anthropic", Family::Openai => "openai", Family::Google => "google" },
                "routes": routes,
            }));
        }
        let first = data
            .first()
            .and_then(|d| d["id"].as_str())
            .map(str::to_owned);
        let last = data
            .last()
            .and_then(|d| d["id"].as_str())
            .map(str::to_owned);
        let notes = unconfigured_notes(&input);
        Json(json!({"object": "list", "data": data, "has_more": false, "first_id": first, "last_id": last, "notes": notes})).into_response()
    }
}

/// Hosts the team's settings enable that this server cannot reach, said once
/// each: the settings read "on" while no request can take that route.
fn unconfigured_notes(input: &plan::PlanInput<'_>) -> Vec<String> {
    let mut notes = Vec::new();
    if input.settings.hosts.direct_api.enabled {
        let missing: Vec<&str> = [
            ("anthropic", input.direct_anthropic),
            ("openai", input.direct_openai),
        ]
        .into_iter()
        .filter(|(_, configured)| !configured)
        .map(|(name, _)| name)
        .collect();
        if !missing.is_empty() {
            notes.push(format!(
                "direct_api is on in the team's settings, but this server has no direct upstream \
                 for {}: no request takes that route until the operator sets it ([upstreams] in \
                 byollm.toml, or --direct-…-url and --direct-…-key)",
                missing.join(" or ")
            ));
        }
    }
    notes
}
