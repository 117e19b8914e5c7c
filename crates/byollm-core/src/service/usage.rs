//! Usage and credits: members read their own, admins the team's (any member's,
//! agent's or run's).
//!
//! Invariants: a caller reads its own requests, even those still queued for the
//! writer on this replica. Requests are listed a page at a time in
//! `(created_at, id)` order; the cursor is opaque to callers (base64url of
//! `v1:<created_at>:<id>`), and a walk from the first page following
//! `next_cursor` lists every request committed before it began exactly once.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use byollm_api::types::{
    CreditBuckets, USAGE_DEFAULT_LIMIT, USAGE_MAX_LIMIT, UsageQuery, UsageReport, UsageRequest,
};

use super::{Core, Result};
use crate::CoreError;
use crate::auth::Principal;
use crate::authz::{self, Action, Target};
use crate::store::{UsageFilter, UsageKey};
use crate::usage::{COMMIT_WAIT, PLATFORM_CREDITS_PER_RUN, compute_credits};
use crate::validate::{self, FieldError};
use byollm_api::clock::rfc3339;

/// The version tag inside a cursor, so the format can change without old
/// cursors being misread.
const CURSOR_VERSION: &str = "v1";

/// The cursor of the page that starts after `key`.
pub(super) fn encode_cursor(key: &UsageKey) -> String {
    URL_SAFE_NO_PAD.encode(format!("{CURSOR_VERSION}:{}:{}", key.created_at, key.id))
}

/// The key a cursor names, or a 400 naming `cursor`.
pub(super) fn decode_cursor(cursor: &str) -> std::result::Result<UsageKey, FieldError> {
    let bad = || {
        FieldError::new(
            "cursor",
            "not a cursor of this API; pass a `next_cursor` from a previous page unchanged",
        )
    };
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| bad())?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    let mut parts = text.splitn(3, ':');
    let (Some(CURSOR_VERSION), Some(created_at), Some(id)) =
        (parts.next(), parts.next(), parts.next())
    else {
        return Err(bad());
    };
    let created_at = created_at.parse::<i64>().map_err(|_| bad())?;
    validate::uid("cursor", id).map_err(|_| bad())?;
    Ok(UsageKey {
        created_at,
        id: id.to_owned(),
    })
}

/// The page size a query asks for, or a 400 naming `limit`.
pub(super) fn page_limit(limit: Option<u32>) -> std::result::Result<u32, FieldError> {
    match limit {
        None => Ok(USAGE_DEFAULT_LIMIT),
        Some(l) if (1..=USAGE_MAX_LIMIT).contains(&l) => Ok(l),
        Some(l) => Err(FieldError::new(
            "limit",
            format!("{l} is out of range; expected 1 to {USAGE_MAX_LIMIT}"),
        )),
    }
}

