//! Invariant 3, chat-answered: every chat message is answered, by the leader of the moment.
//! It is the user-facing promise of the service, and the only checker that judges replies
//! by when they were sent rather than when they arrived.

use super::timeline::{list_or_none, t, Timeline};
use super::{Invariant, Report, Violation};
use crate::history::{Entry, Event, History};
use crate::ids::NodeId;
use crate::time::Millis;
use std::collections::{BTreeMap, BTreeSet};

#[derive(Clone, Copy)]
pub(super) struct Reply {
    pub(super) at: Millis,
    pub(super) seq: u64,
    pub(super) node: NodeId,
}

/// Telegram records a reply when it arrives. A reply that arrives after its sender's
/// last acting interval ended because the process died or froze, with that process not
/// resumed since, was sent while it still led: a dead or frozen process sends nothing, so
/// it was in flight when the leader was lost. A later incarnation of the node (a restart)
/// cannot have sent it when the reply names an earlier one; without an incarnation (a
/// real double cannot tell), any restart in between makes the reply unexplained.
pub(super) fn sent_before_it_stopped(
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
pub(super) fn sent_while_acting(
    h: &History,
    tl: &Timeline,
    node: NodeId,
    sent: Millis,
    seq: u64,
) -> bool {
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

pub(super) fn chat_answered(h: &History, tl: &Timeline) -> Report {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::test_support::*;

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
}
