//! Server configuration: `byollm.toml` (`version = 1`, unknown fields refused) and
//! the flags of `byollm serve`, which override the file.

#[path = "config/telemetry.rs"]
mod telemetry;
pub use telemetry::{
    DEFAULT_METRICS_LISTEN, LogFormat, MetricsListen, TelemetryConfig, TelemetrySection,
    check_otlp_endpoint,
};

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use byollm_core::config::CoreConfig;
use byollm_core::identity::keys::Algorithm;
use byollm_federation::aws::StsTimeouts;
use byollm_gateway::Timeouts;
use byollm_gateway::limits::DEFAULT_MAX_BODY_BYTES;

use crate::conn::ConnectionLimits;

/// Configuration failures.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file `{path}`: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file did not parse.
    #[error("config file `{path}`: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A value is out of range.
    #[error("{0}")]
    Invalid(String),
}

/// `byollm.toml`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Must be 1.
    pub version: u32,
    /// Listening and storage.
    #[serde(default)]
    pub server: ServerSection,
    /// The issuer's keys and tokens.
    #[serde(default)]
    pub identity: IdentitySection,
    /// Runs.
    #[serde(default)]
    pub runs: RunsSection,
    /// Retention.
    #[serde(default)]
    pub retention: RetentionSection,
    /// The inference gateway's request size and upstream timeouts.
    #[serde(default)]
    pub gateway: GatewaySection,
    /// Metrics listener and log format.
    #[serde(default)]
    pub telemetry: TelemetrySection,
    /// Where the gateway sends requests: AWS endpoint, direct vendor APIs
    /// (URLs and key references, never the keys themselves).
    #[serde(default)]
    pub upstreams: Upstreams,
}

/// `[server]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    /// Listen address.
    pub listen: Option<SocketAddr>,
    /// The public issuer URL.
    pub issuer_url: Option<String>,
    /// The data directory.
    pub data_dir: Option<PathBuf>,
    /// `sqlite://…` or `postgres://…`.
    pub store_url: Option<String>,
    /// On SIGTERM or Ctrl-C, how long streams in flight may run on before they
    /// are ended with an error event (default
    /// [`DEFAULT_SHUTDOWN_GRACE_SECONDS`]).
    pub shutdown_grace_seconds: Option<u64>,
    /// Most open client connections (default 10,000, and never more than the
    /// open-file limit minus a reserve; see [`ConnectionLimits::effective_max`]).
    pub max_connections: Option<usize>,
    /// Seconds a client has to send a complete request head (default 10).
    pub header_read_timeout_seconds: Option<u64>,
    /// Seconds an idle keep-alive connection stays open (default 75).
    pub keepalive_idle_timeout_seconds: Option<u64>,
}

impl ServerSection {
    /// The connection settings, checked.
    pub fn connection_limits(&self) -> Result<ConnectionLimits, ConfigError> {
        let mut limits = ConnectionLimits::default();
        if let Some(max) = self.max_connections {
            if !(1..=1_000_000).contains(&max) {
                return Err(ConfigError::Invalid(
                    "server.max_connections: expected 1 to 1000000".into(),
                ));
            }
            limits.max_connections = Some(max);
        }
        let seconds = |value: Option<u64>, name: &str, max: u64| match value {
            Some(v) if !(1..=max).contains(&v) => Err(ConfigError::Invalid(format!(
                "server.{name}: expected 1 to {max} seconds"
            ))),
            Some(v) => Ok(Some(Duration::from_secs(v))),
            None => Ok(None),
        };
        if let Some(d) = seconds(
            self.header_read_timeout_seconds,
            "header_read_timeout_seconds",
            300,
        )? {
            limits.header_read_timeout = d;
        }
        if let Some(d) = seconds(
            self.keepalive_idle_timeout_seconds,
            "keepalive_idle_timeout_seconds",
            3600,
        )? {
            limits.keepalive_idle_timeout = d;
        }
        Ok(limits)
    }
}

