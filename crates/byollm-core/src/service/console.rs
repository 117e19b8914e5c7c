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

use secrecy::{ExposeSecret as _, SecretString};
use serde_json::json;

use super::{Core, Result};
use crate::auth::{AuthFailure, CredentialKind, Principal};
use crate::error::CoreError;
use crate::ids;
use crate::store::ConsoleSessionRow;

/// How long a console session lives after sign-in (12 hours, issue 16).
pub const CONSOLE_SESSION_SECONDS: i64 = 12 * 3600;

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

    /// The live session of a cookie, its key authenticated again; `None` when
    /// there is none (never opened, signed out, expired, or its key revoked:
    /// then the session is deleted too).
    pub async fn console_session(&self, cookie: &str) -> Result<Option<ConsoleSession>> {
        let id_hash = ids::hash_secret(cookie);
        let now = self.clock.now();
        let Some(row) = self.store.find_console_session(&id_hash, now).await? else {
            return Ok(None);
        };
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

    /// Deletes sessions past their end; how many (maintenance).
    pub async fn purge_console_sessions(&self) -> Result<u64> {
        Ok(self.store.purge_console_sessions(self.clock.now()).await?)
    }
}
