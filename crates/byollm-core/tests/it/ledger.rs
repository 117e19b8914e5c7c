//! The usage ledger's writer on both stores: `record` returns once the row is
//! committed; a commit that fails is retried with backoff until it succeeds —
//! the row is never dropped — while the request stops waiting after the commit
//! wait; the counters say so.

use std::time::Duration;

use byollm_core::store::{UsageFilter, UsageRow};
use byollm_core::usage::{Recorded, UsageSink, UsageStats};
use sqlx::Connection as _;
use tokio_util::task::TaskTracker;

use crate::stores;

/// Short, so the test does not wait long for the "store is failing" case.
const WAIT: Duration = Duration::from_millis(300);

/// A row with this id, of team `ta`.
fn row(id: &str) -> UsageRow {
    UsageRow {
        id: id.into(),
        ..crate::usage::row("ta", None, 0, 0)
    }
}

async fn exec(url: &str, sql: &str) {
    let mut c = sqlx::AnyConnection::connect(url).await.unwrap();
    sqlx::query(sql).execute(&mut c).await.unwrap();
    c.close().await.unwrap();
}

/// Polls the counters until `done` holds (bounded, no fixed sleep).
async fn until(sink: &UsageSink, done: impl Fn(&UsageStats) -> bool) -> UsageStats {
    for _ in 0..500 {
        let s = sink.stats();
        if done(&s) {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("counters never reached the state: {:?}", sink.stats());
}

#[tokio::test]
async fn a_failing_commit_is_retried_until_the_row_is_stored() {
    sqlx::any::install_default_drivers();
    for t in stores::all().await {
        let tasks = TaskTracker::new();
        let sink = UsageSink::start_with_wait(t.store.clone(), &tasks, WAIT);
        assert_eq!(
            sink.record(row("use_a")).await,
            Recorded::Committed,
            "{}",
            t.name
        );
        let s = sink.stats();
        assert_eq!(
            (s.rows_written, s.commits, s.queue_depth),
            (1, 1, 0),
            "{}",
            t.name
        );

        // The table goes away: the commit fails, the request stops waiting,
        // the row stays queued and the writer keeps retrying.
        exec(
            &t.url,
            "ALTER TABLE usage_requests RENAME TO usage_requests_away",
        )
        .await;
        assert_eq!(
            sink.record(row("use_b")).await,
            Recorded::Queued,
            "{}",
            t.name
        );
        let s = until(&sink, |s| s.rows_retried >= 2).await;
        assert_eq!(s.queue_depth, 1, "{}", t.name);
        assert_eq!(s.answered_before_commit, 1, "{}", t.name);
        assert_eq!(s.rows_written, 1, "{}", t.name);

        // It comes back: the queued row is written by a retry.
        exec(
            &t.url,
            "ALTER TABLE usage_requests_away RENAME TO usage_requests",
        )
        .await;
        tokio::time::timeout(Duration::from_secs(15), sink.flush())
            .await
            .expect("the retried row is committed once the store works again");
        let s = sink.stats();
        assert_eq!(
            (s.rows_written, s.queue_depth, s.rows_lost),
            (2, 0, 0),
            "{}",
            t.name
        );
        let ids: Vec<String> = t
            .store
            .list_usage("ta", &UsageFilter::default(), None, 10)
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(ids, ["use_a", "use_b"], "{}", t.name);
    }
}

#[tokio::test]
async fn rows_queued_together_commit_together() {
    let t = stores::sqlite().await;
    let tasks = TaskTracker::new();
    let sink = UsageSink::start(t.store.clone(), &tasks);
    let ids: Vec<String> = (0..200).map(|n| format!("use_{n:03}")).collect();
    let results = futures::future::join_all(ids.iter().map(|id| sink.record(row(id)))).await;
    assert!(results.iter().all(|r| *r == Recorded::Committed));
    let s = sink.stats();
    assert_eq!(s.rows_written, 200);
    // Group commit: rows that queued while the writer was busy share a
    // transaction (the first commit takes one row, the rest batch up).
    assert!(s.commits < 200, "{s:?}");
    let stored = t
        .store
        .list_usage("ta", &UsageFilter::default(), None, 1000)
        .await
        .unwrap();
    assert_eq!(stored.len(), 200);
}
