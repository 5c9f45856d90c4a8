//! The fast engine: an event-driven world that runs the model's nodes and services
//! directly, one timed event after another.
//!
//! Simulated time jumps from event to event, so a ten-minute drill costs what its few
//! thousand events cost, not six hundred thousand ticks. Everything random (latency,
//! loss, disk timing) comes from one seeded ChaCha generator, events at the same instant
//! keep their insertion order, and maps are ordered: the same seed gives the same history.
//!
//! Fault model: messages between endpoints take `latency_min..=latency_max` (plus any
//! injected latency), and are lost, never reordered beyond that, when a cut is in place
//! at arrival or a loss fault draws them; lock-file operations on one host take
//! `0..=disk_latency_max` each, so concurrent read-modify-writes interleave; a paused
//! process's timers and messages wait until it resumes; a node's clocks run at its rate
//! error and its wall clock adds its offset.

use lifeboat_model::bootstrap::BootstrapManifest;
use lifeboat_model::fault::{Fault, Tamper};
use lifeboat_model::history::{Event, History, Role};
use lifeboat_model::ids::{Endpoint, NodeId};
use lifeboat_model::lease::{LeaseStore, LockFileDoc, Reply};
use lifeboat_model::node::{
    Clock, Dashboard, Disk, Effect, Input, Node, NodeConfig, Timer, MEMORY_FILE,
};
use lifeboat_model::profile::Profile;
use lifeboat_model::proto::{
    From, LockFileReq, LockFileResp, ReqId, Request, Response, StoreReq, StoredBundle, TgReq,
};
use lifeboat_model::snapshot::{self, SnapshotKey};
use lifeboat_model::store::SnapshotStore;
use lifeboat_model::telegram::{ApiFault, BotApi};
use lifeboat_model::time::Millis;
use lifeboat_model::v1;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};

/// The chat the operator writes from.
pub const OPERATOR_CHAT: i64 = 4242;

/// Wall-clock time at the start of every world: 2026-04-17 09:00 UTC, the morning of the
/// runbook's snapshot heads. Fixed so that snapshot ids do not depend on when a test runs.
pub const EPOCH_WALL: Millis = Millis(1_776_416_400_000);

/// Docker's restart policy: the first delay, the cap, and how long a container must run
/// before the delay resets.
pub(crate) const BACKOFF_FIRST: Millis = Millis(100);
pub(crate) const BACKOFF_MAX: Millis = Millis(60_000);
pub(crate) const BACKOFF_RESET_AFTER: Millis = Millis(10_000);
/// `docker stop` waits this long for a graceful exit, then kills.
pub(crate) const STOP_GRACE: Millis = Millis(10_000);
/// How often an injected foreign poller calls getUpdates, and its long-poll timeout.
pub(crate) const FOREIGN_POLL_EVERY: Millis = Millis(10_000);

/// How one node of a world starts out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeSetup {
    /// The node.
    pub id: NodeId,
    /// The host whose lock file it uses; nodes on one host share it.
    pub host: String,
    /// True for a blank node that must restore before it serves.
    pub blank: bool,
}

/// Everything that defines a world; with the same config, the same history.
#[derive(Clone, Debug)]
pub struct WorldConfig {
    /// Seeds every random choice.
    pub seed: u64,
    /// The protocol every node runs.
    pub profile: Profile,
    /// The nodes.
    pub nodes: Vec<NodeSetup>,
    /// Shortest one-way message latency.
    pub latency_min: Millis,
    /// Longest one-way message latency (before injected latency).
    pub latency_max: Millis,
    /// Longest lock-file operation.
    pub disk_latency_max: Millis,
}

impl WorldConfig {
    /// A world of `nodes` with the default network: 1–20 ms messages, 0–5 ms disk.
    pub fn new(seed: u64, profile: Profile, nodes: Vec<NodeSetup>) -> WorldConfig {
        WorldConfig {
            seed,
            profile,
            nodes,
            latency_min: Millis(1),
            latency_max: Millis(20),
            disk_latency_max: Millis(5),
        }
    }
}

