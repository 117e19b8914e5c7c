//! Generators for the AWS side of a team's setup (DESIGN §7): trust policy,
//! permissions policy, and the same resources as a bash script of `aws iam`
//! commands, as Terraform and as CloudFormation.
//!
//! Inputs are validated here, once, so that nothing a generator writes can carry a
//! wildcard, a quote or a shell metacharacter the admin did not intend: uids,
//! account ids, regions, role names and issuer URLs each have a strict grammar.
//! Admins paste the output into their AWS account, so every byte is deterministic
//! (snapshot-tested).

pub mod cloudformation;
pub mod permissions;
pub mod script;
pub mod terraform;
pub mod trust;

use std::fmt;
use std::str::FromStr;

pub use permissions::{Grant, ModelProfile, PermissionsOptions, permissions_policy};
pub use trust::{TrustOptions, trust_policy};

/// The audience AWS STS expects in web-identity tokens (DESIGN §3).
pub const STS_AUDIENCE: &str = "sts.amazonaws.com";

/// The Bedrock actions the permissions policy grants: InvokeModel also covers
/// Converse, InvokeModelWithResponseStream also covers ConverseStream
/// (aws-facts §5.2).
pub const INVOKE_ACTIONS: [&str; 2] = [
    "bedrock:InvokeModel",
    "bedrock:InvokeModelWithResponseStream",
];

/// Why a generator refused its input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GenerateError {
    /// The issuer URL cannot be an IAM OIDC provider URL.
    #[error("invalid issuer URL `{url}`: {reason}")]
    Issuer {
        /// As given.
        url: String,
        /// Why.
        reason: &'static str,
    },
    /// Not a 12-digit AWS account id.
    #[error("invalid AWS account id `{0}`: expected 12 digits")]
    Account(String),
    /// A team, user or agent uid with characters that would change a pattern.
    #[error("invalid {what} uid `{uid}`: use letters, digits and . _ - @ + = only")]
    Uid {
        /// `team`, `user` or `agent`.
        what: &'static str,
        /// As given.
        uid: String,
    },
    /// A `--scope` that is not one of the forms.
    #[error("invalid scope `{0}`: expected team, users, agents, or user:UID,… / agent:UID,…")]
    Scope(String),
    /// A subject template that the server does not mint.
    #[error(
        "invalid subject template `{0}`: expected scoped_principal, optionally followed by run_id"
    )]
    SubjectTemplate(String),
    /// Not an AWS region name.
    #[error("invalid AWS region `{0}`: expected a name like us-east-1")]
    Region(String),
    /// Not an IAM role (or policy) name.
    #[error(
        "invalid IAM {what} name `{name}`: 1-{max} characters of letters, digits and + = , . @ _ -"
    )]
    Name {
        /// `role` or `policy`.
        what: &'static str,
        /// As given.
        name: String,
        /// Its maximum length.
        max: usize,
    },
    /// A Google Cloud id, number or service account outside its grammar.
    #[error("invalid Google Cloud {0} `{1}`")]
    Gcp(&'static str, String),
    /// An Azure id or name outside its grammar.
    #[error("invalid Azure {what} `{value}`: expected {expected}")]
    Azure {
        /// What was given (`subscription id`, `resource group`, …).
        what: &'static str,
        /// As given.
        value: String,
        /// The form Azure takes.
        expected: &'static str,
    },
    /// A model profile that cannot be granted.
    #[error("invalid model profile `{0}`: {1}")]
    Model(String, &'static str),
}

/// An OIDC issuer as IAM sees it: the provider URL, and that URL without
/// `https://` — the condition-key prefix and the `oidc-provider/` ARN suffix
/// (aws-facts §2, §3.2). Path and trailing slash are kept exactly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issuer {
    url: String,
    host_path: String,
}

