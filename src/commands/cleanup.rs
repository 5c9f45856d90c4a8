//! `lifeboat cleanup --backend docker`: removes what earlier docker runs left behind.
//!
//! A run removes its own containers, network and images when it ends, also when it fails
//! or is interrupted; this is for the runs that could not (a killed `lifeboat`, a lost
//! engine connection). It removes everything labelled `lifeboat=1` that belongs to a run,
//! and the run directories under the work directory; `--all` removes the shared base
//! images too (the next run rebuilds them).

use crate::commands::drill::BackendName;
use anyhow::Context;
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `lifeboat cleanup`.
#[derive(Args, Debug)]
pub struct CleanupArgs {
    /// The backend whose leftovers to remove (only docker leaves any on this machine).
    #[arg(long, value_enum)]
    pub backend: BackendName,
    /// Also remove the shared base images (lifeboat-node:…, lifeboat-etcd:…).
    #[arg(long)]
    pub all: bool,
    /// Where runs keep their data directories.
    #[arg(long, default_value_os_t = std::env::temp_dir())]
    pub work_dir: PathBuf,
}

/// Runs `lifeboat cleanup`.
pub fn run(args: CleanupArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        args.backend == BackendName::Docker,
        "only the docker backend leaves resources on this machine; the sim leaves none"
    );
    let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let left = rt.block_on(async {
        let docker = lifeboat_real::docker::connect().await?;
        let before = lifeboat_real::docker::cleanup::leftovers(&docker, None).await?;
        for l in &before {
            println!("removing {l}");
        }
        lifeboat_real::docker::cleanup::remove(&docker, None, args.all).await
    })?;
    if let Ok(dir) = std::fs::read_dir(&args.work_dir) {
        for e in dir.flatten() {
            if e.file_name()
                .to_string_lossy()
                .starts_with("lifeboat-docker-")
            {
                println!("removing {}", e.path().display());
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
    if left.is_empty() {
        println!("nothing of earlier lifeboat runs is left");
        Ok(ExitCode::SUCCESS)
    } else {
        for l in &left {
            eprintln!("could not remove {l}");
        }
        Ok(ExitCode::from(1))
    }
}
