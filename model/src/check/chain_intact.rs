//! Invariant 5, chain-intact: the snapshot chain is linear, moves forward, and restores
//! hash as recorded. Cold restore trusts this chain, so it is judged from the history alone.

use super::timeline::{short, t};
use super::{Count, Invariant, Report, Violation};
use crate::history::{Entry, Event, History};
use crate::ids::NodeId;
use crate::time::Millis;
use std::collections::{BTreeMap, BTreeSet};

pub(super) struct Head<'a> {
    pub(super) at: Millis,
    pub(super) seq: u64,
    pub(super) node: NodeId,
    pub(super) id: &'a str,
    pub(super) version: u64,
}

pub(super) fn chain_intact(h: &History) -> Report {
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
    let records = judge_store_records(h, &mut violations);
    notes.insert(
        0,
        format!(
            "{accepted} publishes accepted, {refused} refused; {head_words}; {restores} restores verified; {} publish attempts recorded by the store, {} heads served untampered",
            records.attempts, records.heads_served
        ),
    );
    Report::new(inv, violations, notes).counted(
        &[
            (Count::Publishes, accepted + refused),
            (Count::Restores, restores),
        ],
        &[(Count::Heads, accepted)],
        "no snapshot was published or restored",
    )
}

/// What the store's own records showed: attempts judged and heads served.
struct StoreRecords {
    attempts: usize,
    heads_served: usize,
}

/// Judges what the store recorded rather than what it claims: every accepted publish
/// against the attempt recorded before the store decided (a link to itself, an id
/// reused for identical or different content), and every untampered head it served (a
/// link to itself, a head it never accepted, a head older than one it served before).
fn judge_store_records(h: &History, violations: &mut Vec<Violation>) -> StoreRecords {
    let inv = Invariant::ChainIntact;
    // The attempt the store's next decision is about.
    let mut attempt: Option<(&NodeId, &str, &str)> = None;
    // id → (entry of its first acceptance, its content digest if an attempt showed it)
    let mut accepted: BTreeMap<&str, (&Entry, Option<&str>)> = BTreeMap::new();
    // id → position of its latest acceptance, so "older" needs no version number (v1).
    let mut order: BTreeMap<&str, usize> = BTreeMap::new();
    let mut acceptances = 0usize;
    let mut last_served: Option<(&Entry, &str, u64, usize)> = None;
    let mut records = StoreRecords {
        attempts: 0,
        heads_served: 0,
    };
    for e in h.iter() {
        match &e.event {
            Event::PublishAttempted {
                node, id, digest, ..
            } => {
                records.attempts += 1;
                attempt = Some((node, id, digest));
            }
            Event::SnapshotPublished {
                node,
                id,
                parent,
                accepted: ok,
                ..
            } => {
                let digest = attempt
                    .take()
                    .filter(|(n, i, _)| *n == node && *i == id)
                    .map(|(_, _, d)| d);
                if !ok {
                    continue;
                }
                let mut faults = Vec::new();
                let mut evidence = vec![e.seq];
                if parent.as_deref() == Some(id.as_str()) {
                    faults.push(format!("its parent is itself ({id})"));
                }
                if let Some((first, first_digest)) = accepted.get(id.as_str()) {
                    let content = match (first_digest, digest) {
                        (Some(a), Some(b)) if *a == b => "identical content",
                        (Some(_), Some(_)) => "different content",
                        _ => "content the history does not show",
                    };
                    faults.push(format!(
                        "the id was already accepted at {} and is reused for {content}",
                        t(first.at)
                    ));
                    evidence.insert(0, first.seq);
                }
                if !faults.is_empty() {
                    violations.push(Violation::new(
                        inv,
                        e.at,
                        format!(
                            "the snapshot store accepted node {node}'s publish {id} at {}: {}",
                            t(e.at),
                            faults.join("; ")
                        ),
                        evidence,
                    ));
                }
                accepted.entry(id).or_insert((e, digest));
                acceptances += 1;
                order.insert(id, acceptances);
            }
            Event::HeadServed {
                node,
                fetch_id,
                id: Some(id),
                version,
                parent,
                tamper: None,
            } => {
                records.heads_served += 1;
                let mut faults = Vec::new();
                let mut evidence = vec![e.seq];
                if parent.as_deref() == Some(id.as_str()) {
                    faults.push("it links to itself as its own parent".to_string());
                }
                let rank = order.get(id.as_str()).copied();
                if rank.is_none() {
                    faults.push("the store never accepted it".to_string());
                }
                if let Some((prev, prev_id, prev_version, prev_rank)) = last_served {
                    let back_by_version = *version > 0 && *version < prev_version;
                    let back_by_order = rank.is_some_and(|r| r < prev_rank);
                    if back_by_version || back_by_order {
                        faults.push(format!(
                            "it is older than {prev_id} (version {prev_version}), the head served at {}",
                            t(prev.at)
                        ));
                        evidence.insert(0, prev.seq);
                    }
                }
                if !faults.is_empty() {
                    violations.push(Violation::new(
                        inv,
                        e.at,
                        format!(
                            "the snapshot store served node {node} head {id} (version {version}, fetch {fetch_id}) at {}: {}",
                            t(e.at),
                            faults.join("; ")
                        ),
                        evidence,
                    ));
                }
                if let Some(r) = rank {
                    last_served = Some((e, id, *version, r));
                }
            }
            _ => {}
        }
    }
    records
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::test_support::*;

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

    fn attempt(node: char, id: &str, parent: Option<&str>, digest: &str) -> Event {
        Event::PublishAttempted {
            node: n(node),
            id: id.into(),
            version: 0,
            parent: parent.map(Into::into),
            token: Some(1),
            digest: digest.into(),
        }
    }

    #[test]
    fn chain_intact_judges_the_stores_records_self_links_reused_ids_and_served_heads() {
        // v1's same-hour clobber: the id is its own parent and is accepted a second time.
        let h = hist(vec![
            (1000, attempt('a', "s1", None, "d1")),
            (1000, publish('a', "s1", 0, None, 1)),
            (2000, attempt('a', "s1", Some("s1"), "d1")),
            (2000, publish('a', "s1", 0, Some("s1"), 1)),
        ]);
        only_violation(
            &run(Invariant::ChainIntact, &h),
            &[
                "accepted node a's publish s1 at 2.0s",
                "its parent is itself (s1)",
                "reused for identical content",
            ],
        );
        // A served head older than one served before.
        let head = |fetch: u64, id: &str, version: u64| Event::HeadServed {
            node: n('b'),
            fetch_id: fetch,
            id: Some(id.into()),
            version,
            parent: None,
            tamper: None,
        };
        let h = hist(vec![
            (1000, publish('a', "s1", 1, None, 1)),
            (2000, publish('a', "s2", 2, Some("s1"), 1)),
            (3000, head(1, "s2", 2)),
            (4000, head(2, "s1", 1)),
        ]);
        only_violation(
            &run(Invariant::ChainIntact, &h),
            &[
                "served node b head s1 (version 1, fetch 2)",
                "older than s2",
            ],
        );
    }
}
