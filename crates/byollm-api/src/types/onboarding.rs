//! Bodies of onboarding and list paging: invitations (issued with a new member,
//! redeemed once for the member's first API key), role changes, and the
//! `limit`/`cursor` query every paged list takes.

use serde::{Deserialize, Serialize};

use super::{ApiKeyCreated, Member, Role, TeamInfo};
use crate::SecretValue;

/// How long an invitation code redeems, in seconds (7 days).
pub const INVITATION_LIFETIME_SECONDS: i64 = 7 * 24 * 3600;

/// A one-time invitation code: `code` is shown this once.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InvitationIssued {
    /// The code the member redeems (`byollm login --invite CODE`).
    pub code: SecretValue,
    /// When it stops redeeming (RFC 3339).
    pub expires_at: String,
}

/// `POST /api/v1/team/members`: the member and their invitation.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MemberCreated {
    /// The member (its fields at the top level, as before invitations).
    #[serde(flatten)]
    pub member: Member,
    /// Their one-time invitation code.
    pub invitation: InvitationIssued,
}

/// `POST /api/v1/invitations/redeem`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InvitationRedeem {
    /// The invitation code.
    pub code: SecretValue,
}

/// What a redeemed invitation gives: the member's first API key (shown once).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InvitationRedeemed {
    /// The team joined.
    pub team: TeamInfo,
    /// The member.
    pub member: Member,
    /// Their API key.
    pub api_key: ApiKeyCreated,
}

/// `PATCH /api/v1/team/members/{uid}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberPatch {
    /// The member's new role.
    pub role: Role,
}

/// The query of a paged list (`GET /api/v1/team/members`, `GET /api/v1/api-keys`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    /// Most items on the page: 1 to [`PAGE_MAX_LIMIT`], default
    /// [`PAGE_DEFAULT_LIMIT`].
    #[serde(default)]
    pub limit: Option<u32>,
    /// Where the page starts: a previous page's `next_cursor` (opaque); absent
    /// for the first page.
    #[serde(default)]
    pub cursor: Option<String>,
}

/// Items on a page when the query names no `limit`.
pub const PAGE_DEFAULT_LIMIT: u32 = 100;
/// Most items one page lists.
pub const PAGE_MAX_LIMIT: u32 = 1_000;
