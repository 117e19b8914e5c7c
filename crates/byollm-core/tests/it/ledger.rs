//! The usage ledger's writer on both stores: `record` returns once the row is
//! committed; a commit that fails is retried with backoff until it succeeds —
//! the row is never dropped — while the request stops waiting after the commit
//! wait; the counters say so.

use std::time::Duration;

use byollm_core::store::{AuditRow, COMMITS_PER_CHECKPOINT, Direct, UsageFilter, UsageRow};
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

/// The ids of team `ta`'s stored rows, in `(created_at, id)` order.
async fn stored_ids(store: &byollm_core::store::Store) -> Vec<String> {
    store
        .list_usage("ta", &UsageFilter::default(), None, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect()
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
        // Nothing queued, no commit in flight: the request committed its row
        // itself, without a hand-off to the writer task.
        assert_eq!(s.committed_inline, 1, "{}", t.name);

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
        let ids = stored_ids(&t.store).await;
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
    // Group commit: rows that queued while a commit was in flight share a
    // transaction (the first row is committed inline, the rest batch up).
    assert!(s.commits < 200, "{s:?}");
    assert!(s.committed_inline >= 1, "{s:?}");
    assert!(s.committed_inline < 200, "{s:?}");
    let stored = t
        .store
        .list_usage("ta", &UsageFilter::default(), None, 1000)
        .await
        .unwrap();
    assert_eq!(stored.len(), 200);
}

#[tokio::test]
async fn on_sqlite_a_lone_row_is_committed_on_the_callers_thread_and_never_waits_for_the_lock() {
    sqlx::any::install_default_drivers();
    for t in stores::all().await {
        let wrote = t.store.insert_usage_now(&[row("use_now")]).unwrap();
        if t.name != "sqlite" {
            assert_eq!(wrote, Direct::Declined, "{}: no direct path", t.name);
            continue;
        }
        assert_eq!(wrote, Direct::Committed);
        // Idempotent, as the pool's insert: the same id is stored once.
        assert_eq!(
            t.store.insert_usage_now(&[row("use_now")]).unwrap(),
            Direct::Committed
        );

        // Another connection holds the write lock: the direct path declines
        // at once (it never sleeps in SQLite's busy handler on the caller's
        // thread), writing nothing, and works again once the lock is gone.
        let mut other = sqlx::AnyConnection::connect(&t.url).await.unwrap();
        sqlx::query("BEGIN IMMEDIATE")
            .execute(&mut other)
            .await
            .unwrap();
        let asked = std::time::Instant::now();
        assert_eq!(
            t.store.insert_usage_now(&[row("use_locked")]).unwrap(),
            Direct::Declined
        );
        assert!(
            asked.elapsed() < Duration::from_secs(5),
            "waited for the lock: {:?}",
            asked.elapsed()
        );
        sqlx::query("ROLLBACK").execute(&mut other).await.unwrap();
        other.close().await.unwrap();
        assert_eq!(
            t.store.insert_usage_now(&[row("use_locked")]).unwrap(),
            Direct::Committed
        );

        let ids = stored_ids(&t.store).await;
        assert_eq!(ids, ["use_locked", "use_now"]);
    }
}

/// Several rows on the direct path commit in one transaction: all or none.
/// While another connection holds the write lock none is written, and the
/// same batch later stores each row once, beside the rows already there.
#[tokio::test]
async fn on_sqlite_a_batch_on_the_direct_path_commits_all_or_nothing() {
    sqlx::any::install_default_drivers();
    let t = stores::sqlite().await;
    assert_eq!(
        t.store.insert_usage_now(&[row("use_b")]).unwrap(),
        Direct::Committed
    );
    let batch: Vec<UsageRow> = ["use_a", "use_b", "use_c"].into_iter().map(row).collect();
    let mut other = sqlx::AnyConnection::connect(&t.url).await.unwrap();
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut other)
        .await
        .unwrap();
    assert_eq!(t.store.insert_usage_now(&batch).unwrap(), Direct::Declined);
    sqlx::query("ROLLBACK").execute(&mut other).await.unwrap();
    other.close().await.unwrap();
    assert_eq!(
        stored_ids(&t.store).await,
        ["use_b"],
        "nothing of the declined batch"
    );
    assert_eq!(t.store.insert_usage_now(&batch).unwrap(), Direct::Committed);
    assert_eq!(stored_ids(&t.store).await, ["use_a", "use_b", "use_c"]);
}

