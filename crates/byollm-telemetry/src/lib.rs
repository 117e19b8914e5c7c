//! byollm's metrics: one [`Metrics`] registry per replica, recorded by the
//! server (HTTP, authentication), the domain (STS, credential cache, identity
//! tokens) and the gateway (requests, upstream calls, fallbacks, tokens), and
//! rendered in the OpenMetrics text format on the metrics listener; and
//! traces ([`trace`]), exported over OTLP/HTTP when configured.
//!
//! Invariants:
//! - Label values are bounded: route templates, methods, status classes,
//!   formats, hosts, catalog model ids (anything else is `other`), and fixed
//!   reason words. No team, member, key or run id unless the operator asked
//!   for a `team` label (`[telemetry] per_team_metrics`), and nothing secret.
//! - Recording is atomics behind a read lock once a label set exists; the only
//!   allocation on the hot path is the label set's owned strings.
//! - Histograms share [`BUCKETS`] (seconds), resolving 50 µs to 60 s.
//! - Recording can be paused ([`Metrics::set_recording`]): the gateway
//!   benchmark measures what metrics cost a request by comparing requests
//!   with recording on and paused. Nothing else pauses it.

pub mod otlp;
pub mod process;
pub mod trace;

/// The span every request runs in (`byollm-server`'s request layer): the one
/// span the log output formats.
pub const REQUEST_SPAN: &str = "request";

/// What the log output (the `fmt` layer of `byollm serve`) sees: every event,
/// and among spans only [`REQUEST_SPAN`], whose request id, method and path
/// each line carries. The finer spans (auth, plan, attempt, sts, upstream) are
/// for exported traces: formatting their fields on every request cost about
/// 40 µs at the default level (the gateway benchmark's floor section).
pub fn logged(meta: &tracing::Metadata<'_>) -> bool {
    meta.is_event() || meta.name() == REQUEST_SPAN
}

/// The target of [`phase`] marks.
pub const PHASE_TARGET: &str = "byollm::phase";

/// Marks that one request reached a named point of the hot path (accept,
/// auth, context, plan, upstream send, …): a `trace` event with target
/// [`PHASE_TARGET`]. The gateway benchmark's phase mode (`BENCH_ONLY=phases`)
/// timestamps these to break one request's time down; nothing else listens,
/// and below `trace` the mark costs one comparison with the global level.
#[inline]
pub fn phase(name: &'static str) {
    tracing::trace!(target: "byollm::phase", phase = name);
}

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Histogram bucket bounds, seconds: 50 µs (a cache hit) to 60 s (a long
/// upstream answer), in 1–2.5–5 steps.
pub const BUCKETS: [f64; 20] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0,
];

/// The content type of [`Metrics::render`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Measures an elapsed time for a histogram. The one place metrics read the
/// monotonic clock: durations are observations, never decisions.
#[derive(Debug, Clone, Copy)]
pub struct Stopwatch(Instant);

