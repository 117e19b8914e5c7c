//! Operator commands: `serve`, `admin bootstrap`, `keys rotate|list` (DESIGN §11;
//! scripts rely on these flags).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use secrecy::ExposeSecret as _;

use byollm_api::clock::{Clock, SystemClock, rfc3339};
use byollm_core::identity::keyring::{Keyring, RotateOutcome};
use byollm_core::store::Store;
use byollm_server::config::{
    FileConfig, LogFormat, MetricsListen, ServerConfig, check_otlp_endpoint,
};

use crate::out;

/// A multi-threaded runtime for the async commands.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// `$BYOLLM_DATA_DIR`, else `$XDG_DATA_HOME/byollm`, else `~/.local/share/byollm`.
#[expect(clippy::disallowed_methods, reason = "configuration loading")]
pub fn default_data_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("BYOLLM_DATA_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    if let Some(xdg) = std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(xdg).join("byollm");
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
    home.join(".local").join("share").join("byollm")
}

/// The KEK reference from `$BYOLLM_KEK`, for offline commands.
#[expect(clippy::disallowed_methods, reason = "configuration loading")]
fn kek_from_env() -> Option<String> {
    std::env::var("BYOLLM_KEK").ok().filter(|v| !v.is_empty())
}

/// How often the OTLP exporter posts a batch (at most).
const TRACE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// Installs the log subscriber, with the OTLP trace layer when `otlp` names
/// a collector.
fn init_logging(format: LogFormat, otlp: Option<&str>) -> std::io::Result<()> {
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::filter::{FilterExt as _, filter_fn};
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let level = || {
        tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"))
    };
    let traces = otlp
        .map(|endpoint| byollm_telemetry::trace::OtlpLayer::new(endpoint, "byollm", TRACE_INTERVAL))
        .transpose()?
        .map(|t| t.with_filter(level()));
    let lines = match format {
        // One JSON object per line: the event's fields flattened at the top,
        // the request span's (request_id, method, path) under `span`.
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .with_writer(std::io::stderr)
            .boxed(),
        // Colour only for a person at a terminal: a log file or a pipe gets plain text.
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_writer(std::io::stderr)
            .boxed(),
    };
    // The log lines see events and the request span only (see `logged`).
    let lines = lines.with_filter(level().and(filter_fn(byollm_telemetry::logged)));
    let _ = tracing_subscriber::registry()
        .with(lines)
        .with(traces)
        .try_init();
    Ok(())
}

/// `byollm serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// The public issuer URL tokens carry in `iss` (AWS needs https://) [default:
    /// http://<listen address>, with a warning].
    #[arg(long, value_name = "URL")]
    issuer_url: Option<String>,
    /// Data directory (SQLite store, key-encryption key file) [default:
    /// $BYOLLM_DATA_DIR, $XDG_DATA_HOME/byollm].
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Store URL, e.g. postgres://user@host/db [default: SQLite in the data directory].
    #[arg(long, value_name = "URL")]
    store_url: Option<String>,
    /// Config file (byollm.toml, `version = 1`).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// STS and Bedrock endpoint override (e.g. the emulator, `byollm cloudsim`);
    /// wins over `[upstreams] aws_endpoint_url`.
    #[arg(long, value_name = "URL")]
    aws_endpoint_url: Option<String>,
    /// Google STS, IAM Credentials and Vertex AI endpoint override (e.g. the
    /// emulator); wins over `[upstreams] gcp_endpoint_url`.
    #[arg(long, value_name = "URL")]
    gcp_endpoint_url: Option<String>,
    /// Entra authority override (e.g. the emulator; the token endpoint is
    /// `URL/TENANT/oauth2/v2.0/token`); wins over `[upstreams]
    /// azure_endpoint_url`.
    #[arg(long, value_name = "URL")]
    azure_endpoint_url: Option<String>,
    /// Anthropic API base URL, without /v1 (or `[upstreams]
    /// direct_anthropic_url`).
    #[arg(long, value_name = "URL")]
    direct_anthropic_url: Option<String>,
    /// Anthropic API key reference: env:NAME or file:PATH.
    #[arg(long, value_name = "REF")]
    direct_anthropic_key: Option<String>,
    /// OpenAI API base URL, without /v1 (or `[upstreams] direct_openai_url`).
    #[arg(long, value_name = "URL")]
    direct_openai_url: Option<String>,
    /// OpenAI API key reference: env:NAME or file:PATH.
    #[arg(long, value_name = "REF")]
    direct_openai_key: Option<String>,
    /// Metrics listener (Prometheus, GET /metrics, no auth), or `off`
    /// [default: 127.0.0.1:9464].
    #[arg(long, value_name = "ADDR")]
    metrics_listen: Option<String>,
    /// Log lines as `text` or `json` (one object per line) [default: text].
    #[arg(long, value_name = "FORMAT")]
    log_format: Option<LogFormat>,
    /// Export traces to this OTLP/HTTP collector (`http://host:4318`)
    /// [default: no traces].
    #[arg(long, value_name = "URL")]
    otlp_endpoint: Option<String>,
}

