//! `byollm chat`: two turns in a pseudo-terminal (tmux), and each credential
//! mode with the conversation piped in: the server's broker by default,
//! `--client-credentials` (STS on the client), `--aws-profile` (local AWS
//! credentials through `credential_process`).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr,
    clippy::disallowed_methods,
    reason = "test code: a failed unwrap is a failed test"
)]

#[path = "agent_support/harness.rs"]
#[allow(dead_code, reason = "each test binary uses part of the harness")]
mod harness;

use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncWriteExt as _;

use harness::{BIN, Env};

/// A tmux server of our own (its own socket), so the chat sees exactly the
/// environment we give it.
struct Tmux {
    socket: std::path::PathBuf,
}

impl Tmux {
    fn cmd(&self, args: &[&str]) -> std::process::Output {
        std::process::Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .args(args)
            .output()
            .unwrap()
    }

    fn pane(&self) -> String {
        String::from_utf8_lossy(
            &self
                .cmd(&["capture-pane", "-p", "-J", "-S", "-200", "-t", "chat"])
                .stdout,
        )
        .into_owned()
    }

    async fn wait_for(&self, what: &str, cond: impl Fn(&str) -> bool) -> String {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let pane = self.pane();
            if cond(&pane) {
                return pane;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}; the pane shows:\n{pane}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd(&["kill-server"]);
    }
}

#[tokio::test]
async fn chat_in_a_terminal_answers_two_turns_and_shows_the_route() {
    if !harness::tools::present_or_skip(
        "chat in a terminal",
        &["tmux", "-V"],
        "apt-get install -y tmux",
    ) {
        return;
    }
    let env = Env::start(false).await;
    let tmux = Tmux {
        socket: env.dir.path().join("tmux.sock"),
    };
    let command = format!("{BIN} chat --model claude-haiku-4-5");
    let out = tmux.cmd(&[
        "new-session",
        "-d",
        "-s",
        "chat",
        "-x",
        "200",
        "-y",
        "50",
        "-e",
        &format!("BYOLLM_SERVER={}", env.base),
        "-e",
        &format!("BYOLLM_API_KEY={}", env.owner_key),
        &command,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    tmux.wait_for("the prompt", |p| {
        p.contains("credentials:") && p.trim_end().ends_with('>')
    })
    .await;
    tmux.cmd(&["send-keys", "-t", "chat", "first question here", "Enter"]);
    tmux.wait_for("the first reply", |p| p.matches("[route:").count() == 1)
        .await;
    tmux.cmd(&["send-keys", "-t", "chat", "and a second one", "Enter"]);
    let pane = tmux
        .wait_for("the second reply", |p| p.matches("[route:").count() == 2)
        .await;
    assert!(pane.contains("first question here"), "{pane}");
    assert!(pane.contains("and a second one"), "{pane}");
    assert_eq!(pane.matches("[route: aws_bedrock:").count(), 2, "{pane}");
    assert!(
        pane.contains("server brokers the team's OIDC role"),
        "{pane}"
    );
    assert!(!pane.contains(&env.owner_key), "the key was printed");
    // One STS call for the member, by the server's broker, for both turns.
    assert_eq!(env.sts_calls(), 1);
    tmux.cmd(&["send-keys", "-t", "chat", "/exit", "Enter"]);
    env.stop().await;
}

async fn piped_chat(
    env: &Env,
    args: &[&str],
    input: &str,
    extra_env: &[(&str, &str)],
) -> (bool, String, String) {
    let mut all = vec!["chat"];
    if !args.contains(&"--model") {
        all.extend_from_slice(&["--model", "claude-haiku-4-5"]);
    }
    all.extend_from_slice(args);
    let mut cmd = env.byollm(&all);
    cmd.env("BYOLLM_API_KEY", &env.owner_key)
        .env("BYOLLM_AWS_ENDPOINT_URL", env.sim.endpoint_url())
        .stdin(Stdio::piped());
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input.as_bytes()).await.unwrap();
    drop(stdin);
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn client_credentials_call_sts_on_the_client_and_send_them_per_request() {
    let env = Env::start(false).await;
    let (ok, out, err) =
        piped_chat(&env, &["--client-credentials"], "one\ntwo\n/status\n", &[]).await;
    assert!(ok, "{out}\n{err}");
    assert_eq!(out.matches("[route: aws_bedrock:").count(), 2, "{out}");
    assert!(
        out.contains(&format!("as byollm-user-{}", env.owner)),
        "{out}"
    );
    assert!(out.contains("credentials: loaded:"), "{out}");
    // One client-side STS call for both turns; the server kept nothing.
    assert_eq!(env.sts_calls(), 1);
    assert!(env.server.core.broker().is_empty());
    env.stop().await;
}

#[tokio::test]
async fn an_aws_profile_sends_local_credentials_per_request() {
    let env = Env::start(false).await;
    let (ak, sk) = env.sim.admin_credentials();
    let creds = env.dir.path().join("creds.json");
    std::fs::write(
        &creds,
        format!(r#"{{"Version": 1, "AccessKeyId": "{ak}", "SecretAccessKey": "{sk}"}}"#),
    )
    .unwrap();
    let config = env.dir.path().join("aws-config");
    std::fs::write(
        &config,
        format!(
            "[profile dev]\nregion = us-west-2\ncredential_process = cat {}\n",
            creds.display()
        ),
    )
    .unwrap();
    let config = config.display().to_string();
    let (ok, out, err) = piped_chat(
        &env,
        &["--aws-profile", "dev"],
        "with my own keys\n",
        &[("AWS_CONFIG_FILE", &config)],
    )
    .await;
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("[route: aws_bedrock:"), "{out}");
    assert!(out.contains("@us-west-2"), "{out}");
    assert!(!out.contains(sk), "the secret key was printed");
    assert_eq!(
        env.sts_calls(),
        0,
        "no role assumption with local credentials"
    );
    env.stop().await;
}

#[tokio::test]
async fn failures_are_explained_in_a_line() {
    let env = Env::start(false).await;
    // No key at all.
    let out = env.byollm(&["chat"]).output().await.unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("BYOLLM_API_KEY"), "{err}");
    // A missing profile is said plainly and the chat goes on, but a request
    // failed, so the chat exits non-zero when it ends.
    let (ok, out, err) =
        piped_chat(&env, &["--aws-profile", "nope"], "hello\n/status\n", &[]).await;
    assert!(!ok, "a failed request must fail the chat: {out}\n{err}");
    assert!(
        out.contains("error: no AWS credentials for this request"),
        "{out}"
    );
    assert!(out.contains("credentials: "), "the chat went on: {out}");
    assert!(err.contains("1 request failed"), "{err}");
    // An unknown model is refused before the first message, naming the ones
    // this key may use.
    let (ok, out, err) = piped_chat(&env, &["--model", "no-such-model"], "hello\n", &[]).await;
    assert!(!ok, "{out}\n{err}");
    assert!(err.contains("there is no model `no-such-model`"), "{err}");
    assert!(err.contains("claude-haiku-4-5"), "{err}");
    assert!(!out.contains("[route:"), "{out}");
    // An OpenAI model: the chat says why and what to do, not an API path.
    let (ok, _, err) = piped_chat(&env, &["--model", "gpt-5"], "hello\n", &[]).await;
    assert!(!ok);
    assert!(err.contains("`gpt-5` is an OpenAI model"), "{err}");
    assert!(!err.contains("POST /v1"), "{err}");
    env.stop().await;
}

#[tokio::test]
async fn slash_commands_are_handled_locally_and_never_sent() {
    let env = Env::start(false).await;
    let (ok, out, err) = piped_chat(
        &env,
        &[],
        "/help\n/nope\n/status\nfirst\n/clear\nsecond\n/exit\nnot sent\n",
        &[],
    )
    .await;
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("/help lists the commands"), "{out}");
    assert!(out.contains("Commands (handled here, never sent"), "{out}");
    assert!(out.contains("unknown command /nope"), "{out}");
    assert!(out.contains("(conversation cleared)"), "{out}");
    // Two messages reached the model; /help, /nope and the line after /exit did not.
    assert_eq!(out.matches("[route: aws_bedrock:").count(), 2, "{out}");
    // The server-brokered case reads as what it is, not "disabled".
    assert!(
        out.contains("credentials: from the server (none on this machine"),
        "{out}"
    );
    assert!(out.contains("· credentials: from the server]"), "{out}");
    assert!(!out.contains("disabled"), "{out}");
    env.stop().await;
}

