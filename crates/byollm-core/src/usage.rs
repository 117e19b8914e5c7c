//! The usage ledger: one row per gateway request, and the three credit buckets.
//!
//! - `inference`: direct-API requests, tokens × the catalog price; Bedrock
//!   requests cost zero (the customer's AWS bill carries them).
//! - `platform`: a fixed amount per cloud run.
//! - `compute`: per started minute of a cloud run.
//!
//! # No answered request without its row
//!
//! [`UsageSink::record`] returns once the row is committed: the gateway calls
//! it before a whole response is sent and before a stream's final event, so a
//! crash after the caller has the last byte cannot lose the row. The cost is
//! kept small two ways. A row that finds nothing queued, no commit in flight
//! and no inline commit just before it ([`INLINE_GAP`]) is committed by the
//! request itself (inline: no hand-off to another task; on SQLite on the
//! request's own thread, [`Store::insert_usage_now`]). Otherwise it is
//! queued, and one writer task takes every row queued while it was busy and
//! commits them in one transaction, with no fixed linger (under load batches
//! grow by themselves); on SQLite a batch of up to [`DIRECT_BATCH`] rows is
//! committed on the writer's own thread through the same connection (sqlx's
//! worker thread and the hand-offs to it and back cost more CPU under load
//! than the commit). At most one commit runs at a time, inline or batched
//! (the write "turn"): two would only queue on the database's write lock
//! (SQLite's busy handler sleeps milliseconds at a time).
//!
//! A failed commit is retried with backoff, never dropped (the insert is
//! idempotent on the row id, so a commit whose answer was lost is not counted
//! twice). The request does not wait for that forever: after
//! [`COMMIT_WAIT`] it finishes with its row still queued, and the writer keeps
//! retrying in the background; the queue is bounded ([`QUEUE`]), and a row that
//! finds it full for the whole wait is the only row ever lost, counted in
//! [`UsageStats::rows_lost`] and logged as an error. Shutdown flushes the queue.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio_util::task::TaskTracker;

use byollm_api::catalog::Price;

use crate::store::{Direct, Store, UsageRow};

/// Platform credits per cloud run.
pub const PLATFORM_CREDITS_PER_RUN: f64 = 1.0;
/// Compute credits per started minute of a cloud run.
pub const COMPUTE_CREDITS_PER_MINUTE: f64 = 0.1;

/// Most rows one transaction writes (a bound on the statement work a single
/// commit holds the write lock for, not a wait).
const BATCH: usize = 512;
/// Most rows the writer commits on its own thread (a few hundred µs); a
/// larger batch goes through the pool's worker thread.
const DIRECT_BATCH: usize = 64;
/// Rows queued and not yet committed before [`UsageSink::record`] waits for room.
pub const QUEUE: usize = 16_384;
/// A row commits inline only when no inline commit ended within this long:
/// more often than that (over ~4,000 rows/s from one replica), rows go to the
/// writer, where one commit carries many (a commit's cost hardly depends on
/// its rows) instead of each row paying for its own.
pub const INLINE_GAP: Duration = Duration::from_micros(250);
/// Longest a request waits for its row's commit before it finishes anyway
/// (the row stays queued and is retried). Long enough to ride out a brief
/// database hiccup, short enough that an outage does not hang every caller.
pub const COMMIT_WAIT: Duration = Duration::from_secs(5);
/// First delay before retrying a failed commit; doubles up to [`RETRY_MAX`].
const RETRY_FIRST: Duration = Duration::from_millis(50);
/// Longest delay between retries of a failed commit.
const RETRY_MAX: Duration = Duration::from_secs(5);

/// The monotonic clock, for [`INLINE_GAP`] only.
#[expect(
    clippy::disallowed_methods,
    reason = "chooses between two equivalent ways of committing a row (inline or \
              batched) by how recently one committed; what is stored, and when \
              `record` returns, do not depend on it, so there is nothing for a \
              fake clock to test"
)]
fn monotonic_now() -> std::time::Instant {
    std::time::Instant::now()
}

