//! The turmoil engine: the same world as [`crate::world`], run as a full stack of
//! simulated hosts talking TCP, so that the fast engine's shortcuts can be cross-checked.
//!
//! Why it exists: the fast engine carries a node's requests as events and calls the
//! services' state machines directly. Here every service is its own turmoil host
//! (`lease-store`, `telegram`, `snapshot-store`) serving the model's pure
//! [`LeaseStore`], [`BotApi`] and [`SnapshotStore`] over turmoil TCP, and every node is
//! its own host (`node-a`, `node-b`, …) whose tokio task owns the model [`Node`]: it turns
//! effects into framed requests (one connection per service, reconnect on failure), arms
//! timers on the host's clock and feeds answers and timers back as inputs. Frames are a
//! big-endian `u32` length followed by the serde_json of `{from, req, request}` or
//! `{to, req, resp}`. [`TurmoilWorld`] has the same methods as
//! [`World`](crate::world::World), so a caller can swap one engine for the other.
//!
//! Fault model (the fast engine's, carried out on a real-ish network):
//! - Messages take `latency_min..=latency_max` plus any injected latency, drawn per
//!   message by the sender from the world's one ChaCha generator and held in the
//!   sending connection's outbox; a loss fault drops a message at the sender with the
//!   same percentage. Turmoil's own link latency is zero, so a frame reaches its peer
//!   within one tick of its drawn arrival time.
//! - Cuts (partition, one-way partition, isolate) are turmoil link states, recomputed from
//!   the same cut sets the fast engine keeps. Turmoil drops in-flight segments at a cut and
//!   TCP never retransmits, so a connection that lost data stalls: a node abandons the
//!   connection a request timed out on and opens a fresh one for its next request (a
//!   connect across a cut fails at once and the request is lost, as a cut message is).
//! - Lock-file operations stay on the node's host, off the network: each takes
//!   `0..=disk_latency_max` plus any disk-slow fault and lands even if the process dies
//!   meanwhile, so concurrent read-modify-writes interleave as in the fast engine.
//! - Kill, crash, stop and exit end the process at once (its [`Disk`] survives); what it
//!   already sent still reaches the network, then its host is crashed, which closes its
//!   sockets. Crashes and exits restart with Docker's back-off; a graceful stop delivers
//!   [`Input::Stop`] and kills after 10 s. A paused process's timers and answers wait
//!   until it resumes. A node's clocks run at its rate error and its wall clock adds its
//!   offset, exactly as the fast engine's node clock does.
//! - Services learn that a process died from its connections closing (the FIN crosses the
//!   network), not by fiat.
//!
//! Determinism: turmoil is seeded from the world's seed with an explicit epoch
//! ([`EPOCH_WALL`]), every `select!` is `biased;`, maps are ordered, and no clock or
//! generator outside the simulation is read. The same seed gives the same
//! [`History::trace_hash`].
//!
//! Tick: [`TICK`] is 1 ms, the model's own time unit, so message latencies, lock-file
//! times, restarts and operator actions keep their millisecond values (a node's own
//! timers are exact at any tick: turmoil's paused clock stops at each deadline inside a
//! step). Turmoil's cost grows with ticks times running hosts, not with traffic, so this
//! engine is for cross-checking, and the fast engine stays the default for fuzzing.
//! Measured for a ten-minute fenced drill (three nodes, six hosts, a leader kill and
//! restart; test profile, dependencies at opt-level 2; release is no faster): 600,000
//! steps in 8.5–10 s of CPU time, about 65 simulated seconds per CPU second, which was
//! 27–41 simulated seconds per wall second on a shared two-core machine under load
//! (load average about 7). Cost is linear in the tick: [`TurmoilWorld::with_tick`] at
//! 2, 5 and 10 ms measured 2, 4 and 10 times faster in the same conditions.
//!
//! Differences from the fast engine that remain (all at the scale of a tick or a hop):
//! - Work on the hosts happens inside steps, after the world's own work at that instant:
//!   a started process boots in the next step (its first events follow whatever else
//!   the caller did at that instant), and host work due exactly at `run_until`'s end
//!   runs in the next step, so same-instant events can be ordered differently.
//! - Each hop reaches its peer within a tick of its drawn latency, and a new connection
//!   costs a handshake: answers arrive a few milliseconds later than in the fast engine.
//! - A service learns of a dead process when its connection's FIN arrives (a tick after
//!   the process ends, after anything it sent before dying); across a cut the FIN is
//!   lost, so that process's long poll stays open until its timeout and a later poll
//!   ends it with a 409 recorded against the dead node. The fast engine closes it at once.
//! - A request that times out makes the node use a fresh connection; the old one stays
//!   open, unused, until the process ends.
//! - A process restarted within a hop of its death loses what it had sent and not yet
//!   written (its host is restarted); the fast engine delivers it.

use crate::shared::{
    bootstrap_manifest, derive_seed, file_hashes, new_store, node_config, probe_event,
    publish_genesis, stamp_sent, store_request, Conditions, Replies, RestartBackoff,
};
use crate::world::{
    NodeClock, WorldConfig, EPOCH_WALL, FOREIGN_POLL_EVERY, OPERATOR_CHAT, STOP_GRACE,
};
use lifeboat_model::bootstrap::BootstrapManifest;
use lifeboat_model::fault::Fault;
use lifeboat_model::history::{Event, History, Role};
use lifeboat_model::ids::{Endpoint, NodeId};
use lifeboat_model::lease::{LeaseStore, Reply};
use lifeboat_model::node::{Clock, Dashboard, Disk, Effect, Input, Node, Timer};
use lifeboat_model::proto::{From, LockFileReq, ReqId, Request, Response, TgReq};
use lifeboat_model::snapshot::{self, SnapshotKey};
use lifeboat_model::store::SnapshotStore;
use lifeboat_model::telegram::BotApi;
use lifeboat_model::time::Millis;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::rc::Rc;
use std::time::{Duration, UNIX_EPOCH};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};
use tokio::sync::Notify;
use turmoil::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use turmoil::net::{TcpListener, TcpStream};
use turmoil::Sim;

/// How much simulated time one turmoil step covers: 1 ms, the model's time unit.
pub const TICK: Millis = Millis(1);

