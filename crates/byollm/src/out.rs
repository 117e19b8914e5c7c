//! Writing to the terminal. The workspace denies `print!`; a command's output goes
//! through here, so a closed pipe is not a panic.

use std::io::Write as _;

/// Writes a line to stdout.
pub fn line(text: &str) {
    let _ = writeln!(std::io::stdout().lock(), "{text}");
}

/// Writes a line to stderr (notes, warnings, errors).
pub fn err(text: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{text}");
}

/// Writes a value as pretty JSON to stdout.
pub fn json<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    line(&serde_json::to_string_pretty(value)?);
    Ok(())
}

/// Ends a command with exit status 3, "not verified": nothing failed, but not
/// everything could be checked (the doctor). Exit statuses: 0 ok, 1 failure,
/// 2 usage error (clap), 3 not verified.
#[derive(Debug)]
pub struct NotVerified(pub String);

impl std::fmt::Display for NotVerified {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NotVerified {}

/// The exit status for a command's error.
pub fn exit_status(err: &anyhow::Error) -> u8 {
    if err.downcast_ref::<NotVerified>().is_some() {
        3
    } else {
        1
    }
}
