//! The Docker backend: the drill runner's [`Backend`] over real processes in real
//! containers on the local Docker engine.
//!
//! What a run builds (everything labelled `lifeboat=1` and `lifeboat.run=<run id>`):
//! - the run's images ([`images`]): the node image (the static `lifeboat` binary, which
//!   runs the node daemon and the doubles) and the etcd image, both `FROM scratch`;
//! - a private bridge network `lifeboat-<run id>`;
//! - containers: etcd (the lease store), `lifeboat serve telegram` and `lifeboat serve
//!   releases` (the doubles), and one `lifeboat node` per scenario node, each with its
//!   data directory bind-mounted from the run's host directory.
//!
//! The backend reaches containers by their IP on the network (the host routes to Docker
//! bridges). Time is wall-clock time since the run's services came up.
//!
//! Faults and what carries them out:
//! - `kill`, `stop`, `crash`, `pause` and healing them: the Docker API (SIGKILL, SIGTERM
//!   with a 10 s grace, kill plus restart, the cgroup freezer);
//! - `isolate`: the node's container is disconnected from the run network, and
//!   reconnected to heal; a kernel-level cut both ways;
//! - `partition` and `partition-oneway` between a node and a service: **in-process**
//!   cuts, a setting of the node (`POST /admin/fault`), which drops its own requests to
//!   (or the answers from) that service; between two nodes or two services nothing
//!   flows in this model, so there is nothing to cut;
//! - `clock-offset` and `clock-step`: **in-process**, the node's wall-clock offset.
//!
//! Each fault records proof that it took effect (the container's state as Docker reports
//! it, a probe across a cut that fails, the node's own report of its settings), returned
//! by [`DockerBackend::proofs`] for the evidence bundle. What the backend cannot do
//! (clock rate errors, latency and loss, store, Telegram and disk faults, nodes sharing a
//! host) is absent from its capabilities, so such scenarios stop before anything runs.
//!
//! Events: each node records its own (and every dashboard read) in `events.jsonl` in its
//! data directory; the Telegram double serves its polls, 409s, deliveries and replies at
//! `/inject/history`; the backend records what it did (faults, starts, exits, pauses,
//! probes that got no answer, the genesis snapshot). [`crate::events::merge`] puts them
//! on one timeline by their true-time stamps.

pub mod cleanup;
pub mod images;

