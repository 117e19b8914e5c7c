//! byollm-cloudsim (formerly byollm-awsim; its control routes keep the `/_awsim/`
//! prefix): a strict local stand-in for AWS IAM, STS and Bedrock Runtime,
//! Google Cloud's STS, IAM Credentials and Vertex AI for Claude and Gemini ([`gcp`]),
//! Microsoft Entra's token endpoint for federated credentials ([`azure`]),
//! plus the direct Anthropic and OpenAI APIs (DESIGN §8), so the whole system is
//! tested offline with the official AWS SDKs and CLI as clients.
//!
//! It refuses what AWS refuses, with AWS's codes and wire shapes
//! (`reference/aws-facts.md` is the specification): SigV4 on IAM, STS
//! `GetCallerIdentity` and Bedrock; web-identity tokens verified against the
//! issuer's JWKS fetched over HTTP; trust and permission policies decided by
//! `byollm-policy`; session expiry; which models exist in which region. Its one
//! relaxation is `resolve`: an issuer `https://HOST` has its discovery document
//! and JWKS fetched from a loopback `ADDR:PORT` over plain HTTP, while tokens,
//! providers and condition keys keep `https://HOST`.
//!
//! # Library API
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use byollm_cloudsim::{Cloudsim, CloudsimConfig};
//! let sim = Cloudsim::start(CloudsimConfig {
//!     resolve: vec![("issuer.test".into(), "127.0.0.1:8080".parse()?)],
//!     ..CloudsimConfig::default()
//! })
//! .await?;
//! let url = sim.endpoint_url(); // IAM, STS, Bedrock, /anthropic/v1, /openai/v1
//! sim.create_oidc_provider("https://issuer.test", &["sts.amazonaws.com"])?;
//! let role_arn = sim.create_role("byollm", r#"{"Version":"2012-10-17","Statement":[]}"#, None)?;
//! sim.put_role_policy("byollm", "invoke", r#"{"Version":"2012-10-17","Statement":[]}"#)?;
//! sim.faults().fail_next("bedrock:Converse", "ThrottlingException", 1);
//! sim.faults().set_credential_lifetime(Some(std::time::Duration::from_secs(5)));
//! assert_eq!(sim.call_count("sts:AssumeRoleWithWebIdentity"), 0);
//! sim.shutdown().await;
//! # let _ = (url, role_arn); Ok(()) }
//! ```
//!
//! Operation names (counters and fault scopes): `sts:AssumeRoleWithWebIdentity`,
//! `sts:GetCallerIdentity`, `iam:<Action>`, `bedrock:Converse`,
//! `bedrock:ConverseStream`, `bedrock:InvokeModel`,
//! `bedrock:InvokeModelWithResponseStream`, `anthropic:Messages`,
//! `openai:ChatCompletions`.
//!
//! Every endpoint answers with the deterministic model of [`llm`]: an echo of
//! the last user text with honest token counts (one token per word), cut at the
//! request's max tokens, or a tool call when the last user text is
//! `/tool NAME ARGS…` and NAME is a declared tool.
//!
//! The admin credentials act as the account's administrator: they may call IAM,
//! `GetCallerIdentity` and Bedrock (no policy applies to them). Sessions from
//! `AssumeRoleWithWebIdentity` are held to their role's inline policies.

mod auth;
pub mod azure;
pub mod bedrock;
pub mod control;
mod direct;
pub mod error;
pub mod eventstream;
pub mod faults;
pub mod gcp;
mod iam;
pub mod jwt;
pub mod llm;
mod query;
mod server;
pub mod sigv4;
pub mod state;
mod sts;
mod util;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::serve::ListenerExt as _;
use byollm_api::clock::{Clock, SystemClock};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use error::AwsError;
pub use faults::{FailRule, Faults, FaultsView};
pub use state::Session;

