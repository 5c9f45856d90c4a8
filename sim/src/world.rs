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

use crate::shared::{
    bootstrap_manifest, derive_seed, file_hashes, new_store, node_config, probe_event,
    publish_genesis, stamp_sent, store_request, Conditions, Replies, RestartBackoff,
};
use lifeboat_model::bootstrap::BootstrapManifest;
use lifeboat_model::fault::Fault;
use lifeboat_model::history::{Event, History, Role};
use lifeboat_model::ids::{Endpoint, NodeId};
use lifeboat_model::lease::{LeaseStore, Reply};
use lifeboat_model::node::{Clock, Dashboard, Disk, Effect, Input, Node, Timer};
use lifeboat_model::profile::Profile;
use lifeboat_model::proto::{From, ReqId, Request, Response, TgReq};
use lifeboat_model::snapshot::{self, SnapshotKey};
use lifeboat_model::store::SnapshotStore;
use lifeboat_model::telegram::BotApi;
use lifeboat_model::time::Millis;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

/// The chat the operator writes from.
pub const OPERATOR_CHAT: i64 = 4242;

/// Wall-clock time at the start of every world: 2026-04-17 09:00 UTC, the morning of the
/// runbook's snapshot heads. Fixed so that snapshot ids do not depend on when a test runs.
pub const EPOCH_WALL: Millis = Millis(1_776_416_400_000);

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
    /// Hostnames the scenario gives nodes; a node not named has its own (see
    /// `shared::node_config`).
    pub hostnames: BTreeMap<NodeId, String>,
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
            hostnames: BTreeMap::new(),
        }
    }
}

