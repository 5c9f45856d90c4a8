//! Invariant 8, health-truthful: `/readyz` is true only when a node serves as leader or
//! follows the actual leader. Load balancers act on it, so a lie there routes users wrong.

use super::timeline::{t, Timeline};
use super::{CheckConfig, Invariant, Report, Violation};
use crate::history::{Event, History, Role};

pub(super) fn health_truthful(h: &History, tl: &Timeline, cfg: &CheckConfig) -> Report {
    let inv = Invariant::HealthTruthful;
    let mut violations = Vec::new();
    let (mut probes, mut ready) = (0usize, 0usize);
    for e in h.iter() {
        let Event::HealthProbe {
            node,
            readyz,
            role,
            observed_leader,
            ..
        } = &e.event
        else {
            continue;
        };
        probes += 1;
        if !readyz {
            continue;
        }
        ready += 1;
        let acting = tl.acting_at(e.seq);
        let leaders: Vec<String> = acting.iter().map(|iv| iv.node.to_string()).collect();
        let lie = match role {
            Role::Leader => {
                let me = acting.iter().any(|iv| iv.node == *node);
                // A leader that resumed from a pause and stepped down within the same
                // millisecond, on seeing its lease lapsed, did nothing as leader: it splits
                // no brain (leader-exclusive ignores such zero-length overlaps too).
                let others: Vec<String> = acting
                    .iter()
                    .filter(|iv| iv.node != *node && !(iv.resumed && iv.end == Some(iv.start)))
                    .map(|iv| iv.node.to_string())
                    .collect();
                if !me {
                    Some(format!(
                        "as leader but was not acting leader: {}",
                        tl.not_acting(*node, e.seq)
                    ))
                } else if !others.is_empty() {
                    Some(format!(
                        "as leader while node {} also acted as leader (split brain reported ready)",
                        others.join(", ")
                    ))
                } else {
                    None
                }
            }
            Role::Follower => {
                let says = match observed_leader {
                    Some(l) => format!("as follower of node {l}"),
                    None => "as follower observing no leader".into(),
                };
                let in_sync = observed_leader.is_some_and(|l| {
                    acting.iter().any(|iv| iv.node == l)
                        || tl.ivs.iter().any(|iv| {
                            iv.node == l
                                && iv.start <= e.at
                                && iv.end.is_some_and(|end| end + cfg.observe_lag >= e.at)
                        })
                });
                // With several acting leaders, following any of them is as true as a
                // follower can be; the split brain itself is leader-exclusive's to report.
                if in_sync {
                    None
                } else if leaders.is_empty() {
                    Some(format!("{says} while no node acted as leader"))
                } else {
                    Some(format!(
                        "{says} while node {} acted as leader",
                        leaders.join(", ")
                    ))
                }
            }
            other => Some(format!("while its role was {other}")),
        };
        if let Some(lie) = lie {
            violations.push(Violation::new(
                inv,
                e.at,
                format!("node {node} reported ready at {} {lie}", t(e.at)),
                vec![e.seq],
            ));
        }
    }
    let notes = vec![format!("{probes} health probes, {ready} ready")];
    Report::new(inv, violations, notes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::test_support::*;

    #[test]
    fn health_truthful_table() {
        // a leads alone from 1s; b leads too from 20s (split brain) unless cut short.
        let base = |probe_at: u64, p: Event, split: bool| {
            let mut ev = vec![(1000, lead('a', 1, "won"))];
            if split {
                ev.push((2000, lead('b', 2, "won")));
            }
            ev.push((probe_at, p));
            hist(ev)
        };
        let cases: Vec<(&str, History, Option<&str>)> = vec![
            (
                "leader alone",
                base(5000, probe('a', true, Role::Leader, Some('a')), false),
                None,
            ),
            (
                "follower of the leader",
                base(5000, probe('c', true, Role::Follower, Some('a')), false),
                None,
            ),
            (
                "not ready while restoring",
                base(5000, probe('c', false, Role::Restoring, None), false),
                None,
            ),
            (
                "ready while restoring",
                base(5000, probe('c', true, Role::Restoring, None), false),
                Some("node c reported ready at 5.0s while its role was restoring"),
            ),
            (
                "ready leader in split brain",
                base(5000, probe('a', true, Role::Leader, Some('a')), true),
                Some("while node b also acted as leader"),
            ),
            (
                "ready leader not acting",
                base(5000, probe('c', true, Role::Leader, Some('c')), false),
                Some("as leader but was not acting leader"),
            ),
            (
                "follower of the wrong node",
                base(5000, probe('c', true, Role::Follower, Some('b')), false),
                Some("as follower of node b while node a acted as leader"),
            ),
            (
                "follower of no one",
                base(5000, probe('c', true, Role::Follower, None), false),
                Some("observing no leader while node a"),
            ),
        ];
        for (name, h, want) in cases {
            let r = run(Invariant::HealthTruthful, &h);
            match want {
                None => assert!(r.ok(), "{name}: {r:#?}"),
                Some(fact) => {
                    only_violation(&r, &[fact]);
                }
            }
        }
    }

    #[test]
    fn health_truthful_flags_a_follower_of_a_leader_that_is_gone() {
        let h = hist(vec![
            (1000, lead('a', 1, "won")),
            (2000, paused('a')),
            (3000, probe('b', true, Role::Follower, Some('a'))),
        ]);
        only_violation(
            &run(Invariant::HealthTruthful, &h),
            &["as follower of node a while no node acted as leader"],
        );
    }
}
