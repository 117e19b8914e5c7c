//! The keyring: which signing keys are published, which one signs, and the
//! lifecycle pending → active → retired → removed (DESIGN §3).
//!
//! Every lifecycle change is a compare-and-swap on the store's keyring generation,
//! so two replicas (or two `byollm keys rotate`) racing leave exactly one active
//! key. Each replica keeps the keys in memory and reloads them periodically
//! ([`Keyring::maintain`]), so JWKS and signing never touch the store.

use std::sync::Arc;

use parking_lot::RwLock;
use serde::Serialize;

use byollm_api::clock::Clock;

use super::kek::{Kek, KekError};
use super::keys::{Algorithm, Jwk, KeyError, SigningKey};
use super::{PREPUBLISH_SECONDS, RETIRE_LEEWAY_SECONDS};
use crate::store::{KeyChange, KeyRow, KeyState, Store, StoreError};

/// Keyring failures.
#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A key could not be sealed or opened.
    #[error(transparent)]
    Kek(#[from] KekError),
    /// A key could not be made or parsed.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// Lost the compare-and-swap too many times in a row.
    #[error("the keyring kept changing under this rotation; try again")]
    Contended,
}

/// A published key as `byollm keys list` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyInfo {
    /// Key id.
    pub kid: String,
    /// Algorithm.
    pub alg: String,
    /// `pending`, `active` or `retired`.
    pub state: String,
    /// Created (Unix seconds).
    pub created_at: i64,
    /// A pending key signs from here on.
    pub activate_after: i64,
    /// A retired key is published until here.
    pub verify_until: Option<i64>,
}

/// What [`Keyring::rotate`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RotateOutcome {
    /// A new key was published; it signs from `activate_after`.
    Published {
        /// The new key.
        kid: String,
        /// When it starts signing.
        activate_after: i64,
    },
    /// A key was already pending; nothing new was made.
    AlreadyPending {
        /// The pending key.
        kid: String,
        /// When it starts signing.
        activate_after: i64,
    },
}

/// The loaded keys: the signer and the JWKS document.
#[derive(Debug)]
pub struct KeySet {
    /// The keyring generation these were loaded at.
    pub generation: i64,
    /// The key that signs now.
    pub active: Option<Arc<SigningKey>>,
    /// Every published key's JWK (pending, active, retired).
    pub jwks: Vec<Jwk>,
    /// The lifecycle of each key.
    pub info: Vec<KeyInfo>,
}

/// The issuer's keyring.
#[derive(Debug)]
pub struct Keyring {
    store: Store,
    kek: Arc<Kek>,
    clock: Arc<dyn Clock>,
    algorithm: Algorithm,
    max_token_ttl: i64,
    current: RwLock<Arc<KeySet>>,
}

impl Keyring {
    /// Loads the keyring, creating the first active key on an empty store.
    pub async fn open(
        store: Store,
        kek: Arc<Kek>,
        clock: Arc<dyn Clock>,
        algorithm: Algorithm,
        max_token_ttl: i64,
    ) -> Result<Keyring, KeyringError> {
        let ring = Keyring {
            store,
            kek,
            clock,
            algorithm,
            max_token_ttl,
            current: RwLock::new(Arc::new(KeySet {
                generation: -1,
                active: None,
                jwks: Vec::new(),
                info: Vec::new(),
            })),
        };
        ring.maintain().await?;
        Ok(ring)
    }

    /// The loaded keys.
    pub fn keys(&self) -> Arc<KeySet> {
        self.current.read().clone()
    }

    /// The key that signs now.
    pub fn signer(&self) -> Option<Arc<SigningKey>> {
        self.current.read().active.clone()
    }

    /// Brings the store's keys up to date for this moment (first key, due
    /// activation, expired retirements) and reloads them into memory. Safe to run
    /// on every replica at once: the compare-and-swap lets one win.
    pub async fn maintain(&self) -> Result<(), KeyringError> {
        for _ in 0..8 {
            let (generation, rows) = self.store.load_keys().await?;
            let change = self.plan_maintenance(&rows)?;
            if change.is_empty() {
                return self.load(generation, &rows);
            }
            // Win or lose, reload and look again: the loser sees the winner's keys.
            self.store.apply_key_change(generation, &change).await?;
        }
        Err(KeyringError::Contended)
    }