#[derive(Clone, Debug)]
enum Ev {
    ToService {
        from: From,
        req: ReqId,
        request: Request,
        /// When the node sent it.
        sent: Millis,
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
        let dt = now.0.saturating_sub(self.anchor_true.0) as i128;
        // `set_rate` keeps the rate within ±MAX_CLOCK_PPM, so the factor is positive and
        // the product fits easily; the clamp is belt and braces, never a wrap.
        let scaled = dt * (1_000_000 + self.rate_ppm as i128) / 1_000_000;
        let mono = self.anchor_mono as i128 + scaled.max(0);
        Millis(mono.clamp(0, u64::MAX as i128) as u64)
    }
    pub(crate) fn wall(&self, now: Millis) -> Millis {
        let wall = EPOCH_WALL.0 as i128 + self.mono(now).0 as i128 + self.wall_offset as i128;
        Millis(wall.clamp(0, u64::MAX as i128) as u64)
    }
    /// Sets the rate error from `now` on; refuses a rate outside
    /// ±[`MAX_CLOCK_PPM`](lifeboat_model::limits::MAX_CLOCK_PPM) (at -1,000,000 ppm a
    /// clock stops and its timers would never fire).
    pub(crate) fn set_rate(&mut self, now: Millis, ppm: i64) -> Result<(), String> {
        let max = lifeboat_model::limits::MAX_CLOCK_PPM;
        if ppm.unsigned_abs() > max as u64 {
            return Err(format!("clock-rate ppm = {ppm}: expected -{max} to {max}"));
        }
        self.anchor_mono = self.mono(now).0;
        self.anchor_true = now;
        self.rate_ppm = ppm;
        Ok(())
    }
    /// Moves the wall clock by `ms` (an offset or a step, or its undoing); an offset
    /// that would overflow is an error, never a wrap.
    pub(crate) fn shift_wall(&mut self, ms: i64) -> Result<(), String> {
        self.wall_offset = self
            .wall_offset
            .checked_add(ms)
            .ok_or_else(|| format!("wall clock offset {} + {ms} ms overflows", self.wall_offset))?;
        Ok(())
    }
    /// True time for `local` of this clock's time to pass.
    pub(crate) fn true_delay(&self, local: Millis) -> Millis {
        let d = local.0 as i128 * 1_000_000;
        let r = (1_000_000 + self.rate_ppm) as i128;
        Millis(((d + r - 1) / r).clamp(0, u64::MAX as i128) as u64)
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
    backoff: RestartBackoff,
    stopping: bool,
    container: u32,
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
    cond: Conditions,
    /// Service wake-ups in the queue, by time, with how many are due then. A new wake is
    /// queued only when it is earlier than every queued one: a later one would find the
    /// services already advanced by the earlier, which queues the next itself. (Resetting
    /// a single "pending wake" on every wake, stale ones included, let duplicate chains
    /// pile up, and simulated time cost time quadratic in its length.)
    wakes: BTreeMap<Millis, u32>,
    rng: ChaCha8Rng,
    history: History,
    /// Who answered which update, kept up with the history.
    replies: RefCell<Replies>,
    service_key: SnapshotKey,
    effects: Vec<Effect>,
    events_processed: u64,
    /// The run stops processing events once this many were processed (a bound for runs
    /// of untrusted scenarios; `u64::MAX` by default).
    event_budget: u64,
}

impl World {
    /// Builds a world: primaries get the initial state and the chain gets its genesis
    /// snapshot; blank nodes get nothing. No process runs until [`World::start`].
    pub fn new(cfg: WorldConfig) -> World {
        assert!(!cfg.nodes.is_empty(), "a world needs at least one node");
        // Followers re-verify the same head all drill long; see the function's doc.
        lifeboat_model::snapshot::memoize_signature_checks();
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
            store: new_store(&cfg, attacker),
            cond: Conditions::default(),
            wakes: BTreeMap::new(),
            rng: ChaCha8Rng::seed_from_u64(cfg.seed),
            history: History::new(),
            replies: RefCell::default(),
            service_key,
            effects: Vec::new(),
            events_processed: 0,
            event_budget: u64::MAX,
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
                let events =
                    publish_genesis(&w.cfg, &w.service_key, &mut w.store, &setup, &mut disk);
                for ev in events {
                    w.history.push(w.now, ev);
                }
                genesis_done = true;
            }
            w.cond.lockfiles.entry(setup.host.clone()).or_default();
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
                backoff: RestartBackoff::default(),
                stopping: false,
                container: 1,
            });
        }
        w
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
        file_hashes(self.disk(node))
    }

    /// A bootstrap manifest for the current head (the runbook's phase 0).
    pub fn bootstrap_manifest(&self) -> Option<BootstrapManifest> {
        bootstrap_manifest(
            &self.store,
            &self.service_key,
            self.slots[0].clock.wall(self.now),
        )
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
        self.history.push(now, probe_event(node, dash.as_ref()));
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
        self.cond.latency(&mut self.rng, &self.cfg)
    }

    fn lost(&mut self) -> bool {
        self.cond.lost(&mut self.rng)
    }

    /// Stops the world after `events` processed events: [`World::run_until`] returns
    /// early from then on and [`World::budget_exhausted`] says so.
    pub fn set_event_budget(&mut self, events: u64) {
        self.event_budget = events;
    }

    /// Whether the event budget ran out (the world stopped short of the time asked for).
    pub fn budget_exhausted(&self) -> bool {
        self.events_processed >= self.event_budget
    }

    /// Runs every event up to and including `until`, then sets the time to `until`, or
    /// stops where the event budget runs out.
    pub fn run_until(&mut self, until: Millis) {
        while let Some(Reverse((at, _, _))) = self.queue.peek() {
            if *at > until {
                break;
            }
            if self.budget_exhausted() {
                return;
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
            Ev::ToService {
                from,
                req,
                request,
                sent,
            } => self.at_service(from, req, request, sent),
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
                if service.is_some_and(|e| self.cond.cut(e, Endpoint::Node(to.node))) {
                    return;
                }
                self.deliver(to.node, Ev::ToNode { to, req, resp });
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
                if s.state == ProcState::Running {
                    self.slot_mut(node).timers.remove(&timer);
                }
                // A paused process's timer stays armed while it waits: handling what came
                // before it on resume may still cancel or re-arm it (see `dispatch_held`).
                self.deliver(
                    node,
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
                    // Started again meanwhile (the stop healed): it restarts once killed.
                    let restart = !s.stopping;
                    self.end_process(node, None, "kill after stop timeout", restart);
                }
            }
            Ev::ServiceWake => {
                let now = self.now;
                if let Some(due) = self.wakes.get_mut(&now) {
                    *due -= 1;
                    if *due == 0 {
                        self.wakes.remove(&now);
                    }
                }
                let mut replies = Vec::new();
                let mut events = Vec::new();
                self.lease.advance(self.now, &mut replies, &mut events);
                self.bot.advance(self.now, &mut replies, &mut events);
                self.finish_service(replies, events);
            }
            Ev::ForeignPoll => {
                if self.cond.foreign_poller {
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

    /// Hands a node a response or a timer, or holds it while the node is paused.
    fn deliver(&mut self, node: NodeId, ev: Ev) {
        match self.slot(node).state {
            ProcState::Running => match ev {
                Ev::ToNode { req, resp, .. } => self.step_node(node, Input::Response { req, resp }),
                Ev::Timer { timer, .. } => self.step_node(node, Input::Timer(timer)),
                other => unreachable!("only responses and timers reach a node: {other:?}"),
            },
            ProcState::Paused => self.slot_mut(node).held.push(ev),
            ProcState::Down | ProcState::Restarting => {}
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
                        let slow = self.cond.disk_slow(&self.slot(node).host);
                        let d = self.rng.random_range(0..=self.cfg.disk_latency_max.0);
                        now + Millis(d) + slow
                    }
                    _ => {
                        if self.lost() {
                            return;
                        }
                        let mut at = now + self.latency();
                        if matches!(request, Request::Store(_)) {
                            at = at + self.cond.store_slow;
                        }
                        at
                    }
                };
                self.schedule(
                    at,
                    Ev::ToService {
                        from,
                        req,
                        request,
                        sent: now,
                    },
                );
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

    fn at_service(&mut self, from: From, req: ReqId, request: Request, sent: Millis) {
        let now = self.now;
        let service = match &request {
            Request::Lease(_) => Some(Endpoint::LeaseStore),
            Request::Telegram(_) => Some(Endpoint::Telegram),
            Request::Store(_) => Some(Endpoint::SnapshotStore),
            Request::LockFile(_) => None,
        };
        if let Some(svc) = service {
            if self.cond.cut(Endpoint::Node(from.node), svc) {
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
            }) => {
                self.bot
                    .send_message(from, req, reply_to, token, &mut replies, &mut events);
                stamp_sent(&mut events, sent);
            }
            Request::Store(r) => {
                if self.cond.store_down {
                    return;
                }
                let wall = self.slots[0].clock.wall(now);
                let granted = self.lease.newest_token();
                let (resp, evs) = store_request(&mut self.store, from.node, r, wall, granted);
                events.extend(evs);
                replies.push(Reply {
                    to: from,
                    req,
                    resp: Response::Store(resp),
                });
            }
            Request::LockFile(op) => {
                let host = self.slot(from.node).host.clone();
                let (resp, ev) = self.cond.lock_file_op(from.node, &host, op);
                // The disk answers at once: the latency was taken on the way in.
                self.history.push(now, ev);
                let s = self.slot(from.node);
                if s.inc == from.incarnation && s.proc.is_some() {
                    let resp = Response::LockFile(resp);
                    self.deliver(
                        from.node,
                        Ev::ToNode {
                            to: from,
                            req,
                            resp,
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
                at = at + self.cond.store_slow;
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
            let t = t.max(self.now);
            if self.wakes.keys().next().is_none_or(|w| t < *w) {
                *self.wakes.entry(t).or_default() += 1;
                self.schedule(t, Ev::ServiceWake);
            }
        }
    }

    // ------------------------------------------------------------------ processes

    /// Starts (or restarts) a node's process over its disk.
    pub fn start(&mut self, node: NodeId) {
        let now = self.now;
        let s = self.slot(node);
        let cfg = node_config(&self.cfg, &self.service_key, node, &s.host, s.container);
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
        let delay = s.backoff.on_exit(now.saturating_sub(s.started_at), restart);
        s.state = if restart {
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
        self.replies
            .borrow_mut()
            .answered_by(&self.history, update_id)
    }

    // ------------------------------------------------------------------ faults

    /// Injects a fault now. A clock fault that would stop, reverse or overflow a clock
    /// is refused before it changes anything.
    pub fn inject(&mut self, fault: &Fault) -> Result<(), String> {
        lifeboat_model::limits::check_fault(fault).map_err(|(_, message)| message)?;
        let now = self.now;
        self.history.push(now, Event::Fault(fault.clone()));
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
            Fault::ClockOffset { node, ms } | Fault::ClockStep { node, ms } => {
                self.slot_mut(*node).clock.shift_wall(*ms)?;
            }
            Fault::ClockRate { node, ppm } => {
                self.slot_mut(*node).clock.set_rate(now, *ppm)?;
            }
            other => {
                let poller_was = self.cond.foreign_poller;
                self.cond.set(other, true, &mut self.store, &mut self.bot);
                if self.cond.foreign_poller && !poller_was {
                    self.schedule(now, Ev::ForeignPoll);
                }
            }
        }
        Ok(())
    }

    /// Heals a fault now: restarts what was killed or stopped, resumes what was paused,
    /// repairs cuts, undoes clock changes, clears service faults.
    pub fn heal(&mut self, fault: &Fault) -> Result<(), String> {
        let now = self.now;
        self.history.push(now, Event::Heal(fault.clone()));
        match fault {
            Fault::Kill { node } | Fault::Stop { node } => {
                if self.slot(*node).proc.is_none() {
                    self.start(*node);
                } else {
                    // Still shutting down gracefully (`docker stop` has not returned):
                    // it starts again once it has exited.
                    self.slot_mut(*node).stopping = false;
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
            Fault::ClockOffset { node, ms } | Fault::ClockStep { node, ms } => {
                let back = ms
                    .checked_neg()
                    .ok_or("clock offset i64::MIN cannot be undone")?;
                self.slot_mut(*node).clock.shift_wall(back)?;
            }
            Fault::ClockRate { node, .. } => self.slot_mut(*node).clock.set_rate(now, 0)?,
            other => self.cond.set(other, false, &mut self.store, &mut self.bot),
        }
        Ok(())
    }

    /// Delivers what waited while a node was paused, unless it was for an earlier life,
    /// or is a timer that what was delivered before it cancelled or re-armed (a resumed
    /// process runs its due timers, but not one it has just disarmed).
    fn dispatch_held(&mut self, node: NodeId, ev: Ev) {
        let s = self.slot(node);
        match &ev {
            Ev::ToNode { to, .. } if s.inc == to.incarnation => self.deliver(node, ev),
            Ev::ToNode { .. } => {}
            Ev::Timer {
                inc, timer, gen, ..
            } if s.inc == *inc && s.timers.get(timer) == Some(gen) => {
                self.slot_mut(node).timers.remove(timer);
                self.deliver(node, ev);
            }
            Ev::Timer { .. } => {}
            other => unreachable!("only responses and timers are held: {other:?}"),
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

#[cfg(test)]
mod tests {
    use super::*;
    use lifeboat_model::profile::ProfileName;

    /// A paused process's timers that came due fire when it resumes, but one that what it
    /// handled first on resume cancelled must not: here a follower's sync timer, held
    /// through a pause, is cancelled before its turn (as a held step-down cancels a held
    /// renewal), and the follower must not fetch.
    #[test]
    fn a_held_timer_cancelled_before_its_turn_does_not_fire_on_resume() {
        let a = NodeId(0);
        let b = NodeId(1);
        let nodes = vec![
            NodeSetup {
                id: a,
                host: "a".into(),
                blank: false,
            },
            NodeSetup {
                id: b,
                host: "b".into(),
                blank: false,
            },
        ];
        let served_to_b = |w: &World| {
            w.history()
                .iter()
                .filter(|e| matches!(&e.event, Event::SnapshotServed { node, .. } if *node == b))
                .count()
        };
        for cancelled in [false, true] {
            let profile = Profile::default_for(ProfileName::Fenced);
            let mut w = World::new(WorldConfig::new(3, profile, nodes.clone()));
            w.start(a);
            w.run_for(Millis::secs(2));
            w.start(b);
            w.run_for(Millis::secs(5));
            assert_eq!(w.role(b), Role::Follower);
            // Re-arm b's sync to come due during a pause.
            w.apply(
                b,
                Effect::SetTimer {
                    timer: Timer::Sync,
                    after: Millis(10),
                },
            );
            w.inject(&Fault::Pause { node: b }).unwrap();
            w.run_for(Millis(100));
            assert!(
                w.slot(b).held.iter().any(|e| matches!(
                    e,
                    Ev::Timer {
                        timer: Timer::Sync,
                        ..
                    }
                )),
                "the sync fired while frozen"
            );
            if cancelled {
                w.apply(b, Effect::CancelTimer(Timer::Sync));
            }
            let before = served_to_b(&w);
            w.heal(&Fault::Pause { node: b }).unwrap();
            w.run_for(Millis::secs(1));
            let fetched = served_to_b(&w) > before;
            assert_eq!(
                fetched, !cancelled,
                "cancelled before resume: {cancelled}; fetched on resume: {fetched}"
            );
        }
    }

    /// A fenced leader stopped just after sending a poll hands its lease back only once
    /// that poll has surely reached Telegram, so it is still shutting down when a short
    /// stop heals: it must start again once it has exited, as `docker start` after the
    /// `docker stop` returns would.
    #[test]
    fn a_stop_healed_while_still_stopping_starts_the_node_again_once_it_exits() {
        let a = NodeId(0);
        let nodes = vec![NodeSetup {
            id: a,
            host: "a".into(),
            blank: false,
        }];
        let profile = Profile::default_for(ProfileName::Fenced);
        let mut w = World::new(WorldConfig::new(5, profile, nodes));
        w.start(a);
        w.run_for(Millis::secs(8));
        let polls = |w: &World| {
            w.history()
                .iter()
                .filter(|e| matches!(&e.event, Event::PollStarted { .. }))
                .count()
        };
        let seen = polls(&w);
        while polls(&w) == seen {
            w.run_for(Millis(1));
        }
        let stop = Fault::Stop { node: a };
        w.inject(&stop).unwrap();
        assert_eq!(w.role(a), Role::Stopped);
        assert!(w.slot(a).proc.is_some(), "waits for its poll to arrive");
        w.run_for(Millis(100));
        w.heal(&stop).unwrap();
        w.run_for(Millis::secs(5));
        let started = w
            .history()
            .iter()
            .filter(|e| matches!(&e.event, Event::ProcessStarted { node, .. } if *node == a))
            .count();
        assert_eq!(started, 2, "{}", w.history().to_jsonl());
        assert!(w.is_running(a));
    }
}