#[derive(Clone, Debug)]
enum Ev {
    ToService {
        from: From,
        req: ReqId,
        request: Request,
    },
    ToNode {
        to: From,
        req: ReqId,
        resp: Response,
    },
    Timer {
        node: NodeId,
        inc: u32,
        timer: Timer,
        gen: u64,
    },
    Restart {
        node: NodeId,
        inc: u32,
    },
    StopTimeout {
        node: NodeId,
        inc: u32,
    },
    ServiceWake,
    ForeignPoll,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ProcState {
    /// Never started, or down on purpose (kill, stop): stays down until started.
    Down,
    /// Down and waiting for its supervisor to restart it.
    Restarting,
    Running,
    Paused,
}

#[derive(Clone, Debug)]
pub(crate) struct NodeClock {
    pub(crate) anchor_true: Millis,
    pub(crate) anchor_mono: u64,
    pub(crate) rate_ppm: i64,
    pub(crate) wall_offset: i64,
}

impl NodeClock {
    pub(crate) fn mono(&self, now: Millis) -> Millis {
        let dt = (now.0 - self.anchor_true.0) as i128;
        let scaled = dt * (1_000_000 + self.rate_ppm as i128) / 1_000_000;
        Millis(self.anchor_mono + scaled as u64)
    }
    pub(crate) fn wall(&self, now: Millis) -> Millis {
        Millis((EPOCH_WALL.0 as i64 + self.mono(now).0 as i64 + self.wall_offset).max(0) as u64)
    }
    pub(crate) fn set_rate(&mut self, now: Millis, ppm: i64) {
        self.anchor_mono = self.mono(now).0;
        self.anchor_true = now;
        self.rate_ppm = ppm;
    }
    /// True time for `local` of this clock's time to pass.
    pub(crate) fn true_delay(&self, local: Millis) -> Millis {
        let d = local.0 as i128 * 1_000_000;
        let r = (1_000_000 + self.rate_ppm) as i128;
        Millis(((d + r - 1) / r) as u64)
    }
}

#[derive(Clone, Debug)]
struct Slot {
    id: NodeId,
    host: String,
    /// The running (or paused) process; its disk lives inside it.
    proc: Option<Node>,
    /// The disk while no process runs.
    disk: Disk,
    inc: u32,
    state: ProcState,
    timers: BTreeMap<Timer, u64>,
    clock: NodeClock,
    held: Vec<Ev>,
    started_at: Millis,
    backoff: Millis,
    stopping: bool,
    container: u32,
}

#[derive(Clone, Debug, Default)]
struct LockFile {
    doc: Option<LockFileDoc>,
    corrupt: bool,
    slow: Millis,
}

/// The fast engine's world.
pub struct World {
    cfg: WorldConfig,
    now: Millis,
    seq: u64,
    gen: u64,
    queue: BinaryHeap<Reverse<(Millis, u64, usize)>>,
    /// Event payloads by slot, so the heap holds only plain ordered keys.
    payloads: Vec<Option<Ev>>,
    free: Vec<usize>,
    slots: Vec<Slot>,
    lease: LeaseStore,
    bot: BotApi,
    store: SnapshotStore,
    lockfiles: BTreeMap<String, LockFile>,
    cuts: BTreeSet<(Endpoint, Endpoint)>,
    isolated: BTreeSet<NodeId>,
    extra_latency: Millis,
    loss_percent: u8,
    store_down: bool,
    store_slow: Millis,
    foreign_poller: bool,
    wake_at: Option<Millis>,
    rng: ChaCha8Rng,
    history: History,
    service_key: SnapshotKey,
    effects: Vec<Effect>,
    events_processed: u64,
}

pub(crate) fn derive_seed(seed: u64, what: &str) -> [u8; 32] {
    let h = snapshot::sha256_hex(format!("{what}:{seed}").as_bytes());
    let mut s = [0u8; 32];
    s.copy_from_slice(&hex_bytes(&h)[..32]);
    s
}

fn hex_bytes(h: &str) -> Vec<u8> {
    (0..h.len() / 2)
        .map(|i| u8::from_str_radix(&h[2 * i..2 * i + 2], 16).expect("hex"))
        .collect()
}

impl World {
    /// Builds a world: primaries get the initial state and the chain gets its genesis
    /// snapshot; blank nodes get nothing. No process runs until [`World::start`].
    pub fn new(cfg: WorldConfig) -> World {
        assert!(!cfg.nodes.is_empty(), "a world needs at least one node");
        let service_key = SnapshotKey::from_seed(derive_seed(cfg.seed, "service-key"));
        let attacker = SnapshotKey::from_seed(derive_seed(cfg.seed, "attacker-key"));
        let mut w = World {
            now: Millis::ZERO,
            seq: 0,
            gen: 0,
            queue: BinaryHeap::new(),
            payloads: Vec::new(),
            free: Vec::new(),
            slots: Vec::new(),
            lease: LeaseStore::new(),
            bot: BotApi::new(),
            store: SnapshotStore::new(attacker),
            lockfiles: BTreeMap::new(),
            cuts: BTreeSet::new(),
            isolated: BTreeSet::new(),
            extra_latency: Millis::ZERO,
            loss_percent: 0,
            store_down: false,
            store_slow: Millis::ZERO,
            foreign_poller: false,
            wake_at: None,
            rng: ChaCha8Rng::seed_from_u64(cfg.seed),
            history: History::new(),
            service_key,
            effects: Vec::new(),
            events_processed: 0,
            cfg,
        };
        let mut genesis_done = false;
        for setup in w.cfg.nodes.clone() {
            let mut disk = if setup.blank {
                Disk::default()
            } else {
                Disk::primary()
            };
            if !setup.blank && !genesis_done {
                w.publish_genesis(&setup, &mut disk);
                genesis_done = true;
            }
            w.lockfiles.entry(setup.host.clone()).or_default();
            w.slots.push(Slot {
                id: setup.id,
                host: setup.host.clone(),
                proc: None,
                disk,
                inc: 0,
                state: ProcState::Down,
                timers: BTreeMap::new(),
                clock: NodeClock {
                    anchor_true: Millis::ZERO,
                    anchor_mono: 0,
                    rate_ppm: 0,
                    wall_offset: 0,
                },
                held: Vec::new(),
                started_at: Millis::ZERO,
                backoff: BACKOFF_FIRST,
                stopping: false,
                container: 1,
            });
        }
        w
    }

