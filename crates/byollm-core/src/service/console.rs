//! Web console sessions (issue 16): signing in with an API key opens a
//! server-side session; the browser holds only a random cookie.
//!
//! Invariants:
//! - Only a member's API key signs in (agents' keys and run tokens are refused):
//!   the console acts as a person.
//! - The store keeps the cookie's SHA-256 and the key's SHA-256, never either
//!   secret ([`crate::store::ConsoleSessionRow`]).
//! - A session lives [`CONSOLE_SESSION_SECONDS`] from sign-in whatever happens;
//!   sign-out deletes it; every request re-authenticates the key by its hash
//!   through the same credential cache as the API, so a revoked key (or a
//!   removed member) ends the session at the next request, and a role change is
//!   seen as the API sees it.
//! - Every request acts as the [`Principal`] of the key, so authorization,
//!   validation and audit are exactly the API's.
//! - A one-time sign-in link (`byollm admin login-link`, [`create_sign_in_link`])
//!   is stored hashed, works for [`SIGN_IN_LINK_SECONDS`] and once. The session
//!   it opens has no key: it acts as the member (a member key's principal, its
//!   `credential_hash` the link's hash), re-reads the member on every request
//!   (a removed member ends it, a role change is seen at once) and ends at 12
//!   hours or sign-out like a key session. Revoking a key cannot end it (it
//!   was opened with none); removing the member does.

use secrecy::{ExposeSecret as _, SecretString};
use serde_json::json;

use super::{Core, Result};
use crate::auth::{AuthFailure, CredentialKind, Principal};
use crate::error::CoreError;
use crate::ids;
use crate::store::{AuditEventRow, ConsoleSessionRow, SignInLinkRow, Store};
use crate::validate;
use byollm_api::clock::Clock;
use byollm_api::types::{Actor, ActorType};

/// How long a console session lives after sign-in (12 hours, issue 16).
pub const CONSOLE_SESSION_SECONDS: i64 = 12 * 3600;

/// How long a one-time sign-in link works after it is minted (10 minutes).
pub const SIGN_IN_LINK_SECONDS: i64 = 600;

/// A sign-in link just minted: its token (printed once, in the URL) and whom
/// it signs in.
#[derive(Debug)]
pub struct SignInLink {
    /// The token, the URL's last segment.
    pub token: SecretString,
    /// The member it signs in.
    pub member_uid: String,
    /// When it stops working, Unix seconds.
    pub expires_at: i64,
}

/// Why a sign-in link opened no session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkRefusal {
    /// No such link (mistyped, or purged long after it expired).
    Unknown,
    /// It was used already.
    Used,
    /// Its 10 minutes are over.
    Expired,
    /// Its member is no longer in the team.
    MemberGone,
}

/// Mints a one-time sign-in link for a member of a team (`member`: their uid
/// or email) — an operator's act on the store, audited as
/// `console.sign_in_link` by `byollm admin login-link`.
pub async fn create_sign_in_link(
    store: &Store,
    clock: &dyn Clock,
    team_uid: &str,
    member: &str,
) -> Result<SignInLink> {
    validate::uid("team", team_uid)?;
    store
        .get_team(team_uid)
        .await?
        .ok_or(CoreError::NotFound("team"))?;
    let found = store
        .list_members(team_uid)
        .await?
        .into_iter()
        .find(|m| m.uid == member || m.email.eq_ignore_ascii_case(member))
        .ok_or(CoreError::NotFound("member"))?;
    let token = ids::new_sign_in_link();
    let now = clock.now();
    let row = SignInLinkRow {
        token_hash: ids::hash_secret(token.expose_secret()),
        team_uid: team_uid.to_owned(),
        member_uid: found.uid.clone(),
        created_at: now,
        expires_at: now + SIGN_IN_LINK_SECONDS,
        used_at: None,
    };
    let fingerprint = row.token_hash.get(..16).unwrap_or_default();
    let audit = AuditEventRow {
        id: ids::new_id("aud"),
        team_uid: team_uid.to_owned(),
        at: now,
        actor_type: "operator".to_owned(),
        actor_uid: "byollm admin login-link".to_owned(),
        credential: "store".to_owned(),
        action: "console.sign_in_link".to_owned(),
        target: format!("member:{}", found.uid),
        request_id: None,
        changes: json!({
            "link": fingerprint,
            "expires_at": byollm_api::clock::rfc3339(row.expires_at),
        })
        .to_string(),
    };
    store.insert_sign_in_link(&row, Some(&audit)).await?;
    Ok(SignInLink {
        token,
        member_uid: found.uid,
        expires_at: row.expires_at,
    })
}