impl Issuer {
    /// Validates an issuer URL: `https://`, a host, no query, fragment, user info
    /// or whitespace, at most 255 characters (`CreateOpenIDConnectProvider.Url`).
    pub fn parse(url: &str) -> Result<Self, GenerateError> {
        let err = |reason| GenerateError::Issuer {
            url: url.to_owned(),
            reason,
        };
        let host_path = url
            .strip_prefix("https://")
            .ok_or_else(|| err("AWS requires an https:// issuer"))?;
        if url.len() > 255 {
            return Err(err("longer than IAM's 255 characters"));
        }
        if host_path.is_empty() || host_path.starts_with('/') {
            return Err(err("no host"));
        }
        if host_path.contains(['?', '#']) {
            return Err(err("IAM provider URLs take no query or fragment"));
        }
        if host_path.contains('@') {
            return Err(err("no user info allowed"));
        }
        if !host_path
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._~/:%".contains(c))
        {
            return Err(err("unexpected character (expected a plain host and path)"));
        }
        Ok(Issuer {
            url: url.to_owned(),
            host_path: host_path.to_owned(),
        })
    }

    /// The URL as given.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The URL without `https://`, e.g. `issuer.example.com/path`.
    pub fn host_path(&self) -> &str {
        &self.host_path
    }

    /// Whether the host names a port, which IAM advises against.
    pub fn has_port(&self) -> bool {
        self.host_path
            .split('/')
            .next()
            .is_some_and(|h| h.contains(':'))
    }

    /// The condition key for a claim, e.g. `issuer.example.com:sub`.
    pub fn key(&self, claim: &str) -> String {
        format!("{}:{claim}", self.host_path)
    }

    /// The IAM OIDC provider ARN in `account`.
    pub fn provider_arn(&self, account: &AccountId) -> String {
        format!(
            "arn:aws:iam::{}:oidc-provider/{}",
            account.0, self.host_path
        )
    }
}

/// A 12-digit AWS account id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountId(String);

impl AccountId {
    /// Validates an account id.
    pub fn parse(id: &str) -> Result<Self, GenerateError> {
        if id.len() == 12 && id.bytes().all(|b| b.is_ascii_digit()) {
            Ok(AccountId(id.to_owned()))
        } else {
            Err(GenerateError::Account(id.to_owned()))
        }
    }

    /// The digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An AWS region name such as `us-east-1`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Region(String);

impl Region {
    /// Validates a region name: lower-case letters and digits in dash-separated
    /// parts, ending in a number (`us-east-1`, `us-gov-west-1`).
    pub fn parse(name: &str) -> Result<Self, GenerateError> {
        let parts: Vec<&str> = name.split('-').collect();
        let ok = parts.len() >= 3
            && parts.iter().all(|p| {
                !p.is_empty()
                    && p.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            })
            && parts
                .last()
                .is_some_and(|p| p.bytes().all(|b| b.is_ascii_digit()));
        if ok {
            Ok(Region(name.to_owned()))
        } else {
            Err(GenerateError::Region(name.to_owned()))
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Validates a uid that will be placed inside a subject pattern: no wildcard,
/// separator (`/`, `:`), `$`, quote or whitespace can get in.
pub fn validate_uid(what: &'static str, uid: &str) -> Result<(), GenerateError> {
    let ok = !uid.is_empty()
        && uid.len() <= 128
        && uid
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-@+=".contains(c));
    if ok {
        Ok(())
    } else {
        Err(GenerateError::Uid {
            what,
            uid: uid.to_owned(),
        })
    }
}

/// Validates an IAM role or policy name: `[\w+=,.@-]`, 1 to `max` characters
/// (aws-facts §4.1).
pub fn validate_iam_name(what: &'static str, name: &str, max: usize) -> Result<(), GenerateError> {
    let ok = !name.is_empty()
        && name.len() <= max
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_+=,.@-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(GenerateError::Name {
            what,
            name: name.to_owned(),
            max,
        })
    }
}

/// The kind of actor in a subject (DESIGN §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Actor {
    /// A member (`user`).
    User,
    /// A named agent (`service_account`).
    Agent,
}

impl Actor {
    /// The actor type as it appears in `sub`.
    pub fn subject_type(self) -> &'static str {
        match self {
            Actor::User => "user",
            Actor::Agent => "service_account",
        }
    }

