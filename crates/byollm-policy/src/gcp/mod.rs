//! Google Cloud's side of a team's setup (issue 17, gcp-facts §1): the
//! workload identity pool and OIDC provider with byollm's attribute mapping
//! and an attribute condition for the chosen scope, the IAM bindings, and the
//! same resources as a bash script of `gcloud` commands ([`script`]) or
//! Terraform ([`terraform`]); the CEL that evaluates mappings and conditions
//! ([`condition`]); and which subjects a provider admits ([`explain`]).
//!
//! Invariants: the generated setup always writes an attribute condition (a
//! provider without one accepts every token of byollm's multi-tenant issuer,
//! any team's); every value a generator writes was checked here against a
//! grammar with no quote, `$`, wildcard or whitespace, so it is safe inside
//! single quotes, CEL string literals and HCL strings. Output is deterministic.

pub mod condition;
pub mod explain;
pub mod script;
pub mod terraform;

use std::collections::BTreeMap;

use crate::generate::{Actor, GenerateError, Issuer, TrustScope};

/// The role Vertex AI prediction needs (`aiplatform.endpoints.predict`).
pub const AIPLATFORM_USER: &str = "roles/aiplatform.user";
/// The role a federated principal needs for quota attribution
/// (`x-goog-user-project`, gcp-facts §1.6).
pub const SERVICE_USAGE_CONSUMER: &str = "roles/serviceusage.serviceUsageConsumer";
/// The role that lets a principal impersonate a service account.
pub const WORKLOAD_IDENTITY_USER: &str = "roles/iam.workloadIdentityUser";
/// The scheme-less prefix of IAM resource names.
pub const IAM_PREFIX: &str = "//iam.googleapis.com/";

/// The token claims the mapping reads (`byollm_core::identity::jwt::Claims`).
pub const TEAM_CLAIM: &str = "team";
/// `user` or `service_account`.
pub const ACTOR_TYPE_CLAIM: &str = "actor_type";
/// The member's or agent's uid.
pub const PRINCIPAL_UID_CLAIM: &str = "principal_uid";

/// One Google setup: where the pool lives, whose tokens it admits, and whether
/// the team impersonates a service account.
#[derive(Debug, Clone)]
pub struct GcpSetup {
    /// The issuer tokens carry (`iss`), the provider's `issuerUri`.
    pub issuer: Issuer,
    /// The team uid the condition admits.
    pub team_uid: String,
    /// The project billed for inference (and holding the pool).
    pub project_id: String,
    /// Its number, which names the pool in principals and audiences.
    pub project_number: String,
    /// The workload identity pool id.
    pub pool_id: String,
    /// The OIDC provider id.
    pub provider_id: String,
    /// Whom the condition admits.
    pub scope: TrustScope,
    /// A service account to impersonate; `None`: direct federated access.
    pub service_account: Option<String>,
}

impl GcpSetup {
    /// Checks every value against a grammar safe for the generators. The
    /// settings' own validation (`byollm_core::settings_gcp`) names fields;
    /// this one guards the output.
    pub fn validate(&self) -> Result<(), GenerateError> {
        crate::generate::validate_uid("team", &self.team_uid)?;
        let id = |what: &'static str,
                  v: &str,
                  extra: &str,
                  len: std::ops::RangeInclusive<usize>| {
            let ok = len.contains(&v.len())
                && v.chars().all(|c| {
                    c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || extra.contains(c)
                });
            match ok {
                true => Ok(()),
                false => Err(GenerateError::Gcp(what, v.to_owned())),
            }
        };
        id("project id", &self.project_id, "", 6..=30)?;
        if !self.project_number.bytes().all(|b| b.is_ascii_digit())
            || self.project_number.is_empty()
            || self.project_number.len() > 20
        {
            return Err(GenerateError::Gcp(
                "project number",
                self.project_number.clone(),
            ));
        }
        id("pool id", &self.pool_id, "", 4..=32)?;
        id("provider id", &self.provider_id, "", 4..=32)?;
        for (what, v) in [
            ("pool id", &self.pool_id),
            ("provider id", &self.provider_id),
        ] {
            if v.starts_with("gcp-") {
                return Err(GenerateError::Gcp(what, v.clone()));
            }
        }
        if let Some(sa) = &self.service_account {
            id("service account", sa, "@.", 6..=254)?;
            if !sa.ends_with(".gserviceaccount.com") || sa.matches('@').count() != 1 {
                return Err(GenerateError::Gcp("service account", sa.clone()));
            }
        }
        Ok(())
    }

    /// `projects/NUMBER/locations/global/workloadIdentityPools/POOL`.
    pub fn pool_name(&self) -> String {
        format!(
            "projects/{}/locations/global/workloadIdentityPools/{}",
            self.project_number, self.pool_id
        )
    }

    /// The provider's full resource name: the tokens' audience
    /// (`hosts.gcp_vertex`'s audience).
    pub fn audience(&self) -> String {
        format!(
            "{IAM_PREFIX}{}/providers/{}",
            self.pool_name(),
            self.provider_id
        )
    }

    /// The principal set the roles are granted to: the team's attribute.
    pub fn team_principal_set(&self) -> String {
        format!(
            "principalSet:{IAM_PREFIX}{}/attribute.{TEAM_CLAIM}/{}",
            self.pool_name(),
            self.team_uid
        )
    }

    /// The attribute mapping byollm's setup writes.
    pub fn attribute_mapping(&self) -> BTreeMap<String, String> {
        attribute_mapping()
    }

