//! Change notifications between replicas (PostgreSQL `LISTEN/NOTIFY`): a write
//! that changes how a request is authorized or routed announces what it
//! changed, and every replica drops what it cached about it
//! ([`crate::service::Core::invalidate`]).
//!
//! Invariants:
//! - A payload names a kind, a team and an id, never a secret (no key, token,
//!   hash or setting value): anyone who can `LISTEN` learns only that something
//!   changed.
//! - Inside a transaction the `NOTIFY` is sent with the write, so PostgreSQL
//!   delivers it at commit and never for a write that rolled back. A write
//!   that is one statement announces itself right after it; if that announce
//!   fails, the cache TTL is the backstop (logged, the write still stands).
//! - A payload carries its writer's origin (a random id per store handle), so
//!   a replica skips its own announcements: the write's caller already dropped
//!   what it cached, often more precisely (it knows the old value).
//! - SQLite is one node: announcing is a no-op and there is nothing to listen to.
//! - A listener that loses its connection reports [`Heard::Lost`] before
//!   anything else, and [`Heard::Subscribed`] once it listens again: between
//!   the two, notifications may have been missed and caches are stale.

use std::time::Duration;

use secrecy::ExposeSecret as _;
use serde::{Deserialize, Serialize};
use sqlx::postgres::PgListener;

use super::{Engine, Result, Store};

/// The channel every replica listens on.
pub const CHANNEL: &str = "byollm_changes";

/// How long a listener waits before connecting again after a failure.
const RECONNECT_DELAY: Duration = Duration::from_millis(500);

/// What changed. The wire spelling (`snake_case`) is the payload's `kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// An API key was deleted; `id` is the key's id.
    KeyRevoked,
    /// A member's role or own settings changed; `id` is the member.
    MemberChanged,
    /// A member was removed (its keys went, its runs were cancelled).
    MemberRemoved,
    /// An agent's availability, override or fields changed; `id` is the agent.
    AgentChanged,
    /// An agent was removed.
    AgentRemoved,
    /// A run finished, failed, was cancelled or expired; `id` is the run.
    RunEnded,
    /// The team's LLM settings changed; `id` is the team.
    TeamSettings,
    /// The signing keys changed (rotation, activation, retirement); `team` and
    /// `id` are empty.
    SigningKeys,
}

/// One announced change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// What changed.
    pub kind: ChangeKind,
    /// The team it belongs to.
    pub team: String,
    /// The object (see [`ChangeKind`]).
    pub id: String,
    /// Which store handle announced it ([`Store::origin`]); set when sent.
    #[serde(default)]
    pub origin: String,
}

impl Change {
    /// A change of `kind` to object `id` of `team`.
    pub fn new(kind: ChangeKind, team: &str, id: &str) -> Change {
        Change {
            kind,
            team: team.to_owned(),
            id: id.to_owned(),
            origin: String::new(),
        }
    }

    /// The payload `NOTIFY` carries (well under PostgreSQL's 8,000 bytes: ids
    /// are short).
    pub fn payload(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Parses a payload; `None` for one this version does not know (a newer
    /// replica's kind), which the caller treats as "anything may have changed".
    pub fn parse(payload: &str) -> Option<Change> {
        serde_json::from_str(payload).ok()
    }
}

impl Store {
    /// Announces `changes` on `db`: inside a transaction, they are delivered at
    /// its commit. A no-op on SQLite.
    pub(super) async fn announce_in(
        &self,
        db: &mut sqlx::AnyConnection,
        changes: &[Change],
    ) -> Result<()> {
        if self.engine != Engine::Postgres {
            return Ok(());
        }
        for c in changes {
            let c = Change {
                origin: self.origin.to_string(),
                ..c.clone()
            };
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(CHANNEL)
                .bind(c.payload())
                .execute(&mut *db)
                .await?;
        }
        Ok(())
    }

    /// Announces `changes` after a one-statement write; a failure is logged,
    /// not returned (the write stands, other replicas catch up by their cache
    /// TTL).
    pub(super) async fn announce(&self, changes: &[Change]) {
        if self.engine != Engine::Postgres {
            return;
        }
        let sent = async {
            let mut conn = self.pool.acquire().await?;
            self.announce_in(&mut conn, changes).await
        };
        if let Err(e) = sent.await {
            tracing::warn!(error = %e, "change notification not sent; other replicas catch up within their cache TTL");
        }
    }

    /// This handle's origin: the changes it announces carry it.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Whether other replicas' changes can be heard (PostgreSQL).
    pub fn hears_changes(&self) -> bool {
        self.listen_url.is_some()
    }

    /// A listener for other replicas' changes; `None` on SQLite.
    pub fn change_listener(&self) -> Option<ChangeListener> {
        let url = self.listen_url.clone()?;
        Some(ChangeListener { url, inner: None })
    }
}

/// What a [`ChangeListener`] heard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Heard {
    /// Listening (again): changes from here on will be heard.
    Subscribed,
    /// A change.
    Change(Change),
    /// A payload this version does not understand.
    Unknown,
    /// The connection was lost or could not be made: changes may be missed
    /// until the next [`Heard::Subscribed`].
    Lost,
}

/// A dedicated PostgreSQL connection (not from the store's pool, whose Any
/// driver cannot listen) that `LISTEN`s on [`CHANNEL`].
pub struct ChangeListener {
    url: std::sync::Arc<secrecy::SecretString>,
    inner: Option<PgListener>,
}

impl std::fmt::Debug for ChangeListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChangeListener")
            .field("connected", &self.inner.is_some())
            .finish()
    }
}

impl ChangeListener {
    /// The next thing heard. Connects (again) when needed, waiting
    /// [`RECONNECT_DELAY`] after a failed attempt; never returns an error.
    pub async fn next(&mut self) -> Heard {
        let Some(listener) = self.inner.as_mut() else {
            match self.subscribe().await {
                Ok(l) => {
                    self.inner = Some(l);
                    return Heard::Subscribed;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot listen for other replicas' changes; retrying");
                    tokio::time::sleep(RECONNECT_DELAY).await;
                    return Heard::Lost;
                }
            }
        };
        // try_recv: `None` (or an error) means the connection is gone. We drop
        // the listener rather than let sqlx reconnect quietly, so the caller
        // learns when it is subscribed again.
        match listener.try_recv().await {
            Ok(Some(n)) => match Change::parse(n.payload()) {
                Some(c) => Heard::Change(c),
                None => Heard::Unknown,
            },
            Ok(None) | Err(_) => {
                self.inner = None;
                Heard::Lost
            }
        }
    }

    async fn subscribe(&self) -> sqlx::Result<PgListener> {
        let mut l = PgListener::connect(self.url.expose_secret()).await?;
        l.eager_reconnect(false);
        l.listen(CHANNEL).await?;
        Ok(l)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_round_trip_and_name_only_kind_team_id_origin() {
        let c = Change {
            origin: "origin_1".into(),
            ..Change::new(ChangeKind::KeyRevoked, "team_1", "key_1")
        };
        let p = c.payload();
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&p).unwrap(),
            serde_json::json!({"kind": "key_revoked", "team": "team_1", "id": "key_1", "origin": "origin_1"})
        );
        assert_eq!(Change::parse(&p), Some(c));
        // A kind from a newer version is not an error, just unknown.
        assert_eq!(
            Change::parse(r#"{"kind":"new_thing","team":"t","id":"i"}"#),
            None
        );
    }
}
