//! External tools the command-line tests drive (the AWS CLI, tmux, jq, the
//! Python SDKs). A missing tool fails the test when `CI` is set, and elsewhere
//! skips it with a line nobody can miss.

use std::process::{Command, Stdio};

/// Whether `program args…` runs and succeeds (the tool is installed).
pub fn runs(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Whether the tool the test needs is there: `probe` is a command that
/// succeeds when it is, `install` says how to get it. Missing with `CI` set is
/// a failure; missing elsewhere is a loud skip (returns false).
pub fn present_or_skip(test: &str, probe: &[&str], install: &str) -> bool {
    let Some((program, args)) = probe.split_first() else {
        panic!("{test}: an empty probe");
    };
    if runs(program, args) {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{test}: `{}` failed: {install}; CI must have it",
        probe.join(" ")
    );
    eprintln!(
        "\n!!!!!!!! SKIP {test}: `{}` failed ({install}) !!!!!!!!\n",
        probe.join(" ")
    );
    false
}
