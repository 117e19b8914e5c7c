//! Authenticate by default: this layer wraps the whole router and lets only
//! [`PUBLIC_ROUTES`] through without a key or run token.
//!
//! Failed authentication is limited per source address (the TCP peer; IPv6 by
//! /64, since one host holds a whole /64). Each source has a bucket of
//! [`FAILURE_BURST`] failures that refills at [`FAILURE_REFILL_PER_SECOND`];
//! past it a failure answers 429 with `Retry-After` (in the caller's error
//! format on `/v1/*`, the API's on `/api/v1/*`), and a credential that would
//! need a store query is refused without one.
//!
//! Invariants:
//! - Success costs nothing here: the limiter is consulted only on a failure, or
//!   on a cache miss (one lock-free map read). A valid key this replica has
//!   verified recently (it is in the auth cache) is let through even from a
//!   throttled source, so a flood from one NAT does not lock out its users; a key
//!   that needs the store waits out the `Retry-After` like any other.
//! - Requests with no TCP peer (in-process tests through `oneshot`) have no
//!   source and are not limited.
//! - Failures are logged at a sampled rate: the first [`LOG_FIRST_PER_WINDOW`]
//!   in each [`LOG_WINDOW_MS`] window with source, reason and path, then one
//!   summary line with how many were not logged. Never the credential.
//! - `X-Forwarded-For` is not trusted (anyone can send it): behind a proxy all
//!   callers share the proxy's address and thus its allowance.
//! - A request carries at most one credential: `Authorization` and `x-api-key`
//!   together, or either header twice, is a 400 that says to send one (in the
//!   caller's error format), never a silent pick of one of them.
//! - Failed invitation redemptions and console sign-ins (the public routes
//!   that take a secret) count against the same per-source allowance
//!   ([`FailureLimiter`]).
//! - `/console` is let through: the console's own session layer
//!   ([`crate::console`]) authenticates it.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header::RETRY_AFTER};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use moka::sync::Cache;
use parking_lot::Mutex;
use tracing::Instrument as _;

use byollm_api::clock::Clock;
use byollm_api::routes::{INVITATIONS_REDEEM, MESSAGES, PUBLIC_ROUTES};
use byollm_core::auth::AuthFailure;
use byollm_gateway::error::{ApiFormat, GatewayError};

use crate::app::AppState;
use crate::error::ApiError;

/// Header some SDKs (Anthropic's) send the key in.
pub const X_API_KEY: &str = "x-api-key";

/// Failed authentications a source may make at once before it is throttled.
pub const FAILURE_BURST: i64 = 30;
/// Failures per second a throttled source regains.
pub const FAILURE_REFILL_PER_SECOND: i64 = 1;
/// Sources tracked at once (least recently failing go first past this).
const MAX_SOURCES: u64 = 100_000;
/// Length of a log-sampling window.
pub const LOG_WINDOW_MS: i64 = 10_000;
/// Failure lines logged individually per window.
pub const LOG_FIRST_PER_WINDOW: u64 = 10;

/// One token per failure, in thousandths so refill needs no floats.
const TOKEN: i64 = 1000;

/// More than one credential header in one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeveralCredentials;

/// The credential in `Authorization: Bearer …` or `x-api-key: …`, or
/// [`SeveralCredentials`] when the request has more than one of those headers.
pub fn presented_credential(headers: &HeaderMap) -> Result<Option<&str>, SeveralCredentials> {
    let count = headers
        .get_all(axum::http::header::AUTHORIZATION)
        .iter()
        .count()
        + headers.get_all(X_API_KEY).iter().count();
    if count > 1 {
        return Err(SeveralCredentials);
    }
    Ok(single_credential(headers))
}

fn single_credential(headers: &HeaderMap) -> Option<&str> {
    if let Some(value) = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let (scheme, rest) = value.split_once(' ')?;
        return scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim());
    }
    headers
        .get(X_API_KEY)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    /// Thousandths of a failure left.
    tokens: i64,
    at_ms: i64,
}

impl Bucket {
    fn refilled(self, now_ms: i64) -> Bucket {
        let gained = (now_ms - self.at_ms).max(0) * FAILURE_REFILL_PER_SECOND;
        Bucket {
            tokens: (self.tokens + gained).min(FAILURE_BURST * TOKEN),
            at_ms: now_ms,
        }
    }
}

#[derive(Debug, Default)]
struct LogWindow {
    start_ms: i64,
    logged: u64,
    suppressed: u64,
}

/// Per-source failure limiting and sampled failure logging (module docs).
#[derive(Debug)]
pub struct FailureGuard {
    buckets: Cache<IpAddr, Arc<Mutex<Bucket>>>,
    log: Mutex<LogWindow>,
    clock: Arc<dyn Clock>,
}

impl FailureGuard {
    /// A guard reading time from `clock`.
    pub fn new(clock: Arc<dyn Clock>) -> FailureGuard {
        // A bucket untouched for this long is full again: forgetting it is exact.
        let refill_all = Duration::from_secs(
            u64::try_from(FAILURE_BURST / FAILURE_REFILL_PER_SECOND + 1).unwrap_or(60),
        );
        FailureGuard {
            buckets: Cache::builder()
                .max_capacity(MAX_SOURCES)
                .time_to_idle(refill_all)
                .build(),
            log: Mutex::new(LogWindow::default()),
            clock,
        }
    }