/// The port every service listens on (each service is its own host).
const PORT: u16 = 7070;
/// Turmoil's per-socket segment buffer; generous, so that a burst never resets a stream.
const TCP_CAPACITY: usize = 4096;
/// How long a dead process's host may keep flushing frames it sent before it died.
const LINGER_MAX: Millis = Millis::secs(120);
/// A turmoil run never ends by itself: the world decides how long to step.
const SIM_DURATION: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
/// A foreign poller's long-poll timeout (the fast engine's).
const FOREIGN_POLL_TIMEOUT: Millis = Millis::secs(30);

// ---------------------------------------------------------------------- wire

/// A request as it crosses the network.
#[derive(Serialize, Deserialize)]
struct WireReq {
    from: From,
    req: ReqId,
    request: Request,
    /// When the node sent it (what a real sender would log; Telegram records a reply's
    /// send time from it).
    sent: Millis,
}

/// A response as it crosses the network.
#[derive(Serialize, Deserialize)]
struct WireResp {
    to: From,
    req: ReqId,
    resp: Response,
}

/// One frame: a big-endian `u32` length, then the JSON body. One buffer, so one segment.
fn encode<T: Serialize>(msg: &T) -> Vec<u8> {
    let body = serde_json::to_vec(msg).expect("wire messages serialize");
    let len = u32::try_from(body.len()).expect("a frame fits in 4 GiB");
    let mut out = Vec::with_capacity(4 + body.len());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&body);
    out
}

async fn read_frame<T: DeserializeOwned>(r: &mut OwnedReadHalf) -> io::Result<T> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len).await?;
    let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
    r.read_exact(&mut body).await?;
    serde_json::from_slice(&body).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

// ---------------------------------------------------------------------- time

/// True simulated time as the current host sees it (inside a step).
fn host_now() -> Millis {
    Millis(turmoil::sim_elapsed().unwrap_or_default().as_millis() as u64)
}

/// How long from the current host's now until true time `at` (zero if past).
fn delay_until(at: Millis) -> Duration {
    Duration::from_millis(at.0).saturating_sub(turmoil::sim_elapsed().unwrap_or_default())
}

// ---------------------------------------------------------------------- services

/// A networked service; each is one turmoil host.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Svc {
    Lease = 0,
    Telegram = 1,
    Store = 2,
}

impl Svc {
    const ALL: [Svc; 3] = [Svc::Lease, Svc::Telegram, Svc::Store];

    fn host(self) -> &'static str {
        match self {
            Svc::Lease => "lease-store",
            Svc::Telegram => "telegram",
            Svc::Store => "snapshot-store",
        }
    }

    fn endpoint(self) -> Endpoint {
        match self {
            Svc::Lease => Endpoint::LeaseStore,
            Svc::Telegram => Endpoint::Telegram,
            Svc::Store => Endpoint::SnapshotStore,
        }
    }

    /// The service a request goes to; `None` for the host-local lock file.
    fn of(request: &Request) -> Option<Svc> {
        match request {
            Request::Lease(_) => Some(Svc::Lease),
            Request::Telegram(_) => Some(Svc::Telegram),
            Request::Store(_) => Some(Svc::Store),
            Request::LockFile(_) => None,
        }
    }

    fn i(self) -> usize {
        self as usize
    }
}

/// Frames waiting in a connection's outbox, each with its arrival time.
type Outbox = UnboundedSender<(Millis, Vec<u8>)>;

/// Where a service sends replies for one node incarnation: its latest connection.
struct Route {
    conn: u64,
    out: Outbox,
}

fn key(f: From) -> (NodeId, u32) {
    (f.node, f.incarnation)
}

// ---------------------------------------------------------------------- state

/// What a node's task is told from outside its own timers.
enum Msg {
    /// A service or the lock file answered.
    Resp { req: ReqId, resp: Box<Response> },
    /// A connection failed (refused, reset, closed).
    ConnDown { svc: Svc, conn: u64 },
    /// SIGTERM.
    Stop,
    /// SIGCONT: deliver what waited.
    Resume,
    /// The process ended: flush what was sent, then let the host be crashed.
    Die,
}

/// Work the world does between steps, at a true time.
enum CtlEv {
    Restart {
        node: NodeId,
        inc: u32,
    },
    StopTimeout {
        node: NodeId,
        inc: u32,
    },
    ForeignPoll,
    DiskOp {
        from: From,
        req: ReqId,
        op: LockFileReq,
    },
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

struct Slot {
    id: NodeId,
    host: String,
    /// The turmoil host the node's process runs on.
    net_host: String,
    /// The running (or paused) process; its disk lives inside it.
    proc: Option<Node>,
    /// The disk while no process runs.
    disk: Disk,
    inc: u32,
    state: ProcState,
    clock: NodeClock,
    /// What reached the process while it was paused, in order; a timer with the
    /// generation it was armed with.
    held: Vec<(Input, Option<u64>)>,
    started_at: Millis,
    backoff: RestartBackoff,
    stopping: bool,
    container: u32,
    /// The current incarnation's inbox, and its receiving end until the task takes it.
    inbox: Option<UnboundedSender<Msg>>,
    inbox_rx: Option<UnboundedReceiver<Msg>>,
    /// The task has flushed after the process ended: crash the host after this step.
    crash_pending: bool,
}

/// Everything mutable in a world. The [`TurmoilWorld`] owns it between steps and lends it
/// to the hosts' tasks (through [`Lent`]) while turmoil steps.
struct State {
    cfg: WorldConfig,
    slots: Vec<Slot>,
    lease: LeaseStore,
    bot: BotApi,
    store: SnapshotStore,
    cond: Conditions,
    rng: ChaCha8Rng,
    history: History,
    service_key: SnapshotKey,
    routes: [BTreeMap<(NodeId, u32), Route>; 3],
    /// Who made the latest getUpdates call (`None`: a foreign poller or nobody).
    last_poller: Option<(NodeId, u32)>,
    /// Wakes a service's deadline task when its state changed.
    wake: [Rc<Notify>; 3],
    ctl: BTreeMap<(Millis, u64), CtlEv>,
    ctl_seq: u64,
}

/// The state while turmoil steps; `None` between steps.
type Lent = Rc<RefCell<Option<Box<State>>>>;

fn with<R>(lent: &Lent, f: impl FnOnce(&mut State) -> R) -> R {
    let mut guard = lent.borrow_mut();
    f(guard
        .as_mut()
        .expect("the world's state is lent to the hosts only during a step"))
}

impl State {
    fn idx(&self, node: NodeId) -> usize {
        self.slots
            .iter()
            .position(|s| s.id == node)
            .unwrap_or_else(|| panic!("node {node} is not in this world"))
    }

