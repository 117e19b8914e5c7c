//! The emulated Azure side the Azure gateway tests share: the team's
//! user-assigned managed identity, its federated identity credentials (FICs)
//! and its role assignments on the Foundry resource.

use byollm_cloudsim::azure::{AzureIdentity, Fic, RoleAssignment};

use crate::harness::{Env, ISSUER};

/// The emulated Entra tenant.
pub(crate) const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
/// The managed identity's client id.
pub(crate) const CLIENT: &str = "0d3c1f2e-5b6a-4c8d-9e0f-1a2b3c4d5e6f";
/// The Foundry (AI Services) resource.
pub(crate) const RESOURCE: &str = "acme-ai";

/// `name` on [`RESOURCE`] for the identity.
pub(crate) fn role(name: &str) -> RoleAssignment {
    RoleAssignment {
        client_id: CLIENT.into(),
        role: name.into(),
        resource: RESOURCE.into(),
    }
}

/// The team's subject at granularity `team`.
pub(crate) fn team_subject(env: &Env) -> String {
    format!("scoped_principal:{}", env.team)
}

/// Creates the identity, one FIC per subject of `subjects` (see
/// [`add_fics`]) and each role of `roles` on the resource.
pub(crate) fn identity(env: &Env, subjects: &[String], roles: &[&str]) {
    let az = env.sim.azure();
    az.create_identity(AzureIdentity {
        tenant_id: TENANT.into(),
        client_id: CLIENT.into(),
        name: "byollm-uami".into(),
    })
    .unwrap();
    add_fics(env, "byollm", subjects);
    for r in roles {
        az.assign_role(role(r)).unwrap();
    }
}

/// Adds one FIC per subject, named `{prefix}-{i}`, with the issuer exactly
/// and the one audience Entra's exchange uses.
pub(crate) fn add_fics(env: &Env, prefix: &str, subjects: &[String]) {
    for (i, subject) in subjects.iter().enumerate() {
        env.sim
            .azure()
            .add_fic(
                Fic {
                    client_id: CLIENT.into(),
                    name: format!("{prefix}-{i}"),
                    issuer: ISSUER.into(),
                    subject: subject.clone(),
                    audiences: vec!["api://AzureADTokenExchange".into()],
                },
                0,
            )
            .unwrap();
    }
}
