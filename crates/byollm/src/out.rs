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
