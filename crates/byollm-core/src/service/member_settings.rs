//! A member's own settings (`/api/v1/me/settings`): the Bedrock opt-in.
//!
//! Invariants: the write is a compare-and-swap on the member row's version
//! (its ETag), so a stale `If-Match` is a 412; turning the opt-in off drops the
//! member's AWS credentials at once.

use byollm_api::types::MemberSettings;

use super::{Core, Result};
use crate::auth::Principal;
use crate::authz::{self, Action, Target};
use crate::bounded::Cause;
use crate::error::CoreError;
use crate::versioned::{self, IfMatch, MAX_ATTEMPTS, Versioned};

impl Core {
    /// `GET /api/v1/me/settings`, with the version for the ETag.
    pub async fn member_settings(&self, p: &Principal) -> Result<Versioned<MemberSettings>> {
        authz::check(p, Action::ReadMemberSettings, Target::Team)?;
        let v = self
            .store
            .get_member_opt_in_versioned(&p.team_uid, &p.actor.uid)
            .await?
            .ok_or(CoreError::NotFound("member"))?;
        Ok(Versioned {
            value: MemberSettings {
                aws_bedrock_opt_in: v.value,
            },
            version: v.version,
        })
    }

    /// `PUT /api/v1/me/settings`.
    pub async fn put_member_settings(
        &self,
        p: &Principal,
        s: MemberSettings,
        if_match: Option<IfMatch>,
    ) -> Result<Versioned<MemberSettings>> {
        authz::check(p, Action::WriteMemberSettings, Target::Team)?;
        for _ in 0..MAX_ATTEMPTS {
            let current = self.member_settings(p).await?;
            if let Some(m) = &if_match {
                m.check(current.version)?;
            }
            let audit = self.audit_event(
                p,
                "member_settings.update",
                format!("member:{}", p.actor.uid),
                &serde_json::json!({"aws_bedrock_opt_in": s.aws_bedrock_opt_in}),
            );
            if !self
                .store
                .set_member_opt_in_if(
                    &p.team_uid,
                    &p.actor.uid,
                    s.aws_bedrock_opt_in,
                    current.version,
                    Some(&audit),
                )
                .await?
            {
                if if_match.is_some() {
                    return Err(versioned::stale());
                }
                continue;
            }
            self.bump();
            if !s.aws_bedrock_opt_in {
                self.broker
                    .drop_actor(&p.team_uid, &p.actor, Cause::SettingsChanged);
            }
            return Ok(Versioned {
                value: s,
                version: current.version + 1,
            });
        }
        Err(versioned::contended())
    }
}
