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

use crate::backend::EventKind;
use crate::history::History;
use crate::time::Millis;
use chain_intact::chain_intact;
use chat_answered::chat_answered;
pub use faults::{fault_windows, FaultWindow};
use health_truthful::health_truthful;
use leader_exclusive::leader_exclusive;
use poll_exclusive::poll_exclusive;
use rpo_bounded::rpo_bounded;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
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

    /// The event kinds this invariant is judged from. On a backend whose history cannot
    /// hold one of them, the invariant is not judged rather than inferred.
    pub fn needs(self) -> &'static [EventKind] {
        use EventKind as K;
        match self {
            Invariant::LeaderExclusive => &[K::Processes, K::Roles],
            Invariant::PollExclusive => &[K::Polls],
            Invariant::ChatAnswered => &[K::ChatSent, K::ChatReplies, K::Roles],
            Invariant::TakeoverBounded => &[K::Processes, K::Roles, K::Polls, K::Faults],
            Invariant::ChainIntact => &[K::Publishes, K::Restores],
            Invariant::TamperRefused => &[K::FetchesServed, K::Restores],
            Invariant::RpoBounded => &[K::Roles, K::StateChanges, K::Restores, K::Publishes],
            Invariant::HealthTruthful => &[K::HealthProbes, K::Roles],
        }
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

/// A kind of thing a checker examined, counted on its [`Report`] so a verdict shows what
/// stands behind it ("held" with nothing judged would be a claim without evidence).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Count {
    /// Acting-leader intervals compared pairwise.
    LeaderIntervals,
    /// Accepted publishes whose fencing token was compared with the highest seen.
    TokenedPublishes,
    /// getUpdates long polls by our nodes.
    Polls,
    /// Polls of ours ended with 409 by another of our nodes.
    Conflicts,
    /// Chat messages sent.
    MessagesSent,
    /// Messages answered at least once.
    MessagesAnswered,
    /// Messages answered more than once.
    AnsweredTwice,
    /// Replies judged against the acting leader of the moment.
    Replies,
    /// Leaderless gaps seen.
    LeaderlessGaps,
    /// Leaderless gaps whose takeover was judged against the bound.
    TakeoversJudged,
    /// Snapshot publishes the store accepted or refused.
    Publishes,
    /// Distinct heads the chain moved through.
    Heads,
    /// Restores verified by a node.
    Restores,
    /// Fetches served with an injected tamper.
    TamperServed,
    /// Tampered fetches the restoring node refused.
    TamperRefused,
    /// Promotions after a leader loss whose lost state was judged.
    PromotionsJudged,
    /// Health probes.
    Probes,
}

impl Count {
    /// The count in words, singular or plural by `n`.
    pub fn words(self, n: u64) -> String {
        let (one, many) = match self {
            Count::LeaderIntervals => ("leader interval", "leader intervals"),
            Count::TokenedPublishes => ("fenced publish", "fenced publishes"),
            Count::Polls => ("poll", "polls"),
            Count::Conflicts => ("conflict", "conflicts"),
            Count::MessagesSent => ("message sent", "messages sent"),
            Count::MessagesAnswered => ("answered", "answered"),
            Count::AnsweredTwice => ("answered twice", "answered twice"),
            Count::Replies => ("reply", "replies"),
            Count::LeaderlessGaps => ("leaderless gap", "leaderless gaps"),
            Count::TakeoversJudged => ("takeover", "takeovers"),
            Count::Publishes => ("publish", "publishes"),
            Count::Heads => ("head", "heads"),
            Count::Restores => ("restore", "restores"),
            Count::TamperServed => ("tampered fetch served", "tampered fetches served"),
            Count::TamperRefused => ("refused", "refused"),
            Count::PromotionsJudged => ("promotion after a loss", "promotions after a loss"),
            Count::Probes => ("probe", "probes"),
        };
        format!("{n} {}", if n == 1 { one } else { many })
    }
}

