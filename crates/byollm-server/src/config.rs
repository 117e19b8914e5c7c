//! Server configuration: `byollm.toml` (`version = 1`, unknown fields refused) and
//! the flags of `byollm serve`, which override the file.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use byollm_core::config::CoreConfig;
use byollm_core::identity::keys::Algorithm;

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
    /// How the server stops.
    pub shutdown: ShutdownConfig,
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

/// Where the gateway sends requests (`byollm serve` flags; the emulator in tests).
#[derive(Debug, Clone, Default)]
pub struct Upstreams {
    /// STS and Bedrock endpoint override (`--aws-endpoint-url`).
    pub aws_endpoint_url: Option<String>,
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
            upstreams: Upstreams::default(),
            shutdown,
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