/// `[identity]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentitySection {
    /// `ES256` (default) or `RS256`, for newly generated keys.
    pub signing_algorithm: Option<Algorithm>,
    /// Ceiling of identity-token lifetimes.
    pub max_token_ttl_seconds: Option<i64>,
    /// The key-encryption key, `env:NAME` or `file:PATH`; default: a 0600 file
    /// `kek` in the data directory.
    pub kek: Option<String>,
}

/// `[runs]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunsSection {
    /// Longest life of a workload token.
    pub max_age_seconds: Option<i64>,
}

/// `[retention]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionSection {
    /// Runs, usage and audit rows older than this are purged (default 90).
    pub days: Option<i64>,
}

/// `[gateway]`: every value optional, each checked by [`ServerConfig::merge`].
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewaySection {
    /// Largest `/v1/*` request body (default 32 MiB).
    pub max_body_bytes: Option<u64>,
    /// Connection to Bedrock, STS or a vendor API (default 5000).
    pub connect_timeout_ms: Option<u64>,
    /// Until an upstream's answer starts: a stream's first event, or a whole
    /// answer (default 600000).
    pub first_byte_timeout_ms: Option<u64>,
    /// Between two chunks of a stream already answering (default 60000).
    pub stream_idle_timeout_ms: Option<u64>,
    /// One STS `AssumeRoleWithWebIdentity` call, start to end (default 10000).
    pub sts_timeout_ms: Option<u64>,
}

/// The gateway's limits, after the file is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GatewayLimits {
    /// Largest `/v1/*` request body, bytes (`/api/v1/*` stays at
    /// [`crate::extract::MAX_BODY_BYTES`]).
    pub max_body_bytes: usize,
    /// Bedrock and vendor API timeouts.
    pub timeouts: Timeouts,
    /// The broker's STS calls.
    pub sts: StsTimeouts,
}

impl Default for GatewayLimits {
    fn default() -> Self {
        GatewayLimits {
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            timeouts: Timeouts::default(),
            sts: StsTimeouts::default(),
        }
    }
}

/// `value` of `[gateway] key`, when set, within `range`.
fn gateway_value(
    key: &str,
    value: Option<u64>,
    range: std::ops::RangeInclusive<u64>,
    unit: &str,
) -> Result<Option<u64>, ConfigError> {
    match value {
        Some(v) if !range.contains(&v) => Err(ConfigError::Invalid(format!(
            "gateway.{key}: expected {} to {} {unit}, got {v}",
            range.start(),
            range.end()
        ))),
        other => Ok(other),
    }
}

impl GatewaySection {
    /// Checks the section against sane bounds and fills in the defaults.
    pub fn limits(&self) -> Result<GatewayLimits, ConfigError> {
        let mut l = GatewayLimits::default();
        // Bodies are buffered: at least the API's own 1 MiB, at most what any
        // upstream takes (Anthropic's batch API, 256 MB) per request in memory.
        if let Some(n) = gateway_value(
            "max_body_bytes",
            self.max_body_bytes,
            1024 * 1024..=256 * 1024 * 1024,
            "bytes",
        )? {
            l.max_body_bytes = usize::try_from(n)
                .map_err(|_| ConfigError::Invalid("gateway.max_body_bytes: too large".into()))?;
        }
        let ms = Duration::from_millis;
        if let Some(v) = gateway_value(
            "connect_timeout_ms",
            self.connect_timeout_ms,
            100..=60_000,
            "ms",
        )? {
            l.timeouts.connect = ms(v);
            l.sts.connect = ms(v);
        }
        // Bedrock allows a call up to 60 minutes.
        if let Some(v) = gateway_value(
            "first_byte_timeout_ms",
            self.first_byte_timeout_ms,
            1_000..=3_600_000,
            "ms",
        )? {
            l.timeouts.first_byte = ms(v);
        }
        if let Some(v) = gateway_value(
            "stream_idle_timeout_ms",
            self.stream_idle_timeout_ms,
            1_000..=3_600_000,
            "ms",
        )? {
            l.timeouts.stream_idle = ms(v);
        }
        if let Some(v) =
            gateway_value("sts_timeout_ms", self.sts_timeout_ms, 1_000..=120_000, "ms")?
        {
            l.sts.call = ms(v);
        }
        Ok(l)
    }
}

