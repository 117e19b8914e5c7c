//! Workload identity pools and their OIDC providers under IAM v1's REST
//! paths, as `gcloud iam workload-identity-pools …` calls them (each path
//! read from `gcloud --log-http`):
//!
//! | request | gcloud |
//! |---|---|
//! | `POST …/workloadIdentityPools?workloadIdentityPoolId=ID` | `create` |
//! | `GET …/workloadIdentityPools?showDeleted=…` | `list` |
//! | `GET`, `PATCH ?updateMask=…`, `DELETE` `…/workloadIdentityPools/POOL` | `describe`, `update`, `delete` |
//! | `POST …/workloadIdentityPools/POOL:undelete` | `undelete` |
//! | `POST …/POOL/providers?workloadIdentityPoolProviderId=ID` | `providers create-oidc` |
//! | `GET …/POOL/providers?showDeleted=…` | `providers list` |
//! | `GET`, `PATCH ?updateMask=…`, `DELETE` `…/POOL/providers/PROV` | `providers describe`, `update-oidc`, `delete` |
//! | `POST …/POOL/providers/PROV:undelete` | `providers undelete` |
//! | `GET …/operations/OP` | an operation: always done |
//!
//! Invariants, as Google documents them: a deleted pool or provider is kept
//! with `state: DELETED` (Google keeps it 30 days; here until undeleted):
//! `describe` still shows it, `list` hides it unless `showDeleted=true`, its
//! id cannot be reused (409), and it can be undeleted. A provider exchanges
//! tokens only while it and its pool are both enabled and not deleted
//! ([`GcpState::active_provider`], which STS asks); otherwise STS answers
//! `invalid_target`.

use std::collections::BTreeMap;

use axum::http::Method;
use axum::response::Response;
use serde_json::{Value, json};

use super::resources::{invalid, not_found, operation};
use super::{GcpProvider, GcpState, cel, google_error, json_response};

/// A workload identity pool.
#[derive(Debug, Clone, Default)]
pub(crate) struct Pool {
    display_name: String,
    description: String,
    disabled: bool,
}

impl GcpState {
    /// The provider `name` when it may exchange tokens: it exists, is not
    /// disabled or deleted, and neither is its pool.
    pub(crate) fn active_provider(&self, name: &str) -> Option<GcpProvider> {
        let p = self.provider(name)?;
        let pool = p.pool();
        let deleted = self.deleted.read();
        let pool_ok = self.pools.read().get(&pool).is_some_and(|x| !x.disabled);
        (!p.disabled && pool_ok && !deleted.contains(name) && !deleted.contains(&pool)).then_some(p)
    }

    /// Disables or enables a pool (`pools.patch` of `disabled`); false when
    /// there is no such pool (`projects/NUM/locations/global/workloadIdentityPools/POOL`).
    pub fn set_pool_disabled(&self, pool: &str, disabled: bool) -> bool {
        self.pools
            .write()
            .get_mut(pool)
            .map(|p| p.disabled = disabled)
            .is_some()
    }

    /// Disables or enables a provider; false when there is no such provider.
    pub fn set_provider_disabled(&self, name: &str, disabled: bool) -> bool {
        self.providers
            .write()
            .get_mut(name)
            .map(|p| p.disabled = disabled)
            .is_some()
    }

    fn state_of(&self, name: &str) -> &'static str {
        match self.deleted.read().contains(name) {
            true => "DELETED",
            false => "ACTIVE",
        }
    }

    fn pool_json(&self, name: &str) -> Option<Value> {
        let pools = self.pools.read();
        let p = pools.get(name)?;
        Some(json!({"name": name, "displayName": p.display_name,
                    "description": p.description, "disabled": p.disabled,
                    "state": self.state_of(name)}))
    }

    fn provider_json(&self, name: &str) -> Option<Value> {
        let p = self.provider(name)?;
        let mut v = json!({"name": name, "state": self.state_of(name), "disabled": p.disabled,
            "attributeMapping": p.attribute_mapping,
            "oidc": {"issuerUri": p.issuer_uri, "allowedAudiences": p.allowed_audiences}});
        if let (Some(c), Some(o)) = (&p.attribute_condition, v.as_object_mut()) {
            o.insert("attributeCondition".into(), Value::String(c.clone()));
        }
        Some(v)
    }

    /// Marks `name` deleted (`deleted`) or undeleted; the answer is the
    /// operation gcloud waits on, or Google's refusal.
    fn set_deleted(&self, name: &str, kind: &str, deleted: bool, resource: Value) -> Response {
        let changed = match deleted {
            true => self.deleted.write().insert(name.to_owned()),
            false => self.deleted.write().remove(name),
        };
        if !changed {
            // Deleting twice, or undeleting what is not deleted.
            return google_error(
                400,
                "FAILED_PRECONDITION",
                &format!(
                    "The {} is {}.",
                    if kind == "WorkloadIdentityPool" {
                        "workload identity pool"
                    } else {
                        "workload identity pool provider"
                    },
                    if deleted {
                        "already deleted"
                    } else {
                        "not deleted"
                    }
                ),
            );
        }
        let mut resource = resource;
        if let Some(o) = resource.as_object_mut() {
            o.insert("state".into(), json!(self.state_of(name)));
        }
        operation(name, kind, resource)
    }
}

