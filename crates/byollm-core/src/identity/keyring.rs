//! The keyring: which signing keys are published, which one signs, and the
//! lifecycle pending → active → retired → removed (DESIGN §3).
//!
//! Two kinds of key live side by side, each with its own `kid` and its own
//! lifecycle: the configured algorithm's (ES256 by default; AWS and Google
//! tokens) and an RS256 one (Entra accepts only RS256 assertions,
//! azure-facts §0.1). They rotate together: one rotation pre-publishes a new
//! key of each kind, and each kind's old key retires when its successor
//! activates. An RS256 key added to a keyring that already signs (an
//! upgrade) is pre-published like a rotation's, since verifiers may have
//! cached a JWKS without it; only an empty store gets active keys at once.
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
        /// The new key of the configured algorithm.
        kid: String,
        /// When it starts signing.
        activate_after: i64,
        /// The new keys of the other kinds published with it (the RS256 key
        /// beside an ES256 one), signing from the same moment.
        companions: Vec<String>,
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
    /// The configured algorithm's key that signs now (another kind's while
    /// the configured one is still pre-published).
    pub active: Option<Arc<SigningKey>>,
    /// Every kind's key that signs now (the configured algorithm's and RS256).
    pub signers: Vec<Arc<SigningKey>>,
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
                signers: Vec::new(),
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

    /// The configured algorithm's key that signs now.
    pub fn signer(&self) -> Option<Arc<SigningKey>> {
        self.current.read().active.clone()
    }

    /// The `alg` key that signs now (RS256 for Entra); `None` while the
    /// keyring has none active, e.g. an RS256 key still pre-published.
    pub fn signer_for(&self, alg: Algorithm) -> Option<Arc<SigningKey>> {
        self.current
            .read()
            .signers
            .iter()
            .find(|k| k.alg() == alg)
            .cloned()
    }

    /// The kinds of key kept: the configured algorithm's, then RS256.
    fn kinds(&self) -> Vec<Algorithm> {
        let mut kinds = vec![self.algorithm];
        if self.algorithm != Algorithm::Rs256 {
            kinds.push(Algorithm::Rs256);
        }
        kinds
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

    /// Starts a rotation: publishes a new pending key of each kind that signs
    /// after [`PREPUBLISH_SECONDS`], unless one is already pending. Each old key
    /// retires when its kind's new one activates and stays published for the
    /// longest token lifetime plus [`RETIRE_LEEWAY_SECONDS`].
    pub async fn rotate(&self) -> Result<RotateOutcome, KeyringError> {
        self.maintain().await?;
        for _ in 0..8 {
            let (generation, rows) = self.store.load_keys().await?;
            let pending = |alg: Algorithm| {
                rows.iter()
                    .find(|k| k.state == KeyState::Pending && k.alg == alg.as_str())
            };
            let now = self.clock.now();
            let mut insert = Vec::new();
            for alg in self.kinds() {
                if pending(alg).is_none() {
                    insert.push(self.new_key_row(
                        alg,
                        KeyState::Pending,
                        now,
                        now + PREPUBLISH_SECONDS,
                    )?);
                }
            }
            // The configured kind's pending key names the rotation, whether
            // it is new or was pending already (an RS256 key added beside it).
            let named = pending(self.algorithm)
                .or_else(|| insert.first())
                .map(|k| (k.kid.clone(), k.activate_after));
            let Some((kid, activate_after)) = named else {
                return Err(KeyringError::Contended);
            };
            if insert.is_empty() {
                self.load(generation, &rows)?;
                return Ok(RotateOutcome::AlreadyPending {
                    kid,
                    activate_after,
                });
            }
            let outcome = RotateOutcome::Published {
                companions: insert
                    .iter()
                    .filter(|r| r.kid != kid)
                    .map(|r| r.kid.clone())
                    .collect(),
                kid,
                activate_after,
            };
            let change = KeyChange {
                insert,
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
        alg: Algorithm,
        state: KeyState,
        now: i64,
        activate_after: i64,
    ) -> Result<KeyRow, KeyringError> {
        let (key, der) = SigningKey::generate(alg)?;
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
        let verify_until = now + self.max_token_ttl + RETIRE_LEEWAY_SECONDS;
        // First start (no key signs yet): nobody can have cached a JWKS with
        // a key that signs, so new keys may sign at once.
        let empty = !rows.iter().any(|k| k.state == KeyState::Active);
        let kinds = self.kinds();
        for alg in &kinds {
            let own: Vec<&KeyRow> = rows.iter().filter(|k| k.alg == alg.as_str()).collect();
            let due = own
                .iter()
                .filter(|k| k.state == KeyState::Pending && k.activate_after <= now)
                .max_by_key(|k| (k.activate_after, k.kid.clone()));
            if let Some(next) = due {
                change
                    .update
                    .push((next.kid.clone(), KeyState::Active, None, None));
                for old in own.iter().filter(|k| {
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
            } else if !own
                .iter()
                .any(|k| matches!(k.state, KeyState::Active | KeyState::Pending))
            {
                let activate_after = if empty { now } else { now + PREPUBLISH_SECONDS };
                let state = if empty {
                    KeyState::Active
                } else {
                    KeyState::Pending
                };
                change
                    .insert
                    .push(self.new_key_row(*alg, state, now, activate_after)?);
            }
        }
        // A kind no longer kept (the configured algorithm changed) retires
        // once the configured kind has an active key.
        if rows
            .iter()
            .any(|k| k.state == KeyState::Active && k.alg == self.algorithm.as_str())
        {
            for old in rows.iter().filter(|k| {
                k.state == KeyState::Active && !kinds.iter().any(|a| a.as_str() == k.alg)
            }) {
                change.update.push((
                    old.kid.clone(),
                    KeyState::Retired,
                    Some(now),
                    Some(verify_until),
                ));
            }
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
        let mut signers = Vec::new();
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
                let key = Arc::new(key);
                if key.alg() == self.algorithm {
                    active = Some(key.clone());
                }
                signers.push(key);
            }
        }
        // After the configured algorithm changed, the old kind's key signs
        // until the new kind's (pre-published) key activates.
        let active = active.or_else(|| signers.first().cloned());
        *self.current.write() = Arc::new(KeySet {
            generation,
            active,
            signers,
            jwks,
            info,
        });
        Ok(())
    }
}
