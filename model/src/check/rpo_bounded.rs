//! Invariant 7, rpo-bounded: state lost at failover is bounded by the snapshot interval,
//! less any time a fault kept the leader from saving (see [`super::faults`]).

use super::faults::store_fault_time;
use super::timeline::{t, Gap, Timeline};
use super::{CheckConfig, Invariant, Report, Violation};
use crate::history::{Entry, Event, History};
use crate::ids::NodeId;
use crate::time::Millis;

/// Where the lost leader's last term began: the promotion that opened it, looking through
/// pauses (a resumed leader's interval continues the same term). Without a lost leader,
/// the start of the history.
pub(super) fn term_start(tl: &Timeline, g: &Gap) -> u64 {
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

pub(super) fn rpo_bounded(h: &History, tl: &Timeline, cfg: &CheckConfig) -> Report {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::test_support::*;

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
}
