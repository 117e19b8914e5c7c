//! The usage ledger: one row per gateway request, written off the request path in
//! batches (DESIGN §5), and the three credit buckets.
//!
//! - `inference`: direct-API requests, tokens × the catalog price; Bedrock
//!   requests cost zero (the customer's AWS bill carries them).
//! - `platform`: a fixed amount per cloud run.
//! - `compute`: per started minute of a cloud run.

use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio_util::task::TaskTracker;

use byollm_api::catalog::Price;

use crate::store::{Store, UsageRow};

/// Platform credits per cloud run.
pub const PLATFORM_CREDITS_PER_RUN: f64 = 1.0;
/// Compute credits per started minute of a cloud run.
pub const COMPUTE_CREDITS_PER_MINUTE: f64 = 0.1;

/// Rows per insert batch.
const BATCH: usize = 256;
/// Longest a row waits before it is written.
const LINGER: Duration = Duration::from_millis(200);
/// Rows queued before the request path starts waiting for the writer.
const QUEUE: usize = 16_384;

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
    Row(Box<UsageRow>),
    Flush(oneshot::Sender<()>),
}

/// The sender side of the ledger.
#[derive(Debug, Clone)]
pub struct UsageSink {
    tx: mpsc::Sender<Msg>,
}

impl UsageSink {
    /// Starts the writer on `tasks`; it drains and stops when every sink is dropped.
    pub fn start(store: Store, tasks: &TaskTracker) -> UsageSink {
        let (tx, mut rx) = mpsc::channel::<Msg>(QUEUE);
        tasks.spawn(async move {
            let mut batch: Vec<UsageRow> = Vec::with_capacity(BATCH);
            let mut waiters: Vec<oneshot::Sender<()>> = Vec::new();
            loop {
                let first = rx.recv().await;
                let Some(first) = first else { break };
                let mut pending = vec![first];
                let deadline = tokio::time::sleep(LINGER);
                tokio::pin!(deadline);
                // Gather what else arrives within the linger time, up to a batch.
                loop {
                    if pending.iter().any(|m| matches!(m, Msg::Flush(_))) || pending.len() >= BATCH {
                        break;
                    }
                    tokio::select! {
                        () = &mut deadline => break,
                        m = rx.recv() => match m {
                            Some(m) => pending.push(m),
                            None => break,
                        },
                    }
                }
                for m in pending {
                    match m {
                        Msg::Row(r) => batch.push(*r),
                        Msg::Flush(f) => waiters.push(f),
                    }
                }
                if !batch.is_empty() {
                    if let Err(e) = store.insert_usage(&batch).await {
                        tracing::error!(error = %e, rows = batch.len(), "writing usage rows failed");
                    }
                    batch.clear();
                }
                for w in waiters.drain(..) {
                    let _ = w.send(());
                }
            }
        });
        UsageSink { tx }
    }

    /// Queues a row (waits only if the writer is far behind).
    pub async fn record(&self, row: UsageRow) {
        if self.tx.send(Msg::Row(Box::new(row))).await.is_err() {
            tracing::error!("usage writer stopped; a usage row was lost");
        }
    }

    /// Waits until every row queued before this call is written.
    pub async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Msg::Flush(tx)).await.is_ok() {
            let _ = rx.await;
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
