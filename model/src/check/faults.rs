//! Fault windows, the per-kind rules for which faults excuse what, and all-down stretches:
//! the facts about injected faults that the liveness and recovery checkers discount. One
//! place, over the history's typed faults, so takeover-bounded, rpo-bounded and the HTML
//! report read the same windows and no checker parses a fault's words.

use crate::fault::Fault;
use crate::history::{Event, History};
use crate::ids::{Endpoint, NodeId};
use crate::time::Millis;
use std::collections::BTreeSet;

/// One fault as it stood in a history: injected at `start`, healed at `end` (`None` when
/// it was never healed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FaultWindow {
    /// The fault.
    pub fault: Fault,
    /// When it was injected.
    pub start: Millis,
    /// When it was healed.
    pub end: Option<Millis>,
}

/// Every fault window of a history, in order of injection. A heal closes the earliest
/// open window of an equal fault.
pub fn fault_windows(h: &History) -> Vec<FaultWindow> {
    let mut out: Vec<FaultWindow> = Vec::new();
    for e in h.iter() {
        match &e.event {
            Event::Fault(fault) => out.push(FaultWindow {
                fault: fault.clone(),
                start: e.at,
                end: None,
            }),
            Event::Heal(fault) => {
                if let Some(open) = out
                    .iter_mut()
                    .find(|w| w.end.is_none() && w.fault == *fault)
                {
                    open.end = Some(e.at);
                }
            }
            _ => {}
        }
    }
    out
}

/// Whether a fault changes anything at all: zero extra latency, zero loss and a zero clock
/// error are faults in name only, which the fuzzer draws, and excuse nothing.
pub(super) fn has_effect(fault: &Fault) -> bool {
    match fault {
        Fault::Latency { extra } | Fault::StoreSlow { extra } | Fault::DiskSlow { extra, .. } => {
            *extra > Millis::ZERO
        }
        Fault::Loss { percent } => *percent > 0,
        Fault::ClockOffset { ms, .. } | Fault::ClockStep { ms, .. } => *ms != 0,
        Fault::ClockRate { ppm, .. } => *ppm != 0,
        _ => true,
    }
}

/// Whether `fault` can excuse a late takeover when the nodes in `candidates` could have
/// taken over. Killing, stopping, crashing or pausing a node is the loss itself, never an
/// excuse (all nodes down is judged apart, by [`all_down`]). A fault with no effect never
/// excuses. A fault on one node (isolation, a clock error) excuses only if that node was
/// a candidate; a cut only if it cuts a candidate off from a service or another
/// candidate. Faults on the shared network, the stores, Telegram or a host's disk can
/// hold up any candidate, and excuse.
pub(super) fn can_delay_takeover(fault: &Fault, candidates: &BTreeSet<NodeId>) -> bool {
    if !has_effect(fault) {
        return false;
    }
    let live = |e: &Endpoint| match e {
        Endpoint::Node(n) => candidates.contains(n),
        _ => true,
    };
    let touches_candidate = |x: &Endpoint, y: &Endpoint| {
        let on_candidate = |e: &Endpoint| matches!(e, Endpoint::Node(n) if candidates.contains(n));
        (on_candidate(x) || on_candidate(y)) && live(x) && live(y)
    };
    match fault {
        Fault::Kill { .. } | Fault::Crash { .. } | Fault::Stop { .. } | Fault::Pause { .. } => {
            false
        }
        Fault::Isolate { node }
        | Fault::ClockOffset { node, .. }
        | Fault::ClockStep { node, .. }
        | Fault::ClockRate { node, .. } => candidates.contains(node),
        Fault::Partition { a, b } => touches_candidate(a, b),
        Fault::PartitionOneway { from, to } => touches_candidate(from, to),
        Fault::Latency { .. }
        | Fault::Loss { .. }
        | Fault::StoreDown
        | Fault::StoreSlow { .. }
        | Fault::StoreTamper { .. }
        | Fault::TelegramErrors { .. }
        | Fault::ForeignPoller
        | Fault::LockFileCorrupt { .. }
        | Fault::DiskSlow { .. } => true,
    }
}

