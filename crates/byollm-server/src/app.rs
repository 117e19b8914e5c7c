//! The application: shared state, the router with its layers, and a running
//! server with background maintenance and graceful shutdown.
//!
//! Shutdown ([`Server::shutdown`]) drains: it stops accepting, lets requests and
//! streams in flight finish for the grace period (`[server]
//! shutdown_grace_seconds`), then ends the streams still open with their
//! format's error event, waits for their usage rows, flushes the usage queue,
//! and returns.

use std::net::SocketAddr;
use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::HeaderName;
use axum::http::header::{AUTHORIZATION, COOKIE, PROXY_AUTHORIZATION};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;

use byollm_api::clock::Clock;
use byollm_core::broker::CredentialsBroker;
use byollm_core::identity::kek::Kek;
use byollm_core::identity::keyring::Keyring;
use byollm_core::secret_ref::SecretRef;
use byollm_core::service::Core;
use byollm_core::store::Store;
use byollm_core::usage::UsageSink;
use byollm_federation::aws::Sts;
use byollm_gateway::direct::DirectEndpoint;
use byollm_gateway::{Gateway, GatewayConfig};

use crate::config::{MetricsListen, ServerConfig, ShutdownConfig};
use crate::conn::{self, ConnectionLimits};
use crate::error::ApiError;
use crate::extract::MAX_BODY_BYTES;
use crate::{auth, routes, telemetry};

/// Everything a request handler may use.
#[derive(Debug)]
pub struct App {
    /// The domain.
    pub core: Arc<Core>,
    /// The inference gateway.
    pub gateway: Arc<Gateway>,
}

/// Router state: a cheap handle on the [`App`].
#[derive(Debug, Clone)]
pub struct AppState(pub Arc<App>);

impl Deref for AppState {
    type Target = App;
    fn deref(&self) -> &App {
        &self.0
    }
}

/// Headers that carry secrets: marked sensitive before tracing sees them.
pub const SENSITIVE_HEADERS: &[&str] = &[
    "x-api-key",
    "x-byollm-aws-access-key-id",
    "x-byollm-aws-secret-access-key",
    "x-byollm-aws-session-token",
];

/// The full router: every route, authentication by default, body limit, and
/// the request layer of [`crate::telemetry`] (request id, span, metrics,
/// access log).
///
/// The body limit here ([`MAX_BODY_BYTES`]) is the API's; the `/v1/*` handlers
/// read their bodies themselves up to `[gateway] max_body_bytes`, so their 413
/// is in the caller's own error format.
pub fn router(state: AppState) -> Router {
    let mut sensitive = vec![AUTHORIZATION, PROXY_AUTHORIZATION, COOKIE];
    sensitive.extend(SENSITIVE_HEADERS.iter().map(|h| HeaderName::from_static(h)));
    routes::router()
        .merge(crate::console::router(state.clone()))
        .route_layer(axum::middleware::from_fn(telemetry::mark_caller))
        .fallback(|| async { ApiError::no_route() })
        .method_not_allowed_fallback(|| async { ApiError::method_not_allowed() })
        .layer(axum::middleware::from_fn_with_state(
            auth::AuthState {
                app: state.clone(),
                guard: Arc::new(auth::FailureGuard::new(state.core.clock().clone())),
            },
            auth::authenticate,
        ))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn_with_state(
            state.core.clone(),
            telemetry::observe,
        ))
        .layer(SetSensitiveRequestHeadersLayer::new(sensitive))
        .with_state(state)
}