    /// Appends to the history; hosts step one after another inside a tick, so a stamp
    /// may trail the last one by less than a tick and is raised to it.
    fn push(&mut self, at: Millis, ev: Event) {
        let at = at.max(self.history.end());
        self.history.push(at, ev);
    }

    fn schedule(&mut self, at: Millis, ev: CtlEv) {
        self.ctl_seq += 1;
        self.ctl.insert((at, self.ctl_seq), ev);
    }

    fn latency(&mut self) -> Millis {
        self.cond.latency(&mut self.rng, &self.cfg)
    }

    fn lost(&mut self) -> bool {
        self.cond.lost(&mut self.rng)
    }

    /// Ends a node's process now: its disk stays, its task is told to flush and die, and
    /// a crash or exit is restarted with back-off.
    fn end_process(
        &mut self,
        idx: usize,
        now: Millis,
        code: Option<i32>,
        how: &str,
        restart: bool,
    ) {
        let s = &mut self.slots[idx];
        let Some(p) = s.proc.take() else { return };
        s.disk = p.disk;
        s.held.clear();
        let delay = s.backoff.on_exit(now.saturating_sub(s.started_at), restart);
        s.state = if restart {
            ProcState::Restarting
        } else {
            ProcState::Down
        };
        if let Some(tx) = &s.inbox {
            let _ = tx.send(Msg::Die);
        }
        let (node, inc) = (s.id, s.inc);
        self.push(
            now,
            Event::ProcessExited {
                node,
                code,
                how: how.to_string(),
            },
        );
        if restart {
            self.schedule(now + delay, CtlEv::Restart { node, inc });
        }
    }

