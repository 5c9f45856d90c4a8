//! Measurements for the benchmarks and the tests that hold lifeboat to its figures:
//! takeover latency in simulated time, and a bare turmoil world to price the turmoil
//! engine against.
//!
//! One sample is one short drill on the fast engine: `a` leads, `b` and `c` bootstrap
//! and follow, then after a seed-drawn delay (so the loss lands anywhere in the leader's
//! renewal or heartbeat period) `a` is lost one of the [`LossKind`] ways, and the
//! operator chats every [`CHAT_EVERY`] from that instant on. The sample is the time from
//! the loss (the fault's instant) to the first chat reply sent by the new leader. The
//! new leader and the moment it first served are [`takeovers`]'s; this module only adds
//! the reply and the classification. Everything is simulated time, so the figures are
//! the same on any machine and in any build.
//!
//! [`bare_turmoil_world`] is the turmoil engine's baseline: the same hosts, tick and
//! builder settings as [`TurmoilWorld`](crate::turmoil_engine::TurmoilWorld), but every
//! host only sleeps in a loop, so it costs what turmoil itself costs per step.

use crate::backend::{run_scenario, Engine};
use crate::turmoil_engine::TICK;
use crate::world::EPOCH_WALL;
use lifeboat_model::check::{leader_intervals, takeovers};
use lifeboat_model::fault::Fault;
use lifeboat_model::history::{Event, History};
use lifeboat_model::ids::{Endpoint, NodeId};
use lifeboat_model::profile::Profile;
use lifeboat_model::scenario::{
    Action, ClusterSpec, Condition, NetworkSpec, ProfileOverrides, Scenario, Step,
};
use lifeboat_model::time::Millis;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use std::ops::Range;
use std::time::{Duration, UNIX_EPOCH};

/// The node that leads when the loss hits.
pub const LEADER: NodeId = NodeId(0);
/// How often the operator chats once the leader is lost, so a message is always waiting
/// for the new leader's first poll.
pub const CHAT_EVERY: Millis = Millis(500);
/// One-way hops on the path from "the lease can end" to the first reply: the last
/// renewal (or the revoke) reaching the store, the watch waking a follower, the grant,
/// campaign and fetch round trips, the first poll, the update coming back and the
/// `sendMessage`.
pub const HOPS: u64 = 11;

/// A way to lose the leader.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LossKind {
    /// The process dies; Docker restarts it with back-off.
    Crash,
    /// `docker stop`: SIGTERM, a graceful exit.
    Stop,
    /// SIGSTOP for five seconds longer than the lease (the v1 staleness), then SIGCONT.
    Pause,
    /// The leader and the lease store cannot reach each other; Telegram still works.
    LeaseStoreCut,
    /// One-way cut: the leader's requests no longer reach the lease store.
    CutToStore,
    /// One-way cut: the lease store's answers no longer reach the leader (its renewals
    /// still land).
    CutFromStore,
}

impl LossKind {
    /// Every way, in table order.
    pub const ALL: [LossKind; 6] = [
        LossKind::Crash,
        LossKind::Stop,
        LossKind::Pause,
        LossKind::LeaseStoreCut,
        LossKind::CutToStore,
        LossKind::CutFromStore,
    ];

    /// The row label.
    pub fn name(self) -> &'static str {
        match self {
            LossKind::Crash => "crash",
            LossKind::Stop => "graceful stop",
            LossKind::Pause => "pause > lease",
            LossKind::LeaseStoreCut => "cut from lease store",
            LossKind::CutToStore => "one-way cut leader->store",
            LossKind::CutFromStore => "one-way cut store->leader",
        }
    }

    /// The fault that loses `node` this way.
    pub fn fault(self, node: NodeId) -> Fault {
        let (me, store) = (Endpoint::Node(node), Endpoint::LeaseStore);
        match self {
            LossKind::Crash => Fault::Crash { node },
            LossKind::Stop => Fault::Stop { node },
            LossKind::Pause => Fault::Pause { node },
            LossKind::LeaseStoreCut => Fault::Partition { a: me, b: store },
            LossKind::CutToStore => Fault::PartitionOneway {
                from: me,
                to: store,
            },
            LossKind::CutFromStore => Fault::PartitionOneway {
                from: store,
                to: me,
            },
        }
    }

    /// How long the fault lasts; `None` leaves it until the drill ends.
    fn duration(self, profile: &Profile) -> Option<Millis> {
        (self == LossKind::Pause).then(|| lease(profile) + Millis::secs(5))
    }
}

/// How long a silent leader is still believed: the fenced lease TTL, v1's staleness.
fn lease(profile: &Profile) -> Millis {
    match profile {
        Profile::Fenced(p) => p.lease_ttl,
        Profile::OpentridentV1(p) => p.stale_after,
    }
}

