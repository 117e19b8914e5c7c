//! The docs work as written: every `bash` block of a runnable page is run, in
//! order and verbatim, in one shell, with the built `byollm` on `PATH`, and the
//! `text` block that follows a command block is what it must print (each line
//! in order, `…` standing for anything, runs of spaces for any whitespace).
//!
//! The pages use fixed loopback ports (8080 for the server, 4566 for the
//! emulator), as a reader would; the shell runs in a network namespace of its
//! own (`unshare --net`), so nothing else on the machine can hold those ports
//! and the page cannot reach anything but its own loopback.
//!
//! Needs `unshare` and `ip` (util-linux, iproute2), `curl`, `jq` and the AWS
//! CLI: missing ones fail the test when `CI` is set and skip it loudly
//! otherwise.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr,
    clippy::disallowed_methods,
    reason = "test code: a failed unwrap is a failed test"
)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[path = "support/tools.rs"]
mod tools;

/// The pages whose commands are run. Each must work on its own, top to bottom.
const RUNNABLE: &[&str] = &["docs/try-it-locally.md"];

/// Longest a page may take; past it the shell is killed and the test fails.
const PAGE_LIMIT: Duration = Duration::from_secs(180);

/// Marks where a command block's output starts in the shell's output.
const MARK: &str = "@@@byollm-docs-block";

/// A fenced block of a page: its language and its lines.
struct Block {
    lang: String,
    lines: Vec<String>,
}

fn blocks(page: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut open: Option<Block> = None;
    for line in page.lines() {
        match (&mut open, line.trim_start().strip_prefix("```")) {
            (None, Some(lang)) => {
                open = Some(Block {
                    lang: lang.trim().to_owned(),
                    lines: Vec::new(),
                });
            }
            (Some(_), Some("")) => out.extend(open.take()),
            (Some(b), _) => b.lines.push(line.to_owned()),
            (None, None) => {}
        }
    }
    assert!(open.is_none(), "a fenced block is never closed");
    out
}

/// The shell script of a page's command blocks, and the expected output of
/// each (by command-block index).
fn script(blocks: &[Block]) -> (String, Vec<Option<Vec<String>>>) {
    // Every background job the page starts ends with the shell.
    let mut script = String::from("set -euo pipefail\ntrap 'kill $(jobs -p) 2>/dev/null' EXIT\n");
    let mut expected = Vec::new();
    for (i, b) in blocks.iter().enumerate() {
        if b.lang != "bash" {
            continue;
        }
        script.push_str(&format!("echo '{MARK} {}'\n", expected.len()));
        for l in &b.lines {
            script.push_str(l);
            script.push('\n');
        }
        let next = blocks.get(i + 1).filter(|n| n.lang == "text");
        expected.push(next.map(|n| n.lines.clone()));
    }
    script.push_str(&format!("echo '{MARK} {}'\n", expected.len()));
    (script, expected)
}

/// Whether `text` holds every expected line, in order.
fn find_in_order(text: &str, lines: &[String]) -> Result<(), String> {
    let got: Vec<&str> = text.lines().collect();
    let mut from = 0;
    for want in lines.iter().filter(|l| !l.trim().is_empty()) {
        match got[from..].iter().position(|g| line_matches(g, want)) {
            Some(n) => from += n + 1,
            None => return Err(want.clone()),
        }
    }
    Ok(())
}

/// `want` with `…` as a wildcard and any run of spaces as any whitespace.
fn line_matches(got: &str, want: &str) -> bool {
    let got: String = got.split_whitespace().collect::<Vec<_>>().join(" ");
    let want: String = want.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut parts = want.split('…');
    let first = parts.next().unwrap_or("");
    let Some(mut at) = got.find(first) else {
        return false;
    };
    at += first.len();
    for p in parts {
        match got[at..].find(p) {
            Some(i) => at += i + p.len(),
            None => return false,
        }
    }
    true
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The namespace wrapper that works here: as root `unshare --net`, otherwise
/// with a user namespace (`unshare -rn`).
fn netns() -> Option<Vec<&'static str>> {
    [
        vec!["unshare", "--net"],
        vec!["unshare", "--map-root-user", "--net"],
    ]
    .into_iter()
    .find(|w| {
        let mut probe = w.clone();
        probe.extend(["ip", "link", "set", "lo", "up"]);
        tools::runs(probe[0], &probe[1..])
    })
}

fn run_page(rel: &str) {
    let page = std::fs::read_to_string(repo_root().join(rel)).unwrap();
    let blocks = blocks(&page);
    let (script, expected) = script(&blocks);
    assert!(!expected.is_empty(), "{rel} has no bash blocks");
    let Some(wrapper) = netns() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "{rel}: cannot make a network namespace (unshare --net); CI must be able to"
        );
        eprintln!("\n!!!!!!!! SKIP {rel}: no network namespace (unshare --net) !!!!!!!!\n");
        return;
    };

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("page.sh"), script).unwrap();
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_byollm")).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut cmd = Command::new(wrapper[0]);
    cmd.args(&wrapper[1..])
        .args(["bash", "-c", "ip link set lo up && exec bash page.sh 2>&1"])
        .current_dir(dir.path())
        .env_clear()
        .env("PATH", path)
        .env("HOME", dir.path())
        .env("LANG", "C.UTF-8")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > PAGE_LIMIT {
            child.kill().unwrap();
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{rel}: the page's commands failed ({}; stopped after {:?}):\n{text}\n{}",
        out.status,
        started.elapsed(),
        String::from_utf8_lossy(&out.stderr)
    );

    // Split the output at the marks and check each block's expected lines.
    let mut outputs = vec![String::new(); expected.len() + 1];
    let mut current = None;
    for line in text.lines() {
        if let Some(n) = line.strip_prefix(MARK) {
            current = n.trim().parse::<usize>().ok();
            continue;
        }
        if let Some(o) = current.and_then(|n| outputs.get_mut(n)) {
            o.push_str(line);
            o.push('\n');
        }
    }
    for (n, want) in expected.iter().enumerate() {
        let Some(want) = want else { continue };
        if let Err(missing) = find_in_order(&outputs[n], want) {
            panic!(
                "{rel}: command block {} does not print (in order) the line\n  {missing}\n\
                 it printed:\n{}",
                n + 1,
                outputs[n]
            );
        }
    }
}

#[test]
fn the_runnable_pages_work_as_written() {
    let tools_ok = [
        (&["aws", "--version"][..], "pip install awscli"),
        (&["jq", "--version"][..], "apt-get install -y jq"),
        (&["curl", "--version"][..], "apt-get install -y curl"),
    ]
    .iter()
    .all(|(probe, install)| tools::present_or_skip("the docs' commands", probe, install));
    if !tools_ok {
        return;
    }
    for page in RUNNABLE {
        run_page(page);
    }
}

#[test]
fn the_matcher_can_fail() {
    let printed = "team   Acme (abc)\nrole owner\n";
    let lines = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    assert!(find_in_order(printed, &lines(&["team Acme (…)", "role owner"])).is_ok());
    // Out of order, or a line that is not there, is a failure.
    assert!(find_in_order(printed, &lines(&["role owner", "team Acme (…)"])).is_err());
    assert!(find_in_order(printed, &lines(&["team Other (…)"])).is_err());
    assert!(!line_matches("route direct_api:x", "route aws_bedrock:…"));
}
