//! The control endpoint, for tests and demos in other processes:
//!
//! - `GET /_awsim/health` → `ok`;
//! - `GET /_awsim/faults` → the knobs ([`crate::faults::FaultsView`]);
//! - `POST /_awsim/faults` with a [`FaultsUpdate`] JSON body → applies it,
//!   answers the knobs;
//! - `GET /_awsim/counts` → `{"bedrock:Converse": 3, …}`;
//! - `POST /_awsim/reset` → clears knobs and counters.
//!
//! It is unauthenticated: the emulator is a local test tool bound to loopback.

use std::time::Duration;

use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use crate::Inner;
use crate::faults::FailRule;

/// A change to the knobs; every field optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultsUpdate {
    /// Clear everything first.
    #[serde(default)]
    pub reset: bool,
    /// Added latency per scope.
    #[serde(default)]
    pub latency: Vec<ScopeMs>,
    /// Delay between stream events.
    pub stream_event_delay_ms: Option<u64>,
    /// Token buckets.
    #[serde(default)]
    pub throttle: Vec<Throttle>,
    /// Scopes whose throttle to remove.
    #[serde(default)]
    pub clear_throttle: Vec<String>,
    /// Failures to inject.
    #[serde(default)]
    pub fail: Vec<FailRule>,
    /// Make JWKS fetches fail (or work again).
    pub jwks_unreachable: Option<bool>,
    /// Models to disable.
    #[serde(default)]
    pub disable_models: Vec<RegionModel>,
    /// Models to enable again.
    #[serde(default)]
    pub enable_models: Vec<RegionModel>,
    /// Cap issued credentials' lifetime.
    pub credential_lifetime_seconds: Option<u64>,
    /// Remove the cap.
    #[serde(default)]
    pub clear_credential_lifetime: bool,
    /// Expire every issued session now.
    #[serde(default)]
    pub expire_sessions: bool,
}

/// A scope and milliseconds.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScopeMs {
    /// The scope.
    pub scope: String,
    /// Milliseconds.
    pub ms: u64,
}

/// A token bucket.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Throttle {
    /// The scope.
    pub scope: String,
    /// Refill rate.
    pub rate_per_second: f64,
    /// Bucket size.
    pub burst: u32,
}

/// A (region, base model id) pair.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegionModel {
    /// The source region.
    pub region: String,
    /// The base model id, e.g. `anthropic.claude-sonnet-4-6`.
    pub model: String,
}

fn json(status: StatusCode, body: String) -> Response {
    let mut r = (status, body).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

impl Inner {
    /// Applies an update.
    pub(crate) fn apply(&self, u: FaultsUpdate) {
        let f = &self.faults;
        if u.reset {
            f.reset();
            f.reset_counts();
        }
        for l in u.latency {
            f.set_latency(&l.scope, Duration::from_millis(l.ms));
        }
        if let Some(ms) = u.stream_event_delay_ms {
            f.set_stream_event_delay(Duration::from_millis(ms));
        }
        for t in u.throttle {
            f.set_throttle(&t.scope, t.rate_per_second, t.burst);
        }
        for s in u.clear_throttle {
            f.clear_throttle(&s);
        }
        for r in u.fail {
            f.add_rule(r);
        }
        if let Some(b) = u.jwks_unreachable {
            f.set_jwks_unreachable(b);
        }
        for m in u.disable_models {
            f.disable_model(&m.region, &m.model);
        }
        for m in u.enable_models {
            f.enable_model(&m.region, &m.model);
        }
        if let Some(s) = u.credential_lifetime_seconds {
            f.set_credential_lifetime(Some(Duration::from_secs(s)));
        }
        if u.clear_credential_lifetime {
            f.set_credential_lifetime(None);
        }
        if u.expire_sessions {
            self.expire_sessions();
        }
    }

    pub(crate) fn control(&self, method: &Method, rest: &str, body: &[u8]) -> Response {
        let view = || serde_json::to_string(&self.faults.view()).unwrap_or_default();
        match (method.as_str(), rest) {
            ("GET", "health") => (StatusCode::OK, "ok").into_response(),
            ("GET", "faults") => json(StatusCode::OK, view()),
            ("POST", "faults") => match serde_json::from_slice::<FaultsUpdate>(body) {
                Ok(u) => {
                    self.apply(u);
                    json(StatusCode::OK, view())
                }
                Err(e) => json(
                    StatusCode::BAD_REQUEST,
                    serde_json::json!({"error": e.to_string()}).to_string(),
                ),
            },
            ("GET", "counts") => json(
                StatusCode::OK,
                serde_json::to_string(&self.faults.counts()).unwrap_or_default(),
            ),
            ("POST", "reset") => {
                self.faults.reset();
                self.faults.reset_counts();
                json(StatusCode::OK, view())
            }
            _ => (StatusCode::NOT_FOUND, "unknown control path").into_response(),
        }
    }

    /// Sets every issued session's expiry to now.
    pub(crate) fn expire_sessions(&self) {
        let now = self.clock.now();
        let mut sessions = self.account.sessions.write();
        for s in sessions.values_mut() {
            let mut copy = (**s).clone();
            copy.expiration = copy.expiration.min(now);
            *s = std::sync::Arc::new(copy);
        }
    }
}
