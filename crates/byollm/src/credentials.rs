//! Where the CLI finds the member's API key and server: the one function every
//! command that talks to a server reads them through, and `byollm login`, which
//! redeems an invitation and stores them.
//!
//! Order: `BYOLLM_API_KEY` (and `--server`/`BYOLLM_SERVER`) win when set; else
//! the credentials file that `byollm login` wrote; else an error that says how
//! to get a key. The file is `$BYOLLM_CONFIG_DIR/credentials`, else
//! `$XDG_CONFIG_HOME/byollm/credentials`, else `~/.config/byollm/credentials`.
//!
//! Invariants: the file is created 0600 in a 0700 directory (written to a
//! private temporary file, then renamed over, so no reader sees half a file or
//! a looser mode); the key is never printed, logged or taken as a flag.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use byollm_api::SecretValue;
use byollm_api::client::Client;
use byollm_api::types::InvitationRedeem;
use clap::Args;
use secrecy::{ExposeSecret as _, SecretString};
use serde::{Deserialize, Serialize};

use crate::out;

/// The server when neither a flag, the environment nor the file names one.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:8080";

/// What `byollm login` stores.
#[derive(Serialize, Deserialize)]
struct Stored {
    server: String,
    api_key: String,
}

#[expect(
    clippy::disallowed_methods,
    reason = "the CLI's configuration: the API key and where the credentials file is"
)]
fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// The credentials file's path (module docs), if a home can be found.
pub fn path() -> Option<PathBuf> {
    if let Some(dir) = env("BYOLLM_CONFIG_DIR") {
        return Some(PathBuf::from(dir).join("credentials"));
    }
    let base = match env("XDG_CONFIG_HOME") {
        Some(x) => PathBuf::from(x),
        None => PathBuf::from(env("HOME")?).join(".config"),
    };
    Some(base.join("byollm").join("credentials"))
}

fn read_stored() -> anyhow::Result<Option<Stored>> {
    let Some(path) = path() else {
        return Ok(None);
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    serde_json::from_str(&text)
        .map(Some)
        .with_context(|| format!("{} is not a byollm credentials file", path.display()))
}

/// The API key: `BYOLLM_API_KEY` when set, else the one `byollm login` stored.
pub fn api_key() -> anyhow::Result<SecretString> {
    if let Some(key) = env("BYOLLM_API_KEY") {
        return Ok(SecretString::from(key));
    }
    match read_stored()? {
        Some(s) if !s.api_key.trim().is_empty() => Ok(SecretString::from(s.api_key)),
        _ => bail!(
            "no API key: set BYOLLM_API_KEY to your byollm API key, or redeem your \
             invitation with `byollm login --server URL --invite CODE`"
        ),
    }
}

/// The server: `flag` (`--server` or `BYOLLM_SERVER`) when given, else the one
/// `byollm login` stored, else [`DEFAULT_SERVER`].
pub fn server(flag: Option<&str>) -> String {
    if let Some(s) = flag.filter(|s| !s.trim().is_empty()) {
        return s.to_owned();
    }
    match read_stored() {
        Ok(Some(s)) if !s.server.is_empty() => s.server,
        _ => DEFAULT_SERVER.to_owned(),
    }
}

/// Writes the credentials file (module docs for the modes).
fn store(server: &str, key: &SecretValue) -> anyhow::Result<PathBuf> {
    let path = path().context("cannot find a configuration directory; set BYOLLM_CONFIG_DIR")?;
    let dir = path.parent().unwrap_or(Path::new("."));
    create_private_dir(dir)?;
    let body = serde_json::to_string_pretty(&Stored {
        server: server.to_owned(),
        api_key: key.expose().to_owned(),
    })?;
    let tmp = dir.join(".credentials.tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut file = private_file(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    file.write_all(body.as_bytes())?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

#[cfg(unix)]
fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating {}", dir.display()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("making {} private (0700)", dir.display()))
}

#[cfg(not(unix))]
fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))
}

#[cfg(unix)]
fn private_file(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt as _;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

#[cfg(not(unix))]
fn private_file(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
}

/// `byollm login` flags.
#[derive(Debug, Args)]
pub struct LoginArgs {
    /// The byollm server your admin named.
    #[arg(long, env = "BYOLLM_SERVER", value_name = "URL")]
    server: String,
    /// The one-time invitation code your admin gave you (it works once, for 7
    /// days; the key it gives you is stored, never printed).
    #[arg(long, value_name = "CODE", value_parser = secret_arg)]
    invite: SecretString,
}

/// A secret flag value, so the parsed arguments' `Debug` never shows it.
fn secret_arg(s: &str) -> Result<SecretString, std::convert::Infallible> {
    Ok(SecretString::from(s.to_owned()))
}

/// Redeems an invitation and stores the key and the server.
pub async fn login(args: LoginArgs) -> anyhow::Result<()> {
    let client = Client::new(&args.server, None)?;
    let redeemed = client
        .redeem_invitation(&InvitationRedeem {
            code: SecretValue::new(args.invite.expose_secret().trim()),
        })
        .await
        .context("redeeming the invitation")?;
    let path = store(&args.server, &redeemed.api_key.key)?;
    out::err(&format!(
        "logged in to team {} as {} ({}); your API key {} is stored in {}",
        redeemed.team.name,
        redeemed.member.email,
        redeemed.member.role.as_str(),
        redeemed.api_key.id,
        path.display()
    ));
    if env("BYOLLM_API_KEY").is_some() {
        out::err(
            "note: BYOLLM_API_KEY is set and wins over the stored key; unset it to use the new one",
        );
    }
    Ok(())
}

/// A client for `server` (already resolved) with the API key of [`api_key`].
pub fn client(server: &str) -> anyhow::Result<Client> {
    Ok(Client::new(server, Some(api_key()?))?)
}