/// How often a leader refreshes its claim: fenced renewals, v1 heartbeats.
fn refresh_period(profile: &Profile) -> Millis {
    match profile {
        Profile::Fenced(p) => p.renew_every,
        Profile::OpentridentV1(p) => p.heartbeat_every,
    }
}

/// The profile's own lower bound for a loss, with every one-way hop at `latency_max`:
/// the worst case its timers allow when nothing else goes wrong.
///
/// - `fenced`, graceful stop: the lease is revoked once the leader's last poll has surely
///   reached Telegram (at most `max_latency` and its drift allowance after it was sent,
///   so a poll sent just before the stop makes the worst case), then [`HOPS`] hops.
/// - `fenced`, crash, pause, a cut or a one-way cut of the leader's requests: the lease
///   TTL (the loss may follow a renewal at once) plus detection and restore, [`HOPS`]
///   hops.
/// - `fenced`, one-way cut of the store's answers: the leader's renewals keep landing
///   until it steps down, `safe_lease` after its last answered renewal (which may come
///   just before the cut), and revokes the lease then; plus [`HOPS`] hops.
/// - `opentrident-v1`, every way: the intended design, staleness plus the stale polls
///   plus boot (`docs/failure-modes.md`: 150–180 s after the last refresh, plus the
///   restart). v1's stop releases only `telegram-bot`, so a stop is no faster.
pub fn lower_bound(profile: &Profile, loss: LossKind, latency_max: Millis) -> Millis {
    let hops = latency_max * HOPS;
    match profile {
        Profile::Fenced(p) => match loss {
            LossKind::Stop => p.poll_landed_after() + hops,
            LossKind::CutFromStore => p.safe_lease() + hops,
            _ => p.lease_ttl + hops,
        },
        Profile::OpentridentV1(p) => {
            p.stale_after + p.follower_poll * p.stale_polls as u64 + p.boot_time
        }
    }
}

fn step(action: Action) -> Step {
    Step {
        phase: None,
        criterion: None,
        action,
    }
}

/// How long after the loss the operator keeps chatting and the sample may still end.
pub fn window(profile: &Profile) -> Millis {
    profile.takeover_bound() + Millis::secs(10)
}

/// The drill for one sample: `a` leads, `b` and `c` follow, `a` is lost `loss`'s way at a
/// seed-drawn moment, and the operator chats every [`CHAT_EVERY`] through [`window`].
pub fn takeover_scenario(profile: &Profile, loss: LossKind, seed: u64) -> Scenario {
    let (a, b, c) = (LEADER, NodeId(1), NodeId(2));
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x7a6e_0ff5);
    let phase = Millis(rng.random_range(0..refresh_period(profile).0.max(1)));
    let mut steps = vec![
        step(Action::Start { node: a }),
        step(Action::WaitFor {
            condition: Condition::Leader,
            node: Some(a),
            within: Millis::secs(30),
        }),
        step(Action::RegenerateManifest),
        step(Action::Bootstrap { node: b }),
        step(Action::Bootstrap { node: c }),
        step(Action::Wait {
            duration: Millis::secs(20) + phase,
        }),
        step(Action::Fault {
            fault: loss.fault(a),
            duration: loss.duration(profile),
        }),
    ];
    let chats = window(profile).0 / CHAT_EVERY.0;
    for i in 0..chats {
        if i > 0 {
            steps.push(step(Action::Wait {
                duration: CHAT_EVERY,
            }));
        }
        steps.push(step(Action::Chat {
            text: format!("after the loss {i}"),
            within: Millis::ZERO,
            from: None,
        }));
    }
    let mut profiles = ProfileOverrides::default();
    match profile {
        Profile::Fenced(p) => profiles.fenced = Some(p.clone()),
        Profile::OpentridentV1(p) => profiles.opentrident_v1 = Some(p.clone()),
    }
    Scenario {
        name: format!("takeover-{}-{}-{seed}", profile.name(), loss.name()),
        description: format!(
            "Takeover latency sample: the leader is lost by {}.",
            loss.name()
        ),
        failure_mode: None,
        seed,
        profile: Some(profile.name()),
        cluster: ClusterSpec {
            nodes: vec![a, b, c],
            primary: vec![a],
            hosts: BTreeMap::new(),
            hostnames: BTreeMap::new(),
        },
        network: NetworkSpec::default(),
        profiles,
        expect: BTreeMap::new(),
        // The samples come from the history; one cheap checker keeps the runner content.
        invariants: vec!["takeover-bounded".into()],
        settle: CHAT_EVERY,
        criteria: Vec::new(),
        steps,
    }
}

