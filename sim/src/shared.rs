//! What the fast engine and the turmoil engine share, so the two cannot drift apart: the
//! world-wide fault conditions (cuts, latency, loss, store and Telegram faults), the hosts'
//! lock files, the chain's genesis snapshot, the bootstrap manifest, and how a probe and
//! an answer read in the history.
//!
//! Process faults (kill, crash, stop, pause) and clock faults stay with each engine: they
//! act on how that engine runs a process.

use crate::world::{NodeSetup, WorldConfig, EPOCH_WALL};
use lifeboat_model::bootstrap::BootstrapManifest;
use lifeboat_model::fault::Fault;
use lifeboat_model::history::{Event, History, Role};
use lifeboat_model::ids::{Endpoint, NodeId};
use lifeboat_model::lease::LockFileDoc;
use lifeboat_model::node::{Dashboard, Disk, NodeConfig, MEMORY_FILE};
use lifeboat_model::profile::Profile;
use lifeboat_model::proto::{LockFileReq, LockFileResp, StoreReq, StoreResp, StoredBundle};
use lifeboat_model::snapshot::{self, SnapshotKey};
use lifeboat_model::store::SnapshotStore;
use lifeboat_model::telegram::{ApiFault, BotApi};
use lifeboat_model::time::Millis;
use lifeboat_model::v1;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, BTreeSet};

/// One host's `instance-locks-v1.json`, and the disk faults on it.
#[derive(Clone, Debug, Default)]
pub(crate) struct LockFile {
    doc: Option<LockFileDoc>,
    corrupt: bool,
    /// Extra time every lock-file operation on this host takes.
    pub(crate) slow: Millis,
}

/// The fault conditions that are not about one process.
#[derive(Clone, Debug, Default)]
pub(crate) struct Conditions {
    cuts: BTreeSet<(Endpoint, Endpoint)>,
    isolated: BTreeSet<NodeId>,
    extra_latency: Millis,
    loss_percent: u8,
    /// The snapshot store answers nothing.
    pub(crate) store_down: bool,
    /// Extra time each way for snapshot store traffic.
    pub(crate) store_slow: Millis,
    /// A foreign process polls getUpdates with the bot's token.
    pub(crate) foreign_poller: bool,
    /// Lock files by host.
    pub(crate) lockfiles: BTreeMap<String, LockFile>,
}

impl Conditions {
    /// Whether traffic from `from` to `to` is cut.
    pub(crate) fn cut(&self, from: Endpoint, to: Endpoint) -> bool {
        let iso = |e: Endpoint| matches!(e, Endpoint::Node(n) if self.isolated.contains(&n));
        iso(from) || iso(to) || self.cuts.contains(&(from, to))
    }

    /// One message's one-way latency, drawn from the world's generator.
    pub(crate) fn latency(&self, rng: &mut ChaCha8Rng, cfg: &WorldConfig) -> Millis {
        let base = rng.random_range(cfg.latency_min.0..=cfg.latency_max.0);
        Millis(base) + self.extra_latency
    }

    /// Whether a loss fault drops this message (draws only while one is in place).
    pub(crate) fn lost(&self, rng: &mut ChaCha8Rng) -> bool {
        self.loss_percent > 0 && rng.random_range(0..100u8) < self.loss_percent
    }

    /// The extra time a host's lock-file operations take.
    pub(crate) fn disk_slow(&self, host: &str) -> Millis {
        self.lockfiles.get(host).map_or(Millis::ZERO, |l| l.slow)
    }

    /// Puts a fault in place (`on`) or heals it, for every kind this module owns;
    /// process and clock faults are left to the engine.
    pub(crate) fn set(
        &mut self,
        fault: &Fault,
        on: bool,
        store: &mut SnapshotStore,
        bot: &mut BotApi,
    ) {
        let or_zero = |m: Millis| if on { m } else { Millis::ZERO };
        match fault {
            Fault::Partition { a, b } => {
                self.cut_link(*a, *b, on);
                self.cut_link(*b, *a, on);
            }
            Fault::PartitionOneway { from, to } => self.cut_link(*from, *to, on),
            Fault::Isolate { node } => {
                if on {
                    self.isolated.insert(*node);
                } else {
                    self.isolated.remove(node);
                }
            }
            Fault::Latency { extra } => self.extra_latency = or_zero(*extra),
            Fault::Loss { percent } => self.loss_percent = if on { (*percent).min(100) } else { 0 },
            Fault::StoreDown => self.store_down = on,
            Fault::StoreSlow { extra } => self.store_slow = or_zero(*extra),
            Fault::StoreTamper { tamper } => store.set_tamper(on.then_some(*tamper)),
            Fault::TelegramErrors { code } => {
                bot.set_fault(on.then_some(ApiFault::Errors { code: *code }))
            }
            Fault::ForeignPoller => self.foreign_poller = on,
            // Garbage stays in the file until the next write replaces it.
            Fault::LockFileCorrupt { host } => {
                if on {
                    self.lockfiles.entry(host.clone()).or_default().corrupt = true;
                }
            }
            Fault::DiskSlow { host, extra } => {
                self.lockfiles.entry(host.clone()).or_default().slow = or_zero(*extra);
            }
            Fault::Kill { .. }
            | Fault::Crash { .. }
            | Fault::Stop { .. }
            | Fault::Pause { .. }
            | Fault::ClockOffset { .. }
            | Fault::ClockStep { .. }
            | Fault::ClockRate { .. } => {}
        }
    }

