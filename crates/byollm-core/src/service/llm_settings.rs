//! The team's LLM settings: read by members, replaced (`PUT`, a complete
//! document) or edited (`PATCH`, a JSON Merge Patch) by admins.
//!
//! Invariants: every write is a compare-and-swap on the settings' version, so
//! two admins editing at once never lose a change (a PATCH re-applies itself on
//! the newer document; a write with a stale `If-Match` is a 412). AWS
//! credentials leave the broker when what chose them changes: the Bedrock host
//! settings or what goes into the identity tokens the team exchanges.

use byollm_api::types::LlmSettings;

use super::{Core, Result};
use crate::auth::Principal;
use crate::authz::{self, Action, Target};
use crate::error::CoreError;
use crate::merge_patch::merge_patch;
use crate::settings;
use crate::validate::{self, FieldError};
use crate::versioned::{self, IfMatch, MAX_ATTEMPTS, Versioned};

impl Core {
    /// `GET /api/v1/team/llm-settings`, with the version for the ETag.
    pub async fn llm_settings(&self, p: &Principal) -> Result<Versioned<LlmSettings>> {
        authz::check(p, Action::ReadLlmSettings, Target::Team)?;
        self.versioned_settings(&p.team_uid).await
    }

    /// `PUT /api/v1/team/llm-settings`: `new` as parsed from `doc`, the body
    /// as sent, which must be a complete document
    /// ([`settings::require_complete`]).
    pub async fn put_llm_settings(
        &self,
        p: &Principal,
        new: LlmSettings,
        doc: &serde_json::Value,
        if_match: Option<IfMatch>,
    ) -> Result<Versioned<LlmSettings>> {
        authz::check(p, Action::WriteLlmSettings, Target::Team)?;
        settings::require_complete(doc)?;
        self.write_llm_settings(p, if_match, |_| Ok(new.clone()))
            .await
    }

    /// `PATCH /api/v1/team/llm-settings`: a JSON Merge Patch (RFC 7396) of the
    /// current document.
    pub async fn patch_llm_settings(
        &self,
        p: &Principal,
        patch: serde_json::Value,
        if_match: Option<IfMatch>,
    ) -> Result<Versioned<LlmSettings>> {
        authz::check(p, Action::WriteLlmSettings, Target::Team)?;
        if !patch.is_object() {
            return Err(
                FieldError::new("body", "expected a JSON object (a JSON Merge Patch)").into(),
            );
        }
        self.write_llm_settings(p, if_match, |current| {
            let mut doc =
                serde_json::to_value(current).map_err(|e| CoreError::Internal(e.to_string()))?;
            merge_patch(&mut doc, &patch);
            let merged = validate::from_json_value(doc.clone())?;
            // A `null` may not clear a required field back to a default.
            settings::require_complete(&doc)?;
            Ok(merged)
        })
        .await
    }

    async fn versioned_settings(&self, team_uid: &str) -> Result<Versioned<LlmSettings>> {
        self.store
            .get_settings_versioned(team_uid)
            .await?
            .ok_or_else(|| {
                CoreError::Internal(format!(
                    "team {team_uid} of an authenticated caller is missing"
                ))
            })
    }

    /// Reads, computes the new document with `edit`, validates it and writes it
    /// if nobody wrote in between; re-reads and retries otherwise (or, with
    /// `If-Match`, refuses with 412).
    async fn write_llm_settings(
        &self,
        p: &Principal,
        if_match: Option<IfMatch>,
        edit: impl Fn(&LlmSettings) -> Result<LlmSettings>,
    ) -> Result<Versioned<LlmSettings>> {
        for _ in 0..MAX_ATTEMPTS {
            let old = self.versioned_settings(&p.team_uid).await?;
            if let Some(m) = &if_match {
                m.check(old.version)?;
            }
            let new = edit(&old.value)?;
            settings::validate_llm_settings(&new)?;
            let audit = self.audit_event(
                p,
                "settings.update",
                "team".into(),
                &settings_change(&old.value, &new),
            );
            if !self
                .store
                .put_settings_if(&p.team_uid, &new, old.version, Some(&audit))
                .await?
            {
                if if_match.is_some() {
                    return Err(versioned::stale());
                }
                continue;
            }
            self.bump();
            if chooses_credentials_differently(&old.value, &new) {
                self.broker.drop_team(&p.team_uid);
            }
            return Ok(Versioned {
                value: new,
                version: old.version + 1,
            });
        }
        Err(versioned::contended())
    }
}

/// Whether the team's brokered cloud credentials were chosen under settings
/// that no longer hold: a cloud's host (Bedrock's role, region and
/// enforcement; Vertex AI's pool, provider and service account; Azure's
/// identity and subject granularity) or what the identity tokens exchanged
/// for them say (subject, tags, source identity, audiences).
fn chooses_credentials_differently(old: &LlmSettings, new: &LlmSettings) -> bool {
    old.hosts.aws_bedrock != new.hosts.aws_bedrock
        // The subject granularity chooses which FIC an Azure token matches: a
        // token exchanged under the old one must not outlive the change.
        || old.hosts.azure_foundry != new.hosts.azure_foundry
        // Likewise a Google access token: the pool, provider or service
        // account it was exchanged for may be the ones just changed.
        || old.hosts.gcp_vertex != new.hosts.gcp_vertex
        || old.subject_template != new.subject_template
        || old.session_tags != new.session_tags
        || old.source_identity != new.source_identity
        || old.token_audiences != new.token_audiences
}

/// The audit entry of a settings write: the changed fields, before and after.
/// Team settings hold no secret (role ARNs, regions, model lists).
fn settings_change(old: &LlmSettings, new: &LlmSettings) -> serde_json::Value {
    let as_json = |s: &LlmSettings| serde_json::to_value(s).unwrap_or_default();
    super::changed_fields(&as_json(old), &as_json(new))
}
