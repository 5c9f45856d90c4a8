//! The node daemon: the model's [`Node`] running for real, on tokio.
//!
//! Why: the same node code that the sim steps must run as a process that real faults
//! hit. This module is the real interpreter of the node's effects, as `sim::world` is the
//! simulated one:
//!
//! - `Effect::Send` → an HTTP call in its own task: the lease store to etcd
//!   ([`etcd`]), Telegram through [`TelegramClient`], the snapshot store through
//!   [`ReleasesClient`] ([`store`]); the answer comes back as `Input::Response`;
//! - `Effect::SetTimer`/`CancelTimer` → tokio timers on the monotonic clock, with a
//!   generation per timer so a replaced or cancelled one never fires;
//! - `Effect::Emit` → the node's [`EventLog`], mirrored to `events.jsonl` in the data
//!   directory and served at `GET /api/history?since=N`;
//! - `Effect::Exit` → the process exits with the code once in-flight calls end.
//!
//! The node's clock: monotonic time since the process started, and the wall clock plus
//! the node's configured offset (a setting of the node: `--clock-offset-ms`, or
//! `POST /admin/fault`). Event stamps always use the true clock.
//!
//! Its disk is a real data directory: `disk.json` (the model's [`Disk`], rewritten
//! atomically after each step that changed it) and the state files under `files/`.
//!
//! HTTP surface (what the runbook probes): `/healthz`, `/readyz` (503 when not ready),
//! `/api/dashboard-data`, `/api/history`, `/api/file-hashes`, and the in-process fault
//! settings at `GET`/`POST /admin/fault` (one-way or two-way cuts between this node and
//! a service, applied to its own traffic; the wall-clock offset). Every dashboard read
//! is recorded as a health probe in the node's history, stamped when it was answered.

pub mod etcd;
pub mod store;

use crate::clients::{ReleasesClient, TelegramClient};
use crate::events::{EventLog, HistoryPage};
use anyhow::Context;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response as HttpResponse};
use axum::routing::get;
use axum::{Json, Router};
use lifeboat_model::bootstrap::BootstrapManifest;
use lifeboat_model::history::{Event, Role};
use lifeboat_model::ids::{Endpoint, NodeId};
use lifeboat_model::node::{Clock, Dashboard, Disk, Effect, Input, Node, NodeConfig, Timer};
use lifeboat_model::profile::Profile;
use lifeboat_model::proto::{ReqId, Request, Response, StoreReq, StoreResp, TgReq, TgResp};
use lifeboat_model::snapshot::{self, SnapshotKey};
use lifeboat_model::Millis;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc;

/// The port a node listens on inside its container.
pub const NODE_PORT: u16 = 8080;

/// Everything a node daemon needs; secrets are never printed (see the `Debug` impl).
#[derive(Clone)]
pub struct Settings {
    /// The node.
    pub id: NodeId,
    /// The protocol and its timings.
    pub profile: Profile,
    /// The hostname v1's identity hashes (the container's hostname).
    pub hostname: String,
    /// The data directory (`disk.json`, `files/`, `events.jsonl`, `faults.json`).
    pub data_dir: PathBuf,
    /// Where the HTTP surface listens.
    pub listen: SocketAddr,
    /// etcd's client URL (`http://IP:2379`).
    pub etcd: String,
    /// The Telegram Bot API client.
    pub telegram: TelegramClient,
    /// The snapshot store's releases client.
    pub releases: ReleasesClient,
    /// The key that signs snapshots (`SNAPSHOT_SIGNING_KEY`).
    pub signing_key: SnapshotKey,
    /// A bootstrap manifest to restore from before serving (`node bootstrap --from`).
    pub bootstrap: Option<BootstrapManifest>,
    /// The wall-clock offset to start with, in ms.
    pub clock_offset_ms: i64,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("id", &self.id)
            .field("profile", &self.profile.name())
            .field("data_dir", &self.data_dir)
            .field("listen", &self.listen)
            .field("etcd", &self.etcd)
            .field("telegram", &self.telegram)
            .field("releases", &self.releases)
            .field("signing_key", &"<redacted>")
            .finish()
    }
}

