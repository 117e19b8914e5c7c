//! `[telemetry]`: the metrics listener, the `team` label switch, the log
//! format and the OTLP traces endpoint (see `docs/operations.md`).

use std::net::SocketAddr;

use serde::Deserialize;

use super::ConfigError;

/// `[telemetry]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetrySection {
    /// Address of the metrics listener, or `off` (default
    /// [`DEFAULT_METRICS_LISTEN`]).
    pub metrics_listen: Option<String>,
    /// Adds a `team` label (the team id) to the gateway's request and token
    /// series (default false: no ids in labels).
    pub per_team_metrics: Option<bool>,
    /// `text` (default) or `json` (one JSON object per line).
    pub log_format: Option<LogFormat>,
    /// OTLP/HTTP collector base URL (`http://host:4318`); traces are off
    /// when unset.
    pub otlp_endpoint: Option<String>,
}

/// Default metrics listener: loopback, so nothing outside the host scrapes
/// it unless the operator says so.
pub const DEFAULT_METRICS_LISTEN: &str = "127.0.0.1:9464";

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line (Loki, CloudWatch, jq).
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            _ => Err(format!("`{s}`: expected `text` or `json`")),
        }
    }
}

/// Where the metrics listener binds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum MetricsListen {
    /// No metrics listener (the [`Default`], for embedders and tests).
    #[default]
    Off,
    /// [`DEFAULT_METRICS_LISTEN`], not chosen by the operator: when the address
    /// is taken, the server warns and runs without metrics.
    Default(SocketAddr),
    /// An address the operator set: failing to bind it stops the start.
    At(SocketAddr),
}

impl MetricsListen {
    /// Parses `off` or an address; `what` names the setting in errors.
    pub fn parse(value: &str, what: &str) -> Result<MetricsListen, ConfigError> {
        if value.eq_ignore_ascii_case("off") {
            return Ok(MetricsListen::Off);
        }
        value.parse().map(MetricsListen::At).map_err(|_| {
            ConfigError::Invalid(format!(
                "{what}: expected an address such as 127.0.0.1:9464, or `off`"
            ))
        })
    }
}

/// `[telemetry]`, checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TelemetryConfig {
    /// The metrics listener.
    pub metrics_listen: MetricsListen,
    /// A `team` label on the gateway's series.
    pub per_team_metrics: bool,
    /// The log line format.
    pub log_format: LogFormat,
    /// Where traces are exported (OTLP/HTTP protobuf); `None`: no traces.
    pub otlp_endpoint: Option<String>,
}

/// Checks an OTLP endpoint: an `http://` or `https://` URL; `what` names the
/// setting in errors.
pub fn check_otlp_endpoint(value: &str, what: &str) -> Result<String, ConfigError> {
    let v = value.trim();
    let rest = v
        .strip_prefix("http://")
        .or_else(|| v.strip_prefix("https://"));
    match rest {
        Some(host) if !host.is_empty() && !host.starts_with('/') => Ok(v.to_owned()),
        _ => Err(ConfigError::Invalid(format!(
            "{what}: expected an http(s) URL such as http://127.0.0.1:4318"
        ))),
    }
}

impl TelemetrySection {
    /// The settings, checked; unset values take their defaults.
    pub fn config(&self) -> Result<TelemetryConfig, ConfigError> {
        let metrics_listen = match &self.metrics_listen {
            Some(v) => MetricsListen::parse(v, "telemetry.metrics_listen")?,
            None => MetricsListen::Default(
                DEFAULT_METRICS_LISTEN
                    .parse()
                    .map_err(|_| ConfigError::Invalid("bad default metrics address".into()))?,
            ),
        };
        Ok(TelemetryConfig {
            metrics_listen,
            per_team_metrics: self.per_team_metrics.unwrap_or(false),
            log_format: self.log_format.unwrap_or_default(),
            otlp_endpoint: self
                .otlp_endpoint
                .as_deref()
                .map(|v| check_otlp_endpoint(v, "telemetry.otlp_endpoint"))
                .transpose()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{FileConfig, ServerConfig};

    #[test]
    fn telemetry_settings_are_read_and_checked() {
        let merge = |text: &str| {
            let file = FileConfig::parse(&format!("version = 1\n[telemetry]\n{text}")).unwrap();
            ServerConfig::merge(file, None, None, None, None, std::path::PathBuf::new())
                .map(|c| c.telemetry)
                .map_err(|e| e.to_string())
        };
        let default = merge("").unwrap();
        assert_eq!(
            default.metrics_listen,
            MetricsListen::Default(DEFAULT_METRICS_LISTEN.parse().unwrap())
        );
        assert!(!default.per_team_metrics);
        assert_eq!(default.log_format, LogFormat::Text);
        assert_eq!(default.otlp_endpoint, None);
        assert_eq!(
            merge("otlp_endpoint = \"http://collector:4318\"")
                .unwrap()
                .otlp_endpoint
                .as_deref(),
            Some("http://collector:4318")
        );
        let e = merge("otlp_endpoint = \"collector:4318\"").unwrap_err();
        assert!(e.starts_with("telemetry.otlp_endpoint"), "{e}");
        let set = merge(
            "metrics_listen = \"0.0.0.0:9100\"\nper_team_metrics = true\nlog_format = \"json\"",
        )
        .unwrap();
        assert_eq!(
            set.metrics_listen,
            MetricsListen::At("0.0.0.0:9100".parse().unwrap())
        );
        assert!(set.per_team_metrics);
        assert_eq!(set.log_format, LogFormat::Json);
        assert_eq!(
            merge("metrics_listen = \"off\"").unwrap().metrics_listen,
            MetricsListen::Off
        );
        let e = merge("metrics_listen = \"nowhere\"").unwrap_err();
        assert!(e.starts_with("telemetry.metrics_listen"), "{e}");
        assert!(FileConfig::parse("version = 1\n[telemetry]\nlog_format = \"xml\"").is_err());
        assert!(FileConfig::parse("version = 1\n[telemetry]\notlp = 1").is_err());
        assert_eq!("json".parse::<LogFormat>(), Ok(LogFormat::Json));
        assert!("yaml".parse::<LogFormat>().is_err());
    }
}
