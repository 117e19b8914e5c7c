//! Streaming responses: a bounded channel between the task that reads upstream
//! and the response body, so a slow client slows the upstream read, and a
//! client that goes away stops it.

use axum::body::Body;
use bytes::Bytes;
use tokio::sync::mpsc;

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
}

/// A body fed through [`Frames`].
pub fn channel() -> (Frames, Body) {
    let (tx, rx) = mpsc::channel(DEPTH);
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    (Frames(tx), Body::from_stream(stream))
}
