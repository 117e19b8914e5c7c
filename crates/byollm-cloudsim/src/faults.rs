//! Fault and load knobs (added latency, token-bucket throttling, failing the next
//! N calls, an unreachable JWKS, models disabled in a region, short-lived
//! credentials) and the per-operation call counters.
//!
//! A *scope* names what a knob applies to: an operation (`bedrock:Converse`,
//! `sts:AssumeRoleWithWebIdentity`, `anthropic:Messages`, `openai:ChatCompletions`,
//! `iam:CreateRole`, …), a service (`bedrock`, `sts`, `iam`, `anthropic`,
//! `openai`) or `*` for everything.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use byollm_api::clock::Clock;

/// Whether `scope` covers `operation` (`service:Name`).
pub fn scope_matches(scope: &str, operation: &str) -> bool {
    scope == "*"
        || scope == operation
        || operation
            .split_once(':')
            .is_some_and(|(service, _)| service == scope)
}

/// The Bedrock base model id of a catalog id (or the id itself).
fn base_model_id(model: &str) -> String {
    byollm_api::catalog::Catalog::builtin()
        .get(model)
        .and_then(|m| m.bedrock.as_ref())
        .map_or_else(|| model.to_owned(), |b| b.base_model_id.clone())
}

/// A failure to inject into the next calls of an operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailRule {
    /// The scope (see the module docs).
    pub scope: String,
    /// The error code to answer with, as the protocol names it: Bedrock
    /// `ThrottlingException`, `ServiceUnavailableException`, `InternalServerException`,
    /// `ModelTimeoutException`, `ModelNotReadyException`, `AccessDeniedException`,
    /// `ValidationException`, `ModelStreamErrorException`, `ServiceQuotaExceededException`,
    /// `ResourceNotFoundException`, `ModelErrorException`; STS `Throttling`,
    /// `IDPCommunicationError`, `InvalidIdentityToken`, `ServiceUnavailable`,
    /// `InternalFailure`, …; direct APIs an HTTP status as text (`429`, `500`, `529`).
    pub error: String,
    /// The message; a typical one for the code when absent.
    #[serde(default)]
    pub message: Option<String>,
    /// How many calls still fail.
    pub remaining: u32,
    /// For streaming operations: fail inside the stream after this many events
    /// (the HTTP status is 200 and the error arrives as an exception frame or SSE
    /// error event). `None` fails the call before any byte.
    #[serde(default)]
    pub after_events: Option<u32>,
}

/// A token bucket.
#[derive(Debug, Clone)]
struct Bucket {
    rate_per_second: f64,
    burst: f64,
    tokens: f64,
    last: f64,
}

/// The knobs, shared by the server and the library API.
#[derive(Debug)]
pub struct Faults {
    clock: Arc<dyn Clock>,
    state: Mutex<State>,
    counts: Mutex<HashMap<String, u64>>,
}

#[derive(Debug, Default)]
struct State {
    latency: Vec<(String, Duration)>,
    stream_event_delay: Duration,
    throttles: Vec<(String, Bucket)>,
    fail: Vec<FailRule>,
    jwks_unreachable: bool,
    disabled: HashSet<(String, String)>,
    credential_lifetime: Option<Duration>,
}

/// A snapshot of the knobs, as `GET /_awsim/faults` shows them.
#[derive(Debug, Clone, Serialize)]
pub struct FaultsView {
    /// Added latency per scope, in milliseconds.
    pub latency_ms: HashMap<String, u64>,
    /// Delay between stream events, in milliseconds.
    pub stream_event_delay_ms: u64,
    /// Throttled scopes: (rate per second, burst).
    pub throttles: HashMap<String, (f64, f64)>,
    /// Pending injected failures.
    pub fail: Vec<FailRule>,
    /// Whether JWKS fetches fail.
    pub jwks_unreachable: bool,
    /// Disabled (region, model id) pairs.
    pub disabled_models: Vec<(String, String)>,
    /// The cap on issued credentials' lifetime, in seconds.
    pub credential_lifetime_seconds: Option<u64>,
}

impl Faults {
    pub(crate) fn new(clock: Arc<dyn Clock>) -> Self {
        Faults {
            clock,
            state: Mutex::new(State::default()),
            counts: Mutex::new(HashMap::new()),
        }
    }