    /// A service handles one request that arrived at `now`.
    fn serve(
        &mut self,
        svc: Svc,
        now: Millis,
        from: From,
        req: ReqId,
        request: Request,
        sent: Millis,
    ) {
        let mut replies = Vec::new();
        let mut events = Vec::new();
        match request {
            Request::Lease(r) => self
                .lease
                .handle(now, from, req, r, &mut replies, &mut events),
            Request::Telegram(TgReq::GetUpdates { offset, timeout }) => {
                self.last_poller = Some(key(from));
                self.bot.get_updates(
                    now,
                    Some(from),
                    req,
                    offset,
                    timeout,
                    &mut replies,
                    &mut events,
                )
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
            Request::LockFile(_) => unreachable!("lock-file operations never cross the network"),
        }
        self.finish_service(svc, now, replies, events);
    }

    /// Records a service's events, sends its replies and wakes the deadline tasks.
    fn finish_service(&mut self, svc: Svc, now: Millis, replies: Vec<Reply>, events: Vec<Event>) {
        for e in events {
            self.push(now, e);
        }
        for r in replies {
            self.route(svc, now, r);
        }
        for w in &self.wake {
            w.notify_one();
        }
    }

    /// Sends a reply to the latest connection of the incarnation it is for.
    fn route(&mut self, svc: Svc, now: Millis, r: Reply) {
        if self.lost() {
            return;
        }
        let mut at = now + self.latency();
        if svc == Svc::Store {
            at = at + self.cond.store_slow;
        }
        if let Some(route) = self.routes[svc.i()].get(&key(r.to)) {
            let frame = encode(&WireResp {
                to: r.to,
                req: r.req,
                resp: r.resp,
            });
            let _ = route.out.send((at, frame));
        }
    }

    /// A connection to a service closed: the service forgets that incarnation's watches
    /// and ends its long poll.
    fn disconnected(&mut self, svc: Svc, conn: u64, from: From, now: Millis) {
        let k = key(from);
        if self.routes[svc.i()].get(&k).is_some_and(|r| r.conn == conn) {
            self.routes[svc.i()].remove(&k);
        }
        match svc {
            Svc::Lease => self.lease.disconnect(from),
            Svc::Telegram => {
                if self.last_poller == Some(k) {
                    let mut events = Vec::new();
                    self.bot.disconnect(from.node, &mut events);
                    for e in events {
                        self.push(now, e);
                    }
                }
            }
            Svc::Store => {}
        }
        for w in &self.wake {
            w.notify_one();
        }
    }

    /// Carries out a lock-file operation on the node's host and answers the process
    /// that asked, if it still runs.
    fn disk_op(&mut self, now: Millis, from: From, req: ReqId, op: LockFileReq) {
        let idx = self.idx(from.node);
        let host = self.slots[idx].host.clone();
        let (resp, ev) = self.cond.lock_file_op(from.node, &host, op);
        self.push(now, ev);
        let s = &self.slots[idx];
        if s.inc == from.incarnation && s.proc.is_some() {
            if let Some(tx) = &s.inbox {
                let _ = tx.send(Msg::Resp {
                    req,
                    resp: Box::new(Response::LockFile(resp)),
                });
            }
        }
    }
}

// ---------------------------------------------------------------------- connections

/// Counts frames a node has handed to its outboxes and not yet written.
type Queued = Rc<Cell<usize>>;

fn dec(queued: &Option<Queued>, n: usize) {
    if let Some(q) = queued {
        q.set(q.get() - n);
    }
}

/// Writes each frame when its arrival time comes; once the outbox is closed and
/// flushed, closes the write half (the peer reads a FIN).
async fn outbox_writer(
    mut w: OwnedWriteHalf,
    mut rx: UnboundedReceiver<(Millis, Vec<u8>)>,
    queued: Option<Queued>,
    on_error: Option<(UnboundedSender<Msg>, Svc, u64)>,
) {
    let mut q: BTreeMap<(Millis, u64), Vec<u8>> = BTreeMap::new();
    let mut seq = 0u64;
    let mut open = true;
    while open || !q.is_empty() {
        let next = q.keys().next().map(|k| k.0);
        tokio::select! {
            biased;
            m = rx.recv(), if open => match m {
                Some((at, frame)) => {
                    q.insert((at, seq), frame);
                    seq += 1;
                }
                None => open = false,
            },
            _ = tokio::time::sleep(delay_until(next.unwrap_or(Millis::ZERO))), if next.is_some() => {
                let now = host_now();
                while let Some(entry) = q.first_entry() {
                    if entry.key().0 > now {
                        break;
                    }
                    let frame = entry.remove();
                    dec(&queued, 1);
                    if w.write_all(&frame).await.is_err() {
                        dec(&queued, q.len());
                        q.clear();
                        rx.close();
                        while rx.try_recv().is_ok() {
                            dec(&queued, 1);
                        }
                        if let Some((inbox, svc, conn)) = &on_error {
                            let _ = inbox.send(Msg::ConnDown { svc: *svc, conn: *conn });
                        }
                        return;
                    }
                }
            }
        }
    }
    drop(w);
}

/// A node's connection to a service: connect, then read answers and write requests.
async fn client_conn(
    svc: Svc,
    conn: u64,
    mut rx: UnboundedReceiver<(Millis, Vec<u8>)>,
    inbox: UnboundedSender<Msg>,
    queued: Queued,
) {
    match TcpStream::connect((svc.host(), PORT)).await {
        Ok(stream) => {
            let (r, w) = stream.into_split();
            tokio::task::spawn_local(client_reader(r, svc, conn, inbox.clone()));
            outbox_writer(w, rx, Some(queued), Some((inbox, svc, conn))).await;
        }
        Err(_) => {
            // Refused (a cut): what was queued for it is lost, as a cut message is.
            rx.close();
            while rx.try_recv().is_ok() {
                queued.set(queued.get() - 1);
            }
            let _ = inbox.send(Msg::ConnDown { svc, conn });
        }
    }
}

async fn client_reader(mut r: OwnedReadHalf, svc: Svc, conn: u64, inbox: UnboundedSender<Msg>) {
    loop {
        match read_frame::<WireResp>(&mut r).await {
            Ok(m) => {
                if inbox
                    .send(Msg::Resp {
                        req: m.req,
                        resp: Box::new(m.resp),
                    })
                    .is_err()
                {
                    return;
                }
            }
            Err(_) => {
                let _ = inbox.send(Msg::ConnDown { svc, conn });
                return;
            }
        }
    }
}

/// A service host: accept connections and serve each; lease store and Telegram also
/// run a task that acts on their deadlines (lease expiry, watch and poll timeouts).
async fn service_main(lent: Lent, svc: Svc) -> turmoil::Result {
    let listener = TcpListener::bind((IpAddr::from(Ipv4Addr::UNSPECIFIED), PORT)).await?;
    if svc != Svc::Store {
        tokio::task::spawn_local(service_deadlines(lent.clone(), svc));
    }
    let mut next_conn = 0u64;
    loop {
        let (stream, _) = listener.accept().await?;
        next_conn += 1;
        tokio::task::spawn_local(serve_conn(lent.clone(), svc, stream, next_conn));
    }
}

async fn service_deadlines(lent: Lent, svc: Svc) {
    let notify = with(&lent, |st| st.wake[svc.i()].clone());
    loop {
        let next = with(&lent, |st| match svc {
            Svc::Lease => st.lease.next_deadline(),
            Svc::Telegram => st.bot.next_deadline(),
            Svc::Store => None,
        });
        tokio::select! {
            biased;
            _ = notify.notified() => {}
            _ = tokio::time::sleep(delay_until(next.unwrap_or(Millis::ZERO))), if next.is_some() => {
                let now = host_now();
                with(&lent, |st| {
                    let mut replies = Vec::new();
                    let mut events = Vec::new();
                    match svc {
                        Svc::Lease => st.lease.advance(now, &mut replies, &mut events),
                        Svc::Telegram => st.bot.advance(now, &mut replies, &mut events),
                        Svc::Store => {}
                    }
                    st.finish_service(svc, now, replies, events);
                });
            }
        }
    }
}

async fn serve_conn(lent: Lent, svc: Svc, stream: TcpStream, conn: u64) {
    let (mut r, w) = stream.into_split();
    let (tx, rx) = unbounded_channel();
    tokio::task::spawn_local(outbox_writer(w, rx, None, None));
    let mut seen = None;
    while let Ok(m) = read_frame::<WireReq>(&mut r).await {
        seen = Some(m.from);
        let now = host_now();
        let out = tx.clone();
        with(&lent, |st| {
            st.routes[svc.i()].insert(key(m.from), Route { conn, out });
            st.serve(svc, now, m.from, m.req, m.request, m.sent);
        });
    }
    drop(tx);
    if let Some(from) = seen {
        let now = host_now();
        with(&lent, |st| st.disconnected(svc, conn, from, now));
    }
}

// ---------------------------------------------------------------------- node process

struct Conn {
    id: u64,
    out: Outbox,
}

/// One incarnation of a node's process, as its host's task runs it.
struct Proc {
    lent: Lent,
    idx: usize,
    node: NodeId,
    inc: u32,
    me: UnboundedSender<Msg>,
    timers: BTreeMap<Timer, (Millis, u64)>,
    due: BTreeSet<(Millis, u64, Timer)>,
    gen: u64,
    conns: [Option<Conn>; 3],
    /// Outboxes of connections given up on: kept open (no FIN, so the service does not
    /// take the process for dead) until the process ends.
    abandoned: Vec<Outbox>,
    next_conn: u64,
    /// Network requests awaiting an answer, with the connection they went on.
    inflight: BTreeMap<ReqId, (Svc, u64)>,
    queued: Queued,
    effects: Vec<Effect>,
    dead: bool,
}

/// A node host's software: run the current incarnation until it ends, flush what it
/// sent, then wait for the world to crash the host.
async fn node_main(lent: Lent, idx: usize) -> turmoil::Result {
    let boot = with(&lent, |st| {
        let s = &mut st.slots[idx];
        s.proc.as_ref()?;
        let rx = s.inbox_rx.take()?;
        Some((rx, s.inc, s.id, s.inbox.clone()?))
    });
    let Some((mut rx, inc, node, me)) = boot else {
        return Ok(());
    };
    let mut p = Proc {
        lent: lent.clone(),
        idx,
        node,
        inc,
        me,
        timers: BTreeMap::new(),
        due: BTreeSet::new(),
        gen: 0,
        conns: Default::default(),
        abandoned: Vec::new(),
        next_conn: 0,
        inflight: BTreeMap::new(),
        queued: Rc::new(Cell::new(0)),
        effects: Vec::new(),
        dead: false,
    };
    p.deliver(Input::Start);
    p.run(&mut rx).await;
    p.linger().await;
    with(&lent, |st| {
        let s = &mut st.slots[idx];
        if s.inc == inc {
            s.crash_pending = true;
        }
    });
    std::future::pending::<()>().await;
    Ok(())
}

impl Proc {
    async fn run(&mut self, rx: &mut UnboundedReceiver<Msg>) {
        while !self.dead {
            let next = self.due.first().map(|d| d.0);
            tokio::select! {
                biased;
                m = rx.recv() => match m {
                    Some(m) => self.on_msg(m),
                    None => self.dead = true,
                },
                _ = tokio::time::sleep(delay_until(next.unwrap_or(Millis::ZERO))), if next.is_some() => {
                    self.fire_one();
                }
            }
        }
    }