/// The in-process faults of one node: cuts of its own traffic and its clock offset.
///
/// These are settings of the node, not kernel faults: a cut outbound request is never
/// sent (it times out as a lost one would), a cut inbound answer is dropped after the
/// service acted on the request.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeFaults {
    /// Services this node's requests cannot reach.
    #[serde(default)]
    pub cut_out: BTreeSet<Endpoint>,
    /// Services whose answers cannot reach this node.
    #[serde(default)]
    pub cut_in: BTreeSet<Endpoint>,
    /// Added to the node's wall clock, in ms.
    #[serde(default)]
    pub clock_offset_ms: i64,
}

/// `GET /admin/fault`: the faults in place and the node's clocks, as proof.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FaultReport {
    /// The faults in place.
    pub faults: NodeFaults,
    /// The node's wall clock as it reads it (true time plus the offset), ms.
    pub node_wall_ms: u64,
    /// The true wall clock at the same moment, ms.
    pub true_wall_ms: u64,
}

fn service_of(r: &Request) -> Endpoint {
    match r {
        Request::Lease(_) => Endpoint::LeaseStore,
        Request::Telegram(_) => Endpoint::Telegram,
        Request::Store(_) | Request::LockFile(_) => Endpoint::SnapshotStore,
    }
}

// Inputs are moved once from a call's task into the loop; boxing would only add an
// allocation per answer (the model's `Input` makes the same choice).
#[allow(clippy::large_enum_variant)]
enum Msg {
    Input(Input),
    Timer(Timer, u64),
}

struct Core {
    node: Node,
    started: Instant,
    timers: HashMap<Timer, u64>,
    gen: u64,
    faults: NodeFaults,
    disk_bytes: Vec<u8>,
    exiting: Option<i32>,
}

impl Core {
    fn clock(&self) -> Clock {
        let true_wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        Clock {
            mono: Millis(self.started.elapsed().as_millis() as u64),
            wall: Millis((true_wall + self.faults.clock_offset_ms).max(0) as u64),
        }
    }
}

struct Daemon {
    id: NodeId,
    core: Mutex<Core>,
    log: EventLog,
    data: PathBuf,
    tx: mpsc::UnboundedSender<Msg>,
    etcd: etcd::EtcdClient,
    telegram: TelegramClient,
    store: store::ReleasesStore,
    /// Users' message ids by update id, to reply to the right message.
    messages: Mutex<HashMap<i64, i64>>,
    inflight: Arc<std::sync::atomic::AtomicUsize>,
    /// Calls in flight, by request, with the service they went to.
    calls: Mutex<HashMap<ReqId, (Endpoint, tokio::task::AbortHandle)>>,
}