impl FileConfig {
    /// Reads and checks a config file.
    pub fn load(path: &Path) -> Result<FileConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        FileConfig::parse(&text).map_err(|message| ConfigError::Parse {
            path: path.to_owned(),
            message,
        })
    }

    /// Parses config text.
    pub fn parse(text: &str) -> Result<FileConfig, String> {
        let cfg: FileConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        if cfg.version != 1 {
            return Err(format!(
                "`version = {}` is not supported; expected `version = 1`",
                cfg.version
            ));
        }
        Ok(cfg)
    }
}

/// Everything `byollm serve` needs, after flags and file are merged.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Listen address (`127.0.0.1:0` in tests).
    pub listen: SocketAddr,
    /// The data directory (SQLite store and default KEK file).
    pub data_dir: PathBuf,
    /// A store URL overriding the data directory's SQLite.
    pub store_url: Option<String>,
    /// The KEK reference, when not the default file.
    pub kek: Option<String>,
    /// The domain's settings (issuer URL first of all).
    pub core: CoreConfig,
    /// Upstream endpoints of the gateway.
    pub upstreams: Upstreams,
    /// `[gateway]`: body limit and upstream timeouts.
    pub gateway: GatewayLimits,
    /// Connection cap and timeouts (`[server]`).
    pub connections: ConnectionLimits,
    /// How the server stops.
    pub shutdown: ShutdownConfig,
    /// `[telemetry]`: metrics listener, labels, log format.
    pub telemetry: TelemetryConfig,
}

impl ServerConfig {
    /// A server on `listen` keeping its state in `data_dir` (SQLite, the KEK
    /// file beside it), with every other setting at its default: what an
    /// embedding program or a test starts from.
    pub fn new(listen: SocketAddr, data_dir: PathBuf, core: CoreConfig) -> Self {
        ServerConfig {
            listen,
            data_dir,
            store_url: None,
            kek: None,
            core,
            upstreams: Upstreams::default(),
            gateway: GatewayLimits::default(),
            connections: ConnectionLimits::default(),
            shutdown: ShutdownConfig::default(),
            telemetry: TelemetryConfig::default(),
        }
    }
}

/// Default of `[server] shutdown_grace_seconds`. Kubernetes kills a pod
/// `terminationGracePeriodSeconds` (default 30) after SIGTERM; the grace plus
/// ending the streams left ([`crate::app::AFTER_GRACE`]) plus the usage flush
/// ([`crate::app::FLUSH_WAIT`]) stays under it.
pub const DEFAULT_SHUTDOWN_GRACE_SECONDS: u64 = 20;
/// Largest `[server] shutdown_grace_seconds`.
pub const MAX_SHUTDOWN_GRACE_SECONDS: u64 = 3_600;

/// How the server stops (see [`crate::app::Server::shutdown`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShutdownConfig {
    /// How long requests and streams in flight may run on after the signal.
    pub grace: Duration,
}

impl Default for ShutdownConfig {
    fn default() -> Self {
        ShutdownConfig {
            grace: Duration::from_secs(DEFAULT_SHUTDOWN_GRACE_SECONDS),
        }
    }
}

