//! Invitations: how a new member gets their first API key without anyone else
//! ever seeing it. Adding a member issues a one-time code (shown once to the
//! admin, valid [`INVITATION_LIFETIME_SECONDS`]); the member redeems it on a
//! public route for their own key (shown once to them).
//!
//! Invariants: codes are stored as SHA-256 only; a code redeems at most once
//! (the store deletes it in the redeeming transaction); re-issuing kills the old
//! code; an owner's invitation is re-issued or revoked only by an owner
//! ([`Action::InviteOwner`]), since whoever redeems it acts as that owner; a
//! code is re-issued only for a member with no API key, so an admin cannot
//! mint themselves a key that acts as a member who already has one.

use byollm_api::SecretValue;
use byollm_api::types::{
    Actor, ActorType, INVITATION_LIFETIME_SECONDS, InvitationIssued, InvitationRedeemed, Member,
    Role, TeamInfo,
};
use secrecy::ExposeSecret as _;

use super::api_keys::{created, new_key_row};
use super::{Core, Result};
use crate::auth::Principal;
use crate::authz::{self, Action, Target};
use crate::error::CoreError;
use crate::ids;
use crate::store::InvitationRow;
use crate::validate;
use byollm_api::clock::rfc3339;

/// Longest string taken as a code (longer is refused before hashing).
const MAX_CODE_LEN: usize = 128;

impl Core {
    /// Issues a member's invitation, replacing any earlier one.
    pub(super) async fn issue_invitation(
        &self,
        team_uid: &str,
        member_uid: &str,
    ) -> Result<InvitationIssued> {
        let code = ids::new_invitation_code();
        let now = self.clock.now();
        let row = InvitationRow {
            member_uid: member_uid.to_owned(),
            team_uid: team_uid.to_owned(),
            code_hash: ids::hash_secret(code.expose_secret()),
            expires_at: now + INVITATION_LIFETIME_SECONDS,
            created_at: now,
        };
        self.store.put_invitation(&row).await?;
        Ok(InvitationIssued {
            code: SecretValue::from(code),
            expires_at: rfc3339(row.expires_at),
        })
    }

    /// The member an invitation route names, after its rules.
    async fn invitation_target(&self, p: &Principal, uid: &str, action: Action) -> Result<()> {
        authz::check(p, action, Target::Team)?;
        validate::uid("uid", uid)?;
        let m = self
            .store
            .get_member(&p.team_uid, uid)
            .await?
            .ok_or(CoreError::NotFound("member"))?;
        if m.role == Role::Owner {
            authz::check(p, Action::InviteOwner, Target::Member(uid))?;
        }
        Ok(())
    }

    /// `POST /api/v1/team/members/{uid}/invitation`: a new code; the old one dies.
    pub async fn reissue_invitation(&self, p: &Principal, uid: &str) -> Result<InvitationIssued> {
        self.invitation_target(p, uid, Action::ReissueInvitation)
            .await?;
        // A code gives a member their first key. Re-issuing one for a member
        // who holds keys would let the admin redeem it and act as them.
        let keys = self
            .store
            .list_api_keys_page(&p.team_uid, Some((ActorType::User, uid)), None, 1)
            .await?;
        if !keys.is_empty() {
            return Err(CoreError::Conflict(format!(
                "member {uid} already has an API key; an invitation is only for a member's first \
                 key. The member creates more keys themselves (byollm api-keys create); to replace \
                 a lost key, revoke the member's keys first (byollm api-keys revoke ID), then \
                 re-issue the invitation"
            )));
        }
        self.issue_invitation(&p.team_uid, uid).await
    }

    /// `DELETE /api/v1/team/members/{uid}/invitation`.
    pub async fn revoke_invitation(&self, p: &Principal, uid: &str) -> Result<()> {
        self.invitation_target(p, uid, Action::RevokeInvitation)
            .await?;
        if self.store.delete_invitation(&p.team_uid, uid).await? {
            Ok(())
        } else {
            Err(CoreError::NotFound("invitation"))
        }
    }

    /// `POST /api/v1/invitations/redeem` (public): the member's first API key, or
    /// `None` when the code is not a live invitation (unknown, used, revoked,
    /// re-issued or expired) — the caller counts that as a failed
    /// authentication.
    pub async fn redeem_invitation(&self, code: &str) -> Result<Option<InvitationRedeemed>> {
        let code = code.trim();
        if !code.starts_with(ids::INVITATION_PREFIX) || code.len() > MAX_CODE_LEN {
            return Ok(None);
        }
        let hash = ids::hash_secret(code);
        let now = self.clock.now();
        // The team's maximum key lifetime applies to the first key too, and
        // the team is known only from the invitation: read it first; the
        // redemption itself is one transaction in the store.
        let Some(inv) = self.store.find_invitation(&hash).await? else {
            return Ok(None);
        };
        let expires_at = self.key_expiry(&inv.team_uid, None).await?;
        let mut key = None;
        let row = self
            .store
            .redeem_invitation(&hash, now, |inv| {
                let owner = Actor {
                    actor_type: ActorType::User,
                    uid: inv.member_uid.clone(),
                };
                let (row, secret) = new_key_row(
                    &inv.team_uid,
                    &owner,
                    "first key (invitation)".to_owned(),
                    now,
                    expires_at,
                );
                key = Some(secret);
                row
            })
            .await?;
        let (Some(row), Some(key)) = (row, key) else {
            return Ok(None);
        };
        let team = self.team(&row.team_uid).await?;
        let m = self
            .store
            .get_member(&row.team_uid, &row.owner_uid)
            .await?
            .ok_or(CoreError::NotFound("member"))?;
        Ok(Some(InvitationRedeemed {
            team: TeamInfo {
                uid: team.uid,
                name: team.name,
            },
            member: Member {
                uid: m.uid,
                email: m.email,
                role: m.role,
            },
            api_key: created(row, key),
        }))
    }
}