    /// Closes every connection once its outbox is flushed, and waits (bounded) until
    /// every frame the process sent has been written.
    async fn linger(&mut self) {
        self.conns = Default::default();
        self.abandoned.clear();
        let give_up = host_now() + LINGER_MAX;
        while self.queued.get() > 0 && host_now() < give_up {
            tokio::time::sleep(Duration::from_millis(TICK.0)).await;
        }
    }

    fn fire_one(&mut self) {
        let now = host_now();
        let Some(&(at, gen, timer)) = self.due.first() else {
            return;
        };
        if at > now {
            return;
        }
        self.due.remove(&(at, gen, timer));
        // A paused process's timer stays armed while it waits: handling what came before
        // it on resume may still cancel or re-arm it (see `Msg::Resume`).
        let (idx, inc) = (self.idx, self.inc);
        let paused = with(&self.lent, |st| {
            let s = &st.slots[idx];
            s.inc == inc && s.state == ProcState::Paused
        });
        if !paused {
            self.timers.remove(&timer);
        }
        self.deliver_tagged(Input::Timer(timer), Some(gen));
    }

    fn on_msg(&mut self, m: Msg) {
        match m {
            Msg::Resp { req, resp } => self.deliver(Input::Response { req, resp: *resp }),
            Msg::ConnDown { svc, conn } => {
                if self.conns[svc.i()].as_ref().is_some_and(|c| c.id == conn) {
                    self.conns[svc.i()] = None;
                }
            }
            Msg::Stop => self.deliver(Input::Stop),
            Msg::Resume => {
                let (idx, inc) = (self.idx, self.inc);
                let held = with(&self.lent, |st| {
                    let s = &mut st.slots[idx];
                    if s.inc == inc && s.state == ProcState::Running {
                        std::mem::take(&mut s.held)
                    } else {
                        Vec::new()
                    }
                });
                for (input, gen) in held {
                    // A resumed process runs its due timers, but not one that what it
                    // handled just before has cancelled or re-armed.
                    if let (Input::Timer(timer), Some(gen)) = (&input, gen) {
                        if self.timers.get(timer).map(|t| t.1) != Some(gen) {
                            continue;
                        }
                        self.timers.remove(timer);
                    }
                    self.deliver(input);
                }
            }
            Msg::Die => self.dead = true,
        }
    }

    /// Steps the node with an input, or holds it while the process is paused.
    fn deliver(&mut self, input: Input) {
        self.deliver_tagged(input, None);
    }

    /// [`Proc::deliver`], with the generation of the timer that fired, if one did.
    fn deliver_tagged(&mut self, input: Input, gen: Option<u64>) {
        match &input {
            // A request that went unanswered may have stalled its connection (a cut
            // drops TCP data for good): use a fresh one from now on.
            Input::Timer(Timer::Request(req)) => {
                if let Some((svc, conn)) = self.inflight.remove(req) {
                    if self.conns[svc.i()].as_ref().is_some_and(|c| c.id == conn) {
                        let old = self.conns[svc.i()].take().expect("checked above");
                        self.abandoned.push(old.out);
                    }
                }
            }
            Input::Response { req, .. } => {
                self.inflight.remove(req);
            }
            _ => {}
        }
        let now = host_now();
        let (idx, inc) = (self.idx, self.inc);
        let mut effects = std::mem::take(&mut self.effects);
        effects.clear();
        let stepped = with(&self.lent, |st| {
            let s = &mut st.slots[idx];
            if s.inc != inc {
                return false;
            }
            match (s.state, s.proc.as_mut()) {
                (ProcState::Paused, Some(_)) => {
                    s.held.push((input, gen));
                    false
                }
                (ProcState::Running, Some(p)) => {
                    let clock = Clock {
                        mono: s.clock.mono(now),
                        wall: s.clock.wall(now),
                    };
                    p.step(clock, input, &mut effects);
                    true
                }
                _ => false,
            }
        });
        if stepped {
            for e in effects.drain(..) {
                self.apply(now, e);
            }
        }
        self.effects = effects;
    }

    fn apply(&mut self, now: Millis, effect: Effect) {
        let idx = self.idx;
        match effect {
            Effect::Send { req, request } => self.send(now, req, request),
            Effect::SetTimer { timer, after } => {
                let at = now + with(&self.lent, |st| st.slots[idx].clock.true_delay(after));
                self.gen += 1;
                if let Some((old_at, old_gen)) = self.timers.insert(timer, (at, self.gen)) {
                    self.due.remove(&(old_at, old_gen, timer));
                }
                self.due.insert((at, self.gen, timer));
            }
            Effect::CancelTimer(timer) => {
                if let Some((at, gen)) = self.timers.remove(&timer) {
                    self.due.remove(&(at, gen, timer));
                }
            }
            Effect::Emit(ev) => with(&self.lent, |st| st.push(now, ev)),
            Effect::Exit { code } => with(&self.lent, |st| {
                let restart = !st.slots[idx].stopping;
                st.end_process(idx, now, Some(code), "exit", restart);
            }),
        }
    }

