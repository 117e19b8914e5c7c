//! Azure AI Foundry settings: validation of `hosts.azure_foundry`,
//! `models.<id>.azure_foundry` and `inference_providers.azure`, each error
//! naming its field and the form Azure takes (azure-facts §3); the Entra
//! target a caller's exchange names; and the subject of Azure tokens.
//!
//! Invariants: the Azure audience (`api://AzureADTokenExchange`) is minted
//! for only while the team's host is enabled (and the agent's override does
//! not disable it); the subject of an Azure token is the team's granularity
//! and never carries a run id (an FIC matches one exact subject, so a
//! per-run subject could never match).

use std::sync::LazyLock;

use byollm_api::types::{
    AZURE_AUDIENCE, AZURE_RESOURCE_SUFFIXES, ActorType, AzureFoundryHost, AzureOverride,
    LlmSettings, SubjectGranularity, azure_resource_name,
};
use byollm_federation::azure::{COGNITIVE_SERVICES_SCOPE, EntraTarget};
use regex::Regex;

use crate::validate::{FieldError, quote, regex};

// Tenant and client ids are GUIDs (Entra prints them lower-case; either case
// names the same one).
static GUID: LazyLock<Regex> = LazyLock::new(|| {
    regex(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
});
// A Cognitive Services account's custom subdomain: 2–64 characters of
// lower-case letters, digits and `-`, not starting or ending with `-`.
static RESOURCE: LazyLock<Regex> =
    LazyLock::new(|| regex(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$"));
// Deployment names: 2–64 characters of letters, digits, `-`, `_` and `.`.
static DEPLOYMENT: LazyLock<Regex> = LazyLock::new(|| regex(r"^[A-Za-z0-9][A-Za-z0-9._-]{1,63}$"));

fn guid(field: &str, value: &str, what: &str) -> Result<(), FieldError> {
    if GUID.is_match(value) {
        return Ok(());
    }
    Err(FieldError::new(
        field,
        format!(
            "{} is not valid; expected the {what} as a GUID like \
             00000000-0000-0000-0000-000000000000 (the portal's Overview page shows it)",
            quote(value)
        ),
    ))
}

fn resource(field: &str, value: &str) -> Result<(), FieldError> {
    if value.contains("://") || value.contains('/') {
        return Err(FieldError::new(
            field,
            format!(
                "{}: give the resource's name or host name only, without `https://` or a path \
                 (e.g. acme-ai or acme-ai.openai.azure.com)",
                quote(value)
            ),
        ));
    }
    let name = azure_resource_name(value);
    if name.len() >= 2 && RESOURCE.is_match(name) {
        return Ok(());
    }
    Err(FieldError::new(
        field,
        format!(
            "{} is not valid; expected the Foundry resource's name (2-64 characters of a-z, 0-9 \
             and `-`) or a host name ending in {}",
            quote(value),
            AZURE_RESOURCE_SUFFIXES.join(", ")
        ),
    ))
}

/// Checks `hosts.azure_foundry`: each field's form, and the tenant, client
/// and resource while enabled.
pub fn validate_host(h: &AzureFoundryHost) -> Result<(), FieldError> {
    validate_fields(
        "hosts.azure_foundry",
        h.tenant_id.as_deref(),
        h.client_id.as_deref(),
        h.resource.as_deref(),
    )?;
    if h.enabled {
        for (name, value) in [
            ("tenant_id", &h.tenant_id),
            ("client_id", &h.client_id),
            ("resource", &h.resource),
        ] {
            if value.is_none() {
                return Err(FieldError::new(
                    format!("hosts.azure_foundry.{name}"),
                    "required while hosts.azure_foundry.enabled is true",
                ));
            }
        }
    }
    Ok(())
}

fn validate_fields(
    prefix: &str,
    tenant_id: Option<&str>,
    client_id: Option<&str>,
    res: Option<&str>,
) -> Result<(), FieldError> {
    if let Some(v) = tenant_id {
        guid(
            &format!("{prefix}.tenant_id"),
            v,
            "Entra tenant (directory) id",
        )?;
    }
    if let Some(v) = client_id {
        guid(
            &format!("{prefix}.client_id"),
            v,
            "client id of the managed identity or app registration",
        )?;
    }
    if let Some(v) = res {
        resource(&format!("{prefix}.resource"), v)?;
    }
    Ok(())
}

/// Checks a named agent's `inference_providers.azure`, each field as the
/// team's host field is checked.
pub fn validate_override(o: &AzureOverride) -> Result<(), FieldError> {
    validate_fields(
        "inference_providers.azure",
        o.tenant_id.as_deref(),
        o.client_id.as_deref(),
        o.resource.as_deref(),
    )
}

/// Checks every `models.<id>.azure_foundry.deployment`.
pub fn validate_models(s: &LlmSettings) -> Result<(), FieldError> {
    for (model, hosts) in &s.models {
        if let Some(d) = &hosts.azure_foundry.deployment
            && !DEPLOYMENT.is_match(d)
        {
            return Err(FieldError::new(
                format!("models.{model}.azure_foundry.deployment"),
                format!(
                    "{} is not valid; expected a deployment name of 2-64 characters of \
                     letters, digits, `-`, `_` and `.`",
                    quote(d)
                ),
            ));
        }
    }
    Ok(())
}

/// Where a caller's Azure calls go: the Foundry resource, and the identity
/// its access tokens come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundryTarget {
    /// The resource's bare name (`acme-ai`): Azure OpenAI answers on
    /// `acme-ai.openai.azure.com`, Claude on `acme-ai.services.ai.azure.com`.
    pub resource: String,
    /// The subject the team's tokens for Azure carry.
    pub granularity: SubjectGranularity,
    /// What the broker exchanges for.
    pub entra: EntraTarget,
}

/// The caller's Azure target: the team's host, with a named agent's override
/// field by field; `None` when the host is off (validation makes an enabled
/// host complete) or the agent's override is disabled.
pub fn effective_azure(s: &LlmSettings, agent: Option<&AzureOverride>) -> Option<FoundryTarget> {
    let h = &s.hosts.azure_foundry;
    if !h.enabled || agent.is_some_and(|o| o.disabled) {
        return None;
    }
    let none = AzureOverride::default();
    let o = agent.unwrap_or(&none);
    let pick = |own: &Option<String>, team: &Option<String>| own.clone().or_else(|| team.clone());
    let resource = pick(&o.resource, &h.resource)?;
    Some(FoundryTarget {
        resource: azure_resource_name(&resource).to_owned(),
        granularity: h.subject_granularity,
        entra: EntraTarget {
            tenant_id: pick(&o.tenant_id, &h.tenant_id)?,
            client_id: pick(&o.client_id, &h.client_id)?,
            scope: COGNITIVE_SERVICES_SCOPE.to_owned(),
        },
    })
}

/// Whether a caller may mint for `audience` as an Azure token: it is the
/// Azure audience and the caller has an Azure target.
pub fn is_azure_audience(s: &LlmSettings, agent: Option<&AzureOverride>, audience: &str) -> bool {
    audience == AZURE_AUDIENCE && effective_azure(s, agent).is_some()
}

/// The subject of an Azure token at `granularity`: what one FIC matches.
pub fn subject(
    team_uid: &str,
    actor: ActorType,
    principal_uid: &str,
    granularity: SubjectGranularity,
) -> String {
    match granularity {
        SubjectGranularity::Team => format!("scoped_principal:{team_uid}"),
        SubjectGranularity::ActorType => {
            format!("scoped_principal:{team_uid}/{}", actor.as_str())
        }
        SubjectGranularity::Actor => {
            format!(
                "scoped_principal:{team_uid}/{}:{principal_uid}",
                actor.as_str()
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use byollm_api::types::ModelHosts;

    use super::*;

    const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
    const CLIENT: &str = "0d3c1f2e-5b6a-4c8d-9e0f-1a2b3c4d5e6f";

    fn host() -> AzureFoundryHost {
        AzureFoundryHost {
            enabled: true,
            tenant_id: Some(TENANT.into()),
            client_id: Some(CLIENT.into()),
            resource: Some("acme-ai".into()),
            subject_granularity: SubjectGranularity::Team,
        }
    }

    #[test]
    fn a_complete_host_validates_and_new_teams_are_off() {
        assert!(validate_host(&host()).is_ok());
        assert!(!LlmSettings::default().hosts.azure_foundry.enabled);
        assert!(validate_host(&AzureFoundryHost::default()).is_ok());
        for r in [
            "acme-ai.openai.azure.com",
            "acme-ai.services.ai.azure.com",
            "ai2",
        ] {
            let h = AzureFoundryHost {
                resource: Some(r.into()),
                ..host()
            };
            assert!(validate_host(&h).is_ok(), "{r}");
        }
    }

    #[test]
    fn each_bad_field_is_named_with_its_fix() {
        type Spoil = fn(&mut AzureFoundryHost);
        let cases: [(&str, &str, Spoil); 6] = [
            ("hosts.azure_foundry.tenant_id", "GUID", |h| {
                h.tenant_id = Some("contoso.onmicrosoft.com".into())
            }),
            ("hosts.azure_foundry.client_id", "GUID", |h| {
                h.client_id = Some("byollm-uami".into())
            }),
            ("hosts.azure_foundry.resource", "without `https://`", |h| {
                h.resource = Some("https://acme-ai.openai.azure.com/".into())
            }),
            ("hosts.azure_foundry.resource", "host name ending in", |h| {
                h.resource = Some("acme-ai.example.com".into())
            }),
            ("hosts.azure_foundry.resource", "2-64 characters", |h| {
                h.resource = Some("-acme".into())
            }),
            ("hosts.azure_foundry.client_id", "required while", |h| {
                h.client_id = None
            }),
        ];
        for (field, fix, spoil) in cases {
            let mut h = host();
            spoil(&mut h);
            let err = validate_host(&h).unwrap_err();
            assert_eq!(err.field, field, "{err}");
            assert!(err.message.contains(fix), "{err}");
        }
        let o = AzureOverride {
            tenant_id: Some("nope".into()),
            ..AzureOverride::default()
        };
        assert_eq!(
            validate_override(&o).unwrap_err().field,
            "inference_providers.azure.tenant_id"
        );
        let mut s = LlmSettings::default();
        let mut m = ModelHosts::default();
        m.azure_foundry.deployment = Some("gpt 4o".into());
        s.models.insert("gpt-4o".into(), m);
        assert_eq!(
            validate_models(&s).unwrap_err().field,
            "models.gpt-4o.azure_foundry.deployment"
        );
    }

    #[test]
    fn the_target_merges_the_agent_override_and_gates_the_audience() {
        let mut s = LlmSettings::default();
        assert!(!is_azure_audience(&s, None, AZURE_AUDIENCE));
        s.hosts.azure_foundry = AzureFoundryHost {
            resource: Some("acme-ai.services.ai.azure.com".into()),
            ..host()
        };
        assert!(is_azure_audience(&s, None, AZURE_AUDIENCE));
        assert!(!is_azure_audience(&s, None, "sts.amazonaws.com"));
        let t = effective_azure(&s, None).unwrap();
        assert_eq!(t.resource, "acme-ai");
        assert_eq!(t.entra.tenant_id, TENANT);
        assert_eq!(t.entra.scope, COGNITIVE_SERVICES_SCOPE);
        let own = AzureOverride {
            client_id: Some("11111111-2222-3333-4444-555555555555".into()),
            ..AzureOverride::default()
        };
        let t = effective_azure(&s, Some(&own)).unwrap();
        assert_eq!(t.entra.client_id, "11111111-2222-3333-4444-555555555555");
        assert_eq!(t.entra.tenant_id, TENANT);
        let off = AzureOverride {
            disabled: true,
            ..AzureOverride::default()
        };
        assert!(!is_azure_audience(&s, Some(&off), AZURE_AUDIENCE));
    }

    #[test]
    fn subjects_follow_the_granularity() {
        let sa = ActorType::ServiceAccount;
        assert_eq!(
            subject("t1", sa, "a1", SubjectGranularity::Team),
            "scoped_principal:t1"
        );
        assert_eq!(
            subject("t1", sa, "a1", SubjectGranularity::ActorType),
            "scoped_principal:t1/service_account"
        );
        assert_eq!(
            subject("t1", ActorType::User, "u1", SubjectGranularity::Actor),
            "scoped_principal:t1/user:u1"
        );
    }
}
