//! The eight invariant checkers. Each one judges a recorded [`History`] and nothing else.
//!
//! Checkers see only the history because it is the one thing a simulated run, a docker
//! run and a live drill have in common. A checker that read a node's internals could not
//! judge a real run, and it would pass a node whose logs lie. Every violation is explained
//! in words and cites the seq numbers and times of the events that prove it, so a failing
//! drill reads as a story and a reader can find the proof in the JSON lines.
//!
//! Everything here is pure (no I/O, no clock) and iterates only ordered collections, so
//! the same history always gives the same report, byte for byte. That matters because
//! reports are pinned by tests and compared across replays of one seed.

use crate::history::{Entry, Event, FaultInfo, History, PollOutcome, Role};
use crate::ids::NodeId;
use crate::time::Millis;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// One of the invariants in `docs/design.md` ("Invariants the checkers own").
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Invariant {
    /// 1: at most one acting leader at any instant; no stale fencing token accepted.
    LeaderExclusive,
    /// 2: no two of our getUpdates polls end each other with 409.
    PollExclusive,
    /// 3: every chat message is answered, by the leader of the moment.
    ChatAnswered,
    /// 4: after leader loss and a healed network, a new leader serves within the bound.
    TakeoverBounded,
    /// 5: the snapshot chain is linear, moves forward, and restores hash as recorded.
    ChainIntact,
    /// 6: a tampered snapshot is refused.
    TamperRefused,
    /// 7: state lost at failover is bounded by the snapshot interval.
    RpoBounded,
    /// 8: `/readyz` is true only when serving as leader or following the actual leader.
    HealthTruthful,
}

impl Invariant {
    /// Every invariant, in the design's order.
    pub const ALL: [Invariant; 8] = [
        Invariant::LeaderExclusive,
        Invariant::PollExclusive,
        Invariant::ChatAnswered,
        Invariant::TakeoverBounded,
        Invariant::ChainIntact,
        Invariant::TamperRefused,
        Invariant::RpoBounded,
        Invariant::HealthTruthful,
    ];

    /// The invariant's number in the design (1 to 8), as people cite it.
    pub fn number(self) -> u8 {
        match self {
            Invariant::LeaderExclusive => 1,
            Invariant::PollExclusive => 2,
            Invariant::ChatAnswered => 3,
            Invariant::TakeoverBounded => 4,
            Invariant::ChainIntact => 5,
            Invariant::TamperRefused => 6,
            Invariant::RpoBounded => 7,
            Invariant::HealthTruthful => 8,
        }
    }

    /// The invariant's name, as scenario files and the command line spell it.
    pub fn name(self) -> &'static str {
        match self {
            Invariant::LeaderExclusive => "leader-exclusive",
            Invariant::PollExclusive => "poll-exclusive",
            Invariant::ChatAnswered => "chat-answered",
            Invariant::TakeoverBounded => "takeover-bounded",
            Invariant::ChainIntact => "chain-intact",
            Invariant::TamperRefused => "tamper-refused",
            Invariant::RpoBounded => "rpo-bounded",
            Invariant::HealthTruthful => "health-truthful",
        }
    }

    /// Parses a name (`chat-answered`), a number (`3`) or the display form
    /// (`3 chat-answered`), so a line copied from a report parses back.
    pub fn parse(text: &str) -> Result<Invariant, String> {
        let s = text.trim();
        Invariant::ALL
            .into_iter()
            .find(|i| i.name() == s || i.number().to_string() == s || i.to_string() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Invariant::ALL.iter().map(|i| i.name()).collect();
                format!(
                    "unknown invariant `{text}`: expected a number 1 to 8 or one of {}",
                    names.join(", ")
                )
            })
    }

    /// Safety invariants must hold at every instant; the one liveness invariant
    /// (takeover-bounded) only after faults heal, so verdicts classify them apart.
    pub fn is_safety(self) -> bool {
        self != Invariant::TakeoverBounded
    }
}

impl fmt::Display for Invariant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.number(), self.name())
    }
}

impl std::str::FromStr for Invariant {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Invariant::parse(s)
    }
}

/// The bounds a profile promises; the checkers judge against them rather than constants
/// because `opentrident-v1` and `fenced` promise very different takeover times.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckConfig {
    /// Longest allowed time from leader loss (or the last heal of a blocking fault) until a
    /// new leader polls Telegram.
    pub takeover_bound: Millis,
    /// Longest a state change may stay unsaved before the leader is lost (about the
    /// snapshot interval).
    pub rpo_bound: Millis,
    /// How long a follower may still report the leader it last observed after that leader
    /// stopped acting: news of a step-down needs a round trip to reach it, so a follower
    /// is "in sync" if its leader acted within this lag.
    pub observe_lag: Millis,
}

/// One broken invariant, with the events that prove it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Violation {
    /// Which invariant.
    pub invariant: Invariant,
    /// When it was broken (true time).
    pub at: Millis,
    /// What happened, in words, naming nodes and times.
    pub explanation: String,
    /// The seq numbers of the entries that prove it, ascending.
    pub evidence: Vec<u64>,
}

impl Violation {
    fn new(invariant: Invariant, at: Millis, explanation: String, evidence: Vec<u64>) -> Self {
        let mut evidence = evidence;
        evidence.sort_unstable();
        evidence.dedup();
        Violation {
            invariant,
            at,
            explanation,
            evidence,
        }
    }
}

/// One checker's verdict on a history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// Which invariant was judged.
    pub invariant: Invariant,
    /// Every violation, sorted by time.
    pub violations: Vec<Violation>,
    /// What the checker saw that is worth reporting even when it passes (latencies,
    /// duplicates allowed, losses counted), so a green run still shows its margins.
    pub notes: Vec<String>,
}

impl Report {
    /// True when the invariant held.
    pub fn ok(&self) -> bool {
        self.violations.is_empty()
    }

    fn new(invariant: Invariant, mut violations: Vec<Violation>, notes: Vec<String>) -> Self {
        violations.sort_by_key(|v| (v.at, v.evidence.first().copied()));
        Report {
            invariant,
            violations,
            notes,
        }
    }
}

/// Judges one invariant.
pub fn check(inv: Invariant, h: &History, cfg: &CheckConfig) -> Report {
    check_with(inv, h, &Timeline::build(h), cfg)
}

/// Judges all eight invariants, in the design's order.
pub fn check_all(h: &History, cfg: &CheckConfig) -> Vec<Report> {
    check_set(&Invariant::ALL, h, cfg)
}

/// Judges the given invariants, in the given order, building the leader timeline once.
pub fn check_set(invs: &[Invariant], h: &History, cfg: &CheckConfig) -> Vec<Report> {
    let tl = Timeline::build(h);
    invs.iter()
        .map(|inv| check_with(*inv, h, &tl, cfg))
        .collect()
}

fn check_with(inv: Invariant, h: &History, tl: &Timeline, cfg: &CheckConfig) -> Report {
    match inv {
        Invariant::LeaderExclusive => leader_exclusive(h, tl),
        Invariant::PollExclusive => poll_exclusive(h),
        Invariant::ChatAnswered => chat_answered(h, tl),
        Invariant::TakeoverBounded => takeover_bounded(h, tl, cfg),
        Invariant::ChainIntact => chain_intact(h),
        Invariant::TamperRefused => tamper_refused(h),
        Invariant::RpoBounded => rpo_bounded(h, tl, cfg),
        Invariant::HealthTruthful => health_truthful(h, tl, cfg),
    }
}

/// A stretch of time in which a node acted as leader: it had said it leads and was
/// neither paused, exited nor stepped down.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaderInterval {
    /// The node.
    pub node: NodeId,
    /// When it began to act (promotion, or resume while still leader).
    pub start: Millis,
    /// When it stopped acting; `None` while still acting at the end of the history.
    pub end: Option<Millis>,
    /// The fencing token it announced.
    pub token: Option<u64>,
    /// Why it became leader, in the node's words.
    pub why: String,
    /// The seq of the event that started the interval.
    pub start_seq: u64,
}

/// Every acting-leader interval of a history, in order of start.
pub fn leader_intervals(h: &History) -> Vec<LeaderInterval> {
    Timeline::build(h)
        .ivs
        .into_iter()
        .map(|iv| LeaderInterval {
            node: iv.node,
            start: iv.start,
            end: iv.end,
            token: iv.token,
            why: iv.why,
            start_seq: iv.start_seq,
        })
        .collect()
}

/// One leaderless gap: the service lost its last acting leader, and maybe got one back.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Takeover {
    /// When the last acting leader stopped acting.
    pub lost_at: Millis,
    /// When a leader first polled Telegram after that; `None` if none did.
    pub served_at: Option<Millis>,
    /// The node that served.
    pub new_leader: Option<NodeId>,
    /// `served_at - lost_at`, ignoring faults that blocked recovery (the takeover-bounded
    /// checker discounts those; benchmarks want the raw figure).
    pub latency: Option<Millis>,
}