    /// The word used on the command line.
    pub fn cli_name(self) -> &'static str {
        match self {
            Actor::User => "user",
            Actor::Agent => "agent",
        }
    }
}

/// Whom a trust policy admits (DESIGN §7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrustScope {
    /// Every member and every agent of the team: `scoped_principal:<team>/*`.
    Team,
    /// Every member: `…/user:*`.
    Users,
    /// Every named agent: `…/service_account:*`.
    Agents,
    /// Exactly these actors (deduplicated, in the order given).
    Named(Vec<(Actor, String)>),
}

impl FromStr for TrustScope {
    type Err = GenerateError;

    /// `team`, `users`, `agents`, or a comma-separated list of `user:UID` and
    /// `agent:UID`, where a bare `UID` repeats the previous prefix
    /// (`agent:a1,a2` = `agent:a1,agent:a2`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "team" => return Ok(TrustScope::Team),
            "users" => return Ok(TrustScope::Users),
            "agents" => return Ok(TrustScope::Agents),
            _ => {}
        }
        let mut named: Vec<(Actor, String)> = Vec::new();
        let mut current: Option<Actor> = None;
        for item in s.split(',').map(str::trim) {
            let (actor, uid) = if let Some(uid) = item.strip_prefix("user:") {
                (Actor::User, uid)
            } else if let Some(uid) = item.strip_prefix("agent:") {
                (Actor::Agent, uid)
            } else {
                (
                    current.ok_or_else(|| GenerateError::Scope(s.to_owned()))?,
                    item,
                )
            };
            validate_uid(actor.cli_name(), uid)?;
            current = Some(actor);
            if !named.iter().any(|(a, u)| *a == actor && u == uid) {
                named.push((actor, uid.to_owned()));
            }
        }
        if named.is_empty() {
            return Err(GenerateError::Scope(s.to_owned()));
        }
        Ok(TrustScope::Named(named))
    }
}

impl fmt::Display for TrustScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrustScope::Team => f.write_str("team"),
            TrustScope::Users => f.write_str("users"),
            TrustScope::Agents => f.write_str("agents"),
            TrustScope::Named(list) => {
                let items: Vec<String> = list
                    .iter()
                    .map(|(a, u)| format!("{}:{u}", a.cli_name()))
                    .collect();
                f.write_str(&items.join(","))
            }
        }
    }
}

/// The shape of `sub` the server mints (DESIGN §3): `scoped_principal`, or
/// `scoped_principal` followed by `run_id` (appends `:run_id:<run-id>` when the
/// token is for a run).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SubjectTemplate {
    /// Whether `:run_id:<run-id>` may follow the scoped principal.
    pub run_id: bool,
}

impl SubjectTemplate {
    /// Parses the template's parts as given to `--subject-template`.
    pub fn parse<S: AsRef<str>>(parts: &[S]) -> Result<Self, GenerateError> {
        let parts: Vec<&str> = parts.iter().map(|p| p.as_ref().trim()).collect();
        match parts.as_slice() {
            [] | ["scoped_principal"] => Ok(SubjectTemplate { run_id: false }),
            ["scoped_principal", "run_id"] => Ok(SubjectTemplate { run_id: true }),
            _ => Err(GenerateError::SubjectTemplate(parts.join(","))),
        }
    }
}

/// The subject prefix of a team: `scoped_principal:<team>/`.
pub fn team_subject_prefix(team_uid: &str) -> String {
    format!("scoped_principal:{team_uid}/")
}

/// The exact subject of one actor without a run: `scoped_principal:<team>/<type>:<uid>`.
pub fn actor_subject(team_uid: &str, actor: Actor, uid: &str) -> String {
    format!("scoped_principal:{team_uid}/{}:{uid}", actor.subject_type())
}

