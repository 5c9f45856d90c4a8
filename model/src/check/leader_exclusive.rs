//! Invariant 1, leader-exclusive: at most one node acts as leader at any instant, and no
//! publish carries a fencing token older than one already seen. Kept apart so the
//! split-brain judgement and its wording can be read (and changed) on their own.

use super::timeline::{t, token_words, Iv, Timeline};
use super::{Count, Invariant, Report, Violation};
use crate::history::{Entry, Event, History, Role};
use crate::ids::NodeId;
use std::collections::BTreeSet;

/// The lock-file read that led to a promotion: the node's last read before it, within the
/// same process and since its previous promotion, so an old term's read is never blamed.
pub(super) fn lock_read_before(h: &History, node: NodeId, seq: u64) -> Option<(&Entry, String)> {
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

pub(super) fn promotion_words(h: &History, iv: &Iv) -> (String, Option<u64>) {
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

pub(super) fn leader_exclusive(h: &History, tl: &Timeline) -> Report {
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

    let mut flagged = BTreeSet::new();
    let attempts = judge_attempt_tokens(h, &mut violations, &mut flagged);
    // Fencing, where no attempt was recorded: the store must never accept a publish whose
    // token is below one it already accepted, or a deposed leader can overwrite its
    // successor's work.
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
        if let Some((best, be)) = highest.filter(|_| !flagged.contains(&e.seq)) {
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

    let mut notes = vec![
        format!("{} acting-leader intervals", tl.ivs.len()),
        format!(
            "{} publish attempts' tokens judged against the newest grant; {} stale attempts refused by the store",
            attempts.judged, attempts.stale_refused
        ),
    ];
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
    let fenced_publishes = h
        .iter()
        .filter(|e| {
            matches!(
                &e.event,
                Event::SnapshotPublished {
                    token: Some(_),
                    accepted: true,
                    ..
                }
            )
        })
        .count();
    Report::new(inv, violations, notes).counted(
        &[
            (Count::LeaderIntervals, tl.ivs.len()),
            (Count::TokenedPublishes, fenced_publishes),
        ],
        &[],
        "no node acted as leader",
    )
}

/// A publish attempt, its token, and the newest grant (token, entry) when it arrived.
type Attempt<'a> = (&'a Entry, u64, Option<(u64, &'a Entry)>);

/// What the token check on publish attempts judged.
struct AttemptTokens {
    judged: usize,
    stale_refused: usize,
}

/// Judges the fencing token of every publish attempt, recorded when it reached the store
/// and before the store decided, against the newest token the lease store had granted by
/// then: a stale attempt the store accepted is a deposed leader overwriting its
/// successor's chain, whatever the store believed. Returns the counts, and adds the
/// decisions it flagged to `flagged`.
fn judge_attempt_tokens(
    h: &History,
    violations: &mut Vec<Violation>,
    flagged: &mut BTreeSet<u64>,
) -> AttemptTokens {
    let inv = Invariant::LeaderExclusive;
    let mut newest: Option<(u64, &Entry)> = None;
    // The attempt the store's next decision is about, with the newest grant at the time.
    let mut attempt: Option<Attempt> = None;
    let mut counts = AttemptTokens {
        judged: 0,
        stale_refused: 0,
    };
    for e in h.iter() {
        match &e.event {
            Event::LeaseGranted { token, .. } if newest.is_none_or(|(best, _)| *token > best) => {
                newest = Some((*token, e));
            }
            Event::PublishAttempted { token, .. } => {
                attempt = token.map(|t| (e, t, newest));
                counts.judged += usize::from(token.is_some());
            }
            Event::SnapshotPublished {
                node, id, accepted, ..
            } => {
                let Some((ae, token, Some((granted, ge)))) = attempt.take() else {
                    continue;
                };
                let same = matches!(&ae.event, Event::PublishAttempted { node: n, id: i, .. } if n == node && i == id);
                if !same || token >= granted {
                    continue;
                }
                if !accepted {
                    counts.stale_refused += 1;
                    continue;
                }
                let granted_to = ge.event.node().map_or("?".into(), |n| n.to_string());
                flagged.insert(e.seq);
                violations.push(Violation::new(
                    inv,
                    e.at,
                    format!(
                        "the snapshot store accepted node {node}'s publish {id} with stale token {token} at {}: the lease store had granted token {granted} to node {granted_to} at {}",
                        t(e.at),
                        t(ge.at)
                    ),
                    vec![ge.seq, ae.seq, e.seq],
                ));
            }
            _ => {}
        }
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::test_support::*;

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

    fn granted(node: char, token: u64) -> Event {
        Event::LeaseGranted {
            node: n(node),
            token,
            lease: token as i64,
            expires_at: Millis::secs(60),
        }
    }

    fn attempt(node: char, id: &str, token: u64) -> Event {
        Event::PublishAttempted {
            node: n(node),
            id: id.into(),
            version: 2,
            parent: Some("s1".into()),
            token: Some(token),
            digest: "d".into(),
        }
    }

    #[test]
    fn leader_exclusive_judges_the_token_on_each_attempt_against_the_newest_grant() {
        // The store has seen no publish with token 5 yet, so a store comparing only with
        // what it accepted takes token 3: the attempt shows it.
        let accepted = hist(vec![
            (1000, granted('a', 3)),
            (5000, granted('b', 5)),
            (6000, attempt('a', "s2", 3)),
            (6000, publish('a', "s2", 2, Some("s1"), 3)),
        ]);
        only_violation(
            &run(Invariant::LeaderExclusive, &accepted),
            &[
                "accepted node a's publish s2 with stale token 3 at 6.0s",
                "granted token 5 to node b at 5.0s",
            ],
        );
        let refused = hist(vec![
            (1000, granted('a', 3)),
            (5000, granted('b', 5)),
            (6000, attempt('a', "s2", 3)),
            (6000, refused_publish('a', "s2", 3)),
        ]);
        let r = run(Invariant::LeaderExclusive, &refused);
        assert_ok(&r);
        assert_note(&r, "1 stale attempts refused by the store");
    }
}
