//! Wire types of the admin audit trail (`GET /api/v1/audit`).

use serde::{Deserialize, Serialize};

#[cfg(doc)]
use super::{USAGE_DEFAULT_LIMIT, USAGE_MAX_LIMIT};

/// `GET /api/v1/audit` query: every filter optional.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Exact action, e.g. `member.create`.
    #[serde(default)]
    pub action: Option<String>,
    /// The acting member's or agent's uid.
    #[serde(default)]
    pub actor: Option<String>,
    /// Exact target, e.g. `member:<uid>`.
    #[serde(default)]
    pub target: Option<String>,
    /// Events at or after this RFC 3339 time.
    #[serde(default)]
    pub since: Option<String>,
    /// Events before this RFC 3339 time.
    #[serde(default)]
    pub until: Option<String>,
    /// Most events on the page: 1 to [`USAGE_MAX_LIMIT`], default
    /// [`USAGE_DEFAULT_LIMIT`].
    #[serde(default)]
    pub limit: Option<u32>,
    /// A previous page's `next_cursor` (opaque).
    #[serde(default)]
    pub cursor: Option<String>,
}

/// One administrative change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// Event id.
    pub id: String,
    /// When (RFC 3339).
    pub at: String,
    /// `user` or `service_account`.
    pub actor_type: String,
    /// The member or agent that acted.
    pub actor_uid: String,
    /// The credential used: its kind and a fingerprint, never the credential.
    pub credential: String,
    /// What was done, e.g. `settings.update`.
    pub action: String,
    /// What it was done to, e.g. `member:<uid>`.
    pub target: String,
    /// The request that did it (its `x-request-id`).
    pub request_id: Option<String>,
    /// The changed fields (no secrets).
    pub changes: serde_json::Value,
}

/// `GET /api/v1/audit`: one page of events, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditPage {
    /// The events.
    pub events: Vec<AuditEvent>,
    /// The next page's cursor; null on the last page.
    pub next_cursor: Option<String>,
}
