//! The GCP walk's readings of Google's answers: which model to call, and
//! which cause a Google STS error code names (gcp-facts §1.5).

use byollm_api::catalog::{Catalog, Family};
use byollm_api::types::LlmSettings;

use super::Host;
use crate::walk::fail;
use crate::{Cause, Diagnosis, StepName};

/// The catalog model to call and its publisher id on Vertex.
pub(super) fn pick_model(
    settings: &LlmSettings,
    location: &str,
    wanted: Option<&str>,
) -> Option<(String, String)> {
    let catalog = Catalog::builtin();
    let on_vertex: Vec<_> = catalog
        .by_rank()
        .into_iter()
        .filter(|m| {
            m.family == Family::Anthropic && m.vertex.as_ref().is_some_and(|v| v.serves(location))
        })
        .collect();
    let chosen = match wanted {
        Some(w) => on_vertex.iter().find(|m| m.id == w)?,
        None => on_vertex
            .iter()
            .find(|m| {
                settings
                    .models
                    .get(&m.id)
                    .is_some_and(|h| h.gcp_vertex.enabled)
            })
            .or_else(|| on_vertex.first())?,
    };
    let model_ref = settings
        .models
        .get(&chosen.id)
        .and_then(|h| h.gcp_vertex.model_ref.clone())
        .or_else(|| chosen.vertex.as_ref().map(|v| v.model_id.clone()))?;
    Some((chosen.id.clone(), model_ref))
}

/// Google STS's error, as a diagnosis: the code names the cause.
pub(super) fn sts_failure(message: &str, host: &Host) -> Diagnosis {
    let s = StepName::GoogleSts;
    let evidence = vec![message.to_owned()];
    let (cause, summary, fix) = if message.contains("unauthorized_client") {
        (
            Cause::GcpConditionRefused,
            "the provider's attribute condition refused the token".to_owned(),
            format!(
                "the condition must admit this actor: check it with `byollm gcp explain-condition --team {} --attribute-condition '…'`, or rerun `byollm gcp setup-script` with the right --scope",
                host.team
            ),
        )
    } else if message.contains("invalid_target") {
        (Cause::GcpProviderMissing, format!("the pool or provider of {} does not exist or is disabled", host.audience),
         "run the script `byollm gcp setup-script` prints, or fix hosts.gcp_vertex's project_number / pool_id / provider_id".to_owned())
    } else if message.contains("audience")
        && (message.contains("invalid_request") || message.contains("invalid_grant"))
    {
        (
            Cause::GcpAudienceRefused,
            "Google STS refused the token's audience".to_owned(),
            format!(
                "the provider must accept {} (its default audience): remove other allowed audiences or add this one",
                host.audience
            ),
        )
    } else if message.contains("expired") {
        (
            Cause::TokenExpired,
            "the token was expired when Google saw it (clock skew?)".to_owned(),
            "check the server's clock (NTP)".to_owned(),
        )
    } else if message.contains("invalid_grant") {
        (Cause::GcpTokenRefused, "Google STS refused the token".to_owned(),
         "check the provider's issuer URI is exactly the discovery document's issuer, and that Google can fetch the JWKS over https".to_owned())
    } else if message.contains("rate") || message.contains("429") {
        (
            Cause::Throttled,
            "Google STS throttled the exchange".to_owned(),
            "try again later".to_owned(),
        )
    } else {
        (
            Cause::GoogleStsFailed,
            "the Google STS exchange failed".to_owned(),
            "see Google's answer above".to_owned(),
        )
    };
    fail(s, cause, summary, evidence, fix)
}
