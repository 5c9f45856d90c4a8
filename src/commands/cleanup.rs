//! `lifeboat cleanup --backend docker|real`: removes what earlier runs left behind.
//!
//! A run removes its own resources when it ends, also when it fails or is interrupted;
//! this is for the runs that could not (a killed `lifeboat`, a lost connection).
//!
//! - docker: removes everything labelled `lifeboat=1` that belongs to a run, and the run
//!   directories under the work directory; `--all` removes the shared base images too
//!   (the next run rebuilds them).
//! - real: deletes every Hetzner Cloud server labelled `lifeboat=1` in the project whose
//!   API token is in `HCLOUD_TOKEN`, of any run. Servers cost money by the hour, so this
//!   lists each server before deleting it and exits non-zero if any deletion failed.
//!   `--api-url` points it at another API (a local double, `lifeboat serve hetzner`).

use crate::commands::drill::BackendName;
use anyhow::{anyhow, Context};
use clap::Args;
use lifeboat_real::clients::hetzner::{ServerInfo, OFFICIAL_BASE};
use lifeboat_real::clients::HetznerClient;
use lifeboat_real::hetzner::cloud::{self, NODE_LABEL, RUN_LABEL};
use std::path::PathBuf;
use std::process::ExitCode;

/// The environment variable holding the Hetzner Cloud API token.
pub const TOKEN_VAR: &str = "HCLOUD_TOKEN";

/// Arguments of `lifeboat cleanup`.
#[derive(Args, Debug)]
pub struct CleanupArgs {
    /// The backend whose leftovers to remove: docker (this machine's engine) or real
    /// (Hetzner Cloud servers; the token comes from $HCLOUD_TOKEN).
    #[arg(long, value_enum)]
    pub backend: BackendName,
    /// docker: also remove the shared base images (lifeboat-node:…, lifeboat-etcd:…).
    /// real: no effect, every lifeboat server is always deleted.
    #[arg(long)]
    pub all: bool,
    /// docker: where runs keep their data directories.
    #[arg(long, default_value_os_t = std::env::temp_dir())]
    pub work_dir: PathBuf,
    /// real: the Hetzner Cloud API base URL (for a local double in tests and rehearsals).
    #[arg(long, default_value = OFFICIAL_BASE, hide_short_help = true)]
    pub api_url: String,
}

/// Runs `lifeboat cleanup`.
pub fn run(args: CleanupArgs) -> anyhow::Result<ExitCode> {
    match args.backend {
        BackendName::Docker => docker(&args),
        BackendName::Real => real(&token(std::env::var(TOKEN_VAR).ok())?, &args.api_url),
        BackendName::Sim => Err(anyhow!(
            "the sim backend leaves nothing behind; cleanup is for --backend docker or real"
        )),
    }
}

/// The API token from the variable's value; an error naming the variable when it is
/// missing or blank (never showing any part of a token).
fn token(value: Option<String>) -> anyhow::Result<String> {
    match value.map(|v| v.trim().to_string()) {
        Some(v) if !v.is_empty() => Ok(v),
        Some(_) => Err(anyhow!(
            "{TOKEN_VAR} is empty: set it to the API token of the Hetzner Cloud project to clean up"
        )),
        None => Err(anyhow!(
            "{TOKEN_VAR} is not set: set it to the API token of the Hetzner Cloud project to \
             clean up (Cloud Console → Security → API tokens)"
        )),
    }
}

/// One line naming a server: name, id, run, node and address.
fn describe(s: &ServerInfo) -> String {
    let label = |k: &str| s.labels.get(k).map_or("?", String::as_str);
    let ip =
        s.ip.map_or_else(|| "no IPv4".to_string(), |ip| ip.to_string());
    format!(
        "server {} (id {}, run {}, node {}, {ip}, {} in {})",
        s.name,
        s.id,
        label(RUN_LABEL),
        label(NODE_LABEL),
        s.server_type,
        s.location
    )
}

