//! `byollm chat`: the interactive terminal agent.

use clap::Args;

/// `byollm chat` flags.
#[derive(Debug, Args)]
pub struct ChatArgs {}

/// Runs the chat.
pub async fn run(_args: ChatArgs) -> anyhow::Result<()> {
    anyhow::bail!("chat is not built yet")
}
