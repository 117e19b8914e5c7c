//! Usage and credits: members read their own, admins the team's (any member's,
//! agent's or run's).
//!
//! Invariants: the run days (platform and compute by the UTC day a run
//! started) come from the same runs as the buckets and sum to them. A caller
//! reads its own requests, even those still queued for the
//! writer on this replica. Requests are listed a page at a time in
//! `(created_at, id)` order with the one paging helper (`page.rs`), and a walk
//! from the first page following `next_cursor` lists every request committed
//! before it began exactly once.

use std::collections::BTreeMap;

use byollm_api::types::{CreditBuckets, RunCreditsDay, UsageQuery, UsageReport, UsageRequest};

use super::page::Page;
use super::{Core, Result};
use crate::CoreError;
use crate::auth::Principal;
use crate::authz::{self, Action, Target};
use crate::store::{UsageFilter, UsageKey};
use crate::usage::{COMMIT_WAIT, PLATFORM_CREDITS_PER_RUN, compute_credits};
use crate::validate;
use byollm_api::clock::rfc3339;

impl Core {
    /// `GET /api/v1/usage`: members see their own; admins the team's.
    pub async fn usage(&self, p: &Principal, q: UsageQuery) -> Result<UsageReport> {
        authz::check(p, Action::ReadUsage, Target::Team)?;
        let page = Page::parse(q.limit, q.cursor.as_deref())?;
        let after = page.cursor.as_ref().map(|c| UsageKey {
            created_at: c.created_at,
            id: c.id.clone(),
        });
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
            .list_usage(&p.team_uid, &filter, after.as_ref(), page.fetch())
            .await?;
        let next_cursor = page.finish(&mut rows, |r| (r.created_at, r.id.clone()));
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
        // The run buckets per UTC day a run started (the day of its RFC 3339 time).
        let mut days: BTreeMap<String, RunCreditsDay> = BTreeMap::new();
        for run in runs {
            // A run past its maximum age counts up to it, swept or not yet.
            let end = run.finished_at.unwrap_or(now).min(run.token_expires_at);
            let compute = compute_credits(end - run.created_at);
            buckets.platform += PLATFORM_CREDITS_PER_RUN;
            buckets.compute += compute;
            let day: String = rfc3339(run.created_at).chars().take(10).collect();
            let d = days.entry(day.clone()).or_insert_with(|| RunCreditsDay {
                day,
                runs: 0,
                platform: 0.0,
                compute: 0.0,
            });
            d.runs += 1;
            d.platform += PLATFORM_CREDITS_PER_RUN;
            d.compute += compute;
        }
        Ok(UsageReport {
            buckets,
            requests,
            next_cursor,
            run_days: days.into_values().collect(),
        })
    }
}