/// `cleanup --backend real` against the API at `api_url` with `token`.
fn real(token: &str, api_url: &str) -> anyhow::Result<ExitCode> {
    let client = HetznerClient::new(api_url, token).map_err(|e| anyhow!("{e}"))?;
    let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let result = rt.block_on(async {
        let servers = cloud::list_all(&client).await?;
        for s in &servers {
            println!("deleting {}", describe(s));
        }
        anyhow::Ok(cloud::delete_servers(&client, servers).await)
    })?;
    for (s, why) in &result.failed {
        eprintln!("could not delete {}: {why}", describe(s));
    }
    let n = result.deleted.len();
    match (n, result.is_complete()) {
        (0, true) => println!("no lifeboat servers on Hetzner Cloud"),
        (_, true) => println!(
            "deleted {n} lifeboat server{} on Hetzner Cloud",
            if n == 1 { "" } else { "s" }
        ),
        (_, false) => eprintln!(
            "deleted {n}, failed {}: delete those by hand in the Cloud Console, or run \
             `lifeboat cleanup --backend real` again",
            result.failed.len()
        ),
    }
    Ok(if result.is_complete() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// `cleanup --backend docker`.
fn docker(args: &CleanupArgs) -> anyhow::Result<ExitCode> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use lifeboat_real::doubles::HetznerDouble;
    use std::collections::BTreeMap;

    const TOKEN: &str = "HETZNERcleanupTestToken00000000000000000000000000000000000000000";

    #[test]
    fn a_missing_token_names_the_variable() {
        let e = token(None).unwrap_err().to_string();
        assert!(e.contains("HCLOUD_TOKEN is not set"), "{e}");
        let e = token(Some("  ".into())).unwrap_err().to_string();
        assert!(e.contains("HCLOUD_TOKEN is empty"), "{e}");
        assert_eq!(token(Some(" t0k ".into())).unwrap(), "t0k");
    }

    #[test]
    fn real_cleanup_deletes_lifeboat_servers_only() {
        // The double runs on its own runtime; `real` starts one of its own, as the
        // command does.
        let rt = tokio::runtime::Runtime::new().unwrap();
        let double = HetznerDouble::new(TOKEN);
        let (addr, _task) = rt
            .block_on(double.serve(([127, 0, 0, 1], 0).into()))
            .unwrap();
        let base = format!("http://{addr}/v1");
        let client = HetznerClient::new(&base, TOKEN).unwrap();
        rt.block_on(async {
            for (name, labels) in [
                (
                    "lifeboat-r1-a",
                    [
                        ("lifeboat", "1"),
                        ("lifeboat.run", "r1"),
                        ("lifeboat.node", "a"),
                    ],
                ),
                (
                    "lifeboat-r2-b",
                    [
                        ("lifeboat", "1"),
                        ("lifeboat.run", "r2"),
                        ("lifeboat.node", "b"),
                    ],
                ),
                ("web-1", [("team", "web"), ("env", "prod"), ("tier", "1")]),
            ] {
                let labels: BTreeMap<String, String> = labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect();
                client
                    .create_server(name, "cpx11", "ubuntu-24.04", &[], &labels)
                    .await
                    .unwrap();
            }
        });
        assert_eq!(real(TOKEN, &base).unwrap(), ExitCode::SUCCESS);
        assert_eq!(double.server_names(), ["web-1"]);
        // Nothing left: still a success.
        assert_eq!(real(TOKEN, &base).unwrap(), ExitCode::SUCCESS);

        // A wrong token fails without showing it.
        let wrong = "WRONGcleanupTokenWRONGcleanupTokenWRONGcleanupToken000000000";
        let e = format!("{:#}", real(wrong, &base).unwrap_err());
        assert!(e.contains("401"), "{e}");
        assert!(!e.contains(wrong) && !e.contains(TOKEN), "{e}");
    }
}
