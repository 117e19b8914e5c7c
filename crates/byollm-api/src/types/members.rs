//! Members and their API keys: the bodies of `/api/v1/team/members` and
//! `/api/v1/api-keys` (invitations are in `onboarding`).

use serde::{Deserialize, Serialize};

use super::{Actor, Role};
use crate::SecretValue;

// ---------------------------------------------------------------- members

/// `POST /api/v1/team/members`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberCreate {
    /// The member's email.
    pub email: String,
    /// The member's role.
    pub role: Role,
}

/// A member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// The member's uid.
    pub uid: String,
    /// The member's email.
    pub email: String,
    /// The member's role.
    pub role: Role,
}

/// `GET /api/v1/team/members`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberList {
    /// The members.
    pub members: Vec<Member>,
    /// The next page's cursor (`null` on the last page).
    #[serde(default)]
    pub next_cursor: Option<String>,
}

// ---------------------------------------------------------------- API keys

/// `POST /api/v1/api-keys`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyCreate {
    /// A name for people.
    pub name: String,
    /// Create the key for this named agent (admins only).
    #[serde(default)]
    pub agent_uid: Option<String>,
    /// When the key stops working (RFC 3339, in the future); absent: the team's
    /// maximum lifetime, if any, else never.
    #[serde(default)]
    pub expires_at: Option<String>,
}

/// The created key: `key` is shown this once.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApiKeyCreated {
    /// The key's id (not secret).
    pub id: String,
    /// The key itself.
    pub key: SecretValue,
    /// Whose key it is.
    pub owner: Actor,
    /// When it stops working (RFC 3339); `null`: never.
    #[serde(default)]
    pub expires_at: Option<String>,
}

/// A key as listed: never the key itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyInfo {
    /// The key's id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Whose key it is.
    pub owner: Actor,
    /// The first characters of the key, to recognise it.
    pub prefix: String,
    /// When it was created (RFC 3339).
    pub created_at: String,
    /// When it stops working (RFC 3339); `null`: never.
    #[serde(default)]
    pub expires_at: Option<String>,
    /// Its last use (RFC 3339), recorded at most every ten minutes; `null`:
    /// not used yet.
    #[serde(default)]
    pub last_used_at: Option<String>,
}

/// `GET /api/v1/api-keys`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyList {
    /// The keys.
    pub api_keys: Vec<ApiKeyInfo>,
    /// The next page's cursor (`null` on the last page).
    #[serde(default)]
    pub next_cursor: Option<String>,
}
