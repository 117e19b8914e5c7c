//! Microsoft Azure on the same port (`reference/azure-facts.md` is the
//! specification): Entra's token endpoint for the client-credentials grant
//! with a federated client assertion, matching the federated identity
//! credentials (FICs) of managed identities or app registrations exactly as
//! Entra does, and answering Entra's `AADSTS` errors ([`entra`]).
//!
//! | path | service |
//! |---|---|
//! | `POST /{tenant}/oauth2/v2.0/token` | Entra's token endpoint ([`entra`]) |
//! | `POST /_awsim/azure/identities` | control: an identity (`{"tenantId", "clientId", "name"}`) |
//! | `POST /_awsim/azure/fics` | control: an FIC (`{"clientId", "name", "issuer", "subject", "audiences"}`) |
//! | `POST /_azure/{resource}/anthropic/v1/messages` | Claude in Azure AI Foundry on `{resource}.services.ai.azure.com` ([`foundry`]) |
//! | `POST /_awsim/azure/role-assignments` | control: a data-plane role (`{"clientId", "role", "resource"}`) |
//! | `POST /_azure/{resource}/openai/v1/chat/completions` | Azure OpenAI v1 on `{resource}.openai.azure.com` ([`openai`]) |
//! | `POST /_azure/{resource}/openai/deployments/{deployment}/chat/completions?api-version=…` | Azure OpenAI, classic ([`openai`]) |
//! | `POST /_awsim/azure/deployments` | control: a model deployment (`{"resource", "name", "model"}`) |
//!
//! Invariants: an FIC matches by exact, case-sensitive string equality on
//! issuer, subject and audience (no wildcards); an identity holds at most
//! [`MAX_FICS`]; issued access tokens are opaque, live in memory with their
//! identity and expiry on the emulator's clock, and are what the later
//! inference endpoints check ([`AzureState::token`]); every inference call
//! checks the token and a role assignment on the resource for its identity
//! (never "any valid token").

mod entra;
mod foundry;
mod openai;

use std::collections::{BTreeMap, HashMap};

use axum::response::Response;
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::gcp::json_response;

/// Counter and fault scope of the token endpoint.
pub const TOKEN_OP: &str = "azure:entra.token";
/// Counter and fault scope of Foundry's Anthropic Messages endpoint.
pub const FOUNDRY_MESSAGES_OP: &str = "azure:foundry.messages";
/// Counter and fault scope of Azure OpenAI's Chat Completions (v1 and
/// classic paths alike).
pub const OPENAI_CHAT_OP: &str = "azure:openai.chat_completions";
/// The role OpenAI models need (azure-facts §3.5).
pub const COGNITIVE_SERVICES_OPENAI_USER: &str = "Cognitive Services OpenAI User";
/// A role that includes the OpenAI User's data actions.
pub const COGNITIVE_SERVICES_OPENAI_CONTRIBUTOR: &str = "Cognitive Services OpenAI Contributor";
/// The role Claude and other Foundry models need (azure-facts §3.5).
pub const AZURE_AI_USER: &str = "Azure AI User";
/// The legacy role that also grants Foundry models (azure-facts §3.5).
pub const COGNITIVE_SERVICES_USER: &str = "Cognitive Services User";
/// Most FICs one identity holds (azure-facts §3.1).
pub const MAX_FICS: usize = 20;
/// Lifetime of issued access tokens unless the credential-lifetime knob is
/// set (Entra's live 60–90 minutes; the emulator answers the usual
/// `expires_in` of a fresh one).
pub const TOKEN_LIFETIME_SECS: i64 = 3599;

/// A user-assigned managed identity or app registration: what `client_id`
/// names in a token request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AzureIdentity {
    /// The Entra tenant (directory) id.
    pub tenant_id: String,
    /// Its client id.
    pub client_id: String,
    /// Its display name.
    pub name: String,
}

/// A federated identity credential, as `az identity federated-credential
/// create` takes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Fic {
    /// The identity it belongs to.
    pub client_id: String,
    /// 3–120 characters, unique per identity.
    pub name: String,
    /// Exactly the assertions' `iss`.
    pub issuer: String,
    /// Exactly the assertions' `sub` (case-sensitive).
    pub subject: String,
    /// Exactly one value, `api://AzureADTokenExchange`.
    pub audiences: Vec<String>,
}

/// An access token the emulator issued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AzureIssued {
    /// The identity it acts as.
    pub client_id: String,
    /// Its tenant.
    pub tenant_id: String,
    /// The scope granted (`https://cognitiveservices.azure.com/.default`).
    pub scope: String,
    /// The assertion's subject (what the FIC matched).
    pub subject: String,
    /// Expiry, Unix seconds.
    pub expires: i64,
}