/// The regions served by default (DESIGN §8).
pub const DEFAULT_REGIONS: [&str; 6] = [
    "us-east-1",
    "us-east-2",
    "us-west-2",
    "eu-west-1",
    "eu-central-1",
    "ap-northeast-1",
];
/// The default account id.
pub const DEFAULT_ACCOUNT_ID: &str = "123456789012";
/// The default admin access key id.
pub const DEFAULT_ADMIN_ACCESS_KEY_ID: &str = "AKIAAWSIMEXAMPLE0001";
/// The default admin secret access key.
pub const DEFAULT_ADMIN_SECRET_ACCESS_KEY: &str = "awsimAdminSecretAccessKeyEXAMPLE00000000";
/// The default direct-API key (Anthropic `x-api-key` and OpenAI bearer).
pub const DEFAULT_DIRECT_API_KEY: &str = "sk-awsim-direct-api-key";

/// How the emulator is set up.
#[derive(Debug, Clone)]
pub struct CloudsimConfig {
    /// Where to listen (`127.0.0.1:0` picks a port; read [`Cloudsim::addr`]).
    pub listen: SocketAddr,
    /// The one account (12 digits).
    pub account_id: String,
    /// The admin access key id, for IAM and the rest.
    pub admin_access_key_id: String,
    /// The admin secret access key.
    pub admin_secret_access_key: String,
    /// The key of the direct APIs.
    pub direct_api_key: String,
    /// The Bedrock regions served.
    pub regions: Vec<String>,
    /// `--resolve HOST=ADDR:PORT` entries.
    pub resolve: Vec<(String, SocketAddr)>,
    /// Timeout of each discovery/JWKS fetch (AWS gives up past 5 s).
    pub jwks_timeout: Duration,
    /// How long fetched keys are reused (an unknown `kid` refetches).
    pub jwks_cache_ttl: Duration,
    /// The clock.
    pub clock: Arc<dyn Clock>,
}

impl Default for CloudsimConfig {
    fn default() -> Self {
        CloudsimConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            account_id: DEFAULT_ACCOUNT_ID.to_owned(),
            admin_access_key_id: DEFAULT_ADMIN_ACCESS_KEY_ID.to_owned(),
            admin_secret_access_key: DEFAULT_ADMIN_SECRET_ACCESS_KEY.to_owned(),
            direct_api_key: DEFAULT_DIRECT_API_KEY.to_owned(),
            regions: DEFAULT_REGIONS.iter().map(|r| (*r).to_owned()).collect(),
            resolve: vec![],
            jwks_timeout: Duration::from_secs(5),
            jwks_cache_ttl: Duration::from_secs(60),
            clock: Arc::new(SystemClock),
        }
    }
}

/// Why the emulator did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration is invalid.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// Binding failed.
    #[error("cannot listen: {0}")]
    Io(#[from] std::io::Error),
}

/// Parses a `--resolve` entry: `HOST=ADDR:PORT` (curl's `HOST:PORT:ADDR` is not
/// accepted).
pub fn parse_resolve(s: &str) -> Result<(String, SocketAddr), String> {
    let (host, addr) = s
        .split_once('=')
        .ok_or_else(|| format!("--resolve {s}: expected HOST=ADDR:PORT"))?;
    if host.is_empty() || host.contains('/') {
        return Err(format!(
            "--resolve {s}: HOST must be a host name (optionally with :port)"
        ));
    }
    let addr: SocketAddr = addr
        .parse()
        .map_err(|e| format!("--resolve {s}: ADDR:PORT: {e}"))?;
    Ok((host.to_owned(), addr))
}

/// `xx-name-N` or `xx-gov-name-N`, lower-case.
fn region_name_ok(r: &str) -> bool {
    let parts: Vec<&str> = r.split('-').collect();
    let (Some(first), Some(last)) = (parts.first(), parts.last()) else {
        return false;
    };
    (3..=4).contains(&parts.len())
        && first.len() == 2
        && parts.iter().all(|p| !p.is_empty())
        && last.bytes().all(|b| b.is_ascii_digit())
        && parts[..parts.len() - 1]
            .iter()
            .all(|p| p.bytes().all(|b| b.is_ascii_lowercase()))
}

/// State shared by every handler.
#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) cfg: CloudsimConfig,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) account: state::Account,
    pub(crate) faults: Faults,
    pub(crate) keys: jwt::KeyFetcher,
    pub(crate) gcp: gcp::GcpState,
    pub(crate) azure: azure::AzureState,
}

