//! `OidcManaged`: AWS credentials for a run (flow 2) or a member (the client-side
//! variant of flow 4) from an identity token minted by the byollm server and
//! exchanged with STS `AssumeRoleWithWebIdentity`.
//!
//! Refresh rules (user-needs 1, 9, 13) are `byollm_federation::refresh`'s,
//! the same the server's broker follows:
//! - Each credential is refreshed at `expires_at − buffer − jitter`, computed
//!   from its own expiry (the buffer and jitter scale down for short sessions);
//!   never on a fixed timer. The background loop ([`OidcManaged::run`]) sleeps
//!   on the [`Clock`] until the next due time.
//! - One refresh at a time (single flight); callers get the current credentials
//!   while they are good.
//! - A failure backs off exponentially (1 s doubling to 60 s, with jitter); the
//!   old credentials keep serving while they are valid.
//! - `ExpiredToken` from STS means the identity token expired: mint a new one
//!   and call again at once, never a retry of the same token.
//! - With a token file configured, the identity token is kept fresh the same
//!   way and written atomically (mode 0600) before the previous one expires.
//!
//! The identity token comes from the server through the one API client
//! ([`byollm_api::client::Client`]); a 403 naming `worker_identity_tokens`
//! becomes [`OidcError::WorkerTokensDisabled`], so a worker falls back to the
//! server-side broker.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use secrecy::SecretString;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use byollm_api::client::{Client, ClientError};
use byollm_api::clock::{Clock, parse_rfc3339_ms};
use byollm_api::routes::{self, fill};
use byollm_api::types::IdentityTokenRequest;
use byollm_federation::ExchangeError;
use byollm_federation::aws::{AssumeRole, AwsExchange, Sts};
use byollm_federation::refresh::{self, Recovery, Schedule};

use crate::creds::{AwsCredentials, CredentialState, CredentialStatus, humanize_remaining};
use crate::sink;

/// Whose identity token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    /// A run's workload token mints for the run (needs the team's
    /// `worker_identity_tokens`).
    Run {
        /// The run id.
        run_id: String,
    },
    /// A member's API key mints for the member.
    Member,
}

/// What to assume, and how.
#[derive(Debug, Clone)]
pub struct OidcConfig {
    /// The role.
    pub role_arn: String,
    /// The STS region (and the region tools should use).
    pub region: String,
    /// `byollm-run-<run-id>` or `byollm-user-<uid>`.
    pub session_name: String,
    /// The token audience (`sts.amazonaws.com`).
    pub audience: String,
    /// Identity token lifetime, seconds (60 to the server's maximum).
    pub token_duration_seconds: i64,
    /// Requested session length; `None` takes STS's default (3600 s).
    pub session_duration_seconds: Option<i32>,
    /// STS endpoint override (the emulator), also handed to child processes.
    pub sts_endpoint_url: Option<String>,
    /// Keep a web-identity token file fresh here.
    pub token_file: Option<PathBuf>,
    /// Keep credentials fresh in the background (not only on demand).
    pub keep_credentials: bool,
}

impl OidcConfig {
    /// Defaults for `role_arn` in `region` as `session_name`.
    pub fn new(role_arn: &str, region: &str, session_name: &str) -> Self {
        Self {
            role_arn: role_arn.to_owned(),
            region: region.to_owned(),
            session_name: session_name.to_owned(),
            audience: byollm_api::types::STS_AUDIENCE.to_owned(),
            token_duration_seconds: 900,
            session_duration_seconds: None,
            sts_endpoint_url: None,
            token_file: None,
            keep_credentials: true,
        }
    }
}

/// Why credentials could not be had.
#[derive(Debug, Clone, thiserror::Error)]
pub enum OidcError {
    /// The team does not let workers mint identity tokens.
    #[error(
        "this team does not let workers mint identity tokens (worker_identity_tokens is off); \
         the server-side broker serves the run's inference instead"
    )]
    WorkerTokensDisabled,
    /// Minting failed (shared, so the error can be kept and shown again).
    #[error("could not mint an identity token: {0}")]
    Mint(Arc<ClientError>),
    /// STS refused or failed.
    #[error("STS AssumeRoleWithWebIdentity failed: {0}")]
    Sts(ExchangeError),
    /// The token file could not be written.
    #[error("could not write the token file: {0}")]
    TokenFile(String),
    /// Waiting out a failure.
    #[error("{last} (retrying in {retry_in_s} s)")]
    BackingOff {
        /// The last failure.
        last: Box<OidcError>,
        /// Seconds until the next attempt.
        retry_in_s: i64,
    },
}

#[derive(Debug, Clone)]
struct Held<T> {
    value: T,
    schedule: Schedule,
}

