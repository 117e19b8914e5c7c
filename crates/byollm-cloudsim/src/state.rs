//! In-memory account state: IAM OIDC providers and roles with their parsed
//! policies, and the sessions STS has issued.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use byollm_policy::Policy;
use parking_lot::RwLock;

/// An IAM OIDC identity provider.
#[derive(Debug, Clone)]
pub struct Provider {
    /// The URL without `https://` (path and trailing slash kept): the key the
    /// provider is found by and the prefix of its condition keys.
    pub host_path: String,
    /// `arn:aws:iam::<acct>:oidc-provider/<host_path>`.
    pub arn: String,
    /// Accepted audiences.
    pub client_ids: Vec<String>,
    /// Thumbprints (kept, never used: the emulator fetches over `--resolve`).
    pub thumbprints: Vec<String>,
    /// Creation time, Unix seconds.
    pub created: i64,
    /// Tags.
    pub tags: Vec<(String, String)>,
}

/// An inline role policy.
#[derive(Debug, Clone)]
pub struct InlinePolicy {
    /// The document as given.
    pub document: String,
    /// Parsed.
    pub policy: Arc<Policy>,
}

/// An IAM role.
#[derive(Debug, Clone)]
pub struct Role {
    /// Its name as created.
    pub name: String,
    /// Its path (`/` by default).
    pub path: String,
    /// `AROA…`.
    pub id: String,
    /// `arn:aws:iam::<acct>:role<path><name>`.
    pub arn: String,
    /// The trust policy as given.
    pub trust_document: String,
    /// Parsed.
    pub trust: Arc<Policy>,
    /// Description.
    pub description: Option<String>,
    /// Maximum session duration in seconds (3600–43200).
    pub max_session_duration: i32,
    /// Creation time, Unix seconds.
    pub created: i64,
    /// Inline policies by name.
    pub policies: BTreeMap<String, InlinePolicy>,
}

/// Credentials STS issued, with everything later requests are judged by.
#[derive(Debug, Clone)]
pub struct Session {
    /// `ASIA…`.
    pub access_key_id: String,
    /// The secret.
    pub secret_access_key: String,
    /// The session token.
    pub session_token: String,
    /// Expiry, Unix seconds.
    pub expiration: i64,
    /// The role's ARN.
    pub role_arn: String,
    /// The role's name (case as created), to find its current policies.
    pub role_name: String,
    /// `AROA…:<session>`.
    pub assumed_role_id: String,
    /// `arn:aws:sts::<acct>:assumed-role/<role>/<session>`.
    pub assumed_role_arn: String,
    /// The session name.
    pub session_name: String,
    /// Session tags from the token.
    pub tags: Vec<(String, String)>,
    /// Transitive tag keys.
    pub transitive_tag_keys: Vec<String>,
    /// Source identity, when the token carried one.
    pub source_identity: Option<String>,
    /// The provider ARN.
    pub provider_arn: String,
    /// The token's `sub`.
    pub subject: String,
    /// The token's audience.
    pub audience: String,
}

/// The IAM part of the account.
#[derive(Debug, Default)]
pub struct Iam {
    /// Providers by `host_path`.
    pub providers: BTreeMap<String, Provider>,
    /// Roles by lower-cased name (IAM names are case-insensitively unique).
    pub roles: BTreeMap<String, Arc<Role>>,
}

/// The whole account.
#[derive(Debug)]
pub struct Account {
    /// The account id.
    pub id: String,
    /// IAM.
    pub iam: RwLock<Iam>,
    /// Issued sessions by access key id.
    pub sessions: RwLock<HashMap<String, Arc<Session>>>,
}

impl Account {
    pub(crate) fn new(id: String) -> Self {
        Account {
            id,
            iam: RwLock::new(Iam::default()),
            sessions: RwLock::new(HashMap::new()),
        }
    }

    /// The role named `name` (case-insensitively).
    pub fn role(&self, name: &str) -> Option<Arc<Role>> {
        self.iam.read().roles.get(&name.to_lowercase()).cloned()
    }

    /// Forgets sessions that expired more than an hour ago (they are refused
    /// either way; this only bounds memory).
    pub(crate) fn prune_sessions(&self, now: i64) {
        self.sessions
            .write()
            .retain(|_, s| s.expiration + 3600 > now);
    }
}