/// A data-plane role assignment, as `az role assignment create` makes it:
/// `role` for the identity `client_id` on the resource `resource`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RoleAssignment {
    /// The identity (its client id) the role is granted to.
    pub client_id: String,
    /// The role's name (`Azure AI User`, `Cognitive Services OpenAI User`).
    pub role: String,
    /// The resource's bare name (`acme-ai`).
    pub resource: String,
}

/// A model deployment on a resource, as `az cognitiveservices account
/// deployment create` makes it: callers name `name`, Azure serves `model`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Deployment {
    /// The resource's bare name (`acme-ai`).
    pub resource: String,
    /// The deployment's name, unique per resource (`gpt-4.1`, `prod-gpt`).
    pub name: String,
    /// The catalog model it serves (`gpt-4.1`): one with an `azure_openai`
    /// entry.
    pub model: String,
}

#[derive(Debug, Clone)]
struct StoredFic {
    fic: Fic,
    /// Exchanges see it from here (Unix seconds): a new FIC takes a while.
    visible_from: i64,
}

/// Azure's part of the emulator.
#[derive(Debug, Default)]
pub struct AzureState {
    identities: RwLock<BTreeMap<String, AzureIdentity>>,
    fics: RwLock<Vec<StoredFic>>,
    tokens: RwLock<HashMap<String, AzureIssued>>,
    roles: RwLock<Vec<RoleAssignment>>,
    deployments: RwLock<Vec<Deployment>>,
    /// Seconds a new FIC stays invisible to exchanges (default 0).
    propagation_secs: RwLock<i64>,
}

impl AzureState {
    /// Creates (or replaces) an identity.
    pub fn create_identity(&self, identity: AzureIdentity) -> Result<(), String> {
        if identity.tenant_id.is_empty() || identity.client_id.is_empty() {
            return Err("tenantId and clientId are required".into());
        }
        self.identities
            .write()
            .insert(identity.client_id.clone(), identity);
        Ok(())
    }

    /// Adds an FIC at `now` (Unix seconds), checked as Azure's resource
    /// provider checks it: an existing identity, a 3–120 character name,
    /// exactly one audience, a unique name and issuer+subject pair, at most
    /// [`MAX_FICS`]. A wrong subject is accepted: it only fails at exchange.
    pub fn add_fic(&self, fic: Fic, now: i64) -> Result<(), String> {
        if !self.identities.read().contains_key(&fic.client_id) {
            return Err(format!("no identity with client id {}", fic.client_id));
        }
        if !(3..=120).contains(&fic.name.chars().count()) {
            return Err("The federated identity credential name must be 3-120 characters".into());
        }
        if fic.audiences.len() != 1 {
            return Err("Federated identity credentials must have exactly one audience.".into());
        }
        for (what, v) in [("issuer", &fic.issuer), ("subject", &fic.subject)] {
            if v.is_empty() || v.chars().count() > 600 {
                return Err(format!("The {what} must be 1-600 characters"));
            }
        }
        let delay = *self.propagation_secs.read();
        let mut all = self.fics.write();
        let own: Vec<&StoredFic> = all
            .iter()
            .filter(|f| f.fic.client_id == fic.client_id)
            .collect();
        if own.iter().any(|f| f.fic.name == fic.name) {
            return Err(format!(
                "A federated identity credential named {} already exists",
                fic.name
            ));
        }
        if own
            .iter()
            .any(|f| f.fic.issuer == fic.issuer && f.fic.subject == fic.subject)
        {
            return Err(
                "A federated identity credential with this issuer and subject already exists"
                    .into(),
            );
        }
        if own.len() >= MAX_FICS {
            return Err(format!(
                "An identity can hold at most {MAX_FICS} federated identity credentials"
            ));
        }
        all.push(StoredFic {
            fic,
            visible_from: now.saturating_add(delay),
        });
        Ok(())
    }

    /// Grants a role (idempotent); the identity must exist.
    pub fn assign_role(&self, assignment: RoleAssignment) -> Result<(), String> {
        if !self.identities.read().contains_key(&assignment.client_id) {
            return Err(format!(
                "no identity with client id {}",
                assignment.client_id
            ));
        }
        if assignment.role.is_empty() || assignment.resource.is_empty() {
            return Err("role and resource are required".into());
        }
        let mut all = self.roles.write();
        if !all.contains(&assignment) {
            all.push(assignment);
        }
        Ok(())
    }