impl Core {
    /// `GET /api/v1/usage`: members see their own; admins the team's.
    pub async fn usage(&self, p: &Principal, q: UsageQuery) -> Result<UsageReport> {
        authz::check(p, Action::ReadUsage, Target::Team)?;
        let limit = page_limit(q.limit)?;
        let after = q.cursor.as_deref().map(decode_cursor).transpose()?;
        for (field, value) in [
            ("run_id", &q.run_id),
            ("agent_uid", &q.agent_uid),
            ("member_uid", &q.member_uid),
        ] {
            if let Some(v) = value {
                validate::uid(field, v)?;
            }
        }
        let mut filter = UsageFilter {
            run_id: q.run_id,
            agent_uid: q.agent_uid,
            member_uid: q.member_uid,
        };
        // A filter naming an object the team does not have is a 404, as for
        // every other route: another team's uids are never answered with an
        // empty report that looks like "no usage".
        if let Some(run) = &filter.run_id
            && self.store.get_run(&p.team_uid, run).await?.is_none()
        {
            return Err(CoreError::NotFound("run"));
        }
        if let Some(agent) = &filter.agent_uid
            && self.store.get_agent(&p.team_uid, agent).await?.is_none()
        {
            return Err(CoreError::NotFound("agent"));
        }
        if let Some(member) = &filter.member_uid {
            if self.store.get_member(&p.team_uid, member).await?.is_none() {
                return Err(CoreError::NotFound("member"));
            }
            authz::check(p, Action::ReadMemberUsage, Target::Member(member))?;
        }
        if !authz::allows(p, Action::ReadTeamUsage, Target::Team) {
            filter.member_uid = Some(p.actor.uid.clone());
        }
        // A request's row is committed before its response ends, but a report
        // may race requests still finishing: wait for this replica's queue, at
        // most the commit wait (while the store fails it is retried for ever).
        let _ = tokio::time::timeout(COMMIT_WAIT, self.usage.flush()).await;
        // One row more than the page shows: whether there is a next page.
        let mut rows = self
            .store
            .list_usage(&p.team_uid, &filter, after.as_ref(), i64::from(limit) + 1)
            .await?;
        let next_cursor = if rows.len() > limit as usize {
            rows.truncate(limit as usize);
            rows.last().map(|r| {
                encode_cursor(&UsageKey {
                    created_at: r.created_at,
                    id: r.id.clone(),
                })
            })
        } else {
            None
        };
        let runs = self.store.list_runs(&p.team_uid, &filter).await?;
        // The bucket covers every matching row, summed by the store, not only
        // the rows this report lists.
        let inference = self
            .store
            .sum_inference_microcredits(&p.team_uid, &filter)
            .await?;
        let now = self.clock.now();
        let mut buckets = CreditBuckets {
            inference: inference as f64 / 1e6,
            ..CreditBuckets::default()
        };
        let mut requests = Vec::with_capacity(rows.len());
        for r in rows {
            let credits = r.inference_microcredits as f64 / 1e6;
            requests.push(UsageRequest {
                id: r.id,
                run_id: r.run_id,
                principal: format!("{}:{}", r.actor.actor_type.as_str(), r.actor.uid),
                model: r.model,
                route: r.route,
                attempts: serde_json::from_str(&r.attempts).unwrap_or(serde_json::Value::Null),
                input_tokens: r.input_tokens,
                output_tokens: r.output_tokens,
                credits,
                created_at: rfc3339(r.created_at),
            });
        }
        for run in runs {
            buckets.platform += PLATFORM_CREDITS_PER_RUN;
            // A run past its maximum age counts up to it, swept or not yet.
            let end = run.finished_at.unwrap_or(now).min(run.token_expires_at);
            buckets.compute += compute_credits(end - run.created_at);
        }
        Ok(UsageReport {
            buckets,
            requests,
            next_cursor,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let key = UsageKey {
            created_at: 1_800_000_123,
            id: "use_abc-1".into(),
        };
        assert_eq!(decode_cursor(&encode_cursor(&key)).unwrap(), key);
        for bad in [
            "",
            "!!",
            "djE6eDp1c2VfYQ", // v1:x:use_a (time not a number)
            &URL_SAFE_NO_PAD.encode("v2:1:use_a"),
            &URL_SAFE_NO_PAD.encode("v1:1:USE A"),
            &URL_SAFE_NO_PAD.encode("v1:1"),
        ] {
            assert_eq!(decode_cursor(bad).unwrap_err().field, "cursor", "{bad}");
        }
    }

    #[test]
    fn limits_are_bounded() {
        assert_eq!(page_limit(None).unwrap(), USAGE_DEFAULT_LIMIT);
        assert_eq!(page_limit(Some(1)).unwrap(), 1);
        assert_eq!(page_limit(Some(USAGE_MAX_LIMIT)).unwrap(), USAGE_MAX_LIMIT);
        for l in [0, USAGE_MAX_LIMIT + 1] {
            assert_eq!(page_limit(Some(l)).unwrap_err().field, "limit");
        }
    }
}