    /// Adds `latency` before every answer in `scope` (replacing an earlier value
    /// for the same scope; zero removes it). For streams it delays the first byte.
    pub fn set_latency(&self, scope: &str, latency: Duration) {
        let mut s = self.state.lock();
        s.latency.retain(|(sc, _)| sc != scope);
        if !latency.is_zero() {
            s.latency.push((scope.to_owned(), latency));
        }
    }

    /// Waits `delay` before each event of every stream (ConverseStream,
    /// InvokeModelWithResponseStream and the direct APIs' SSE).
    pub fn set_stream_event_delay(&self, delay: Duration) {
        self.state.lock().stream_event_delay = delay;
    }

    /// Throttles `scope` with a token bucket: `burst` calls at once, refilled at
    /// `rate_per_second`. Calls beyond it get `ThrottlingException` (Bedrock),
    /// `Throttling` (STS, IAM) or 429 (direct APIs).
    pub fn set_throttle(&self, scope: &str, rate_per_second: f64, burst: u32) {
        let mut s = self.state.lock();
        s.throttles.retain(|(sc, _)| sc != scope);
        let burst = f64::from(burst.max(1));
        s.throttles.push((
            scope.to_owned(),
            Bucket {
                rate_per_second: rate_per_second.max(0.0),
                burst,
                tokens: burst,
                last: self.clock.unix_f64(),
            },
        ));
    }

    /// Removes the throttle of `scope`.
    pub fn clear_throttle(&self, scope: &str) {
        self.state.lock().throttles.retain(|(sc, _)| sc != scope);
    }

    /// Fails the next `count` calls in `scope` with `error` before any byte.
    pub fn fail_next(&self, scope: &str, error: &str, count: u32) {
        self.add_rule(FailRule {
            scope: scope.to_owned(),
            error: error.to_owned(),
            message: None,
            remaining: count,
            after_events: None,
        });
    }

    /// Fails the next `count` streams in `scope` with `error` after `events`
    /// events have been sent (HTTP 200, then an exception frame).
    pub fn fail_stream_after(&self, scope: &str, events: u32, error: &str, count: u32) {
        self.add_rule(FailRule {
            scope: scope.to_owned(),
            error: error.to_owned(),
            message: None,
            remaining: count,
            after_events: Some(events),
        });
    }

    /// Adds an arbitrary rule.
    pub fn add_rule(&self, rule: FailRule) {
        if rule.remaining > 0 {
            self.state.lock().fail.push(rule);
        }
    }

    /// Makes every JWKS (and discovery) fetch fail, cached keys notwithstanding:
    /// STS then answers `InvalidIdentityToken` "Couldn't retrieve verification key…".
    pub fn set_jwks_unreachable(&self, unreachable: bool) {
        self.state.lock().jwks_unreachable = unreachable;
    }

    /// Disables a Bedrock model (its base model id, e.g.
    /// `anthropic.claude-sonnet-4-6`, or its catalog id, e.g. `claude-sonnet-4-6`)
    /// for requests whose source region is `region`:
    /// they get `AccessDeniedException` "You don't have access to the model with the
    /// specified model ID.", as an account without model access does.
    pub fn disable_model(&self, region: &str, model: &str) {
        self.state
            .lock()
            .disabled
            .insert((region.to_owned(), base_model_id(model)));
    }

    /// Re-enables a model disabled with [`Faults::disable_model`].
    pub fn enable_model(&self, region: &str, model: &str) {
        self.state
            .lock()
            .disabled
            .remove(&(region.to_owned(), base_model_id(model)));
    }

    /// Caps the lifetime of credentials issued from now on (their `Expiration` is
    /// at most `now + lifetime`), so tests can watch them expire and be refreshed.
    /// `None` restores the requested `DurationSeconds`.
    pub fn set_credential_lifetime(&self, lifetime: Option<Duration>) {
        self.state.lock().credential_lifetime = lifetime;
    }

    /// Clears every knob (counters are kept; see [`Faults::reset_counts`]).
    pub fn reset(&self) {
        *self.state.lock() = State::default();
    }

    /// Zeroes the call counters.
    pub fn reset_counts(&self) {
        self.counts.lock().clear();
    }

    /// How many calls `operation` has received (refused ones included).
    pub fn call_count(&self, operation: &str) -> u64 {
        self.counts.lock().get(operation).copied().unwrap_or(0)
    }

    /// Every counter.
    pub fn counts(&self) -> HashMap<String, u64> {
        self.counts.lock().clone()
    }