    fn send(&mut self, now: Millis, req: ReqId, request: Request) {
        let idx = self.idx;
        let from = From {
            node: self.node,
            incarnation: self.inc,
        };
        let Some(svc) = Svc::of(&request) else {
            let Request::LockFile(op) = request else {
                unreachable!("only lock-file requests stay on the host")
            };
            with(&self.lent, |st| {
                let host = &st.slots[idx].host;
                let slow = st.cond.disk_slow(host);
                let d = st.rng.random_range(0..=st.cfg.disk_latency_max.0);
                st.schedule(now + Millis(d) + slow, CtlEv::DiskOp { from, req, op });
            });
            return;
        };
        let at = with(&self.lent, |st| {
            if st.lost() {
                return None;
            }
            let mut at = now + st.latency();
            if svc == Svc::Store {
                at = at + st.cond.store_slow;
            }
            Some(at)
        });
        let Some(at) = at else { return };
        let frame = encode(&WireReq {
            from,
            req,
            request,
            sent: now,
        });
        let conn = self.conn(svc);
        let out = &self.conns[svc.i()].as_ref().expect("just opened").out;
        self.queued.set(self.queued.get() + 1);
        if out.send((at, frame)).is_err() {
            self.queued.set(self.queued.get() - 1);
        }
        self.inflight.insert(req, (svc, conn));
    }

    /// The current connection to a service, opened if there is none.
    fn conn(&mut self, svc: Svc) -> u64 {
        if let Some(c) = &self.conns[svc.i()] {
            return c.id;
        }
        self.next_conn += 1;
        let id = self.next_conn;
        let (tx, rx) = unbounded_channel();
        tokio::task::spawn_local(client_conn(
            svc,
            id,
            rx,
            self.me.clone(),
            self.queued.clone(),
        ));
        self.conns[svc.i()] = Some(Conn { id, out: tx });
        id
    }
}

// ---------------------------------------------------------------------- the world

/// The turmoil engine's world: the same methods as [`World`](crate::world::World), the
/// full stack underneath.
pub struct TurmoilWorld {
    sim: Sim<'static>,
    lent: Lent,
    /// The state; `None` only while turmoil steps.
    st: Option<Box<State>>,
    steps: u64,
    /// The one-way cuts currently set on turmoil's links.
    applied: BTreeSet<(Endpoint, Endpoint)>,
    tick: Millis,
    /// Who answered which update, kept up with the history.
    replies: std::cell::RefCell<Replies>,
}

impl TurmoilWorld {
    /// Builds a world: primaries get the initial state and the chain gets its genesis
    /// snapshot; blank nodes get nothing. Every host is registered; no node process runs
    /// until [`TurmoilWorld::start`]. Turmoil steps by [`TICK`].
    pub fn new(cfg: WorldConfig) -> TurmoilWorld {
        TurmoilWorld::with_tick(cfg, TICK)
    }

    /// [`TurmoilWorld::new`] with another tick. A coarser tick runs proportionally faster
    /// (cost is per tick and host), but every network hop, lock-file operation, restart
    /// and operator action then lands on a tick boundary; a node's own timers stay exact.
    pub fn with_tick(cfg: WorldConfig, tick: Millis) -> TurmoilWorld {
        assert!(!cfg.nodes.is_empty(), "a world needs at least one node");
        assert!(tick > Millis::ZERO, "a tick must be at least 1 ms");
        let service_key = SnapshotKey::from_seed(derive_seed(cfg.seed, "service-key"));
        let attacker = SnapshotKey::from_seed(derive_seed(cfg.seed, "attacker-key"));
        let seed = cfg.seed;
        let mut st = Box::new(State {
            slots: Vec::new(),
            lease: LeaseStore::new(),
            bot: BotApi::new(),
            store: new_store(&cfg, attacker),
            cond: Conditions::default(),
            rng: ChaCha8Rng::seed_from_u64(seed),
            history: History::new(),
            service_key,
            routes: Default::default(),
            last_poller: None,
            wake: std::array::from_fn(|_| Rc::new(Notify::new())),
            ctl: BTreeMap::new(),
            ctl_seq: 0,
            cfg,
        });
        let mut genesis_done = false;
        for setup in st.cfg.nodes.clone() {
            let mut disk = if setup.blank {
                Disk::default()
            } else {
                Disk::primary()
            };
            if !setup.blank && !genesis_done {
                let events =
                    publish_genesis(&st.cfg, &st.service_key, &mut st.store, &setup, &mut disk);
                for ev in events {
                    st.push(Millis::ZERO, ev);
                }
                genesis_done = true;
            }
            st.cond.lockfiles.entry(setup.host.clone()).or_default();
            st.slots.push(Slot {
                id: setup.id,
                host: setup.host.clone(),
                net_host: format!("node-{}", setup.id),
                proc: None,
                disk,
                inc: 0,
                state: ProcState::Down,
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
                inbox: None,
                inbox_rx: None,
                crash_pending: false,
            });
        }
        let sim = turmoil::Builder::new()
            .epoch(UNIX_EPOCH + Duration::from_millis(EPOCH_WALL.0))
            .rng_seed(seed)
            .tick_duration(Duration::from_millis(tick.0))
            .simulation_duration(SIM_DURATION)
            .min_message_latency(Duration::ZERO)
            .max_message_latency(Duration::ZERO)
            .tcp_capacity(TCP_CAPACITY)
            .build();
        let mut w = TurmoilWorld {
            sim,
            lent: Rc::new(RefCell::new(None)),
            st: Some(st),
            steps: 0,
            applied: BTreeSet::new(),
            tick,
            replies: Default::default(),
        };
        for svc in Svc::ALL {
            let lent = w.lent.clone();
            w.sim
                .host(svc.host(), move || service_main(lent.clone(), svc));
        }
        for idx in 0..w.st().slots.len() {
            let lent = w.lent.clone();
            let host = w.st().slots[idx].net_host.clone();
            w.sim.host(host, move || node_main(lent.clone(), idx));
        }
        w
    }

    fn st(&self) -> &State {
        self.st.as_deref().expect("state is home between steps")
    }