/// The principal of a member signed in with a link (no key): a member key's
/// rights, the link's hash as its credential.
fn link_principal(
    team_uid: &str,
    member_uid: &str,
    role: byollm_api::types::Role,
    hash: &str,
) -> Principal {
    Principal {
        team_uid: team_uid.to_owned(),
        kind: CredentialKind::MemberKey,
        actor: Actor {
            actor_type: ActorType::User,
            uid: member_uid.to_owned(),
        },
        role: Some(role),
        run_id: None,
        credential_hash: hash.to_owned(),
    }
}

/// The longest a Check setup key lives (the check itself is bounded well
/// below this by the console).
pub const CHECK_SETUP_KEY_SECONDS: i64 = 120;

/// A temporary key for the server's own doctor run ([`Core::check_setup_key`]).
#[derive(Debug)]
pub struct CheckSetupKey {
    /// The key (`Debug` shows `[REDACTED]`).
    pub key: SecretString,
    /// Its id.
    pub id: String,
    /// Its SHA-256.
    pub hash: String,
}

/// A session just opened: the cookie value (shown to the browser once, in
/// `Set-Cookie`) and who it acts as.
#[derive(Debug)]
pub struct ConsoleSignIn {
    /// The cookie's value.
    pub cookie: SecretString,
    /// The key's caller.
    pub principal: Principal,
    /// When the session ends, Unix seconds.
    pub expires_at: i64,
}

/// A live session found by its cookie.
#[derive(Debug, Clone)]
pub struct ConsoleSession {
    /// The key's caller, authenticated again for this request.
    pub principal: Principal,
    /// SHA-256 of the cookie: what the CSRF token is derived from.
    pub id_hash: String,
    /// When the session ends, Unix seconds.
    pub expires_at: i64,
}

impl Core {
    /// Signs in with a presented API key: `Unauthenticated` for a key that is
    /// not live, `Forbidden` for a credential that is not a member's key.
    /// `may_query` is the HTTP layer's failure limiter (see
    /// [`Core::check_credential`]).
    pub async fn open_console_session(
        &self,
        presented: &str,
        may_query: &(dyn Fn() -> bool + Sync),
    ) -> Result<std::result::Result<ConsoleSignIn, AuthFailure>> {
        let principal = match self.check_credential(presented, may_query).await? {
            Ok(p) => p,
            Err(failure) => return Ok(Err(failure)),
        };
        if principal.kind != CredentialKind::MemberKey {
            return Err(CoreError::forbidden(
                "only a member's API key signs in to the console",
                Some(
                    "sign in with your own API key (byollm_key_…), not an agent's key or a run token",
                ),
            ));
        }
        let cookie = ids::new_console_session();
        let now = self.clock.now();
        let row = ConsoleSessionRow {
            id_hash: ids::hash_secret(cookie.expose_secret()),
            team_uid: principal.team_uid.clone(),
            key_hash: principal.credential_hash.clone(),
            member_uid: None,
            created_at: now,
            expires_at: now + CONSOLE_SESSION_SECONDS,
        };
        let audit = self.audit_event(
            &principal,
            "console.sign_in",
            "console_session".to_owned(),
            &json!({ "expires_at": byollm_api::clock::rfc3339(row.expires_at) }),
        );
        self.store
            .insert_console_session(&row, Some(&audit))
            .await?;
        Ok(Ok(ConsoleSignIn {
            cookie,
            principal,
            expires_at: row.expires_at,
        }))
    }

    /// Whether a sign-in link would open a session now (`None`) or why not;
    /// spends nothing (the link's page asks before it signs in, so a link
    /// previewer fetching the URL does not use it up).
    pub async fn sign_in_link_refusal(&self, token: &str) -> Result<Option<LinkRefusal>> {
        let found = self
            .live_link(&ids::hash_secret(token), self.clock.now())
            .await?;
        Ok(found.err())
    }

    async fn live_link(
        &self,
        token_hash: &str,
        now: i64,
    ) -> Result<std::result::Result<(SignInLinkRow, crate::store::MemberRow), LinkRefusal>> {
        let Some(link) = self.store.find_sign_in_link(token_hash).await? else {
            return Ok(Err(LinkRefusal::Unknown));
        };
        if link.used_at.is_some() {
            return Ok(Err(LinkRefusal::Used));
        }
        if now >= link.expires_at {
            return Ok(Err(LinkRefusal::Expired));
        }
        match self
            .store
            .get_member(&link.team_uid, &link.member_uid)
            .await?
        {
            Some(member) => Ok(Ok((link, member))),
            None => Ok(Err(LinkRefusal::MemberGone)),
        }
    }

