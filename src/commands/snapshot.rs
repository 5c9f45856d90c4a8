//! `lifeboat snapshot` and `lifeboat manifest`.

use clap::Subcommand;
use std::process::ExitCode;

/// `lifeboat snapshot …`
#[derive(Subcommand, Debug)]
pub enum SnapshotCommand {}

/// `lifeboat manifest …`
#[derive(Subcommand, Debug)]
pub enum ManifestCommand {}

/// Runs `lifeboat snapshot …`.
pub fn run(cmd: SnapshotCommand) -> anyhow::Result<ExitCode> {
    match cmd {}
}

/// Runs `lifeboat manifest …`.
pub fn run_manifest(cmd: ManifestCommand) -> anyhow::Result<ExitCode> {
    match cmd {}
}