    /// The first snapshot of the chain, made from the primary's initial state.
    fn publish_genesis(&mut self, setup: &NodeSetup, disk: &mut Disk) {
        let wall = EPOCH_WALL;
        let bundle = match &self.cfg.profile {
            Profile::Fenced(p) => {
                let b = snapshot::create(
                    &self.service_key,
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
                let seed = derive_seed(self.cfg.seed, &format!("v1-key-{}", setup.host));
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
        let (_, ev) = self.store.publish(setup.id, bundle, Some(0), 0);
        self.history.push(self.now, ev);
    }

    // ------------------------------------------------------------------ accessors

    /// True simulated time.
    pub fn now(&self) -> Millis {
        self.now
    }

    /// The history so far.
    pub fn history(&self) -> &History {
        &self.history
    }

    /// Takes the history out of the world.
    pub fn into_history(self) -> History {
        self.history
    }

    /// How many events the world has processed (for speed measurements).
    pub fn events_processed(&self) -> u64 {
        self.events_processed
    }

    /// The key verifiers pin.
    pub fn trusted_key(&self) -> snapshot::TrustedKey {
        self.service_key.public()
    }

    /// The snapshot head in the store.
    pub fn snapshot_head(&self) -> Option<String> {
        self.store.head().map(str::to_string)
    }

    /// The nodes.
    pub fn nodes(&self) -> Vec<NodeId> {
        self.slots.iter().map(|s| s.id).collect()
    }

    fn slot(&self, node: NodeId) -> &Slot {
        self.slots
            .iter()
            .find(|s| s.id == node)
            .unwrap_or_else(|| panic!("node {node} is not in this world"))
    }

    fn slot_mut(&mut self, node: NodeId) -> &mut Slot {
        self.slots
            .iter_mut()
            .find(|s| s.id == node)
            .unwrap_or_else(|| panic!("node {node} is not in this world"))
    }

    /// Whether the node's process is running (not paused, not down).
    pub fn is_running(&self, node: NodeId) -> bool {
        self.slot(node).state == ProcState::Running
    }

    /// The node's disk as it is now.
    pub fn disk(&self, node: NodeId) -> &Disk {
        let s = self.slot(node);
        s.proc.as_ref().map_or(&s.disk, |p| &p.disk)
    }

    /// SHA-256 of every state file on the node's disk.
    pub fn file_hashes(&self, node: NodeId) -> BTreeMap<String, String> {
        self.disk(node)
            .files
            .iter()
            .map(|(p, b)| (p.clone(), snapshot::sha256_hex(b)))
            .collect()
    }

    /// A bootstrap manifest for the current head (the runbook's phase 0).
    pub fn bootstrap_manifest(&self) -> Option<BootstrapManifest> {
        let head = self.store.head()?;
        Some(BootstrapManifest::new(
            head,
            "sim://snapshot-store",
            "lifeboat-node:sim",
            &self.service_key.public(),
            vec!["TELEGRAM_BOT_TOKEN".into(), "SNAPSHOT_SIGNING_KEY".into()],
            self.slots[0].clock.wall(self.now),
        ))
    }

    /// Hands a blank node its bootstrap manifest (what `bootstrap --from URL` reads).
    pub fn set_bootstrap(&mut self, node: NodeId, manifest: BootstrapManifest) {
        let s = self.slot_mut(node);
        match s.proc.as_mut() {
            Some(p) => p.disk.bootstrap = Some(manifest),
            None => s.disk.bootstrap = Some(manifest),
        }
    }

    /// Reads the node's dashboard as an HTTP probe would, and records the probe. A
    /// paused or down process answers nothing.
    pub fn probe(&mut self, node: NodeId) -> Option<Dashboard> {
        let now = self.now;
        let s = self.slot(node);
        let dash = match (s.state, s.proc.as_ref()) {
            (ProcState::Running, Some(p)) => {
                let clock = Clock {
                    mono: s.clock.mono(now),
                    wall: s.clock.wall(now),
                };
                Some(p.dashboard(clock))
            }
            _ => None,
        };
        let ev = match &dash {
            Some(d) => Event::HealthProbe {
                node,
                healthz: d.healthz,
                readyz: d.readyz,
                role: d.role,
                observed_leader: d.observed_leader,
            },
            None => Event::HealthProbe {
                node,
                healthz: false,
                readyz: false,
                role: Role::Stopped,
                observed_leader: None,
            },
        };
        self.history.push(now, ev);
        dash
    }

    // ------------------------------------------------------------------ queue

    fn schedule(&mut self, at: Millis, ev: Ev) {
        let idx = match self.free.pop() {
            Some(i) => {
                self.payloads[i] = Some(ev);
                i
            }
            None => {
                self.payloads.push(Some(ev));
                self.payloads.len() - 1
            }
        };
        self.seq += 1;
        self.queue.push(Reverse((at.max(self.now), self.seq, idx)));
    }

    fn latency(&mut self) -> Millis {
        let base = self
            .rng
            .random_range(self.cfg.latency_min.0..=self.cfg.latency_max.0);
        Millis(base) + self.extra_latency
    }

    fn cut(&self, from: Endpoint, to: Endpoint) -> bool {
        let iso = |e: Endpoint| matches!(e, Endpoint::Node(n) if self.isolated.contains(&n));
        iso(from) || iso(to) || self.cuts.contains(&(from, to))
    }

    fn lost(&mut self) -> bool {
        self.loss_percent > 0 && self.rng.random_range(0..100u8) < self.loss_percent
    }

    /// Runs every event up to and including `until`, then sets the time to `until`.
    pub fn run_until(&mut self, until: Millis) {
        while let Some(Reverse((at, _, _))) = self.queue.peek() {
            if *at > until {
                break;
            }
            let Reverse((at, _, idx)) = self.queue.pop().expect("peeked");
            let ev = self.payloads[idx].take().expect("payload present");
            self.free.push(idx);
            self.now = at;
            self.events_processed += 1;
            self.dispatch(ev);
        }
        self.now = self.now.max(until);
    }

    /// Runs for `d` of simulated time.
    pub fn run_for(&mut self, d: Millis) {
        let until = self.now + d;
        self.run_until(until);
    }

    fn dispatch(&mut self, ev: Ev) {
        match ev {
            Ev::ToService { from, req, request } => self.at_service(from, req, request),
            Ev::ToNode { to, req, resp } => {
                let s = self.slot(to.node);
                if s.inc != to.incarnation || s.proc.is_none() {
                    return; // the connection died with that process
                }
                let service = match &resp {
                    Response::Lease(_) => Some(Endpoint::LeaseStore),
                    Response::Telegram(_) => Some(Endpoint::Telegram),
                    Response::Store(_) => Some(Endpoint::SnapshotStore),
                    _ => None,
                };
                if service.is_some_and(|e| self.cut(e, Endpoint::Node(to.node))) {
                    return;
                }
                self.deliver(
                    to.node,
                    Input::Response { req, resp },
                    Ev::ToNode {
                        to,
                        req,
                        resp: Response::Failed(String::new()),
                    },
                );
            }
            Ev::Timer {
                node,
                inc,
                timer,
                gen,
            } => {
                let s = self.slot(node);
                if s.inc != inc || s.timers.get(&timer) != Some(&gen) {
                    return;
                }
                self.slot_mut(node).timers.remove(&timer);
                self.deliver(
                    node,
                    Input::Timer(timer),
                    Ev::Timer {
                        node,
                        inc,
                        timer,
                        gen,
                    },
                );
            }
            Ev::Restart { node, inc } => {
                let s = self.slot(node);
                if s.inc == inc && s.state == ProcState::Restarting {
                    self.start(node);
                }
            }
            Ev::StopTimeout { node, inc } => {
                let s = self.slot(node);
                if s.inc == inc && s.proc.is_some() {
                    self.end_process(node, None, "kill after stop timeout", false);
                }
            }
            Ev::ServiceWake => {
                self.wake_at = None;
                let mut replies = Vec::new();
                let mut events = Vec::new();
                self.lease.advance(self.now, &mut replies, &mut events);
                self.bot.advance(self.now, &mut replies, &mut events);
                self.finish_service(replies, events);
            }
            Ev::ForeignPoll => {
                if self.foreign_poller {
                    let mut replies = Vec::new();
                    let mut events = Vec::new();
                    self.bot.get_updates(
                        self.now,
                        None,
                        0,
                        None,
                        Millis::secs(30),
                        &mut replies,
                        &mut events,
                    );
                    self.finish_service(replies, events);
                    self.schedule(self.now + FOREIGN_POLL_EVERY, Ev::ForeignPoll);
                }
            }
        }
    }

    /// Delivers an input to a node, or holds it while the node is paused. `held` is the
    /// event to re-queue on resume (for a response it carries the real payload below).
    fn deliver(&mut self, node: NodeId, input: Input, held: Ev) {
        let state = self.slot(node).state;
        match state {
            ProcState::Running => self.step_node(node, input),
            ProcState::Paused => {
                let ev = match (held, input) {
                    (Ev::ToNode { to, req, .. }, Input::Response { resp, .. }) => {
                        Ev::ToNode { to, req, resp }
                    }
                    (ev, _) => ev,
                };
                self.slot_mut(node).held.push(ev);
            }
            _ => {}
        }
    }

    fn step_node(&mut self, node: NodeId, input: Input) {
        let now = self.now;
        let mut effects = std::mem::take(&mut self.effects);
        effects.clear();
        {
            let s = self.slot_mut(node);
            let clock = Clock {
                mono: s.clock.mono(now),
                wall: s.clock.wall(now),
            };
            let Some(p) = s.proc.as_mut() else { return };
            p.step(clock, input, &mut effects);
        }
        for e in effects.drain(..) {
            self.apply(node, e);
        }
        self.effects = effects;
    }

    fn apply(&mut self, node: NodeId, effect: Effect) {
        let now = self.now;
        match effect {
            Effect::Send { req, request } => {
                let from = From {
                    node,
                    incarnation: self.slot(node).inc,
                };
                let at = match request.service() {
                    lifeboat_model::proto::Service::LocalDisk => {
                        let host = self.slot(node).host.clone();
                        let slow = self.lockfiles.get(&host).map_or(Millis::ZERO, |l| l.slow);
                        let d = self.rng.random_range(0..=self.cfg.disk_latency_max.0);
                        now + Millis(d) + slow
                    }
                    _ => {
                        if self.lost() {
                            return;
                        }
                        let mut at = now + self.latency();
                        if matches!(request, Request::Store(_)) {
                            at = at + self.store_slow;
                        }
                        at
                    }
                };
                self.schedule(at, Ev::ToService { from, req, request });
            }
            Effect::SetTimer { timer, after } => {
                self.gen += 1;
                let gen = self.gen;
                let s = self.slot_mut(node);
                s.timers.insert(timer, gen);
                let inc = s.inc;
                let at = now + s.clock.true_delay(after);
                self.schedule(
                    at,
                    Ev::Timer {
                        node,
                        inc,
                        timer,
                        gen,
                    },
                );
            }
            Effect::CancelTimer(timer) => {
                self.slot_mut(node).timers.remove(&timer);
            }
            Effect::Emit(ev) => self.history.push(now, ev),
            Effect::Exit { code } => {
                let stopping = self.slot(node).stopping;
                self.end_process(node, Some(code), "exit", !stopping);
            }
        }
    }

    // ------------------------------------------------------------------ services

    fn at_service(&mut self, from: From, req: ReqId, request: Request) {
        let now = self.now;
        let service = match &request {
            Request::Lease(_) => Some(Endpoint::LeaseStore),
            Request::Telegram(_) => Some(Endpoint::Telegram),
            Request::Store(_) => Some(Endpoint::SnapshotStore),
            Request::LockFile(_) => None,
        };
        if let Some(svc) = service {
            if self.cut(Endpoint::Node(from.node), svc) {
                return;
            }
        }
        let mut replies = Vec::new();
        let mut events = Vec::new();
        match request {
            Request::Lease(r) => self
                .lease
                .handle(now, from, req, r, &mut replies, &mut events),
            Request::Telegram(TgReq::GetUpdates { offset, timeout }) => {
                self.bot.get_updates(
                    now,
                    Some(from),
                    req,
                    offset,
                    timeout,
                    &mut replies,
                    &mut events,
                );
                // Sent just before its process died: the data arrives, then the FIN,
                // which ends the poll at once.
                let s = self.slot(from.node);
                if s.inc != from.incarnation || s.proc.is_none() {
                    self.bot.disconnect_from(from, &mut events);
                }
            }
            Request::Telegram(TgReq::SendMessage {
                reply_to, token, ..
            }) => self
                .bot
                .send_message(from, req, reply_to, token, &mut replies, &mut events),
            Request::Store(r) => {
                if self.store_down {
                    return;
                }
                let (resp, ev) = match r {
                    StoreReq::Publish { bundle, token } => {
                        let sv = state_version_of(&bundle);
                        self.store.publish(from.node, bundle, token, sv)
                    }
                    StoreReq::Fetch { id } => {
                        let wall = self.slots[0].clock.wall(now);
                        self.store.fetch(from.node, id.as_deref(), wall)
                    }
                };
                events.push(ev);
                replies.push(Reply {
                    to: from,
                    req,
                    resp: Response::Store(resp),
                });
            }
            Request::LockFile(op) => {
                let host = self.slot(from.node).host.clone();
                let lf = self.lockfiles.entry(host.clone()).or_default();
                let resp = match op {
                    LockFileReq::Read => {
                        let doc = if lf.corrupt { None } else { lf.doc.clone() };
                        let entry = doc
                            .as_ref()
                            .and_then(|d| d.entry("leader-heartbeat").cloned());
                        events.push(Event::LockFileRead {
                            node: from.node,
                            host,
                            holder: entry.as_ref().map(|e| e.instance_id.clone()),
                            last_seen_at: entry.map(|e| e.last_seen_at),
                            readable: !lf.corrupt,
                        });
                        LockFileResp::Contents(doc)
                    }
                    LockFileReq::Write(doc) => {
                        events.push(Event::LockFileWritten {
                            node: from.node,
                            host,
                            holder: doc.entry("leader-heartbeat").map(|e| e.instance_id.clone()),
                            op: "rename".into(),
                        });
                        lf.doc = Some(doc);
                        lf.corrupt = false;
                        LockFileResp::Written
                    }
                };
                // The disk answers at once: the latency was taken on the way in.
                self.history_extend(events);
                let s = self.slot(from.node);
                if s.inc == from.incarnation && s.proc.is_some() {
                    self.deliver(
                        from.node,
                        Input::Response {
                            req,
                            resp: Response::LockFile(resp.clone()),
                        },
                        Ev::ToNode {
                            to: from,
                            req,
                            resp: Response::LockFile(resp),
                        },
                    );
                }
                return;
            }
        }
        self.finish_service(replies, events);
    }

    fn history_extend(&mut self, events: Vec<Event>) {
        for e in events {
            self.history.push(self.now, e);
        }
    }

    /// Sends service replies back over the network and arms the next service wake-up.
    fn finish_service(&mut self, replies: Vec<Reply>, events: Vec<Event>) {
        self.history_extend(events);
        for r in replies {
            if self.lost() {
                continue;
            }
            let mut at = self.now + self.latency();
            if matches!(r.resp, Response::Store(_)) {
                at = at + self.store_slow;
            }
            self.schedule(
                at,
                Ev::ToNode {
                    to: r.to,
                    req: r.req,
                    resp: r.resp,
                },
            );
        }
        let next = match (self.lease.next_deadline(), self.bot.next_deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if let Some(t) = next {
            if self.wake_at.is_none_or(|w| t < w || w < self.now) {
                self.wake_at = Some(t);
                self.schedule(t, Ev::ServiceWake);
            }
        }
    }

    // ------------------------------------------------------------------ processes

    /// Starts (or restarts) a node's process over its disk.
    pub fn start(&mut self, node: NodeId) {
        let now = self.now;
        let profile = self.cfg.profile.clone();
        let trusted = self.service_key.public();
        let key = self.service_key.clone();
        let s = self.slot_mut(node);
        if s.proc.is_some() {
            return;
        }
        s.inc += 1;
        s.state = ProcState::Running;
        s.stopping = false;
        s.started_at = now;
        s.timers.clear();
        s.held.clear();
        let disk = std::mem::take(&mut s.disk);
        let cfg = NodeConfig {
            id: node,
            profile,
            hostname: format!("{}-{:012x}", s.host, s.container),
            host: s.host.clone(),
            signing_key: key,
            trusted_key: trusted,
        };
        s.proc = Some(Node::new(cfg, disk));
        let inc = s.inc;
        self.history.push(
            now,
            Event::ProcessStarted {
                node,
                incarnation: inc,
            },
        );
        self.step_node(node, Input::Start);
    }

    fn end_process(&mut self, node: NodeId, code: Option<i32>, how: &str, restart: bool) {
        let now = self.now;
        let s = self.slot_mut(node);
        let Some(p) = s.proc.take() else { return };
        s.disk = p.disk;
        s.timers.clear();
        s.held.clear();
        let from = From {
            node,
            incarnation: s.inc,
        };
        let ran = now.saturating_sub(s.started_at);
        if ran >= BACKOFF_RESET_AFTER {
            s.backoff = BACKOFF_FIRST;
        }
        let delay = s.backoff;
        s.state = if restart {
            s.backoff = (s.backoff * 2).min(BACKOFF_MAX);
            ProcState::Restarting
        } else {
            ProcState::Down
        };
        let inc = s.inc;
        self.history.push(
            now,
            Event::ProcessExited {
                node,
                code,
                how: how.to_string(),
            },
        );
        let mut events = Vec::new();
        self.bot.disconnect(node, &mut events);
        self.lease.disconnect(from);
        self.history_extend(events);
        if restart {
            self.schedule(now + delay, Ev::Restart { node, inc });
        }
    }

    // ------------------------------------------------------------------ operator

    /// The operator sends the bot a chat message; returns its update id.
    pub fn send_chat(&mut self, text: &str) -> i64 {
        let mut replies = Vec::new();
        let mut events = Vec::new();
        let id = self
            .bot
            .user_message(OPERATOR_CHAT, text, &mut replies, &mut events);
        self.finish_service(replies, events);
        id
    }

    /// Whether some node has answered this update.
    pub fn answered_by(&self, update_id: i64) -> Option<NodeId> {
        self.history
            .entries
            .iter()
            .rev()
            .find_map(|e| match &e.event {
                Event::ChatReplied {
                    update_id: u, node, ..
                } if *u == update_id => Some(*node),
                _ => None,
            })
    }

    // ------------------------------------------------------------------ faults

    /// Injects a fault now.
    pub fn inject(&mut self, fault: &Fault) {
        let now = self.now;
        self.history.push(now, Event::Fault(fault.info()));
        match fault {
            Fault::Kill { node } => self.end_process(*node, None, "kill", false),
            Fault::Crash { node } => self.end_process(*node, None, "crash", true),
            Fault::Stop { node } => {
                let s = self.slot_mut(*node);
                if s.proc.is_some() {
                    s.stopping = true;
                    let inc = s.inc;
                    if s.state == ProcState::Paused {
                        // A frozen process cannot handle SIGTERM; docker stop kills it.
                        self.end_process(*node, None, "kill after stop timeout", false);
                    } else {
                        self.schedule(now + STOP_GRACE, Ev::StopTimeout { node: *node, inc });
                        self.step_node(*node, Input::Stop);
                    }
                }
            }
            Fault::Pause { node } => {
                let s = self.slot_mut(*node);
                if s.state == ProcState::Running {
                    s.state = ProcState::Paused;
                    self.history.push(now, Event::Paused { node: *node });
                }
            }
            Fault::Partition { a, b } => {
                self.cuts.insert((*a, *b));
                self.cuts.insert((*b, *a));
            }
            Fault::PartitionOneway { from, to } => {
                self.cuts.insert((*from, *to));
            }
            Fault::Isolate { node } => {
                self.isolated.insert(*node);
            }
            Fault::ClockOffset { node, ms } | Fault::ClockStep { node, ms } => {
                self.slot_mut(*node).clock.wall_offset += ms;
            }
            Fault::ClockRate { node, ppm } => {
                self.slot_mut(*node).clock.set_rate(now, *ppm);
            }
            Fault::Latency { extra } => self.extra_latency = *extra,
            Fault::Loss { percent } => self.loss_percent = (*percent).min(100),
            Fault::StoreDown => self.store_down = true,
            Fault::StoreSlow { extra } => self.store_slow = *extra,
            Fault::StoreTamper { tamper } => self.store.set_tamper(Some(*tamper)),
            Fault::TelegramErrors { code } => {
                self.bot.set_fault(Some(ApiFault::Errors { code: *code }))
            }
            Fault::ForeignPoller => {
                if !self.foreign_poller {
                    self.foreign_poller = true;
                    self.schedule(now, Ev::ForeignPoll);
                }
            }
            Fault::LockFileCorrupt { host } => {
                self.lockfiles.entry(host.clone()).or_default().corrupt = true;
            }
            Fault::DiskSlow { host, extra } => {
                self.lockfiles.entry(host.clone()).or_default().slow = *extra;
            }
        }
    }

    /// Heals a fault now: restarts what was killed or stopped, resumes what was paused,
    /// repairs cuts, undoes clock changes, clears service faults.
    pub fn heal(&mut self, fault: &Fault) {
        let now = self.now;
        self.history.push(now, Event::Heal(fault.info()));
        match fault {
            Fault::Kill { node } | Fault::Stop { node } => {
                if self.slot(*node).proc.is_none() {
                    self.start(*node);
                }
            }
            Fault::Crash { .. } => {}
            Fault::Pause { node } => {
                let s = self.slot_mut(*node);
                if s.state == ProcState::Paused {
                    s.state = ProcState::Running;
                    let held = std::mem::take(&mut s.held);
                    self.history.push(now, Event::Resumed { node: *node });
                    for ev in held {
                        self.dispatch_held(*node, ev);
                    }
                }
            }
            Fault::Partition { a, b } => {
                self.cuts.remove(&(*a, *b));
                self.cuts.remove(&(*b, *a));
            }
            Fault::PartitionOneway { from, to } => {
                self.cuts.remove(&(*from, *to));
            }
            Fault::Isolate { node } => {
                self.isolated.remove(node);
            }
            Fault::ClockOffset { node, ms } | Fault::ClockStep { node, ms } => {
                self.slot_mut(*node).clock.wall_offset -= ms;
            }
            Fault::ClockRate { node, .. } => self.slot_mut(*node).clock.set_rate(now, 0),
            Fault::Latency { .. } => self.extra_latency = Millis::ZERO,
            Fault::Loss { .. } => self.loss_percent = 0,
            Fault::StoreDown => self.store_down = false,
            Fault::StoreSlow { .. } => self.store_slow = Millis::ZERO,
            Fault::StoreTamper { .. } => self.store.set_tamper(None),
            Fault::TelegramErrors { .. } => self.bot.set_fault(None),
            Fault::ForeignPoller => self.foreign_poller = false,
            Fault::LockFileCorrupt { .. } => {}
            Fault::DiskSlow { host, .. } => {
                self.lockfiles.entry(host.clone()).or_default().slow = Millis::ZERO;
            }
        }
    }

    fn dispatch_held(&mut self, node: NodeId, ev: Ev) {
        match ev {
            Ev::ToNode { to, req, resp } => {
                if self.slot(node).inc == to.incarnation {
                    self.step_node(node, Input::Response { req, resp });
                }
            }
            Ev::Timer { timer, inc, .. } => {
                if self.slot(node).inc == inc {
                    self.step_node(node, Input::Timer(timer));
                }
            }
            other => self.dispatch(other),
        }
    }

    /// The node's role as its process reports it (stopped when down).
    pub fn role(&self, node: NodeId) -> Role {
        self.slot(node)
            .proc
            .as_ref()
            .map_or(Role::Stopped, |p| p.role())
    }
}

pub(crate) fn state_version_of(bundle: &StoredBundle) -> u64 {
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

#[allow(dead_code)]
fn _tamper_kinds_are_covered(t: Tamper) -> Tamper {
    t
}