/// Where the gateway sends requests: `[upstreams]` in `byollm.toml`, each
/// overridden by its `byollm serve` flag (the emulator in tests). Keys are
/// references (`env:NAME`, `file:PATH`), so the file holds no secret.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Upstreams {
    /// STS and Bedrock endpoint override (`--aws-endpoint-url`).
    pub aws_endpoint_url: Option<String>,
    /// Google STS, IAM Credentials and Vertex AI endpoint override, one URL
    /// for all three and every location (`--gcp-endpoint-url`).
    #[serde(default)]
    pub gcp_endpoint_url: Option<String>,
    /// Entra authority override: the token endpoint is
    /// `URL/TENANT/oauth2/v2.0/token` (`--azure-endpoint-url`).
    #[serde(default)]
    pub azure_endpoint_url: Option<String>,
    /// Anthropic API base URL without `/v1` (`--direct-anthropic-url`).
    pub direct_anthropic_url: Option<String>,
    /// Anthropic API key reference (`--direct-anthropic-key`, `env:`/`file:`).
    pub direct_anthropic_key: Option<String>,
    /// OpenAI API base URL without `/v1` (`--direct-openai-url`).
    pub direct_openai_url: Option<String>,
    /// OpenAI API key reference (`--direct-openai-key`).
    pub direct_openai_key: Option<String>,
}

/// Default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

impl ServerConfig {
    /// Merges the file under the flags (flags win) and checks the result.
    pub fn merge(
        file: FileConfig,
        listen: Option<SocketAddr>,
        issuer_url: Option<String>,
        data_dir: Option<PathBuf>,
        store_url: Option<String>,
        default_data_dir: PathBuf,
    ) -> Result<ServerConfig, ConfigError> {
        let connections = file.server.connection_limits()?;
        let listen = match listen.or(file.server.listen) {
            Some(l) => l,
            None => DEFAULT_LISTEN
                .parse()
                .map_err(|_| ConfigError::Invalid("bad default listen address".into()))?,
        };
        let issuer_url = issuer_url
            .or(file.server.issuer_url)
            .unwrap_or_else(|| format!("http://{listen}"));
        check_issuer_url(&issuer_url)?;
        let mut core = CoreConfig::new(issuer_url);
        if let Some(alg) = file.identity.signing_algorithm {
            core.signing_algorithm = alg;
        }
        if let Some(ttl) = file.identity.max_token_ttl_seconds {
            if !(60..=43_200).contains(&ttl) {
                return Err(ConfigError::Invalid(
                    "identity.max_token_ttl_seconds: expected 60 to 43200".into(),
                ));
            }
            core.max_token_ttl_seconds = ttl;
        }
        if let Some(age) = file.runs.max_age_seconds {
            if age < 60 {
                return Err(ConfigError::Invalid(
                    "runs.max_age_seconds: expected at least 60".into(),
                ));
            }
            core.run_max_age_seconds = age;
        }
        if let Some(days) = file.retention.days {
            if days < 1 {
                return Err(ConfigError::Invalid(
                    "retention.days: expected at least 1".into(),
                ));
            }
            core.retention_days = days;
        }
        let gateway = file.gateway.limits()?;
        let telemetry = file.telemetry.config()?;
        let mut shutdown = ShutdownConfig::default();
        if let Some(grace) = file.server.shutdown_grace_seconds {
            if grace > MAX_SHUTDOWN_GRACE_SECONDS {
                return Err(ConfigError::Invalid(format!(
                    "server.shutdown_grace_seconds: expected 0 to {MAX_SHUTDOWN_GRACE_SECONDS}"
                )));
            }
            shutdown.grace = Duration::from_secs(grace);
        }
        Ok(ServerConfig {
            listen,
            data_dir: data_dir
                .or(file.server.data_dir)
                .unwrap_or(default_data_dir),
            store_url: store_url.or(file.server.store_url),
            kek: file.identity.kek,
            core,
            upstreams: file.upstreams,
            gateway,
            connections,
            shutdown,
            telemetry,
        })
    }

