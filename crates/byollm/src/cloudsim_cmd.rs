//! `byollm cloudsim` (old name `awsim`, kept as an alias): the local cloud emulator
//! (DESIGN §8, §11). Serves AWS (IAM, STS, Bedrock Runtime), Google Cloud (STS, IAM,
//! Vertex AI), Microsoft Entra and the direct Anthropic/OpenAI APIs on one endpoint until
//! interrupted; prints `cloudsim listening on http://ADDR` on stderr once bound (with
//! `--listen 127.0.0.1:0`, read the port from that line).

use std::net::SocketAddr;

use anyhow::Context as _;
use byollm_cloudsim::{Cloudsim, CloudsimConfig};
use clap::Args;

use crate::out;

/// `byollm cloudsim` flags.
#[derive(Debug, Args)]
pub struct CloudsimArgs {
    /// Address to listen on, e.g. 127.0.0.1:4566 (port 0 picks one).
    #[arg(long, value_name = "ADDR")]
    pub listen: SocketAddr,
    /// The emulated account (12 digits).
    #[arg(long, value_name = "ID", default_value = byollm_cloudsim::DEFAULT_ACCOUNT_ID)]
    pub account_id: String,
    /// Access key id of the admin credentials (IAM, GetCallerIdentity, Bedrock).
    #[arg(
        long,
        value_name = "ID",
        requires = "admin_secret_access_key",
        env = "AWSIM_ADMIN_ACCESS_KEY_ID"
    )]
    pub admin_access_key_id: Option<String>,
    /// Secret access key of the admin credentials.
    #[arg(
        long,
        value_name = "KEY",
        requires = "admin_access_key_id",
        env = "AWSIM_ADMIN_SECRET_ACCESS_KEY",
        hide_env_values = true
    )]
    pub admin_secret_access_key: Option<String>,
    /// Key of the direct APIs (Anthropic x-api-key, OpenAI bearer).
    #[arg(
        long,
        value_name = "KEY",
        env = "AWSIM_DIRECT_API_KEY",
        hide_env_values = true
    )]
    pub direct_api_key: Option<String>,
    /// A Bedrock region to serve (repeatable) [default: us-east-1, us-east-2,
    /// us-west-2, eu-west-1, eu-central-1, ap-northeast-1].
    #[arg(long = "region", value_name = "R")]
    pub regions: Vec<String>,
    /// Fetch discovery and JWKS of issuer https://HOST from ADDR:PORT over plain
    /// HTTP (repeatable).
    #[arg(long, value_name = "HOST=ADDR:PORT", value_parser = byollm_cloudsim::parse_resolve)]
    pub resolve: Vec<(String, SocketAddr)>,
}

/// Runs the emulator until stopped.
pub async fn run(args: CloudsimArgs) -> anyhow::Result<()> {
    let mut cfg = CloudsimConfig {
        listen: args.listen,
        account_id: args.account_id,
        resolve: args.resolve,
        ..CloudsimConfig::default()
    };
    if let (Some(id), Some(secret)) = (args.admin_access_key_id, args.admin_secret_access_key) {
        cfg.admin_access_key_id = id;
        cfg.admin_secret_access_key = secret;
    }
    if let Some(key) = args.direct_api_key {
        cfg.direct_api_key = key;
    }
    if !args.regions.is_empty() {
        cfg.regions = args.regions;
    }
    let regions = cfg.regions.join(", ");
    let admin_key = cfg.admin_access_key_id.clone();
    let account = cfg.account_id.clone();
    let sim = Cloudsim::start(cfg)
        .await
        .context("starting the emulator")?;
    out::err(&format!("cloudsim listening on {}", sim.endpoint_url()));
    out::err(&format!(
        "cloudsim account {account}, admin access key id {admin_key}, regions {regions}"
    ));
    let stop = sim.shutdown_token();
    tokio::select! {
        () = crate::operator::shutdown_signal() => {}
        () = stop.cancelled() => {}
    }
    sim.shutdown().await;
    Ok(())
}