/// What one sample found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A new leader's first reply came this long after the loss.
    Took(Millis),
    /// Another node was already acting as leader when the loss hit (split brain), so
    /// there was nothing to take over.
    AlreadyLed,
    /// No new leader replied within the window.
    NoTakeover,
}

/// Classifies a sample's history: the loss is its first injected fault.
pub fn outcome(h: &History) -> Outcome {
    let Some(lost) = h
        .iter()
        .find(|e| matches!(e.event, Event::Fault(_)))
        .map(|e| e.at)
    else {
        return Outcome::NoTakeover;
    };
    outcome_since(h, lost)
}

/// Classifies a sample's history whose leader was lost at `lost`, for drills that inject
/// other faults (a loss rate, say) before the one that loses the leader.
pub fn outcome_since(h: &History, lost: Millis) -> Outcome {
    let split = leader_intervals(h)
        .iter()
        .any(|iv| iv.node != LEADER && iv.start <= lost && iv.end.is_none_or(|e| e > lost));
    if split {
        return Outcome::AlreadyLed;
    }
    let Some((served, node)) = takeovers(h)
        .into_iter()
        .find(|g| g.lost_at >= lost)
        .and_then(|g| g.served_at.zip(g.new_leader))
    else {
        return Outcome::NoTakeover;
    };
    h.iter()
        .find(|e| {
            e.at >= served && matches!(&e.event, Event::ChatReplied { node: n, .. } if *n == node)
        })
        .map_or(Outcome::NoTakeover, |e| Outcome::Took(e.at - lost))
}

/// Runs one sample on the fast engine.
pub fn takeover_sample(profile: &Profile, loss: LossKind, seed: u64) -> Outcome {
    let report = run_scenario(
        &takeover_scenario(profile, loss, seed),
        Engine::Fast,
        None,
        None,
        &mut |_| {},
    );
    outcome(&report.history)
}

/// The samples of one profile and loss over many seeds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Samples {
    /// Latencies of the samples that took over, ascending.
    pub latencies: Vec<Millis>,
    /// Samples where another node already led when the loss hit.
    pub already_led: usize,
    /// Samples with no takeover within the window.
    pub no_takeover: usize,
}

impl Samples {
    /// The `p`th percentile (nearest rank) of the latencies, `None` when there are none.
    pub fn percentile(&self, p: u32) -> Option<Millis> {
        let n = self.latencies.len();
        if n == 0 {
            return None;
        }
        let rank = (p as usize * n).div_ceil(100).clamp(1, n);
        Some(self.latencies[rank - 1])
    }

    /// The longest latency.
    pub fn max(&self) -> Option<Millis> {
        self.latencies.last().copied()
    }
}

/// Takeover samples for `profile` and `loss` over `seeds`.
pub fn takeover_samples(profile: &Profile, loss: LossKind, seeds: Range<u64>) -> Samples {
    let mut s = Samples::default();
    for seed in seeds {
        match takeover_sample(profile, loss, seed) {
            Outcome::Took(t) => s.latencies.push(t),
            Outcome::AlreadyLed => s.already_led += 1,
            Outcome::NoTakeover => s.no_takeover += 1,
        }
    }
    s.latencies.sort_unstable();
    s
}

/// The service hosts of a turmoil world, as [`TurmoilWorld`](crate::turmoil_engine::TurmoilWorld)
/// names them; its nodes are `node-a`, `node-b`, ….
pub const SERVICE_HOSTS: [&str; 3] = ["lease-store", "telegram", "snapshot-store"];

/// Runs a turmoil world with the turmoil engine's hosts for `nodes` nodes, its builder
/// settings and a [`TICK`] tick for `duration` of simulated time, where every host only
/// sleeps `timer_every` in a loop. Returns the steps taken.
pub fn bare_turmoil_world(nodes: usize, duration: Millis, timer_every: Millis) -> u64 {
    let mut sim = turmoil::Builder::new()
        .epoch(UNIX_EPOCH + Duration::from_millis(EPOCH_WALL.0))
        .rng_seed(1)
        .tick_duration(Duration::from_millis(TICK.0))
        .simulation_duration(Duration::from_millis(duration.0) * 2)
        .min_message_latency(Duration::ZERO)
        .max_message_latency(Duration::ZERO)
        .build();
    let every = Duration::from_millis(timer_every.0);
    let nodes = (0..nodes).map(|i| format!("node-{}", NodeId(i as u8)));
    for host in SERVICE_HOSTS.map(String::from).into_iter().chain(nodes) {
        sim.host(host, move || async move {
            loop {
                tokio::time::sleep(every).await;
            }
        });
    }
    let mut steps = 0;
    while (sim.elapsed().as_millis() as u64) < duration.0 {
        sim.step().expect("a host that only sleeps cannot fail");
        steps += 1;
    }
    steps
}