    fn cut_link(&mut self, from: Endpoint, to: Endpoint, on: bool) {
        if on {
            self.cuts.insert((from, to));
        } else {
            self.cuts.remove(&(from, to));
        }
    }

    /// Reads or replaces a host's lock file for `node`; returns the answer and the event.
    pub(crate) fn lock_file_op(
        &mut self,
        node: NodeId,
        host: &str,
        op: LockFileReq,
    ) -> (LockFileResp, Event) {
        let lf = self.lockfiles.entry(host.to_string()).or_default();
        match op {
            LockFileReq::Read => {
                let doc = if lf.corrupt { None } else { lf.doc.clone() };
                let entry = doc
                    .as_ref()
                    .and_then(|d| d.entry("leader-heartbeat").cloned());
                let ev = Event::LockFileRead {
                    node,
                    host: host.to_string(),
                    holder: entry.as_ref().map(|e| e.instance_id.clone()),
                    last_seen_at: entry.map(|e| e.last_seen_at),
                    readable: !lf.corrupt,
                };
                (LockFileResp::Contents(doc), ev)
            }
            LockFileReq::Write(doc) => {
                let ev = Event::LockFileWritten {
                    node,
                    host: host.to_string(),
                    holder: doc.entry("leader-heartbeat").map(|e| e.instance_id.clone()),
                    op: "rename".into(),
                };
                lf.doc = Some(doc);
                lf.corrupt = false;
                (LockFileResp::Written, ev)
            }
        }
    }
}

/// The world's snapshot store; `attacker` signs re-signed tampers. Under a mutant test
/// the store loses the check the profile's mutant names.
pub(crate) fn new_store(cfg: &WorldConfig, attacker: SnapshotKey) -> SnapshotStore {
    #[allow(unused_mut)]
    let mut store = SnapshotStore::new(attacker);
    #[cfg(feature = "mutants")]
    if let Profile::Fenced(p) = &cfg.profile {
        store.set_mutant(p.mutant);
    }
    #[cfg(not(feature = "mutants"))]
    let _ = cfg;
    store
}

/// A key seed derived from the world's seed, so keys differ per world but not per run.
pub(crate) fn derive_seed(seed: u64, what: &str) -> [u8; 32] {
    snapshot::sha256(format!("{what}:{seed}").as_bytes())
}

/// Publishes the chain's first snapshot from the primary's initial state, in the
/// profile's format, and points the primary's disk at it. Returns the store's events.
pub(crate) fn publish_genesis(
    cfg: &WorldConfig,
    service_key: &SnapshotKey,
    store: &mut SnapshotStore,
    setup: &NodeSetup,
    disk: &mut Disk,
) -> Vec<Event> {
    let wall = EPOCH_WALL;
    let bundle = match &cfg.profile {
        Profile::Fenced(p) => {
            let b = snapshot::create(
                service_key,
                disk.files.clone(),
                None,
                0,
                wall,
                p.snapshot_ttl,
            )
            .expect("initial state files have safe paths");
            disk.head_manifest = Some(b.manifest.clone());
            disk.trust.highest = Some((1, snapshot::digest(&b.manifest)));
            StoredBundle::Lifeboat(b)
        }
        Profile::OpentridentV1(_) => {
            let seed = derive_seed(cfg.seed, &format!("v1-key-{}", setup.host));
            disk.v1_key_seed = Some(seed);
            let b = v1::create(
                &SnapshotKey::from_seed(seed),
                disk.files.clone(),
                None,
                "primary",
                wall,
            );
            disk.last_snapshot_ts = Some(wall.0);
            StoredBundle::V1(b)
        }
    };
    disk.snapshot_head = Some(bundle.id().to_string());
    store.publish(setup.id, bundle, Some(0), 0, 0).1
}

/// A bootstrap manifest naming the store's head (the runbook's phase 0).
pub(crate) fn bootstrap_manifest(
    store: &SnapshotStore,
    key: &SnapshotKey,
    wall: Millis,
) -> Option<BootstrapManifest> {
    Some(BootstrapManifest::new(
        store.head()?,
        "sim://snapshot-store",
        "lifeboat-node:sim",
        &key.public(),
        vec!["TELEGRAM_BOT_TOKEN".into(), "SNAPSHOT_SIGNING_KEY".into()],
        wall,
    ))
}