    fn st_mut(&mut self) -> &mut State {
        self.st.as_deref_mut().expect("state is home between steps")
    }

    fn slot(&self, node: NodeId) -> &Slot {
        let st = self.st();
        &st.slots[st.idx(node)]
    }

    // ------------------------------------------------------------------ accessors

    /// True simulated time.
    pub fn now(&self) -> Millis {
        Millis(self.sim.elapsed().as_millis() as u64)
    }

    /// The history so far.
    pub fn history(&self) -> &History {
        &self.st().history
    }

    /// Takes the history out of the world.
    pub fn into_history(mut self) -> History {
        std::mem::take(&mut self.st_mut().history)
    }

    /// How many turmoil steps (ticks) the world has run (for speed measurements).
    pub fn events_processed(&self) -> u64 {
        self.steps
    }

    /// The key verifiers pin.
    pub fn trusted_key(&self) -> snapshot::TrustedKey {
        self.st().service_key.public()
    }

    /// The snapshot head in the store.
    pub fn snapshot_head(&self) -> Option<String> {
        self.st().store.head().map(str::to_string)
    }

    /// The nodes.
    pub fn nodes(&self) -> Vec<NodeId> {
        self.st().slots.iter().map(|s| s.id).collect()
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
        let st = self.st();
        bootstrap_manifest(
            &st.store,
            &st.service_key,
            st.slots[0].clock.wall(self.now()),
        )
    }

    /// Hands a blank node its bootstrap manifest (what `bootstrap --from URL` reads).
    pub fn set_bootstrap(&mut self, node: NodeId, manifest: BootstrapManifest) {
        let st = self.st_mut();
        let idx = st.idx(node);
        let s = &mut st.slots[idx];
        match s.proc.as_mut() {
            Some(p) => p.disk.bootstrap = Some(manifest),
            None => s.disk.bootstrap = Some(manifest),
        }
    }

    /// Reads the node's dashboard as an HTTP probe would, and records the probe. A
    /// paused or down process answers nothing.
    pub fn probe(&mut self, node: NodeId) -> Option<Dashboard> {
        let now = self.now();
        let s = self.slot(node);
        let dash = match (s.state, s.proc.as_ref()) {
            (ProcState::Running, Some(p)) => Some(p.dashboard(Clock {
                mono: s.clock.mono(now),
                wall: s.clock.wall(now),
            })),
            _ => None,
        };
        self.st_mut().push(now, probe_event(node, dash.as_ref()));
        dash
    }

    /// The node's role as its process reports it (stopped when down).
    pub fn role(&self, node: NodeId) -> Role {
        self.slot(node)
            .proc
            .as_ref()
            .map_or(Role::Stopped, |p| p.role())
    }

    // ------------------------------------------------------------------ running

    /// Steps turmoil up to `until` (in whole ticks), doing the world's own work (restarts,
    /// stop timeouts, lock-file operations, a foreign poller) between steps.
    pub fn run_until(&mut self, until: Millis) {
        loop {
            let now = self.now();
            self.run_ctl(now);
            if now + self.tick > until {
                break;
            }
            self.step();
        }
    }

    /// Runs for `d` of simulated time.
    pub fn run_for(&mut self, d: Millis) {
        let until = self.now() + d;
        self.run_until(until);
    }

    /// One turmoil step, with the state lent to the hosts while it runs.
    fn step(&mut self) {
        *self.lent.borrow_mut() = self.st.take();
        let result = self.sim.step();
        self.st = self.lent.borrow_mut().take();
        assert!(self.st.is_some(), "the hosts handed the world's state back");
        if let Err(e) = result {
            panic!("turmoil step at {} failed: {e}", self.now());
        }
        self.steps += 1;
        let done: Vec<String> = self
            .st_mut()
            .slots
            .iter_mut()
            .filter(|s| s.crash_pending)
            .map(|s| {
                s.crash_pending = false;
                s.net_host.clone()
            })
            .collect();
        for host in done {
            self.sim.crash(host);
        }
    }

    fn run_ctl(&mut self, now: Millis) {
        loop {
            let st = self.st_mut();
            let Some(entry) = st.ctl.first_entry() else {
                break;
            };
            if entry.key().0 > now {
                break;
            }
            let ev = entry.remove();
            match ev {
                CtlEv::Restart { node, inc } => {
                    let s = self.slot(node);
                    if s.inc == inc && s.state == ProcState::Restarting {
                        self.start(node);
                    }
                }
                CtlEv::StopTimeout { node, inc } => {
                    let idx = st.idx(node);
                    let s = &st.slots[idx];
                    if s.inc == inc && s.proc.is_some() {
                        // Started again meanwhile (the stop healed): it restarts once killed.
                        let restart = !s.stopping;
                        st.end_process(idx, now, None, "kill after stop timeout", restart);
                    }
                }
                CtlEv::ForeignPoll => {
                    if st.cond.foreign_poller {
                        let mut replies = Vec::new();
                        let mut events = Vec::new();
                        st.last_poller = None;
                        st.bot.get_updates(
                            now,
                            None,
                            0,
                            None,
                            FOREIGN_POLL_TIMEOUT,
                            &mut replies,
                            &mut events,
                        );
                        st.finish_service(Svc::Telegram, now, replies, events);
                        st.schedule(now + FOREIGN_POLL_EVERY, CtlEv::ForeignPoll);
                    }
                }
                CtlEv::DiskOp { from, req, op } => st.disk_op(now, from, req, op),
            }
        }
    }

    // ------------------------------------------------------------------ processes

    /// Starts (or restarts) a node's process over its disk, on a fresh run of its host.
    pub fn start(&mut self, node: NodeId) {
        let now = self.now();
        let st = self.st_mut();
        let idx = st.idx(node);
        let s = &st.slots[idx];
        let cfg = node_config(&st.cfg, &st.service_key, node, &s.host, s.container);
        let s = &mut st.slots[idx];
        if s.proc.is_some() {
            return;
        }
        s.inc += 1;
        s.state = ProcState::Running;
        s.stopping = false;
        s.started_at = now;
        s.held.clear();
        s.crash_pending = false;
        let disk = std::mem::take(&mut s.disk);
        s.proc = Some(Node::new(cfg, disk));
        let (tx, rx) = unbounded_channel();
        s.inbox = Some(tx);
        s.inbox_rx = Some(rx);
        let inc = s.inc;
        let host = s.net_host.clone();
        st.push(
            now,
            Event::ProcessStarted {
                node,
                incarnation: inc,
            },
        );
        self.sim.bounce(host);
    }