    /// A snapshot of the knobs.
    pub fn view(&self) -> FaultsView {
        let s = self.state.lock();
        FaultsView {
            latency_ms: s
                .latency
                .iter()
                .map(|(k, d)| (k.clone(), u64::try_from(d.as_millis()).unwrap_or(u64::MAX)))
                .collect(),
            stream_event_delay_ms: u64::try_from(s.stream_event_delay.as_millis())
                .unwrap_or(u64::MAX),
            throttles: s
                .throttles
                .iter()
                .map(|(k, b)| (k.clone(), (b.rate_per_second, b.burst)))
                .collect(),
            fail: s.fail.clone(),
            jwks_unreachable: s.jwks_unreachable,
            disabled_models: s.disabled.iter().cloned().collect(),
            credential_lifetime_seconds: s.credential_lifetime.map(|d| d.as_secs()),
        }
    }

    // ---- used by the handlers ----

    pub(crate) fn count(&self, operation: &str) {
        *self.counts.lock().entry(operation.to_owned()).or_insert(0) += 1;
    }

    pub(crate) fn latency(&self, operation: &str) -> Duration {
        self.state
            .lock()
            .latency
            .iter()
            .filter(|(sc, _)| scope_matches(sc, operation))
            .map(|(_, d)| *d)
            .max()
            .unwrap_or(Duration::ZERO)
    }

    pub(crate) fn stream_event_delay(&self) -> Duration {
        self.state.lock().stream_event_delay
    }

    /// Takes one token from every bucket covering `operation`; `false` when one
    /// of them is empty.
    pub(crate) fn admit(&self, operation: &str) -> bool {
        let now = self.clock.unix_f64();
        let mut s = self.state.lock();
        let mut ok = true;
        for (scope, b) in s.throttles.iter_mut() {
            if !scope_matches(scope, operation) {
                continue;
            }
            b.tokens = (b.tokens + (now - b.last).max(0.0) * b.rate_per_second).min(b.burst);
            b.last = now;
            if b.tokens >= 1.0 {
                b.tokens -= 1.0;
            } else {
                ok = false;
            }
        }
        ok
    }

    /// Takes the first pending failure covering `operation`; `streaming` says
    /// whether mid-stream rules may apply.
    pub(crate) fn take_failure(&self, operation: &str, streaming: bool) -> Option<FailRule> {
        let mut s = self.state.lock();
        let idx = s.fail.iter().position(|r| {
            scope_matches(&r.scope, operation) && (streaming || r.after_events.is_none())
        })?;
        let rule = s.fail.get_mut(idx)?;
        rule.remaining = rule.remaining.saturating_sub(1);
        let taken = rule.clone();
        if rule.remaining == 0 {
            s.fail.remove(idx);
        }
        Some(taken)
    }

    pub(crate) fn jwks_unreachable(&self) -> bool {
        self.state.lock().jwks_unreachable
    }

    pub(crate) fn model_disabled(&self, region: &str, base_model_id: &str) -> bool {
        self.state
            .lock()
            .disabled
            .contains(&(region.to_owned(), base_model_id.to_owned()))
    }

    pub(crate) fn credential_lifetime(&self) -> Option<Duration> {
        self.state.lock().credential_lifetime
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use byollm_api::clock::SystemClock;

    #[test]
    fn scopes_and_rules() {
        assert!(scope_matches("bedrock", "bedrock:Converse"));
        assert!(scope_matches("*", "sts:AssumeRoleWithWebIdentity"));
        assert!(!scope_matches("bedrock:ConverseStream", "bedrock:Converse"));
        let f = Faults::new(Arc::new(SystemClock));
        f.fail_next("bedrock:Converse", "ThrottlingException", 2);
        f.fail_stream_after("bedrock", 3, "throttlingException", 1);
        assert!(f.take_failure("bedrock:Converse", false).is_some());
        assert!(f.take_failure("bedrock:Converse", false).is_some());
        assert!(f.take_failure("bedrock:Converse", false).is_none());
        let r = f.take_failure("bedrock:ConverseStream", true).unwrap();
        assert_eq!(r.after_events, Some(3));
        f.set_throttle("sts", 0.0, 2);
        assert!(f.admit("sts:AssumeRoleWithWebIdentity"));
        assert!(f.admit("sts:AssumeRoleWithWebIdentity"));
        assert!(!f.admit("sts:AssumeRoleWithWebIdentity"));
        assert!(f.admit("bedrock:Converse"));
    }
}