/// Runs the server until Ctrl-C or SIGTERM, then drains it and exits 0.
pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let file = match &args.config {
        Some(path) => FileConfig::load(path)?,
        None => FileConfig {
            version: 1,
            ..FileConfig::default()
        },
    };
    let otlp = match &args.otlp_endpoint {
        Some(v) => Some(check_otlp_endpoint(v, "--otlp-endpoint")?),
        None => file.telemetry.config()?.otlp_endpoint,
    };
    init_logging(
        args.log_format
            .or(file.telemetry.log_format)
            .unwrap_or_default(),
        otlp.as_deref(),
    )
    .context("starting the OTLP trace exporter")?;
    // Each client connection is a descriptor: a server wants the hard limit,
    // not the desktop soft default of 1,024 (the connection cap is derived from
    // what this leaves; see byollm_server::conn).
    match byollm_server::conn::raise_nofile_limit() {
        Ok(limit) => tracing::debug!(?limit, "open-file limit"),
        Err(e) => tracing::warn!(error = %e, "could not raise the open-file limit"),
    }
    let mut cfg = ServerConfig::merge(
        file,
        args.listen,
        args.issuer_url,
        args.data_dir,
        args.store_url,
        default_data_dir(),
    )?;
    if cfg.kek.is_none() {
        cfg.kek = kek_from_env();
    }
    if let Some(listen) = &args.metrics_listen {
        cfg.telemetry.metrics_listen = MetricsListen::parse(listen, "--metrics-listen")?;
    }
    if let Some(format) = args.log_format {
        cfg.telemetry.log_format = format;
    }
    cfg.telemetry.otlp_endpoint = otlp;
    // Each flag wins over its `[upstreams]` key in the file.
    let file = std::mem::take(&mut cfg.upstreams);
    cfg.upstreams = byollm_server::config::Upstreams {
        aws_endpoint_url: args.aws_endpoint_url.or(file.aws_endpoint_url),
        gcp_endpoint_url: args.gcp_endpoint_url.or(file.gcp_endpoint_url),
        azure_endpoint_url: args.azure_endpoint_url.or(file.azure_endpoint_url),
        direct_anthropic_url: args.direct_anthropic_url.or(file.direct_anthropic_url),
        direct_anthropic_key: args.direct_anthropic_key.or(file.direct_anthropic_key),
        direct_openai_url: args.direct_openai_url.or(file.direct_openai_url),
        direct_openai_key: args.direct_openai_key.or(file.direct_openai_key),
    };
    if let Some(warning) = cfg.issuer_warning() {
        out::err(&format!("warning: {warning}"));
    }
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let server = byollm_server::start(&cfg, clock)
        .await
        .with_context(|| format!("starting the server (data dir {})", cfg.data_dir.display()))?;
    tracing::info!(addr = %server.addr, issuer = %cfg.core.issuer_url, "byollm listening");
    out::err(&format!(
        "byollm listening on http://{} (issuer {})",
        server.addr, cfg.core.issuer_url
    ));
    if let Some(addr) = server.metrics_addr {
        tracing::info!(%addr, "metrics listener");
        out::err(&format!("metrics on http://{addr}/metrics"));
    }
    let stop = server.shutdown_token();
    tokio::select! {
        () = shutdown_signal() => {}
        () = stop.cancelled() => {}
    }
    tracing::info!("shutting down");
    // Drain (see `Server::shutdown`); a second signal stops at once.
    tokio::select! {
        () = server.shutdown() => {}
        () = shutdown_signal() => tracing::warn!("second signal: stopping without draining"),
    }
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM: how `serve` and `cloudsim` are told to stop.
pub(crate) async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Where an offline command finds the store.
#[derive(Debug, Args)]
pub struct StoreArgs {
    /// Data directory [default: $BYOLLM_DATA_DIR, $XDG_DATA_HOME/byollm].
    #[arg(long, value_name = "DIR", conflicts_with = "store_url")]
    data_dir: Option<PathBuf>,
    /// Store URL, e.g. postgres://user@host/db.
    #[arg(long, value_name = "URL")]
    store_url: Option<String>,
}