/// How a health probe reads in the history; a process that did not answer reads as
/// stopped and not ready.
pub(crate) fn probe_event(node: NodeId, dash: Option<&Dashboard>) -> Event {
    Event::HealthProbe {
        node,
        healthz: dash.is_some_and(|d| d.healthz),
        readyz: dash.is_some_and(|d| d.readyz),
        role: dash.map_or(Role::Stopped, |d| d.role),
        observed_leader: dash.and_then(|d| d.observed_leader),
    }
}

/// Who last answered each update, read from the history once. Why: the drill runner
/// asks after every probe while it waits for an answer, and scanning the whole history
/// each time made a long wait quadratic (issue 19's mutated input `scenario-19-19716`, a
/// chat step waiting hours for an answer: 50 s).
#[derive(Debug, Default)]
pub(crate) struct Replies {
    /// How many history entries have been read.
    scanned: usize,
    by_update: BTreeMap<i64, NodeId>,
}

impl Replies {
    /// The node that last answered an update, if any did.
    pub(crate) fn answered_by(&mut self, h: &History, update_id: i64) -> Option<NodeId> {
        if self.scanned > h.entries.len() {
            // Another history (it only grows otherwise): read it from the start.
            *self = Replies::default();
        }
        for e in &h.entries[self.scanned..] {
            if let Event::ChatReplied {
                update_id: u, node, ..
            } = &e.event
            {
                self.by_update.insert(*u, *node);
            }
        }
        self.scanned = h.entries.len();
        self.by_update.get(&update_id).copied()
    }
}

/// Telegram records a reply when it arrives; the world also knows when it was sent, and
/// the chat checker judges the sender by that.
pub(crate) fn stamp_sent(events: &mut [Event], sent: Millis) {
    for e in events {
        if let Event::ChatReplied { sent_at, .. } = e {
            *sent_at = Some(sent);
        }
    }
}

/// SHA-256 of every state file on a disk.
pub(crate) fn file_hashes(disk: &Disk) -> BTreeMap<String, String> {
    disk.files
        .iter()
        .map(|(p, b)| (p.clone(), snapshot::sha256_hex(b)))
        .collect()
}

/// The state version a bundle's memory file carries (for the store's history event).
fn state_version_of(bundle: &StoredBundle) -> u64 {
    let files = match bundle {
        StoredBundle::Lifeboat(b) => &b.files,
        StoredBundle::V1(b) => &b.files,
    };
    let mut d = Disk::default();
    if let Some(m) = files.get(MEMORY_FILE) {
        d.files.insert(MEMORY_FILE.into(), m.clone());
    }
    d.state_version()
}

/// Serves a snapshot store request from `node`; `wall` is the store's clock (for the
/// expiry of re-signed tampers), `granted` the newest fencing token the lease store has
/// granted (the store checks publishes against it).
pub(crate) fn store_request(
    store: &mut SnapshotStore,
    node: NodeId,
    r: StoreReq,
    wall: Millis,
    granted: u64,
) -> (StoreResp, Vec<Event>) {
    match r {
        StoreReq::Publish { bundle, token } => {
            let sv = state_version_of(&bundle);
            store.publish(node, bundle, token, sv, granted)
        }
        StoreReq::Fetch { id } => store.fetch(node, id.as_deref(), wall),
    }
}

/// Docker's restart policy: the first delay, the cap, and how long a container must run
/// before the delay resets.
const BACKOFF_FIRST: Millis = Millis(100);
const BACKOFF_MAX: Millis = Millis(60_000);
const BACKOFF_RESET_AFTER: Millis = Millis(10_000);

/// One container's restart back-off under Docker's `unless-stopped` policy.
#[derive(Clone, Debug)]
pub(crate) struct RestartBackoff(Millis);

impl Default for RestartBackoff {
    fn default() -> Self {
        RestartBackoff(BACKOFF_FIRST)
    }
}

impl RestartBackoff {
    /// A process that ran for `ran` ended: the delay before its restart. The delay
    /// doubles with each restart up to the cap, and resets after a long enough run.
    pub(crate) fn on_exit(&mut self, ran: Millis, restart: bool) -> Millis {
        if ran >= BACKOFF_RESET_AFTER {
            self.0 = BACKOFF_FIRST;
        }
        let delay = self.0;
        if restart {
            self.0 = (self.0 * 2).min(BACKOFF_MAX);
        }
        delay
    }
}

/// The configuration of a node process. The hostname (which v1's identity hashes) is the
/// one the scenario gives the node (`docker run --hostname`, kept across restarts), else
/// the node's own container id: the node's name plus the container generation, so nodes
/// sharing a host (a state directory) still have distinct identities, as containers do.
pub(crate) fn node_config(
    cfg: &WorldConfig,
    service_key: &SnapshotKey,
    node: NodeId,
    host: &str,
    container: u32,
) -> NodeConfig {
    NodeConfig {
        id: node,
        profile: cfg.profile.clone(),
        hostname: cfg
            .hostnames
            .get(&node)
            .cloned()
            .unwrap_or_else(|| format!("{node}-{container:012x}")),
        host: host.to_string(),
        signing_key: service_key.clone(),
        trusted_key: service_key.public(),
    }
}