    /// Revokes a role assignment.
    pub fn remove_role(&self, assignment: &RoleAssignment) {
        self.roles.write().retain(|a| a != assignment);
    }

    /// Whether `client_id` holds `role` on `resource`.
    pub fn has_role(&self, client_id: &str, role: &str, resource: &str) -> bool {
        self.roles
            .read()
            .iter()
            .any(|a| a.client_id == client_id && a.role == role && a.resource == resource)
    }

    /// Creates (or replaces) a deployment of an Azure OpenAI catalog model;
    /// `Err` names the field that is wrong.
    pub fn create_deployment(&self, deployment: Deployment) -> Result<(), String> {
        for (field, v) in [
            ("resource", &deployment.resource),
            ("name", &deployment.name),
        ] {
            // Azure's deployment and account names: letters, digits, `-`,
            // `_`, `.`, and no `/` (they are path segments here).
            let ok = !v.is_empty()
                && v.len() <= 64
                && v.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
            if !ok {
                return Err(format!(
                    "{field}: must be 1-64 letters, digits, '-', '_' or '.'"
                ));
            }
        }
        let known = byollm_api::catalog::Catalog::builtin()
            .get(&deployment.model)
            .is_some_and(|m| m.azure_openai.is_some());
        if !known {
            return Err(format!(
                "model: `{}` is not an Azure OpenAI model of the catalog",
                deployment.model
            ));
        }
        let mut all = self.deployments.write();
        all.retain(|d| !(d.resource == deployment.resource && d.name == deployment.name));
        all.push(deployment);
        Ok(())
    }

    /// Deletes a deployment.
    pub fn remove_deployment(&self, resource: &str, name: &str) {
        self.deployments
            .write()
            .retain(|d| !(d.resource == resource && d.name == name));
    }

    /// The deployment `name` on `resource`, if it exists.
    pub fn deployment(&self, resource: &str, name: &str) -> Option<Deployment> {
        self.deployments
            .read()
            .iter()
            .find(|d| d.resource == resource && d.name == name)
            .cloned()
    }

    /// Deletes an identity's FIC by name.
    pub fn remove_fic(&self, client_id: &str, name: &str) {
        self.fics
            .write()
            .retain(|f| !(f.fic.client_id == client_id && f.fic.name == name));
    }

    /// An identity's FICs, in creation order.
    pub fn fics(&self, client_id: &str) -> Vec<Fic> {
        self.fics
            .read()
            .iter()
            .filter(|f| f.fic.client_id == client_id)
            .map(|f| f.fic.clone())
            .collect()
    }

    /// New FICs stay invisible to exchanges for `secs` (Entra's propagation).
    pub fn set_propagation_secs(&self, secs: i64) {
        *self.propagation_secs.write() = secs;
    }

    /// The identity an issued access token acts as, if it exists (expired
    /// ones too: the caller compares `expires` with its clock).
    pub fn token(&self, token: &str) -> Option<AzureIssued> {
        self.tokens.read().get(token).cloned()
    }

    /// How many access tokens were issued and are still remembered.
    pub fn issued_count(&self) -> usize {
        self.tokens.read().len()
    }

    /// Expires every access token issued so far.
    pub fn expire_tokens(&self) {
        for t in self.tokens.write().values_mut() {
            t.expires = i64::MIN;
        }
    }

    pub(crate) fn identity(&self, client_id: &str) -> Option<AzureIdentity> {
        self.identities.read().get(client_id).cloned()
    }

    pub(crate) fn visible_fics(&self, client_id: &str, now: i64) -> Vec<Fic> {
        self.fics
            .read()
            .iter()
            .filter(|f| f.fic.client_id == client_id && f.visible_from <= now)
            .map(|f| f.fic.clone())
            .collect()
    }

    pub(crate) fn has_tenant(&self, tenant_id: &str) -> bool {
        self.identities
            .read()
            .values()
            .any(|i| i.tenant_id == tenant_id)
    }

    pub(crate) fn issue(&self, token: String, issued: AzureIssued, now: i64) {
        let mut all = self.tokens.write();
        all.retain(|_, t| t.expires.saturating_add(3600) > now);
        all.insert(token, issued);
    }
}

