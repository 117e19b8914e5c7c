//! What operators see of each request, in one place: the request id, the
//! request's span, the HTTP metrics, the access log line, and the metrics
//! listener that serves [`byollm_telemetry::Metrics`].
//!
//! Invariants:
//! - Every response carries `x-request-id`: the caller's when it is a sane
//!   token ([`sane_request_id`]), else one generated here. Every log line of
//!   the request is inside the `request` span that carries it, and every JSON
//!   error body (`{"error": {…}}`: the API's and both `/v1` caller formats)
//!   gets it as `error.request_id`.
//! - The gateway names its usage row (`x-byollm-request-id`) by the id
//!   generated here, so both headers agree unless the caller sent its own
//!   `x-request-id` (a caller's id may repeat; a usage row's may not). A
//!   caller's `x-byollm-request-id` is never believed: it is replaced.
//! - The access log line and the metrics use the route template, never the
//!   path, and carry no key, token, header value or body.
//! - The metrics listener is separate from the public one and serves only
//!   `GET /metrics`, without authentication.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use byollm_core::auth::Principal;
use byollm_core::ids;
use byollm_core::service::Core;
use byollm_gateway::{Gateway, RouteTaken};
use byollm_telemetry::Stopwatch;

/// The request id header, on every response.
pub const HDR_X_REQUEST_ID: &str = "x-request-id";

/// The W3C trace context header a caller may send.
pub const HDR_TRACEPARENT: &str = "traceparent";

/// Longest caller-supplied request id kept.
pub const MAX_REQUEST_ID_LEN: usize = 128;

/// Largest error body the request id is added to; a bigger one passes as is.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// The request id of the request being served (request extension).
#[derive(Debug, Clone)]
pub struct RequestId(pub Arc<str>);

/// Who the authenticated caller was, carried from the inner layer (which
/// runs after authentication) to the outer one (which logs).
#[derive(Debug, Clone)]
struct Caller {
    team: String,
    actor_type: &'static str,
}

/// The caller's `x-request-id` when it is 1 to [`MAX_REQUEST_ID_LEN`] visible
/// ASCII characters; anything else is replaced by a generated id (it would
/// otherwise land in logs and bodies unchecked).
pub fn sane_request_id(value: &HeaderValue) -> Option<&str> {
    let s = value.to_str().ok()?;
    (!s.is_empty() && s.len() <= MAX_REQUEST_ID_LEN && s.bytes().all(|b| b.is_ascii_graphic()))
        .then_some(s)
}

/// Inner layer (route layer, inside authentication): notes the caller on the
/// response, for [`observe`]'s access log line.
pub async fn mark_caller(req: Request, next: Next) -> Response {
    byollm_telemetry::phase("server.authed");
    let who = req.extensions().get::<Principal>().map(|p| Caller {
        team: p.team_uid.clone(),
        actor_type: p.actor.actor_type.as_str(),
    });
    let mut resp = next.run(req).await;
    if let Some(who) = who {
        resp.extensions_mut().insert(who);
    }
    resp
}

/// Outer layer: request id, span, metrics, access log line, and the id in
/// error bodies.
pub async fn observe(State(core): State<Arc<Core>>, mut req: Request, next: Next) -> Response {
    byollm_telemetry::phase("server.observe");
    let watch = Stopwatch::start();
    let generated = ids::new_id("req");
    let id: Arc<str> = match req
        .headers()
        .get(HDR_X_REQUEST_ID)
        .and_then(sane_request_id)
    {
        Some(theirs) => theirs.into(),
        None => generated.as_str().into(),
    };
    match HeaderValue::from_str(&generated) {
        Ok(v) => req.headers_mut().insert(byollm_gateway::HDR_REQUEST_ID, v),
        Err(_) => req.headers_mut().remove(byollm_gateway::HDR_REQUEST_ID),
    };
    req.extensions_mut().insert(RequestId(id.clone()));
    let method = req.method().clone();
    // `Router::layer` wraps each route, so the template is known here; the
    // fallback (no route) has none.
    let template = req.extensions().get::<MatchedPath>().cloned();
    // Path only: query strings and headers stay out of the log.
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        method = %method,
        path = %req.uri().path(),
    );
    // A caller's W3C `traceparent` makes this span a child of theirs in
    // exported traces; it is parsed, never logged.
    if let Some(tp) = req
        .headers()
        .get(HDR_TRACEPARENT)
        .and_then(|v| v.to_str().ok())
    {
        byollm_telemetry::trace::continue_trace(&span, tp);
    }
    // Audit events recorded while serving name the request.
    let mut resp = byollm_core::service::with_request_id(id.clone(), next.run(req))
        .instrument(span.clone())
        .await;
    let caller = resp.extensions_mut().remove::<Caller>();
    let taken = resp.extensions_mut().remove::<RouteTaken>();
    let route = template.as_ref().map_or("unmatched", MatchedPath::as_str);
    let status = resp.status();
    let seconds = watch.seconds();
    core.metrics()
        .http_request(method.as_str(), route, status.as_u16(), seconds);
    tracing::info!(
        target: "byollm::access",
        parent: &span,
        method = %method,
        route,
        status = status.as_u16(),
        latency_ms = seconds * 1000.0,
        team = caller.as_ref().map(|c| c.team.as_str()),
        actor_type = caller.as_ref().map(|c| c.actor_type),
        upstream_route = taken.as_ref().map(|t| t.route.as_str()),
        attempts = taken.as_ref().map(|t| t.attempts),
        "request"
    );
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert(HDR_X_REQUEST_ID, v);
    }
    if status.is_client_error() || status.is_server_error() {
        resp = with_id_in_error_body(resp, &id).await;
    }
    byollm_telemetry::phase("server.responded");
    resp
}

