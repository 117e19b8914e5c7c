//! IAM (query protocol, SigV4 with signing name `iam`, region `us-east-1`): OIDC
//! providers, roles, inline role policies, with IAM's validation and errors
//! (aws-facts §4). The same functions seed state from Rust tests.

use std::sync::Arc;

use axum::response::Response;
use byollm_policy::{Policy, PolicyKind};

use crate::Inner;
use crate::error::{AwsError, validation_message, violation};
use crate::query::{IAM_NS, Params, el, error, ok};
use crate::state::{InlinePolicy, Provider, Role};
use crate::util::{UPPER_ALNUM, iso8601, random_chars, uri_encode, uuid};

/// The IAM operations served.
pub const OPERATIONS: [&str; 14] = [
    "CreateOpenIDConnectProvider",
    "GetOpenIDConnectProvider",
    "ListOpenIDConnectProviders",
    "DeleteOpenIDConnectProvider",
    "AddClientIDToOpenIDConnectProvider",
    "CreateRole",
    "GetRole",
    "UpdateAssumeRolePolicy",
    "UpdateRole",
    "DeleteRole",
    "PutRolePolicy",
    "GetRolePolicy",
    "DeleteRolePolicy",
    "ListRolePolicies",
];

/// Most OIDC providers an account may have.
const MAX_PROVIDERS: usize = 100;

fn validation(v: Vec<String>) -> AwsError {
    AwsError::new(400, "ValidationError", validation_message(&v))
}

fn no_such_role(name: &str) -> AwsError {
    AwsError::new(
        404,
        "NoSuchEntity",
        format!("The role with name {name} cannot be found."),
    )
}

fn check_role_name(name: Option<&str>, field: &str, v: &mut Vec<String>) {
    match name {
        None => v.push(violation(None, field, "Member must not be null")),
        Some(n) if n.is_empty() || n.chars().count() > 64 => v.push(violation(
            Some(n),
            field,
            "Member must have length less than or equal to 64",
        )),
        Some(n)
            if !n
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_+=,.@-".contains(c)) =>
        {
            v.push(violation(
                Some(n),
                field,
                "Member must satisfy regular expression pattern: [\\w+=,.@-]+",
            ))
        }
        Some(_) => {}
    }
}

fn check_policy_name(name: Option<&str>, v: &mut Vec<String>) {
    match name {
        None => v.push(violation(None, "policyName", "Member must not be null")),
        Some(n) if n.is_empty() || n.chars().count() > 128 => v.push(violation(
            Some(n),
            "policyName",
            "Member must have length less than or equal to 128",
        )),
        Some(n)
            if !n
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_+=,.@-".contains(c)) =>
        {
            v.push(violation(
                Some(n),
                "policyName",
                "Member must satisfy regular expression pattern: [\\w+=,.@-]+",
            ))
        }
        Some(_) => {}
    }
}

fn check_max_session(value: Option<i32>, v: &mut Vec<String>) {
    if let Some(d) = value {
        if d < 3600 {
            v.push(violation(
                Some(&d.to_string()),
                "maxSessionDuration",
                "Member must have value greater than or equal to 3600",
            ));
        } else if d > 43200 {
            v.push(violation(
                Some(&d.to_string()),
                "maxSessionDuration",
                "Member must have value less than or equal to 43200",
            ));
        }
    }
}

fn parse_policy(doc: &str, kind: PolicyKind) -> Result<Arc<Policy>, AwsError> {
    if doc.is_empty() || doc.len() > 131_072 {
        return Err(AwsError::new(
            400,
            "MalformedPolicyDocument",
            "The policy document must be between 1 and 131072 characters.",
        ));
    }
    Policy::parse(doc, kind)
        .map(Arc::new)
        .map_err(|e| AwsError::new(400, "MalformedPolicyDocument", e.to_string()))
}