/// Failures starting the server.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The store could not be opened.
    #[error("store: {0}")]
    Store(#[from] byollm_core::store::StoreError),
    /// The KEK could not be loaded.
    #[error("key-encryption key: {0}")]
    Kek(#[from] byollm_core::identity::kek::KekError),
    /// The keyring could not be loaded.
    #[error("signing keys: {0}")]
    Keyring(#[from] byollm_core::identity::keyring::KeyringError),
    /// The data directory or socket failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// A setting is wrong.
    #[error("{0}")]
    Config(String),
    /// The HTTP client for upstreams could not be built.
    #[error("HTTP client: {0}")]
    Http(#[from] reqwest::Error),
}

/// Opens the store named by the config (PostgreSQL URL or the data directory's
/// SQLite), creating the data directory when needed.
pub async fn open_store(cfg: &ServerConfig) -> Result<Store, StartError> {
    create_private_dir(&cfg.data_dir)?;
    Ok(match &cfg.store_url {
        Some(url) => Store::connect(url).await?,
        None => Store::open_data_dir(&cfg.data_dir).await?,
    })
}

/// Loads the KEK: the configured reference, or the data directory's 0600 file.
pub fn load_kek(cfg: &ServerConfig) -> Result<Kek, StartError> {
    create_private_dir(&cfg.data_dir)?;
    Ok(match &cfg.kek {
        Some(reference) => Kek::load(reference)?,
        None => Kek::load_or_create_file(&cfg.data_dir.join("kek"))?,
    })
}

/// Creates the data directory readable by its owner only (0700); an existing
/// directory keeps its mode.
fn create_private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        builder.mode(0o700);
    }
    builder.create(dir)
}

/// Client-side STS call rate (DESIGN §5): steady rate and burst per replica.
pub const STS_CALLS_PER_SECOND: f64 = 20.0;
/// Burst of STS calls a replica may make at once.
pub const STS_BURST: f64 = 100.0;

/// Builds the domain for a config.
pub async fn build_core(
    cfg: &ServerConfig,
    clock: Arc<dyn Clock>,
) -> Result<Arc<Core>, StartError> {
    let store = open_store(cfg).await?;
    let kek = Arc::new(load_kek(cfg)?);
    let keyring = Keyring::open(
        store.clone(),
        kek,
        clock.clone(),
        cfg.core.signing_algorithm,
        cfg.core.max_token_ttl_seconds,
    )
    .await?;
    let sts = Arc::new(Sts::with_timeouts(
        cfg.upstreams.aws_endpoint_url.clone(),
        cfg.gateway.sts,
    ));
    let metrics = byollm_telemetry::Metrics::new(cfg.telemetry.per_team_metrics);
    let google_clock = clock.clone();
    let google = Arc::new(byollm_federation::gcp::GoogleSts::new(
        cfg.upstreams.gcp_endpoint_url.clone(),
        Arc::new(move || google_clock.now_ms()),
    ));
    let entra_clock = clock.clone();
    let entra = Arc::new(byollm_federation::azure::EntraTokenEndpoint::new(
        cfg.upstreams.azure_endpoint_url.clone(),
        Arc::new(move || entra_clock.now_ms()),
    ));
    let broker = Arc::new(
        CredentialsBroker::new(sts, clock.clone(), STS_CALLS_PER_SECOND, STS_BURST)
            .with_gcp(google)
            .with_azure(entra)
            .with_metrics(Arc::new(metrics)),
    );
    let tasks = TaskTracker::new();
    let usage = UsageSink::start(store.clone(), &tasks);
    Ok(Arc::new(Core::new(
        store,
        clock,
        Arc::new(keyring),
        cfg.core.clone(),
        broker,
        usage,
        tasks,
    )))
}

/// How often each replica reloads and maintains the keyring (and purges old rows).
pub const MAINTENANCE_INTERVAL: Duration = Duration::from_secs(15);

/// After the grace period, how long the streams that were ended get to send
/// their error event, write their usage rows and close.
pub const AFTER_GRACE: Duration = Duration::from_secs(3);
/// Longest shutdown waits for the usage queue to be committed.
pub const FLUSH_WAIT: Duration = Duration::from_secs(5);

/// A running server.
#[derive(Debug)]
pub struct Server {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Where its metrics listener listens, when it has one.
    pub metrics_addr: Option<SocketAddr>,
    /// The domain it serves.
    pub core: Arc<Core>,
    /// Its inference gateway (its counters, [`Gateway::stats`], and its streams
    /// in flight).
    pub gateway: Arc<Gateway>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    grace: Duration,
}

impl Server {
    /// Stops accepting; lets requests and streams in flight finish for the
    /// grace period, then ends the streams still open with an error event;
    /// flushes the usage queue; waits for background tasks.
    pub async fn shutdown(self) {
        let streams = self.gateway.streams();
        tracing::info!(
            streams = streams.in_flight(),
            grace_seconds = self.grace.as_secs(),
            "draining: no new connections; requests in flight may finish"
        );
        self.shutdown.cancel();
        self.tracker.close();
        if tokio::time::timeout(self.grace, self.drained())
            .await
            .is_err()
        {
            tracing::warn!(
                streams = streams.in_flight(),
                "shutdown grace period over; ending the streams still open with an error event"
            );
            streams.end_all();
            if tokio::time::timeout(AFTER_GRACE, self.drained())
                .await
                .is_err()
            {
                tracing::warn!("connections still open after ending the streams; stopping anyway");
            }
        }
        let usage = self.core.usage_sink();
        if tokio::time::timeout(FLUSH_WAIT, usage.flush())
            .await
            .is_err()
        {
            tracing::error!(
                queued = usage.stats().queue_depth,
                "usage rows not committed at shutdown (the store is failing): they are LOST"
            );
        }
        self.core.broker().close().await;
    }

    /// Resolves when every connection has closed and every stream task (with
    /// its usage row) has finished.
    async fn drained(&self) {
        self.tracker.wait().await;
        self.gateway.streams().wait().await;
    }

    /// A token that stops the server when cancelled.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Serves `GET /metrics` on `listener` (the metrics listener, separate
    /// from the public one) until shutdown.
    pub fn serve_metrics(&mut self, listener: tokio::net::TcpListener) -> std::io::Result<()> {
        self.metrics_addr = Some(listener.local_addr()?);
        self.tracker.spawn(telemetry::serve_metrics(
            listener,
            self.core.clone(),
            self.gateway.clone(),
            self.shutdown.clone(),
        ));
        Ok(())
    }

    /// Sets how long [`Server::shutdown`] lets streams in flight run on.
    pub fn set_shutdown(&mut self, cfg: ShutdownConfig) {
        self.grace = cfg.grace;
    }
}

/// Starts the server: binds, serves, and runs keyring maintenance and retention.
pub async fn start(cfg: &ServerConfig, clock: Arc<dyn Clock>) -> Result<Server, StartError> {
    let gateway_cfg = gateway_config(cfg)?;
    let core = build_core(cfg, clock).await?;
    let listener = crate::conn::bind(cfg.listen)?;
    let mut server = serve_with(listener, core, gateway_cfg, cfg.connections.clone()).await?;
    server.set_shutdown(cfg.shutdown);
    match cfg.telemetry.metrics_listen {
        MetricsListen::Off => {}
        MetricsListen::At(addr) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| StartError::Config(format!("metrics listener {addr}: {e}")))?;
            server.serve_metrics(listener)?;
        }
        MetricsListen::Default(addr) => match tokio::net::TcpListener::bind(addr).await {
            Ok(listener) => server.serve_metrics(listener)?,
            Err(e) => tracing::warn!(
                %addr,
                error = %e,
                "the default metrics address is taken: serving without metrics (set \
                 --metrics-listen or [telemetry] metrics_listen, or `off`)"
            ),
        },
    }
    Ok(server)
}