/// Counts a call in flight until its task ends or is aborted.
struct InFlight(Arc<std::sync::atomic::AtomicUsize>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Daemon {
    fn lock(&self) -> std::sync::MutexGuard<'_, Core> {
        self.core.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The data directory's files.
fn disk_path(data: &Path) -> PathBuf {
    data.join("disk.json")
}

/// The path of the fault settings a backend leaves for a node (read at start).
pub fn faults_path(data: &Path) -> PathBuf {
    data.join("faults.json")
}

/// The path of a node's event log in its data directory.
pub fn events_path(data: &Path) -> PathBuf {
    data.join("events.jsonl")
}

/// Reads a node's disk from its data directory (`None` when it has none yet).
pub fn read_disk(data: &Path) -> anyhow::Result<Option<Disk>> {
    let path = disk_path(data);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .with_context(|| format!("{} is not a node disk", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Writes a node's disk into its data directory: `disk.json` (atomically) and every
/// state file under `files/`.
pub fn write_disk(data: &Path, disk: &Disk) -> anyhow::Result<Vec<u8>> {
    let bytes = serde_json::to_vec(disk).expect("disks serialize");
    let tmp = data.join("disk.json.tmp");
    std::fs::write(&tmp, &bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, disk_path(data))
        .with_context(|| format!("renaming {} into place", tmp.display()))?;
    for (p, b) in &disk.files {
        if !snapshot::is_safe_path(p) {
            continue;
        }
        let path = data.join("files").join(p);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        std::fs::write(&path, b).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(bytes)
}

/// SHA-256 of every state file of a disk.
pub fn file_hashes(disk: &Disk) -> BTreeMap<String, String> {
    disk.files
        .iter()
        .map(|(p, b)| (p.clone(), snapshot::sha256_hex(b)))
        .collect()
}

/// Runs a node until it exits; returns its exit code. SIGTERM is the node's graceful
/// stop (`Input::Stop`), as `docker stop` sends it.
pub async fn run(settings: Settings) -> anyhow::Result<i32> {
    let data = settings.data_dir.clone();
    std::fs::create_dir_all(&data)
        .with_context(|| format!("node {}: creating {}", settings.id, data.display()))?;
    let mut disk = read_disk(&data)
        .with_context(|| format!("node {}", settings.id))?
        .unwrap_or_default();
    if let Some(m) = &settings.bootstrap {
        if !disk.has_state() {
            disk.bootstrap = Some(m.clone());
        }
    }
    let mut faults: NodeFaults = std::fs::read(faults_path(&data))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    if settings.clock_offset_ms != 0 {
        faults.clock_offset_ms = settings.clock_offset_ms;
    }
    let cfg = NodeConfig {
        id: settings.id,
        profile: settings.profile.clone(),
        hostname: settings.hostname.clone(),
        host: settings.hostname.clone(),
        signing_key: settings.signing_key.clone(),
        trusted_key: settings.signing_key.public(),
    };
    let (tx, mut rx) = mpsc::unbounded_channel();
    let daemon = Arc::new(Daemon {
        id: settings.id,
        core: Mutex::new(Core {
            node: Node::new(cfg, disk),
            started: Instant::now(),
            timers: HashMap::new(),
            gen: 0,
            faults,
            disk_bytes: Vec::new(),
            exiting: None,
        }),
        log: EventLog::with_file(events_path(&data)),
        data: data.clone(),
        tx: tx.clone(),
        etcd: etcd::EtcdClient::new(&settings.etcd)?,
        telegram: settings
            .telegram
            .clone()
            .with_caller(settings.id.to_string()),
        store: store::ReleasesStore::new(settings.releases.clone()),
        messages: Mutex::new(HashMap::new()),
        inflight: Arc::new(std::sync::atomic::AtomicUsize::new(0)),
        calls: Mutex::new(HashMap::new()),
    });
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("node {}: binding {}", settings.id, settings.listen))?;
    let app = router(daemon.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("listening for SIGTERM")?;
    let t2 = tx.clone();
    tokio::spawn(async move {
        let mut stopped = false;
        loop {
            tokio::select! {
                _ = term.recv() => {},
                _ = tokio::signal::ctrl_c() => {},
            }
            if stopped {
                std::process::exit(143);
            }
            stopped = true;
            let _ = t2.send(Msg::Input(Input::Stop));
        }
    });

    step(&daemon, Input::Start);
    while let Some(msg) = rx.recv().await {
        let input = match msg {
            Msg::Input(i) => i,
            Msg::Timer(t, gen) => {
                let mut c = daemon.lock();
                if c.timers.get(&t) != Some(&gen) {
                    continue;
                }
                c.timers.remove(&t);
                Input::Timer(t)
            }
        };
        if let Some(code) = step(&daemon, input) {
            // Let in-flight calls (the lease revoke of a graceful stop) finish first.
            let deadline = Instant::now() + Duration::from_secs(3);
            while daemon.inflight.load(std::sync::atomic::Ordering::SeqCst) > 0
                && Instant::now() < deadline
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            return Ok(code);
        }
    }
    Ok(0)
}

/// Steps the node once and carries out its effects; returns an exit code when it exits.
fn step(d: &Arc<Daemon>, input: Input) -> Option<i32> {
    let mut effects = Vec::new();
    let mut c = d.lock();
    if c.exiting.is_some() {
        return None;
    }
    let clock = c.clock();
    c.node.step(clock, input, &mut effects);
    if effects.iter().any(|e| matches!(e, Effect::Exit { .. })) {
        // The process is ending: its connections close now, as they would at exit, so
        // Telegram ends its long poll before the lease is given back below; only calls
        // to the lease store (the revoke) are let finish.
        let mut calls = d.calls.lock().unwrap_or_else(|p| p.into_inner());
        calls.retain(|_, (svc, h)| {
            if *svc != Endpoint::LeaseStore {
                h.abort();
            }
            *svc == Endpoint::LeaseStore
        });
    }
    for e in effects {
        match e {
            Effect::Send { req, request } => {
                let service = service_of(&request);
                if c.faults.cut_out.contains(&service) {
                    continue; // lost on the way: the node's request timer fires
                }
                spawn_call(d.clone(), req, request);
            }
            Effect::SetTimer { timer, after } => {
                c.gen += 1;
                let gen = c.gen;
                c.timers.insert(timer, gen);
                let tx = d.tx.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(after.0)).await;
                    let _ = tx.send(Msg::Timer(timer, gen));
                });
            }
            Effect::CancelTimer(timer) => {
                c.timers.remove(&timer);
            }
            Effect::Emit(ev) => d.log.record(ev),
            Effect::Exit { code } => c.exiting = Some(code),
        }
    }
    let bytes = serde_json::to_vec(&c.node.disk).expect("disks serialize");
    if bytes != c.disk_bytes {
        match write_disk(&d.data, &c.node.disk) {
            Ok(b) => c.disk_bytes = b,
            Err(e) => eprintln!("node {}: {e:#}", d.id),
        }
    }
    c.exiting
}

fn spawn_call(d: Arc<Daemon>, req: ReqId, request: Request) {
    use std::sync::atomic::Ordering;
    d.inflight.fetch_add(1, Ordering::SeqCst);
    let guard = InFlight(d.inflight.clone());
    let service = service_of(&request);
    let d2 = d.clone();
    let task = tokio::spawn(async move {
        let _guard = guard;
        let resp = call(&d2, request).await;
        d2.calls
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&req);
        if d2.lock().faults.cut_in.contains(&service) {
            return; // the answer is lost on the way back
        }
        let _ = d2.tx.send(Msg::Input(Input::Response { req, resp }));
    });
    let mut calls = d.calls.lock().unwrap_or_else(|p| p.into_inner());
    calls.retain(|_, (_, h)| !h.is_finished());
    calls.insert(req, (service, task.abort_handle()));
}

async fn call(d: &Daemon, request: Request) -> Response {
    match request {
        Request::Lease(r) => match d.etcd.call(r).await {
            Ok(resp) => Response::Lease(resp),
            Err(e) => Response::Failed(e),
        },
        Request::Telegram(TgReq::GetUpdates { offset, timeout }) => {
            let secs = (timeout.0 / 1000) as u32;
            match d.telegram.get_updates(offset, secs).await {
                Ok(updates) => {
                    let mut m = d.messages.lock().unwrap_or_else(|p| p.into_inner());
                    for u in &updates {
                        if let Some(msg) = &u.message {
                            m.insert(u.update_id, msg.message_id);
                        }
                    }
                    Response::Telegram(TgResp::Updates(
                        updates.iter().filter_map(|u| u.to_model()).collect(),
                    ))
                }
                Err(e) => tg_error(e),
            }
        }
        Request::Telegram(TgReq::SendMessage {
            chat_id,
            text,
            reply_to,
            token,
        }) => {
            let message = d
                .messages
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&reply_to)
                .copied();
            let sent = match message {
                Some(m) => d.telegram.send_reply(chat_id, &text, m, token).await,
                None => d.telegram.send_message(chat_id, &text).await,
            };
            match sent {
                Ok(m) => Response::Telegram(TgResp::Sent {
                    message_id: m.message_id,
                }),
                Err(e) => tg_error(e),
            }
        }
        Request::Store(StoreReq::Publish { bundle, token }) => {
            let lifeboat_model::proto::StoredBundle::Lifeboat(b) = &bundle else {
                return Response::Failed(
                    "this node's snapshot store publishes lifeboat bundles only".into(),
                );
            };
            let (parent, version) = (
                b.manifest.manifest.parent.as_ref().map(|p| p.id.clone()),
                b.manifest.manifest.version,
            );
            let state_version = {
                let mut disk = Disk::default();
                if let Some(m) = b.files.get(lifeboat_model::node::MEMORY_FILE) {
                    disk.files
                        .insert(lifeboat_model::node::MEMORY_FILE.into(), m.clone());
                }
                disk.state_version()
            };
            // The attempt is recorded before the publisher decides, so the checkers see
            // what was asked even if the publisher's own checks go wrong.
            d.log.record(Event::PublishAttempted {
                node: d.id,
                id: bundle.id().to_string(),
                version,
                parent: parent.clone(),
                token,
                digest: lifeboat_model::store::content_digest(&bundle),
            });
            match d.store.publish(b, token).await {
                Ok(resp) => {
                    let (accepted, note) = match &resp {
                        StoreResp::Rejected(why) => (false, why.clone()),
                        _ => (true, String::new()),
                    };
                    d.log.record(Event::SnapshotPublished {
                        node: d.id,
                        id: bundle.id().to_string(),
                        version,
                        parent,
                        token,
                        state_version,
                        accepted,
                        note,
                    });
                    Response::Store(resp)
                }
                Err(e) => Response::Failed(e),
            }
        }
        Request::Store(StoreReq::Fetch { id }) => match d.store.fetch(id.as_deref()).await {
            Ok((chain, bundle)) => {
                let fetch_id = crate::events::now_us();
                d.log.record(Event::SnapshotServed {
                    node: d.id,
                    fetch_id,
                    id: bundle.as_ref().map(|b| b.id().to_string()),
                    tamper: None,
                });
                if id.is_none() {
                    let head = chain.last().map(|m| &m.manifest);
                    d.log.record(Event::HeadServed {
                        node: d.id,
                        fetch_id,
                        id: head.map(|m| m.id.clone()),
                        version: head.map_or(0, |m| m.version),
                        parent: head.and_then(|m| m.parent.as_ref().map(|p| p.id.clone())),
                        tamper: None,
                    });
                }
                Response::Store(StoreResp::Fetched {
                    chain,
                    bundle,
                    fetch_id,
                })
            }
            Err(e) => Response::Failed(e),
        },
        Request::LockFile(_) => {
            Response::Failed("the node daemon runs the fenced profile only".into())
        }
    }
}

fn tg_error(e: crate::clients::ClientError) -> Response {
    use crate::clients::ClientError;
    match e {
        ClientError::Status {
            status,
            message,
            retry_after,
            ..
        } => Response::Telegram(TgResp::Error {
            code: status,
            description: message,
            retry_after: retry_after.map(Millis::secs),
        }),
        other => Response::Failed(other.to_string()),
    }
}

// ---------------------------------------------------------------------------- HTTP

fn router(d: Arc<Daemon>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/api/dashboard-data", get(dashboard))
        .route("/api/history", get(history))
        .route("/api/file-hashes", get(hashes))
        .route("/admin/fault", get(get_faults).post(set_faults))
        .with_state(d)
}

/// Reads the dashboard and records the read as a health probe, under the node's lock
/// so the probe sits exactly between the node's own events.
fn read_dashboard(d: &Daemon) -> Dashboard {
    let c = d.lock();
    let dash = c.node.dashboard(c.clock());
    d.log.record(Event::HealthProbe {
        node: d.id,
        healthz: dash.healthz,
        readyz: dash.readyz,
        role: dash.role,
        observed_leader: dash.observed_leader,
    });
    dash
}

async fn dashboard(State(d): State<Arc<Daemon>>) -> Json<Dashboard> {
    Json(read_dashboard(&d))
}

async fn readyz(State(d): State<Arc<Daemon>>) -> HttpResponse {
    let dash = read_dashboard(&d);
    if dash.readyz {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        let why = match dash.role {
            Role::Follower => "follower without an observed leader\n".to_string(),
            r => format!("not ready: {r}\n"),
        };
        (StatusCode::SERVICE_UNAVAILABLE, why).into_response()
    }
}

async fn history(State(d): State<Arc<Daemon>>, RawQuery(q): RawQuery) -> Json<HistoryPage> {
    let since = crate::doubles::parse_query(q.as_deref().unwrap_or(""))
        .into_iter()
        .find(|(k, _)| k == "since")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let (entries, next) = d.log.since(since);
    Json(HistoryPage { entries, next })
}

async fn hashes(State(d): State<Arc<Daemon>>) -> Json<BTreeMap<String, String>> {
    Json(file_hashes(&d.lock().node.disk))
}

fn fault_report(d: &Daemon) -> FaultReport {
    let c = d.lock();
    let true_wall_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|x| x.as_millis() as u64)
        .unwrap_or(0);
    FaultReport {
        faults: c.faults.clone(),
        node_wall_ms: c.clock().wall.0,
        true_wall_ms,
    }
}

async fn get_faults(State(d): State<Arc<Daemon>>) -> Json<FaultReport> {
    Json(fault_report(&d))
}

async fn set_faults(State(d): State<Arc<Daemon>>, Json(f): Json<NodeFaults>) -> Json<FaultReport> {
    d.lock().faults = f;
    Json(fault_report(&d))
}