/// Every leaderless gap of a history, in order.
pub fn takeovers(h: &History) -> Vec<Takeover> {
    Timeline::build(h)
        .gaps
        .iter()
        .map(|g| Takeover {
            lost_at: g.lost_at,
            served_at: g.served.map(|s| s.at),
            new_leader: g.served.map(|s| s.node),
            latency: g.served.map(|s| s.at - g.lost_at),
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// The acting-leader timeline, which four checkers share.

#[derive(Clone, Debug)]
struct Iv {
    node: NodeId,
    start: Millis,
    start_seq: u64,
    end: Option<Millis>,
    end_seq: Option<u64>,
    token: Option<u64>,
    why: String,
    /// Started by a resume rather than a promotion, so no lock-file read led to it.
    resumed: bool,
    /// How the interval ended, phrased to follow "node a …" (`was paused`).
    end_why: String,
}

impl Iv {
    /// Seqs, not times, decide whether an event fell inside: events at one instant are
    /// still ordered, and a reply sent just before a pause at the same millisecond counts.
    fn covers(&self, seq: u64) -> bool {
        self.start_seq < seq && self.end_seq.is_none_or(|e| seq < e)
    }

    fn end_or(&self, end: Millis) -> Millis {
        self.end.unwrap_or(end)
    }
}

#[derive(Default)]
struct NodeState {
    role: Option<Role>,
    token: Option<u64>,
    why: String,
    paused: bool,
    open: Option<usize>,
}

#[derive(Clone, Copy, Debug)]
struct Served {
    at: Millis,
    seq: u64,
    node: NodeId,
}

#[derive(Clone, Debug)]
struct Gap {
    lost_at: Millis,
    lost_seq: u64,
    lost_node: Option<NodeId>,
    lost_how: String,
    served: Option<Served>,
    /// Seqs of the RoleChanged→Leader events that opened an interval during the gap.
    promotions: Vec<u64>,
}

struct Timeline {
    ivs: Vec<Iv>,
    gaps: Vec<Gap>,
    end: Millis,
}

fn close(iv: &mut Iv, e: &Entry, how: String) {
    iv.end = Some(e.at);
    iv.end_seq = Some(e.seq);
    iv.end_why = how;
}

fn with_why(why: &str) -> String {
    if why.is_empty() {
        String::new()
    } else {
        format!(" ({why})")
    }
}

impl Timeline {
    fn build(h: &History) -> Timeline {
        let mut ivs: Vec<Iv> = Vec::new();
        let mut nodes: BTreeMap<NodeId, NodeState> = BTreeMap::new();
        let mut gaps: Vec<Gap> = Vec::new();
        let mut open_gap: Option<usize> = None;
        for e in h.iter() {
            let acting_before = nodes.values().filter(|s| s.open.is_some()).count();
            match &e.event {
                Event::RoleChanged {
                    node,
                    role,
                    token,
                    why,
                } => {
                    let st = nodes.entry(*node).or_default();
                    if *role == Role::Leader {
                        // Re-announcing the same term changes nothing; a new token is a new
                        // term, so the old interval ends here and a new one starts.
                        let same_term = st.open.is_some_and(|i| ivs[i].token == *token);
                        if !same_term {
                            if let Some(i) = st.open.take() {
                                close(
                                    &mut ivs[i],
                                    e,
                                    format!("took the lead again{}", tok(*token)),
                                );
                            }
                            st.role = Some(Role::Leader);
                            st.token = *token;
                            st.why = why.clone();
                            if !st.paused {
                                st.open = Some(ivs.len());
                                ivs.push(Iv {
                                    node: *node,
                                    start: e.at,
                                    start_seq: e.seq,
                                    end: None,
                                    end_seq: None,
                                    token: *token,
                                    why: why.clone(),
                                    resumed: false,
                                    end_why: String::new(),
                                });
                                if let Some(g) = open_gap {
                                    gaps[g].promotions.push(e.seq);
                                }
                            }
                        }
                    } else {
                        st.role = Some(*role);
                        if let Some(i) = st.open.take() {
                            close(&mut ivs[i], e, format!("became {role}{}", with_why(why)));
                        }
                    }
                }
                Event::ProcessExited { node, how, .. } => {
                    let st = nodes.entry(*node).or_default();
                    if let Some(i) = st.open.take() {
                        close(&mut ivs[i], e, format!("exited ({how})"));
                    }
                    *st = NodeState::default();
                }
                Event::ProcessStarted { node, .. } => {
                    let st = nodes.entry(*node).or_default();
                    if let Some(i) = st.open.take() {
                        close(&mut ivs[i], e, "restarted".into());
                    }
                    *st = NodeState::default();
                }
                Event::Paused { node } => {
                    let st = nodes.entry(*node).or_default();
                    if let Some(i) = st.open.take() {
                        close(&mut ivs[i], e, "was paused".into());
                    }
                    st.paused = true;
                }
                Event::Resumed { node } => {
                    let st = nodes.entry(*node).or_default();
                    st.paused = false;
                    // A frozen leader wakes up still believing it leads, and acts on it
                    // until it notices otherwise: that is exactly the danger to expose.
                    if st.role == Some(Role::Leader) && st.open.is_none() {
                        st.open = Some(ivs.len());
                        ivs.push(Iv {
                            node: *node,
                            start: e.at,
                            start_seq: e.seq,
                            end: None,
                            end_seq: None,
                            token: st.token,
                            why: format!(
                                "resumed from a pause still leader (led because: {})",
                                st.why
                            ),
                            resumed: true,
                            end_why: String::new(),
                        });
                    }
                }
                Event::PollStarted {
                    node: Some(node), ..
                } => {
                    let acting = nodes.get(node).is_some_and(|s| s.open.is_some());
                    if let (Some(g), true) = (open_gap, acting) {
                        gaps[g].served = Some(Served {
                            at: e.at,
                            seq: e.seq,
                            node: *node,
                        });
                        open_gap = None;
                    }
                }
                _ => {}
            }
            let acting_after = nodes.values().filter(|s| s.open.is_some()).count();
            if acting_before > 0 && acting_after == 0 && open_gap.is_none() {
                let lost = ivs.iter().find(|iv| iv.end_seq == Some(e.seq));
                open_gap = Some(gaps.len());
                gaps.push(Gap {
                    lost_at: e.at,
                    lost_seq: e.seq,
                    lost_node: lost.map(|iv| iv.node),
                    lost_how: lost.map(|iv| iv.end_why.clone()).unwrap_or_default(),
                    served: None,
                    promotions: Vec::new(),
                });
            }
        }
        Timeline {
            ivs,
            gaps,
            end: h.end(),
        }
    }

    fn acting_at(&self, seq: u64) -> Vec<&Iv> {
        self.ivs.iter().filter(|iv| iv.covers(seq)).collect()
    }

    fn acting_iv(&self, node: NodeId, seq: u64) -> Option<&Iv> {
        self.ivs.iter().find(|iv| iv.node == node && iv.covers(seq))
    }

    /// Says why `node` was not acting leader at `seq`, for explanations.
    fn not_acting(&self, node: NodeId, seq: u64) -> String {
        match self
            .ivs
            .iter()
            .rev()
            .find(|iv| iv.node == node && iv.start_seq < seq)
        {
            Some(iv) => format!(
                "its last acting-leader interval ran from {} to {}, when it {}",
                t(iv.start),
                t(iv.end_or(self.end)),
                iv.end_why
            ),
            None => "it had not acted as leader before".into(),
        }
    }

    /// Says why `node` was not acting leader at time `at` (an event at `seq` told of it).
    fn not_acting_when(&self, node: NodeId, at: Millis, seq: u64) -> String {
        match self
            .ivs
            .iter()
            .rev()
            .find(|iv| iv.node == node && iv.start_seq < seq && iv.start <= at)
        {
            Some(iv) => format!(
                "its last acting-leader interval by then ran from {} to {}, when it {}",
                t(iv.start),
                t(iv.end_or(self.end)),
                iv.end_why
            ),
            None => "it had not acted as leader by then".into(),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Words.

/// Times and durations read as seconds with a tenth (`12.0s`), or with milliseconds when
/// the tenth would round.
fn t(m: Millis) -> String {
    if m.0.is_multiple_of(100) {
        format!("{:.1}s", m.as_secs_f64())
    } else {
        format!("{:.3}s", m.as_secs_f64())
    }
}

fn tok(token: Option<u64>) -> String {
    match token {
        Some(k) => format!(" with token {k}"),
        None => " without a token".into(),
    }
}

fn token_words(token: Option<u64>) -> String {
    match token {
        Some(k) => format!("token {k}"),
        None => "no token".into(),
    }
}

fn short(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
}

fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "none".into()
    } else {
        items.join("; ")
    }
}

// ---------------------------------------------------------------------------------------
// 1. leader-exclusive

/// The lock-file read that led to a promotion: the node's last read before it, within the
/// same process and since its previous promotion, so an old term's read is never blamed.
fn lock_read_before(h: &History, node: NodeId, seq: u64) -> Option<(&Entry, String)> {
    for e in h.entries.iter().rev().filter(|e| e.seq < seq) {
        match &e.event {
            Event::LockFileRead {
                node: n,
                host,
                holder,
                last_seen_at,
                readable,
            } if *n == node => {
                let what = if !readable {
                    "unreadable, read as empty".to_string()
                } else {
                    match (holder, last_seen_at) {
                        (None, _) => "leader-heartbeat entry absent".to_string(),
                        (Some(who), Some(seen)) => {
                            format!("leader-heartbeat held by {who}, lastSeenAt {seen}")
                        }
                        (Some(who), None) => format!("leader-heartbeat held by {who}"),
                    }
                };
                return Some((e, format!("lock file on host {host}: {what}")));
            }
            Event::ProcessStarted { node: n, .. } if *n == node => return None,
            Event::RoleChanged {
                node: n,
                role: Role::Leader,
                ..
            } if *n == node => return None,
            _ => {}
        }
    }
    None
}

fn promotion_words(h: &History, iv: &Iv) -> (String, Option<u64>) {
    let mut parts = vec![token_words(iv.token)];
    if !iv.why.is_empty() {
        parts.push(format!("why: {}", iv.why));
    }
    let mut seq = None;
    if !iv.resumed {
        if let Some((e, words)) = lock_read_before(h, iv.node, iv.start_seq) {
            parts.push(format!("{words}, read at {}", t(e.at)));
            seq = Some(e.seq);
        }
    }
    (parts.join("; "), seq)
}

fn leader_exclusive(h: &History, tl: &Timeline) -> Report {
    let inv = Invariant::LeaderExclusive;
    let mut violations = Vec::new();
    // Intervals are in start order, so `b` never started before `a`.
    for (i, a) in tl.ivs.iter().enumerate() {
        for b in &tl.ivs[i + 1..] {
            if a.node == b.node {
                continue;
            }
            let (a_end, b_end) = (a.end_or(tl.end), b.end_or(tl.end));
            let until = a_end.min(b_end);
            if until <= b.start {
                continue;
            }
            let (a_words, a_read) = promotion_words(h, a);
            let (b_words, b_read) = promotion_words(h, b);
            let first_to_end = if a_end <= b_end { a } else { b };
            let ending = match first_to_end.end_seq {
                Some(_) => format!(
                    "until {}, when node {} {}",
                    t(until),
                    first_to_end.node,
                    first_to_end.end_why
                ),
                None => format!("still both leading when the history ends at {}", t(until)),
            };
            let mut evidence = vec![a.start_seq, b.start_seq];
            evidence.extend(a_read);
            evidence.extend(b_read);
            evidence.extend(first_to_end.end_seq);
            violations.push(Violation::new(
                inv,
                b.start,
                format!(
                    "node {} took the lead at {} ({}) while node {} was leader since {} ({}); overlap {}, {}",
                    b.node,
                    t(b.start),
                    b_words,
                    a.node,
                    t(a.start),
                    a_words,
                    t(until - b.start),
                    ending
                ),
                evidence,
            ));
        }
    }

    // Fencing: the store must never accept a publish whose token is below one it already
    // accepted, or a deposed leader can overwrite its successor's work.
    let mut highest: Option<(u64, &Entry)> = None;
    for e in h.iter() {
        let Event::SnapshotPublished {
            node,
            id,
            token: Some(token),
            accepted: true,
            ..
        } = &e.event
        else {
            continue;
        };
        if let Some((best, be)) = highest {
            if *token < best {
                let (prev_node, prev_id) = match &be.event {
                    Event::SnapshotPublished { node, id, .. } => (node.to_string(), id.clone()),
                    _ => unreachable!("only publishes are kept"),
                };
                violations.push(Violation::new(
                    inv,
                    e.at,
                    format!(
                        "the snapshot store accepted node {node}'s publish {id} with stale token {token} at {}, after it had accepted node {prev_node}'s publish {prev_id} with token {best} at {}",
                        t(e.at),
                        t(be.at)
                    ),
                    vec![be.seq, e.seq],
                ));
            }
        }
        if highest.is_none_or(|(best, _)| *token > best) {
            highest = Some((*token, e));
        }
    }

    let mut notes = vec![format!("{} acting-leader intervals", tl.ivs.len())];
    const SHOWN: usize = 20;
    for iv in tl.ivs.iter().take(SHOWN) {
        let end = match iv.end {
            Some(end) => format!("{} ({})", t(end), iv.end_why),
            None => "the end".into(),
        };
        notes.push(format!(
            "node {} led from {} to {} with {}",
            iv.node,
            t(iv.start),
            end,
            token_words(iv.token)
        ));
    }
    if tl.ivs.len() > SHOWN {
        notes.push(format!("… and {} more intervals", tl.ivs.len() - SHOWN));
    }
    Report::new(inv, violations, notes)
}

// ---------------------------------------------------------------------------------------
// 2. poll-exclusive

struct Conflict {
    at: Millis,
    seq: u64,
    ender: NodeId,
    ender_poll: Option<(u64, Millis)>,
    victim: NodeId,
    victim_poll: u64,
    victim_start: Option<Millis>,
}

impl Conflict {
    fn words(&self) -> String {
        let ender = match self.ender_poll {
            Some((poll, at)) => format!("(poll {poll} at {})", t(at)),
            None => "(no poll start recorded)".into(),
        };
        let since = match self.victim_start {
            Some(s) => format!(" (that poll had started at {})", t(s)),
            None => String::new(),
        };
        format!(
            "node {}'s getUpdates {ender} ended node {}'s poll {} with 409 Conflict at {}{since}",
            self.ender,
            self.victim,
            self.victim_poll,
            t(self.at)
        )
    }
}

fn poll_exclusive(h: &History) -> Report {
    let inv = Invariant::PollExclusive;
    let mut poll_start: BTreeMap<u64, Millis> = BTreeMap::new();
    let mut latest_poll: BTreeMap<NodeId, (u64, Millis)> = BTreeMap::new();
    let mut pairs: BTreeMap<(NodeId, NodeId), Vec<Conflict>> = BTreeMap::new();
    let (mut polls, mut foreign_ended_ours, mut ours_ended_foreign, mut unattributed) =
        (0usize, 0usize, 0usize, 0usize);
    for e in h.iter() {
        match &e.event {
            Event::PollStarted { node, poll, .. } => {
                polls += 1;
                poll_start.insert(*poll, e.at);
                if let Some(n) = node {
                    latest_poll.insert(*n, (*poll, e.at));
                }
            }
            Event::PollEnded {
                node,
                poll,
                outcome: PollOutcome::Conflict,
                by,
            } => match (node, by) {
                (Some(victim), Some(Some(ender))) => {
                    let key = ((*victim).min(*ender), (*victim).max(*ender));
                    pairs.entry(key).or_default().push(Conflict {
                        at: e.at,
                        seq: e.seq,
                        ender: *ender,
                        ender_poll: latest_poll.get(ender).copied(),
                        victim: *victim,
                        victim_poll: *poll,
                        victim_start: poll_start.get(poll).copied(),
                    });
                }
                (Some(_), Some(None)) => foreign_ended_ours += 1,
                (None, _) => ours_ended_foreign += 1,
                (Some(_), None) => unattributed += 1,
            },
            _ => {}
        }
    }
    let mut violations = Vec::new();
    let mut ours = 0;
    for ((x, y), hits) in &pairs {
        ours += hits.len();
        let first = &hits[0];
        let mut text = first.words();
        if hits.len() > 1 {
            let last = &hits[hits.len() - 1];
            let by_x = hits.iter().filter(|c| c.ender == *x).count();
            let by_y = hits.len() - by_x;
            text.push_str(&format!(
                "; {} such conflicts between nodes {x} and {y} from {} to {} ({x} ended {y}'s poll {by_x} times, {y} ended {x}'s {by_y} times); the last: {}",
                hits.len(),
                t(first.at),
                t(last.at),
                last.words()
            ));
        }
        violations.push(Violation::new(
            inv,
            first.at,
            text,
            hits.iter().take(5).map(|c| c.seq).collect(),
        ));
    }
    let notes = vec![
        format!("{polls} getUpdates polls; {ours} ended by another of our nodes with 409"),
        format!(
            "409 with a foreign poller (not our nodes, not judged): {foreign_ended_ours} of our polls ended by it, {ours_ended_foreign} of its polls ended"
        ),
        format!("409 without a recorded culprit (not judged): {unattributed}"),
    ];
    Report::new(inv, violations, notes)
}

// ---------------------------------------------------------------------------------------
// 3. chat-answered

#[derive(Clone, Copy)]
struct Reply {
    at: Millis,
    seq: u64,
    node: NodeId,
}

/// Telegram records a reply when it arrives. A reply that arrives after its sender's
/// last acting interval ended because the process died or froze, with that process not
/// resumed since, was sent while it still led: a dead or frozen process sends nothing, so
/// it was in flight when the leader was lost. A later incarnation of the node (a restart)
/// cannot have sent it when the reply names an earlier one; without an incarnation (a
/// real double cannot tell), any restart in between makes the reply unexplained.
fn sent_before_it_stopped(
    h: &History,
    tl: &Timeline,
    node: NodeId,
    incarnation: Option<u32>,
    seq: u64,
) -> bool {
    let Some(last) = tl
        .ivs
        .iter()
        .rev()
        .find(|iv| iv.node == node && iv.end_seq.is_some_and(|end| end < seq))
    else {
        return false;
    };
    let end = last.end_seq.expect("found by its end");
    let end_at = last.end.expect("found by its end");
    let between = h.iter().filter(|e| e.seq >= end && e.seq < seq);
    let mut stopped = false;
    // Whether the process now running (or frozen) is the one that sent the reply.
    let mut sender_current = true;
    for e in between {
        match &e.event {
            // Only a death or freeze at the instant the leadership ended: a node that
            // stepped down and died later could have sent the reply in between.
            Event::ProcessExited { node: n, .. } | Event::Paused { node: n }
                if *n == node && sender_current =>
            {
                if e.at != end_at {
                    return false;
                }
                stopped = true;
            }
            Event::ProcessStarted {
                node: n,
                incarnation: started,
            } if *n == node => match incarnation {
                Some(sender) if sender != *started => sender_current = false,
                _ => return false,
            },
            Event::Resumed { node: n } if *n == node && sender_current => return false,
            _ => {}
        }
    }
    stopped
}

/// Whether `node` was acting leader when it sent, at `sent`, a reply that reached Telegram
/// at `seq`. Intervals are judged by time here (a send time is all the recorder knows), so
/// at a boundary instant: an interval includes its first millisecond (a resumed leader
/// answers what waited for it at once) and excludes its last one, unless its process died
/// or froze then (a dead or frozen process sends nothing after that instant).
fn sent_while_acting(h: &History, tl: &Timeline, node: NodeId, sent: Millis, seq: u64) -> bool {
    tl.ivs.iter().any(|iv| {
        iv.node == node
            && iv.start_seq < seq
            && iv.start <= sent
            && match (iv.end, iv.end_seq) {
                (Some(end), Some(end_seq)) if sent == end => h.iter().any(|e| {
                    e.seq >= end_seq
                        && e.at == end
                        && matches!(&e.event,
                            Event::ProcessExited { node: n, .. } | Event::Paused { node: n }
                                if *n == node)
                }),
                (Some(end), _) => sent < end,
                (None, _) => true,
            }
    })
}

fn chat_answered(h: &History, tl: &Timeline) -> Report {
    let inv = Invariant::ChatAnswered;
    let mut sent: Vec<(i64, &Entry, &str)> = Vec::new();
    let mut replies: BTreeMap<i64, Vec<Reply>> = BTreeMap::new();
    let mut delivered: BTreeMap<i64, Vec<(Millis, u64, NodeId)>> = BTreeMap::new();
    let mut violations = Vec::new();
    for e in h.iter() {
        match &e.event {
            Event::ChatSent { update_id, text } => sent.push((*update_id, e, text)),
            Event::ChatDelivered { update_id, node } => {
                delivered
                    .entry(*update_id)
                    .or_default()
                    .push((e.at, e.seq, *node));
            }
            Event::ChatReplied {
                update_id,
                node,
                incarnation,
                sent_at,
                ..
            } => {
                // With its send time known, a reply is judged by when it was sent: one
                // sent while leading may arrive after the lead ended, one sent outside a
                // lead may not pass because it arrived inside one. Without it, by when it
                // arrived, excusing one that can only have been in flight.
                let ok = match sent_at {
                    Some(sent) => sent_while_acting(h, tl, *node, *sent, e.seq),
                    None => {
                        tl.acting_iv(*node, e.seq).is_some()
                            || sent_before_it_stopped(h, tl, *node, *incarnation, e.seq)
                    }
                };
                if !ok {
                    let (when, why) = match sent_at {
                        Some(sent) => (
                            format!("sent at {} (arriving at {})", t(*sent), t(e.at)),
                            tl.not_acting_when(*node, *sent, e.seq),
                        ),
                        None => (format!("at {}", t(e.at)), tl.not_acting(*node, e.seq)),
                    };
                    violations.push(Violation::new(
                        inv,
                        e.at,
                        format!(
                            "node {node} answered update {update_id} {when} but was not acting leader: {why}"
                        ),
                        vec![e.seq],
                    ));
                }
                replies.entry(*update_id).or_default().push(Reply {
                    at: e.at,
                    seq: e.seq,
                    node: *node,
                });
            }
            _ => {}
        }
    }

    let (mut answered, mut lost) = (0usize, 0usize);
    let mut allowed: Vec<String> = Vec::new();
    for (update, se, text) in &sent {
        let rs = replies.get(update).map(Vec::as_slice).unwrap_or(&[]);
        if rs.is_empty() {
            lost += 1;
            let ds = delivered.get(update).map(Vec::as_slice).unwrap_or(&[]);
            let fate = if ds.is_empty() {
                "Telegram never delivered it".to_string()
            } else {
                let to: Vec<String> = ds
                    .iter()
                    .map(|(at, _, n)| format!("node {n} at {}", t(*at)))
                    .collect();
                format!("Telegram delivered it to {}", to.join(", "))
            };
            let mut evidence = vec![se.seq];
            evidence.extend(ds.iter().map(|d| d.1));
            violations.push(Violation::new(
                inv,
                se.at,
                format!(
                    "update {update} (\"{text}\") sent at {} was never answered by the end of the history at {}; {fate}",
                    t(se.at),
                    t(tl.end)
                ),
                evidence,
            ));
            continue;
        }
        answered += 1;
        for (k, later) in rs.iter().enumerate().skip(1) {
            // A duplicate is excusable only if every earlier replier had lost the lead
            // before this reply: then the update was in flight when its leader died.
            // It is excusable too if the earlier replier polled again without confirming
            // the update: its reply's answer was lost, so it could not know it landed.
            let unconfirmed = |earlier: &&_| {
                let earlier: &Reply = earlier;
                h.iter().any(|e| {
                    e.seq > earlier.seq
                        && e.seq < later.seq
                        && matches!(&e.event, Event::PollStarted { node: Some(n), offset, .. }
                            if *n == earlier.node && offset.is_none_or(|o| o <= *update))
                })
            };
            let blocking = rs[..k]
                .iter()
                .filter(|e| !unconfirmed(e))
                .find_map(|earlier| {
                    tl.acting_iv(earlier.node, earlier.seq)
                        .filter(|iv| iv.end_seq.is_none_or(|end| end > later.seq))
                        .map(|iv| (earlier, iv))
                });
            match blocking {
                Some((earlier, iv)) => violations.push(Violation::new(
                    inv,
                    later.at,
                    format!(
                        "update {update} was answered again by node {} at {} while node {}, which had answered it at {}, was still acting leader (since {})",
                        later.node,
                        t(later.at),
                        earlier.node,
                        t(earlier.at),
                        t(iv.start)
                    ),
                    vec![se.seq, earlier.seq, later.seq],
                )),
                None => {
                    let prev = rs[k - 1];
                    allowed.push(format!(
                        "update {update}: node {} at {}, again by node {} at {} after {}'s lead had ended",
                        prev.node,
                        t(prev.at),
                        later.node,
                        t(later.at),
                        prev.node
                    ));
                }
            }
        }
    }
    let known: BTreeSet<i64> = sent.iter().map(|s| s.0).collect();
    let strays: Vec<String> = replies
        .keys()
        .filter(|u| !known.contains(u))
        .map(|u| u.to_string())
        .collect();
    let mut notes = vec![
        format!(
            "{} messages sent: {answered} answered, {lost} lost",
            sent.len()
        ),
        format!(
            "{} duplicates allowed (leader lost while in flight): {}",
            allowed.len(),
            list_or_none(&allowed)
        ),
    ];
    if !strays.is_empty() {
        notes.push(format!(
            "replies to updates this history never sent: {}",
            strays.join(", ")
        ));
    }
    Report::new(inv, violations, notes)
}

// ---------------------------------------------------------------------------------------
// 4. takeover-bounded

/// Kinds that are the leader loss itself; every other fault is one that can block the
/// recovery (a cut link, a faulted store) and so holds the takeover clock.
const LOSS_KINDS: [&str; 5] = ["kill", "stop", "crash", "pause", "exit"];

struct Blocking {
    start: Millis,
    end: Option<Millis>,
    what: String,
}

fn blocking_faults(h: &History) -> Vec<Blocking> {
    let mut out: Vec<Blocking> = Vec::new();
    let mut active: BTreeMap<(String, String, String), Vec<usize>> = BTreeMap::new();
    for e in h.iter() {
        match &e.event {
            Event::Fault(f) if !LOSS_KINDS.contains(&f.kind.as_str()) => {
                let key = (f.kind.clone(), f.target.clone(), f.detail.clone());
                active.entry(key).or_default().push(out.len());
                let detail = if f.detail.is_empty() {
                    String::new()
                } else {
                    format!(" {}", f.detail)
                };
                out.push(Blocking {
                    start: e.at,
                    end: None,
                    what: format!("{} {}{detail}", f.kind, f.target),
                });
            }
            Event::Heal(f) => {
                let key = (f.kind.clone(), f.target.clone(), f.detail.clone());
                if let Some(open) = active.get_mut(&key) {
                    if !open.is_empty() {
                        let i = open.remove(0);
                        out[i].end = Some(e.at);
                    }
                }
            }
            _ => {}
        }
    }
    out
}

/// The stretches during which every node's process was down or frozen, as `(from, until)`
/// (`until` is `None` when no process ran again by the end of the history), keeping those
/// that began before `to` and had not ended by `from`. A node counts as running unless the
/// history shows it exited or paused and not yet started or resumed again (so a history
/// that records no processes, such as a checker test's, has every node it names running).
fn all_down(h: &History, from: Millis, to: Millis) -> Vec<(Millis, Option<Millis>)> {
    let known: BTreeSet<NodeId> = h.iter().filter_map(|e| e.event.node()).collect();
    if known.is_empty() {
        return vec![(Millis::ZERO, None)];
    }
    let mut down: BTreeSet<NodeId> = BTreeSet::new();
    let mut since: Option<Millis> = None;
    let mut out = Vec::new();
    for e in h.iter() {
        match &e.event {
            Event::ProcessStarted { node, .. } | Event::Resumed { node } => {
                down.remove(node);
            }
            Event::ProcessExited { node, .. } | Event::Paused { node } => {
                down.insert(*node);
            }
            _ => continue,
        }
        let all = down.len() == known.len();
        match since {
            None if all => since = Some(e.at),
            Some(began) if !all => {
                out.push((began, Some(e.at)));
                since = None;
            }
            _ => {}
        }
    }
    if let Some(began) = since {
        out.push((began, None));
    }
    out.retain(|(began, until)| *began < to && until.is_none_or(|u| u > from));
    out
}

fn takeover_bounded(h: &History, tl: &Timeline, cfg: &CheckConfig) -> Report {
    let inv = Invariant::TakeoverBounded;
    let faults = blocking_faults(h);
    let mut violations = Vec::new();
    let mut notes = vec![format!(
        "{} leaderless gaps; bound {}",
        tl.gaps.len(),
        t(cfg.takeover_bound)
    )];
    for g in &tl.gaps {
        let gap_end = g.served.map_or(tl.end, |s| s.at);
        let lost = match g.lost_node {
            Some(n) => format!("node {n} {} at {}", g.lost_how, t(g.lost_at)),
            None => format!("the last leader was lost at {}", t(g.lost_at)),
        };
        let outcome = match g.served {
            Some(s) => format!(
                "node {} served (polled as leader) at {}, {} after the loss",
                s.node,
                t(s.at),
                t(s.at - g.lost_at)
            ),
            None => format!(
                "no leader served by the end of the history at {}, {} after the loss",
                t(tl.end),
                t(tl.end - g.lost_at)
            ),
        };
        let overlapping: Vec<&Blocking> = faults
            .iter()
            .filter(|f| f.start < gap_end && f.end.is_none_or(|end| end > g.lost_at))
            .collect();
        if let Some(f) = overlapping
            .iter()
            .find(|f| f.end.is_none_or(|end| end > gap_end))
        {
            notes.push(format!(
                "{lost}; {outcome}; not judged: blocking fault {} was still active at {}",
                f.what,
                t(gap_end)
            ));
            continue;
        }
        let last_heal = overlapping
            .iter()
            .filter_map(|f| f.end.map(|end| (end, f.what.as_str())))
            .max_by_key(|(end, _)| *end);
        let (mut start, mut from) = match last_heal {
            Some((end, what)) if end > g.lost_at => {
                (end, format!("from {}, when {what} healed", t(end)))
            }
            _ => (g.lost_at, "from the loss".to_string()),
        };
        // With every node down or frozen there is nobody to take over: the clock starts
        // again when the first process runs again. The time some node ran before they all
        // stopped is judged too, so that stopping them cannot excuse a takeover that was
        // already late.
        let mut late_before_all_down: Option<Millis> = None;
        let mut never_up_again = false;
        for (began, until) in all_down(h, g.lost_at, gap_end) {
            if began > start && began - start > cfg.takeover_bound {
                late_before_all_down = Some(began);
                break;
            }
            match until {
                Some(up) if up > start => {
                    start = up;
                    from = format!("from {}, when a node ran again after all were down", t(up));
                }
                Some(_) => {}
                None => {
                    never_up_again = true;
                    break;
                }
            }
        }
        if let Some(began) = late_before_all_down {
            let took = began - start;
            notes.push(format!(
                "{lost}; {outcome}; judged {from}: nobody served in the {} until every node was down or frozen at {}",
                t(took),
                t(began)
            ));
            violations.push(Violation::new(
                inv,
                start + cfg.takeover_bound,
                format!(
                    "{lost}; no leader served in the {} counted {from} while some node ran (until every node was down or frozen at {}), over the bound of {}",
                    t(took),
                    t(began),
                    t(cfg.takeover_bound)
                ),
                vec![g.lost_seq],
            ));
            continue;
        }
        if never_up_again {
            notes.push(format!(
                "{lost}; {outcome}; not judged: no node was running again by the end"
            ));
            continue;
        }
        let took = gap_end - start;
        notes.push(format!("{lost}; {outcome}; judged {from}: {}", t(took)));
        if took > cfg.takeover_bound {
            let mut evidence = vec![g.lost_seq];
            evidence.extend(g.served.map(|s| s.seq));
            let served = match g.served {
                Some(s) => format!("node {} first served as leader at {}", s.node, t(s.at)),
                None => format!(
                    "no leader had served by the end of the history at {}",
                    t(tl.end)
                ),
            };
            violations.push(Violation::new(
                inv,
                start + cfg.takeover_bound,
                format!(
                    "{lost}; {served}: {} counted {from}, over the bound of {}",
                    t(took),
                    t(cfg.takeover_bound)
                ),
                evidence,
            ));
        }
    }
    Report::new(inv, violations, notes)
}

// ---------------------------------------------------------------------------------------
// 5. chain-intact

struct Head<'a> {
    at: Millis,
    seq: u64,
    node: NodeId,
    id: &'a str,
    version: u64,
}

fn chain_intact(h: &History) -> Report {
    let inv = Invariant::ChainIntact;
    let mut violations = Vec::new();
    let mut notes = Vec::new();
    let mut head: Option<Head> = None;
    let (mut accepted, mut refused, mut restores) = (0usize, 0usize, 0usize);
    for e in h.iter() {
        match &e.event {
            Event::SnapshotPublished {
                node,
                id,
                version,
                parent,
                accepted: ok,
                note,
                ..
            } => {
                if note == "clobbered" {
                    notes.push(format!(
                        "node {node}'s publish {id} at {} clobbered an existing asset",
                        t(e.at)
                    ));
                }
                if !ok {
                    refused += 1;
                    continue;
                }
                accepted += 1;
                if let Some(hd) = &head {
                    if parent.as_deref() != Some(hd.id) {
                        let on = match parent {
                            Some(p) => format!("on parent {p}"),
                            None => "with no parent".into(),
                        };
                        violations.push(Violation::new(
                            inv,
                            e.at,
                            format!(
                                "node {node} published snapshot {id} at {} {on}, but the head was {} (published by node {} at {}): the chain forked",
                                t(e.at),
                                hd.id,
                                hd.node,
                                t(hd.at)
                            ),
                            vec![hd.seq, e.seq],
                        ));
                    }
                    if *version > 0 && *version <= hd.version {
                        violations.push(Violation::new(
                            inv,
                            e.at,
                            format!(
                                "node {node}'s snapshot {id} (version {version}) became head at {} after node {}'s {} (version {}) from {}: the head did not move forward",
                                t(e.at),
                                hd.node,
                                hd.id,
                                hd.version,
                                t(hd.at)
                            ),
                            vec![hd.seq, e.seq],
                        ));
                    }
                }
                head = Some(Head {
                    at: e.at,
                    seq: e.seq,
                    node: *node,
                    id,
                    version: *version,
                });
            }
            Event::RestoreVerified {
                node,
                fetch_id,
                snapshot,
                recorded,
                restored,
                ..
            } => {
                restores += 1;
                let rec: BTreeMap<&str, &str> = recorded
                    .iter()
                    .map(|(f, x)| (f.as_str(), x.as_str()))
                    .collect();
                let got: BTreeMap<&str, &str> = restored
                    .iter()
                    .map(|(f, x)| (f.as_str(), x.as_str()))
                    .collect();
                let files: BTreeSet<&str> = rec.keys().chain(got.keys()).copied().collect();
                let mut diffs = Vec::new();
                for f in files {
                    match (rec.get(f), got.get(f)) {
                        (Some(r), Some(g)) if r != g => diffs.push(format!(
                            "{f} hashes to {} but the manifest records {}",
                            short(g),
                            short(r)
                        )),
                        (Some(r), None) => diffs.push(format!(
                            "{f} is recorded ({}) but was not restored",
                            short(r)
                        )),
                        (None, Some(g)) => diffs.push(format!(
                            "{f} was restored ({}) but the manifest records no hash for it",
                            short(g)
                        )),
                        _ => {}
                    }
                }
                if !diffs.is_empty() {
                    violations.push(Violation::new(
                        inv,
                        e.at,
                        format!(
                            "node {node} restored snapshot {snapshot} (fetch {fetch_id}) at {} but its files do not match the manifest: {}",
                            t(e.at),
                            diffs.join("; ")
                        ),
                        vec![e.seq],
                    ));
                }
            }
            _ => {}
        }
    }
    let head_words = match &head {
        Some(hd) => format!("head {} version {} by node {}", hd.id, hd.version, hd.node),
        None => "no head".into(),
    };
    notes.insert(
        0,
        format!("{accepted} publishes accepted, {refused} refused; {head_words}; {restores} restores verified"),
    );
    Report::new(inv, violations, notes)
}

// ---------------------------------------------------------------------------------------
// 6. tamper-refused

fn tamper_refused(h: &History) -> Report {
    let inv = Invariant::TamperRefused;
    // (node, fetch) → (served entry, snapshot id, tamper kind, verdict given)
    let mut tampered: BTreeMap<(NodeId, u64), (&Entry, String, &str, bool)> = BTreeMap::new();
    let mut violations = Vec::new();
    let mut notes = Vec::new();
    for e in h.iter() {
        match &e.event {
            Event::SnapshotServed {
                node,
                fetch_id,
                id,
                tamper: Some(kind),
            } => {
                let id = id.clone().unwrap_or_else(|| "(unnamed)".into());
                tampered.insert((*node, *fetch_id), (e, id, kind, false));
            }
            Event::RestoreVerified {
                node,
                fetch_id,
                version,
                ..
            } => {
                if let Some((se, id, kind, seen)) = tampered.get_mut(&(*node, *fetch_id)) {
                    *seen = true;
                    // A replayed old head is detectable only against a higher version the
                    // node trusted before (TUF's persisted version); a blank node cannot
                    // know a newer one exists.
                    let trusted_higher =
                        h.entries
                            .iter()
                            .take_while(|x| x.seq < e.seq)
                            .any(|x| match &x.event {
                                Event::RestoreVerified {
                                    node: n,
                                    version: v,
                                    ..
                                } => n == node && v > version,
                                Event::SnapshotPublished {
                                    node: n,
                                    version: v,
                                    accepted: true,
                                    ..
                                } => n == node && v > version,
                                _ => false,
                            });
                    if *kind == "rollback" && !trusted_higher {
                        notes.push(format!(
                            "node {node} restored a replayed older head ({id}) at {} with no higher version trusted before: undetectable, not a violation",
                            t(e.at)
                        ));
                        continue;
                    }
                    let mut evidence = vec![se.seq, e.seq];
                    let later_lead = h.entries.iter().find(|x| {
                        x.seq > e.seq
                            && matches!(&x.event, Event::RoleChanged { node: n, role: Role::Leader, .. } if n == node)
                    });
                    let then = match later_lead {
                        Some(x) => {
                            evidence.push(x.seq);
                            format!("; it then took the lead at {}", t(x.at))
                        }
                        None => String::new(),
                    };
                    violations.push(Violation::new(
                        inv,
                        e.at,
                        format!(
                            "node {node} accepted a snapshot tampered with {kind}: fetch {fetch_id} of {id} was served at {} and verified and restored at {}{then}",
                            t(se.at),
                            t(e.at)
                        ),
                        evidence,
                    ));
                }
            }
            Event::RestoreRefused {
                node,
                fetch_id: Some(fetch_id),
                reason,
            } => {
                if let Some((_, id, kind, seen)) = tampered.get_mut(&(*node, *fetch_id)) {
                    *seen = true;
                    notes.push(format!(
                        "node {node} refused fetch {fetch_id} of {id} (tampered with {kind}) at {}: {reason}",
                        t(e.at)
                    ));
                }
            }
            _ => {}
        }
    }
    for ((node, fetch), (se, id, kind, seen)) in &tampered {
        if !seen {
            notes.push(format!(
                "node {node} gave no verdict on fetch {fetch} of {id} (tampered with {kind}, served at {})",
                t(se.at)
            ));
        }
    }
    notes.insert(0, format!("{} tampered snapshots served", tampered.len()));
    Report::new(inv, violations, notes)
}

// ---------------------------------------------------------------------------------------
// 7. rpo-bounded

/// Whether a fault keeps `leader` from saving state: the store down, slow or tampered,
/// the whole network slowed or lossy, or the leader cut from the snapshot store or the
/// lease store (it cannot publish under a valid token). A cut elsewhere excuses nothing.
fn blocks_saving(f: &FaultInfo, leader: NodeId) -> bool {
    let me = leader.to_string();
    let is_store = |end: &str| end == "snapshot-store" || end == "lease-store";
    let cut = |a: &str, b: &str| (a == me && is_store(b)) || (b == me && is_store(a));
    match f.kind.as_str() {
        "store-down" | "store-slow" | "store-tamper" | "latency" | "loss" => true,
        "isolate" => f.target == me,
        "partition" => cut(&f.target, f.detail.trim_start_matches("<-> ")),
        "partition-oneway" => cut(&f.target, f.detail.trim_start_matches("-> ")),
        _ => false,
    }
}

/// How much of `[from, to]` had a fault in place that keeps `leader` from saving state
/// ([`blocks_saving`]).
fn store_fault_time(h: &History, leader: NodeId, from: Millis, to: Millis) -> Millis {
    let blocks = |f: &FaultInfo| blocks_saving(f, leader);
    let mut open: Vec<(String, Millis)> = Vec::new();
    let mut windows: Vec<(Millis, Millis)> = Vec::new();
    for e in h.iter() {
        match &e.event {
            Event::Fault(f) if blocks(f) => {
                open.push((format!("{}|{}|{}", f.kind, f.target, f.detail), e.at))
            }
            Event::Heal(f) if blocks(f) => {
                let key = format!("{}|{}|{}", f.kind, f.target, f.detail);
                if let Some(i) = open.iter().position(|(k, _)| *k == key) {
                    let (_, s) = open.remove(i);
                    windows.push((s, e.at));
                }
            }
            _ => {}
        }
    }
    windows.extend(open.into_iter().map(|(_, s)| (s, h.end())));
    // Union of the windows, clipped to [from, to].
    windows.sort();
    let mut total = Millis::ZERO;
    let mut cursor = from;
    for (s, e) in windows {
        let s = s.max(cursor);
        let e = e.min(to);
        if e > s {
            total = total + (e - s);
            cursor = e;
        }
    }
    total
}

/// Where the lost leader's last term began: the promotion that opened it, looking through
/// pauses (a resumed leader's interval continues the same term). Without a lost leader,
/// the start of the history.
fn term_start(tl: &Timeline, g: &Gap) -> u64 {
    let Some(mut iv) = tl.ivs.iter().find(|iv| iv.end_seq == Some(g.lost_seq)) else {
        return 0;
    };
    while iv.resumed {
        let before = tl
            .ivs
            .iter()
            .rev()
            .find(|p| p.node == iv.node && p.end_seq.is_some_and(|end| end <= iv.start_seq));
        match before {
            Some(p) => iv = p,
            None => break,
        }
    }
    iv.start_seq
}

fn rpo_bounded(h: &History, tl: &Timeline, cfg: &CheckConfig) -> Report {
    let inv = Invariant::RpoBounded;
    let mut violations = Vec::new();
    let mut notes = Vec::new();
    for g in &tl.gaps {
        for &p in &g.promotions {
            let pe = &h.entries[h.entries.partition_point(|e| e.seq < p)];
            let Event::RoleChanged { node, .. } = &pe.event else {
                unreachable!("promotions are RoleChanged entries");
            };
            // What the new leader holds: its last restore or its own last change.
            let own = h
                .entries
                .iter()
                .filter(|e| e.seq < p)
                .rev()
                .find_map(|e| match &e.event {
                    Event::RestoreVerified {
                        node: n,
                        state_version,
                        ..
                    } if n == node => Some((*state_version, e)),
                    Event::StateChanged { node: n, version } if n == node => Some((*version, e)),
                    _ => None,
                });
            let have = own.map_or(0, |(v, _)| v);
            // What the lost leader changed in its last term: earlier terms' changes were
            // judged at their own losses, and another lineage's version numbers mean
            // other states.
            let term = h
                .entries
                .iter()
                .filter(|e| e.seq > term_start(tl, g) && e.seq < g.lost_seq);
            let changes: Vec<(&Entry, NodeId, u64)> = term
                .filter_map(|e| match &e.event {
                    Event::StateChanged { node: n, version }
                        if g.lost_node.is_none_or(|l| l == *n) =>
                    {
                        Some((e, *n, *version))
                    }
                    _ => None,
                })
                .collect();
            let latest = changes.iter().map(|c| c.2).max().unwrap_or(0);
            let lost = latest.saturating_sub(have);
            notes.push(format!(
                "node {node} took the lead at {} after the loss at {} holding state version {have} of {latest}: {lost} updates lost",
                t(pe.at),
                t(g.lost_at)
            ));
            if lost == 0 {
                continue;
            }
            // State the lost leader did save, but which the new leader could not restore
            // because the store was down, slow or lying while it took over, was lost by
            // the store, not by the protocol: the budget runs from the first change after
            // it.
            let saved = h
                .entries
                .iter()
                .filter(|e| e.seq > term_start(tl, g) && e.seq < g.lost_seq)
                .filter_map(|e| match &e.event {
                    Event::SnapshotPublished {
                        node: n,
                        accepted: true,
                        state_version,
                        ..
                    } if g.lost_node.is_none_or(|l| l == *n) => Some(*state_version),
                    _ => None,
                })
                .max()
                .unwrap_or(0);
            let restore_blocked =
                store_fault_time(h, *node, g.lost_at, pe.at + Millis(1)) > Millis::ZERO;
            let floor = if restore_blocked && saved > have {
                notes.push(format!(
                    "node {node} could not restore saved state version {saved} under store faults; {} updates lost to the store",
                    saved - have
                ));
                saved
            } else {
                have
            };
            let Some(&(ue, unode, uversion)) = changes.iter().find(|c| c.2 > floor) else {
                continue;
            };
            let age = g.lost_at.saturating_sub(ue.at);
            // No protocol can save state to a store it cannot reach or that serves lies:
            // time under such faults extends the budget, and the note says by how much.
            let excused = store_fault_time(h, unode, ue.at, g.lost_at);
            if excused > Millis::ZERO {
                notes.push(format!(
                    "state unsaved for {} before the loss at {}, {} of it under store or partition faults",
                    t(age),
                    t(g.lost_at),
                    t(excused)
                ));
            }
            if age > cfg.rpo_bound + excused {
                let mut evidence = vec![ue.seq, g.lost_seq, p];
                evidence.extend(own.map(|(_, e)| e.seq));
                violations.push(Violation::new(
                    inv,
                    pe.at,
                    format!(
                        "node {node} took the lead at {} with state version {have}, but version {uversion} existed on node {unode} since {}, {} before the leader was lost at {} (over the RPO bound of {}): {lost} updates lost",
                        t(pe.at),
                        t(ue.at),
                        t(age),
                        t(g.lost_at),
                        t(cfg.rpo_bound)
                    ),
                    evidence,
                ));
            }
        }
    }
    if notes.is_empty() {
        notes.push("no promotion after a leaderless gap".into());
    }
    Report::new(inv, violations, notes)
}

// ---------------------------------------------------------------------------------------
// 8. health-truthful

fn health_truthful(h: &History, tl: &Timeline, cfg: &CheckConfig) -> Report {
    let inv = Invariant::HealthTruthful;
    let mut violations = Vec::new();
    let (mut probes, mut ready) = (0usize, 0usize);
    for e in h.iter() {
        let Event::HealthProbe {
            node,
            readyz,
            role,
            observed_leader,
            ..
        } = &e.event
        else {
            continue;
        };
        probes += 1;
        if !readyz {
            continue;
        }
        ready += 1;
        let acting = tl.acting_at(e.seq);
        let leaders: Vec<String> = acting.iter().map(|iv| iv.node.to_string()).collect();
        let lie = match role {
            Role::Leader => {
                let me = acting.iter().any(|iv| iv.node == *node);
                // A leader that resumed from a pause and stepped down within the same
                // millisecond, on seeing its lease lapsed, did nothing as leader: it splits
                // no brain (leader-exclusive ignores such zero-length overlaps too).
                let others: Vec<String> = acting
                    .iter()
                    .filter(|iv| iv.node != *node && !(iv.resumed && iv.end == Some(iv.start)))
                    .map(|iv| iv.node.to_string())
                    .collect();
                if !me {
                    Some(format!(
                        "as leader but was not acting leader: {}",
                        tl.not_acting(*node, e.seq)
                    ))
                } else if !others.is_empty() {
                    Some(format!(
                        "as leader while node {} also acted as leader (split brain reported ready)",
                        others.join(", ")
                    ))
                } else {
                    None
                }
            }
            Role::Follower => {
                let says = match observed_leader {
                    Some(l) => format!("as follower of node {l}"),
                    None => "as follower observing no leader".into(),
                };
                let in_sync = observed_leader.is_some_and(|l| {
                    acting.iter().any(|iv| iv.node == l)
                        || tl.ivs.iter().any(|iv| {
                            iv.node == l
                                && iv.start <= e.at
                                && iv.end.is_some_and(|end| end + cfg.observe_lag >= e.at)
                        })
                });
                // With several acting leaders, following any of them is as true as a
                // follower can be; the split brain itself is leader-exclusive's to report.
                if in_sync {
                    None
                } else if leaders.is_empty() {
                    Some(format!("{says} while no node acted as leader"))
                } else {
                    Some(format!(
                        "{says} while node {} acted as leader",
                        leaders.join(", ")
                    ))
                }
            }
            other => Some(format!("while its role was {other}")),
        };
        if let Some(lie) = lie {
            violations.push(Violation::new(
                inv,
                e.at,
                format!("node {node} reported ready at {} {lie}", t(e.at)),
                vec![e.seq],
            ));
        }
    }
    let notes = vec![format!("{probes} health probes, {ready} ready")];
    Report::new(inv, violations, notes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::FaultInfo;

    // ---- constructors that keep histories one line per event ----

    fn n(c: char) -> NodeId {
        NodeId::parse(&c.to_string()).unwrap()
    }
    fn lead(node: char, token: u64, why: &str) -> Event {
        Event::RoleChanged {
            node: n(node),
            role: Role::Leader,
            token: Some(token),
            why: why.into(),
        }
    }
    fn role(node: char, role: Role) -> Event {
        Event::RoleChanged {
            node: n(node),
            role,
            token: None,
            why: String::new(),
        }
    }
    fn paused(node: char) -> Event {
        Event::Paused { node: n(node) }
    }
    fn resumed(node: char) -> Event {
        Event::Resumed { node: n(node) }
    }
    fn killed(node: char) -> Event {
        Event::ProcessExited {
            node: n(node),
            code: None,
            how: "kill".into(),
        }
    }
    fn lock_read(node: char, host: &str, holder: Option<&str>, readable: bool) -> Event {
        Event::LockFileRead {
            node: n(node),
            host: host.into(),
            holder: holder.map(Into::into),
            last_seen_at: None,
            readable,
        }
    }
    fn poll(node: char, poll: u64) -> Event {
        Event::PollStarted {
            node: Some(n(node)),
            poll,
            offset: None,
            timeout: Millis::secs(30),
        }
    }
    fn foreign_poll(poll: u64) -> Event {
        Event::PollStarted {
            node: None,
            poll,
            offset: None,
            timeout: Millis::secs(30),
        }
    }
    fn conflict(victim: char, poll: u64, by: Option<char>) -> Event {
        Event::PollEnded {
            node: Some(n(victim)),
            poll,
            outcome: PollOutcome::Conflict,
            by: Some(by.map(n)),
        }
    }
    fn sent(update: i64) -> Event {
        Event::ChatSent {
            update_id: update,
            text: format!("msg {update}"),
        }
    }
    fn replied(update: i64, node: char) -> Event {
        Event::ChatReplied {
            update_id: update,
            node: n(node),
            incarnation: None,
            token: None,
            sent_at: None,
        }
    }
    /// A reply the world saw sent at `sent` (ms); it arrives at the entry's time.
    fn replied_sent(update: i64, node: char, sent: u64) -> Event {
        Event::ChatReplied {
            update_id: update,
            node: n(node),
            incarnation: Some(1),
            token: None,
            sent_at: Some(Millis(sent)),
        }
    }
    fn publish(node: char, id: &str, version: u64, parent: Option<&str>, token: u64) -> Event {
        Event::SnapshotPublished {
            node: n(node),
            id: id.into(),
            version,
            parent: parent.map(Into::into),
            token: Some(token),
            state_version: version,
            accepted: true,
            note: String::new(),
        }
    }
    fn refused_publish(node: char, id: &str, token: u64) -> Event {
        match publish(node, id, 9, None, token) {
            Event::SnapshotPublished {
                node,
                id,
                version,
                parent,
                token,
                state_version,
                ..
            } => Event::SnapshotPublished {
                node,
                id,
                version,
                parent,
                token,
                state_version,
                accepted: false,
                note: "stale token".into(),
            },
            _ => unreachable!(),
        }
    }
    fn files(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(f, h)| (f.to_string(), h.to_string()))
            .collect()
    }
    fn restore(
        node: char,
        fetch: u64,
        state: u64,
        rec: &[(&str, &str)],
        got: &[(&str, &str)],
    ) -> Event {
        Event::RestoreVerified {
            node: n(node),
            fetch_id: fetch,
            snapshot: "s2".into(),
            version: 2,
            state_version: state,
            recorded: files(rec),
            restored: files(got),
        }
    }
    fn served(node: char, fetch: u64, tamper: Option<&str>) -> Event {
        Event::SnapshotServed {
            node: n(node),
            fetch_id: fetch,
            id: Some("s2".into()),
            tamper: tamper.map(Into::into),
        }
    }
    fn refused(node: char, fetch: u64) -> Event {
        Event::RestoreRefused {
            node: n(node),
            fetch_id: Some(fetch),
            reason: "signature does not verify".into(),
        }
    }
    fn state(node: char, version: u64) -> Event {
        Event::StateChanged {
            node: n(node),
            version,
        }
    }
    fn probe(node: char, ready: bool, role: Role, observed: Option<char>) -> Event {
        Event::HealthProbe {
            node: n(node),
            healthz: true,
            readyz: ready,
            role,
            observed_leader: observed.map(n),
        }
    }
    fn fault(kind: &str, target: &str) -> Event {
        Event::Fault(FaultInfo {
            kind: kind.into(),
            target: target.into(),
            detail: String::new(),
        })
    }
    fn heal(kind: &str, target: &str) -> Event {
        Event::Heal(FaultInfo {
            kind: kind.into(),
            target: target.into(),
            detail: String::new(),
        })
    }
    /// A history from `(milliseconds, event)` pairs.
    fn hist(events: Vec<(u64, Event)>) -> History {
        let mut h = History::new();
        for (at, e) in events {
            h.push(Millis(at), e);
        }
        h
    }
    fn cfg() -> CheckConfig {
        CheckConfig {
            takeover_bound: Millis::secs(10),
            rpo_bound: Millis::secs(5),
            observe_lag: Millis::ZERO,
        }
    }
    fn run(inv: Invariant, h: &History) -> Report {
        check(inv, h, &cfg())
    }
    /// The single violation a report must hold, with its explanation checked for facts.
    fn only_violation(r: &Report, facts: &[&str]) -> Violation {
        assert_eq!(r.violations.len(), 1, "expected one violation: {r:#?}");
        let v = r.violations[0].clone();
        for fact in facts {
            assert!(
                v.explanation.contains(fact),
                "explanation lacks `{fact}`: {}",
                v.explanation
            );
        }
        v
    }
    /// A table row: a name, a history and the facts its one violation must state.
    type Case = (&'static str, Vec<(u64, Event)>, &'static [&'static str]);

    fn assert_ok(r: &Report) {
        assert!(r.ok(), "expected no violation: {r:#?}");
    }

    fn assert_note(r: &Report, needle: &str) {
        assert!(
            r.notes.iter().any(|n| n.contains(needle)),
            "no note contains {needle:?}: {:?}",
            r.notes
        );
    }

    // ---- the invariant names ----

    #[test]
    fn invariants_parse_by_name_number_and_display() {
        for (i, inv) in Invariant::ALL.into_iter().enumerate() {
            assert_eq!(inv.number() as usize, i + 1);
            assert_eq!(Invariant::parse(inv.name()), Ok(inv));
            assert_eq!(Invariant::parse(&inv.number().to_string()), Ok(inv));
            assert_eq!(Invariant::parse(&inv.to_string()), Ok(inv));
            let json = serde_json::to_string(&inv).unwrap();
            assert_eq!(json, format!("\"{}\"", inv.name()));
            assert_eq!(serde_json::from_str::<Invariant>(&json).unwrap(), inv);
            assert_eq!(inv.is_safety(), inv != Invariant::TakeoverBounded);
        }
        assert_eq!(Invariant::LeaderExclusive.to_string(), "1 leader-exclusive");
        assert!(Invariant::parse("9").unwrap_err().contains("rpo-bounded"));
        assert!(Invariant::parse("leader").is_err());
    }

    // ---- the timeline ----

    #[test]
    fn a_paused_leader_stops_acting_and_acts_again_on_resume() {
        let h = hist(vec![
            (2000, lead('a', 1, "lease granted")),
            (5000, paused('a')),
            (9000, resumed('a')),
            (12000, role('a', Role::Follower)),
            (13000, paused('a')),
            (14000, resumed('a')),
        ]);
        let ivs = leader_intervals(&h);
        let spans: Vec<(Millis, Option<Millis>, u64)> = ivs
            .iter()
            .map(|iv| (iv.start, iv.end, iv.start_seq))
            .collect();
        assert_eq!(
            spans,
            vec![
                (Millis(2000), Some(Millis(5000)), 0),
                (Millis(9000), Some(Millis(12000)), 2),
            ],
            "a resumed follower must not act"
        );
        assert!(ivs
            .iter()
            .all(|iv| iv.node == n('a') && iv.token == Some(1)));
        assert!(ivs[1].why.contains("lease granted"), "{}", ivs[1].why);
    }

    #[test]
    fn an_exited_leader_does_not_act_again_on_restart() {
        let h = hist(vec![
            (1000, lead('a', 1, "won")),
            (3000, killed('a')),
            (
                4000,
                Event::ProcessStarted {
                    node: n('a'),
                    incarnation: 2,
                },
            ),
            (5000, resumed('a')),
        ]);
        let ivs = leader_intervals(&h);
        assert_eq!(ivs.len(), 1);
        assert_eq!(ivs[0].end, Some(Millis(3000)));
    }

    #[test]
    fn takeovers_measure_from_loss_to_first_poll_as_leader() {
        let h = hist(vec![
            (1000, lead('a', 1, "won")),
            (1100, poll('a', 1)),
            (10_000, killed('a')),
            // b polls before it leads: that is not service.
            (12_000, poll('b', 2)),
            (14_000, lead('b', 2, "lease expired")),
            (15_500, poll('b', 3)),
            (20_000, paused('b')),
        ]);
        let got = takeovers(&h);
        assert_eq!(
            got,
            vec![
                Takeover {
                    lost_at: Millis(10_000),
                    served_at: Some(Millis(15_500)),
                    new_leader: Some(n('b')),
                    latency: Some(Millis(5_500)),
                },
                Takeover {
                    lost_at: Millis(20_000),
                    served_at: None,
                    new_leader: None,
                    latency: None,
                },
            ]
        );
    }

    // ---- 1. leader-exclusive ----

    #[test]
    fn leader_exclusive_names_both_leaders_and_the_lock_read() {
        let h = hist(vec![
            (2000, lead('a', 1, "lock file entry absent")),
            (11_900, lock_read('b', "b", None, true)),
            (12_000, lead('b', 1, "lock file entry absent")),
            (600_000, probe('a', false, Role::Leader, None)),
        ]);
        let r = run(Invariant::LeaderExclusive, &h);
        let v = only_violation(
            &r,
            &[
                "node b took the lead at 12.0s",
                "lock file on host b: leader-heartbeat entry absent",
                "while node a was leader since 2.0s",
                "overlap 588.0s",
                "token 1",
            ],
        );
        assert_eq!(v.at, Millis(12_000));
        assert_eq!(v.evidence, vec![0, 1, 2]);
    }

    #[test]
    fn leader_exclusive_catches_a_resumed_leader() {
        let h = hist(vec![
            (2000, lead('a', 1, "won")),
            (5000, paused('a')),
            (5000, lead('b', 2, "lease expired")),
            (9000, resumed('a')),
            (9500, role('a', Role::Follower)),
        ]);
        let r = run(Invariant::LeaderExclusive, &h);
        only_violation(
            &r,
            &["node a took the lead at 9.0s", "resumed", "overlap 0.5s"],
        );
    }

    #[test]
    fn leader_exclusive_allows_a_same_instant_handover() {
        let h = hist(vec![
            (2000, lead('a', 1, "won")),
            (10_000, role('a', Role::SteppingDown)),
            (10_000, lead('b', 2, "lease free")),
            (20_000, killed('b')),
            (20_000, lead('c', 3, "lease free")),
            (30_000, probe('c', true, Role::Leader, Some('c'))),
        ]);
        assert_ok(&run(Invariant::LeaderExclusive, &h));
    }

    #[test]
    fn leader_exclusive_refuses_a_stale_fencing_token() {
        let mut h = hist(vec![
            (1000, publish('a', "s1", 1, None, 3)),
            (2000, refused_publish('b', "s2", 2)),
        ]);
        assert_ok(&run(Invariant::LeaderExclusive, &h));
        h.push(Millis(3000), publish('b', "s3", 2, Some("s1"), 2));
        let r = run(Invariant::LeaderExclusive, &h);
        let v = only_violation(
            &r,
            &[
                "node b's publish s3 with stale token 2 at 3.0s",
                "node a's publish s1 with token 3 at 1.0s",
            ],
        );
        assert_eq!(v.evidence, vec![0, 2]);
    }

    // ---- 2. poll-exclusive ----

    #[test]
    fn poll_exclusive_groups_conflicts_per_pair() {
        let h = hist(vec![
            (2000, poll('a', 6)),
            (12_300, poll('b', 7)),
            (12_300, conflict('a', 6, Some('b'))),
            (13_000, poll('a', 8)),
            (13_000, conflict('b', 7, Some('a'))),
        ]);
        let r = run(Invariant::PollExclusive, &h);
        let v = only_violation(
            &r,
            &[
                "node b's getUpdates (poll 7 at 12.3s) ended node a's poll 6 with 409 Conflict",
                "2 such conflicts between nodes a and b",
                "node a's getUpdates (poll 8 at 13.0s) ended node b's poll 7",
            ],
        );
        assert_eq!(v.evidence, vec![2, 4]);
    }

    #[test]
    fn poll_exclusive_ignores_a_foreign_poller_but_counts_it() {
        let h = hist(vec![
            (1000, poll('a', 1)),
            (2000, foreign_poll(2)),
            (2000, conflict('a', 1, None)),
            (3000, poll('a', 3)),
        ]);
        let r = run(Invariant::PollExclusive, &h);
        assert_ok(&r);
        assert_note(&r, "1 of our polls ended by it");
    }

    // ---- 3. chat-answered ----

    #[test]
    fn chat_answered_reports_a_lost_message_a_rogue_reply_and_a_bad_duplicate() {
        let cases: Vec<Case> = vec![
            (
                "lost",
                vec![
                    (1000, lead('a', 1, "won")),
                    (5000, sent(42)),
                    (9000, killed('a')),
                ],
                &[
                    "update 42",
                    "sent at 5.0s was never answered",
                    "never delivered",
                ],
            ),
            (
                "reply by a follower",
                vec![
                    (1000, lead('a', 1, "won")),
                    (5000, sent(42)),
                    (6000, replied(42, 'c')),
                ],
                &[
                    "node c answered update 42 at 6.0s but was not acting leader",
                    "had not acted as leader",
                ],
            ),
            (
                "duplicate while the first replier still leads",
                vec![
                    (1000, lead('a', 1, "won")),
                    (2000, lead('b', 2, "won")),
                    (5000, sent(42)),
                    (6000, replied(42, 'a')),
                    (7000, replied(42, 'b')),
                ],
                &[
                    "answered again by node b at 7.0s while node a",
                    "at 6.0s, was still acting leader (since 1.0s)",
                ],
            ),
        ];
        for (name, events, facts) in cases {
            let r = run(Invariant::ChatAnswered, &hist(events));
            assert!(!r.ok(), "{name}: expected a violation");
            let v = only_violation(&r, facts);
            assert!(!v.evidence.is_empty(), "{name}");
        }
    }

    #[test]
    fn chat_answered_allows_a_duplicate_after_the_replier_died() {
        let h = hist(vec![
            (1000, lead('a', 1, "won")),
            (5000, sent(42)),
            (6000, replied(42, 'a')),
            (6500, killed('a')),
            (8000, lead('b', 2, "lease expired")),
            (9000, replied(42, 'b')),
            (9500, sent(43)),
            (9600, replied(43, 'b')),
        ]);
        let r = run(Invariant::ChatAnswered, &h);
        assert_ok(&r);
        assert_note(&r, "2 answered, 0 lost");
        assert!(
            r.notes
                .iter()
                .any(|n| n.starts_with("1 duplicates allowed")),
            "{:?}",
            r.notes
        );
    }

    #[test]
    fn chat_answered_judges_a_late_reply_by_the_incarnation_that_sent_it() {
        // a leads, dies at 6 s with a reply in flight; a restarts as incarnation 2 (a
        // follower) before the reply lands at 6.4 s.
        let late = |incarnation: Option<u32>| {
            hist(vec![
                (1000, lead('a', 1, "won")),
                (5000, sent(42)),
                (6000, killed('a')),
                (
                    6100,
                    Event::ProcessStarted {
                        node: n('a'),
                        incarnation: 2,
                    },
                ),
                (
                    6400,
                    Event::ChatReplied {
                        update_id: 42,
                        node: n('a'),
                        incarnation,
                        token: None,
                        sent_at: None,
                    },
                ),
            ])
        };
        let r = run(Invariant::ChatAnswered, &late(Some(1)));
        assert_ok(&r);
        for (incarnation, why) in [
            (Some(2), "the new incarnation never led"),
            (None, "the recorder cannot tell which process sent it"),
        ] {
            let r = run(Invariant::ChatAnswered, &late(incarnation));
            assert_eq!(r.violations.len(), 1, "{why}: {r:#?}");
            only_violation(
                &r,
                &["node a answered update 42 at 6.4s but was not acting leader"],
            );
        }
    }

    #[test]
    fn chat_answered_judges_a_reply_by_when_it_was_sent_where_that_is_known() {
        // Fuzz seed 11478244: a resumes at 106.964 s, answers what waited at once, steps
        // down at 107.054 s; the reply crossed a slow network and landed at 107.141 s.
        let stepped_down = |sent_at: u64| {
            hist(vec![
                (1000, lead('a', 1, "won")),
                (2000, sent(42)),
                (3000, paused('a')),
                (6000, resumed('a')),
                (6090, role('a', Role::SteppingDown)),
                (6177, replied_sent(42, 'a', sent_at)),
            ])
        };
        assert_ok(&run(Invariant::ChatAnswered, &stepped_down(6000)));
        assert_ok(&run(Invariant::ChatAnswered, &stepped_down(6089)));
        // Sent once the lead had ended (at its last instant too: a step-down and a send
        // in one millisecond cannot be told apart, so the boundary belongs to after).
        for late in [6090, 6100] {
            let r = run(Invariant::ChatAnswered, &stepped_down(late));
            only_violation(
                &r,
                &[
                    &format!("node a answered update 42 sent at {}", t(Millis(late))),
                    "(arriving at 6.177s) but was not acting leader",
                    "ran from 6.0s to 6.090s, when it became stepping-down",
                ],
            );
        }
        // Sent while paused: a frozen process sends nothing, so it cannot be excused.
        only_violation(
            &run(Invariant::ChatAnswered, &stepped_down(4000)),
            &["sent at 4.0s", "ran from 1.0s to 3.0s, when it was paused"],
        );

        // Sent in the millisecond the process froze or died: before it did.
        for stop in [paused('a'), killed('a')] {
            let h = hist(vec![
                (1000, lead('a', 1, "won")),
                (2000, sent(42)),
                (5000, stop),
                (5100, replied_sent(42, 'a', 5000)),
            ]);
            assert_ok(&run(Invariant::ChatAnswered, &h));
        }

        // Sent before its lead began, arriving during it: still not a leader's reply.
        let h = hist(vec![
            (500, sent(42)),
            (900, replied_sent(42, 'a', 900)),
            (1000, lead('a', 1, "won")),
            (1100, replied_sent(42, 'a', 950)),
        ]);
        let r = run(Invariant::ChatAnswered, &h);
        assert_eq!(r.violations.len(), 2, "{r:#?}");
        assert!(
            r.violations[1]
                .explanation
                .contains("sent at 0.950s (arriving at 1.1s) but was not acting leader: it had not acted as leader by then"),
            "{r:#?}"
        );
    }

    // ---- 4. takeover-bounded ----

    #[test]
    fn takeover_bounded_flags_a_slow_takeover() {
        let h = hist(vec![
            (1000, lead('a', 1, "won")),
            (10_000, killed('a')),
            (30_000, lead('b', 2, "lease expired")),
            (31_000, poll('b', 5)),
        ]);
        let r = run(Invariant::TakeoverBounded, &h);
        let v = only_violation(
            &r,
            &[
                "node a exited (kill) at 10.0s",
                "node b first served as leader at 31.0s",
                "21.0s",
            ],
        );
        assert_eq!(v.at, Millis(20_000));
        assert_eq!(v.evidence, vec![1, 3]);
    }

    #[test]
    fn takeover_bounded_starts_the_clock_when_a_node_runs_again_after_all_were_down() {
        let h = hist(vec![
            (1000, lead('a', 1, "won")),
            (5_000, killed('b')),
            (10_000, killed('a')),
            (
                40_000,
                Event::ProcessStarted {
                    node: n('b'),
                    incarnation: 2,
                },
            ),
            (45_000, lead('b', 2, "lease expired")),
            (46_000, poll('b', 5)),
        ]);
        let r = run(Invariant::TakeoverBounded, &h);
        assert!(r.ok(), "6 s after b ran again is within 10 s: {r:#?}");
        assert!(
            r.notes.iter().any(|n| n.contains("when a node ran again")),
            "{:?}",
            r.notes
        );
        // Had b been running all along, the same takeover is 36 s late.
        let events = vec![
            (1000, lead('a', 1, "won")),
            (10_000, killed('a')),
            (45_000, lead('b', 2, "lease expired")),
            (46_000, poll('b', 5)),
        ];
        let late = run(Invariant::TakeoverBounded, &hist(events));
        assert_eq!(late.violations.len(), 1, "{late:#?}");
    }

    #[test]
    fn takeover_bounded_restarts_the_clock_after_every_node_went_down_during_the_gap() {
        // Fuzz seed 11090012: b frozen, then the leader a killed, then c frozen before the
        // lease ran out: nobody could take over until b resumed.
        let gap = |c_paused_at: u64| {
            hist(vec![
                (1000, lead('a', 1, "won")),
                (5_000, paused('b')),
                (10_000, killed('a')),
                (c_paused_at, paused('c')),
                (40_000, resumed('b')),
                (41_000, lead('b', 2, "lease expired")),
                (41_500, poll('b', 5)),
            ])
        };
        let r = run(Invariant::TakeoverBounded, &gap(14_000));
        assert_ok(&r);
        assert_note(
            &r,
            "from 40.0s, when a node ran again after all were down: 1.5s",
        );
        // c ran for 15 s after the loss without taking over, more than the 10 s bound,
        // before it froze: freezing it later does not excuse that.
        let r = run(Invariant::TakeoverBounded, &gap(25_000));
        let v = only_violation(
            &r,
            &[
                "node a exited (kill) at 10.0s",
                "no leader served in the 15.0s counted from the loss while some node ran",
                "every node was down or frozen at 25.0s",
            ],
        );
        assert_eq!(v.at, Millis(20_000));
    }

    #[test]
    fn takeover_bounded_flags_no_takeover_at_all() {
        let h = hist(vec![
            (1000, lead('a', 1, "won")),
            (10_000, paused('a')),
            (40_000, probe('b', false, Role::Candidate, None)),
        ]);
        only_violation(
            &run(Invariant::TakeoverBounded, &h),
            &["node a was paused at 10.0s", "no leader had served"],
        );
    }

    #[test]
    fn takeover_bounded_starts_the_clock_when_blocking_faults_heal() {
        let h = hist(vec![
            (1000, lead('a', 1, "won")),
            (5000, fault("partition", "b")),
            (10_000, fault("kill", "a")),
            (10_000, killed('a')),
            (25_000, heal("partition", "b")),
            (30_000, lead('b', 2, "lease expired")),
            (31_000, poll('b', 5)),
        ]);
        let r = run(Invariant::TakeoverBounded, &h);
        assert_ok(&r);
        assert!(
            r.notes
                .iter()
                .any(|n| n.contains("21.0s after the loss")
                    && n.contains("partition b healed: 6.0s")),
            "{:?}",
            r.notes
        );
        assert_eq!(takeovers(&h)[0].latency, Some(Millis(21_000)));
    }

    #[test]
    fn takeover_bounded_does_not_judge_while_a_blocking_fault_lasts() {
        let h = hist(vec![
            (1000, lead('a', 1, "won")),
            (5000, fault("partition", "b")),
            (10_000, killed('a')),
            (60_000, probe('b', false, Role::Candidate, None)),
        ]);
        let r = run(Invariant::TakeoverBounded, &h);
        assert_ok(&r);
        assert_note(&r, "not judged");
    }

    // ---- 5. chain-intact ----

    #[test]
    fn chain_intact_reports_forks_rollbacks_and_bad_restores() {
        let cases: Vec<Case> = vec![
            (
                "fork",
                vec![
                    (1000, publish('a', "s1", 1, None, 1)),
                    (2000, publish('a', "s2", 2, Some("s1"), 1)),
                    (3000, publish('b', "s3", 3, Some("s1"), 2)),
                ],
                &[
                    "node b published snapshot s3 at 3.0s on parent s1",
                    "the head was s2 (published by node a at 2.0s)",
                ],
            ),
            (
                "head moves back",
                vec![
                    (1000, publish('a', "s1", 5, None, 1)),
                    (2000, publish('b', "s2", 4, Some("s1"), 2)),
                ],
                &[
                    "node b's snapshot s2 (version 4)",
                    "node a's s1 (version 5)",
                ],
            ),
            (
                "restored file differs",
                vec![(
                    4000,
                    restore(
                        'c',
                        7,
                        3,
                        &[("state.json", "aaaa")],
                        &[("state.json", "bbbb")],
                    ),
                )],
                &[
                    "node c restored snapshot s2 (fetch 7) at 4.0s",
                    "state.json hashes to bbbb but the manifest records aaaa",
                ],
            ),
            (
                "v1 signs over no files",
                vec![(4000, restore('c', 7, 3, &[], &[("state.json", "bbbb")]))],
                &["state.json was restored (bbbb) but the manifest records no hash"],
            ),
        ];
        for (name, events, facts) in cases {
            let r = run(Invariant::ChainIntact, &hist(events));
            assert!(!r.ok(), "{name}: expected a violation");
            only_violation(&r, facts);
        }
    }

    #[test]
    fn chain_intact_accepts_a_linear_chain_and_v1_versions() {
        let h = hist(vec![
            (1000, publish('a', "s1", 0, None, 1)),
            (2000, publish('a', "s2", 0, Some("s1"), 1)),
            (3000, refused_publish('b', "x", 1)),
            (4000, publish('b', "s3", 1, Some("s2"), 2)),
            (
                5000,
                restore(
                    'c',
                    1,
                    3,
                    &[("state.json", "aa"), ("b", "bb")],
                    &[("b", "bb"), ("state.json", "aa")],
                ),
            ),
        ]);
        let r = run(Invariant::ChainIntact, &h);
        assert_ok(&r);
        assert!(
            r.notes[0].contains("3 publishes accepted, 1 refused; head s3"),
            "{:?}",
            r.notes
        );
    }

    // ---- 6. tamper-refused ----

    #[test]
    fn tamper_refused_flags_an_accepted_tampered_snapshot() {
        let h = hist(vec![
            (20_000, served('c', 4, Some("re-sign"))),
            (21_000, restore('c', 4, 3, &[], &[])),
            (25_000, lead('c', 2, "lease free")),
        ]);
        let r = run(Invariant::TamperRefused, &h);
        let v = only_violation(
            &r,
            &[
                "node c accepted a snapshot tampered with re-sign",
                "fetch 4",
                "at 21.0s",
                "took the lead at 25.0s",
            ],
        );
        assert_eq!(v.evidence, vec![0, 1, 2]);
    }

    #[test]
    fn tamper_refused_passes_a_refusal_and_an_untampered_restore() {
        let h = hist(vec![
            (20_000, served('c', 4, Some("flip-byte"))),
            (21_000, refused('c', 4)),
            (22_000, served('c', 5, None)),
            (23_000, restore('c', 5, 3, &[], &[])),
        ]);
        let r = run(Invariant::TamperRefused, &h);
        assert_ok(&r);
        assert_note(&r, "node c refused fetch 4");
    }

    // ---- 7. rpo-bounded ----

    fn rpo_history(restored_state: u64) -> History {
        hist(vec![
            (1000, lead('a', 1, "won")),
            (2000, state('a', 1)),
            (3000, state('a', 2)),
            (4000, restore('b', 1, restored_state, &[], &[])),
            (10_000, killed('a')),
            (15_000, lead('b', 2, "lease expired")),
        ])
    }

    #[test]
    fn rpo_bounded_flags_state_unsaved_for_too_long() {
        let r = run(Invariant::RpoBounded, &rpo_history(1));
        let v = only_violation(
            &r,
            &[
                "node b took the lead at 15.0s with state version 1",
                "version 2 existed on node a since 3.0s",
                "7.0s before",
                "1 updates lost",
            ],
        );
        assert_eq!(v.at, Millis(15_000));
        assert!(r.notes.iter().any(|n| n.contains("1 updates lost")));
    }

    #[test]
    fn rpo_bounded_notes_zero_loss() {
        let r = run(Invariant::RpoBounded, &rpo_history(2));
        assert_ok(&r);
        assert_note(&r, "state version 2 of 2: 0 updates lost");
    }

    #[test]
    fn rpo_bounded_allows_a_loss_within_the_bound() {
        let h = hist(vec![
            (1000, lead('a', 1, "won")),
            (2000, state('a', 1)),
            (4000, restore('b', 1, 1, &[], &[])),
            (7000, state('a', 2)),
            (10_000, killed('a')),
            (15_000, lead('b', 2, "lease expired")),
        ]);
        let r = run(Invariant::RpoBounded, &h);
        assert_ok(&r);
        assert_note(&r, "1 updates lost");
    }

    // ---- 8. health-truthful ----

    #[test]
    fn health_truthful_table() {
        // a leads alone from 1s; b leads too from 20s (split brain) unless cut short.
        let base = |probe_at: u64, p: Event, split: bool| {
            let mut ev = vec![(1000, lead('a', 1, "won"))];
            if split {
                ev.push((2000, lead('b', 2, "won")));
            }
            ev.push((probe_at, p));
            hist(ev)
        };
        let cases: Vec<(&str, History, Option<&str>)> = vec![
            (
                "leader alone",
                base(5000, probe('a', true, Role::Leader, Some('a')), false),
                None,
            ),
            (
                "follower of the leader",
                base(5000, probe('c', true, Role::Follower, Some('a')), false),
                None,
            ),
            (
                "not ready while restoring",
                base(5000, probe('c', false, Role::Restoring, None), false),
                None,
            ),
            (
                "ready while restoring",
                base(5000, probe('c', true, Role::Restoring, None), false),
                Some("node c reported ready at 5.0s while its role was restoring"),
            ),
            (
                "ready leader in split brain",
                base(5000, probe('a', true, Role::Leader, Some('a')), true),
                Some("while node b also acted as leader"),
            ),
            (
                "ready leader not acting",
                base(5000, probe('c', true, Role::Leader, Some('c')), false),
                Some("as leader but was not acting leader"),
            ),
            (
                "follower of the wrong node",
                base(5000, probe('c', true, Role::Follower, Some('b')), false),
                Some("as follower of node b while node a acted as leader"),
            ),
            (
                "follower of no one",
                base(5000, probe('c', true, Role::Follower, None), false),
                Some("observing no leader while node a"),
            ),
        ];
        for (name, h, want) in cases {
            let r = run(Invariant::HealthTruthful, &h);
            match want {
                None => assert!(r.ok(), "{name}: {r:#?}"),
                Some(fact) => {
                    only_violation(&r, &[fact]);
                }
            }
        }
    }

    #[test]
    fn health_truthful_flags_a_follower_of_a_leader_that_is_gone() {
        let h = hist(vec![
            (1000, lead('a', 1, "won")),
            (2000, paused('a')),
            (3000, probe('b', true, Role::Follower, Some('a'))),
        ]);
        only_violation(
            &run(Invariant::HealthTruthful, &h),
            &["as follower of node a while no node acted as leader"],
        );
    }

    #[test]
    fn check_all_gives_one_report_per_invariant_in_order() {
        let mut h = rpo_history(2);
        h.push(Millis(40_000), probe('b', true, Role::Leader, Some('b')));
        let reports = check_all(&h, &cfg());
        let order: Vec<Invariant> = reports.iter().map(|r| r.invariant).collect();
        assert_eq!(order, Invariant::ALL.to_vec());
        // a is killed and b never polls: only the liveness invariant fails.
        let failing: Vec<Invariant> = reports
            .iter()
            .filter(|r| !r.ok())
            .map(|r| r.invariant)
            .collect();
        assert_eq!(failing, vec![Invariant::TakeoverBounded]);
    }
}
