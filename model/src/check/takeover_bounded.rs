//! Invariant 4, takeover-bounded: after the leader is lost and blocking faults heal, a new
//! leader serves within the profile's bound. The one liveness invariant; fault windows
//! come from [`super::faults`].

use super::faults::{all_down, blocking_faults, Blocking};
use super::timeline::{t, Timeline};
use super::{CheckConfig, Invariant, Report, Violation};
use crate::history::History;
use crate::time::Millis;

pub(super) fn takeover_bounded(h: &History, tl: &Timeline, cfg: &CheckConfig) -> Report {
    let inv = Invariant::TakeoverBounded;
    let faults = blocking_faults(h);
    let mut violations = Vec::new();
    let mut notes = vec![format!(
        "{} leaderless gaps; bound {}",
        tl.gaps.len(),
        t(cfg.takeover_bound)
    )];
    for g in &tl.gaps {
        let gap_end = g.served.map_or(tl.end, |s| s.at);
        let lost = match g.lost_node {
            Some(n) => format!("node {n} {} at {}", g.lost_how, t(g.lost_at)),
            None => format!("the last leader was lost at {}", t(g.lost_at)),
        };
        let outcome = match g.served {
            Some(s) => format!(
                "node {} served (polled as leader) at {}, {} after the loss",
                s.node,
                t(s.at),
                t(s.at - g.lost_at)
            ),
            None => format!(
                "no leader served by the end of the history at {}, {} after the loss",
                t(tl.end),
                t(tl.end - g.lost_at)
            ),
        };
        let overlapping: Vec<&Blocking> = faults
            .iter()
            .filter(|f| f.start < gap_end && f.end.is_none_or(|end| end > g.lost_at))
            .collect();
        if let Some(f) = overlapping
            .iter()
            .find(|f| f.end.is_none_or(|end| end > gap_end))
        {
            notes.push(format!(
                "{lost}; {outcome}; not judged: blocking fault {} was still active at {}",
                f.what,
                t(gap_end)
            ));
            continue;
        }
        let last_heal = overlapping
            .iter()
            .filter_map(|f| f.end.map(|end| (end, f.what.as_str())))
            .max_by_key(|(end, _)| *end);
        let (mut start, mut from) = match last_heal {
            Some((end, what)) if end > g.lost_at => {
                (end, format!("from {}, when {what} healed", t(end)))
            }
            _ => (g.lost_at, "from the loss".to_string()),
        };
        // With every node down or frozen there is nobody to take over: the clock starts
        // again when the first process runs again. The time some node ran before they all
        // stopped is judged too, so that stopping them cannot excuse a takeover that was
        // already late.
        let mut late_before_all_down: Option<Millis> = None;
        let mut never_up_again = false;
        for (began, until) in all_down(h, g.lost_at, gap_end) {
            if began > start && began - start > cfg.takeover_bound {
                late_before_all_down = Some(began);
                break;
            }
            match until {
                Some(up) if up > start => {
                    start = up;
                    from = format!("from {}, when a node ran again after all were down", t(up));
                }
                Some(_) => {}
                None => {
                    never_up_again = true;
                    break;
                }
            }
        }
        if let Some(began) = late_before_all_down {
            let took = began - start;
            notes.push(format!(
                "{lost}; {outcome}; judged {from}: nobody served in the {} until every node was down or frozen at {}",
                t(took),
                t(began)
            ));
            violations.push(Violation::new(
                inv,
                start + cfg.takeover_bound,
                format!(
                    "{lost}; no leader served in the {} counted {from} while some node ran (until every node was down or frozen at {}), over the bound of {}",
                    t(took),
                    t(began),
                    t(cfg.takeover_bound)
                ),
                vec![g.lost_seq],
            ));
            continue;
        }
        if never_up_again {
            notes.push(format!(
                "{lost}; {outcome}; not judged: no node was running again by the end"
            ));
            continue;
        }
        let took = gap_end - start;
        notes.push(format!("{lost}; {outcome}; judged {from}: {}", t(took)));
        if took > cfg.takeover_bound {
            let mut evidence = vec![g.lost_seq];
            evidence.extend(g.served.map(|s| s.seq));
            let served = match g.served {
                Some(s) => format!("node {} first served as leader at {}", s.node, t(s.at)),
                None => format!(
                    "no leader had served by the end of the history at {}",
                    t(tl.end)
                ),
            };
            violations.push(Violation::new(
                inv,
                start + cfg.takeover_bound,
                format!(
                    "{lost}; {served}: {} counted {from}, over the bound of {}",
                    t(took),
                    t(cfg.takeover_bound)
                ),
                evidence,
            ));
        }
    }
    Report::new(inv, violations, notes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::test_support::*;

    #[test]
    fn takeover_bounded_flags_a_slow_takeover() {
        let h = hist(vec![
            (1000, lead('a', 1, "won")),
            (10_000, killed('a')),
            (30_000, lead('b', 2, "lease expired")),
            (31_000, poll('b', 5)),
        ]);
        let r = run(Invariant::TakeoverBounded, &h);
        let v = only_violation(
            &r,
            &[
                "node a exited (kill) at 10.0s",
                "node b first served as leader at 31.0s",
                "21.0s",
            ],
        );
        assert_eq!(v.at, Millis(20_000));
        assert_eq!(v.evidence, vec![1, 3]);
    }

    #[test]
    fn takeover_bounded_starts_the_clock_when_a_node_runs_again_after_all_were_down() {
        let h = hist(vec![
            (1000, lead('a', 1, "won")),
            (5_000, killed('b')),
            (10_000, killed('a')),
            (
                40_000,
                Event::ProcessStarted {
                    node: n('b'),
                    incarnation: 2,
                },
            ),
            (45_000, lead('b', 2, "lease expired")),
            (46_000, poll('b', 5)),
        ]);
        let r = run(Invariant::TakeoverBounded, &h);
        assert!(r.ok(), "6 s after b ran again is within 10 s: {r:#?}");
        assert!(
            r.notes.iter().any(|n| n.contains("when a node ran again")),
            "{:?}",
            r.notes
        );
        // Had b been running all along, the same takeover is 36 s late.
        let events = vec![
            (1000, lead('a', 1, "won")),
            (10_000, killed('a')),
            (45_000, lead('b', 2, "lease expired")),
            (46_000, poll('b', 5)),
        ];
        let late = run(Invariant::TakeoverBounded, &hist(events));
        assert_eq!(late.violations.len(), 1, "{late:#?}");
    }

    #[test]
    fn takeover_bounded_restarts_the_clock_after_every_node_went_down_during_the_gap() {
        // Fuzz seed 11090012: b frozen, then the leader a killed, then c frozen before the
        // lease ran out: nobody could take over until b resumed.
        let gap = |c_paused_at: u64| {
            hist(vec![
                (1000, lead('a', 1, "won")),
                (5_000, paused('b')),
                (10_000, killed('a')),
                (c_paused_at, paused('c')),
                (40_000, resumed('b')),
                (41_000, lead('b', 2, "lease expired")),
                (41_500, poll('b', 5)),
            ])
        };
        let r = run(Invariant::TakeoverBounded, &gap(14_000));
        assert_ok(&r);
        assert_note(
            &r,
            "from 40.0s, when a node ran again after all were down: 1.5s",
        );
        // c ran for 15 s after the loss without taking over, more than the 10 s bound,
        // before it froze: freezing it later does not excuse that.
        let r = run(Invariant::TakeoverBounded, &gap(25_000));
        let v = only_violation(
            &r,
            &[
                "node a exited (kill) at 10.0s",
                "no leader served in the 15.0s counted from the loss while some node ran",
                "every node was down or frozen at 25.0s",
            ],
        );
        assert_eq!(v.at, Millis(20_000));
    }

    #[test]
    fn takeover_bounded_flags_no_takeover_at_all() {
        let h = hist(vec![
            (1000, lead('a', 1, "won")),
            (10_000, paused('a')),
            (40_000, probe('b', false, Role::Candidate, None)),
        ]);
        only_violation(
            &run(Invariant::TakeoverBounded, &h),
            &["node a was paused at 10.0s", "no leader had served"],
        );
    }

    #[test]
    fn takeover_bounded_starts_the_clock_when_blocking_faults_heal() {
        let h = hist(vec![
            (1000, lead('a', 1, "won")),
            (5000, fault("partition", "b")),
            (10_000, fault("kill", "a")),
            (10_000, killed('a')),
            (25_000, heal("partition", "b")),
            (30_000, lead('b', 2, "lease expired")),
            (31_000, poll('b', 5)),
        ]);
        let r = run(Invariant::TakeoverBounded, &h);
        assert_ok(&r);
        assert!(
            r.notes
                .iter()
                .any(|n| n.contains("21.0s after the loss")
                    && n.contains("partition b healed: 6.0s")),
            "{:?}",
            r.notes
        );
        assert_eq!(takeovers(&h)[0].latency, Some(Millis(21_000)));
    }

    #[test]
    fn takeover_bounded_does_not_judge_while_a_blocking_fault_lasts() {
        let h = hist(vec![
            (1000, lead('a', 1, "won")),
            (5000, fault("partition", "b")),
            (10_000, killed('a')),
            (60_000, probe('b', false, Role::Candidate, None)),
        ]);
        let r = run(Invariant::TakeoverBounded, &h);
        assert_ok(&r);
        assert_note(&r, "not judged");
    }
}
