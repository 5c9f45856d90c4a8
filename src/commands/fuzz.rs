//! `lifeboat fuzz`.

use clap::Args;
use std::process::ExitCode;

/// Arguments of `lifeboat fuzz`.
#[derive(Args, Debug)]
pub struct FuzzArgs {}

/// Runs `lifeboat fuzz`.
pub fn run(_args: FuzzArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("fuzz: not built yet")
}