impl<T> Held<T> {
    /// `value`, obtained at `now_ms`, expiring at `expires_at_ms`.
    fn new(value: T, now_ms: i64, expires_at_ms: i64) -> Self {
        Self {
            value,
            schedule: Schedule::new(now_ms, expires_at_ms),
        }
    }
}

/// A minted identity token.
struct IdentityToken {
    token: SecretString,
    expires_at_ms: i64,
}

#[derive(Debug, Default)]
struct State {
    token: Option<Held<SecretString>>,
    creds: Option<Held<AwsCredentials>>,
    failures: u32,
    retry_at_ms: Option<i64>,
    last_error: Option<OidcError>,
    refreshing: bool,
    sts_calls: u64,
    mints: u64,
    token_writes: u64,
}

#[derive(Debug)]
struct Inner {
    server: Client,
    source: TokenSource,
    cfg: OidcConfig,
    sts: Arc<AwsExchange>,
    clock: Arc<dyn Clock>,
    state: Mutex<State>,
    flight: tokio::sync::Mutex<()>,
    changed: watch::Sender<u64>,
}

/// Credentials from the byollm issuer through STS, kept fresh. Cheap to clone.
#[derive(Debug, Clone)]
pub struct OidcManaged {
    inner: Arc<Inner>,
}