impl Inner {
    /// `CreateOpenIDConnectProvider`.
    pub(crate) fn create_provider(
        &self,
        url: &str,
        client_ids: &[String],
        thumbprints: &[String],
        tags: Vec<(String, String)>,
    ) -> Result<String, AwsError> {
        if url.is_empty() || url.chars().count() > 255 {
            return Err(validation(vec![violation(
                Some(url),
                "url",
                "Member must have length less than or equal to 255",
            )]));
        }
        let Some(host_path) = url.strip_prefix("https://") else {
            return Err(AwsError::new(
                400,
                "InvalidInput",
                format!(
                    "Invalid Openid connect provider url: {url}. The URL must begin with https://"
                ),
            ));
        };
        if host_path.is_empty() || host_path.contains(['?', '#']) || host_path.starts_with('/') {
            return Err(AwsError::new(
                400,
                "InvalidInput",
                format!(
                    "Invalid Openid connect provider url: {url}. The URL may contain a host and a path, not a query or fragment"
                ),
            ));
        }
        if client_ids.len() > 100 {
            return Err(AwsError::new(
                400,
                "LimitExceeded",
                "Cannot exceed quota for ClientIdsPerOpenIdConnectProvider: 100",
            ));
        }
        for id in client_ids {
            if id.is_empty() || id.chars().count() > 255 {
                return Err(validation(vec![violation(
                    Some(id),
                    "clientIDList",
                    "Member must have length between 1 and 255",
                )]));
            }
        }
        if thumbprints.len() > 5 {
            return Err(validation(vec![violation(
                None,
                "thumbprintList",
                "Member must have length less than or equal to 5",
            )]));
        }
        for t in thumbprints {
            if t.len() != 40 || !t.chars().all(|c| c.is_ascii_hexdigit()) {
                return Err(validation(vec![violation(
                    Some(t),
                    "thumbprintList.member",
                    "Member must have length greater than or equal to 40",
                )]));
            }
        }
        let mut iam = self.account.iam.write();
        if iam.providers.contains_key(host_path) {
            return Err(AwsError::new(
                409,
                "EntityAlreadyExists",
                format!("Provider with url {url} already exists."),
            ));
        }
        if iam.providers.len() >= MAX_PROVIDERS {
            return Err(AwsError::new(
                409,
                "LimitExceeded",
                "Cannot exceed quota for OpenIdConnectProvidersPerAccount: 100",
            ));
        }
        let arn = format!("arn:aws:iam::{}:oidc-provider/{host_path}", self.account.id);
        let mut ids: Vec<String> = vec![];
        for id in client_ids {
            if !ids.contains(id) {
                ids.push(id.clone());
            }
        }
        iam.providers.insert(
            host_path.to_owned(),
            Provider {
                host_path: host_path.to_owned(),
                arn: arn.clone(),
                client_ids: ids,
                thumbprints: thumbprints.to_vec(),
                created: self.clock.now(),
                tags,
            },
        );
        Ok(arn)
    }

    fn provider_key(&self, arn: &str) -> Result<String, AwsError> {
        let prefix = format!("arn:aws:iam::{}:oidc-provider/", self.account.id);
        match arn.strip_prefix(&prefix) {
            Some(k) if !k.is_empty() => Ok(k.to_owned()),
            _ if arn.starts_with("arn:aws:iam::") && arn.contains(":oidc-provider/") => {
                Err(no_such_provider(arn))
            }
            _ => Err(AwsError::new(
                400,
                "InvalidInput",
                format!("ARN {arn} is not valid."),
            )),
        }
    }

    pub(crate) fn get_provider(&self, arn: &str) -> Result<Provider, AwsError> {
        let key = self.provider_key(arn)?;
        self.account
            .iam
            .read()
            .providers
            .get(&key)
            .cloned()
            .ok_or_else(|| no_such_provider(arn))
    }

    pub(crate) fn add_client_id(&self, arn: &str, client_id: &str) -> Result<(), AwsError> {
        if client_id.is_empty() || client_id.chars().count() > 255 {
            return Err(validation(vec![violation(
                Some(client_id),
                "clientID",
                "Member must have length between 1 and 255",
            )]));
        }
        let key = self.provider_key(arn)?;
        let mut iam = self.account.iam.write();
        let p = iam
            .providers
            .get_mut(&key)
            .ok_or_else(|| no_such_provider(arn))?;
        if !p.client_ids.iter().any(|c| c == client_id) {
            if p.client_ids.len() >= 100 {
                return Err(AwsError::new(
                    409,
                    "LimitExceeded",
                    "Cannot exceed quota for ClientIdsPerOpenIdConnectProvider: 100",
                ));
            }
            p.client_ids.push(client_id.to_owned());
        }
        Ok(())
    }

    pub(crate) fn delete_provider(&self, arn: &str) -> Result<(), AwsError> {
        let key = self.provider_key(arn)?;
        self.account
            .iam
            .write()
            .providers
            .remove(&key)
            .map(|_| ())
            .ok_or_else(|| no_such_provider(arn))
    }