    /// Why AWS would refuse this issuer, if it would (aws-facts §2): STS needs a
    /// public `https://` issuer whose URL equals `iss` exactly.
    pub fn issuer_warning(&self) -> Option<String> {
        let url = &self.core.issuer_url;
        if !url.starts_with("https://") {
            return Some(format!(
                "issuer URL `{url}` is not https://: AWS STS will refuse its tokens. Set \
                 --issuer-url to the public https:// URL that serves this server's \
                 /.well-known/ paths"
            ));
        }
        None
    }
}

fn check_issuer_url(url: &str) -> Result<(), ConfigError> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| {
            ConfigError::Invalid(format!("--issuer-url `{url}`: expected an http(s):// URL"))
        })?;
    if rest.is_empty() || rest.contains(['?', '#', ' ']) {
        return Err(ConfigError::Invalid(format!(
            "--issuer-url `{url}`: expected scheme and host, with no query or fragment"
        )));
    }
    if rest.ends_with('/') {
        return Err(ConfigError::Invalid(format!(
            "--issuer-url `{url}`: drop the trailing slash; AWS matches `iss` against the \
             provider URL exactly"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_config_is_strict() {
        assert!(FileConfig::parse("version = 1").is_ok());
        assert!(
            FileConfig::parse("version = 2")
                .unwrap_err()
                .contains("version = 1")
        );
        assert!(
            FileConfig::parse("version = 1\n[server]\nlisten_addr = \"x\"")
                .unwrap_err()
                .contains("listen_addr")
        );
        let cfg = FileConfig::parse(
            "version = 1\n[server]\nissuer_url = \"https://id.example.com\"\n[identity]\nsigning_algorithm = \"RS256\"",
        )
        .unwrap();
        let merged =
            ServerConfig::merge(cfg, None, None, None, None, PathBuf::from("/tmp/x")).unwrap();
        assert_eq!(merged.core.issuer_url, "https://id.example.com");
        assert_eq!(merged.core.signing_algorithm, Algorithm::Rs256);
        assert!(merged.issuer_warning().is_none());
        assert_eq!(merged.shutdown, ShutdownConfig::default());
        let cfg = FileConfig::parse("version = 1\n[server]\nshutdown_grace_seconds = 5").unwrap();
        let merged =
            ServerConfig::merge(cfg, None, None, None, None, PathBuf::from("/tmp/x")).unwrap();
        assert_eq!(merged.shutdown.grace, Duration::from_secs(5));
        let cfg =
            FileConfig::parse("version = 1\n[server]\nshutdown_grace_seconds = 3601").unwrap();
        let err = ServerConfig::merge(cfg, None, None, None, None, PathBuf::from("/tmp/x"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("shutdown_grace_seconds"), "{err}");
    }

    #[test]
    fn upstreams_come_from_the_file() {
        let cfg = FileConfig::parse(
            "version = 1\n[upstreams]\naws_endpoint_url = \"http://127.0.0.1:4566\"\n\
             direct_anthropic_url = \"https://api.anthropic.com\"\n\
             direct_anthropic_key = \"env:ANTHROPIC_API_KEY\"",
        )
        .unwrap();
        let merged =
            ServerConfig::merge(cfg, None, None, None, None, PathBuf::from("/tmp/x")).unwrap();
        let u = &merged.upstreams;
        assert_eq!(u.aws_endpoint_url.as_deref(), Some("http://127.0.0.1:4566"));
        assert_eq!(
            u.direct_anthropic_url.as_deref(),
            Some("https://api.anthropic.com")
        );
        assert_eq!(
            u.direct_anthropic_key.as_deref(),
            Some("env:ANTHROPIC_API_KEY")
        );
        assert!(u.direct_openai_url.is_none());
        assert!(
            FileConfig::parse("version = 1\n[upstreams]\nanthropic_key = \"sk-x\"")
                .unwrap_err()
                .contains("anthropic_key")
        );
    }

    #[test]
    fn gateway_limits_are_checked_and_named() {
        let merge = |text: &str| {
            let file = FileConfig::parse(&format!("version = 1\n[gateway]\n{text}")).unwrap();
            ServerConfig::merge(file, None, None, None, None, PathBuf::new())
        };
        let cfg = merge("").unwrap();
        assert_eq!(cfg.gateway, GatewayLimits::default());
        assert_eq!(cfg.gateway.max_body_bytes, 32 * 1024 * 1024);
        let cfg = merge(
            "max_body_bytes = 2097152\nconnect_timeout_ms = 300\nfirst_byte_timeout_ms = 1000\n\
             stream_idle_timeout_ms = 2000\nsts_timeout_ms = 3000",
        )
        .unwrap();
        assert_eq!(cfg.gateway.max_body_bytes, 2 * 1024 * 1024);
        assert_eq!(cfg.gateway.timeouts.connect, Duration::from_millis(300));
        assert_eq!(cfg.gateway.sts.connect, Duration::from_millis(300));
        assert_eq!(cfg.gateway.timeouts.first_byte, Duration::from_secs(1));
        assert_eq!(cfg.gateway.timeouts.stream_idle, Duration::from_secs(2));
        assert_eq!(cfg.gateway.sts.call, Duration::from_secs(3));
        for (text, key) in [
            ("max_body_bytes = 0", "gateway.max_body_bytes"),
            ("max_body_bytes = 99999999999", "gateway.max_body_bytes"),
            ("connect_timeout_ms = 0", "gateway.connect_timeout_ms"),
            (
                "first_byte_timeout_ms = 86400000",
                "gateway.first_byte_timeout_ms",
            ),
            (
                "stream_idle_timeout_ms = 5",
                "gateway.stream_idle_timeout_ms",
            ),
            ("sts_timeout_ms = 0", "gateway.sts_timeout_ms"),
        ] {
            let e = merge(text).unwrap_err().to_string();
            assert!(e.starts_with(key), "{text}: {e}");
        }
        assert!(
            FileConfig::parse("version = 1\n[gateway]\nmax_body = 5")
                .unwrap_err()
                .contains("max_body")
        );
    }

    #[test]
    fn connection_settings_are_read_and_checked() {
        let merge = |text: &str| {
            ServerConfig::merge(
                FileConfig::parse(text)?,
                None,
                None,
                None,
                None,
                PathBuf::new(),
            )
            .map_err(|e| e.to_string())
        };
        let cfg = merge(
            "version = 1\n[server]\nmax_connections = 64\nheader_read_timeout_seconds = 5\nkeepalive_idle_timeout_seconds = 30",
        )
        .unwrap();
        assert_eq!(
            cfg.connections,
            ConnectionLimits {
                max_connections: Some(64),
                header_read_timeout: Duration::from_secs(5),
                keepalive_idle_timeout: Duration::from_secs(30),
            }
        );
        assert_eq!(
            merge("version = 1").unwrap().connections,
            ConnectionLimits::default()
        );
        for bad in [
            "max_connections = 0",
            "header_read_timeout_seconds = 0",
            "header_read_timeout_seconds = 301",
            "keepalive_idle_timeout_seconds = 0",
        ] {
            let err = merge(&format!("version = 1\n[server]\n{bad}")).unwrap_err();
            assert!(err.contains("server."), "{bad}: {err}");
        }
    }

    #[test]
    fn issuer_urls_are_checked() {
        let m = |u: &str| {
            ServerConfig::merge(
                FileConfig::default(),
                None,
                Some(u.into()),
                None,
                None,
                PathBuf::new(),
            )
        };
        assert!(m("https://a.example.com/").is_err());
        assert!(m("ftp://a").is_err());
        assert!(m("https://a.example.com?x").is_err());
        assert!(
            m("http://127.0.0.1:8080")
                .unwrap()
                .issuer_warning()
                .is_some()
        );
    }
}
