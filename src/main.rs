//! The `lifeboat` command: parse the arguments, dispatch to one command, map the outcome
//! to an exit code. Every command lives in `src/commands/`.

use clap::{Parser, Subcommand};
use lifeboat::commands;
use std::process::ExitCode;

/// Proves that a leader-lock service survives leader loss and can be cold-restored from
/// its signed snapshot chain.
///
/// Start with the AAA drill on the simulated backend:
///
///     lifeboat drill scenarios/aaa-drill.toml
///
/// Exit codes: 0 pass, 1 fail (an invariant or criterion was violated), 2 unknown (the
/// run could not judge: bad input, a backend error).
#[derive(Parser, Debug)]
#[command(name = "lifeboat", version, about, long_about, verbatim_doc_comment)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a scenario (the AAA drill, or a failure mode) on a backend and judge it.
    Drill(commands::drill::DrillArgs),
    /// Run a scenario file written by the fuzzer again, and print its trace hash.
    Replay(commands::drill::ReplayArgs),
    /// Fuzz fault schedules against a profile; write every failure as a scenario file.
    Fuzz(commands::fuzz::FuzzArgs),
    /// Create, verify or make keys for signed snapshot bundles.
    #[command(subcommand)]
    Snapshot(commands::snapshot::SnapshotCommand),
    /// Check a bootstrap manifest against the snapshot head.
    #[command(subcommand)]
    Manifest(commands::snapshot::ManifestCommand),
    /// Run a local double of Telegram, GitHub Releases or Hetzner Cloud for rehearsals and tests.
    Serve(commands::serve::ServeArgs),
    /// Run the node daemon: the model's node for real, with etcd, Telegram and the snapshot store.
    #[command(subcommand)]
    Node(commands::node::NodeCommand),
    /// Remove what earlier runs left behind: docker containers, networks and images, or
    /// Hetzner servers labelled lifeboat=1 (--backend real).
    Cleanup(commands::cleanup::CleanupArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Drill(args) => commands::drill::run(args),
        Command::Replay(args) => commands::drill::replay(args),
        Command::Fuzz(args) => commands::fuzz::run(args),
        Command::Snapshot(cmd) => commands::snapshot::run(cmd),
        Command::Manifest(cmd) => commands::snapshot::run_manifest(cmd),
        Command::Serve(args) => commands::serve::run(args),
        Command::Node(cmd) => commands::node::run(cmd),
        Command::Cleanup(args) => commands::cleanup::run(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}
