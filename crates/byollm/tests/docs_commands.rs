//! The docs work as written: every command block of README.md and docs/*.md is
//! either run by this test or marked as not runnable, with the reason.
//!
//! A page's fenced blocks are classified by their info string:
//! - ```` ```bash ```` is a command block: on a page in [`RUNNABLE`] it is run,
//!   in order and verbatim, in one shell (`set -euo pipefail`) with the built
//!   `byollm` on `PATH`; the `text` or `json` block that follows it is what it
//!   must print (each line in order, `…` standing for anything, runs of spaces
//!   for any whitespace). A page whose commands need a server, the emulator or
//!   a team starts them in a visible "Before you start" block of its own.
//! - ```` ```bash no-run: REASON ```` is a command block that is not run (it
//!   installs packages, runs cargo or the test suite itself, needs a real AWS
//!   account or a browser); the reason is printed with the page's summary.
//! - ```` ```shell-session ```` is a recorded transcript (`$ command` and what
//!   it printed once), counted as not run.
//! - `text`, `json`, `toml`, `yaml`, `mermaid`: output, documents, diagrams.
//!
//! The log files a page writes (`2> serve.log`) must hold no ANSI colour codes.
//!
//! Anything else fails [`every_block_is_run_or_marked`]: a fence without a
//! language, `sh`/`shell`/`console`, or a `bash` block on a page that is not
//! run, so no command is ever skipped silently.
//!
//! The pages use fixed loopback ports (8080 for the server, 4566 for the
//! emulator), as a reader would; each page's shell runs in a network namespace
//! of its own (`unshare --net`), so the pages run in parallel, nothing else on
//! the machine can hold those ports and a page cannot reach anything but its
//! own loopback.
//!
//! Needs `unshare` and `ip` (util-linux, iproute2), `curl`, `jq`, the AWS
//! CLI and the Google Cloud CLI (the Vertex AI guide runs gcloud against the
//! emulator): missing ones fail the test when `CI` is set and skip it loudly
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
const RUNNABLE: &[&str] = &[
    "README.md",
    "docs/try-it-locally.md",
    "docs/admin-guide-aws-bedrock.md",
    "docs/admin-guide-gcp-vertex.md",
    "docs/admin-guide-azure-foundry.md",
    "docs/member-guide.md",
    "docs/troubleshooting.md",
];

/// Longest a page may take; past it the shell is killed and the test fails.
const PAGE_LIMIT: Duration = Duration::from_secs(210);

/// Marks where a command block's output starts in the shell's output.
const MARK: &str = "@@@byollm-docs-block";

/// Languages of blocks that hold no command.
const NOT_COMMANDS: &[&str] = &["text", "json", "toml", "yaml", "mermaid"];

/// What a fenced block is, from its info string.
#[derive(Debug, PartialEq)]
enum Kind {
    /// `bash`: run it.
    Run,
    /// `bash no-run: reason`, or a `shell-session` transcript.
    Skip(String),
    /// Output, a document or a diagram.
    Other,
    /// Not a marking this test knows: the page must say what the block is.
    Unmarked(String),
}

/// A fenced block of a page: its kind, language, first line number and lines.
struct Block {
    kind: Kind,
    lang: String,
    line: usize,
    lines: Vec<String>,
}

fn kind(info: &str) -> Kind {
    let info = info.trim();
    let (lang, rest) = info.split_once(char::is_whitespace).unwrap_or((info, ""));
    let rest = rest.trim();
    match lang {
        "bash" if rest.is_empty() => Kind::Run,
        "bash" => match rest.strip_prefix("no-run:").map(str::trim) {
            Some(reason) if !reason.is_empty() => Kind::Skip(reason.to_owned()),
            _ => Kind::Unmarked(format!(
                "```{info}: a bash block is `bash` (run) or `bash no-run: REASON`"
            )),
        },
        "shell-session" => Kind::Skip("a recorded transcript (shell-session)".into()),
        l if NOT_COMMANDS.contains(&l) => Kind::Other,
        "" => Kind::Unmarked(
            "a fence without a language: `text` for output, `bash` for commands".into(),
        ),
        l => Kind::Unmarked(format!(
            "```{l}: commands are `bash` or `bash no-run: REASON`; output is `text`"
        )),
    }
}