/// Everything one setup (script, Terraform or CloudFormation) creates.
#[derive(Debug, Clone)]
pub struct SetupOptions {
    /// The trust policy's inputs (issuer, team, account, scope, …).
    pub trust: TrustOptions,
    /// The permissions policy's inputs.
    pub permissions: PermissionsOptions,
    /// The IAM role to create or update.
    pub role_name: String,
    /// The inline policy's name on the role.
    pub policy_name: String,
}

/// The default name of the inline permissions policy.
pub const DEFAULT_POLICY_NAME: &str = "byollm-bedrock-invoke";

impl SetupOptions {
    /// Validates the role name and assembles the options.
    pub fn new(
        trust: TrustOptions,
        permissions: PermissionsOptions,
        role_name: &str,
    ) -> Result<Self, GenerateError> {
        validate_iam_name("role", role_name, 64)?;
        Ok(SetupOptions {
            trust,
            permissions,
            role_name: role_name.to_owned(),
            policy_name: DEFAULT_POLICY_NAME.to_owned(),
        })
    }

    /// Both documents, pretty JSON.
    pub(crate) fn documents(&self) -> Result<(String, String), GenerateError> {
        validate_iam_name("role", &self.role_name, 64)?;
        validate_iam_name("policy", &self.policy_name, 128)?;
        let trust = trust_policy(&self.trust)?.to_json_pretty();
        let permissions = permissions_policy(&self.permissions)?.to_json_pretty();
        Ok((trust, permissions))
    }

    /// The role ARN the setup produces (roles are created at path `/`).
    pub fn role_arn(&self) -> String {
        format!(
            "arn:aws:iam::{}:role/{}",
            self.trust.account.as_str(),
            self.role_name
        )
    }

    /// A one-line description for the role.
    pub(crate) fn description(&self) -> String {
        format!(
            "byollm: Bedrock inference for team {} (scope {})",
            self.trust.team_uid, self.trust.scope
        )
    }
}

/// Single-quotes a string for bash.
pub(crate) fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_parse() {
        assert_eq!("team".parse::<TrustScope>().unwrap(), TrustScope::Team);
        assert_eq!(
            "agent:a1,a2,user:u1,agent:a1"
                .parse::<TrustScope>()
                .unwrap(),
            TrustScope::Named(vec![
                (Actor::Agent, "a1".into()),
                (Actor::Agent, "a2".into()),
                (Actor::User, "u1".into()),
            ])
        );
        assert!("a1".parse::<TrustScope>().is_err());
        assert!("agent:*".parse::<TrustScope>().is_err());
        assert!("agent:a/b".parse::<TrustScope>().is_err());
        assert!("agent:".parse::<TrustScope>().is_err());
        assert!("everyone".parse::<TrustScope>().is_err());
    }

    #[test]
    fn issuer_and_names() {
        let i = Issuer::parse("https://auth.example.com/tenant/").unwrap();
        assert_eq!(i.host_path(), "auth.example.com/tenant/");
        assert_eq!(i.key("aud"), "auth.example.com/tenant/:aud");
        assert!(Issuer::parse("http://x.example.com").is_err());
        assert!(Issuer::parse("https://x.example.com/?a=b").is_err());
        assert!(Issuer::parse("https://").is_err());
        assert!(Issuer::parse("https://x.example.com/'$(id)").is_err());
        assert!(
            Issuer::parse("https://x.example.com:8443")
                .unwrap()
                .has_port()
        );
        assert!(AccountId::parse("123456789012").is_ok());
        assert!(AccountId::parse("12345678901").is_err());
        assert!(Region::parse("us-east-1").is_ok());
        assert!(Region::parse("us-gov-west-1").is_ok());
        assert!(Region::parse("us-east").is_err());
        assert!(Region::parse("US-EAST-1").is_err());
        assert!(validate_iam_name("role", "byollm-bedrock", 64).is_ok());
        assert!(validate_iam_name("role", "bad name", 64).is_err());
        assert!(
            SubjectTemplate::parse(&["scoped_principal", "run_id"])
                .unwrap()
                .run_id
        );
        assert!(SubjectTemplate::parse(&["run_id"]).is_err());
        assert_eq!(shell_quote("a'b"), r"'a'\''b'");
    }
}