/// Starts a server around an existing domain, with no upstream overrides.
pub async fn start_with_core(listen: SocketAddr, core: Arc<Core>) -> Result<Server, StartError> {
    start_with(listen, core, GatewayConfig::default()).await
}

/// The gateway settings of a config: upstream URLs, with key references
/// resolved, and `[gateway]`'s body limit and timeouts.
pub fn gateway_config(cfg: &ServerConfig) -> Result<GatewayConfig, StartError> {
    let endpoint = |url: &Option<String>,
                    key: &Option<String>,
                    flag: &str|
     -> Result<Option<DirectEndpoint>, StartError> {
        match (url, key) {
            (None, None) => Ok(None),
            (Some(url), Some(key)) => Ok(Some(DirectEndpoint {
                base_url: url.clone(),
                key: SecretRef::parse(key)
                    .and_then(|r| r.resolve())
                    .map_err(|e| StartError::Config(format!("--{flag}-key: {e}")))?,
            })),
            _ => Err(StartError::Config(format!(
                "--{flag}-url and --{flag}-key go together"
            ))),
        }
    };
    let u = &cfg.upstreams;
    Ok(GatewayConfig {
        aws_endpoint_url: u.aws_endpoint_url.clone(),
        gcp_endpoint_url: u.gcp_endpoint_url.clone(),
        azure_endpoint_url: u.azure_endpoint_url.clone(),
        direct_anthropic: endpoint(
            &u.direct_anthropic_url,
            &u.direct_anthropic_key,
            "direct-anthropic",
        )?,
        direct_openai: endpoint(&u.direct_openai_url, &u.direct_openai_key, "direct-openai")?,
        max_fallback_attempts: None,
        max_body_bytes: cfg.gateway.max_body_bytes,
        timeouts: cfg.gateway.timeouts,
    })
}