/// Adds `error.request_id` to a JSON error body shaped `{"error": {…}}` (the
/// API's and both caller formats'); other bodies pass unchanged.
async fn with_id_in_error_body(resp: Response, id: &str) -> Response {
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !is_json {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let bytes = match axum::body::to_bytes(body, MAX_ERROR_BODY).await {
        Ok(b) => b,
        // Too big or broken: nothing left to send but an empty body.
        Err(_) => return Response::from_parts(parts, Body::empty()),
    };
    let mut value: serde_json::Value = match serde_json::from_slice(&bytes) {
        Ok(v) => v,
        Err(_) => return Response::from_parts(parts, Body::from(bytes)),
    };
    let Some(error) = value.get_mut("error").and_then(|e| e.as_object_mut()) else {
        return Response::from_parts(parts, Body::from(bytes));
    };
    error.insert("request_id".into(), id.into());
    let out = serde_json::to_vec(&value).unwrap_or_else(|_| bytes.to_vec());
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(out))
}

/// Copies the values the metrics read from their owners at scrape time.
pub fn refresh_scraped(core: &Core, gateway: &Gateway) {
    let s = core.metrics().scraped();
    let usage = core.usage_sink().stats();
    s.usage_queue_depth
        .store(usage.queue_depth, Ordering::Relaxed);
    s.usage_rows_written
        .store(usage.rows_written, Ordering::Relaxed);
    s.usage_rows_retried
        .store(usage.rows_retried, Ordering::Relaxed);
    s.usage_rows_dropped
        .store(usage.rows_lost, Ordering::Relaxed);
    s.credentials_cached
        .store(core.broker().stats().with_credentials, Ordering::Relaxed);
    s.streams_in_flight
        .store(gateway.streams().in_flight() as u64, Ordering::Relaxed);
    let active = core
        .keyring()
        .keys()
        .info
        .iter()
        .find(|k| k.state == "active")
        .map_or(0, |k| k.created_at);
    s.signing_key_created.store(active, Ordering::Relaxed);
    s.now.store(core.clock().now(), Ordering::Relaxed);
}

/// The metrics listener's router: `GET /metrics` only.
pub fn metrics_router(core: Arc<Core>, gateway: Arc<Gateway>) -> Router {
    Router::new().route(
        "/metrics",
        get(move || {
            let (core, gateway) = (core.clone(), gateway.clone());
            async move {
                refresh_scraped(&core, &gateway);
                (
                    StatusCode::OK,
                    [(header::CONTENT_TYPE, byollm_telemetry::CONTENT_TYPE)],
                    core.metrics().render(),
                )
                    .into_response()
            }
        }),
    )
}

/// Serves the metrics listener until `stop` is cancelled.
pub async fn serve_metrics(
    listener: tokio::net::TcpListener,
    core: Arc<Core>,
    gateway: Arc<Gateway>,
    stop: CancellationToken,
) {
    let addr: Option<SocketAddr> = listener.local_addr().ok();
    let app = metrics_router(core, gateway);
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(stop.cancelled_owned())
        .await
    {
        tracing::warn!(error = %e, ?addr, "metrics listener stopped");
    }
}