/// The nodes that could take over in `[from, to]`: those whose process ran at some
/// instant of it. A node counts as running unless the history shows it exited or paused
/// and not yet started or resumed again, or started only later (the convention of
/// [`all_down`]).
pub(super) fn candidates(h: &History, from: Millis, to: Millis) -> BTreeSet<NodeId> {
    let known: BTreeSet<NodeId> = h.iter().filter_map(|e| e.event.node()).collect();
    let mut down: BTreeSet<NodeId> = not_yet_started(h);
    let mut out: BTreeSet<NodeId> = BTreeSet::new();
    let mut seen_from = false;
    for e in h.iter() {
        if e.at > to {
            break;
        }
        if e.at > from && !seen_from {
            out.extend(known.difference(&down).copied());
            seen_from = true;
        }
        let Some((node, runs)) = process_change(&e.event) else {
            continue;
        };
        if runs {
            down.remove(&node);
        } else {
            down.insert(node);
        }
        if seen_from {
            out.extend(known.difference(&down).copied());
        }
    }
    out.extend(known.difference(&down).copied());
    out
}

/// The stretches during which every node's process was down or frozen, as `(from, until)`
/// (`until` is `None` when no process ran again by the end of the history), keeping those
/// that began before `to` and had not ended by `from`. A node counts as running unless the
/// history shows it exited or paused and not yet started or resumed again, or shows it
/// started later (a node that joins mid-run cannot take over before it exists); so a
/// history that records no processes, such as a checker test's, has every node it names
/// running.
pub(super) fn all_down(h: &History, from: Millis, to: Millis) -> Vec<(Millis, Option<Millis>)> {
    down_stretches(h, None, from, to)
}

/// The stretches during which nobody could take over after `lost` lost the lead: every
/// node was down or frozen ([`all_down`]), or every node but `lost` was, while a fault
/// that holds `lost` itself (the cut that deposed it) was in force, so that the one
/// running node could not lead again either. Sorted, overlapping stretches merged.
pub(super) fn nobody_able(
    h: &History,
    windows: &[FaultWindow],
    lost: Option<NodeId>,
    from: Millis,
    to: Millis,
) -> Vec<(Millis, Option<Millis>)> {
    let mut out = all_down(h, from, to);
    if let Some(lost) = lost {
        let only_lost: BTreeSet<NodeId> = [lost].into();
        let held: Vec<(Millis, Option<Millis>)> = windows
            .iter()
            .filter(|f| can_delay_takeover(&f.fault, &only_lost))
            .map(|f| (f.start, f.end))
            .collect();
        let later = |a: Option<Millis>, b: Option<Millis>| match (a, b) {
            (Some(x), Some(y)) => Some(x.min(y)),
            (x, None) => x,
            (None, y) => y,
        };
        for (b1, u1) in down_stretches(h, Some(lost), from, to) {
            for (b2, u2) in &held {
                let began = b1.max(*b2);
                let until = later(u1, *u2);
                if until.is_none_or(|u| u > began) && began < to && until.is_none_or(|u| u > from) {
                    out.push((began, until));
                }
            }
        }
    }
    out.sort();
    let mut merged: Vec<(Millis, Option<Millis>)> = Vec::new();
    for (began, until) in out {
        match merged.last_mut() {
            Some((_, last)) if last.is_none_or(|l| l >= began) => {
                *last = match (*last, until) {
                    (Some(x), Some(y)) => Some(x.max(y)),
                    _ => None,
                };
            }
            _ => merged.push((began, until)),
        }
    }
    merged
}