use crate::clients::ReleasesClient;
use crate::doubles::{releases, telegram};
use crate::events::{self, EventLog, HistoryPage, Stamped};
use crate::node::{self as daemon, NodeFaults, NODE_PORT};
use anyhow::{anyhow, Context};
use bollard::models::{
    ContainerCreateBody, EndpointSettings, HostConfig, NetworkConnectRequest, NetworkCreateRequest,
    NetworkDisconnectRequest, NetworkingConfig,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, KillContainerOptionsBuilder, StopContainerOptionsBuilder,
};
use bollard::Docker;
use images::{LABEL, RUN_LABEL};
use lifeboat_model::backend::{Backend, BackendError, Cluster, EventKind};
use lifeboat_model::bootstrap::BootstrapManifest;
use lifeboat_model::fault::{Capability, Fault};
use lifeboat_model::history::{Event, History, Role};
use lifeboat_model::ids::{Endpoint, NodeId};
use lifeboat_model::node::{Dashboard, Disk};
use lifeboat_model::profile::{Profile, ProfileName};
use lifeboat_model::proto::StoredBundle;
use lifeboat_model::snapshot::{self, SnapshotKey};
use lifeboat_model::Millis;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The chat the operator writes from (the sim's too).
pub const OPERATOR_CHAT: i64 = 4242;
/// The repository of the snapshot chain in the releases double.
pub const SNAPSHOT_REPO: (&str, &str) = ("lifeboat", "snapshots");
/// The repository bootstrap manifests are served from (as release assets).
pub const BOOTSTRAP_REPO: (&str, &str) = ("lifeboat", "bootstrap");
const ETCD_PORT: u16 = 2379;
const TELEGRAM_PORT: u16 = 8081;
const RELEASES_PORT: u16 = 8082;
/// How long a probe waits for a node's dashboard.
const PROBE_TIMEOUT: Duration = Duration::from_millis(1500);

/// Where the backend finds what it puts in images, and where it keeps run files.
#[derive(Clone, Debug)]
pub struct DockerOptions {
    /// A statically linked `lifeboat` binary (the node image's only file).
    pub node_binary: PathBuf,
    /// The etcd binary (Debian's `etcd-server` package: `/usr/bin/etcd`).
    pub etcd_binary: PathBuf,
    /// The directory under which each run keeps its nodes' data directories.
    pub work_dir: PathBuf,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Proc {
    Down,
    Running,
    Paused,
}

#[derive(Debug)]
struct Slot {
    container: Option<String>,
    state: Proc,
    incarnation: u32,
    faults: NodeFaults,
    isolated: bool,
    ip: Option<String>,
}

struct Run {
    dir: PathBuf,
    network: String,
    node_image: String,
    etcd_ip: String,
    telegram_ip: String,
    releases_ip: String,
    profile: Profile,
    key: SnapshotKey,
    nodes: BTreeMap<NodeId, Slot>,
    store: daemon::store::ReleasesStore,
    bootstrap_releases: ReleasesClient,
    manifests: u32,
    origin: Instant,
    origin_us: u64,
    tg_log: Vec<Stamped>,
    tg_next: usize,
}

/// The Docker backend.
pub struct DockerBackend {
    docker: Docker,
    opts: DockerOptions,
    run_id: String,
    http: reqwest::Client,
    run: Option<Run>,
    log: EventLog,
    proofs: Vec<String>,
    containers: Vec<String>,
    torn_down: bool,
}

fn be(e: impl std::fmt::Display) -> BackendError {
    BackendError::Other(e.to_string())
}

fn node_err(node: NodeId, e: impl std::fmt::Display) -> BackendError {
    BackendError::Node {
        node,
        what: e.to_string(),
    }
}

/// A fresh run id: 8 hex characters from the OS's randomness.
pub fn new_run_id() -> String {
    let mut b = [0u8; 4];
    if getrandom_fill(&mut b).is_err() {
        let t = events::now_us();
        b = (t as u32).to_le_bytes();
    }
    hex::encode(b)
}

fn getrandom_fill(b: &mut [u8]) -> std::io::Result<()> {
    use std::io::Read;
    std::fs::File::open("/dev/urandom")?.read_exact(b)
}

impl DockerBackend {
    /// Connects to the local Docker engine and negotiates its API version.
    pub async fn connect(opts: DockerOptions) -> anyhow::Result<DockerBackend> {
        let docker = connect().await?;
        Ok(DockerBackend {
            docker,
            opts,
            run_id: new_run_id(),
            http: reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(2))
                .build()?,
            run: None,
            log: EventLog::new(),
            proofs: Vec::new(),
            containers: Vec::new(),
            torn_down: false,
        })
    }

    /// The run's id, as its resources' `lifeboat.run` label carries it.
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// Proof, one line per fault, that each fault took effect.
    pub fn proofs(&self) -> &[String] {
        &self.proofs
    }

    fn r(&mut self) -> Result<&mut Run, BackendError> {
        self.run
            .as_mut()
            .ok_or_else(|| be("the docker backend was not provisioned"))
    }

    fn labels(&self) -> HashMap<String, String> {
        HashMap::from([
            (LABEL.to_string(), "1".to_string()),
            (RUN_LABEL.to_string(), self.run_id.clone()),
        ])
    }

    fn proof(&mut self, line: String) {
        let at = self
            .run
            .as_ref()
            .map_or(0.0, |r| r.origin.elapsed().as_secs_f64());
        self.proofs.push(format!("[{at:>9.3}s] {line}"));
    }

    async fn container_ip(&self, name: &str, network: &str) -> anyhow::Result<Option<String>> {
        let c = self.docker.inspect_container(name, None).await?;
        Ok(c.network_settings
            .and_then(|n| n.networks)
            .and_then(|mut n| n.remove(network))
            .and_then(|e| e.ip_address)
            .filter(|ip| !ip.is_empty()))
    }

    /// Creates and starts a service container; returns its IP.
    async fn service(
        &mut self,
        name: &str,
        image: &str,
        cmd: Vec<String>,
        env: Vec<String>,
        network: &str,
    ) -> anyhow::Result<String> {
        let full = format!("lifeboat-{}-{name}", self.run_id);
        let body = ContainerCreateBody {
            image: Some(image.to_string()),
            cmd: Some(cmd),
            env: Some(env),
            labels: Some(self.labels()),
            hostname: Some(name.to_string()),
            host_config: Some(HostConfig {
                network_mode: Some(network.to_string()),
                ..Default::default()
            }),
            ..Default::default()
        };
        self.create(&full, body).await?;
        self.docker
            .start_container(&full, None)
            .await
            .with_context(|| format!("starting container {full}"))?;
        self.container_ip(&full, network)
            .await?
            .ok_or_else(|| anyhow!("container {full} has no IP on {network}"))
    }

    async fn create(&mut self, name: &str, body: ContainerCreateBody) -> anyhow::Result<()> {
        let opts = CreateContainerOptionsBuilder::default().name(name).build();
        self.docker
            .create_container(Some(opts), body)
            .await
            .with_context(|| format!("creating container {name}"))?;
        self.containers.push(name.to_string());
        Ok(())
    }

    async fn wait_http(&self, url: &str, what: &str) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match self
                .http
                .get(url)
                .timeout(Duration::from_secs(2))
                .send()
                .await
            {
                Ok(r) if r.status().as_u16() < 500 => return Ok(()),
                _ if Instant::now() > deadline => {
                    return Err(anyhow!("{what} did not answer at {url} within 30 s"))
                }
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    async fn provision_inner(&mut self, cluster: &Cluster) -> anyhow::Result<()> {
        let Profile::Fenced(_) = &cluster.profile else {
            anyhow::bail!(
                "the docker backend runs the fenced profile only (its nodes use etcd as the \
                 lease store); run {} on the sim backend",
                ProfileName::OpentridentV1
            );
        };
        cluster.profile.validate().map_err(|e| anyhow!(e))?;
        let node_base = images::node_base(&self.docker, &self.opts.node_binary).await?;
        let etcd_base = images::etcd_base(&self.docker, &self.opts.etcd_binary).await?;
        let node_image = images::run_image(&self.docker, &self.run_id, "node", &node_base).await?;
        let etcd_image = images::run_image(&self.docker, &self.run_id, "etcd", &etcd_base).await?;
        let network = format!("lifeboat-{}", self.run_id);
        self.docker
            .create_network(NetworkCreateRequest {
                name: network.clone(),
                driver: Some("bridge".into()),
                labels: Some(self.labels()),
                ..Default::default()
            })
            .await
            .with_context(|| format!("creating network {network}"))?;
        let etcd_ip = self
            .service(
                "etcd",
                &etcd_image,
                [
                    "--name",
                    "lifeboat",
                    "--data-dir",
                    "/etcd-data",
                    "--listen-client-urls",
                    "http://0.0.0.0:2379",
                    "--advertise-client-urls",
                    "http://127.0.0.1:2379",
                    "--listen-peer-urls",
                    "http://127.0.0.1:2380",
                    "--initial-advertise-peer-urls",
                    "http://127.0.0.1:2380",
                    "--initial-cluster",
                    "lifeboat=http://127.0.0.1:2380",
                ]
                .map(String::from)
                .to_vec(),
                vec![],
                &network,
            )
            .await?;
        let telegram_ip = self
            .service(
                "telegram",
                &node_image,
                vec![
                    "serve".into(),
                    "telegram".into(),
                    "--listen".into(),
                    format!("0.0.0.0:{TELEGRAM_PORT}"),
                ],
                vec![],
                &network,
            )
            .await?;
        let releases_ip = self
            .service(
                "releases",
                &node_image,
                vec![
                    "serve".into(),
                    "releases".into(),
                    "--listen".into(),
                    format!("0.0.0.0:{RELEASES_PORT}"),
                ],
                vec![],
                &network,
            )
            .await?;
        self.wait_http(&format!("http://{etcd_ip}:{ETCD_PORT}/health"), "etcd")
            .await?;
        self.wait_http(
            &format!("http://{telegram_ip}:{TELEGRAM_PORT}/inject/replies"),
            "the Telegram double",
        )
        .await?;
        self.wait_http(
            &format!("http://{releases_ip}:{RELEASES_PORT}/"),
            "the releases double",
        )
        .await?;

        let dir = self
            .opts
            .work_dir
            .join(format!("lifeboat-docker-{}", self.run_id));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let releases_base = reqwest::Url::parse(&format!("http://{releases_ip}:{RELEASES_PORT}"))?;
        let client = |(owner, repo): (&str, &str)| {
            ReleasesClient::new(
                releases_base.clone(),
                releases_base.clone(),
                owner,
                repo,
                releases::TEST_TOKEN,
            )
            .map_err(|e| anyhow!("{e}"))
        };
        let store = daemon::store::ReleasesStore::new(client(SNAPSHOT_REPO)?);
        let bootstrap_releases = client(BOOTSTRAP_REPO)?;
        let key = SnapshotKey::from_seed(snapshot::sha256(
            format!("service-key:{}:{}", cluster.seed, self.run_id).as_bytes(),
        ));

        // The drill's clock starts now: the world is up.
        let origin = Instant::now();
        let origin_us = events::now_us();
        let mut nodes = BTreeMap::new();
        let mut genesis_done = false;
        for n in &cluster.nodes {
            let data = dir.join(n.id.to_string());
            std::fs::create_dir_all(&data)?;
            if n.primary {
                let mut disk = Disk::primary();
                if !genesis_done {
                    self.genesis(&cluster.profile, &key, &store, n.id, &mut disk)
                        .await?;
                    genesis_done = true;
                }
                daemon::write_disk(&data, &disk)?;
            }
            nodes.insert(
                n.id,
                Slot {
                    container: None,
                    state: Proc::Down,
                    incarnation: 0,
                    faults: NodeFaults::default(),
                    isolated: false,
                    ip: None,
                },
            );
        }
        self.run = Some(Run {
            dir,
            network,
            node_image,
            etcd_ip,
            telegram_ip,
            releases_ip,
            profile: cluster.profile.clone(),
            key,
            nodes,
            store,
            bootstrap_releases,
            manifests: 0,
            origin,
            origin_us,
            tg_log: Vec::new(),
            tg_next: 0,
        });
        Ok(())
    }

    /// Publishes the chain's first snapshot from the primary's initial state.
    async fn genesis(
        &mut self,
        profile: &Profile,
        key: &SnapshotKey,
        store: &daemon::store::ReleasesStore,
        node: NodeId,
        disk: &mut Disk,
    ) -> anyhow::Result<()> {
        let Profile::Fenced(p) = profile else {
            unreachable!("checked in provision")
        };
        let wall = Millis(events::now_us() / 1000);
        let b = snapshot::create(key, disk.files.clone(), None, 0, wall, p.snapshot_ttl)
            .map_err(|e| anyhow!("genesis snapshot: {e}"))?;
        let resp = store
            .publish(&b, Some(0))
            .await
            .map_err(|e| anyhow!("publishing the genesis snapshot: {e}"))?;
        anyhow::ensure!(
            matches!(resp, lifeboat_model::proto::StoreResp::Published { .. }),
            "the snapshot store refused the genesis snapshot: {resp:?}"
        );
        disk.head_manifest = Some(b.manifest.clone());
        disk.trust.highest = Some((1, snapshot::digest(&b.manifest)));
        disk.snapshot_head = Some(b.manifest.manifest.id.clone());
        let sv = disk.state_version();
        let stored = StoredBundle::Lifeboat(b.clone());
        self.log.record(Event::PublishAttempted {
            node,
            id: stored.id().to_string(),
            version: b.manifest.manifest.version,
            parent: None,
            token: Some(0),
            digest: lifeboat_model::store::content_digest(&stored),
        });
        self.log.record(Event::SnapshotPublished {
            node,
            id: StoredBundle::Lifeboat(b.clone()).id().to_string(),
            version: b.manifest.manifest.version,
            parent: None,
            token: Some(0),
            state_version: sv,
            accepted: true,
            note: String::new(),
        });
        Ok(())
    }

    fn container_name(&self, node: NodeId) -> String {
        format!("lifeboat-{}-node-{node}", self.run_id)
    }

    /// Creates the node's container (once) with `args` after `lifeboat node`.
    async fn node_container(
        &mut self,
        node: NodeId,
        args: Vec<String>,
    ) -> Result<String, BackendError> {
        let name = self.container_name(node);
        let labels = self.labels();
        let r = self.r()?;
        if r.nodes
            .get(&node)
            .and_then(|s| s.container.clone())
            .is_some()
        {
            return Ok(name);
        }
        let data = r.dir.join(node.to_string());
        let profile_json = serde_json::to_string(&r.profile).expect("profiles serialize");
        let mut cmd = vec!["node".to_string()];
        cmd.extend(args);
        cmd.extend([
            "--id".into(),
            node.to_string(),
            "--data".into(),
            "/data".into(),
            "--listen".into(),
            format!("0.0.0.0:{NODE_PORT}"),
            "--etcd".into(),
            format!("http://{}:{ETCD_PORT}", r.etcd_ip),
            "--telegram".into(),
            format!("http://{}:{TELEGRAM_PORT}", r.telegram_ip),
            "--releases".into(),
            format!("http://{}:{RELEASES_PORT}", r.releases_ip),
            "--repo".into(),
            format!("{}/{}", SNAPSHOT_REPO.0, SNAPSHOT_REPO.1),
        ]);
        let body = ContainerCreateBody {
            image: Some(r.node_image.clone()),
            cmd: Some(cmd),
            env: Some(vec![
                format!("LIFEBOAT_PROFILE={profile_json}"),
                format!("TELEGRAM_BOT_TOKEN={}", telegram::TEST_TOKEN),
                format!("GITHUB_TOKEN={}", releases::TEST_TOKEN),
                format!("SNAPSHOT_SIGNING_KEY={}", hex::encode(r.key.to_seed())),
            ]),
            labels: Some(labels),
            hostname: Some(format!("node-{node}")),
            host_config: Some(HostConfig {
                network_mode: Some(r.network.clone()),
                binds: Some(vec![format!("{}:/data", data.display())]),
                ..Default::default()
            }),
            networking_config: Some(NetworkingConfig {
                endpoints_config: Some(HashMap::from([(
                    r.network.clone(),
                    EndpointSettings::default(),
                )])),
            }),
            ..Default::default()
        };
        self.create(&name, body)
            .await
            .map_err(|e| node_err(node, format!("{e:#}")))?;
        let r = self.r()?;
        r.nodes.get_mut(&node).expect("known node").container = Some(name.clone());
        Ok(name)
    }

    fn slot(&mut self, node: NodeId) -> Result<&mut Slot, BackendError> {
        self.r()?
            .nodes
            .get_mut(&node)
            .ok_or_else(|| BackendError::Node {
                node,
                what: "not in this cluster".into(),
            })
    }

    /// Writes the node's in-process faults where its next start reads them, and tells a
    /// running node now. Returns the node's report (the proof), if it answered.
    async fn apply_node_faults(&mut self, node: NodeId) -> Result<Option<String>, BackendError> {
        let dir = self.r()?.dir.join(node.to_string());
        let slot = self.slot(node)?;
        let faults = slot.faults.clone();
        let (state, ip) = (slot.state, slot.ip.clone());
        std::fs::write(
            daemon::faults_path(&dir),
            serde_json::to_vec(&faults).expect("faults serialize"),
        )
        .map_err(|e| node_err(node, format!("writing its fault settings: {e}")))?;
        let (Proc::Running, Some(ip)) = (state, ip) else {
            return Ok(None);
        };
        let resp = self
            .http
            .post(format!("http://{ip}:{NODE_PORT}/admin/fault"))
            .timeout(PROBE_TIMEOUT)
            .json(&faults)
            .send()
            .await;
        match resp {
            Ok(r) if r.status().is_success() => {
                let rep: daemon::FaultReport = r.json().await.map_err(|e| node_err(node, e))?;
                Ok(Some(format!(
                    "node {node} reports cut_out {:?}, cut_in {:?}, wall clock {:+} ms from true time",
                    rep.faults.cut_out.iter().map(|e| e.to_string()).collect::<Vec<_>>(),
                    rep.faults.cut_in.iter().map(|e| e.to_string()).collect::<Vec<_>>(),
                    rep.node_wall_ms as i64 - rep.true_wall_ms as i64
                )))
            }
            Ok(r) => Err(node_err(
                node,
                format!("/admin/fault answered {}", r.status()),
            )),
            Err(_) => Ok(None), // not answering (isolated): the file applies at its next start
        }
    }

    async fn refresh_ip(&mut self, node: NodeId) -> Result<(), BackendError> {
        let name = self.container_name(node);
        let network = self.r()?.network.clone();
        let ip = self
            .container_ip(&name, &network)
            .await
            .map_err(|e| node_err(node, e))?;
        self.slot(node)?.ip = ip;
        Ok(())
    }

    async fn start_node(&mut self, node: NodeId, args: Vec<String>) -> Result<(), BackendError> {
        let name = self.node_container(node, args).await?;
        self.apply_node_faults(node).await?;
        // Recorded before the start: the process may lead before the API call returns,
        // and the history must show it started first.
        let slot = self.slot(node)?;
        slot.incarnation += 1;
        let incarnation = slot.incarnation;
        self.log.record(Event::ProcessStarted { node, incarnation });
        self.docker
            .start_container(&name, None)
            .await
            .map_err(|e| node_err(node, format!("starting container {name}: {e}")))?;
        self.slot(node)?.state = Proc::Running;
        self.refresh_ip(node).await
    }

    async fn state_of(&self, name: &str) -> String {
        match self.docker.inspect_container(name, None).await {
            Ok(c) => {
                let s = c.state.unwrap_or_default();
                format!(
                    "status {}, running {}, paused {}, exit code {}",
                    s.status.map(|s| s.to_string()).unwrap_or_default(),
                    s.running.unwrap_or(false),
                    s.paused.unwrap_or(false),
                    s.exit_code.unwrap_or(0)
                )
            }
            Err(e) => format!("inspect failed: {e}"),
        }
    }

    async fn exit_code(&self, name: &str) -> Option<i32> {
        self.docker
            .inspect_container(name, None)
            .await
            .ok()
            .and_then(|c| c.state)
            .and_then(|s| s.exit_code)
            .map(|c| c as i32)
    }

    /// A TCP connection to the node's port from the host, as proof a cut took effect.
    async fn reachable(&self, ip: &str) -> bool {
        matches!(
            tokio::time::timeout(
                Duration::from_secs(1),
                tokio::net::TcpStream::connect((ip, NODE_PORT)),
            )
            .await,
            Ok(Ok(_))
        )
    }

    async fn kill(&mut self, node: NodeId, how: &str) -> Result<(), BackendError> {
        let name = self.container_name(node);
        if self.slot(node)?.state == Proc::Down {
            return Ok(());
        }
        let opts = KillContainerOptionsBuilder::default()
            .signal("SIGKILL")
            .build();
        self.docker
            .kill_container(&name, Some(opts))
            .await
            .map_err(|e| node_err(node, format!("kill: {e}")))?;
        // Docker reports the kill once the process is gone; wait for it to be final.
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            let running = self
                .docker
                .inspect_container(&name, None)
                .await
                .ok()
                .and_then(|c| c.state)
                .and_then(|s| s.running)
                .unwrap_or(false);
            if !running {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.slot(node)?.state = Proc::Down;
        self.log.record(Event::ProcessExited {
            node,
            code: None,
            how: how.into(),
        });
        let st = self.state_of(&name).await;
        self.proof(format!("{how} {node}: container {name}: {st}"));
        Ok(())
    }

    async fn node_fault(&mut self, fault: &Fault, on: bool) -> Result<(), BackendError> {
        // The node end of a node–service cut, the service, and which ways are cut.
        let (node, svc, out, back) = match fault {
            Fault::Partition { a, b } => match (a, b) {
                (Endpoint::Node(n), s) | (s, Endpoint::Node(n))
                    if !matches!(s, Endpoint::Node(_)) =>
                {
                    (*n, *s, true, true)
                }
                _ => {
                    self.proof(format!(
                        "{fault}: no traffic flows between these endpoints in this model; nothing to cut"
                    ));
                    return Ok(());
                }
            },
            Fault::PartitionOneway { from, to } => match (from, to) {
                (Endpoint::Node(n), s) if !matches!(s, Endpoint::Node(_)) => (*n, *s, true, false),
                (s, Endpoint::Node(n)) if !matches!(s, Endpoint::Node(_)) => (*n, *s, false, true),
                _ => {
                    self.proof(format!(
                        "{fault}: no traffic flows between these endpoints in this model; nothing to cut"
                    ));
                    return Ok(());
                }
            },
            _ => unreachable!("only cuts come here"),
        };
        let slot = self.slot(node)?;
        for (yes, set) in [
            (out, &mut slot.faults.cut_out),
            (back, &mut slot.faults.cut_in),
        ] {
            if yes {
                if on {
                    set.insert(svc);
                } else {
                    set.remove(&svc);
                }
            }
        }
        let report = self.apply_node_faults(node).await?;
        let verb = if on { "cut" } else { "healed" };
        self.proof(format!(
            "{fault} {verb} in-process on node {node}: {}",
            report.unwrap_or_else(|| "node not answering now; applied at its next start".into())
        ));
        Ok(())
    }

    async fn fault(&mut self, fault: &Fault, on: bool) -> Result<(), BackendError> {
        self.log.record(if on {
            Event::Fault(fault.clone())
        } else {
            Event::Heal(fault.clone())
        });
        match (fault, on) {
            (Fault::Kill { node }, true) => self.kill(*node, "kill").await,
            (Fault::Crash { node }, true) => {
                self.kill(*node, "crash").await?;
                // The supervisor restarts it after Docker's first back-off.
                tokio::time::sleep(Duration::from_millis(100)).await;
                self.start_node(*node, Vec::new()).await
            }
            (Fault::Crash { .. }, false) => Ok(()),
            (Fault::Stop { node }, true) => {
                let name = self.container_name(*node);
                if self.slot(*node)?.state == Proc::Down {
                    return Ok(());
                }
                let opts = StopContainerOptionsBuilder::default().t(10).build();
                self.docker
                    .stop_container(&name, Some(opts))
                    .await
                    .map_err(|e| node_err(*node, format!("stop: {e}")))?;
                self.slot(*node)?.state = Proc::Down;
                let code = self.exit_code(&name).await;
                let how = if code == Some(137) {
                    "kill after stop timeout"
                } else {
                    "exit"
                };
                self.log.record(Event::ProcessExited {
                    node: *node,
                    code,
                    how: how.into(),
                });
                let st = self.state_of(&name).await;
                self.proof(format!("stop {node}: container {name}: {st}"));
                Ok(())
            }
            (Fault::Kill { node } | Fault::Stop { node }, false) => {
                if self.slot(*node)?.state == Proc::Down {
                    self.start_node(*node, Vec::new()).await?;
                }
                Ok(())
            }
            (Fault::Pause { node }, true) => {
                let name = self.container_name(*node);
                if self.slot(*node)?.state != Proc::Running {
                    return Ok(());
                }
                self.docker
                    .pause_container(&name)
                    .await
                    .map_err(|e| node_err(*node, format!("pause: {e}")))?;
                self.slot(*node)?.state = Proc::Paused;
                self.log.record(Event::Paused { node: *node });
                let st = self.state_of(&name).await;
                self.proof(format!("pause {node}: container {name}: {st}"));
                Ok(())
            }
            (Fault::Pause { node }, false) => {
                let name = self.container_name(*node);
                if self.slot(*node)?.state != Proc::Paused {
                    return Ok(());
                }
                // Recorded before: a resumed leader may act before the call returns.
                self.log.record(Event::Resumed { node: *node });
                self.docker
                    .unpause_container(&name)
                    .await
                    .map_err(|e| node_err(*node, format!("unpause: {e}")))?;
                self.slot(*node)?.state = Proc::Running;
                let st = self.state_of(&name).await;
                self.proof(format!("unpause {node}: container {name}: {st}"));
                Ok(())
            }
            (Fault::Isolate { node }, true) => {
                let name = self.container_name(*node);
                let network = self.r()?.network.clone();
                let ip = self.slot(*node)?.ip.clone();
                self.docker
                    .disconnect_network(
                        &network,
                        NetworkDisconnectRequest {
                            container: name.clone(),
                            force: Some(true),
                        },
                    )
                    .await
                    .map_err(|e| node_err(*node, format!("disconnect from {network}: {e}")))?;
                self.slot(*node)?.isolated = true;
                let probe = match &ip {
                    Some(ip) if self.reachable(ip).await => {
                        format!("a probe to {ip}:{NODE_PORT} STILL CONNECTS")
                    }
                    Some(ip) => format!("a probe to {ip}:{NODE_PORT} fails"),
                    None => "it had no address".into(),
                };
                self.proof(format!(
                    "isolate {node}: disconnected {name} from {network}; {probe}"
                ));
                Ok(())
            }
            (Fault::Isolate { node }, false) => {
                if !self.slot(*node)?.isolated {
                    return Ok(());
                }
                let name = self.container_name(*node);
                let network = self.r()?.network.clone();
                self.docker
                    .connect_network(
                        &network,
                        NetworkConnectRequest {
                            container: name.clone(),
                            endpoint_config: Some(EndpointSettings::default()),
                        },
                    )
                    .await
                    .map_err(|e| node_err(*node, format!("reconnect to {network}: {e}")))?;
                self.slot(*node)?.isolated = false;
                self.refresh_ip(*node).await?;
                let ip = self.slot(*node)?.ip.clone().unwrap_or_default();
                let ok = self.reachable(&ip).await;
                self.proof(format!(
                    "heal isolate {node}: reconnected {name} to {network} at {ip}; a probe {}",
                    if ok {
                        "connects"
                    } else {
                        "does not connect (node paused or down)"
                    }
                ));
                Ok(())
            }
            (Fault::Partition { .. } | Fault::PartitionOneway { .. }, on) => {
                self.node_fault(fault, on).await
            }
            (Fault::ClockOffset { node, ms } | Fault::ClockStep { node, ms }, on) => {
                let delta = if on { *ms } else { -*ms };
                self.slot(*node)?.faults.clock_offset_ms += delta;
                let report = self.apply_node_faults(*node).await?;
                self.proof(format!(
                    "{fault} {} in-process on node {node}: {}",
                    if on { "set" } else { "undone" },
                    report.unwrap_or_else(
                        || "node not answering now; applied at its next start".into()
                    )
                ));
                Ok(())
            }
            (other, _) => Err(BackendError::Unsupported {
                backend: "docker".into(),
                what: format!("carry out {}", other.kind()),
            }),
        }
    }

    async fn refresh_telegram(&mut self) -> Result<(), BackendError> {
        let r = self.r()?;
        let url = format!(
            "http://{}:{TELEGRAM_PORT}/inject/history?since={}",
            r.telegram_ip, r.tg_next
        );
        let page: HistoryPage = self
            .http
            .get(url)
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .map_err(|e| {
                be(format!(
                    "reading the Telegram double's history: {}",
                    e.without_url()
                ))
            })?
            .json()
            .await
            .map_err(|e| be(format!("the Telegram double's history: {e}")))?;
        let r = self.r()?;
        r.tg_log.extend(page.entries);
        r.tg_next = page.next;
        Ok(())
    }

    fn node_events(&self) -> Vec<Vec<Stamped>> {
        let Some(r) = &self.run else {
            return Vec::new();
        };
        r.nodes
            .keys()
            .map(|n| {
                let path = daemon::events_path(&r.dir.join(n.to_string()));
                std::fs::read_to_string(path)
                    .unwrap_or_default()
                    .lines()
                    .filter_map(|l| serde_json::from_str::<Stamped>(l).ok())
                    .collect()
            })
            .collect()
    }

    /// Removes everything this run created. Safe to call more than once.
    pub async fn remove_all(&mut self) -> Result<(), BackendError> {
        if self.run.is_some() {
            // Keep what Telegram saw before its container goes.
            let _ = self.refresh_telegram().await;
        }
        let leftovers = cleanup::remove(&self.docker, Some(&self.run_id), false)
            .await
            .map_err(|e| be(format!("{e:#}")))?;
        if let Some(r) = &self.run {
            let _ = std::fs::remove_dir_all(&r.dir);
        }
        self.torn_down = true;
        if leftovers.is_empty() {
            Ok(())
        } else {
            Err(be(format!("left behind: {}", leftovers.join(", "))))
        }
    }
}

impl Drop for DockerBackend {
    fn drop(&mut self) {
        if self.torn_down || (self.containers.is_empty() && self.run.is_none()) {
            return;
        }
        // A panic or an early return: remove the run's resources on a thread of its own,
        // since there may be no runtime to await on here.
        let run = self.run_id.clone();
        let dir = self.run.as_ref().map(|r| r.dir.clone());
        let _ = std::thread::spawn(move || {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                rt.block_on(async {
                    if let Ok(d) = connect().await {
                        let _ = cleanup::remove(&d, Some(&run), false).await;
                    }
                });
            }
            if let Some(d) = dir {
                let _ = std::fs::remove_dir_all(d);
            }
        })
        .join();
    }
}

/// Connects to the local engine and negotiates the API version (Debian's engine speaks
/// an older one than bollard's default).
pub async fn connect() -> anyhow::Result<Docker> {
    let d = Docker::connect_with_local_defaults()
        .context("connecting to the Docker engine (is it running, and may this user use it?)")?;
    d.negotiate_version()
        .await
        .context("negotiating the Docker API version")
}

impl Backend for DockerBackend {
    fn name(&self) -> &'static str {
        "docker"
    }

    fn capabilities(&self) -> BTreeSet<Capability> {
        [
            Capability::ProcessFaults,
            Capability::Pause,
            Capability::Partition,
            Capability::PartitionOneway,
            Capability::ClockSkew,
        ]
        .into_iter()
        .collect()
    }

    fn observes(&self) -> BTreeSet<EventKind> {
        // The merged logs: the backend's own (faults, processes, probes), the node
        // daemons' (their model events, their store's publishes and fetches) and the
        // Telegram double's (messages sent, polls, deliveries, replies). etcd keeps no
        // such log and the daemon runs the fenced profile only, so no lease or lock-file
        // events.
        use EventKind as K;
        [
            K::Faults,
            K::Processes,
            K::ChatSent,
            K::HealthProbes,
            K::Roles,
            K::Restores,
            K::StateChanges,
            K::Polls,
            K::ChatDeliveries,
            K::ChatReplies,
            K::Publishes,
            K::FetchesServed,
        ]
        .into_iter()
        .collect()
    }

    async fn provision(&mut self, cluster: &Cluster) -> Result<(), BackendError> {
        self.provision_inner(cluster)
            .await
            .map_err(|e| be(format!("run {}: {e:#}", self.run_id)))
    }

    async fn start(&mut self, node: NodeId) -> Result<(), BackendError> {
        if self.slot(node)?.state != Proc::Down {
            return Ok(());
        }
        self.start_node(node, vec!["run".into()]).await
    }

    async fn bootstrap(
        &mut self,
        node: NodeId,
        manifest: &BootstrapManifest,
    ) -> Result<(), BackendError> {
        let r = self.r()?;
        r.manifests += 1;
        let tag = format!("bootstrap-{}", r.manifests);
        let client = r.bootstrap_releases.clone();
        let release = client
            .create_release(&tag, &tag, "bootstrap manifest")
            .await
            .map_err(be)?;
        let json = serde_json::to_vec_pretty(manifest).expect("manifests serialize");
        let asset = client
            .upload_asset(release.id, "bootstrap.json", "application/json", json)
            .await
            .map_err(be)?;
        self.start_node(
            node,
            vec![
                "bootstrap".into(),
                "--from".into(),
                asset.browser_download_url,
            ],
        )
        .await
    }

    async fn regenerate_manifest(&mut self) -> Result<BootstrapManifest, BackendError> {
        let r = self.r()?;
        let head = r
            .store
            .head()
            .await
            .map_err(be)?
            .ok_or_else(|| be("the snapshot store is empty: no head to name"))?;
        Ok(BootstrapManifest::new(
            &head.manifest.id,
            &format!(
                "http://{}:{RELEASES_PORT}/repos/{}/{}/releases",
                r.releases_ip, SNAPSHOT_REPO.0, SNAPSHOT_REPO.1
            ),
            &r.node_image,
            &r.key.public(),
            vec![
                "TELEGRAM_BOT_TOKEN".into(),
                "GITHUB_TOKEN".into(),
                "SNAPSHOT_SIGNING_KEY".into(),
            ],
            Millis(events::now_us() / 1000),
        ))
    }

    async fn snapshot_head(&mut self) -> Result<Option<String>, BackendError> {
        let r = self.r()?;
        Ok(r.store.head().await.map_err(be)?.map(|m| m.manifest.id))
    }

    async fn inject(&mut self, fault: &Fault) -> Result<(), BackendError> {
        self.fault(fault, true).await
    }

    async fn heal(&mut self, fault: &Fault) -> Result<(), BackendError> {
        self.fault(fault, false).await
    }

    async fn probe(&mut self, node: NodeId) -> Result<Option<Dashboard>, BackendError> {
        let slot = self.slot(node)?;
        let (state, ip) = (slot.state, slot.ip.clone());
        let answer = match (state, ip) {
            (Proc::Running, Some(ip)) => self
                .http
                .get(format!("http://{ip}:{NODE_PORT}/api/dashboard-data"))
                .timeout(PROBE_TIMEOUT)
                .send()
                .await
                .ok()
                .filter(|r| r.status().is_success()),
            _ => None,
        };
        let dash = match answer {
            Some(r) => r.json::<Dashboard>().await.ok(),
            None => None,
        };
        if dash.is_none() {
            // The node recorded every probe it answered; one it did not is ours to record.
            self.log.record(Event::HealthProbe {
                node,
                healthz: false,
                readyz: false,
                role: Role::Stopped,
                observed_leader: None,
            });
        }
        Ok(dash)
    }

    async fn send_chat(&mut self, text: &str) -> Result<i64, BackendError> {
        let ip = self.r()?.telegram_ip.clone();
        let v: serde_json::Value = self
            .http
            .post(format!("http://{ip}:{TELEGRAM_PORT}/inject/message"))
            .timeout(Duration::from_secs(5))
            .json(&serde_json::json!({ "chat_id": OPERATOR_CHAT, "text": text }))
            .send()
            .await
            .map_err(|e| be(format!("Telegram double: {}", e.without_url())))?
            .json()
            .await
            .map_err(be)?;
        v["update_id"]
            .as_i64()
            .ok_or_else(|| be(format!("Telegram double answered {v} to /inject/message")))
    }

    async fn reply_to(&mut self, update_id: i64) -> Result<Option<NodeId>, BackendError> {
        self.refresh_telegram().await?;
        Ok(self.r()?.tg_log.iter().rev().find_map(|e| match &e.event {
            Event::ChatReplied {
                update_id: u, node, ..
            } if *u == update_id => Some(*node),
            _ => None,
        }))
    }

    async fn file_hashes(
        &mut self,
        node: NodeId,
    ) -> Result<BTreeMap<String, String>, BackendError> {
        let dir = self.r()?.dir.join(node.to_string());
        let disk = daemon::read_disk(&dir)
            .map_err(|e| node_err(node, format!("{e:#}")))?
            .unwrap_or_default();
        Ok(daemon::file_hashes(&disk))
    }

    fn now(&self) -> Millis {
        self.run.as_ref().map_or(Millis::ZERO, |r| {
            Millis(r.origin.elapsed().as_millis() as u64)
        })
    }

    async fn sleep(&mut self, d: Millis) -> Result<(), BackendError> {
        tokio::time::sleep(Duration::from_millis(d.0)).await;
        Ok(())
    }

    async fn history(&mut self) -> Result<History, BackendError> {
        if self.torn_down {
            // After teardown the Telegram double is gone; what it said was kept.
        } else {
            self.refresh_telegram().await?;
        }
        let nodes = self.node_events();
        let (own, _) = self.log.since(0);
        let r = self.r()?;
        let mut sources: Vec<&[Stamped]> = vec![&own];
        sources.extend(nodes.iter().map(Vec::as_slice));
        sources.push(&r.tg_log);
        Ok(events::merge(r.origin_us, &sources))
    }

    async fn teardown(&mut self) -> Result<(), BackendError> {
        self.remove_all().await
    }
}
