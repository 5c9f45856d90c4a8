//! `lifeboat node run|bootstrap`: run the model's node for real, as a daemon.
//!
//! The node daemon lives in `lifeboat_real::node`; this module parses its settings. Secrets
//! come from the environment and are never printed: `TELEGRAM_BOT_TOKEN`, `GITHUB_TOKEN`
//! (the snapshot store's) and `SNAPSHOT_SIGNING_KEY` (64 hex characters, the ed25519
//! seed shared by the nodes). The profile's timings come from `LIFEBOAT_PROFILE` (the
//! profile as JSON) when set, else the named profile's defaults.

use anyhow::{anyhow, Context};
use clap::{Args, Subcommand};
use lifeboat_model::bootstrap::BootstrapManifest;
use lifeboat_model::ids::NodeId;
use lifeboat_model::profile::{Profile, ProfileName};
use lifeboat_model::snapshot::SnapshotKey;
use lifeboat_real::clients::{ReleasesClient, TelegramClient};
use lifeboat_real::node::{self, Settings};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

/// `lifeboat node …`.
#[derive(Subcommand, Debug)]
pub enum NodeCommand {
    /// Run the node over its data directory (a primary, or a node that restored before).
    Run(NodeArgs),
    /// Restore a blank node from a bootstrap manifest and the signed chain, then serve.
    Bootstrap {
        /// Where the bootstrap manifest is (an http(s) URL, or a file path).
        #[arg(long = "from", value_name = "URL")]
        from: String,
        /// The node's settings.
        #[command(flatten)]
        args: NodeArgs,
    },
}

/// The settings of a node daemon.
#[derive(Args, Debug)]
pub struct NodeArgs {
    /// The node's name (a single letter: a, b, c …).
    #[arg(long)]
    pub id: String,
    /// The protocol (only `fenced` runs as a daemon).
    #[arg(long, default_value = "fenced")]
    pub profile: ProfileName,
    /// The data directory.
    #[arg(long, default_value = "/data")]
    pub data: PathBuf,
    /// Where /healthz, /readyz and /api/dashboard-data listen.
    #[arg(long, default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,
    /// etcd's client URL.
    #[arg(long)]
    pub etcd: String,
    /// The Telegram Bot API base URL (a double's, or https://api.telegram.org).
    #[arg(long, default_value = "https://api.telegram.org")]
    pub telegram: String,
    /// The GitHub API base URL of the snapshot store (a double's, or https://api.github.com).
    #[arg(long, default_value = "https://api.github.com")]
    pub releases: String,
    /// The GitHub uploads base URL (default: the API base URL when that is not github.com).
    #[arg(long)]
    pub uploads: Option<String>,
    /// The repository holding the snapshot chain, OWNER/NAME.
    #[arg(long, default_value = "lifeboat/snapshots")]
    pub repo: String,
    /// Start with the wall clock off by this many ms (a setting of the node).
    #[arg(long, default_value_t = 0, allow_hyphen_values = true)]
    pub clock_offset_ms: i64,
}

fn secret(var: &str) -> anyhow::Result<String> {
    let v = std::env::var(var).map_err(|_| anyhow!("{var} is not set"))?;
    let v = v.trim().to_string();
    anyhow::ensure!(!v.is_empty(), "{var} is empty");
    Ok(v)
}

fn url(text: &str, what: &str) -> anyhow::Result<reqwest::Url> {
    reqwest::Url::parse(text).with_context(|| format!("{what} `{text}` is not a URL"))
}

fn settings(a: NodeArgs, bootstrap: Option<BootstrapManifest>) -> anyhow::Result<Settings> {
    let id = NodeId::parse(&a.id).map_err(|e| anyhow!("--id: {e}"))?;
    let profile = match std::env::var("LIFEBOAT_PROFILE") {
        Ok(json) if !json.trim().is_empty() => serde_json::from_str::<Profile>(&json)
            .context("LIFEBOAT_PROFILE is not a profile as JSON")?,
        _ => Profile::default_for(a.profile),
    };
    anyhow::ensure!(
        profile.name() == ProfileName::Fenced,
        "node {id}: the node daemon runs the fenced profile (its lease store is etcd); \
         opentrident-v1 runs on the sim backend"
    );
    profile.validate().map_err(|e| anyhow!("node {id}: {e}"))?;
    let seed_hex = secret("SNAPSHOT_SIGNING_KEY")?;
    let seed: [u8; 32] = hex::decode(&seed_hex)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| anyhow!("SNAPSHOT_SIGNING_KEY must be 64 hex characters"))?;
    let telegram = TelegramClient::new(
        url(&a.telegram, "--telegram")?,
        secret("TELEGRAM_BOT_TOKEN")?,
    )
    .map_err(|e| anyhow!("{e}"))?;
    let (owner, repo) = a
        .repo
        .split_once('/')
        .ok_or_else(|| anyhow!("--repo `{}` is not OWNER/NAME", a.repo))?;
    let api = url(&a.releases, "--releases")?;
    let uploads = match &a.uploads {
        Some(u) => url(u, "--uploads")?,
        None if a.releases.contains("api.github.com") => url(
            lifeboat_real::clients::releases::OFFICIAL_UPLOADS,
            "uploads",
        )?,
        None => api.clone(),
    };
    let releases = ReleasesClient::new(api, uploads, owner, repo, secret("GITHUB_TOKEN")?)
        .map_err(|e| anyhow!("{e}"))?;
    let hostname = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| format!("node-{id}"));
    Ok(Settings {
        id,
        profile,
        hostname,
        data_dir: a.data,
        listen: a.listen,
        etcd: a.etcd,
        telegram,
        releases,
        signing_key: SnapshotKey::from_seed(seed),
        bootstrap,
        clock_offset_ms: a.clock_offset_ms,
    })
}

/// Reads a bootstrap manifest from a URL or a file.
async fn fetch_manifest(from: &str) -> anyhow::Result<BootstrapManifest> {
    let text = if from.starts_with("http://") || from.starts_with("https://") {
        let resp = reqwest::Client::new()
            .get(from)
            .timeout(std::time::Duration::from_secs(30))
            .send()
            .await
            .with_context(|| format!("fetching the bootstrap manifest from {from}"))?;
        let status = resp.status();
        anyhow::ensure!(
            status.is_success(),
            "fetching the bootstrap manifest from {from}: HTTP {status}"
        );
        resp.text().await?
    } else {
        std::fs::read_to_string(from).with_context(|| format!("reading {from}"))?
    };
    BootstrapManifest::from_json(&text).map_err(|e| anyhow!("bootstrap manifest {from}: {e}"))
}

/// Runs `lifeboat node …`; the exit code is the node's.
pub fn run(cmd: NodeCommand) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let code = runtime.block_on(async {
        let s = match cmd {
            NodeCommand::Run(a) => settings(a, None)?,
            NodeCommand::Bootstrap { from, args } => {
                // A node that restored before keeps its state; only a blank one reads the
                // manifest (so a restart of a bootstrapped node is a plain restart).
                let has_state = node::read_disk(&args.data)?.is_some_and(|d| d.has_state());
                let manifest = if has_state {
                    None
                } else {
                    let m = fetch_manifest(&from).await?;
                    for w in m.warnings() {
                        eprintln!("warning: {w}");
                    }
                    Some(m)
                };
                settings(args, manifest)?
            }
        };
        eprintln!(
            "lifeboat node {} · profile {} · data {} · listening on {}",
            s.id,
            s.profile.name(),
            s.data_dir.display(),
            s.listen
        );
        node::run(s).await
    })?;
    Ok(ExitCode::from(code.clamp(0, 255) as u8))
}
