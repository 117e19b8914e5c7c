//! Other replicas' writes, heard through the store's change notifications
//! ([`crate::store::notify`], PostgreSQL only): each one drops what this
//! replica cached about the object it names, at once.
//!
//! Invariants:
//! - [`Core::invalidate`] is the one entry point: the auth cache (by what the
//!   change names, with the generation rule), the routing epoch (the gateway's
//!   caller cache), the broker's AWS credentials and the keyring.
//! - From the moment the listener is started until it first subscribes, and
//!   from a lost connection until it subscribes again, caches are not trusted:
//!   authentication and the gateway's caller context ask the store on every
//!   request. On (re-)subscription everything cached is dropped (changes may
//!   have been missed), then the caches are trusted again.
//! - A replica skips its own announcements (same store origin): the write's
//!   caller already dropped what this replica cached, knowing the old value
//!   (a settings change that keeps the role keeps its credentials). Other
//!   replicas do not know the old value and drop more: a team's settings
//!   change drops all its AWS credentials there.
//! - SQLite has no listener: the local drops done by each write are enough.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio_util::sync::CancellationToken;

use byollm_api::types::{Actor, ActorType};

use super::Core;
use crate::bounded::Cause;
use crate::store::notify::{Change, ChangeKind, Heard};

impl Core {
    /// Drops what this replica cached about `change` (announced by another
    /// replica or an offline command).
    pub async fn invalidate(&self, change: &Change) {
        let team = change.team.as_str();
        let id = change.id.as_str();
        let actor = |actor_type| Actor {
            actor_type,
            uid: id.to_owned(),
        };
        match change.kind {
            ChangeKind::KeyRevoked => {
                self.auth
                    .evict_where(|c| c.principal.team_uid == team && c.key_id == Some(id));
            }
            ChangeKind::MemberChanged | ChangeKind::AgentChanged => {
                let a = actor(match change.kind {
                    ChangeKind::MemberChanged => ActorType::User,
                    _ => ActorType::ServiceAccount,
                });
                self.forget_actor(team, &a, Cause::SettingsChanged);
            }
            ChangeKind::MemberRemoved => {
                self.forget_actor(team, &actor(ActorType::User), Cause::Removed);
            }
            ChangeKind::AgentRemoved => {
                self.forget_actor(team, &actor(ActorType::ServiceAccount), Cause::Removed);
            }
            ChangeKind::RunEnded => {
                self.auth.evict_where(|c| {
                    c.principal.team_uid == team && c.principal.run_id.as_deref() == Some(id)
                });
                self.broker.drop_run(team, id);
            }
            ChangeKind::TeamSettings => {
                self.broker.drop_team(team);
            }
            ChangeKind::SigningKeys => self.reload_keys().await,
        }
        self.bump();
    }

    fn forget_actor(&self, team: &str, actor: &Actor, cause: Cause) {
        // A run token acts as its run's actor, so this catches the actor's
        // runs' tokens too (runs it only triggered arrive as `RunEnded`).
        self.auth
            .evict_where(|c| c.principal.team_uid == team && &c.principal.actor == actor);
        self.broker.drop_actor(team, actor, cause);
    }

    async fn reload_keys(&self) {
        if let Err(e) = self.keyring.maintain().await {
            tracing::warn!(error = %e, "signing keys changed elsewhere but could not be reloaded; maintenance retries");
        }
    }

    /// Drops everything cached: changes may have been missed.
    async fn forget_everything(&self) {
        self.auth.evict_all();
        self.broker.drop_all(Cause::SettingsChanged);
        self.bump();
        self.reload_keys().await;
    }

    /// Whether this replica's caches may answer (false while it may be missing
    /// other replicas' changes); the gateway's caller cache asks this.
    pub fn caches_trusted(&self) -> bool {
        self.auth.is_trusted()
    }

    /// Times this replica subscribed (again) to other replicas' changes.
    pub fn subscriptions(&self) -> u64 {
        self.subscriptions.load(Ordering::SeqCst)
    }

    /// Follows other replicas' changes until `shutdown`; returns at once on
    /// SQLite. Run it on a task of the server's tracker.
    pub async fn follow_changes(self: Arc<Self>, shutdown: CancellationToken) {
        let Some(mut listener) = self.store.change_listener() else {
            return;
        };
        self.auth.set_trusted(false);
        loop {
            let heard = tokio::select! {
                () = shutdown.cancelled() => return,
                h = listener.next() => h,
            };
            match heard {
                Heard::Subscribed => {
                    self.forget_everything().await;
                    self.auth.set_trusted(true);
                    self.subscriptions.fetch_add(1, Ordering::SeqCst);
                    tracing::info!("listening for other replicas' changes");
                }
                Heard::Change(c) if c.origin == self.store.origin() => {}
                Heard::Change(c) => self.invalidate(&c).await,
                Heard::Unknown => self.forget_everything().await,
                Heard::Lost => {
                    if self.auth.is_trusted() {
                        tracing::warn!(
                            "lost the change notifications; caches bypassed until listening again"
                        );
                    }
                    self.auth.set_trusted(false);
                    self.bump();
                }
            }
        }
    }
}