impl StoreArgs {
    fn server_config(&self) -> anyhow::Result<ServerConfig> {
        let mut cfg = ServerConfig::merge(
            FileConfig {
                version: 1,
                ..FileConfig::default()
            },
            None,
            None,
            self.data_dir.clone(),
            self.store_url.clone(),
            default_data_dir(),
        )?;
        cfg.kek = kek_from_env();
        Ok(cfg)
    }

    async fn open(&self) -> anyhow::Result<(ServerConfig, Store)> {
        let cfg = self.server_config()?;
        let store = byollm_server::app::open_store(&cfg)
            .await
            .with_context(|| match &cfg.store_url {
                Some(_) => "opening the store at --store-url".to_owned(),
                None => format!("opening the store in {}", cfg.data_dir.display()),
            })?;
        Ok((cfg, store))
    }
}

/// `byollm admin …`.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create a team, its owner and an owner API key (run once per team).
    Bootstrap {
        #[command(flatten)]
        store: StoreArgs,
        /// The team's name.
        #[arg(long, value_name = "NAME")]
        team_name: String,
        /// The owner's email.
        #[arg(long, value_name = "EMAIL")]
        owner_email: String,
        /// Print {"team_uid", "owner_uid", "key"} as JSON (`key` as in every
        /// new key the API returns).
        #[arg(long)]
        json: bool,
    },
    /// Issue a new API key for a team owner who lost theirs (offline, on the
    /// store; the key is printed once and the recovery logged at warn).
    Recover {
        #[command(flatten)]
        store: StoreArgs,
        /// The team's uid.
        #[arg(long, value_name = "UID")]
        team: String,
        /// The owner's email.
        #[arg(long, value_name = "EMAIL")]
        owner_email: String,
        /// Print {"team_uid", "owner_uid", "key_id", "key"} as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print a one-time web console sign-in link for a member (works once,
    /// for 10 minutes; stored hashed; audited). A session opened with it acts
    /// as the member and ends at 12 hours, at sign-out or when the member is
    /// removed.
    LoginLink {
        #[command(flatten)]
        store: StoreArgs,
        /// The team's uid.
        #[arg(long, value_name = "UID")]
        team: String,
        /// The member: their uid or email.
        #[arg(long, value_name = "UID|EMAIL")]
        member: String,
        /// The server's URL as the browser reaches it.
        #[arg(
            long,
            env = "BYOLLM_SERVER",
            value_name = "URL",
            default_value = "http://127.0.0.1:8080"
        )]
        url: String,
        /// Print {"url", "member_uid", "expires_at"} as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// The console URL a sign-in link's token opens.
pub fn sign_in_link_url(server: &str, token: &str) -> String {
    format!(
        "{}{}{token}",
        server.trim_end_matches('/'),
        byollm_server::console::SIGN_IN_LINK_PREFIX
    )
}