    /// `CreateRole`.
    pub(crate) fn create_role(
        &self,
        name: &str,
        path: Option<&str>,
        trust_doc: &str,
        description: Option<&str>,
        max_session_duration: Option<i32>,
    ) -> Result<Role, AwsError> {
        let mut v = vec![];
        check_role_name(Some(name), "roleName", &mut v);
        check_max_session(max_session_duration, &mut v);
        let path = path.unwrap_or("/");
        let path_ok = path == "/"
            || (path.len() <= 512
                && path.starts_with('/')
                && path.ends_with('/')
                && path.len() > 2
                && path.bytes().all(|b| (0x21..=0x7e).contains(&b)));
        if !path_ok {
            v.push(violation(Some(path), "path", "Member must satisfy regular expression pattern: (\\u002F)|(\\u002F[\\u0021-\\u007E]+\\u002F)"));
        }
        if let Some(d) = description
            && d.chars().count() > 1000
        {
            v.push(violation(
                Some(d),
                "description",
                "Member must have length less than or equal to 1000",
            ));
        }
        if !v.is_empty() {
            return Err(validation(v));
        }
        let trust = parse_policy(trust_doc, PolicyKind::Resource)?;
        let mut iam = self.account.iam.write();
        if iam.roles.contains_key(&name.to_lowercase()) {
            return Err(AwsError::new(
                409,
                "EntityAlreadyExists",
                format!("Role with name {name} already exists."),
            ));
        }
        let role = Role {
            name: name.to_owned(),
            path: path.to_owned(),
            id: format!("AROA{}", random_chars(17, UPPER_ALNUM)),
            arn: format!("arn:aws:iam::{}:role{path}{name}", self.account.id),
            trust_document: trust_doc.to_owned(),
            trust,
            description: description.map(str::to_owned),
            max_session_duration: max_session_duration.unwrap_or(3600),
            created: self.clock.now(),
            policies: Default::default(),
        };
        iam.roles
            .insert(name.to_lowercase(), Arc::new(role.clone()));
        Ok(role)
    }

    fn with_role<T>(
        &self,
        name: Option<&str>,
        f: impl FnOnce(&mut Role) -> Result<T, AwsError>,
    ) -> Result<T, AwsError> {
        let mut v = vec![];
        check_role_name(name, "roleName", &mut v);
        if !v.is_empty() {
            return Err(validation(v));
        }
        let name = name.unwrap_or_default();
        let mut iam = self.account.iam.write();
        let role = iam
            .roles
            .get_mut(&name.to_lowercase())
            .ok_or_else(|| no_such_role(name))?;
        f(Arc::make_mut(role))
    }

    pub(crate) fn put_role_policy(
        &self,
        role: &str,
        policy_name: &str,
        doc: &str,
    ) -> Result<(), AwsError> {
        let mut v = vec![];
        check_policy_name(Some(policy_name), &mut v);
        if !v.is_empty() {
            return Err(validation(v));
        }
        let policy = parse_policy(doc, PolicyKind::Identity)?;
        self.with_role(Some(role), |r| {
            r.policies.insert(
                policy_name.to_owned(),
                InlinePolicy {
                    document: doc.to_owned(),
                    policy,
                },
            );
            Ok(())
        })
    }

    pub(crate) fn delete_role_policy(&self, role: &str, policy_name: &str) -> Result<(), AwsError> {
        self.with_role(Some(role), |r| {
            r.policies.remove(policy_name).map(|_| ()).ok_or_else(|| {
                AwsError::new(
                    404,
                    "NoSuchEntity",
                    format!("The role policy with name {policy_name} cannot be found."),
                )
            })
        })
    }

    pub(crate) fn update_trust(&self, role: &str, doc: &str) -> Result<(), AwsError> {
        let trust = parse_policy(doc, PolicyKind::Resource)?;
        self.with_role(Some(role), |r| {
            r.trust = trust;
            r.trust_document = doc.to_owned();
            Ok(())
        })
    }

    pub(crate) fn update_role(
        &self,
        role: &str,
        description: Option<&str>,
        max_session_duration: Option<i32>,
    ) -> Result<(), AwsError> {
        let mut v = vec![];
        check_max_session(max_session_duration, &mut v);
        if !v.is_empty() {
            return Err(validation(v));
        }
        self.with_role(Some(role), |r| {
            if let Some(d) = description {
                r.description = Some(d.to_owned());
            }
            if let Some(m) = max_session_duration {
                r.max_session_duration = m;
            }
            Ok(())
        })
    }

