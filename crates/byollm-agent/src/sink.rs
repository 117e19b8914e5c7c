//! Credential sinks: how tools in a sandbox get the run's AWS identity without
//! knowing about byollm.
//!
//! - A web-identity token file, rewritten atomically (temp file with mode 0600,
//!   then `rename`) before the token in it expires, plus the environment that
//!   points any AWS SDK or the AWS CLI at it ([`web_identity_env`]).
//! - `credential_process`: [`crate::AwsCredentials::credential_process_json`],
//!   served to `byollm aws credential-process` over a local Unix socket
//!   ([`serve_credentials`]) so every tool shares one STS call per window and no
//!   AWS secret is written to disk.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use secrecy::{ExposeSecret as _, SecretString};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::oidc::OidcManaged;

/// The environment variable naming the credential socket for
/// `byollm aws credential-process`.
pub const CREDENTIALS_SOCKET_ENV: &str = "BYOLLM_CREDENTIALS_SOCKET";

/// Writes `token` to `path` atomically with mode 0600: readers see the old
/// token or the new one, never a partial file.
pub fn write_token_file(path: &Path, token: &SecretString) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "token".to_owned());
    let tmp: PathBuf = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(token.expose_secret().as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// The environment that makes AWS SDKs and the AWS CLI assume `role_arn` with
/// the token in `token_file`: `AWS_ROLE_ARN`, `AWS_WEB_IDENTITY_TOKEN_FILE`,
/// `AWS_ROLE_SESSION_NAME`, `AWS_REGION` (and `AWS_DEFAULT_REGION`, which the
/// AWS CLI v1 reads), and `AWS_ENDPOINT_URL_STS` when STS is overridden.
pub fn web_identity_env(
    role_arn: &str,
    token_file: &Path,
    session_name: &str,
    region: &str,
    sts_endpoint_url: Option<&str>,
) -> Vec<(String, String)> {
    let mut env = vec![
        ("AWS_ROLE_ARN".to_owned(), role_arn.to_owned()),
        (
            "AWS_WEB_IDENTITY_TOKEN_FILE".to_owned(),
            token_file.display().to_string(),
        ),
        ("AWS_ROLE_SESSION_NAME".to_owned(), session_name.to_owned()),
        ("AWS_REGION".to_owned(), region.to_owned()),
        ("AWS_DEFAULT_REGION".to_owned(), region.to_owned()),
    ];
    if let Some(url) = sts_endpoint_url {
        env.push(("AWS_ENDPOINT_URL_STS".to_owned(), url.to_owned()));
    }
    env
}

/// Serves `credential_process` JSON on a Unix socket at `path` (created with
/// mode 0600 inside a directory only this user can enter): each connection
/// gets the current credentials, refreshed if due, or one line
/// `{"Error": "…"}`. Runs on `tracker` until `shutdown`.
pub fn serve_credentials(
    path: &Path,
    managed: OidcManaged,
    tracker: &TaskTracker,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let listener = tokio::net::UnixListener::bind(path)?;
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    let inner_tracker = tracker.clone();
    tracker.spawn(async move {
        loop {
            let stream = tokio::select! {
                () = shutdown.cancelled() => return,
                accepted = listener.accept() => match accepted {
                    Ok((s, _)) => s,
                    Err(e) => {
                        tracing::warn!(error = %e, "credential socket accept failed");
                        continue;
                    }
                },
            };
            let managed = managed.clone();
            inner_tracker.spawn(async move {
                let mut stream = stream;
                let body = match managed.credentials().await {
                    Ok(c) => c.credential_process_json(),
                    Err(e) => serde_json::json!({ "Error": e.to_string() }).to_string(),
                };
                let _ = stream.write_all(body.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    Ok(())
}

/// Reads credentials from a socket served by [`serve_credentials`]; returns
/// the `credential_process` JSON, or the error the server gave.
pub async fn fetch_credentials(path: &Path) -> Result<SecretString, String> {
    let mut stream = tokio::net::UnixStream::connect(path)
        .await
        .map_err(|e| format!("cannot reach the credential socket {}: {e}", path.display()))?;
    let mut body = String::new();
    stream
        .read_to_string(&mut body)
        .await
        .map_err(|e| format!("reading the credential socket: {e}"))?;
    let body = SecretString::from(body);
    let parsed: serde_json::Value = serde_json::from_str(body.expose_secret())
        .map_err(|_| "the credential socket answered with something other than JSON".to_owned())?;
    if let Some(err) = parsed.get("Error").and_then(|e| e.as_str()) {
        return Err(err.to_owned());
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn token_file_is_replaced_atomically_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        write_token_file(&path, &SecretString::from("one")).unwrap();
        write_token_file(&path, &SecretString::from("two")).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "two");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn env_names_the_sts_override_only_when_set() {
        let env = web_identity_env("arn:r", Path::new("/t"), "s", "us-east-1", None);
        assert!(!env.iter().any(|(k, _)| k == "AWS_ENDPOINT_URL_STS"));
        let env = web_identity_env("arn:r", Path::new("/t"), "s", "us-east-1", Some("http://x"));
        assert!(env.contains(&("AWS_ENDPOINT_URL_STS".into(), "http://x".into())));
    }
}
