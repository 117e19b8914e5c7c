//! Microsoft Azure's side of a team's setup (issue 18, azure-facts §3): the
//! user-assigned managed identity, one federated identity credential (FIC) per
//! subject the team's granularity mints, the inference roles on the Foundry
//! account, as a bash script of `az` commands ([`script`]) or Terraform
//! ([`terraform`]); and which of the team's members and agents a set of FICs
//! admits ([`explain`]).
//!
//! Invariants: an FIC matches issuer, subject and audience exactly and
//! case-sensitively, with no wildcards for an issuer like ours (azure-facts
//! §3.1), so the plan writes each subject in full, exactly as
//! `byollm_core::settings::azure::subject` mints it; an identity holds at most
//! [`MAX_FICS_PER_IDENTITY`] FICs, so a plan that needs more spreads agents
//! over `NAME-2`, `NAME-3`, … (members stay on the team's identity: only an
//! agent can name another one, in `inference_providers.azure.client_id`).
//! Every value a generator writes was checked here against a grammar with no
//! quote, `$`, backslash, wildcard or whitespace, so it is safe inside single
//! quotes and HCL strings. Output is deterministic.

pub mod explain;
pub mod script;
pub mod terraform;

use std::fmt;
use std::str::FromStr;

use crate::generate::{Actor, GenerateError, Issuer, TrustScope, validate_uid};

/// The one audience Entra accepts on a managed identity's FIC.
pub const AZURE_AUDIENCE: &str = "api://AzureADTokenExchange";
/// Entra's limit of FICs on one managed identity or app registration.
pub const MAX_FICS_PER_IDENTITY: usize = 20;
/// The role that lets a principal call Claude (and other Foundry models) on
/// a Foundry account (azure-facts §3.5).
pub const AZURE_AI_USER: &str = "Azure AI User";
/// The role that lets a principal call Azure OpenAI models; it grants only
/// those (azure-facts §3.5).
pub const OPENAI_USER: &str = "Cognitive Services OpenAI User";

/// How coarse the subject of the team's Azure tokens is
/// (`hosts.azure_foundry.subject_granularity`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Granularity {
    /// `scoped_principal:<team>`: one FIC for every member and agent.
    #[default]
    Team,
    /// `scoped_principal:<team>/user` and `…/service_account`.
    ActorType,
    /// `scoped_principal:<team>/<type>:<uid>`: one FIC per actor.
    Actor,
}

impl Granularity {
    /// The settings' name.
    pub fn as_str(self) -> &'static str {
        match self {
            Granularity::Team => "team",
            Granularity::ActorType => "actor_type",
            Granularity::Actor => "actor",
        }
    }
}

impl fmt::Display for Granularity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Granularity {
    type Err = GenerateError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "team" => Ok(Granularity::Team),
            "actor_type" | "actor-type" => Ok(Granularity::ActorType),
            "actor" => Ok(Granularity::Actor),
            _ => Err(GenerateError::Azure {
                what: "granularity",
                value: s.to_owned(),
                expected: "team, actor_type or actor",
            }),
        }
    }
}

/// The subject of an Azure token of `actor` `uid` at `granularity` (the
/// same as `byollm_core::settings::azure::subject`).
pub fn subject(team: &str, granularity: Granularity, actor: Actor, uid: &str) -> String {
    match granularity {
        Granularity::Team => format!("scoped_principal:{team}"),
        Granularity::ActorType => format!("scoped_principal:{team}/{}", actor.subject_type()),
        Granularity::Actor => format!("scoped_principal:{team}/{}:{uid}", actor.subject_type()),
    }
}

/// The inference the identity may call on the account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Models {
    /// Claude (and other Foundry models): [`AZURE_AI_USER`].
    pub claude: bool,
    /// Azure OpenAI models: [`OPENAI_USER`].
    pub openai: bool,
}

impl Default for Models {
    fn default() -> Self {
        Models {
            claude: true,
            openai: true,
        }
    }
}