/// Applies a provider body (create) or its masked fields (patch) to `p`.
fn apply(p: &mut GcpProvider, body: &Value, mask: Option<&[&str]>) -> Result<(), String> {
    let wants = |f: &str| mask.is_none_or(|m| m.contains(&f));
    if wants("attributeMapping") {
        let m = body["attributeMapping"]
            .as_object()
            .ok_or("attributeMapping is required")?;
        p.attribute_mapping = m
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
            .collect();
    }
    if wants("attributeCondition") {
        p.attribute_condition = body["attributeCondition"]
            .as_str()
            .filter(|c| !c.is_empty())
            .map(str::to_owned);
    }
    if wants("disabled") {
        p.disabled = body["disabled"].as_bool().unwrap_or(false);
    }
    if wants("oidc.issuerUri") || wants("oidc") {
        p.issuer_uri = body["oidc"]["issuerUri"]
            .as_str()
            .ok_or("oidc.issuerUri is required")?
            .to_owned();
    }
    if wants("oidc.allowedAudiences") || (mask.is_none() && !body["oidc"].is_null()) {
        p.allowed_audiences = body["oidc"]["allowedAudiences"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
    }
    if p.allowed_audiences.len() > 10 || p.allowed_audiences.iter().any(|a| a.len() > 256) {
        return Err("oidc.allowedAudiences: at most 10, of at most 256 characters each".into());
    }
    for expr in p.attribute_mapping.values() {
        cel::parses(expr).map_err(|e| format!("invalid attribute mapping: {e}"))?;
    }
    Ok(())
}

/// Applies a pool body's masked fields to `p`.
fn apply_pool(p: &mut Pool, body: &Value, mask: Option<&[&str]>) {
    let wants = |f: &str| mask.is_none_or(|m| m.contains(&f));
    let text = |f: &str| body[f].as_str().unwrap_or_default().to_owned();
    if wants("displayName") {
        p.display_name = text("displayName");
    }
    if wants("description") {
        p.description = text("description");
    }
    if wants("disabled") {
        p.disabled = body["disabled"].as_bool().unwrap_or(false);
    }
}

/// `…/workloadIdentityPools[/POOL[/providers[/PROV]]][:undelete]` and their
/// operations; `prefix` is `projects/NUM/locations/global/workloadIdentityPools`.
pub(crate) fn dispatch(
    state: &GcpState,
    method: &Method,
    verb: Option<&str>,
    prefix: &str,
    tail: &[&str],
    param: &dyn Fn(&str) -> Option<String>,
    body: &[u8],
) -> Response {
    let json_body = || serde_json::from_slice::<Value>(body).unwrap_or(Value::Null);
    let show_deleted = param("showDeleted").is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let mask = param("updateMask");
    let mask: Option<Vec<&str>> = mask
        .as_deref()
        .map(|m| m.split(',').map(str::trim).collect());
    match (method.as_str(), tail, verb) {
        ("POST", [], None) => create_pool(state, prefix, param, &json_body()),
        ("GET", [], None) => {
            let names: Vec<String> = state
                .pools
                .read()
                .keys()
                .filter(|n| n.starts_with(&format!("{prefix}/")))
                .cloned()
                .collect();
            list(state, "workloadIdentityPools", &names, show_deleted, |n| {
                state.pool_json(n)
            })
        }
        ("GET", [pool], None) => state
            .pool_json(&format!("{prefix}/{pool}"))
            .map_or_else(not_found, |v| json_response(200, &v)),
        ("PATCH", [pool], None) => {
            let name = format!("{prefix}/{pool}");
            let Some(mask) = &mask else {
                return invalid("updateMask is required.");
            };
            {
                let mut pools = state.pools.write();
                let Some(p) = pools.get_mut(&name) else {
                    return not_found();
                };
                apply_pool(p, &json_body(), Some(mask));
            }
            let v = state.pool_json(&name).unwrap_or(Value::Null);
            operation(&name, "WorkloadIdentityPool", v)
        }
        ("DELETE", [pool], None) | ("POST", [pool], Some("undelete")) => {
            let name = format!("{prefix}/{pool}");
            let Some(v) = state.pool_json(&name) else {
                return not_found();
            };
            state.set_deleted(&name, "WorkloadIdentityPool", verb.is_none(), v)
        }
        ("GET", [.., "operations", _], None) => json_response(
            200,
            &json!({"name": format!("{prefix}/{}", tail.join("/")), "done": true}),
        ),
        ("POST", [pool, "providers"], None) => {
            create_provider(state, prefix, pool, param, &json_body())
        }
        ("GET", [pool, "providers"], None) => {
            let pool_name = format!("{prefix}/{pool}");
            if state.pool_json(&pool_name).is_none() {
                return not_found();
            }
            let names: Vec<String> = state
                .providers
                .read()
                .keys()
                .filter(|n| n.starts_with(&format!("{pool_name}/providers/")))
                .cloned()
                .collect();
            list(
                state,
                "workloadIdentityPoolProviders",
                &names,
                show_deleted,
                |n| state.provider_json(n),
            )
        }
        ("GET", [pool, "providers", prov], None) => state
            .provider_json(&format!("{prefix}/{pool}/providers/{prov}"))
            .map_or_else(not_found, |v| json_response(200, &v)),
        ("PATCH", [pool, "providers", prov], None) => {
            let name = format!("{prefix}/{pool}/providers/{prov}");
            let Some(mut p) = state.provider(&name) else {
                return not_found();
            };
            let Some(mask) = &mask else {
                return invalid("updateMask is required.");
            };
            if let Err(e) = apply(&mut p, &json_body(), Some(mask)) {
                return invalid(&e);
            }
            match state.create_provider(p) {
                Ok(_) => operation(
                    &name,
                    "WorkloadIdentityPoolProvider",
                    state.provider_json(&name).unwrap_or(Value::Null),
                ),
                Err(e) => invalid(&e),
            }
        }
        ("DELETE", [pool, "providers", prov], None)
        | ("POST", [pool, "providers", prov], Some("undelete")) => {
            let name = format!("{prefix}/{pool}/providers/{prov}");
            let Some(v) = state.provider_json(&name) else {
                return not_found();
            };
            state.set_deleted(&name, "WorkloadIdentityPoolProvider", verb.is_none(), v)
        }
        _ => not_found(),
    }
}

/// A list answer: `key` holds the resources (deleted ones only when asked).
fn list(
    state: &GcpState,
    key: &str,
    names: &[String],
    show_deleted: bool,
    render: impl Fn(&str) -> Option<Value>,
) -> Response {
    let items: Vec<Value> = names
        .iter()
        .filter(|n| show_deleted || !state.deleted.read().contains(n.as_str()))
        .filter_map(|n| render(n))
        .collect();
    // Google leaves an empty repeated field out of the answer.
    let body = match items.is_empty() {
        true => json!({}),
        false => json!({ key: items }),
    };
    json_response(200, &body)
}

fn create_pool(
    state: &GcpState,
    prefix: &str,
    param: &dyn Fn(&str) -> Option<String>,
    body: &Value,
) -> Response {
    let Some(id) = param("workloadIdentityPoolId") else {
        return invalid("workloadIdentityPoolId is required.");
    };
    if !valid_id(&id) {
        return invalid(
            "workloadIdentityPoolId must be 4-32 characters of [a-z0-9-], not starting with gcp-.",
        );
    }
    let name = format!("{prefix}/{id}");
    {
        // A deleted pool still holds its id.
        let mut all = state.pools.write();
        if all.contains_key(&name) {
            return google_error(409, "ALREADY_EXISTS", "Requested entity already exists.");
        }
        let mut pool = Pool::default();
        apply_pool(&mut pool, body, None);
        all.insert(name.clone(), pool);
    }
    let v = state.pool_json(&name).unwrap_or(Value::Null);
    operation(&name, "WorkloadIdentityPool", v)
}

fn create_provider(
    state: &GcpState,
    prefix: &str,
    pool: &str,
    param: &dyn Fn(&str) -> Option<String>,
    body: &Value,
) -> Response {
    let pool_name = format!("{prefix}/{pool}");
    if state.pool_json(&pool_name).is_none() {
        return not_found();
    }
    let Some(id) = param("workloadIdentityPoolProviderId") else {
        return invalid("workloadIdentityPoolProviderId is required.");
    };
    if !valid_id(&id) {
        return invalid(
            "workloadIdentityPoolProviderId must be 4-32 characters of [a-z0-9-], not starting with gcp-.",
        );
    }
    let name = format!("{pool_name}/providers/{id}");
    if state.provider(&name).is_some() {
        return google_error(409, "ALREADY_EXISTS", "Requested entity already exists.");
    }
    let number = prefix.split('/').nth(1).unwrap_or_default().to_owned();
    let mut p = GcpProvider {
        project_number: number,
        pool_id: pool.to_owned(),
        provider_id: id,
        issuer_uri: String::new(),
        allowed_audiences: vec![],
        attribute_mapping: BTreeMap::new(),
        attribute_condition: None,
        disabled: false,
    };
    if let Err(e) = apply(&mut p, body, None) {
        return invalid(&e);
    }
    match state.create_provider(p) {
        Ok(_) => operation(
            &name,
            "WorkloadIdentityPoolProvider",
            state.provider_json(&name).unwrap_or(Value::Null),
        ),
        Err(e) => invalid(&e),
    }
}

/// Pool and provider ids: 4-32 characters of `[a-z0-9-]`, `gcp-` reserved.
fn valid_id(id: &str) -> bool {
    (4..=32).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !id.starts_with("gcp-")
}
