//! Queries and pages of the agent and run lists (`GET /api/v1/agent/identities`,
//! `GET /api/v1/runs`): `limit` and an opaque `cursor` as every list, plus each
//! list's filters.

use serde::{Deserialize, Serialize};

use super::{RunInfo, RunState};

/// `GET /api/v1/agent/identities` query.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentListQuery {
    /// Most agents on the page: 1 to [`PAGE_MAX_LIMIT`](super::PAGE_MAX_LIMIT), default
    /// [`PAGE_DEFAULT_LIMIT`](super::PAGE_DEFAULT_LIMIT).
    #[serde(default)]
    pub limit: Option<u32>,
    /// A previous page's `next_cursor` (opaque); absent for the first page.
    #[serde(default)]
    pub cursor: Option<String>,
    /// Agents whose name starts with this (case-insensitive).
    #[serde(default)]
    pub name_prefix: Option<String>,
    /// Only available (`true`) or unavailable (`false`) agents.
    #[serde(default)]
    pub available: Option<bool>,
}

/// `GET /api/v1/runs` query.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunListQuery {
    /// Most runs on the page: 1 to [`PAGE_MAX_LIMIT`](super::PAGE_MAX_LIMIT), default
    /// [`PAGE_DEFAULT_LIMIT`](super::PAGE_DEFAULT_LIMIT).
    #[serde(default)]
    pub limit: Option<u32>,
    /// A previous page's `next_cursor` (opaque); absent for the first page.
    #[serde(default)]
    pub cursor: Option<String>,
    /// Only runs in this state.
    #[serde(default)]
    pub state: Option<RunState>,
    /// Only runs acting as this actor: `user:<uid>` or `service_account:<uid>`.
    #[serde(default)]
    pub actor: Option<String>,
    /// Only runs created at or after this time (RFC 3339).
    #[serde(default)]
    pub since: Option<String>,
    /// Only runs created before this time (RFC 3339).
    #[serde(default)]
    pub until: Option<String>,
}

/// `GET /api/v1/runs`: one page of runs, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunList {
    /// The runs.
    pub runs: Vec<RunInfo>,
    /// The `cursor` of the next page; `null` on the last one.
    pub next_cursor: Option<String>,
}
