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

mod chain_intact;
mod chat_answered;
mod faults;
mod health_truthful;
mod leader_exclusive;
mod poll_exclusive;
mod rpo_bounded;
mod takeover_bounded;
mod tamper_refused;
#[cfg(test)]
mod test_support;
mod timeline;

use crate::history::History;
use crate::time::Millis;
use chain_intact::chain_intact;
use chat_answered::chat_answered;
use health_truthful::health_truthful;
use leader_exclusive::leader_exclusive;
use poll_exclusive::poll_exclusive;
use rpo_bounded::rpo_bounded;
use serde::{Deserialize, Serialize};
use std::fmt;
use takeover_bounded::takeover_bounded;
use tamper_refused::tamper_refused;
use timeline::Timeline;
pub use timeline::{leader_intervals, takeovers, LeaderInterval, Takeover};

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::test_support::*;

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