    pub(crate) fn delete_role(&self, role: &str) -> Result<(), AwsError> {
        let mut iam = self.account.iam.write();
        let key = role.to_lowercase();
        let r = iam.roles.get(&key).ok_or_else(|| no_such_role(role))?;
        if !r.policies.is_empty() {
            return Err(AwsError::new(
                409,
                "DeleteConflict",
                "Cannot delete entity, must delete policies first.",
            ));
        }
        iam.roles.remove(&key);
        Ok(())
    }

    /// Runs one IAM action.
    pub(crate) fn iam_action(&self, action: &str, p: &Params) -> Response {
        let request_id = uuid();
        match self.iam_inner(action, p) {
            Ok(result) => ok(IAM_NS, action, &result, &request_id),
            Err(e) => error(IAM_NS, &e),
        }
    }

    fn iam_inner(&self, action: &str, p: &Params) -> Result<String, AwsError> {
        let int = |name: &str, field: &str| -> Result<Option<i32>, AwsError> {
            p.get(name)
                .map(|s| {
                    s.parse::<i32>().map_err(|_| {
                        validation(vec![violation(Some(s), field, "Member must be a number")])
                    })
                })
                .transpose()
        };
        let required = |name: &str, field: &str| -> Result<String, AwsError> {
            p.get(name)
                .map(str::to_owned)
                .ok_or_else(|| validation(vec![violation(None, field, "Member must not be null")]))
        };
        match action {
            "CreateOpenIDConnectProvider" => {
                let url = required("Url", "url")?;
                let tags = p
                    .struct_list("Tags", &["Key", "Value"])
                    .into_iter()
                    .map(|kv| {
                        let mut it = kv.into_iter();
                        (
                            it.next().flatten().unwrap_or_default(),
                            it.next().flatten().unwrap_or_default(),
                        )
                    })
                    .collect();
                let arn = self.create_provider(
                    &url,
                    &p.list("ClientIDList"),
                    &p.list("ThumbprintList"),
                    tags,
                )?;
                Ok(el(4, "OpenIDConnectProviderArn", &arn))
            }
            "GetOpenIDConnectProvider" => {
                let arn = required("OpenIDConnectProviderArn", "openIDConnectProviderArn")?;
                let pr = self.get_provider(&arn)?;
                let mut x = el(4, "Url", &pr.host_path);
                x.push_str("    <ClientIDList>\n");
                for c in &pr.client_ids {
                    x.push_str(&el(6, "member", c));
                }
                x.push_str("    </ClientIDList>\n    <ThumbprintList>\n");
                for t in &pr.thumbprints {
                    x.push_str(&el(6, "member", t));
                }
                x.push_str("    </ThumbprintList>\n");
                x.push_str(&el(4, "CreateDate", &iso8601(pr.created)));
                x.push_str("    <Tags>\n");
                for (k, v) in &pr.tags {
                    x.push_str(&format!(
                        "      <member>\n{}{}      </member>\n",
                        el(8, "Key", k),
                        el(8, "Value", v)
                    ));
                }
                x.push_str("    </Tags>\n");
                Ok(x)
            }
            "ListOpenIDConnectProviders" => {
                let iam = self.account.iam.read();
                let mut x = "    <OpenIDConnectProviderList>\n".to_owned();
                for pr in iam.providers.values() {
                    x.push_str(&format!(
                        "      <member>\n{}      </member>\n",
                        el(8, "Arn", &pr.arn)
                    ));
                }
                x.push_str("    </OpenIDConnectProviderList>\n");
                Ok(x)
            }
            "DeleteOpenIDConnectProvider" => {
                let arn = required("OpenIDConnectProviderArn", "openIDConnectProviderArn")?;
                self.delete_provider(&arn)?;
                Ok(String::new())
            }
            "AddClientIDToOpenIDConnectProvider" => {
                let arn = required("OpenIDConnectProviderArn", "openIDConnectProviderArn")?;
                let id = required("ClientID", "clientID")?;
                self.add_client_id(&arn, &id)?;
                Ok(String::new())
            }
            "CreateRole" => {
                let mut v = vec![];
                check_role_name(p.get("RoleName"), "roleName", &mut v);
                if p.get("AssumeRolePolicyDocument").is_none() {
                    v.push(violation(
                        None,
                        "assumeRolePolicyDocument",
                        "Member must not be null",
                    ));
                }
                if !v.is_empty() {
                    return Err(validation(v));
                }
                let role = self.create_role(
                    p.get("RoleName").unwrap_or_default(),
                    p.get("Path"),
                    p.get("AssumeRolePolicyDocument").unwrap_or_default(),
                    p.get("Description"),
                    int("MaxSessionDuration", "maxSessionDuration")?,
                )?;
                Ok(role_xml(&role))
            }
            "GetRole" => {
                let name = required("RoleName", "roleName")?;
                self.with_role(Some(&name), |r| Ok(role_xml(r)))
            }
            "UpdateAssumeRolePolicy" => {
                let name = required("RoleName", "roleName")?;
                let doc = required("PolicyDocument", "policyDocument")?;
                self.update_trust(&name, &doc)?;
                Ok(String::new())
            }
            "UpdateRole" => {
                let name = required("RoleName", "roleName")?;
                self.update_role(
                    &name,
                    p.get("Description"),
                    int("MaxSessionDuration", "maxSessionDuration")?,
                )?;
                Ok(String::new())
            }
            "DeleteRole" => {
                let name = required("RoleName", "roleName")?;
                self.delete_role(&name)?;
                Ok(String::new())
            }
            "PutRolePolicy" => {
                let name = required("RoleName", "roleName")?;
                let policy_name = required("PolicyName", "policyName")?;
                let doc = required("PolicyDocument", "policyDocument")?;
                self.put_role_policy(&name, &policy_name, &doc)?;
                Ok(String::new())
            }
            "GetRolePolicy" => {
                let name = required("RoleName", "roleName")?;
                let policy_name = required("PolicyName", "policyName")?;
                self.with_role(Some(&name), |r| {
                    let pol = r.policies.get(&policy_name).ok_or_else(|| {
                        AwsError::new(
                            404,
                            "NoSuchEntity",
                            format!("The role policy with name {policy_name} cannot be found."),
                        )
                    })?;
                    Ok(format!(
                        "{}{}{}",
                        el(4, "RoleName", &r.name),
                        el(4, "PolicyName", &policy_name),
                        el(4, "PolicyDocument", &uri_encode(&pol.document))
                    ))
                })
            }
            "DeleteRolePolicy" => {
                let name = required("RoleName", "roleName")?;
                let policy_name = required("PolicyName", "policyName")?;
                self.with_role(Some(&name), |r| {
                    r.policies
                        .remove(&policy_name)
                        .map(|_| String::new())
                        .ok_or_else(|| {
                            AwsError::new(
                                404,
                                "NoSuchEntity",
                                format!("The role policy with name {policy_name} cannot be found."),
                            )
                        })
                })
            }
            "ListRolePolicies" => {
                let name = required("RoleName", "roleName")?;
                self.with_role(Some(&name), |r| {
                    let mut x = "    <PolicyNames>\n".to_owned();
                    for n in r.policies.keys() {
                        x.push_str(&el(6, "member", n));
                    }
                    x.push_str("    </PolicyNames>\n    <IsTruncated>false</IsTruncated>\n");
                    Ok(x)
                })
            }
            other => Err(AwsError::new(
                400,
                "InvalidAction",
                format!("Could not find operation {other} for version 2010-05-08"),
            )),
        }
    }
}

fn no_such_provider(arn: &str) -> AwsError {
    AwsError::new(
        404,
        "NoSuchEntity",
        format!("OpenIDConnect Provider not found for arn {arn}"),
    )
}

/// The `<Role>` element. IAM returns policy documents URL-encoded (the CLI
/// decodes them).
fn role_xml(r: &Role) -> String {
    let mut x = "    <Role>\n".to_owned();
    x.push_str(&el(6, "Path", &r.path));
    x.push_str(&el(6, "RoleName", &r.name));
    x.push_str(&el(6, "RoleId", &r.id));
    x.push_str(&el(6, "Arn", &r.arn));
    x.push_str(&el(6, "CreateDate", &iso8601(r.created)));
    x.push_str(&el(
        6,
        "AssumeRolePolicyDocument",
        &uri_encode(&r.trust_document),
    ));
    if let Some(d) = &r.description {
        x.push_str(&el(6, "Description", d));
    }
    x.push_str(&el(
        6,
        "MaxSessionDuration",
        &r.max_session_duration.to_string(),
    ));
    x.push_str("      <RoleLastUsed/>\n    </Role>\n");
    x
}