/// The stretches during which every known node except `except` was down or frozen.
fn down_stretches(
    h: &History,
    except: Option<NodeId>,
    from: Millis,
    to: Millis,
) -> Vec<(Millis, Option<Millis>)> {
    let mut known: BTreeSet<NodeId> = h.iter().filter_map(|e| e.event.node()).collect();
    if let Some(x) = except {
        known.remove(&x);
        if known.is_empty() {
            // A lone node: nobody else to be down; the caller's own rules judge it.
            return Vec::new();
        }
    }
    if known.is_empty() {
        return vec![(Millis::ZERO, None)];
    }
    let mut down: BTreeSet<NodeId> = not_yet_started(h);
    let mut since: Option<Millis> = None;
    let mut out = Vec::new();
    for e in h.iter() {
        let Some((node, runs)) = process_change(&e.event) else {
            continue;
        };
        if runs {
            down.remove(&node);
        } else {
            down.insert(node);
        }
        let all = known.iter().all(|n| down.contains(n));
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

/// A process event as `(node, runs afterwards)`: started or resumed, exited or paused.
/// The one reading of process events that `candidates`, `all_down` and
/// `not_yet_started` share.
fn process_change(event: &Event) -> Option<(NodeId, bool)> {
    match event {
        Event::ProcessStarted { node, .. } | Event::Resumed { node } => Some((*node, true)),
        Event::ProcessExited { node, .. } | Event::Paused { node } => Some((*node, false)),
        _ => None,
    }
}

/// The nodes whose first process event is a start: before it they ran nothing.
fn not_yet_started(h: &History) -> BTreeSet<NodeId> {
    let mut seen: BTreeSet<NodeId> = BTreeSet::new();
    let mut later = BTreeSet::new();
    for e in h.iter() {
        let Some((node, _)) = process_change(&e.event) else {
            continue;
        };
        if seen.insert(node) && matches!(e.event, Event::ProcessStarted { .. }) {
            later.insert(node);
        }
    }
    later
}

/// Whether a fault keeps `leader` from saving state: the store down, slow or tampered,
/// the whole network slowed or lossy, or the leader cut from the snapshot store or the
/// lease store (it cannot publish under a valid token). A cut elsewhere excuses nothing,
/// and neither does a fault with no effect.
pub(super) fn blocks_saving(fault: &Fault, leader: NodeId) -> bool {
    if !has_effect(fault) {
        return false;
    }
    let me = Endpoint::Node(leader);
    let is_store = |e: &Endpoint| matches!(e, Endpoint::SnapshotStore | Endpoint::LeaseStore);
    let cut = |x: &Endpoint, y: &Endpoint| (*x == me && is_store(y)) || (*y == me && is_store(x));
    match fault {
        Fault::StoreDown
        | Fault::StoreSlow { .. }
        | Fault::StoreTamper { .. }
        | Fault::Latency { .. }
        | Fault::Loss { .. } => true,
        Fault::Isolate { node } => *node == leader,
        Fault::Partition { a, b } => cut(a, b),
        Fault::PartitionOneway { from, to } => cut(from, to),
        _ => false,
    }
}

/// How much of `[from, to]` had a fault in place that keeps `leader` from saving state
/// ([`blocks_saving`]).
pub(super) fn store_fault_time(h: &History, leader: NodeId, from: Millis, to: Millis) -> Millis {
    let mut windows: Vec<(Millis, Millis)> = fault_windows(h)
        .into_iter()
        .filter(|w| blocks_saving(&w.fault, leader))
        .map(|w| (w.start, w.end.unwrap_or(h.end())))
        .collect();
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::test_support::*;
    use crate::fault::Tamper;

    fn nodes(list: &[char]) -> BTreeSet<NodeId> {
        list.iter().map(|c| n(*c)).collect()
    }

    #[test]
    fn a_fault_with_no_effect_never_excuses_a_late_takeover() {
        let all = nodes(&['a', 'b', 'c']);
        for nothing in [
            Fault::Latency {
                extra: Millis::ZERO,
            },
            Fault::Loss { percent: 0 },
            Fault::StoreSlow {
                extra: Millis::ZERO,
            },
            Fault::ClockOffset {
                node: n('b'),
                ms: 0,
            },
            Fault::ClockRate {
                node: n('b'),
                ppm: 0,
            },
        ] {
            assert!(!has_effect(&nothing), "{nothing}");
            assert!(!can_delay_takeover(&nothing, &all), "{nothing}");
            assert!(!blocks_saving(&nothing, n('a')), "{nothing}");
        }
        for something in [
            Fault::Latency { extra: Millis(200) },
            Fault::Loss { percent: 10 },
        ] {
            assert!(can_delay_takeover(&something, &all), "{something}");
            assert!(blocks_saving(&something, n('a')), "{something}");
        }
    }

    #[test]
    fn a_fault_on_a_node_that_was_not_a_candidate_does_not_excuse() {
        // a was the lost leader and stayed down; b could take over.
        let candidates = nodes(&['b']);
        let on = |node| Fault::Isolate { node: n(node) };
        assert!(!can_delay_takeover(&on('a'), &candidates));
        assert!(can_delay_takeover(&on('b'), &candidates));
        let clock = |node| Fault::ClockStep {
            node: n(node),
            ms: 30_000,
        };
        assert!(!can_delay_takeover(&clock('a'), &candidates));
        assert!(can_delay_takeover(&clock('b'), &candidates));
        let cut = |x: Endpoint, y: Endpoint| Fault::Partition { a: x, b: y };
        let node = |c| Endpoint::Node(n(c));
        assert!(!can_delay_takeover(
            &cut(node('a'), Endpoint::LeaseStore),
            &candidates
        ));
        assert!(can_delay_takeover(
            &cut(node('b'), Endpoint::LeaseStore),
            &candidates
        ));
        // A cut between the dead leader and the candidate holds nobody up.
        assert!(!can_delay_takeover(&cut(node('a'), node('b')), &candidates));
        // A cut between two services touches no candidate.
        assert!(!can_delay_takeover(
            &cut(Endpoint::Telegram, Endpoint::LeaseStore),
            &candidates
        ));
        let oneway = Fault::PartitionOneway {
            from: node('b'),
            to: Endpoint::Telegram,
        };
        assert!(can_delay_takeover(&oneway, &candidates));
    }

    #[test]
    fn the_loss_itself_never_excuses_and_shared_services_always_can() {
        let candidates = nodes(&['b']);
        for loss in [
            Fault::Kill { node: n('b') },
            Fault::Crash { node: n('b') },
            Fault::Stop { node: n('b') },
            Fault::Pause { node: n('b') },
        ] {
            assert!(!can_delay_takeover(&loss, &candidates), "{loss}");
        }
        for shared in [
            Fault::StoreDown,
            Fault::StoreTamper {
                tamper: Tamper::FlipByte,
            },
            Fault::TelegramErrors { code: 502 },
            Fault::ForeignPoller,
            Fault::LockFileCorrupt { host: "h1".into() },
            Fault::DiskSlow {
                host: "h1".into(),
                extra: Millis(500),
            },
        ] {
            assert!(can_delay_takeover(&shared, &candidates), "{shared}");
        }
    }

    #[test]
    fn candidates_are_the_nodes_running_during_the_gap() {
        let h = hist(vec![
            (0, started('a')),
            (0, started('b')),
            (0, started('c')),
            (1000, killed('a')),
            (1000, paused('c')),
            (9000, resumed('c')),
        ]);
        assert_eq!(candidates(&h, Millis(1000), Millis(5000)), nodes(&['b']));
        assert_eq!(
            candidates(&h, Millis(1000), Millis(9000)),
            nodes(&['b', 'c'])
        );
    }

    #[test]
    fn fault_windows_pair_each_heal_with_the_earliest_equal_fault() {
        let cut = Fault::Isolate { node: n('b') };
        let h = hist(vec![
            (1000, fault(cut.clone())),
            (2000, fault(Fault::StoreDown)),
            (3000, heal(cut.clone())),
        ]);
        let w = fault_windows(&h);
        assert_eq!(w.len(), 2);
        assert_eq!((w[0].fault.clone(), w[0].end), (cut, Some(Millis(3000))));
        assert_eq!((w[1].fault.clone(), w[1].end), (Fault::StoreDown, None));
        assert_eq!(
            store_fault_time(&h, n('a'), Millis(0), Millis(2500)),
            Millis(500)
        );
    }

    /// Fuzz seed 92546 (with the tampering plan's late third node): the leader b killed
    /// while a is frozen and c has not started yet. Nobody could take over until a
    /// resumed, so that stretch is all down, and c is no candidate before it starts.
    #[test]
    fn a_node_that_starts_later_is_down_until_it_starts() {
        let started = |node: char| Event::ProcessStarted {
            node: n(node),
            incarnation: 1,
        };
        let h = hist(vec![
            (0, started('a')),
            (0, started('b')),
            (92_546, paused('a')),
            (118_962, killed('b')),
            (142_869, resumed('a')),
            (171_705, started('c')),
        ]);
        assert_eq!(
            all_down(&h, Millis(118_962), Millis(142_988)),
            vec![(Millis(118_962), Some(Millis(142_869)))]
        );
        // a frozen, b dead, c not started: nobody could have taken over.
        assert_eq!(
            candidates(&h, Millis(118_962), Millis(142_000)),
            BTreeSet::new()
        );
        assert!(candidates(&h, Millis(171_000), Millis(172_000)).contains(&n('c')));
    }
}
