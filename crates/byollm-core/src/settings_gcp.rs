//! Google Vertex AI settings: validation of `hosts.gcp_vertex` and
//! `models.<id>.gcp_vertex`, each error naming its field and the form Google
//! takes (gcp-facts §1.1, §1.2, §2.1), and the identity-token audience the
//! host implies.
//!
//! Invariant: the only audience beyond `token_audiences` a team may mint for
//! is its own provider's resource name (in either of the two forms Google's
//! STS accepts), and only once the host names number, pool and provider.

use std::sync::LazyLock;

use byollm_api::catalog::{Catalog, vertex_locations};
use byollm_api::types::{
    GcpOverride, GcpVertexHost, HTTPS_IAM_PREFIX, IAM_PREFIX, LlmSettings, provider_audience,
};
use byollm_federation::gcp::PoolTarget;
use regex::Regex;

use crate::validate::{FieldError, quote, regex};

// Project ids: 6–30 characters, a lower-case letter first, lower-case letters,
// digits and hyphens, no trailing hyphen (Resource Manager `projects.create`).
static PROJECT_ID: LazyLock<Regex> = LazyLock::new(|| regex(r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$"));
static PROJECT_NUMBER: LazyLock<Regex> = LazyLock::new(|| regex(r"^[1-9][0-9]{5,19}$"));
// Pool and provider ids: 4–32 characters of [a-z0-9-]; `gcp-` is reserved
// (IAM `workloadIdentityPools.create`, `providers.create`).
static POOL_ID: LazyLock<Regex> = LazyLock::new(|| regex(r"^[a-z0-9-]{4,32}$"));
static SERVICE_ACCOUNT: LazyLock<Regex> = LazyLock::new(|| {
    regex(r"^[a-z0-9][a-z0-9-]{4,61}[a-z0-9]@[a-z0-9][a-z0-9.-]{0,62}\.gserviceaccount\.com$")
});
// Publisher model ids: `claude-sonnet-4-5@20250929`, `claude-opus-4-6`.
static VERTEX_MODEL: LazyLock<Regex> =
    LazyLock::new(|| regex(r"^[a-z0-9][a-z0-9.-]{0,127}(?:@[0-9]{8}|@latest)?$"));

fn check(re: &Regex, field: &str, value: &str, expected: &str) -> Result<(), FieldError> {
    if re.is_match(value) {
        Ok(())
    } else {
        Err(FieldError::new(
            field,
            format!("{} is not valid; expected {expected}", quote(value)),
        ))
    }
}

fn pool_like(field: &str, value: &str, what: &str) -> Result<(), FieldError> {
    check(
        &POOL_ID,
        field,
        value,
        &format!("a {what} id of 4-32 characters of a-z, 0-9 and `-`"),
    )?;
    if value.starts_with("gcp-") {
        return Err(FieldError::new(
            field,
            format!("{}: the prefix `gcp-` is reserved by Google", quote(value)),
        ));
    }
    Ok(())
}

/// Checks `hosts.gcp_vertex`: each field's form, and every field but the
/// service account and quota project while enabled.
pub fn validate_host(h: &GcpVertexHost) -> Result<(), FieldError> {
    const P: &str = "hosts.gcp_vertex";
    if let Some(v) = &h.project_id {
        check(
            &PROJECT_ID,
            &format!("{P}.project_id"),
            v,
            "a project id of 6-30 characters of a-z, 0-9 and `-`, starting with a letter",
        )?;
    }
    if let Some(v) = &h.quota_project {
        check(
            &PROJECT_ID,
            &format!("{P}.quota_project"),
            v,
            "a project id of 6-30 characters of a-z, 0-9 and `-`, starting with a letter",
        )?;
    }
    if let Some(v) = &h.project_number {
        check(
            &PROJECT_NUMBER,
            &format!("{P}.project_number"),
            v,
            "the project's number (digits, e.g. 123456789012), not its id",
        )?;
    }
    if let Some(v) = &h.pool_id {
        pool_like(&format!("{P}.pool_id"), v, "workload identity pool")?;
    }
    if let Some(v) = &h.provider_id {
        pool_like(&format!("{P}.provider_id"), v, "provider")?;
    }
    if let Some(v) = &h.location {
        let known = vertex_locations(Catalog::builtin());
        if !known.contains(&v.as_str()) {
            return Err(FieldError::new(
                format!("{P}.location"),
                format!(
                    "{} serves no catalog model on Vertex AI; expected one of {}",
                    quote(v),
                    known.join(", ")
                ),
            ));
        }
    }
    if let Some(v) = &h.service_account {
        check(
            &SERVICE_ACCOUNT,
            &format!("{P}.service_account"),
            v,
            "a service account email, NAME@PROJECT.iam.gserviceaccount.com",
        )?;
    }
    if h.enabled {
        for (name, value) in [
            ("project_id", &h.project_id),
            ("project_number", &h.project_number),
            ("pool_id", &h.pool_id),
            ("provider_id", &h.provider_id),
            ("location", &h.location),
        ] {
            if value.is_none() {
                return Err(FieldError::new(
                    format!("{P}.{name}"),
                    format!("required while {P}.enabled is true"),
                ));
            }
        }
    }
    Ok(())
}

/// Checks every `models.<id>.gcp_vertex.model_ref`.
pub fn validate_models(s: &LlmSettings) -> Result<(), FieldError> {
    for (model, hosts) in &s.models {
        if let Some(r) = &hosts.gcp_vertex.model_ref {
            check(
                &VERTEX_MODEL,
                &format!("models.{model}.gcp_vertex.model_ref"),
                r,
                "a Vertex AI publisher model id like claude-sonnet-4-5@20250929",
            )?;
        }
    }
    Ok(())
}

/// Where a caller's Vertex AI calls go: the team's project and location, and
/// the pool provider (and service account) its access tokens come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VertexTarget {
    /// The project whose Vertex AI serves (and bills) the call.
    pub project_id: String,
    /// `global` or a region.
    pub location: String,
    /// `x-goog-user-project`, when the team names one.
    pub quota_project: Option<String>,
    /// What the broker exchanges for.
    pub pool: PoolTarget,
}

/// The caller's Vertex AI target: the team's host, with a named agent's
/// override (`inference_providers.gcp`) field by field; `None` when the host
/// is off (validation makes an enabled host complete) or the agent's
/// override is disabled.
pub fn effective_gcp(s: &LlmSettings, agent: Option<&GcpOverride>) -> Option<VertexTarget> {
    let h = &s.hosts.gcp_vertex;
    if !h.enabled || agent.is_some_and(|o| o.disabled) {
        return None;
    }
    let none = GcpOverride::default();
    let o = agent.unwrap_or(&none);
    let pick = |own: &Option<String>, team: &Option<String>| own.clone().or_else(|| team.clone());
    let pool_id = pick(&o.pool_id, &h.pool_id)?;
    let provider_id = pick(&o.provider_id, &h.provider_id)?;
    Some(VertexTarget {
        project_id: pick(&o.project_id, &h.project_id)?,
        location: pick(&o.location, &h.location)?,
        quota_project: h.quota_project.clone(),
        pool: PoolTarget {
            audience: provider_audience(h.project_number.as_deref()?, &pool_id, &provider_id),
            service_account: pick(&o.service_account, &h.service_account),
        },
    })
}

/// Checks a named agent's `inference_providers.gcp`, each field as the
/// team's host field is checked.
pub fn validate_override(o: &GcpOverride) -> Result<(), FieldError> {
    const P: &str = "inference_providers.gcp";
    let probe = GcpVertexHost {
        enabled: false,
        project_id: o.project_id.clone(),
        project_number: None,
        pool_id: o.pool_id.clone(),
        provider_id: o.provider_id.clone(),
        location: o.location.clone(),
        service_account: o.service_account.clone(),
        quota_project: None,
    };
    validate_host(&probe).map_err(|e| {
        let field = e
            .field
            .strip_prefix("hosts.gcp_vertex")
            .map_or_else(|| e.field.clone(), |rest| format!("{P}{rest}"));
        FieldError::new(field, e.message.clone())
    })
}

/// Whether `audience` is the provider a named agent's override names (in
/// either form Google accepts), which that agent may mint for as it may for
/// the team's own.
pub fn is_agent_audience(s: &LlmSettings, agent: &GcpOverride, audience: &str) -> bool {
    if agent.pool_id.is_none() && agent.provider_id.is_none() {
        return false;
    }
    effective_gcp(
        s,
        Some(&GcpOverride {
            disabled: false,
            ..agent.clone()
        }),
    )
    .is_some_and(|t| same_audience(&t.pool.audience, audience))
}

/// `audience` is `own` in the canonical or the `https:` form.
fn same_audience(own: &str, audience: &str) -> bool {
    if audience == own {
        return true;
    }
    let tail = own.strip_prefix(IAM_PREFIX).unwrap_or(own);
    audience
        .strip_prefix(HTTPS_IAM_PREFIX)
        .is_some_and(|rest| rest == tail)
}

/// Whether `audience` is the team's own provider, in the canonical
/// `//iam.googleapis.com/…` form or the `https://iam.googleapis.com/…` form
/// (gcp-facts §1.4). Never true for another team's provider: the name comes
/// from this team's settings only.
pub fn is_team_audience(s: &LlmSettings, audience: &str) -> bool {
    let Some(own) = s.hosts.gcp_vertex.audience() else {
        return false;
    };
    same_audience(&own, audience)
}

#[cfg(test)]
mod tests {
    use byollm_api::types::ModelHosts;

    use super::*;

    fn host() -> GcpVertexHost {
        GcpVertexHost {
            enabled: true,
            project_id: Some("acme-ml-prod".into()),
            project_number: Some("123456789012".into()),
            pool_id: Some("byollm-pool".into()),
            provider_id: Some("byollm-issuer".into()),
            location: Some("global".into()),
            service_account: None,
            quota_project: None,
        }
    }

    #[test]
    fn a_complete_host_validates_and_new_teams_are_off() {
        assert!(validate_host(&host()).is_ok());
        assert!(!LlmSettings::default().hosts.gcp_vertex.enabled);
        assert!(validate_host(&GcpVertexHost::default()).is_ok());
        let with_sa = GcpVertexHost {
            service_account: Some("vertex-caller@acme-ml-prod.iam.gserviceaccount.com".into()),
            location: Some("us-east5".into()),
            ..host()
        };
        assert!(validate_host(&with_sa).is_ok());
    }

    #[test]
    fn each_bad_field_is_named() {
        type Spoil = fn(&mut GcpVertexHost);
        let cases: [(&str, Spoil); 9] = [
            ("hosts.gcp_vertex.project_id", |h| {
                h.project_id = Some("Acme".into())
            }),
            ("hosts.gcp_vertex.project_number", |h| {
                h.project_number = Some("acme-ml-prod".into())
            }),
            ("hosts.gcp_vertex.pool_id", |h| {
                h.pool_id = Some("gcp-pool".into())
            }),
            ("hosts.gcp_vertex.pool_id", |h| h.pool_id = Some("p".into())),
            ("hosts.gcp_vertex.provider_id", |h| {
                h.provider_id = Some("Has_Upper".into())
            }),
            ("hosts.gcp_vertex.location", |h| {
                h.location = Some("mars-north1".into())
            }),
            ("hosts.gcp_vertex.service_account", |h| {
                h.service_account = Some("not-an-email".into())
            }),
            ("hosts.gcp_vertex.quota_project", |h| {
                h.quota_project = Some("x".into())
            }),
            ("hosts.gcp_vertex.location", |h| h.location = None),
        ];
        for (field, spoil) in cases {
            let mut h = host();
            spoil(&mut h);
            let err = validate_host(&h).unwrap_err();
            assert_eq!(err.field, field, "{err}");
        }
        let mut s = LlmSettings::default();
        let mut m = ModelHosts::default();
        m.gcp_vertex.model_ref = Some("claude sonnet".into());
        s.models.insert("claude-sonnet-4-6".into(), m);
        assert_eq!(
            validate_models(&s).unwrap_err().field,
            "models.claude-sonnet-4-6.gcp_vertex.model_ref"
        );
    }

    #[test]
    fn the_team_audience_is_its_own_provider_in_either_form() {
        let mut s = LlmSettings::default();
        let aud = "//iam.googleapis.com/projects/123456789012/locations/global/workloadIdentityPools/byollm-pool/providers/byollm-issuer";
        assert!(!is_team_audience(&s, aud));
        s.hosts.gcp_vertex = host();
        assert!(is_team_audience(&s, aud));
        assert!(is_team_audience(
            &s,
            "https://iam.googleapis.com/projects/123456789012/locations/global/workloadIdentityPools/byollm-pool/providers/byollm-issuer"
        ));
        assert!(!is_team_audience(
            &s,
            "//iam.googleapis.com/projects/123456789012/locations/global/workloadIdentityPools/other/providers/byollm-issuer"
        ));
        assert!(!is_team_audience(&s, "https:"));
    }
}