impl Models {
    /// `claude`, `openai` or both, comma-separated.
    pub fn parse(s: &str) -> Result<Self, GenerateError> {
        let mut m = Models {
            claude: false,
            openai: false,
        };
        for item in s.split(',').map(str::trim) {
            match item {
                "claude" => m.claude = true,
                "openai" => m.openai = true,
                _ => {
                    return Err(GenerateError::Azure {
                        what: "models",
                        value: s.to_owned(),
                        expected: "claude, openai or claude,openai",
                    });
                }
            }
        }
        Ok(m)
    }

    /// The roles to assign, in a fixed order.
    pub fn roles(self) -> Vec<&'static str> {
        let mut r = Vec::new();
        if self.claude {
            r.push(AZURE_AI_USER);
        }
        if self.openai {
            r.push(OPENAI_USER);
        }
        r
    }
}

/// One federated identity credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fic {
    /// Its name on the identity (3-120 characters of letters, digits, `-`, `_`).
    pub name: String,
    /// The exact subject it admits.
    pub subject: String,
    /// Whom it admits, for people.
    pub admits: String,
}

/// An FIC and the one actor it is for (`None`: the team or an actor type).
pub type ActorFic = (Option<(Actor, String)>, Fic);

/// One managed identity and its FICs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityPlan {
    /// The identity's name.
    pub name: String,
    /// Its FICs, at most [`MAX_FICS_PER_IDENTITY`].
    pub fics: Vec<Fic>,
    /// The agents whose `inference_providers.azure.client_id` must name this
    /// identity (empty on the team's own identity).
    pub agents_moved: Vec<String>,
}

/// One Azure setup: where the identity lives, whose tokens its FICs admit,
/// and which account it may call.
#[derive(Debug, Clone)]
pub struct AzureSetup {
    /// The issuer tokens carry (`iss`), each FIC's issuer.
    pub issuer: Issuer,
    /// The team uid.
    pub team_uid: String,
    /// The subscription (a GUID) holding the identity and the account.
    pub subscription_id: String,
    /// The resource group of the identity.
    pub resource_group: String,
    /// The identity's region (e.g. `eastus2`).
    pub location: String,
    /// The identity's name (further identities get `-2`, `-3`, …).
    pub identity_name: String,
    /// The Foundry (Cognitive Services) account's name.
    pub account: String,
    /// The account's resource group (often the identity's).
    pub account_resource_group: String,
    /// The subject granularity.
    pub granularity: Granularity,
    /// Whom the FICs admit: `team` (everyone the granularity covers),
    /// `users`/`agents` (with `actor_type`), or named actors (with `actor`).
    pub scope: TrustScope,
    /// The roles granted.
    pub models: Models,
}

fn bad(what: &'static str, value: &str, expected: &'static str) -> GenerateError {
    GenerateError::Azure {
        what,
        value: value.to_owned(),
        expected,
    }
}

/// A GUID (subscription or tenant id), either case.
pub fn validate_guid(what: &'static str, v: &str) -> Result<(), GenerateError> {
    let groups: Vec<&str> = v.split('-').collect();
    let ok = groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()));
    match ok {
        true => Ok(()),
        false => Err(bad(
            what,
            v,
            "a GUID like 00000000-0000-0000-0000-000000000000",
        )),
    }
}

/// A resource group name: 1-90 characters of letters, digits, `-`, `_`, `.`,
/// `(` and `)`, not ending in `.` (ARM also allows other Unicode letters;
/// byollm keeps to ASCII so the output needs no escaping).
pub fn validate_resource_group(v: &str) -> Result<(), GenerateError> {
    let ok = (1..=90).contains(&v.len())
        && !v.ends_with('.')
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.()".contains(c));
    match ok {
        true => Ok(()),
        false => Err(bad(
            "resource group",
            v,
            "1-90 characters of letters, digits and - _ . ( ), not ending in .",
        )),
    }
}

/// An Azure region's programmatic name (`eastus2`, `swedencentral`).
pub fn validate_location(v: &str) -> Result<(), GenerateError> {
    let ok = (2..=40).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    match ok {
        true => Ok(()),
        false => Err(bad(
            "location",
            v,
            "a region name like eastus2 or swedencentral (lower-case letters and digits)",
        )),
    }
}

