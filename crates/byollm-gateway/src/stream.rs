//! Streaming responses: a bounded channel between the task that reads upstream
//! and the response body, so a slow client slows the upstream read, and a
//! client that goes away stops it; and [`Streams`], the gateway's stream tasks.
//!
//! Invariants: every stream task runs on [`Streams`]' tracker, so the number in
//! flight is observable and shutdown can wait for them; [`Streams::end_all`]
//! makes every open stream end at once with the caller format's error event
//! (its usage row still written).

use axum::body::Body;
use bytes::Bytes;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Frames in flight per stream; small, so an idle stream holds little memory.
const DEPTH: usize = 8;

/// The sending half of a streaming body.
#[derive(Debug, Clone)]
pub struct Frames(mpsc::Sender<Result<Bytes, std::io::Error>>);

impl Frames {
    /// Sends a frame; false when the client has gone.
    pub async fn send(&self, frame: Bytes) -> bool {
        self.0.send(Ok(frame)).await.is_ok()
    }

    /// Resolves when the client has gone (the response body was dropped).
    pub async fn closed(&self) {
        self.0.closed().await;
    }
}

/// A body fed through [`Frames`].
pub fn channel() -> (Frames, Body) {
    let (tx, rx) = mpsc::channel(DEPTH);
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    (Frames(tx), Body::from_stream(stream))
}

/// The gateway's committed streams: one task each, pumping upstream to caller.
#[derive(Debug, Default)]
pub struct Streams {
    tasks: TaskTracker,
    end: CancellationToken,
}

impl Streams {
    /// Streams whose task is still running (pumping, or writing their usage row).
    pub fn in_flight(&self) -> usize {
        self.tasks.len()
    }

    /// Ends every open stream now with an error event (shutdown past its grace
    /// period); streams committed afterwards end at once the same way.
    pub fn end_all(&self) {
        self.end.cancel();
    }

    /// Waits until every stream task has finished (shutdown: the server has
    /// stopped accepting, so no new stream starts).
    pub async fn wait(&self) {
        self.tasks.close();
        self.tasks.wait().await;
    }

    pub(crate) fn tracker(&self) -> &TaskTracker {
        &self.tasks
    }

    pub(crate) fn end_token(&self) -> &CancellationToken {
        &self.end
    }
}