/// Inference credits for a request (micro-credits).
pub fn inference_microcredits(price: &Price, input_tokens: u64, output_tokens: u64) -> i64 {
    let credits = (input_tokens as f64 * price.input_per_mtok
        + output_tokens as f64 * price.output_per_mtok)
        / 1e6;
    (credits * 1e6).round() as i64
}

/// Compute credits for a run that lasted `seconds`.
pub fn compute_credits(seconds: i64) -> f64 {
    let minutes = (seconds.max(0) + 59) / 60;
    minutes.max(1) as f64 * COMPUTE_CREDITS_PER_MINUTE
}

#[derive(Debug)]
enum Msg {
    /// A row and who waits for its commit.
    Row(Box<UsageRow>, oneshot::Sender<()>),
    /// Answered once every row queued before it is committed.
    Flush(oneshot::Sender<()>),
}

/// What became of a row when [`UsageSink::record`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// Committed to the store.
    Committed,
    /// Queued but not committed within the wait (the store is failing or slow);
    /// the writer keeps retrying it.
    Queued,
    /// Not stored: the queue stayed full for the whole wait, or the writer has
    /// stopped.
    Lost,
}

/// A snapshot of the ledger's counters (for metrics).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UsageStats {
    /// Rows committed since start.
    pub rows_written: u64,
    /// Rows whose commit failed and was retried, counted once per failed try.
    pub rows_retried: u64,
    /// Transactions committed.
    pub commits: u64,
    /// Of those, rows committed by their own request (nothing was queued and
    /// no commit in flight), without the writer task.
    pub committed_inline: u64,
    /// Rows queued or being written, not yet committed (queue depth).
    pub queue_depth: u64,
    /// Requests that finished before their row was committed (the wait ran out).
    pub answered_before_commit: u64,
    /// Rows never stored (queue full for the whole wait, or writer gone).
    pub rows_lost: u64,
}

#[derive(Debug, Default)]
struct Counters {
    rows_written: AtomicU64,
    rows_retried: AtomicU64,
    commits: AtomicU64,
    committed_inline: AtomicU64,
    queue_depth: AtomicU64,
    answered_before_commit: AtomicU64,
    rows_lost: AtomicU64,
}

/// The sender side of the ledger; cheap to clone.
#[derive(Debug, Clone)]
pub struct UsageSink {
    tx: mpsc::Sender<Msg>,
    counters: Arc<Counters>,
    commit_wait: Duration,
    store: Store,
    /// Where the log checkpoints after inline commits run.
    tasks: TaskTracker,
    /// When the last inline commit ended (µs since `epoch`).
    last_inline: Arc<AtomicU64>,
    epoch: std::time::Instant,
}

impl UsageSink {
    /// Starts the writer on `tasks`; it drains and stops when every sink is
    /// dropped.
    pub fn start(store: Store, tasks: &TaskTracker) -> UsageSink {
        UsageSink::start_with_wait(store, tasks, COMMIT_WAIT)
    }

    /// [`UsageSink::start`] with another wait for a row's commit (tests of a
    /// failing store).
    pub fn start_with_wait(store: Store, tasks: &TaskTracker, commit_wait: Duration) -> UsageSink {
        let (tx, rx) = mpsc::channel::<Msg>(QUEUE);
        let counters = Arc::new(Counters::default());
        tasks.spawn(write_loop(
            store.clone(),
            rx,
            counters.clone(),
            tasks.clone(),
        ));
        UsageSink {
            tx,
            counters,
            commit_wait,
            store,
            tasks: tasks.clone(),
            last_inline: Arc::new(AtomicU64::new(0)),
            epoch: monotonic_now(),
        }
    }

