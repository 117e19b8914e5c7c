//! `byollm aws doctor` (DESIGN §7, §11).

use clap::Args;

/// `byollm aws doctor` flags.
#[derive(Debug, Args)]
pub struct DoctorArgs {}

/// Runs the doctor.
pub async fn run(_args: DoctorArgs) -> anyhow::Result<()> {
    anyhow::bail!("the doctor is not built yet")
}
