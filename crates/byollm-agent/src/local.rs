//! `LocalChain`: the member's own AWS credentials (DESIGN §2 flow 4) from the
//! AWS default chain or a named profile, resolved by `aws-config` exactly as
//! the AWS SDKs do (env, shared files, `credential_process`, SSO, …).
//!
//! When credentials are missing, fail to load or are about to expire, the
//! configured auth-refresh command (for example `aws sso login --profile dev`)
//! runs once with the terminal attached, then the chain is rebuilt and read
//! again (a fresh chain re-reads the files and the SSO cache). Each state
//! carries a plain message; no message contains a secret.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use aws_config::BehaviorVersion;
use aws_credential_types::provider::ProvideCredentials as _;
use aws_credential_types::provider::error::CredentialsError;
use aws_runtime::env_config::file::{EnvConfigFileKind, EnvConfigFiles};
use secrecy::SecretString;

use byollm_api::clock::Clock;

use crate::creds::{AwsCredentials, CredentialState, CredentialStatus, humanize_remaining};

/// Credentials closer than this to expiry count as expired: a request signed
/// with them could outlive them.
pub const EXPIRY_MARGIN_MS: i64 = 60_000;

/// Where local credentials come from.
#[derive(Debug, Clone, Default)]
pub struct LocalChainConfig {
    /// The profile; `None` is the default chain (`AWS_PROFILE`, then `default`).
    pub profile: Option<String>,
    /// Run this when credentials are missing or expired (program and arguments),
    /// e.g. `["aws", "sso", "login", "--profile", "dev"]`.
    pub refresh_command: Option<Vec<String>>,
    /// Read this AWS config file instead of `~/.aws/config`.
    pub config_file: Option<PathBuf>,
    /// Read this credentials file instead of `~/.aws/credentials`.
    pub credentials_file: Option<PathBuf>,
    /// Local credentials are not in use.
    pub disabled: bool,
}

/// Why local credentials could not be had.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LocalError {
    /// Local credentials are turned off.
    #[error("local AWS credentials are not in use")]
    Disabled,
    /// Nothing in the chain had credentials.
    #[error("{0}")]
    Missing(String),
    /// A provider failed (SSO session expired, process failed, bad config).
    #[error("{0}")]
    Failed(String),
}

#[derive(Debug)]
struct State {
    status: CredentialStatus,
    creds: Option<AwsCredentials>,
    region: Option<String>,
}

/// The member's local AWS credentials with their state. Cheap to clone.
#[derive(Debug, Clone)]
pub struct LocalChain {
    cfg: Arc<LocalChainConfig>,
    clock: Arc<dyn Clock>,
    state: Arc<Mutex<State>>,
    flight: Arc<tokio::sync::Mutex<()>>,
}