    /// Starts a rotation: publishes a new pending key that signs after
    /// [`PREPUBLISH_SECONDS`], unless one is already pending. The old key retires
    /// when the new one activates and stays published for the longest token
    /// lifetime plus [`RETIRE_LEEWAY_SECONDS`].
    pub async fn rotate(&self) -> Result<RotateOutcome, KeyringError> {
        self.maintain().await?;
        for _ in 0..8 {
            let (generation, rows) = self.store.load_keys().await?;
            if let Some(p) = rows.iter().find(|k| k.state == KeyState::Pending) {
                self.load(generation, &rows)?;
                return Ok(RotateOutcome::AlreadyPending {
                    kid: p.kid.clone(),
                    activate_after: p.activate_after,
                });
            }
            let now = self.clock.now();
            let row = self.new_key_row(KeyState::Pending, now, now + PREPUBLISH_SECONDS)?;
            let outcome = RotateOutcome::Published {
                kid: row.kid.clone(),
                activate_after: row.activate_after,
            };
            let change = KeyChange {
                insert: vec![row],
                ..KeyChange::default()
            };
            if self.store.apply_key_change(generation, &change).await? {
                self.maintain().await?;
                return Ok(outcome);
            }
        }
        Err(KeyringError::Contended)
    }

    fn new_key_row(
        &self,
        state: KeyState,
        now: i64,
        activate_after: i64,
    ) -> Result<KeyRow, KeyringError> {
        let (key, der) = SigningKey::generate(self.algorithm)?;
        let sealed = self.kek.seal(&der, key.kid().as_bytes())?;
        Ok(KeyRow {
            kid: key.kid().to_owned(),
            alg: key.alg().as_str().to_owned(),
            state,
            private_key_sealed: sealed,
            created_at: now,
            activate_after,
            retired_at: None,
            verify_until: None,
        })
    }

    fn plan_maintenance(&self, rows: &[KeyRow]) -> Result<KeyChange, KeyringError> {
        let now = self.clock.now();
        let mut change = KeyChange::default();
        let due = rows
            .iter()
            .filter(|k| k.state == KeyState::Pending && k.activate_after <= now)
            .max_by_key(|k| (k.activate_after, k.kid.clone()));
        let has_active = rows.iter().any(|k| k.state == KeyState::Active);
        let verify_until = now + self.max_token_ttl + RETIRE_LEEWAY_SECONDS;
        if let Some(next) = due {
            change
                .update
                .push((next.kid.clone(), KeyState::Active, None, None));
            for old in rows.iter().filter(|k| {
                k.kid != next.kid
                    && matches!(k.state, KeyState::Active | KeyState::Pending)
                    && k.activate_after <= now
            }) {
                change.update.push((
                    old.kid.clone(),
                    KeyState::Retired,
                    Some(now),
                    Some(verify_until),
                ));
            }
        } else if !has_active {
            // First start on an empty store: nobody can have cached a JWKS without
            // this key, so it may sign at once.
            change
                .insert
                .push(self.new_key_row(KeyState::Active, now, now)?);
        }
        for gone in rows
            .iter()
            .filter(|k| k.state == KeyState::Retired && k.verify_until.is_some_and(|v| v <= now))
        {
            change.remove.push(gone.kid.clone());
        }
        Ok(change)
    }

    fn load(&self, generation: i64, rows: &[KeyRow]) -> Result<(), KeyringError> {
        if self.current.read().generation == generation {
            return Ok(());
        }
        let mut active = None;
        let mut jwks = Vec::new();
        let mut info = Vec::new();
        for row in rows {
            let der = self.kek.open(&row.private_key_sealed, row.kid.as_bytes())?;
            let key = SigningKey::from_pkcs8(Algorithm::parse(&row.alg)?, &der)?;
            jwks.push(key.jwk().clone());
            info.push(KeyInfo {
                kid: row.kid.clone(),
                alg: row.alg.clone(),
                state: row.state.as_str().to_owned(),
                created_at: row.created_at,
                activate_after: row.activate_after,
                verify_until: row.verify_until,
            });
            if row.state == KeyState::Active {
                active = Some(Arc::new(key));
            }
        }
        *self.current.write() = Arc::new(KeySet {
            generation,
            active,
            jwks,
            info,
        });
        Ok(())
    }
}