    /// The attribute condition for the scope.
    pub fn attribute_condition(&self) -> String {
        attribute_condition(&self.team_uid, &self.scope)
    }

    /// The mapping as gcloud's `--attribute-mapping` takes it (`K=V,…`).
    pub fn mapping_flag(&self) -> String {
        self.attribute_mapping()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The roles granted on the project, and to whom: the team's principal
    /// set (direct access), or the service account it impersonates.
    pub fn project_grants(&self) -> Vec<(&'static str, String)> {
        let member = match &self.service_account {
            Some(sa) => format!("serviceAccount:{sa}"),
            None => self.team_principal_set(),
        };
        vec![
            (AIPLATFORM_USER, member.clone()),
            (SERVICE_USAGE_CONSUMER, member),
        ]
    }

    /// A one-line description for the pool and provider.
    pub fn description(&self) -> String {
        format!(
            "byollm: Vertex AI inference for team {} (scope {})",
            self.team_uid, self.scope
        )
    }
}

/// `google.subject` from `sub`, and the `team` and `actor_type` claims as
/// attributes (usable in conditions and `principalSet://…/attribute.team/T`).
pub fn attribute_mapping() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("google.subject".to_owned(), "assertion.sub".to_owned()),
        (
            format!("attribute.{TEAM_CLAIM}"),
            format!("assertion.{TEAM_CLAIM}"),
        ),
        (
            format!("attribute.{ACTOR_TYPE_CLAIM}"),
            format!("assertion.{ACTOR_TYPE_CLAIM}"),
        ),
    ])
}

/// The CEL condition admitting `scope` of `team`: always pinned to the team.
pub fn attribute_condition(team: &str, scope: &TrustScope) -> String {
    let team_is = format!("assertion.{TEAM_CLAIM} == '{team}'");
    let actor_is = |a: Actor| format!("assertion.{ACTOR_TYPE_CLAIM} == '{}'", a.subject_type());
    match scope {
        TrustScope::Team => team_is,
        TrustScope::Users => format!("{team_is} && {}", actor_is(Actor::User)),
        TrustScope::Agents => format!("{team_is} && {}", actor_is(Actor::Agent)),
        TrustScope::Named(list) => {
            let mut parts = Vec::new();
            for actor in [Actor::User, Actor::Agent] {
                let uids: Vec<String> = list
                    .iter()
                    .filter(|(a, _)| *a == actor)
                    .map(|(_, u)| format!("'{u}'"))
                    .collect();
                if !uids.is_empty() {
                    parts.push(format!(
                        "({} && assertion.{PRINCIPAL_UID_CLAIM} in [{}])",
                        actor_is(actor),
                        uids.join(", ")
                    ));
                }
            }
            match parts.as_slice() {
                [one] => format!("{team_is} && {one}"),
                _ => format!("{team_is} && ({})", parts.join(" || ")),
            }
        }
    }
}

/// Single-quotes for bash (the generate module's quoting).
pub(crate) fn quote(s: &str) -> String {
    crate::generate::shell_quote(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn setup(scope: &str, sa: Option<&str>) -> GcpSetup {
        GcpSetup {
            issuer: Issuer::parse("https://byollm.example.com").unwrap(),
            team_uid: "t1".into(),
            project_id: "acme-ml-prod".into(),
            project_number: "123456789012".into(),
            pool_id: "byollm-pool".into(),
            provider_id: "byollm-issuer".into(),
            scope: scope.parse().unwrap(),
            service_account: sa.map(str::to_owned),
        }
    }

    #[test]
    fn conditions_per_scope() {
        assert_eq!(
            setup("team", None).attribute_condition(),
            "assertion.team == 't1'"
        );
        assert_eq!(
            setup("users", None).attribute_condition(),
            "assertion.team == 't1' && assertion.actor_type == 'user'"
        );
        assert_eq!(
            setup("agent:a1,a2", None).attribute_condition(),
            "assertion.team == 't1' && (assertion.actor_type == 'service_account' && assertion.principal_uid in ['a1', 'a2'])"
        );
        assert_eq!(
            setup("user:u1,agent:a1", None).attribute_condition(),
            "assertion.team == 't1' && ((assertion.actor_type == 'user' && assertion.principal_uid in ['u1']) || (assertion.actor_type == 'service_account' && assertion.principal_uid in ['a1']))"
        );
        let s = setup("team", None);
        assert_eq!(
            s.audience(),
            "//iam.googleapis.com/projects/123456789012/locations/global/workloadIdentityPools/byollm-pool/providers/byollm-issuer"
        );
        assert_eq!(
            s.team_principal_set(),
            "principalSet://iam.googleapis.com/projects/123456789012/locations/global/workloadIdentityPools/byollm-pool/attribute.team/t1"
        );
        assert!(s.validate().is_ok());
    }

    #[test]
    fn validation_refuses_what_could_break_out() {
        let mut s = setup(
            "team",
            Some("sa-byollm@acme-ml-prod.iam.gserviceaccount.com"),
        );
        assert!(s.validate().is_ok());
        s.project_id = "acme'$(id)".into();
        assert!(s.validate().is_err());
        let mut s = setup("team", None);
        s.pool_id = "gcp-pool".into();
        assert!(s.validate().is_err());
        s.pool_id = "Pool".into();
        assert!(s.validate().is_err());
        let mut s = setup("team", None);
        s.project_number = "12a".into();
        assert!(s.validate().is_err());
        let s = setup("team", Some("x@example.com"));
        assert!(s.validate().is_err());
    }
}
