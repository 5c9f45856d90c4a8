//! Invariant 2, poll-exclusive: no two of our getUpdates polls end each other with 409.
//! Telegram allows one long poll per token; a conflict is the first outside sign of two
//! leaders, so it is judged on its own.

use super::timeline::t;
use super::{Invariant, Report, Violation};
use crate::history::{Event, History, PollOutcome};
use crate::ids::NodeId;
use crate::time::Millis;
use std::collections::BTreeMap;

pub(super) struct Conflict {
    pub(super) at: Millis,
    pub(super) seq: u64,
    pub(super) ender: NodeId,
    pub(super) ender_poll: Option<(u64, Millis)>,
    pub(super) victim: NodeId,
    pub(super) victim_poll: u64,
    pub(super) victim_start: Option<Millis>,
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

pub(super) fn poll_exclusive(h: &History) -> Report {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::test_support::*;

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
}