    // ------------------------------------------------------------------ operator

    /// The operator sends the bot a chat message; returns its update id.
    pub fn send_chat(&mut self, text: &str) -> i64 {
        let now = self.now();
        let st = self.st_mut();
        let mut replies = Vec::new();
        let mut events = Vec::new();
        let id = st
            .bot
            .user_message(OPERATOR_CHAT, text, &mut replies, &mut events);
        st.finish_service(Svc::Telegram, now, replies, events);
        id
    }

    /// Whether some node has answered this update.
    pub fn answered_by(&self, update_id: i64) -> Option<NodeId> {
        self.replies
            .borrow_mut()
            .answered_by(self.history(), update_id)
    }

    // ------------------------------------------------------------------ faults

    /// Injects a fault now. A clock fault that would stop, reverse or overflow a clock
    /// is refused before it changes anything.
    pub fn inject(&mut self, fault: &Fault) -> Result<(), String> {
        lifeboat_model::limits::check_fault(fault).map_err(|(_, message)| message)?;
        let now = self.now();
        let st = self.st_mut();
        st.push(now, Event::Fault(fault.clone()));
        match fault {
            Fault::Kill { node } => {
                let idx = st.idx(*node);
                st.end_process(idx, now, None, "kill", false);
            }
            Fault::Crash { node } => {
                let idx = st.idx(*node);
                st.end_process(idx, now, None, "crash", true);
            }
            Fault::Stop { node } => {
                let idx = st.idx(*node);
                let s = &mut st.slots[idx];
                if s.proc.is_some() {
                    s.stopping = true;
                    let inc = s.inc;
                    if s.state == ProcState::Paused {
                        // A frozen process cannot handle SIGTERM; docker stop kills it.
                        st.end_process(idx, now, None, "kill after stop timeout", false);
                    } else {
                        if let Some(tx) = &s.inbox {
                            let _ = tx.send(Msg::Stop);
                        }
                        st.schedule(now + STOP_GRACE, CtlEv::StopTimeout { node: *node, inc });
                    }
                }
            }
            Fault::Pause { node } => {
                let idx = st.idx(*node);
                if st.slots[idx].state == ProcState::Running {
                    st.slots[idx].state = ProcState::Paused;
                    st.push(now, Event::Paused { node: *node });
                }
            }
            Fault::ClockOffset { node, ms } | Fault::ClockStep { node, ms } => {
                let idx = st.idx(*node);
                st.slots[idx].clock.shift_wall(*ms)?;
            }
            Fault::ClockRate { node, ppm } => {
                let idx = st.idx(*node);
                st.slots[idx].clock.set_rate(now, *ppm)?;
            }
            other => {
                let poller_was = st.cond.foreign_poller;
                st.cond.set(other, true, &mut st.store, &mut st.bot);
                if st.cond.foreign_poller && !poller_was {
                    st.schedule(now, CtlEv::ForeignPoll);
                }
                self.apply_cuts();
            }
        }
        Ok(())
    }

    /// Heals a fault now: restarts what was killed or stopped, resumes what was paused,
    /// repairs cuts, undoes clock changes, clears service faults.
    pub fn heal(&mut self, fault: &Fault) -> Result<(), String> {
        let now = self.now();
        let st = self.st_mut();
        st.push(now, Event::Heal(fault.clone()));
        match fault {
            Fault::Kill { node } | Fault::Stop { node } => {
                if self.slot(*node).proc.is_none() {
                    self.start(*node);
                } else {
                    // Still shutting down gracefully (`docker stop` has not returned):
                    // it starts again once it has exited.
                    let st = self.st_mut();
                    let idx = st.idx(*node);
                    st.slots[idx].stopping = false;
                }
            }
            Fault::Crash { .. } => {}
            Fault::Pause { node } => {
                let idx = st.idx(*node);
                let s = &mut st.slots[idx];
                if s.state == ProcState::Paused {
                    s.state = ProcState::Running;
                    if let Some(tx) = &s.inbox {
                        let _ = tx.send(Msg::Resume);
                    }
                    st.push(now, Event::Resumed { node: *node });
                }
            }
            Fault::ClockOffset { node, ms } | Fault::ClockStep { node, ms } => {
                let idx = st.idx(*node);
                let back = ms
                    .checked_neg()
                    .ok_or("clock offset i64::MIN cannot be undone")?;
                st.slots[idx].clock.shift_wall(back)?;
            }
            Fault::ClockRate { node, .. } => {
                let idx = st.idx(*node);
                st.slots[idx].clock.set_rate(now, 0)?;
            }
            other => {
                st.cond.set(other, false, &mut st.store, &mut st.bot);
                self.apply_cuts();
            }
        }
        Ok(())
    }

    fn net_host(&self, e: Endpoint) -> String {
        match e {
            Endpoint::Node(n) => self.slot(n).net_host.clone(),
            Endpoint::LeaseStore => Svc::Lease.host().to_string(),
            Endpoint::Telegram => Svc::Telegram.host().to_string(),
            Endpoint::SnapshotStore => Svc::Store.host().to_string(),
        }
    }

    /// Brings turmoil's links in line with the cut sets, one direction at a time.
    fn apply_cuts(&mut self) {
        let mut eps: Vec<Endpoint> = Svc::ALL.iter().map(|s| s.endpoint()).collect();
        eps.extend(self.nodes().into_iter().map(Endpoint::Node));
        for &a in &eps {
            for &b in &eps {
                if a == b {
                    continue;
                }
                let want = self.st().cond.cut(a, b);
                let have = self.applied.contains(&(a, b));
                if want && !have {
                    self.sim
                        .partition_oneway(self.net_host(a), self.net_host(b));
                    self.applied.insert((a, b));
                } else if !want && have {
                    self.sim.repair_oneway(self.net_host(a), self.net_host(b));
                    self.applied.remove(&(a, b));
                }
            }
        }
    }
}