    /// Signs in with a one-time link's token: spends it and opens a session
    /// acting as its member, audited as `console.sign_in` (`via: link`).
    pub async fn open_console_session_with_link(
        &self,
        token: &str,
    ) -> Result<std::result::Result<ConsoleSignIn, LinkRefusal>> {
        let token_hash = ids::hash_secret(token);
        let now = self.clock.now();
        let (link, member) = match self.live_link(&token_hash, now).await? {
            Ok(found) => found,
            Err(refusal) => return Ok(Err(refusal)),
        };
        let principal = link_principal(&link.team_uid, &member.uid, member.role, &token_hash);
        let cookie = ids::new_console_session();
        let row = ConsoleSessionRow {
            id_hash: ids::hash_secret(cookie.expose_secret()),
            team_uid: link.team_uid.clone(),
            key_hash: token_hash.clone(),
            member_uid: Some(member.uid.clone()),
            created_at: now,
            expires_at: now + CONSOLE_SESSION_SECONDS,
        };
        let audit = self.audit_event(
            &principal,
            "console.sign_in",
            "console_session".to_owned(),
            &json!({
                "expires_at": byollm_api::clock::rfc3339(row.expires_at),
                "via": "link",
            }),
        );
        if !self
            .store
            .spend_sign_in_link(&token_hash, now, &row, Some(&audit))
            .await?
        {
            // Spent by a concurrent click, or expired in between.
            return Ok(Err(if now >= link.expires_at {
                LinkRefusal::Expired
            } else {
                LinkRefusal::Used
            }));
        }
        Ok(Ok(ConsoleSignIn {
            cookie,
            principal,
            expires_at: row.expires_at,
        }))
    }

    /// The live session of a cookie, its key authenticated again; `None` when
    /// there is none (never opened, signed out, expired, or its key revoked:
    /// then the session is deleted too).
    pub async fn console_session(&self, cookie: &str) -> Result<Option<ConsoleSession>> {
        let id_hash = ids::hash_secret(cookie);
        let now = self.clock.now();
        let Some(row) = self.store.find_console_session(&id_hash, now).await? else {
            return Ok(None);
        };
        if let Some(member_uid) = &row.member_uid {
            return match self.store.get_member(&row.team_uid, member_uid).await? {
                Some(m) => Ok(Some(ConsoleSession {
                    principal: link_principal(&row.team_uid, &m.uid, m.role, &row.key_hash),
                    id_hash,
                    expires_at: row.expires_at,
                })),
                None => {
                    self.store.delete_console_session(&id_hash).await?;
                    Ok(None)
                }
            };
        }
        let checked = self
            .auth
            .authenticate_hash(&self.store, self.clock.as_ref(), row.key_hash, &|| true)
            .await?;
        match checked {
            Ok(principal) if principal.team_uid == row.team_uid => Ok(Some(ConsoleSession {
                principal,
                id_hash,
                expires_at: row.expires_at,
            })),
            _ => {
                self.store.delete_console_session(&id_hash).await?;
                Ok(None)
            }
        }
    }

    /// Signs out: deletes the cookie's session (nothing when there is none).
    pub async fn close_console_session(&self, cookie: &str) -> Result<()> {
        self.store
            .delete_console_session(&ids::hash_secret(cookie))
            .await?;
        Ok(())
    }

    /// A short-lived API key of the signed-in member for the server's own
    /// doctor run (the console's Check setup): it lives
    /// [`CHECK_SETUP_KEY_SECONDS`] at most, never leaves the server (the doctor
    /// calls this server over loopback with it) and is deleted by
    /// [`Core::drop_check_setup_key`] when the check ends. Only a member's
    /// session may have one; it is not audited (it changes nothing the team
    /// sees, and it is gone when the page is shown).
    pub async fn check_setup_key(&self, p: &Principal) -> Result<CheckSetupKey> {
        if !p.is_member() {
            return Err(CoreError::forbidden("only a member runs Check setup", None));
        }
        let (row, key) = super::api_keys::new_key_row(
            &p.team_uid,
            &p.actor,
            "console Check setup (temporary)".to_owned(),
            self.clock.now(),
            Some(self.clock.now() + CHECK_SETUP_KEY_SECONDS),
        );
        self.store.insert_api_key(&row, None).await?;
        Ok(CheckSetupKey {
            key: SecretString::from(key.expose().to_owned()),
            id: row.id,
            hash: row.key_hash,
        })
    }

    /// Deletes a [`Core::check_setup_key`] key and forgets it.
    pub async fn drop_check_setup_key(&self, team_uid: &str, k: &CheckSetupKey) -> Result<()> {
        self.store.delete_api_key(team_uid, &k.id, None).await?;
        self.auth.evict(std::slice::from_ref(&k.hash));
        Ok(())
    }

    /// Deletes sessions past their end; how many (maintenance).
    pub async fn purge_console_sessions(&self) -> Result<u64> {
        Ok(self.store.purge_console_sessions(self.clock.now()).await?)
    }
}