    /// Whether `source` has no failure left (it would be answered 429).
    pub fn is_throttled(&self, source: IpAddr) -> bool {
        self.buckets.get(&source).is_some_and(|b| {
            let now = self.clock.now_ms();
            b.lock().refilled(now).tokens < TOKEN
        })
    }

    /// Counts a failure; `Some(seconds)` when the source is over its allowance
    /// and should retry after that long.
    pub fn record_failure(&self, source: IpAddr) -> Option<u64> {
        let now = self.clock.now_ms();
        let bucket = self.buckets.get_with(source, || {
            Arc::new(Mutex::new(Bucket {
                tokens: FAILURE_BURST * TOKEN,
                at_ms: now,
            }))
        });
        let mut b = bucket.lock();
        *b = b.refilled(now);
        if b.tokens >= TOKEN {
            b.tokens -= TOKEN;
            return None;
        }
        let missing_ms = (TOKEN - b.tokens) / FAILURE_REFILL_PER_SECOND;
        Some(u64::try_from((missing_ms + 999) / 1000).unwrap_or(1).max(1))
    }

    /// Logs a failure if this window still has room, else counts it for the
    /// window's summary line.
    pub fn log_failure(&self, source: Option<IpAddr>, reason: &str, path: &str) {
        let now = self.clock.now_ms();
        let (log_it, summary) = {
            let mut w = self.log.lock();
            let mut summary = None;
            if now - w.start_ms >= LOG_WINDOW_MS {
                if w.suppressed > 0 {
                    summary = Some(w.suppressed);
                }
                *w = LogWindow {
                    start_ms: now,
                    logged: 0,
                    suppressed: 0,
                };
            }
            let log_it = w.logged < LOG_FIRST_PER_WINDOW;
            if log_it {
                w.logged += 1;
            } else {
                w.suppressed += 1;
            }
            (log_it, summary)
        };
        if let Some(n) = summary {
            tracing::warn!(
                not_logged = n,
                window_seconds = LOG_WINDOW_MS / 1000,
                "more authentication failures in the last window than were logged"
            );
        }
        if log_it {
            let source = source.map_or_else(|| "none".to_owned(), |s| s.to_string());
            tracing::warn!(%source, %reason, %path, "authentication failed");
        }
    }
}

/// The source a failure is counted against: the peer address, IPv6 by /64.
fn source_of(req: &Request) -> Option<IpAddr> {
    let ConnectInfo(peer) = req.extensions().get::<ConnectInfo<SocketAddr>>()?;
    Some(match peer.ip() {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut s = v6.segments();
                s[4..].fill(0);
                IpAddr::from(s)
            }
        },
    })
}

/// The middleware's state: the app and its failure guard.
#[derive(Debug, Clone)]
pub struct AuthState {
    /// The app.
    pub app: AppState,
    /// Shared by every request of this router.
    pub guard: Arc<FailureGuard>,
}

/// The per-source failure allowance, handed to the public invitation route so
/// a failed redemption counts like a failed authentication.
#[derive(Debug, Clone)]
pub struct FailureLimiter {
    guard: Arc<FailureGuard>,
    source: Option<IpAddr>,
}

impl FailureLimiter {
    /// The 429 to answer at once when the source is over its allowance.
    pub fn refuse_if_throttled(&self, path: &str) -> Option<Response> {
        let source = self.source?;
        self.guard
            .is_throttled(source)
            .then(|| too_many_failures(path, self.guard.record_failure(source).unwrap_or(1)))
    }

    /// Counts a failure (`reason` for the log); the 429 to answer when the
    /// source went over its allowance.
    pub fn failed(&self, reason: &str, path: &str) -> Option<Response> {
        self.guard.log_failure(self.source, reason, path);
        let seconds = self.guard.record_failure(self.source?)?;
        Some(too_many_failures(path, seconds))
    }
}