/// A user-assigned identity's name: 3-128 characters of letters, digits, `-`
/// and `_`, starting with a letter or digit. `spread` more identities need
/// room for a `-N` suffix.
pub fn validate_identity_name(v: &str) -> Result<(), GenerateError> {
    let ok = (3..=124).contains(&v.len())
        && v.starts_with(|c: char| c.is_ascii_alphanumeric())
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_".contains(c));
    match ok {
        true => Ok(()),
        false => Err(bad(
            "identity name",
            v,
            "3-124 characters of letters, digits, - and _, starting with a letter or digit",
        )),
    }
}

/// A Foundry (Cognitive Services) account: its name, or a host name of it
/// (`acme-ai.openai.azure.com`); returns the bare name.
pub fn account_name(v: &str) -> Result<String, GenerateError> {
    let name = [
        ".openai.azure.com",
        ".services.ai.azure.com",
        ".cognitiveservices.azure.com",
    ]
    .iter()
    .find_map(|s| v.strip_suffix(s))
    .unwrap_or(v);
    let ok = (2..=64).contains(&name.len())
        && !name.starts_with('-')
        && !name.ends_with('-')
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    match ok {
        true => Ok(name.to_owned()),
        false => Err(bad(
            "Foundry resource",
            v,
            "the account's name (2-64 characters of a-z, 0-9 and -) or one of its host names",
        )),
    }
}

/// An FIC name from parts: characters outside `[A-Za-z0-9_-]` become `-`.
fn fic_name(parts: &[&str]) -> String {
    parts
        .join("-")
        .chars()
        .map(
            |c| match c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                true => c,
                false => '-',
            },
        )
        .collect()
}

impl AzureSetup {
    /// Checks every value against a grammar safe for the generators, and the
    /// scope against the granularity.
    pub fn validate(&self) -> Result<(), GenerateError> {
        validate_uid("team", &self.team_uid)?;
        validate_guid("subscription id", &self.subscription_id)?;
        validate_resource_group(&self.resource_group)?;
        validate_resource_group(&self.account_resource_group)?;
        validate_location(&self.location)?;
        validate_identity_name(&self.identity_name)?;
        account_name(&self.account)?;
        if self.models.roles().is_empty() {
            return Err(bad("models", "", "claude, openai or claude,openai"));
        }
        self.subjects().map(|_| ())
    }

    /// The account's ARM id: the role assignments' scope.
    pub fn account_id(&self) -> String {
        format!(
            "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.CognitiveServices/accounts/{}",
            self.subscription_id, self.account_resource_group, self.account
        )
    }