impl Stopwatch {
    /// Starts now.
    #[expect(
        clippy::disallowed_methods,
        reason = "latency for metrics only; no behaviour depends on it"
    )]
    pub fn start() -> Self {
        Stopwatch(Instant::now())
    }

    /// Time since [`Stopwatch::start`].
    pub fn elapsed(&self) -> Duration {
        self.0.elapsed()
    }

    /// Seconds since [`Stopwatch::start`].
    pub fn seconds(&self) -> f64 {
        self.elapsed().as_secs_f64()
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    method: &'static str,
    route: String,
    status_class: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpRouteLabels {
    method: &'static str,
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GatewayLabels {
    format: &'static str,
    model: String,
    host: &'static str,
    outcome: &'static str,
    team: Option<String>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HostLabels {
    host: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FallbackLabels {
    from: &'static str,
    to: &'static str,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TokenLabels {
    host: &'static str,
    model: String,
    direction: &'static str,
    team: Option<String>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EventLabels {
    event: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ActorLabels {
    actor_type: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

fn histogram() -> Histogram {
    Histogram::new(BUCKETS)
}

type Counters<L> = Family<L, Counter>;
type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// What the credential cache did for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheEvent {
    /// Credentials served from the cache.
    Hit,
    /// No usable credentials: the request waited for STS.
    Miss,
    /// Credentials due for renewal: served, and renewed in the background.
    Refresh,
}

/// Values read from their owners at scrape time (the usage writer's counters,
/// the broker's size, the keyring), set by the scraper before [`Metrics::render`].
#[derive(Debug, Default)]
pub struct Scraped {
    /// Keys in the credential cache holding credentials.
    pub credentials_cached: AtomicU64,
    /// Usage rows queued or being written.
    pub usage_queue_depth: AtomicU64,
    /// Usage rows committed since start.
    pub usage_rows_written: AtomicU64,
    /// Failed usage commits retried, once per failed try.
    pub usage_rows_retried: AtomicU64,
    /// Usage rows never stored.
    pub usage_rows_dropped: AtomicU64,
    /// Committed streams in flight.
    pub streams_in_flight: AtomicU64,
    /// Unix seconds the active signing key was created (0: no active key).
    pub signing_key_created: AtomicI64,
    /// Unix seconds now, on the replica's clock (for the key's age).
    pub now: AtomicI64,
}

#[derive(Debug)]
struct ScrapeCollector(Arc<Scraped>);

impl Collector for ScrapeCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = &self.0;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let counters = [
            (
                "byollm_usage_rows_written",
                "Usage rows committed to the store",
                get(&s.usage_rows_written),
            ),
            (
                "byollm_usage_rows_retried",
                "Usage row commits that failed and were retried (once per failed try)",
                get(&s.usage_rows_retried),
            ),
            (
                "byollm_usage_rows_dropped",
                "Usage rows never stored (queue full for the whole wait, or writer gone)",
                get(&s.usage_rows_dropped),
            ),
        ];
        for (name, help, value) in counters {
            let c = ConstCounter::new(value);
            c.encode(encoder.encode_descriptor(name, help, None, c.metric_type())?)?;
        }
        let created = s.signing_key_created.load(Ordering::Relaxed);
        let age = if created > 0 {
            (s.now.load(Ordering::Relaxed) - created).max(0)
        } else {
            -1
        };
        let gauges = [
            (
                "byollm_credentials_cached",
                "AWS credential sets held by the credential cache",
                i64::try_from(get(&s.credentials_cached)).unwrap_or(i64::MAX),
            ),
            (
                "byollm_usage_queue_depth",
                "Usage rows queued or being written, not yet committed",
                i64::try_from(get(&s.usage_queue_depth)).unwrap_or(i64::MAX),
            ),
            (
                "byollm_gateway_streams_in_flight",
                "Committed streams still sending",
                i64::try_from(get(&s.streams_in_flight)).unwrap_or(i64::MAX),
            ),
            (
                "byollm_signing_key_active_age_seconds",
                "Age of the key that signs identity tokens now (-1: no active key)",
                age,
            ),
        ];
        for (name, help, value) in gauges {
            let g = ConstGauge::new(value);
            g.encode(encoder.encode_descriptor(name, help, None, g.metric_type())?)?;
        }
        process::encode(&mut encoder)
    }
}

/// Every series byollm exports (see the crate docs for the label rules).
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    per_team: bool,
    scraped: Arc<Scraped>,
    http_requests: Counters<HttpLabels>,
    http_duration: Histograms<HttpRouteLabels>,
    gateway_requests: Counters<GatewayLabels>,
    upstream_duration: Histograms<HostLabels>,
    upstream_ttft: Histograms<HostLabels>,
    fallbacks: Counters<FallbackLabels>,
    tokens: Counters<TokenLabels>,
    sts_calls: Counters<OutcomeLabels>,
    sts_duration: Histogram,
    credential_cache: Counters<EventLabels>,
    identity_tokens: Counters<ActorLabels>,
    auth_failures: Counters<ReasonLabels>,
    /// False while recording is paused.
    recording: AtomicBool,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new(false)
    }
}

impl Metrics {
    /// A registry with every series; `per_team` adds a `team` label (the team
    /// id) to gateway requests and tokens.
    pub fn new(per_team: bool) -> Self {
        let mut registry = Registry::default();
        let scraped = Arc::new(Scraped::default());
        let m = Metrics {
            registry: Registry::default(),
            per_team,
            scraped: scraped.clone(),
            http_requests: Family::default(),
            http_duration: Family::new_with_constructor(histogram),
            gateway_requests: Family::default(),
            upstream_duration: Family::new_with_constructor(histogram),
            upstream_ttft: Family::new_with_constructor(histogram),
            fallbacks: Family::default(),
            tokens: Family::default(),
            sts_calls: Family::default(),
            sts_duration: histogram(),
            credential_cache: Family::default(),
            identity_tokens: Family::default(),
            auth_failures: Family::default(),
            recording: AtomicBool::new(true),
        };
        registry.register(
            "byollm_http_requests",
            "HTTP requests answered, by route template, method and status class",
            m.http_requests.clone(),
        );
        registry.register(
            "byollm_http_request_duration_seconds",
            "HTTP request latency until the response head, by route template and method",
            m.http_duration.clone(),
        );
        registry.register(
            "byollm_gateway_requests",
            "Inference requests, by API format, model, host that served (none: no route) and outcome",
            m.gateway_requests.clone(),
        );
        registry.register(
            "byollm_upstream_duration_seconds",
            "Whole (non-streamed) upstream calls, start to answer, by host",
            m.upstream_duration.clone(),
        );
        registry.register(
            "byollm_upstream_ttft_seconds",
            "Streamed upstream calls, start to first chunk (time to first token), by host",
            m.upstream_ttft.clone(),
        );
        registry.register(
            "byollm_gateway_fallbacks",
            "Moves to the next route after a failed attempt, by from-host, to-host and reason",
            m.fallbacks.clone(),
        );
        registry.register(
            "byollm_gateway_tokens",
            "Tokens counted by upstreams, by host, model and direction (input, output)",
            m.tokens.clone(),
        );
        registry.register(
            "byollm_sts_calls",
            "AssumeRoleWithWebIdentity calls by outcome (ok, or the AWS error class)",
            m.sts_calls.clone(),
        );
        registry.register(
            "byollm_sts_call_duration_seconds",
            "AssumeRoleWithWebIdentity latency (token mint included)",
            m.sts_duration.clone(),
        );
        registry.register(
            "byollm_credential_cache",
            "Credential cache lookups by event (hit, miss, refresh)",
            m.credential_cache.clone(),
        );
        registry.register(
            "byollm_identity_tokens_issued",
            "Identity tokens signed, by actor type",
            m.identity_tokens.clone(),
        );
        registry.register(
            "byollm_auth_failures",
            "Requests refused authentication, by reason",
            m.auth_failures.clone(),
        );
        registry.register_collector(Box::new(ScrapeCollector(scraped)));
        Metrics { registry, ..m }
    }

    /// Values the scraper sets from their owners before rendering.
    pub fn scraped(&self) -> &Scraped {
        &self.scraped
    }

    /// Pauses (`false`) or resumes recording: while paused, the recording
    /// methods below return at once and the series keep their values. For
    /// measuring the cost of metrics (the gateway benchmark), not for
    /// operators: `[telemetry] metrics_listen = "off"` only closes the listener.
    pub fn set_recording(&self, on: bool) {
        self.recording.store(on, Ordering::Relaxed);
    }

    fn paused(&self) -> bool {
        !self.recording.load(Ordering::Relaxed)
    }

    /// Whether series carry a `team` label.
    pub fn per_team(&self) -> bool {
        self.per_team
    }

    fn team(&self, team: &str) -> Option<String> {
        self.per_team.then(|| team.to_owned())
    }

    /// One HTTP request: `route` is the matched route template (never the
    /// path); `seconds` until the response head.
    pub fn http_request(&self, method: &str, route: &str, status: u16, seconds: f64) {
        if self.paused() {
            return;
        }
        let method = method_label(method);
        self.http_requests
            .get_or_create(&HttpLabels {
                method,
                route: route.to_owned(),
                status_class: status_class(status),
            })
            .inc();
        self.http_duration
            .get_or_create(&HttpRouteLabels {
                method,
                route: route.to_owned(),
            })
            .observe(seconds);
    }

    /// One inference request's end. `model` must already be bounded (a catalog
    /// id or `other`); `host` is `aws_bedrock`, `direct_api` or `none`.
    pub fn gateway_request(
        &self,
        format: &'static str,
        model: &str,
        host: &'static str,
        outcome: &'static str,
        team: &str,
    ) {
        if self.paused() {
            return;
        }
        self.gateway_requests
            .get_or_create(&GatewayLabels {
                format,
                model: model.to_owned(),
                host,
                outcome,
                team: self.team(team),
            })
            .inc();
    }

    /// One upstream call that answered or failed: a stream's first chunk
    /// (`streamed`) goes to the time-to-first-token histogram.
    pub fn upstream_call(&self, host: &'static str, streamed: bool, seconds: f64) {
        if self.paused() {
            return;
        }
        let h = if streamed {
            &self.upstream_ttft
        } else {
            &self.upstream_duration
        };
        h.get_or_create(&HostLabels { host }).observe(seconds);
    }

    /// The gateway moved from a failed route on `from` to try one on `to`.
    pub fn fallback(&self, from: &'static str, to: &'static str, reason: &'static str) {
        if self.paused() {
            return;
        }
        self.fallbacks
            .get_or_create(&FallbackLabels { from, to, reason })
            .inc();
    }

    /// Tokens an upstream counted for one request.
    pub fn tokens(&self, host: &'static str, model: &str, team: &str, input: u64, output: u64) {
        if self.paused() {
            return;
        }
        for (direction, n) in [("input", input), ("output", output)] {
            if n > 0 {
                self.tokens
                    .get_or_create(&TokenLabels {
                        host,
                        model: model.to_owned(),
                        direction,
                        team: self.team(team),
                    })
                    .inc_by(n);
            }
        }
    }

    /// One STS call: `outcome` is `ok` or the AWS error class word.
    pub fn sts_call(&self, outcome: &'static str, seconds: f64) {
        if self.paused() {
            return;
        }
        self.sts_calls
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
        self.sts_duration.observe(seconds);
    }

    /// One credential cache lookup.
    pub fn credential_cache(&self, event: CacheEvent) {
        if self.paused() {
            return;
        }
        let event = match event {
            CacheEvent::Hit => "hit",
            CacheEvent::Miss => "miss",
            CacheEvent::Refresh => "refresh",
        };
        self.credential_cache
            .get_or_create(&EventLabels { event })
            .inc();
    }

    /// One identity token signed for an actor of this type.
    pub fn identity_token_issued(&self, actor_type: &'static str) {
        if self.paused() {
            return;
        }
        self.identity_tokens
            .get_or_create(&ActorLabels { actor_type })
            .inc();
    }

    /// One request refused authentication.
    pub fn auth_failure(&self, reason: &'static str) {
        if self.paused() {
            return;
        }
        self.auth_failures
            .get_or_create(&ReasonLabels { reason })
            .inc();
    }

    /// Every series in the OpenMetrics text format ([`CONTENT_TYPE`]).
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail; an encoder error would be a bug in
        // a label, and a partial page is better than none.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// The method as a bounded label: the standard ones, else `other`.
fn method_label(method: &str) -> &'static str {
    match method {
        "GET" => "GET",
        "POST" => "POST",
        "PUT" => "PUT",
        "PATCH" => "PATCH",
        "DELETE" => "DELETE",
        "HEAD" => "HEAD",
        "OPTIONS" => "OPTIONS",
        _ => "other",
    }
}

/// `2xx`, `4xx`, …
fn status_class(status: u16) -> &'static str {
    match status / 100 {
        1 => "1xx",
        2 => "2xx",
        3 => "3xx",
        4 => "4xx",
        _ => "5xx",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_render_with_bounded_labels() {
        let m = Metrics::new(false);
        m.http_request("GET", "/api/v1/me", 200, 0.000_07);
        m.http_request("BREW", "/api/v1/me", 418, 0.2);
        m.gateway_request("anthropic", "claude-x", "aws_bedrock", "ok", "team_1");
        m.fallback("aws_bedrock", "direct_api", "access_denied");
        m.tokens("aws_bedrock", "claude-x", "team_1", 10, 0);
        m.sts_call("ok", 0.01);
        m.credential_cache(CacheEvent::Hit);
        m.scraped().usage_rows_dropped.store(3, Ordering::Relaxed);
        let text = m.render();
        for line in [
            r#"byollm_http_requests_total{method="GET",route="/api/v1/me",status_class="2xx"} 1"#,
            r#"byollm_http_requests_total{method="other",route="/api/v1/me",status_class="4xx"} 1"#,
            r#"byollm_http_request_duration_seconds_bucket{le="0.0001",method="GET",route="/api/v1/me"} 1"#,
            r#"byollm_gateway_requests_total{format="anthropic",model="claude-x",host="aws_bedrock",outcome="ok",team=""} 1"#,
            r#"byollm_gateway_fallbacks_total{from="aws_bedrock",to="direct_api",reason="access_denied"} 1"#,
            r#"byollm_gateway_tokens_total{host="aws_bedrock",model="claude-x",direction="input",team=""} 10"#,
            r#"byollm_credential_cache_total{event="hit"} 1"#,
            "byollm_usage_rows_dropped_total 3",
            "byollm_signing_key_active_age_seconds -1",
        ] {
            assert!(text.contains(line), "{line} missing from:\n{text}");
        }
        assert!(!text.contains("team_1"), "no team ids by default");
        assert!(
            !text.contains("direction=\"output\""),
            "zero counts add no series"
        );
        let per_team = Metrics::new(true);
        per_team.gateway_request("openai", "m", "none", "no_route", "team_1");
        assert!(per_team.render().contains(r#"team="team_1""#));
    }

    #[test]
    fn paused_recording_leaves_the_series_as_they_were() {
        let m = Metrics::new(false);
        m.http_request("GET", "/api/v1/me", 200, 0.01);
        m.set_recording(false);
        m.http_request("GET", "/api/v1/me", 200, 0.01);
        m.auth_failure("unknown_key");
        let line =
            r#"byollm_http_requests_total{method="GET",route="/api/v1/me",status_class="2xx"}"#;
        assert!(m.render().contains(&format!("{line} 1")));
        assert!(!m.render().contains("byollm_auth_failures_total{"));
        m.set_recording(true);
        m.http_request("GET", "/api/v1/me", 200, 0.01);
        assert!(m.render().contains(&format!("{line} 2")));
    }

    #[test]
    fn buckets_resolve_50_microseconds_to_60_seconds() {
        assert_eq!(BUCKETS[0], 0.000_05);
        assert_eq!(BUCKETS[BUCKETS.len() - 1], 60.0);
        assert!(BUCKETS.windows(2).all(|w| w[0] < w[1]));
    }
}