/// The direct connection never checkpoints the log itself; every
/// `COMMITS_PER_CHECKPOINT` commits it says one is due, and the checkpoint
/// through the pool puts every frame of the log back in the database.
#[tokio::test]
async fn direct_commits_ask_for_a_checkpoint_that_the_pool_runs() {
    let t = stores::sqlite().await;
    let mut due = Vec::new();
    for n in 0..2 * COMMITS_PER_CHECKPOINT {
        let d = t
            .store
            .insert_usage_now(&[row(&format!("use_{n:04}"))])
            .unwrap();
        if d == Direct::CommittedCheckpointDue {
            due.push(n + 1);
        }
    }
    assert_eq!(due, [COMMITS_PER_CHECKPOINT, 2 * COMMITS_PER_CHECKPOINT]);
    t.store.checkpoint().await.unwrap();
    let mut c = sqlx::AnyConnection::connect(&t.url).await.unwrap();
    let (busy, log, done): (i64, i64, i64) = sqlx::query_as("PRAGMA wal_checkpoint(PASSIVE)")
        .fetch_one(&mut c)
        .await
        .unwrap();
    assert_eq!(
        (busy, log),
        (0, done),
        "every frame of the log is in the database"
    );
    c.close().await.unwrap();
}

/// Token audit rows: concurrent mints share commits and every row is stored;
/// the same token's row written again (a commit retried after its request
/// was cancelled mid-commit) is skipped, not a conflict.
#[tokio::test]
async fn audit_rows_of_concurrent_tokens_are_all_stored_and_a_repeat_is_skipped() {
    sqlx::any::install_default_drivers();
    for t in stores::all().await {
        let rows: Vec<AuditRow> = (0..100)
            .map(|n| AuditRow {
                jti: format!("jti-{n:03}"),
                team_uid: "ta".into(),
                sub: "scoped_principal:ta/user:m1".into(),
                aud: "sts.amazonaws.com".into(),
                kid: "k1".into(),
                iat: 1_800_000_000,
                exp: 1_800_000_900,
                requested_by: "member:m1".into(),
                actor: None,
            })
            .collect();
        let results = futures::future::join_all(rows.iter().map(|r| t.store.insert_audit(r))).await;
        assert!(results.iter().all(Result::is_ok), "{}: {results:?}", t.name);
        t.store.insert_audit(&rows[0]).await.unwrap();
        let stored = t.store.list_audit("ta", 1000).await.unwrap();
        assert_eq!(stored.len(), 100, "{}", t.name);
    }
}

/// On SQLite token audit rows commit through the direct connection, which
/// never checkpoints the log itself: the request whose commit makes a
/// checkpoint due runs it, so a stream of tokens alone keeps the log
/// bounded. Without those checkpoints 1,000 lone commits (three B-tree pages
/// each) would leave a log of ~12 MB.
#[tokio::test]
async fn on_sqlite_audit_commits_keep_the_log_checkpointed() {
    let t = stores::sqlite().await;
    for n in 0..5 * COMMITS_PER_CHECKPOINT {
        t.store
            .insert_audit(&AuditRow {
                jti: format!("jti-{n:05}"),
                team_uid: "ta".into(),
                sub: "scoped_principal:ta/user:m1".into(),
                aud: "sts.amazonaws.com".into(),
                kid: "k1".into(),
                iat: 1_800_000_000 + i64::from(n),
                exp: 1_800_000_900,
                requested_by: "member:m1".into(),
                actor: None,
            })
            .await
            .unwrap();
    }
    let wal = t.url.trim_start_matches("sqlite://").to_owned() + "-wal";
    let size = std::fs::metadata(&wal).unwrap().len();
    let unbounded = u64::from(5 * COMMITS_PER_CHECKPOINT) * 3 * 4096;
    assert!(
        size > 0 && size < unbounded / 2,
        "log of {size} bytes after {} commits (unchecked it would be ~{unbounded})",
        5 * COMMITS_PER_CHECKPOINT
    );
    assert_eq!(t.store.list_audit("ta", 10_000).await.unwrap().len(), 1000);
}