/// `POST /_awsim/azure/identities`, `/_awsim/azure/fics`,
/// `/_awsim/azure/role-assignments` and `/_awsim/azure/deployments`.
pub(crate) fn control(state: &AzureState, what: &str, body: &[u8], now: i64) -> Response {
    let bad =
        |e: String| json_response(400, &json!({"error": {"code": "BadRequest", "message": e}}));
    match what {
        "identities" => match serde_json::from_slice::<AzureIdentity>(body) {
            Ok(i) => match state.create_identity(i) {
                Ok(()) => json_response(200, &json!({})),
                Err(e) => bad(e),
            },
            Err(e) => bad(e.to_string()),
        },
        "fics" => match serde_json::from_slice::<Fic>(body) {
            Ok(f) => match state.add_fic(f, now) {
                Ok(()) => json_response(200, &json!({})),
                Err(e) => bad(e),
            },
            Err(e) => bad(e.to_string()),
        },
        "role-assignments" => match serde_json::from_slice::<RoleAssignment>(body) {
            Ok(a) => match state.assign_role(a) {
                Ok(()) => json_response(200, &json!({})),
                Err(e) => bad(e),
            },
            Err(e) => bad(e.to_string()),
        },
        "deployments" => match serde_json::from_slice::<Deployment>(body) {
            Ok(d) => match state.create_deployment(d) {
                Ok(()) => json_response(200, &json!({})),
                Err(e) => bad(e),
            },
            Err(e) => bad(e.to_string()),
        },
        _ => json_response(
            404,
            &json!({"error": {"code": "NotFound", "message": "unknown control resource"}}),
        ),
    }
}

/// Routes `POST /{tenant}/oauth2/v2.0/token`, `POST
/// /_azure/{resource}/anthropic/v1/messages` and Azure OpenAI's `POST
/// /_azure/{resource}/openai/v1/chat/completions` and `POST
/// /_azure/{resource}/openai/deployments/{deployment}/chat/completions`;
/// `None` when the path is none of them.
pub(crate) async fn dispatch(
    inner: &crate::Inner,
    method: &axum::http::Method,
    path: &str,
    query: &str,
    headers: &axum::http::HeaderMap,
    body: &[u8],
) -> Option<Response> {
    if method != axum::http::Method::POST {
        return None;
    }
    if let Some(rest) = path.strip_prefix("/_azure/") {
        let (resource, rest) = rest.split_once('/')?;
        if resource.is_empty() {
            return None;
        }
        if rest == "anthropic/v1/messages" {
            return Some(inner.foundry_messages(resource, headers, body));
        }
        if rest == "openai/v1/chat/completions" {
            return Some(inner.azure_openai_chat(resource, None, query, headers, body));
        }
        let deployment = rest
            .strip_prefix("openai/deployments/")?
            .strip_suffix("/chat/completions")?;
        if deployment.is_empty() || deployment.contains('/') {
            return None;
        }
        return Some(inner.azure_openai_chat(resource, Some(deployment), query, headers, body));
    }
    let tenant = path.strip_prefix('/')?.strip_suffix("/oauth2/v2.0/token")?;
    if tenant.is_empty() || tenant.contains('/') {
        return None;
    }
    Some(inner.entra_token(tenant, body).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fic(name: &str, subject: &str) -> Fic {
        Fic {
            client_id: "c".into(),
            name: name.into(),
            issuer: "https://issuer.test".into(),
            subject: subject.into(),
            audiences: vec!["api://AzureADTokenExchange".into()],
        }
    }

    #[test]
    fn fics_are_checked_as_azure_checks_them() {
        let s = AzureState::default();
        assert!(s.add_fic(fic("team", "scoped_principal:t"), 0).is_err());
        s.create_identity(AzureIdentity {
            tenant_id: "t".into(),
            client_id: "c".into(),
            name: "uami".into(),
        })
        .unwrap();
        s.add_fic(fic("team", "scoped_principal:t"), 0).unwrap();
        assert!(s.add_fic(fic("team", "other"), 0).is_err(), "same name");
        assert!(
            s.add_fic(fic("again", "scoped_principal:t"), 0).is_err(),
            "same issuer and subject"
        );
        let mut two = fic("two", "x");
        two.audiences.push("api://other".into());
        assert_eq!(
            s.add_fic(two, 0).unwrap_err(),
            "Federated identity credentials must have exactly one audience."
        );
        for i in 1..MAX_FICS {
            s.add_fic(fic(&format!("fic-{i}"), &format!("s{i}")), 0)
                .unwrap();
        }
        assert!(s.add_fic(fic("one-more", "s-last"), 0).is_err(), "21st");
        s.set_propagation_secs(60);
        s.remove_fic("c", "fic-1");
        s.add_fic(fic("late", "late"), 100).unwrap();
        assert!(!s.visible_fics("c", 159).iter().any(|f| f.name == "late"));
        assert!(s.visible_fics("c", 160).iter().any(|f| f.name == "late"));
    }
}