fn blocks(page: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut open: Option<Block> = None;
    for (n, line) in page.lines().enumerate() {
        match (&mut open, line.trim_start().strip_prefix("```")) {
            (None, Some(info)) => {
                open = Some(Block {
                    kind: kind(info),
                    lang: info.split_whitespace().next().unwrap_or("").to_owned(),
                    line: n + 1,
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
        if b.kind != Kind::Run {
            continue;
        }
        script.push_str(&format!("echo '{MARK} {}'\n", expected.len()));
        for l in &b.lines {
            script.push_str(l);
            script.push('\n');
        }
        let next = blocks
            .get(i + 1)
            .filter(|n| n.lang == "text" || n.lang == "json");
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

/// README.md and every page under docs/, relative to the repository.
fn all_pages() -> Vec<String> {
    let mut pages = vec!["README.md".to_owned()];
    let mut docs: Vec<String> = std::fs::read_dir(repo_root().join("docs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".md"))
        .map(|n| format!("docs/{n}"))
        .collect();
    docs.sort();
    pages.extend(docs);
    pages
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

/// One line per page: how many command blocks ran and which were not run, why.
fn summary(rel: &str, blocks: &[Block]) -> String {
    let ran = blocks.iter().filter(|b| b.kind == Kind::Run).count();
    let mut s = String::new();
    let skipped: Vec<String> = blocks
        .iter()
        .filter_map(|b| match &b.kind {
            Kind::Skip(reason) => Some(format!(
                "    line {}: `{}`: {reason}",
                b.line,
                b.lines.first().map(|l| l.trim()).unwrap_or("")
            )),
            _ => None,
        })
        .collect();
    s.push_str(&format!(
        "{rel}: {ran} command block(s) ran, {} not run{}",
        skipped.len(),
        if skipped.is_empty() { "" } else { ":" }
    ));
    for l in skipped {
        s.push('\n');
        s.push_str(&l);
    }
    s
}

/// Runs a page's command blocks; `Err` says what failed.
fn run_page(rel: &str, wrapper: &[&str]) -> Result<(), String> {
    let page = std::fs::read_to_string(repo_root().join(rel)).unwrap();
    let blocks = blocks(&page);
    let (script, expected) = script(&blocks);
    if expected.is_empty() {
        return Err(format!("{rel} has no bash blocks to run"));
    }
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
    // Read stdout while waiting, so a page that prints much never blocks.
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut stdout, &mut buf).unwrap();
        buf
    });
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > PAGE_LIMIT {
            child.kill().unwrap();
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let status = child.wait().unwrap();
    let stdout = reader.join().unwrap();
    let text = String::from_utf8_lossy(&stdout);
    if !status.success() {
        return Err(format!(
            "{rel}: the page's commands failed ({status}; stopped after {:?}):\n{text}",
            started.elapsed(),
        ));
    }

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
            return Err(format!(
                "{rel}: command block {} does not print (in order) the line\n  {missing}\n\
                 it printed:\n{}",
                n + 1,
                outputs[n]
            ));
        }
    }
    // The logs the page wrote (`2> serve.log`) are files, not a terminal:
    // no ANSI colour codes in them.
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "log") {
            let log = std::fs::read(&path).unwrap();
            if log.contains(&0x1b) {
                return Err(format!("{rel}: {} has ANSI escape codes", path.display()));
            }
        }
    }
    eprintln!("{} (in {:?})", summary(rel, &blocks), started.elapsed());
    Ok(())
}

#[test]
fn the_runnable_pages_work_as_written() {
    let tools_ok = [
        (&["aws", "--version"][..], "pip install awscli"),
        (&["jq", "--version"][..], "apt-get install -y jq"),
        (&["curl", "--version"][..], "apt-get install -y curl"),
        (
            &["gcloud", "--version"][..],
            "install the Google Cloud CLI (apt-get install google-cloud-cli)",
        ),
    ]
    .iter()
    .all(|(probe, install)| tools::present_or_skip("the docs' commands", probe, install));
    if !tools_ok {
        return;
    }
    let Some(wrapper) = netns() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "cannot make a network namespace (unshare --net); CI must be able to"
        );
        eprintln!(
            "\n!!!!!!!! SKIP the docs' commands: no network namespace (unshare --net) !!!!!!!!\n"
        );
        return;
    };
    // Each page has its own namespace, so they run side by side.
    let failures: Vec<String> = std::thread::scope(|s| {
        let runs: Vec<_> = RUNNABLE
            .iter()
            .map(|page| s.spawn(|| run_page(page, &wrapper)))
            .collect();
        runs.into_iter()
            .filter_map(|r| r.join().unwrap().err())
            .collect()
    });
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn every_block_is_run_or_marked() {
    let mut problems = Vec::new();
    for rel in all_pages() {
        let page = std::fs::read_to_string(repo_root().join(&rel)).unwrap();
        let blocks = blocks(&page);
        for b in &blocks {
            match &b.kind {
                Kind::Unmarked(why) => problems.push(format!("{rel}:{}: {why}", b.line)),
                Kind::Run if !RUNNABLE.contains(&rel.as_str()) => problems.push(format!(
                    "{rel}:{}: a bash block on a page this test does not run: add the page \
                     to RUNNABLE or mark the block `bash no-run: REASON`",
                    b.line
                )),
                _ => {}
            }
        }
        eprintln!("{}", summary(&rel, &blocks));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_matcher_and_the_markings_can_fail() {
    let printed = "team   Acme (abc)\nrole owner\n";
    let lines = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    assert!(find_in_order(printed, &lines(&["team Acme (…)", "role owner"])).is_ok());
    // Out of order, or a line that is not there, is a failure.
    assert!(find_in_order(printed, &lines(&["role owner", "team Acme (…)"])).is_err());
    assert!(find_in_order(printed, &lines(&["team Other (…)"])).is_err());
    assert!(!line_matches("route direct_api:x", "route aws_bedrock:…"));
    // A block says what it is; a skipped one says why.
    assert_eq!(kind("bash"), Kind::Run);
    assert_eq!(
        kind("bash no-run: needs sudo"),
        Kind::Skip("needs sudo".into())
    );
    assert!(matches!(kind("bash no-run:"), Kind::Unmarked(_)));
    assert!(matches!(kind("bash skip"), Kind::Unmarked(_)));
    assert!(matches!(kind(""), Kind::Unmarked(_)));
    assert!(matches!(kind("sh"), Kind::Unmarked(_)));
    assert_eq!(kind("text"), Kind::Other);
}