/// What became of one invariant on one history.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// Something was judged and nothing broke it.
    Held,
    /// At least one violation.
    Violated,
    /// Nothing the invariant is about happened, or the backend cannot see it; the report's
    /// `not_judged_because` says which.
    #[default]
    NotJudged,
}

/// One checker's verdict on a history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// Which invariant was judged.
    pub invariant: Invariant,
    /// Held, violated, or not judged; `held` only when something was counted.
    #[serde(default)]
    pub status: Status,
    /// When not judged: what was missing, in words (`no chat message was sent`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_judged_because: Option<String>,
    /// When not judged because the backend cannot observe what the invariant needs: the
    /// backend's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_observable_on: Option<String>,
    /// What the checker examined, by kind.
    #[serde(default)]
    pub counts: BTreeMap<Count, u64>,
    /// Every violation, sorted by time.
    pub violations: Vec<Violation>,
    /// What the checker saw that is worth reporting even when it passes (latencies,
    /// duplicates allowed, losses counted), so a green run still shows its margins.
    pub notes: Vec<String>,
}

impl Report {
    /// True when nothing was violated (held, or not judged).
    pub fn ok(&self) -> bool {
        self.violations.is_empty()
    }

    /// True when something was judged and nothing was violated.
    pub fn held(&self) -> bool {
        self.status == Status::Held
    }

    /// True when the checker had something to judge.
    pub fn judged(&self) -> bool {
        self.status != Status::NotJudged
    }

    /// The counts in words: `12 polls, 0 conflicts`.
    pub fn counts_words(&self) -> String {
        let words: Vec<String> = self.counts.iter().map(|(c, n)| c.words(*n)).collect();
        words.join(", ")
    }

    /// One line for a console: `held (12 polls, 0 conflicts judged)`,
    /// `VIOLATED 2 times (…)` or `not judged: no chat message was sent`.
    pub fn summary(&self) -> String {
        match self.status {
            Status::Held => format!("held ({} judged)", self.counts_words()),
            Status::Violated => format!(
                "VIOLATED {} time(s) ({} judged)",
                self.violations.len(),
                self.counts_words()
            ),
            Status::NotJudged => {
                let why = self
                    .not_judged_because
                    .as_deref()
                    .unwrap_or("nothing to judge");
                match &self.not_observable_on {
                    Some(backend) => format!("not judged on {backend}: {why}"),
                    None => format!("not judged: {why}"),
                }
            }
        }
    }

    /// A report for an invariant the backend cannot judge because its history holds none
    /// of the event kinds in `missing`.
    pub fn not_observable(invariant: Invariant, backend: &str, missing: &[EventKind]) -> Report {
        let kinds: Vec<&str> = missing.iter().map(|k| k.name()).collect();
        Report {
            invariant,
            status: Status::NotJudged,
            not_judged_because: Some(format!("its history holds no {} events", kinds.join(", "))),
            not_observable_on: Some(backend.to_string()),
            counts: BTreeMap::new(),
            violations: Vec::new(),
            notes: Vec::new(),
        }
    }

    /// A report with its violations sorted; [`Report::counted`] then says what was judged.
    fn new(invariant: Invariant, mut violations: Vec<Violation>, notes: Vec<String>) -> Self {
        violations.sort_by_key(|v| (v.at, v.evidence.first().copied()));
        let status = if violations.is_empty() {
            Status::NotJudged
        } else {
            Status::Violated
        };
        Report {
            invariant,
            status,
            not_judged_because: None,
            not_observable_on: None,
            counts: BTreeMap::new(),
            violations,
            notes,
        }
    }