/// Starts a server around an existing domain and gateway settings.
pub async fn start_with(
    listen: SocketAddr,
    core: Arc<Core>,
    gateway_cfg: GatewayConfig,
) -> Result<Server, StartError> {
    serve_on(crate::conn::bind(listen)?, core, gateway_cfg).await
}

/// Serves on a listener bound beforehand (when the address must be known before
/// the server is built, e.g. to point an emulator's `--resolve` at it), with the
/// default connection limits.
pub async fn serve_on(
    listener: tokio::net::TcpListener,
    core: Arc<Core>,
    gateway_cfg: GatewayConfig,
) -> Result<Server, StartError> {
    serve_with(listener, core, gateway_cfg, ConnectionLimits::default()).await
}

/// Serves on a listener bound beforehand with the given connection limits
/// ([`crate::conn`]).
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    core: Arc<Core>,
    gateway_cfg: GatewayConfig,
    limits: ConnectionLimits,
) -> Result<Server, StartError> {
    let addr = listener.local_addr()?;
    let check_env = crate::console::CheckEnv::new(addr, gateway_cfg.aws_endpoint_url.clone());
    let gateway = Arc::new(Gateway::new(core.clone(), gateway_cfg)?);
    let app = router(AppState(Arc::new(App {
        core: core.clone(),
        gateway: gateway.clone(),
    })))
    .layer(axum::Extension(check_env));
    let shutdown = CancellationToken::new();
    let tracker = TaskTracker::new();
    // Returns once shutdown is requested and every connection has closed.
    tracker.spawn(conn::serve(listener, app, limits, shutdown.clone()));
    // Other replicas' changes (PostgreSQL); returns at once on SQLite.
    tracker.spawn(core.clone().follow_changes(shutdown.clone()));
    wait_until_listening(&core).await;
    let (stop, maint_core) = (shutdown.clone(), core.clone());
    tracker.spawn(async move {
        let mut tick = tokio::time::interval(MAINTENANCE_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                _ = tick.tick() => maintain(&maint_core).await,
            }
        }
    });
    Ok(Server {
        addr,
        metrics_addr: None,
        core,
        gateway,
        shutdown,
        tracker,
        grace: ShutdownConfig::default().grace,
    })
}

/// On PostgreSQL, waits (at most [`LISTEN_WAIT`]) until this replica hears
/// other replicas' changes, so that it starts with trusted caches; past that it
/// serves with its caches bypassed until the listener subscribes.
async fn wait_until_listening(core: &Core) {
    if !core.store().hears_changes() {
        return;
    }
    let subscribed = async {
        while core.subscriptions() == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    if tokio::time::timeout(LISTEN_WAIT, subscribed).await.is_err() {
        tracing::warn!(
            "not yet listening for other replicas' changes; caches bypassed until it is"
        );
    }
}

/// How long start-up waits for the change listener to subscribe.
const LISTEN_WAIT: Duration = Duration::from_secs(5);

/// One maintenance pass: keyring lifecycle, runs past their maximum age
/// (expired, with their tokens and AWS credentials), AWS credentials past their
/// expiration, and retention.
pub async fn maintain(core: &Core) {
    if let Err(e) = core.keyring().maintain().await {
        tracing::warn!(error = %e, "keyring maintenance failed; will retry");
    }
    match core.expire_overdue_runs().await {
        Ok(0) => {}
        Ok(n) => tracing::info!(runs = n, "runs expired at their maximum age"),
        Err(e) => tracing::warn!(error = %e, "run expiry failed; will retry"),
    }
    let evicted = core.broker().evict_expired();
    if evicted > 0 {
        tracing::debug!(entries = evicted, "expired AWS credentials dropped");
    }
    if let Err(e) = core.purge_console_sessions().await {
        tracing::warn!(error = %e, "console session purge failed; will retry");
    }
    let cutoff = core.clock().now() - core.config().retention_days * 86_400;
    match core.store().purge_before(cutoff).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(rows = n, "purged rows past retention"),
        Err(e) => tracing::warn!(error = %e, "retention purge failed; will retry"),
    }
}
