//! Invariant 6, tamper-refused: a tampered snapshot served to a restoring node is refused.
//! Kept apart because it judges the restore path, which no other checker reads.

use super::timeline::t;
use super::{Count, Invariant, Report, Violation};
use crate::history::{Entry, Event, History, Role};
use crate::ids::NodeId;
use std::collections::{BTreeMap, BTreeSet};

pub(super) fn tamper_refused(h: &History) -> Report {
    let inv = Invariant::TamperRefused;
    // (node, fetch) → (served entry, snapshot id, tamper kind, verdict given)
    let mut tampered: BTreeMap<(NodeId, u64), (&Entry, String, &str, bool)> = BTreeMap::new();
    let mut violations = Vec::new();
    let mut notes = Vec::new();
    let (judged, rollbacks) = judge_restore_rollbacks(h, &mut violations);
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
                    if rollbacks.contains(&(*node, *fetch_id)) {
                        continue; // judged against what the node knew, above
                    }
                    // Without a record of what the node knew (an older history), a higher
                    // version it trusted before still tells.
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
                            "node {node} restored a replayed older head ({id}) at {}, but nothing it knew was newer (no manifest head, snapshot or persisted version above it): not a rollback of what it knew",
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
    notes.insert(
        0,
        format!(
            "{} tampered snapshots served; {judged} restores judged against what the node knew",
            tampered.len()
        ),
    );
    let restores = h
        .iter()
        .filter(|e| matches!(&e.event, Event::RestoreVerified { .. }))
        .count();
    let refused = h
        .iter()
        .filter(|e| match &e.event {
            Event::RestoreRefused {
                node,
                fetch_id: Some(fetch),
                ..
            } => tampered.contains_key(&(*node, *fetch)),
            _ => false,
        })
        .count();
    Report::new(inv, violations, notes).counted(
        &[
            (Count::TamperServed, tampered.len()),
            (Count::Restores, restores),
        ],
        &[(Count::TamperRefused, refused)],
        "no snapshot was restored and no tampered snapshot was served",
    )
}

/// Judges every restore against what the restoring node knew when it judged the fetch
/// ([`Event::RestoreBasis`]): the head its bootstrap manifest names, the snapshot it
/// already had, the version it had persisted. Restoring anything older is a rollback
/// accepted, whatever the profile and whether or not a tamper was injected. Returns how
/// many restores were judged and the `(node, fetch)` pairs flagged.
fn judge_restore_rollbacks(
    h: &History,
    violations: &mut Vec<Violation>,
) -> (usize, BTreeSet<(NodeId, u64)>) {
    let inv = Invariant::TamperRefused;
    // id → position of its first acceptance: "older" without version numbers (v1).
    let mut order: BTreeMap<&str, usize> = BTreeMap::new();
    let mut basis: BTreeMap<(NodeId, u64), &Entry> = BTreeMap::new();
    let mut flagged = BTreeSet::new();
    let mut judged = 0;
    for e in h.iter() {
        match &e.event {
            Event::SnapshotPublished {
                id, accepted: true, ..
            } => {
                let next = order.len();
                order.entry(id).or_insert(next);
            }
            Event::RestoreBasis { node, fetch_id, .. } => {
                basis.insert((*node, *fetch_id), e);
            }
            Event::RestoreVerified {
                node,
                fetch_id,
                snapshot,
                version,
                ..
            } => {
                let Some(be) = basis.remove(&(*node, *fetch_id)) else {
                    continue;
                };
                let Event::RestoreBasis {
                    manifest_head,
                    known_head,
                    persisted_version,
                    ..
                } = &be.event
                else {
                    continue;
                };
                judged += 1;
                let restored = order.get(snapshot.as_str());
                let older_than = |known: &Option<String>| {
                    known.as_deref().filter(|k| *k != snapshot).is_some_and(
                        |k| matches!((restored, order.get(k)), (Some(r), Some(k)) if r < k),
                    )
                };
                let mut knew = Vec::new();
                if let Some(p) = persisted_version.filter(|p| *version > 0 && *version < *p) {
                    knew.push(format!("it had persisted version {p}"));
                }
                if older_than(manifest_head) {
                    knew.push(format!(
                        "its bootstrap manifest names the newer head {}",
                        manifest_head.as_deref().unwrap_or_default()
                    ));
                }
                if older_than(known_head) {
                    knew.push(format!(
                        "it already had the newer snapshot {}",
                        known_head.as_deref().unwrap_or_default()
                    ));
                }
                if knew.is_empty() {
                    continue;
                }
                flagged.insert((*node, *fetch_id));
                violations.push(Violation::new(
                    inv,
                    e.at,
                    format!(
                        "node {node} restored snapshot {snapshot} (version {version}, fetch {fetch_id}) at {}, older than what it knew: {}; a rollback accepted",
                        t(e.at),
                        knew.join("; ")
                    ),
                    vec![be.seq, e.seq],
                ));
            }
            _ => {}
        }
    }
    (judged, flagged)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::test_support::*;

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

    #[test]
    fn tamper_refused_judges_a_restore_against_what_the_node_knew_under_every_profile() {
        // opentrident-v1 (version 0): the node's manifest names s2, it restored the older
        // s1, signed and untampered.
        let basis = |manifest: &str| Event::RestoreBasis {
            node: n('c'),
            fetch_id: 4,
            manifest_head: Some(manifest.into()),
            known_head: None,
            persisted_version: None,
        };
        let restored_s1 = Event::RestoreVerified {
            node: n('c'),
            fetch_id: 4,
            snapshot: "s1".into(),
            version: 0,
            state_version: 1,
            recorded: Vec::new(),
            restored: Vec::new(),
        };
        let h = hist(vec![
            (1000, publish('a', "s1", 0, None, 0)),
            (2000, publish('a', "s2", 0, Some("s1"), 0)),
            (3000, basis("s2")),
            (3000, restored_s1.clone()),
        ]);
        only_violation(
            &run(Invariant::TamperRefused, &h),
            &[
                "node c restored snapshot s1",
                "its bootstrap manifest names the newer head s2",
                "a rollback accepted",
            ],
        );
        // The same restore by a node whose manifest named s1 is no rollback.
        let h = hist(vec![
            (1000, publish('a', "s1", 0, None, 0)),
            (2000, publish('a', "s2", 0, Some("s1"), 0)),
            (3000, basis("s1")),
            (3000, restored_s1),
        ]);
        let r = run(Invariant::TamperRefused, &h);
        assert_ok(&r);
        assert_note(&r, "1 restores judged against what the node knew");
    }
}