    /// µs since this sink started.
    fn now_us(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    /// Commits `row` in the caller's task when nothing is queued, no commit
    /// is in flight and none ended within [`INLINE_GAP`]; `false` (and
    /// nothing written) otherwise or when the one try fails, so the row takes
    /// the queue (which batches and retries).
    async fn commit_inline(&self, row: &UsageRow, wait: Duration) -> bool {
        let c = &self.counters;
        if c.queue_depth.load(Ordering::Relaxed) > 0 {
            return false;
        }
        let gap = u64::try_from(INLINE_GAP.as_micros()).unwrap_or(u64::MAX);
        let last = self.last_inline.load(Ordering::Relaxed);
        if last != 0 && self.now_us().saturating_sub(last) < gap {
            return false;
        }
        // The store's write turn, held by whoever commits: a request inline,
        // the writer task, or the store's other hot writer.
        let Ok(_turn) = self.store.write_turn().try_lock() else {
            return false;
        };
        tracing::trace!(target: "byollm::phase", phase = "usage.inline");
        // On SQLite, on this thread (tens of µs, never waiting for a lock);
        // else, or when that path is busy, through the pool.
        let rows = std::slice::from_ref(row);
        let inserted = match try_direct(&self.store, rows, &self.tasks) {
            Ok(true) => Ok(Ok(())),
            Ok(false) => tokio::time::timeout(wait, self.store.insert_usage(rows)).await,
            Err(e) => Ok(Err(e)),
        };
        tracing::trace!(target: "byollm::phase", phase = "usage.inserted");
        self.last_inline
            .store(self.now_us().max(1), Ordering::Relaxed);
        match inserted {
            Ok(Ok(())) => {
                c.rows_written.fetch_add(1, Ordering::Relaxed);
                c.commits.fetch_add(1, Ordering::Relaxed);
                c.committed_inline.fetch_add(1, Ordering::Relaxed);
                true
            }
            // Failed or slow: the queue takes the row and retries it (a
            // commit that landed after all is not counted twice: the insert
            // skips a stored id).
            Ok(Err(e)) => {
                c.rows_retried.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, "writing a usage row failed; it is queued for retry");
                false
            }
            Err(_) => false,
        }
    }

    /// Queues `row` and waits until it is committed, or at most the commit
    /// wait (then it stays queued and is retried in the background).
    pub async fn record(&self, row: UsageRow) -> Recorded {
        // The whole wait, the inline try's included, runs from here.
        let wait = tokio::time::sleep(self.commit_wait);
        tokio::pin!(wait);
        if self.commit_inline(&row, self.commit_wait).await {
            return Recorded::Committed;
        }
        let (done, committed) = oneshot::channel();
        let msg = Msg::Row(Box::new(row), done);
        let counters = &self.counters;
        let permit = tokio::select! {
            // A free slot wins over a wait the inline try already used up.
            biased;
            permit = self.tx.reserve() => permit,
            () = &mut wait => {
                counters.rows_lost.fetch_add(1, Ordering::Relaxed);
                tracing::error!(queued = QUEUE, "usage queue full for the whole wait; a usage row was LOST");
                return Recorded::Lost;
            }
        };
        let Ok(permit) = permit else {
            counters.rows_lost.fetch_add(1, Ordering::Relaxed);
            tracing::error!("usage writer stopped; a usage row was LOST");
            return Recorded::Lost;
        };
        counters.queue_depth.fetch_add(1, Ordering::Relaxed);
        permit.send(msg);
        tokio::select! {
            r = committed => match r {
                Ok(()) => Recorded::Committed,
                // The writer stopped with the row unwritten (runtime shutting down).
                Err(_) => Recorded::Lost,
            },
            () = &mut wait => {
                counters.answered_before_commit.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    wait_ms = u64::try_from(self.commit_wait.as_millis()).unwrap_or(u64::MAX),
                    "usage row not committed in time; the request finishes and the row stays queued for retry"
                );
                Recorded::Queued
            }
        }
    }

    /// Waits until every row queued before this call is committed.
    pub async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Msg::Flush(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }

    /// The counters now.
    pub fn stats(&self) -> UsageStats {
        let c = &self.counters;
        UsageStats {
            rows_written: c.rows_written.load(Ordering::Relaxed),
            rows_retried: c.rows_retried.load(Ordering::Relaxed),
            commits: c.commits.load(Ordering::Relaxed),
            committed_inline: c.committed_inline.load(Ordering::Relaxed),
            queue_depth: c.queue_depth.load(Ordering::Relaxed),
            answered_before_commit: c.answered_before_commit.load(Ordering::Relaxed),
            rows_lost: c.rows_lost.load(Ordering::Relaxed),
        }
    }
}