    /// The FICs the granularity and scope need, members before agents.
    pub fn subjects(&self) -> Result<Vec<ActorFic>, GenerateError> {
        let team = &self.team_uid;
        let g = self.granularity;
        let fic = |actor: Actor, uid: &str, name: String, admits: String| Fic {
            name,
            subject: subject(team, g, actor, uid),
            admits,
        };
        let scope_err = |expected| bad("scope", &self.scope.to_string(), expected);
        let out = match (g, &self.scope) {
            (Granularity::Team, TrustScope::Team) => vec![(
                None,
                fic(
                    Actor::User,
                    "",
                    fic_name(&["byollm", team]),
                    "every member and agent of the team".into(),
                ),
            )],
            (Granularity::Team, _) => {
                return Err(scope_err(
                    "team: one subject admits the whole team at granularity team \
                     (choose actor_type or actor to admit fewer)",
                ));
            }
            (
                Granularity::ActorType,
                s @ (TrustScope::Team | TrustScope::Users | TrustScope::Agents),
            ) => {
                let mut v = Vec::new();
                if matches!(s, TrustScope::Team | TrustScope::Users) {
                    v.push((
                        None,
                        fic(
                            Actor::User,
                            "",
                            fic_name(&["byollm", team, "users"]),
                            "every member of the team".into(),
                        ),
                    ));
                }
                if matches!(s, TrustScope::Team | TrustScope::Agents) {
                    v.push((
                        None,
                        fic(
                            Actor::Agent,
                            "",
                            fic_name(&["byollm", team, "agents"]),
                            "every agent of the team".into(),
                        ),
                    ));
                }
                v
            }
            (Granularity::ActorType, TrustScope::Named(_)) => {
                return Err(scope_err(
                    "team, users or agents at granularity actor_type (named actors need granularity actor)",
                ));
            }
            (Granularity::Actor, TrustScope::Named(list)) => {
                let mut list = list.clone();
                // Members first: they must stay on the team's identity.
                list.sort_by_key(|(a, _)| *a);
                list.into_iter()
                    .map(|(a, uid)| {
                        let f = fic(
                            a,
                            &uid,
                            fic_name(&["byollm", team, a.cli_name(), &uid]),
                            format!("{} {uid}", a.cli_name()),
                        );
                        (Some((a, uid)), f)
                    })
                    .collect()
            }
            (Granularity::Actor, _) => {
                return Err(scope_err(
                    "the members and agents, user:UID,… / agent:UID,…, at granularity actor \
                     (one FIC per actor; Entra has no wildcards)",
                ));
            }
        };
        let mut names = std::collections::BTreeSet::new();
        for (_, f) in &out {
            if f.name.len() > 120 || !names.insert(f.name.clone()) {
                return Err(bad(
                    "FIC name",
                    &f.name,
                    "at most 120 characters and unique on the identity (shorten or rename the uid)",
                ));
            }
            if f.subject.len() > 600 {
                return Err(bad("subject", &f.subject, "at most 600 characters"));
            }
        }
        Ok(out)
    }

    /// The identities and their FICs: everything on the team's identity while
    /// it fits, then agents spread over `NAME-2`, `NAME-3`, ….
    pub fn plan(&self) -> Result<Vec<IdentityPlan>, GenerateError> {
        self.validate()?;
        let subjects = self.subjects()?;
        let members = subjects
            .iter()
            .filter(|(a, _)| matches!(a, Some((Actor::User, _))))
            .count();
        if members > MAX_FICS_PER_IDENTITY {
            return Err(bad(
                "scope",
                &self.scope.to_string(),
                "at most 20 members at granularity actor: members all use the team's identity \
                 (hosts.azure_foundry.client_id), and Entra holds 20 FICs per identity; \
                 use granularity actor_type or team",
            ));
        }
        let mut plans: Vec<IdentityPlan> = Vec::new();
        for (actor, f) in subjects {
            let full = plans
                .last()
                .is_none_or(|p| p.fics.len() >= MAX_FICS_PER_IDENTITY);
            if full {
                let name = match plans.len() {
                    0 => self.identity_name.clone(),
                    n => format!("{}-{}", self.identity_name, n + 1),
                };
                plans.push(IdentityPlan {
                    name,
                    fics: Vec::new(),
                    agents_moved: Vec::new(),
                });
            }
            let spread = plans.len() > 1;
            if let Some(p) = plans.last_mut() {
                if let (true, Some((Actor::Agent, uid))) = (spread, actor) {
                    p.agents_moved.push(uid);
                }
                p.fics.push(f);
            }
        }
        Ok(plans)
    }