    /// Records what the checker examined. `judged` are the things the invariant is about
    /// (it holds only if one of them is non-zero); `context` are shown beside them;
    /// `missing` says what was absent when every judged count is zero.
    fn counted(
        mut self,
        judged: &[(Count, usize)],
        context: &[(Count, usize)],
        missing: &str,
    ) -> Self {
        for (kind, n) in judged.iter().chain(context) {
            self.counts.insert(*kind, *n as u64);
        }
        let anything = judged.iter().any(|(_, n)| *n > 0);
        if self.violations.is_empty() {
            if anything {
                self.status = Status::Held;
            } else {
                self.status = Status::NotJudged;
                self.not_judged_because = Some(missing.to_string());
            }
        }
        self
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

/// Judges the given invariants as [`check_set`] does, except that an invariant needing an
/// event kind the backend cannot observe is reported `not judged on <backend>`.
pub fn check_observed(
    invs: &[Invariant],
    h: &History,
    cfg: &CheckConfig,
    backend: &str,
    observes: &BTreeSet<EventKind>,
) -> Vec<Report> {
    let tl = Timeline::build(h);
    invs.iter()
        .map(|inv| {
            let missing: Vec<EventKind> = inv
                .needs()
                .iter()
                .copied()
                .filter(|k| !observes.contains(k))
                .collect();
            if missing.is_empty() {
                check_with(*inv, h, &tl, cfg)
            } else {
                Report::not_observable(*inv, backend, &missing)
            }
        })
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

    #[test]
    fn an_empty_history_judges_nothing_and_says_what_was_missing() {
        for r in check_all(&History::new(), &cfg()) {
            assert_eq!(r.status, Status::NotJudged, "{r:#?}");
            assert!(r.ok() && !r.held() && !r.judged());
            let why = r.not_judged_because.clone().expect("a reason");
            assert_eq!(r.summary(), format!("not judged: {why}"));
        }
    }

    #[test]
    fn held_needs_a_count_and_a_violation_outranks_it() {
        let h = hist(vec![(1000, lead('a', 1, "won")), (1200, poll('a', 1))]);
        let r = run(Invariant::PollExclusive, &h);
        assert_eq!(r.status, Status::Held);
        assert_eq!(r.counts[&Count::Polls], 1);
        assert_eq!(r.summary(), "held (1 poll, 0 conflicts judged)");
        let r = run(Invariant::LeaderExclusive, &h);
        assert_eq!(
            r.summary(),
            "held (1 leader interval, 0 fenced publishes judged)"
        );
        let h = hist(vec![
            (1000, lead('a', 1, "won")),
            (2000, lead('b', 2, "won")),
            (5000, poll('a', 3)),
        ]);
        let r = run(Invariant::LeaderExclusive, &h);
        assert_eq!(r.status, Status::Violated);
        assert!(r
            .summary()
            .starts_with("VIOLATED 1 time(s) (2 leader intervals"));
    }

    #[test]
    fn an_invariant_whose_events_the_backend_cannot_observe_is_not_judged_on_it() {
        let h = hist(vec![(1000, lead('a', 1, "won")), (1200, poll('a', 1))]);
        // What the Hetzner backend's history holds (real/src/hetzner/backend.rs).
        let real: BTreeSet<EventKind> = [
            EventKind::Faults,
            EventKind::Processes,
            EventKind::ChatSent,
            EventKind::HealthProbes,
            EventKind::Roles,
            EventKind::ChatReplies,
        ]
        .into();
        let invs = [Invariant::PollExclusive, Invariant::LeaderExclusive];
        let on_real = check_observed(&invs, &h, &cfg(), "real", &real);
        assert_eq!(on_real[0].status, Status::NotJudged);
        assert_eq!(
            on_real[0].summary(),
            "not judged on real: its history holds no poll events"
        );
        assert!(on_real[1].held());
        // The same history on a backend that sees everything is judged.
        let all: BTreeSet<EventKind> = EventKind::ALL.into();
        let on_sim = check_observed(&invs, &h, &cfg(), "sim", &all);
        assert!(on_sim[0].held(), "{:#?}", on_sim[0]);
    }
}