/// The writer: takes what is queued (at most a batch), commits it in one
/// transaction (retrying until it succeeds), then tells the waiters.
async fn write_loop(
    store: Store,
    mut rx: mpsc::Receiver<Msg>,
    counters: Arc<Counters>,
    tasks: TaskTracker,
) {
    let mut rows: Vec<UsageRow> = Vec::with_capacity(BATCH);
    let mut waiters: Vec<oneshot::Sender<()>> = Vec::with_capacity(BATCH);
    while let Some(first) = rx.recv().await {
        let mut next = Some(first);
        while let Some(m) = next.take() {
            match m {
                Msg::Row(row, done) => {
                    rows.push(*row);
                    waiters.push(done);
                }
                // Rows queued before the flush are in this batch or an earlier one.
                Msg::Flush(done) => waiters.push(done),
            }
            if rows.len() < BATCH {
                next = rx.try_recv().ok();
            }
        }
        if !rows.is_empty() {
            let _turn = store.write_turn().lock().await;
            commit(&store, &rows, &counters, &tasks).await;
            let n = rows.len() as u64;
            counters.rows_written.fetch_add(n, Ordering::Relaxed);
            counters.commits.fetch_add(1, Ordering::Relaxed);
            counters.queue_depth.fetch_sub(n, Ordering::Relaxed);
            rows.clear();
        }
        for w in waiters.drain(..) {
            // The request may have stopped waiting; the row is stored anyway.
            let _ = w.send(());
        }
    }
}

/// Commits `rows` on the ledgers' own SQLite connection on this thread
/// ([`Store::insert_usage_now`]; the caller holds the write turn) and, when
/// that makes a checkpoint of the log due, runs one through the pool on
/// `tasks`. `Ok(false)`: declined, nothing written.
fn try_direct(
    store: &Store,
    rows: &[UsageRow],
    tasks: &TaskTracker,
) -> Result<bool, crate::store::StoreError> {
    match store.insert_usage_now(rows)? {
        Direct::Committed => Ok(true),
        Direct::CommittedCheckpointDue => {
            let store = store.clone();
            tasks.spawn(async move {
                if let Err(e) = store.checkpoint().await {
                    tracing::warn!(error = %e, "checkpointing the database's log failed; the next one retries");
                }
            });
            Ok(true)
        }
        Direct::Declined => Ok(false),
    }
}

/// Commits `rows`, retrying with backoff until the store takes them. A batch
/// of at most [`DIRECT_BATCH`] rows first tries the ledger's own SQLite
/// connection on this thread (the write turn is held, so it is free): one
/// commit without the hand-offs to sqlx's worker thread and back, which under
/// load cost more CPU than the commit itself.
async fn commit(store: &Store, rows: &[UsageRow], counters: &Counters, tasks: &TaskTracker) {
    if rows.len() <= DIRECT_BATCH {
        // Declined or failed: the pool below writes them, and retries.
        match try_direct(store, rows, tasks) {
            Ok(true) => return,
            Ok(false) => {}
            Err(e) => {
                tracing::debug!(error = %e, rows = rows.len(), "direct usage commit failed; through the pool");
            }
        }
    }
    let mut delay = RETRY_FIRST;
    let mut failures = 0u32;
    loop {
        match store.insert_usage(rows).await {
            Ok(()) => {
                if failures > 0 {
                    tracing::info!(
                        rows = rows.len(),
                        failures,
                        "usage rows written after retries"
                    );
                }
                return;
            }
            Err(e) => {
                failures += 1;
                counters
                    .rows_retried
                    .fetch_add(rows.len() as u64, Ordering::Relaxed);
                tracing::error!(
                    error = %e,
                    rows = rows.len(),
                    failures,
                    retry_in_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                    "writing usage rows failed; retrying (rows are kept, never dropped)"
                );
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(RETRY_MAX);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credits() {
        let p = Price {
            input_per_mtok: 3.0,
            output_per_mtok: 15.0,
        };
        assert_eq!(inference_microcredits(&p, 1_000_000, 0), 3_000_000);
        assert_eq!(inference_microcredits(&p, 10, 20), 330);
        assert!((compute_credits(1) - 0.1).abs() < 1e-9);
        assert!((compute_credits(61) - 0.2).abs() < 1e-9);
    }
}