    /// The warning for a plan that spreads over several identities.
    pub fn spread_warning(&self, plans: &[IdentityPlan]) -> Option<String> {
        let total: usize = plans.iter().map(|p| p.fics.len()).sum();
        (plans.len() > 1).then(|| {
            format!(
                "warning: {total} FICs exceed Entra's {MAX_FICS_PER_IDENTITY} per identity; \
                 spread over {} identities ({}). Set each moved agent's \
                 inference_providers.azure.client_id to its identity's client id.",
                plans.len(),
                plans
                    .iter()
                    .map(|p| p.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
    }

    /// A one-line description.
    pub fn description(&self) -> String {
        format!(
            "byollm: Azure AI Foundry inference for team {} (granularity {}, scope {})",
            self.team_uid, self.granularity, self.scope
        )
    }
}

/// Single-quotes for bash (the generate module's quoting).
pub(crate) fn quote(s: &str) -> String {
    crate::generate::shell_quote(s)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn setup(granularity: &str, scope: &str) -> AzureSetup {
        AzureSetup {
            issuer: Issuer::parse("https://byollm.example.com").unwrap(),
            team_uid: "t1".into(),
            subscription_id: "11111111-2222-3333-4444-555555555555".into(),
            resource_group: "rg-ai".into(),
            location: "eastus2".into(),
            identity_name: "byollm-t1".into(),
            account: "acme-ai".into(),
            account_resource_group: "rg-ai".into(),
            granularity: granularity.parse().unwrap(),
            scope: scope.parse().unwrap(),
            models: Models::default(),
        }
    }

    #[test]
    fn subjects_per_granularity() {
        let subs = |g, s| -> Vec<String> {
            setup(g, s)
                .plan()
                .unwrap()
                .into_iter()
                .flat_map(|p| p.fics)
                .map(|f| f.subject)
                .collect()
        };
        assert_eq!(subs("team", "team"), ["scoped_principal:t1"]);
        assert_eq!(
            subs("actor_type", "team"),
            [
                "scoped_principal:t1/user",
                "scoped_principal:t1/service_account"
            ]
        );
        assert_eq!(
            subs("actor_type", "agents"),
            ["scoped_principal:t1/service_account"]
        );
        assert_eq!(
            subs("actor", "agent:a1,user:u1"),
            [
                "scoped_principal:t1/user:u1",
                "scoped_principal:t1/service_account:a1"
            ]
        );
        assert!(setup("team", "users").validate().is_err());
        assert!(setup("actor", "team").validate().is_err());
        assert!(setup("actor_type", "user:u1").validate().is_err());
    }

    #[test]
    fn agents_spread_past_twenty_and_members_do_not() {
        let agents: Vec<String> = (1..=45).map(|i| format!("agent:a{i}")).collect();
        let s = setup("actor", &format!("user:u1,{}", agents.join(",")));
        let plans = s.plan().unwrap();
        assert_eq!(
            plans.iter().map(|p| p.fics.len()).collect::<Vec<_>>(),
            [20, 20, 6]
        );
        assert_eq!(plans[1].name, "byollm-t1-2");
        assert_eq!(plans[0].fics[0].subject, "scoped_principal:t1/user:u1");
        assert!(plans[0].agents_moved.is_empty());
        assert_eq!(plans[1].agents_moved.first().unwrap(), "a20");
        assert!(s.spread_warning(&plans).unwrap().contains("46 FICs"));
        assert!(
            setup("actor", "agent:a1")
                .spread_warning(&setup("actor", "agent:a1").plan().unwrap())
                .is_none()
        );
        let users: Vec<String> = (1..=21).map(|i| format!("user:u{i}")).collect();
        assert!(setup("actor", &users.join(",")).plan().is_err());
    }

    #[test]
    fn validation_refuses_what_could_break_out() {
        let mut s = setup("team", "team");
        assert!(s.validate().is_ok());
        assert_eq!(
            s.account_id(),
            "/subscriptions/11111111-2222-3333-4444-555555555555/resourceGroups/rg-ai/providers/Microsoft.CognitiveServices/accounts/acme-ai"
        );
        s.subscription_id = "1111".into();
        assert!(s.validate().is_err());
        let mut s = setup("team", "team");
        s.resource_group = "rg'$(id)".into();
        assert!(s.validate().is_err());
        let mut s = setup("team", "team");
        s.location = "East US".into();
        assert!(s.validate().is_err());
        let mut s = setup("team", "team");
        s.identity_name = "-x".into();
        assert!(s.validate().is_err());
        assert_eq!(account_name("acme-ai.openai.azure.com").unwrap(), "acme-ai");
        assert!(account_name("https://acme-ai.openai.azure.com").is_err());
        assert!("actors".parse::<Granularity>().is_err());
        assert!(Models::parse("claude,gpt").is_err());
    }
}