/// A running emulator.
#[derive(Debug)]
pub struct Cloudsim {
    /// Where it listens.
    pub addr: SocketAddr,
    inner: Arc<Inner>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
}

impl Cloudsim {
    /// Validates `cfg`, binds and serves.
    pub async fn start(cfg: CloudsimConfig) -> Result<Cloudsim, StartError> {
        if cfg.account_id.len() != 12 || !cfg.account_id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(StartError::Config(format!(
                "account id must be 12 digits, not {:?}",
                cfg.account_id
            )));
        }
        let key_ok = (16..=128).contains(&cfg.admin_access_key_id.len())
            && cfg
                .admin_access_key_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_')
            && !cfg.admin_access_key_id.starts_with("ASIA");
        if !key_ok {
            return Err(StartError::Config(
                "admin access key id must be 16-128 characters of [A-Za-z0-9_] and not start with ASIA"
                    .to_owned(),
            ));
        }
        if cfg.admin_secret_access_key.is_empty() {
            return Err(StartError::Config(
                "admin secret access key is empty".to_owned(),
            ));
        }
        if cfg.regions.is_empty() {
            return Err(StartError::Config(
                "at least one region is needed".to_owned(),
            ));
        }
        if let Some(bad) = cfg.regions.iter().find(|r| !region_name_ok(r)) {
            return Err(StartError::Config(format!(
                "{bad:?} is not a region name (e.g. us-east-1)"
            )));
        }
        // A backlog above `TcpListener::bind`'s 128: a burst of new connections from a
        // loaded gateway must not be dropped at the SYN (a client retries a
        // second later), as a cloud's front end would not.
        let socket = if cfg.listen.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        socket.bind(cfg.listen)?;
        let listener = socket.listen(8192)?;
        let addr = listener.local_addr()?;
        let listener = listener.tap_io(|tcp| {
            // Nagle's algorithm meeting delayed ACKs costs 40 ms per small response.
            let _ = tcp.set_nodelay(true);
        });
        let inner = Arc::new(Inner {
            clock: cfg.clock.clone(),
            account: state::Account::new(cfg.account_id.clone()),
            faults: Faults::new(cfg.clock.clone()),
            keys: jwt::KeyFetcher::new(cfg.jwks_timeout, cfg.jwks_cache_ttl, cfg.resolve.clone()),
            gcp: gcp::GcpState::default(),
            azure: azure::AzureState::default(),
            cfg,
        });
        let app = axum::Router::new()
            .fallback(server::dispatch)
            .with_state(inner.clone());
        let shutdown = CancellationToken::new();
        let tracker = TaskTracker::new();
        let serve =
            axum::serve(listener, app).with_graceful_shutdown(shutdown.clone().cancelled_owned());
        tracker.spawn(async move {
            if let Err(e) = serve.await {
                tracing::error!(error = %e, "cloudsim stopped");
            }
        });
        Ok(Cloudsim {
            addr,
            inner,
            shutdown,
            tracker,
        })
    }

    /// `http://ADDR:PORT`: the one endpoint for IAM, STS, Bedrock Runtime and the
    /// direct APIs (`{endpoint}/anthropic`, `{endpoint}/openai` as base URLs).
    pub fn endpoint_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The account id.
    pub fn account_id(&self) -> &str {
        &self.inner.cfg.account_id
    }

    /// The admin (access key id, secret access key).
    pub fn admin_credentials(&self) -> (&str, &str) {
        (
            &self.inner.cfg.admin_access_key_id,
            &self.inner.cfg.admin_secret_access_key,
        )
    }

    /// The direct-API key.
    pub fn direct_api_key(&self) -> &str {
        &self.inner.cfg.direct_api_key
    }

    /// `CreateOpenIDConnectProvider`: `url` must be `https://…`; returns the ARN.
    pub fn create_oidc_provider(&self, url: &str, client_ids: &[&str]) -> Result<String, AwsError> {
        let ids: Vec<String> = client_ids.iter().map(|s| (*s).to_owned()).collect();
        self.inner.create_provider(url, &ids, &[], vec![])
    }

    /// `AddClientIDToOpenIDConnectProvider`.
    pub fn add_client_id_to_oidc_provider(
        &self,
        arn: &str,
        client_id: &str,
    ) -> Result<(), AwsError> {
        self.inner.add_client_id(arn, client_id)
    }

    /// `DeleteOpenIDConnectProvider`.
    pub fn delete_oidc_provider(&self, arn: &str) -> Result<(), AwsError> {
        self.inner.delete_provider(arn)
    }

    /// `CreateRole` at path `/`; `max_session_duration` defaults to 3600.
    /// Returns the role ARN.
    pub fn create_role(
        &self,
        name: &str,
        trust_policy_json: &str,
        max_session_duration: Option<i32>,
    ) -> Result<String, AwsError> {
        self.inner
            .create_role(name, None, trust_policy_json, None, max_session_duration)
            .map(|r| r.arn)
    }

    /// `UpdateAssumeRolePolicy`.
    pub fn update_assume_role_policy(
        &self,
        role: &str,
        trust_policy_json: &str,
    ) -> Result<(), AwsError> {
        self.inner.update_trust(role, trust_policy_json)
    }

    /// `UpdateRole --max-session-duration`.
    pub fn set_max_session_duration(&self, role: &str, seconds: i32) -> Result<(), AwsError> {
        self.inner.update_role(role, None, Some(seconds))
    }

    /// `PutRolePolicy` (replaces a policy of the same name).
    pub fn put_role_policy(
        &self,
        role: &str,
        policy_name: &str,
        doc: &str,
    ) -> Result<(), AwsError> {
        self.inner.put_role_policy(role, policy_name, doc)
    }

    /// `DeleteRolePolicy`.
    pub fn delete_role_policy(&self, role: &str, policy_name: &str) -> Result<(), AwsError> {
        self.inner.delete_role_policy(role, policy_name)
    }

    /// `DeleteRole` (fails while inline policies remain, as IAM does).
    pub fn delete_role(&self, role: &str) -> Result<(), AwsError> {
        self.inner.delete_role(role)
    }

    /// Google Cloud's part: workload identity providers, IAM bindings and
    /// issued access tokens ([`gcp`]).
    pub fn gcp(&self) -> &gcp::GcpState {
        &self.inner.gcp
    }

    /// Azure's part: managed identities, their federated identity
    /// credentials and issued Entra access tokens ([`azure`]).
    pub fn azure(&self) -> &azure::AzureState {
        &self.inner.azure
    }

    /// The fault and load knobs.
    pub fn faults(&self) -> &Faults {
        &self.inner.faults
    }

    /// How many calls `operation` received (see the crate docs for names).
    pub fn call_count(&self, operation: &str) -> u64 {
        self.inner.faults.call_count(operation)
    }

    /// Caps the lifetime of credentials issued from now on to `lifetime` (for
    /// refresh tests); `None` restores `DurationSeconds`. Same as
    /// [`Faults::set_credential_lifetime`].
    pub fn set_credential_lifetime(&self, lifetime: Option<Duration>) {
        self.inner.faults.set_credential_lifetime(lifetime);
    }

    /// Expires every session issued so far: their next Bedrock call gets
    /// `ExpiredTokenException`.
    pub fn expire_sessions(&self) {
        self.inner.expire_sessions();
    }

    /// The session behind an access key id, if STS issued it.
    pub fn session(&self, access_key_id: &str) -> Option<Session> {
        self.inner
            .account
            .sessions
            .read()
            .get(access_key_id)
            .map(|s| (**s).clone())
    }

    /// How many times issuers' keys were fetched (discovery document and JWKS,
    /// successful or not), for tests of the cache and the unknown-`kid`
    /// cool-down.
    pub fn jwks_fetch_count(&self) -> u64 {
        self.inner.keys.fetch_count()
    }

    /// Forgets every cached JWKS.
    pub fn clear_jwks_cache(&self) {
        self.inner.keys.clear();
    }

    /// Applies a control update, as `POST /_awsim/faults` does.
    pub fn apply(&self, update: control::FaultsUpdate) {
        self.inner.apply(update);
    }

    /// A token that stops the emulator when cancelled.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Stops accepting, finishes requests in flight, and waits.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        self.tracker.close();
        self.tracker.wait().await;
    }
}