#[tokio::test]
async fn credentials_refused_as_expired_are_replaced_and_the_turn_retried() {
    use tokio::io::AsyncBufReadExt as _;
    let env = Env::start(false).await;
    let mut cmd = env.byollm(&[
        "chat",
        "--model",
        "claude-haiku-4-5",
        "--client-credentials",
    ]);
    cmd.env("BYOLLM_API_KEY", &env.owner_key)
        .env("BYOLLM_AWS_ENDPOINT_URL", env.sim.endpoint_url())
        .stdin(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = String::new();
    let mut read_until = async |needle: &str, seen: &mut String| {
        tokio::time::timeout(Duration::from_secs(30), async {
            while !seen.contains(needle) {
                let line = lines.next_line().await.unwrap().expect("chat ended early");
                seen.push_str(&line);
                seen.push('\n');
            }
        })
        .await
        .unwrap_or_else(|_| panic!("no {needle:?} in:\n{seen}"));
    };
    stdin.write_all(b"before\n").await.unwrap();
    read_until("[route:", &mut seen).await;
    assert_eq!(env.sts_calls(), 1);
    // AWS revokes every session: the next request's credentials are refused.
    env.sim.expire_sessions();
    stdin.write_all(b"after\n").await.unwrap();
    read_until("refused the credentials as expired", &mut seen).await;
    seen.clear();
    read_until("[route:", &mut seen).await;
    assert!(seen.contains("[route: aws_bedrock:"), "{seen}");
    assert!(seen.contains("after"), "{seen}");
    assert_eq!(env.sts_calls(), 2, "one new STS call for the retry");
    drop(stdin);
    let status = child.wait().await.unwrap();
    assert!(status.success());
    env.stop().await;
}
