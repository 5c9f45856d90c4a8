//! Fault windows, blocking faults and all-down stretches: the facts about injected faults
//! that the liveness and recovery checkers discount. One place so takeover-bounded and
//! rpo-bounded read the same windows.

use crate::history::{Event, FaultInfo, History};
use crate::ids::NodeId;
use crate::time::Millis;
use std::collections::{BTreeMap, BTreeSet};

/// Kinds that are the leader loss itself; every other fault is one that can block the
/// recovery (a cut link, a faulted store) and so holds the takeover clock.
pub(super) const LOSS_KINDS: [&str; 5] = ["kill", "stop", "crash", "pause", "exit"];

pub(super) struct Blocking {
    pub(super) start: Millis,
    pub(super) end: Option<Millis>,
    pub(super) what: String,
}

pub(super) fn blocking_faults(h: &History) -> Vec<Blocking> {
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
pub(super) fn all_down(h: &History, from: Millis, to: Millis) -> Vec<(Millis, Option<Millis>)> {
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

/// Whether a fault keeps `leader` from saving state: the store down, slow or tampered,
/// the whole network slowed or lossy, or the leader cut from the snapshot store or the
/// lease store (it cannot publish under a valid token). A cut elsewhere excuses nothing.
pub(super) fn blocks_saving(f: &FaultInfo, leader: NodeId) -> bool {
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
pub(super) fn store_fault_time(h: &History, leader: NodeId, from: Millis, to: Millis) -> Millis {
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