impl OidcManaged {
    /// A manager minting through `server` (holding the run's workload token or
    /// the member's key) for `source`, assuming `cfg.role_arn`.
    pub fn new(
        server: Client,
        source: TokenSource,
        cfg: OidcConfig,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let sts = Arc::new(Sts::new(cfg.sts_endpoint_url.clone()));
        Self {
            inner: Arc::new(Inner {
                server,
                source,
                cfg,
                sts,
                clock,
                state: Mutex::new(State::default()),
                flight: tokio::sync::Mutex::new(()),
                changed: watch::Sender::new(0),
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.inner
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The configuration.
    pub fn config(&self) -> &OidcConfig {
        &self.inner.cfg
    }

    /// Bumped after every successful refresh of credentials or token.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.inner.changed.subscribe()
    }

    /// STS calls made so far (tests and the status line).
    pub fn sts_calls(&self) -> u64 {
        self.state().sts_calls
    }

    /// Identity tokens minted so far.
    pub fn mints(&self) -> u64 {
        self.state().mints
    }

    /// Consecutive failed attempts since the last success.
    pub fn failures(&self) -> u32 {
        self.state().failures
    }

    /// Times the token file was written.
    pub fn token_writes(&self) -> u64 {
        self.state().token_writes
    }

    /// Valid credentials: the current ones while they are not due for refresh,
    /// else refreshed now (single flight). During a backoff the current ones
    /// serve while they are good.
    pub async fn credentials(&self) -> Result<AwsCredentials, OidcError> {
        if let Some(c) = self.current_creds(false) {
            return Ok(c);
        }
        let _flight = self.inner.flight.lock().await;
        if let Some(c) = self.current_creds(false) {
            return Ok(c);
        }
        let now = self.inner.clock.now_ms();
        if let Some(wait) = self.backoff_left(now) {
            return self.current_creds(true).ok_or(wait);
        }
        match self.refresh_creds_locked().await {
            Ok(c) => Ok(c),
            Err(e) => self.current_creds(true).ok_or(e),
        }
    }

    /// Forgets the current credentials, so the next [`OidcManaged::credentials`]
    /// obtains new ones: for when AWS said they expired or were not recognised
    /// (user-needs 1: re-mint, never retry the same credentials).
    pub fn invalidate_credentials(&self) {
        self.state().creds = None;
    }

    /// A valid identity token (for the token file, or a caller's own STS call).
    pub async fn identity_token(&self) -> Result<SecretString, OidcError> {
        let _flight = self.inner.flight.lock().await;
        self.token_locked(false).await
    }

    /// `usable_only`: any credentials still before their hard limit; otherwise
    /// only those not yet due for refresh.
    fn current_creds(&self, usable_only: bool) -> Option<AwsCredentials> {
        let now = self.inner.clock.now_ms();
        let s = self.state();
        let c = s.creds.as_ref()?;
        let limit = if usable_only {
            c.schedule.usable_until_ms
        } else {
            c.schedule.refresh_at_ms
        };
        (now < limit).then(|| c.value.clone())
    }

    fn backoff_left(&self, now_ms: i64) -> Option<OidcError> {
        let s = self.state();
        let retry_at = s.retry_at_ms.filter(|r| *r > now_ms)?;
        let last = s.last_error.clone()?;
        Some(OidcError::BackingOff {
            last: Box::new(last),
            retry_in_s: (retry_at - now_ms + 999) / 1000,
        })
    }

    fn record_failure(&self, e: &OidcError) {
        let now = self.inner.clock.now_ms();
        let mut s = self.state();
        s.failures = s.failures.saturating_add(1);
        s.retry_at_ms = Some(now + refresh::backoff_ms(s.failures));
        s.last_error = Some(e.clone());
        s.refreshing = false;
    }

    fn record_success(&self) {
        {
            let mut s = self.state();
            s.failures = 0;
            s.retry_at_ms = None;
            s.last_error = None;
            s.refreshing = false;
        }
        self.inner.changed.send_modify(|g| *g += 1);
    }

    /// The current token, or a new one when `force` or when it is due.
    async fn token_locked(&self, force: bool) -> Result<SecretString, OidcError> {
        let now = self.inner.clock.now_ms();
        if !force
            && let Some(t) = self.state().token.as_ref()
            && !t.schedule.is_due(now)
        {
            return Ok(t.value.clone());
        }
        self.state().refreshing = true;
        let minted = self.mint().await.inspect_err(|e| self.record_failure(e))?;
        let now = self.inner.clock.now_ms();
        if let Some(path) = &self.inner.cfg.token_file {
            sink::write_token_file(path, &minted.token)
                .map_err(|e| OidcError::TokenFile(e.to_string()))
                .inspect_err(|e| self.record_failure(e))?;
        }
        let mut s = self.state();
        s.mints += 1;
        if self.inner.cfg.token_file.is_some() {
            s.token_writes += 1;
        }
        s.token = Some(Held::new(minted.token.clone(), now, minted.expires_at_ms));
        Ok(minted.token)
    }

    async fn mint(&self) -> Result<IdentityToken, OidcError> {
        let cfg = &self.inner.cfg;
        let server = &self.inner.server;
        let req = IdentityTokenRequest {
            audience: cfg.audience.clone(),
            requested_duration_seconds: cfg.token_duration_seconds,
        };
        let (out, path) = match &self.inner.source {
            TokenSource::Run { run_id } => (
                server.run_identity_token(run_id, &req).await,
                fill(routes::RUN_IDENTITY_TOKEN, run_id),
            ),
            TokenSource::Member => (
                server.identity_token(&req).await,
                routes::IDENTITY_TOKEN.to_owned(),
            ),
        };
        let out = out.map_err(|e| self.mint_error(e))?;
        let expires_at_ms = parse_rfc3339_ms(&out.expires_at).ok_or_else(|| {
            OidcError::Mint(Arc::new(ClientError::Unexpected {
                url: format!("{}{path}", server.base_url()),
                status: 200,
                detail: "expires_at is not RFC 3339".to_owned(),
            }))
        })?;
        Ok(IdentityToken {
            token: SecretString::from(out.token.expose().to_owned()),
            expires_at_ms,
        })
    }

    fn mint_error(&self, e: ClientError) -> OidcError {
        match (&self.inner.source, &e) {
            // The server's 403 for this case names the setting (DESIGN §3).
            (TokenSource::Run { .. }, ClientError::Api { status: 403, body })
                if body.error.message.contains("worker identity tokens")
                    || body
                        .error
                        .hint
                        .as_deref()
                        .is_some_and(|h| h.contains("worker_identity_tokens")) =>
            {
                OidcError::WorkerTokensDisabled
            }
            _ => OidcError::Mint(Arc::new(e)),
        }
    }

    async fn refresh_creds_locked(&self) -> Result<AwsCredentials, OidcError> {
        self.state().refreshing = true;
        let cfg = &self.inner.cfg;
        let target = AssumeRole {
            role_arn: cfg.role_arn.clone(),
            role_session_name: cfg.session_name.clone(),
            region: cfg.region.clone(),
            duration_seconds: cfg.session_duration_seconds,
        };
        let token = self.token_locked(false).await?;
        let mut result = self.assume(&target, &token).await;
        if let Err(OidcError::Sts(e)) = &result
            && refresh::recovery(e, false) == Recovery::ReMintNow
        {
            // An expired token is re-minted at once, never retried as is.
            let token = self.token_locked(true).await?;
            result = self.assume(&target, &token).await;
        }
        match result {
            Ok(creds) => {
                let now = self.inner.clock.now_ms();
                let exp = creds.expires_at_ms.unwrap_or(now);
                self.state().creds = Some(Held::new(creds.clone(), now, exp));
                self.record_success();
                Ok(creds)
            }
            Err(e) => {
                self.record_failure(&e);
                Err(e)
            }
        }
    }

    async fn assume(
        &self,
        target: &AssumeRole,
        token: &SecretString,
    ) -> Result<AwsCredentials, OidcError> {
        self.state().sts_calls += 1;
        self.inner
            .sts
            .exchange(token, target)
            .await
            .map(AwsCredentials::from)
            .map_err(OidcError::Sts)
    }

    /// When the background loop should next act.
    fn next_due(&self, now_ms: i64) -> i64 {
        let cfg = &self.inner.cfg;
        let s = self.state();
        let mut due = i64::MAX;
        if cfg.token_file.is_some() {
            due = due.min(
                s.token
                    .as_ref()
                    .map_or(now_ms, |t| t.schedule.refresh_at_ms),
            );
        }
        if cfg.keep_credentials {
            due = due.min(
                s.creds
                    .as_ref()
                    .map_or(now_ms, |c| c.schedule.refresh_at_ms),
            );
        }
        if let Some(r) = s.retry_at_ms {
            due = due.max(r);
        }
        due
    }

    /// Refreshes whatever is due now.
    async fn refresh_due(&self) -> Result<(), OidcError> {
        let _flight = self.inner.flight.lock().await;
        let now = self.inner.clock.now_ms();
        if self.backoff_left(now).is_some() {
            return Ok(());
        }
        let cfg = &self.inner.cfg;
        let (token_due, creds_due) = {
            let s = self.state();
            (
                cfg.token_file.is_some() && s.token.as_ref().is_none_or(|t| t.schedule.is_due(now)),
                cfg.keep_credentials && s.creds.as_ref().is_none_or(|c| c.schedule.is_due(now)),
            )
        };
        if token_due {
            self.token_locked(true).await?;
            if !creds_due {
                self.record_success();
            }
        }
        if creds_due {
            self.refresh_creds_locked().await?;
        }
        Ok(())
    }

    /// Obtains the first credentials (and token file), then keeps them fresh
    /// until `shutdown`. Stops early only when the team does not allow worker
    /// tokens (nothing later would change that).
    pub async fn run(&self, shutdown: CancellationToken) -> Result<(), OidcError> {
        loop {
            if matches!(
                self.state().last_error,
                Some(OidcError::WorkerTokensDisabled)
            ) {
                return Err(OidcError::WorkerTokensDisabled);
            }
            let now = self.inner.clock.now_ms();
            // Wake at least daily, so a far-off due time is re-read.
            let due = self.next_due(now).min(now + 86_400_000);
            tokio::select! {
                () = shutdown.cancelled() => return Ok(()),
                () = self.inner.clock.sleep_until(due) => {}
            }
            match self.refresh_due().await {
                Err(OidcError::WorkerTokensDisabled) => {
                    return Err(OidcError::WorkerTokensDisabled);
                }
                Err(e) => tracing::warn!(error = %e, "credential refresh failed; backing off"),
                Ok(()) => {}
            }
        }
    }

    /// Where things stand, in a sentence.
    pub fn status(&self) -> CredentialStatus {
        let now = self.inner.clock.now_ms();
        let cfg = &self.inner.cfg;
        let s = self.state();
        let valid = s.creds.as_ref().filter(|c| c.schedule.is_usable(now));
        let role = format!("role {} as {}", cfg.role_arn, cfg.session_name);
        match (valid, &s.last_error) {
            (Some(c), None) => CredentialStatus::new(
                CredentialState::Loaded,
                format!(
                    "{role}; {}",
                    humanize_remaining(now, c.schedule.expires_at_ms)
                ),
            ),
            (Some(c), Some(e)) => CredentialStatus::new(
                CredentialState::Loaded,
                format!(
                    "{role}; {}; the last refresh failed ({e}), retrying",
                    humanize_remaining(now, c.schedule.expires_at_ms)
                ),
            ),
            (None, _) if s.refreshing => {
                CredentialStatus::new(CredentialState::Refreshing, format!("obtaining {role}"))
            }
            (None, Some(e)) => CredentialStatus::new(CredentialState::Failed, e.to_string()),
            (None, None) => CredentialStatus::new(
                CredentialState::Missing,
                format!("no credentials yet for {role}"),
            ),
        }
    }

    /// The environment for a child process: the token file and role (only
    /// with a token file configured).
    pub fn child_env(&self) -> Vec<(String, String)> {
        let cfg = &self.inner.cfg;
        match &cfg.token_file {
            Some(path) => sink::web_identity_env(
                &cfg.role_arn,
                path,
                &cfg.session_name,
                &cfg.region,
                cfg.sts_endpoint_url.as_deref(),
            ),
            None => Vec::new(),
        }
    }

    /// The expiry of the current token, Unix milliseconds.
    pub fn token_expires_at_ms(&self) -> Option<i64> {
        self.state()
            .token
            .as_ref()
            .map(|t| t.schedule.expires_at_ms)
    }
}
