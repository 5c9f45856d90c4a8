//! `lifeboat drill` and `lifeboat replay`.

use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `lifeboat drill`.
#[derive(Args, Debug)]
pub struct DrillArgs {
    /// The scenario file.
    pub scenario: PathBuf,
}

/// Arguments of `lifeboat replay`.
#[derive(Args, Debug)]
pub struct ReplayArgs {
    /// The scenario file written by the fuzzer.
    pub scenario: PathBuf,
}

/// Runs `lifeboat drill`.
pub fn run(_args: DrillArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("drill: not built yet")
}

/// Runs `lifeboat replay`.
pub fn replay(_args: ReplayArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("replay: not built yet")
}