/// Runs an admin command.
pub async fn admin(cmd: AdminCommand) -> anyhow::Result<()> {
    match cmd {
        AdminCommand::Bootstrap {
            store,
            team_name,
            owner_email,
            json,
        } => {
            let (_, store) = store.open().await?;
            let made = byollm_core::service::bootstrap_team(
                &store,
                &SystemClock,
                &team_name,
                &owner_email,
            )
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
            if json {
                out::json(&serde_json::json!({
                    "team_uid": made.team_uid,
                    "owner_uid": made.owner_uid,
                    "key": made.api_key,
                }))?;
            } else {
                out::line(&format!("team_uid:  {}", made.team_uid));
                out::line(&format!("owner_uid: {}", made.owner_uid));
                out::line(&format!("key:       {}", made.api_key.expose()));
                out::err("The API key is shown only once: store it now.");
            }
            Ok(())
        }
        AdminCommand::Recover {
            store,
            team,
            owner_email,
            json,
        } => {
            init_logging(LogFormat::Text, None)?;
            let (_, store) = store.open().await?;
            let made =
                byollm_core::service::recover_owner(&store, &SystemClock, &team, &owner_email)
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
            if json {
                out::json(&serde_json::json!({
                    "team_uid": team,
                    "owner_uid": made.owner_uid,
                    "key_id": made.key_id,
                    "key": made.api_key,
                }))?;
            } else {
                out::line(&format!("owner_uid: {}", made.owner_uid));
                out::line(&format!("key_id:    {}", made.key_id));
                out::line(&format!("key:       {}", made.api_key.expose()));
                out::err("The API key is shown only once: store it now.");
            }
            Ok(())
        }
        AdminCommand::LoginLink {
            store,
            team,
            member,
            url,
            json,
        } => {
            let (_, store) = store.open().await?;
            let link =
                byollm_core::service::create_sign_in_link(&store, &SystemClock, &team, &member)
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
            let url = sign_in_link_url(&url, link.token.expose_secret());
            let expires_at = rfc3339(link.expires_at);
            if json {
                out::json(&serde_json::json!({
                    "url": url,
                    "member_uid": link.member_uid,
                    "expires_at": expires_at,
                }))?;
            } else {
                out::line(&url);
                out::err(&format!(
                    "One-time sign-in link for member {}: it works once, until {expires_at}.",
                    link.member_uid
                ));
            }
            Ok(())
        }
    }
}

/// `byollm keys …`.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Publish a new signing key; it signs once its pre-publication window has
    /// passed, and the old key retires then.
    Rotate {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// List the published keys and their lifecycle.
    List {
        #[command(flatten)]
        store: StoreArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

async fn open_keyring(store_args: &StoreArgs) -> anyhow::Result<Keyring> {
    let (cfg, store) = store_args.open().await?;
    let kek = byollm_server::app::load_kek(&cfg)?;
    Ok(Keyring::open(
        store,
        Arc::new(kek),
        Arc::new(SystemClock),
        cfg.core.signing_algorithm,
        cfg.core.max_token_ttl_seconds,
    )
    .await?)
}

/// Runs a keys command.
pub async fn keys(cmd: KeysCommand) -> anyhow::Result<()> {
    match cmd {
        KeysCommand::Rotate { store } => {
            let ring = open_keyring(&store).await?;
            match ring.rotate().await? {
                RotateOutcome::Published {
                    kid,
                    activate_after,
                    companions,
                } => {
                    out::line(&format!(
                        "published {kid}; it starts signing at {}",
                        rfc3339(activate_after)
                    ));
                    for other in companions {
                        out::line(&format!("published {other} beside it (RS256, for Azure)"));
                    }
                    out::err(
                        "Running servers activate it then and retire the old key, which stays \
                         published until its last token has expired.",
                    );
                }
                RotateOutcome::AlreadyPending {
                    kid,
                    activate_after,
                } => {
                    out::line(&format!(
                        "{kid} is already pending; it starts signing at {}",
                        rfc3339(activate_after)
                    ));
                }
            }
            Ok(())
        }
        KeysCommand::List { store, json } => {
            let ring = open_keyring(&store).await?;
            let info = ring.keys().info.clone();
            if json {
                out::json(&info)?;
            } else {
                out::line(&format!(
                    "{:<24} {:<6} {:<8} {:<21} {}",
                    "KID", "ALG", "STATE", "SIGNS FROM", "PUBLISHED UNTIL"
                ));
                for k in info {
                    out::line(&format!(
                        "{:<24} {:<6} {:<8} {:<21} {}",
                        k.kid,
                        k.alg,
                        k.state,
                        rfc3339(k.activate_after),
                        k.verify_until.map_or_else(|| "-".to_owned(), rfc3339)
                    ));
                }
            }
            Ok(())
        }
    }
}