impl LocalChain {
    /// A chain that has not loaded yet.
    pub fn new(cfg: LocalChainConfig, clock: Arc<dyn Clock>) -> Self {
        let status = if cfg.disabled {
            CredentialStatus::new(CredentialState::Disabled, "local AWS credentials are off")
        } else {
            CredentialStatus::new(
                CredentialState::Missing,
                format!("not loaded yet from {}", describe(&cfg)),
            )
        };
        Self {
            cfg: Arc::new(cfg),
            clock,
            state: Arc::new(Mutex::new(State {
                status,
                creds: None,
                region: None,
            })),
            flight: Arc::new(tokio::sync::Mutex::new(())),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Where things stand.
    pub fn status(&self) -> CredentialStatus {
        let now = self.clock.now_ms();
        let s = self.state();
        match (&s.creds, s.status.state) {
            (Some(c), CredentialState::Loaded) => {
                let when = c
                    .expires_at_ms
                    .map(|e| format!("; {}", humanize_remaining(now, e)))
                    .unwrap_or_else(|| "; long-term keys, no expiry".to_owned());
                CredentialStatus::new(
                    CredentialState::Loaded,
                    format!("{} ({}){when}", describe(&self.cfg), c.access_key_id),
                )
            }
            _ => s.status.clone(),
        }
    }

    /// The region the profile names, once loaded.
    pub fn region(&self) -> Option<String> {
        self.state().region.clone()
    }

    fn set(&self, state: CredentialState, message: String) {
        self.state().status = CredentialStatus::new(state, message);
    }

    /// Forgets the cached credentials (AWS said they expired or were not
    /// recognised): the next call reloads, running the auth-refresh command if
    /// the chain still has nothing valid.
    pub fn invalidate(&self) {
        self.state().creds = None;
    }

    /// Valid credentials: cached ones while they last, else loaded, running
    /// the auth-refresh command first when they are missing or expired.
    pub async fn credentials(&self) -> Result<AwsCredentials, LocalError> {
        if self.cfg.disabled {
            return Err(LocalError::Disabled);
        }
        let fresh = |s: &State, now: i64| {
            s.creds
                .as_ref()
                .filter(|c| c.valid_for(now, EXPIRY_MARGIN_MS))
                .cloned()
        };
        if let Some(c) = fresh(&self.state(), self.clock.now_ms()) {
            return Ok(c);
        }
        let _flight = self.flight.lock().await;
        if let Some(c) = fresh(&self.state(), self.clock.now_ms()) {
            return Ok(c);
        }
        let had = self.state().creds.is_some();
        self.set(
            CredentialState::Refreshing,
            format!(
                "{} credentials from {}",
                if had { "reloading" } else { "loading" },
                describe(&self.cfg)
            ),
        );
        let first = self.load().await;
        let needs_refresh = match &first {
            Ok(c) => !c.valid_for(self.clock.now_ms(), EXPIRY_MARGIN_MS),
            Err(_) => true,
        };
        let result = match (&self.cfg.refresh_command, needs_refresh) {
            (Some(cmd), true) => {
                self.set(
                    CredentialState::Refreshing,
                    format!("running the auth-refresh command `{}`", cmd.join(" ")),
                );
                match run_refresh_command(cmd).await {
                    Ok(()) => self.load().await,
                    Err(e) => Err(LocalError::Failed(e)),
                }
            }
            _ => first,
        };
        let result = result.and_then(|c| {
            if c.valid_for(self.clock.now_ms(), EXPIRY_MARGIN_MS) {
                Ok(c)
            } else {
                Err(LocalError::Failed(format!(
                    "the credentials from {} have expired{}",
                    describe(&self.cfg),
                    self.refresh_hint()
                )))
            }
        });
        match &result {
            Ok(c) => {
                let mut s = self.state();
                s.creds = Some(c.clone());
                s.status = CredentialStatus::new(CredentialState::Loaded, String::new());
            }
            Err(LocalError::Missing(m)) => self.set(CredentialState::Missing, m.clone()),
            Err(LocalError::Failed(m)) => self.set(CredentialState::Failed, m.clone()),
            Err(LocalError::Disabled) => {}
        }
        result
    }

    fn refresh_hint(&self) -> String {
        match &self.cfg.refresh_command {
            Some(_) => String::new(),
            None => match &self.cfg.profile {
                Some(p) => format!("; log in again (e.g. `aws sso login --profile {p}`)"),
                None => "; log in again (e.g. `aws sso login`)".to_owned(),
            },
        }
    }

    /// Builds a fresh chain (so files and the SSO cache are read again) and
    /// asks it for credentials.
    async fn load(&self) -> Result<AwsCredentials, LocalError> {
        let mut loader = aws_config::defaults(BehaviorVersion::latest());
        if let Some(p) = &self.cfg.profile {
            loader = loader.profile_name(p);
        }
        if self.cfg.config_file.is_some() || self.cfg.credentials_file.is_some() {
            let mut files = EnvConfigFiles::builder();
            if let Some(f) = &self.cfg.config_file {
                files = files.with_file(EnvConfigFileKind::Config, f);
            }
            if let Some(f) = &self.cfg.credentials_file {
                files = files.with_file(EnvConfigFileKind::Credentials, f);
            }
            loader = loader.profile_files(files.build());
        }
        let conf = loader.load().await;
        self.state().region = conf.region().map(|r| r.to_string());
        let provider = conf.credentials_provider().ok_or_else(|| {
            LocalError::Missing(format!(
                "no AWS credential chain for {}",
                describe(&self.cfg)
            ))
        })?;
        let creds = provider.provide_credentials().await.map_err(|e| {
            let detail = error_text(&e);
            match e {
                CredentialsError::CredentialsNotLoaded(_) => LocalError::Missing(format!(
                    "no AWS credentials found in {}{}",
                    describe(&self.cfg),
                    self.refresh_hint()
                )),
                _ => LocalError::Failed(format!(
                    "loading AWS credentials from {} failed: {detail}{}",
                    describe(&self.cfg),
                    self.refresh_hint()
                )),
            }
        })?;
        let expires_at_ms = creds.expiry().and_then(|t| {
            t.duration_since(std::time::UNIX_EPOCH)
                .ok()
                .and_then(|d| i64::try_from(d.as_millis()).ok())
        });
        Ok(AwsCredentials {
            access_key_id: creds.access_key_id().to_owned(),
            secret_access_key: SecretString::from(creds.secret_access_key().to_owned()),
            session_token: creds
                .session_token()
                .map(|t| SecretString::from(t.to_owned())),
            expires_at_ms,
        })
    }
}

/// The innermost cause of a provider error, in one line. Provider errors name
/// files, profiles and commands, never secrets.
fn error_text(e: &CredentialsError) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text = s.to_string();
        source = s.source();
    }
    text.lines().next().unwrap_or_default().to_owned()
}

fn describe(cfg: &LocalChainConfig) -> String {
    match &cfg.profile {
        Some(p) => format!("AWS profile `{p}`"),
        None => "the AWS default chain".to_owned(),
    }
}

/// Runs the auth-refresh command with the terminal attached (it may prompt or
/// open a browser).
async fn run_refresh_command(cmd: &[String]) -> Result<(), String> {
    let (program, args) = cmd
        .split_first()
        .ok_or_else(|| "the auth-refresh command is empty".to_owned())?;
    let status = tokio::process::Command::new(program)
        .args(args)
        .status()
        .await
        .map_err(|e| format!("could not run the auth-refresh command `{program}`: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!(
            "the auth-refresh command `{}` failed ({status})",
            cmd.join(" ")
        ))
    }
}
