//! How much the gateway reads from a caller and how long it waits on an
//! upstream (`[gateway]` in `byollm.toml`).
//!
//! - A request body over [`GatewayConfig::max_body_bytes`](crate::GatewayConfig)
//!   is refused with 413 in the caller's own error format, naming the limit and
//!   its config key; nothing past the limit is buffered.
//! - Before the first byte a timeout is a fallback cause like any other upstream
//!   failure ([`crate::outcome::FailReason::TimedOut`]); after it, a stream that
//!   goes quiet for longer than [`Timeouts::stream_idle`] ends with the caller
//!   format's error event (`relay.rs`).
//!
//! Why the defaults are what they are:
//! - `connect` 5 s: the Anthropic and OpenAI SDKs' own connect timeout; the AWS
//!   SDK uses 3.1 s. Longer than one lost SYN (retransmitted after 1 s, then 3 s)
//!   on a healthy network, short enough that a black-holed endpoint falls back
//!   quickly.
//! - `first_byte` 10 min: a whole (non-streaming) answer arrives only when the
//!   model has finished, and the Anthropic and OpenAI SDKs wait 10 minutes for it
//!   by default (Anthropic's SDK refuses non-streaming calls it expects to take
//!   longer). Waiting less would cut off answers the caller's own SDK still waits
//!   for; waiting more helps no caller on a default SDK. A stream's first event
//!   normally comes within seconds, so operators who serve streams mostly may
//!   lower this.
//! - `stream_idle` 60 s: boto3's default read timeout, which applies per socket
//!   read and so is exactly an idle-between-chunks limit, under which Bedrock
//!   streams are used everywhere; models send deltas continuously while they
//!   think or write.

use std::future::Future;
use std::time::Duration;

use axum::body::{Body, HttpBody as _};
use bytes::{Bytes, BytesMut};
use futures::StreamExt as _;

use crate::error::GatewayError;
use crate::outcome::{FailReason, Failure};

/// Default largest `/v1/*` request body: the Anthropic Messages API's own limit
/// (32 MB), so anything Anthropic's API takes, the gateway takes.
pub const DEFAULT_MAX_BODY_BYTES: usize = 32 * 1024 * 1024;

/// The config key of the body limit, named in the 413.
pub const MAX_BODY_KEY: &str = "[gateway] max_body_bytes";

/// How long the gateway waits on Bedrock and the vendor APIs (the module docs
/// say why the defaults are what they are).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// TCP (and TLS) connection to the upstream (`connect_timeout_ms`).
    pub connect: Duration,
    /// From sending the request until the answer starts: for a stream, its
    /// first event; for a whole answer, the answer (`first_byte_timeout_ms`).
    pub first_byte: Duration,
    /// Between two chunks of a committed stream (`stream_idle_timeout_ms`).
    pub stream_idle: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(5),
            first_byte: Duration::from_secs(600),
            stream_idle: Duration::from_secs(60),
        }
    }
}

/// Milliseconds of `d`, for messages.
fn ms(d: Duration) -> u128 {
    d.as_millis()
}

/// The cause when no connection was made in time (connect timeouts fire
/// inside the HTTP clients, which do not say how long they waited).
pub(crate) fn connect_timed_out() -> FailReason {
    FailReason::TimedOut("no connection within connect_timeout_ms".into())
}

/// Runs `call` (one upstream attempt up to its first byte) for at most `limit`;
/// past it the attempt failed with [`FailReason::TimedOut`] and the next route
/// may serve. Dropping the call closes its connection.
pub(crate) async fn first_byte_within<T>(
    limit: Duration,
    call: impl Future<Output = Result<T, Failure>>,
) -> Result<T, Failure> {
    match tokio::time::timeout(limit, call).await {
        Ok(result) => result,
        Err(_) => Err(FailReason::TimedOut(format!(
            "no first byte within {} ms (first_byte_timeout_ms)",
            ms(limit)
        ))
        .into()),
    }
}

/// The mid-stream cause when a committed stream went quiet for `limit`.
pub(crate) fn stream_idle_cause(limit: Duration) -> String {
    format!(
        "timed out: no chunk within {} ms (stream_idle_timeout_ms)",
        ms(limit)
    )
}

/// Reads a request body of at most `limit` bytes; a longer one is refused
/// without buffering more than `limit` (and at once when its length is
/// declared).
pub async fn read_body(body: Body, limit: usize) -> Result<Bytes, GatewayError> {
    let declared = body.size_hint().lower();
    if usize::try_from(declared).map_or(true, |n| n > limit) {
        return Err(GatewayError::body_too_large(limit));
    }
    let mut chunks = body.into_data_stream();
    let mut buf = BytesMut::new();
    while let Some(chunk) = chunks.next().await {
        let chunk =
            chunk.map_err(|_| GatewayError::invalid("body: could not read the request body"))?;
        if buf.len().saturating_add(chunk.len()) > limit {
            return Err(GatewayError::body_too_large(limit));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bodies_over_the_limit_are_refused_whatever_their_framing() {
        assert_eq!(read_body(Body::from("12345"), 5).await.unwrap(), "12345");
        let e = read_body(Body::from("123456"), 5).await.unwrap_err();
        assert_eq!(e.status, axum::http::StatusCode::PAYLOAD_TOO_LARGE);
        // No declared length: counted as it arrives.
        let chunks = futures::stream::iter(["123", "456"].map(Ok::<_, std::io::Error>));
        let e = read_body(Body::from_stream(chunks), 5).await.unwrap_err();
        assert_eq!(e.code, "request_too_large");
        assert!(e.message.contains(MAX_BODY_KEY), "{}", e.message);
    }

    #[tokio::test]
    async fn a_silent_upstream_times_out_as_a_fallback_cause() {
        let hung = std::future::pending::<Result<(), Failure>>();
        let e = first_byte_within(Duration::from_millis(10), hung)
            .await
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "timed out: no first byte within 10 ms (first_byte_timeout_ms)"
        );
    }
}
