//! `GET /api/v1/usage`: its query and its report (the three buckets, the
//! page of requests, the run credits per day).

use serde::{Deserialize, Serialize};

use super::{PAGE_DEFAULT_LIMIT, PAGE_MAX_LIMIT};

/// `GET /api/v1/usage` query.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsageQuery {
    /// One run.
    #[serde(default)]
    pub run_id: Option<String>,
    /// One named agent.
    #[serde(default)]
    pub agent_uid: Option<String>,
    /// One member.
    #[serde(default)]
    pub member_uid: Option<String>,
    /// Most requests on the page: 1 to [`USAGE_MAX_LIMIT`], default
    /// [`USAGE_DEFAULT_LIMIT`].
    #[serde(default)]
    pub limit: Option<u32>,
    /// Where the page starts: a previous page's `next_cursor` (opaque); absent
    /// for the first page.
    #[serde(default)]
    pub cursor: Option<String>,
}

/// Requests on a usage page when the query names no `limit`.
pub const USAGE_DEFAULT_LIMIT: u32 = PAGE_DEFAULT_LIMIT;
/// Most requests one usage page lists.
pub const USAGE_MAX_LIMIT: u32 = PAGE_MAX_LIMIT;

/// `GET /api/v1/usage`: one page of requests, oldest first, and the buckets
/// over every matching request and run (the same on every page).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UsageReport {
    /// Credits by bucket.
    pub buckets: CreditBuckets,
    /// The page's gateway requests, in `(created_at, id)` order.
    pub requests: Vec<UsageRequest>,
    /// The `cursor` of the next page; `null` on the last one.
    #[serde(default)]
    pub next_cursor: Option<String>,
    /// The platform and compute buckets by the UTC day each run started,
    /// oldest first (days with no run are left out); they sum to the buckets.
    #[serde(default)]
    pub run_days: Vec<RunCreditsDay>,
}

/// The credits of the runs that started on one UTC day.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunCreditsDay {
    /// The day, `YYYY-MM-DD` (UTC).
    pub day: String,
    /// Runs started that day.
    pub runs: u64,
    /// Their platform credits.
    pub platform: f64,
    /// Their compute credits (a run's whole duration counts on its first day).
    pub compute: f64,
}

/// The three credit buckets (DESIGN §5).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct CreditBuckets {
    /// Direct-API inference (Bedrock costs zero here).
    pub inference: f64,
    /// Per cloud run.
    pub platform: f64,
    /// Per started minute of a cloud run.
    pub compute: f64,
}

/// One gateway request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UsageRequest {
    /// The request id: the `x-byollm-request-id` header of its response.
    pub id: String,
    /// The run, if any.
    pub run_id: Option<String>,
    /// `user:<uid>` or `service_account:<uid>`.
    pub principal: String,
    /// The requested model.
    pub model: String,
    /// The route that served it.
    pub route: String,
    /// Every attempt and its outcome.
    pub attempts: serde_json::Value,
    /// Input tokens.
    pub input_tokens: i64,
    /// Output tokens.
    pub output_tokens: i64,
    /// Inference credits.
    pub credits: f64,
    /// When (RFC 3339).
    pub created_at: String,
}
