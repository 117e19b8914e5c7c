//! The admin audit trail: [`Core::audit_event`], the one place an
//! administrative operation's event is made, handed to the store write that
//! makes the change (the store writes both in one transaction: the change is
//! not applied unless its event is), and `GET /api/v1/audit`
//! ([`Core::audit_events`]).
//!
//! Invariants: an event names who acted (actor type and uid, and a credential
//! fingerprint, never the credential), the action, the target, the request id
//! (from [`with_request_id`], set by the server for each request) and the
//! changed fields, which never hold a secret (callers pass field values that
//! are not secrets: API keys and tokens are never among them). Events are read
//! within the caller's team only, by admins, a page at a time in `(at, id)`
//! order with the one paging helper (`page.rs`).

use std::future::Future;
use std::sync::Arc;

use serde_json::{Map, Value};

use byollm_api::clock::{parse_rfc3339_ms, rfc3339};
use byollm_api::types::{AuditEvent, AuditPage, AuditQuery};

use super::page::Page;
use super::{Core, Result};
use crate::auth::Principal;
use crate::authz::{self, Action, Target};
use crate::ids;
use crate::store::{AuditEventRow, AuditFilter};
use crate::validate::FieldError;

tokio::task_local! {
    static REQUEST_ID: Arc<str>;
}

/// Runs `f` with `id` as the request id its audit events carry.
pub async fn with_request_id<F: Future>(id: Arc<str>, f: F) -> F::Output {
    REQUEST_ID.scope(id, f).await
}

fn current_request_id() -> Option<String> {
    REQUEST_ID.try_with(|id| id.to_string()).ok()
}

/// The fields that differ between `before` and `after` (JSON objects), as
/// `{"path.to.field": {"before": …, "after": …}}`; nested objects are walked.
pub fn changed_fields(before: &Value, after: &Value) -> Value {
    fn walk(path: &str, before: &Value, after: &Value, out: &mut Map<String, Value>) {
        match (before, after) {
            (Value::Object(b), Value::Object(a)) => {
                let mut keys: Vec<&String> = b.keys().chain(a.keys()).collect();
                keys.sort();
                keys.dedup();
                for k in keys {
                    let p = if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    };
                    walk(
                        &p,
                        b.get(k).unwrap_or(&Value::Null),
                        a.get(k).unwrap_or(&Value::Null),
                        out,
                    );
                }
            }
            _ if before != after => {
                out.insert(
                    path.to_owned(),
                    serde_json::json!({"before": before, "after": after}),
                );
            }
            _ => {}
        }
    }
    let mut out = Map::new();
    walk("", before, after, &mut out);
    Value::Object(out)
}

impl Core {
    /// The event of one administrative change by `p`: `action` (e.g.
    /// `member.create`) on `target` (e.g. `member:<uid>`), with `changes` (a
    /// JSON object of non-secret fields); the store writes it with the change.
    pub(crate) fn audit_event(
        &self,
        p: &Principal,
        action: &str,
        target: String,
        changes: &Value,
    ) -> AuditEventRow {
        let fingerprint = p.credential_hash.get(..16).unwrap_or(&p.credential_hash);
        AuditEventRow {
            id: ids::new_id("aud"),
            team_uid: p.team_uid.clone(),
            at: self.clock.now(),
            actor_type: p.actor.actor_type.as_str().to_owned(),
            actor_uid: p.actor.uid.clone(),
            credential: format!("{}:{fingerprint}", p.kind.as_str()),
            action: action.to_owned(),
            target,
            request_id: current_request_id(),
            changes: changes.to_string(),
        }
    }

    /// `GET /api/v1/audit`: the team's events (admins), oldest first.
    pub async fn audit_events(&self, p: &Principal, q: AuditQuery) -> Result<AuditPage> {
        authz::check(p, Action::ReadAudit, Target::Team)?;
        let page = Page::parse(q.limit, q.cursor.as_deref())?;
        let time = |field: &str, v: &Option<String>| -> std::result::Result<_, FieldError> {
            v.as_deref()
                .map(|t| {
                    parse_rfc3339_ms(t)
                        .map(|ms| ms.div_euclid(1000))
                        .ok_or_else(|| {
                            FieldError::new(
                                field,
                                "expected an RFC 3339 time, e.g. 2026-01-31T12:00:00Z",
                            )
                        })
                })
                .transpose()
        };
        let filter = AuditFilter {
            action: q.action,
            actor_uid: q.actor,
            target: q.target,
            since: time("since", &q.since)?,
            until: time("until", &q.until)?,
        };
        let mut rows = self
            .store
            .list_audit_events(
                &p.team_uid,
                &filter,
                page.cursor.as_ref().map(|c| (c.created_at, c.id.as_str())),
                page.fetch(),
            )
            .await?;
        let next_cursor = page.finish(&mut rows, |r| (r.at, r.id.clone()));
        Ok(AuditPage {
            events: rows
                .into_iter()
                .map(|r| AuditEvent {
                    id: r.id,
                    at: rfc3339(r.at),
                    actor_type: r.actor_type,
                    actor_uid: r.actor_uid,
                    credential: r.credential,
                    action: r.action,
                    target: r.target,
                    request_id: r.request_id,
                    changes: serde_json::from_str(&r.changes).unwrap_or(Value::Null),
                })
                .collect(),
            next_cursor,
        })
    }
}