/// The middleware.
pub async fn authenticate(
    State(state): State<AuthState>,
    mut req: Request,
    next: Next,
) -> Response {
    let path = req.uri().path();
    // The web console authenticates with its own session cookie (never an API
    // key in the browser): `crate::console::session` requires it on every
    // console route but sign-in and the assets.
    if PUBLIC_ROUTES.contains(&path) || crate::console::is_console_path(path) {
        if path == INVITATIONS_REDEEM || path == crate::console::SIGN_IN {
            let limiter = FailureLimiter {
                guard: state.guard.clone(),
                source: source_of(&req),
            };
            req.extensions_mut().insert(limiter);
        }
        return next.run(req).await;
    }
    let source = source_of(&req);
    let presented = match presented_credential(req.headers()) {
        Ok(Some(presented)) => presented,
        Ok(None) => {
            state.guard.log_failure(source, "missing", path);
            state.app.core.metrics().auth_failure("missing");
            return ApiError::unauthenticated().into_response();
        }
        Err(SeveralCredentials) => {
            state.guard.log_failure(source, "several_credentials", path);
            state.app.core.metrics().auth_failure("several_credentials");
            return several_credentials(path);
        }
    };
    let guard = &state.guard;
    let may_query = || source.is_none_or(|s| !guard.is_throttled(s));
    let span = tracing::info_span!("auth", outcome = tracing::field::Empty);
    let checked = state
        .app
        .core
        .check_credential(presented, &may_query)
        .instrument(span.clone())
        .await;
    span.record(
        "outcome",
        match &checked {
            Ok(Ok(_)) => "ok",
            Ok(Err(failure)) => failure.as_str(),
            Err(_) => "error",
        },
    );
    drop(span);
    let failure = match checked {
        Ok(Ok(principal)) => {
            req.extensions_mut().insert(principal);
            return next.run(req).await;
        }
        Ok(Err(failure)) => failure,
        Err(e) => return ApiError::from(e).into_response(),
    };
    guard.log_failure(source, failure.as_str(), path);
    state.app.core.metrics().auth_failure(failure.as_str());
    let retry_after = match (failure, source) {
        (AuthFailure::Throttled, Some(s)) => Some(guard.record_failure(s).unwrap_or(1)),
        (_, Some(s)) => guard.record_failure(s),
        (_, None) => None,
    };
    match retry_after {
        Some(seconds) => too_many_failures(path, seconds),
        None if failure == AuthFailure::LegacyFormatRetired => ApiError::unauthenticated()
            .with_hint(
                "this key predates the checksummed key format and was retired on \
                 2027-03-01; create a new key (POST /api/v1/api-keys) and revoke this one",
            )
            .into_response(),
        None => ApiError::unauthenticated().into_response(),
    }
}

/// 429 for a source over its failure allowance, in the format its route speaks.
fn too_many_failures(path: &str, seconds: u64) -> Response {
    let message = "too many failed authentication attempts from this address";
    let hint = format!("retry after {seconds} s with a valid API key or run token");
    let mut resp = error_for(
        path,
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        message,
        hint,
    );
    resp.headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from(seconds));
    resp
}

/// 400 for a request with more than one credential header.
fn several_credentials(path: &str) -> Response {
    error_for(
        path,
        StatusCode::BAD_REQUEST,
        "invalid_request",
        "the request carries more than one credential; send one credential",
        "send the key once, either as `Authorization: Bearer KEY` or as `x-api-key: KEY`, \
         not both and not twice"
            .to_owned(),
    )
}

/// An error in the format the route speaks: the caller's on `/v1/*` (Anthropic
/// on the Messages API, OpenAI elsewhere), the API's on `/api/v1/*`.
fn error_for(
    path: &str,
    status: StatusCode,
    code: &'static str,
    message: &str,
    hint: String,
) -> Response {
    if path.starts_with("/v1/") {
        let format = if path == MESSAGES {
            ApiFormat::Anthropic
        } else {
            ApiFormat::OpenAi
        };
        GatewayError {
            status,
            code,
            message: message.into(),
            hint: Some(hint),
            attempts: Vec::new(),
        }
        .into_response(format)
    } else {
        ApiError::new(status, code, message)
            .with_hint(hint)
            .into_response()
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::Mutex as StdMutex;

    use byollm_api::clock::FakeClock;

    use super::*;

    #[derive(Clone, Default)]
    struct Capture(Arc<StdMutex<Vec<u8>>>);

    impl Write for Capture {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn failures_are_logged_sampled_with_source_and_reason() {
        let capture = Capture::default();
        let writer = capture.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        let clock = Arc::new(FakeClock::new(1_800_000_000));
        let guard = FailureGuard::new(clock.clone());
        let source: IpAddr = [192, 0, 2, 7].into();
        tracing::subscriber::with_default(subscriber, || {
            for _ in 0..50 {
                guard.log_failure(Some(source), "unknown", "/api/v1/me");
            }
            clock.advance_ms(LOG_WINDOW_MS);
            guard.log_failure(Some(source), "bad_checksum", "/v1/messages");
        });
        let text = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| l.contains("authentication failed"))
            .collect();
        assert_eq!(lines.len(), 11, "{text}");
        assert!(
            lines[0].contains("source=192.0.2.7 reason=unknown path=/api/v1/me"),
            "{text}"
        );
        assert!(lines[10].contains("reason=bad_checksum"), "{text}");
        assert!(text.contains("not_logged=40"), "{text}");
    }

    #[test]
    fn a_source_is_throttled_past_its_burst_and_refills() {
        let clock = Arc::new(FakeClock::new(1_800_000_000));
        let guard = FailureGuard::new(clock.clone());
        let a: IpAddr = [192, 0, 2, 7].into();
        let b: IpAddr = [192, 0, 2, 8].into();
        for _ in 0..FAILURE_BURST {
            assert_eq!(guard.record_failure(a), None);
        }
        assert!(guard.is_throttled(a));
        assert_eq!(guard.record_failure(a), Some(1));
        assert!(!guard.is_throttled(b), "per source");
        clock.advance(1);
        assert!(!guard.is_throttled(a), "one failure regained per second");
    }
}
