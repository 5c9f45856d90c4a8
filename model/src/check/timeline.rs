//! The acting-leader timeline (who acted as leader when, and each leaderless gap) and the
//! shared wording of times and tokens. Four checkers judge against the same timeline, so
//! it is built once per history and its rules live in one place.

use crate::history::{Entry, Event, History, Role};
use crate::ids::NodeId;
use crate::time::Millis;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A stretch of time in which a node acted as leader: it had said it leads and was
/// neither paused, exited nor stepped down.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaderInterval {
    /// The node.
    pub node: NodeId,
    /// When it began to act (promotion, or resume while still leader).
    pub start: Millis,
    /// When it stopped acting; `None` while still acting at the end of the history.
    pub end: Option<Millis>,
    /// The fencing token it announced.
    pub token: Option<u64>,
    /// Why it became leader, in the node's words.
    pub why: String,
    /// The seq of the event that started the interval.
    pub start_seq: u64,
}

/// Every acting-leader interval of a history, in order of start.
pub fn leader_intervals(h: &History) -> Vec<LeaderInterval> {
    Timeline::build(h)
        .ivs
        .into_iter()
        .map(|iv| LeaderInterval {
            node: iv.node,
            start: iv.start,
            end: iv.end,
            token: iv.token,
            why: iv.why,
            start_seq: iv.start_seq,
        })
        .collect()
}

/// One leaderless gap: the service lost its last acting leader, and maybe got one back.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Takeover {
    /// When the last acting leader stopped acting.
    pub lost_at: Millis,
    /// When a leader first polled Telegram after that; `None` if none did.
    pub served_at: Option<Millis>,
    /// The node that served.
    pub new_leader: Option<NodeId>,
    /// `served_at - lost_at`, ignoring faults that blocked recovery (the takeover-bounded
    /// checker discounts those; benchmarks want the raw figure).
    pub latency: Option<Millis>,
}

/// Every leaderless gap of a history, in order.
pub fn takeovers(h: &History) -> Vec<Takeover> {
    Timeline::build(h)
        .gaps
        .iter()
        .map(|g| Takeover {
            lost_at: g.lost_at,
            served_at: g.served.map(|s| s.at),
            new_leader: g.served.map(|s| s.node),
            latency: g.served.map(|s| s.at - g.lost_at),
        })
        .collect()
}

// The acting-leader timeline, which four checkers share.

#[derive(Clone, Debug)]
pub(super) struct Iv {
    pub(super) node: NodeId,
    pub(super) start: Millis,
    pub(super) start_seq: u64,
    pub(super) end: Option<Millis>,
    pub(super) end_seq: Option<u64>,
    pub(super) token: Option<u64>,
    pub(super) why: String,
    /// Started by a resume rather than a promotion, so no lock-file read led to it.
    pub(super) resumed: bool,
    /// How the interval ended, phrased to follow "node a …" (`was paused`).
    pub(super) end_why: String,
}

impl Iv {
    /// Seqs, not times, decide whether an event fell inside: events at one instant are
    /// still ordered, and a reply sent just before a pause at the same millisecond counts.
    pub(super) fn covers(&self, seq: u64) -> bool {
        self.start_seq < seq && self.end_seq.is_none_or(|e| seq < e)
    }

    pub(super) fn end_or(&self, end: Millis) -> Millis {
        self.end.unwrap_or(end)
    }
}

#[derive(Default)]
pub(super) struct NodeState {
    pub(super) role: Option<Role>,
    pub(super) token: Option<u64>,
    pub(super) why: String,
    pub(super) paused: bool,
    pub(super) open: Option<usize>,
}

#[derive(Clone, Copy, Debug)]
pub(super) struct Served {
    pub(super) at: Millis,
    pub(super) seq: u64,
    pub(super) node: NodeId,
}

#[derive(Clone, Debug)]
pub(super) struct Gap {
    pub(super) lost_at: Millis,
    pub(super) lost_seq: u64,
    pub(super) lost_node: Option<NodeId>,
    pub(super) lost_how: String,
    pub(super) served: Option<Served>,
    /// Seqs of the RoleChanged→Leader events that opened an interval during the gap.
    pub(super) promotions: Vec<u64>,
}

pub(super) struct Timeline {
    pub(super) ivs: Vec<Iv>,
    pub(super) gaps: Vec<Gap>,
    pub(super) end: Millis,
}

pub(super) fn close(iv: &mut Iv, e: &Entry, how: String) {
    iv.end = Some(e.at);
    iv.end_seq = Some(e.seq);
    iv.end_why = how;
}

pub(super) fn with_why(why: &str) -> String {
    if why.is_empty() {
        String::new()
    } else {
        format!(" ({why})")
    }
}

impl Timeline {
    pub(super) fn build(h: &History) -> Timeline {
        let mut ivs: Vec<Iv> = Vec::new();
        let mut nodes: BTreeMap<NodeId, NodeState> = BTreeMap::new();
        let mut gaps: Vec<Gap> = Vec::new();
        let mut open_gap: Option<usize> = None;
        for e in h.iter() {
            let acting_before = nodes.values().filter(|s| s.open.is_some()).count();
            match &e.event {
                Event::RoleChanged {
                    node,
                    role,
                    token,
                    why,
                } => {
                    let st = nodes.entry(*node).or_default();
                    if *role == Role::Leader {
                        // Re-announcing the same term changes nothing; a new token is a new
                        // term, so the old interval ends here and a new one starts.
                        let same_term = st.open.is_some_and(|i| ivs[i].token == *token);
                        if !same_term {
                            if let Some(i) = st.open.take() {
                                close(
                                    &mut ivs[i],
                                    e,
                                    format!("took the lead again{}", tok(*token)),
                                );
                            }
                            st.role = Some(Role::Leader);
                            st.token = *token;
                            st.why = why.clone();
                            if !st.paused {
                                st.open = Some(ivs.len());
                                ivs.push(Iv {
                                    node: *node,
                                    start: e.at,
                                    start_seq: e.seq,
                                    end: None,
                                    end_seq: None,
                                    token: *token,
                                    why: why.clone(),
                                    resumed: false,
                                    end_why: String::new(),
                                });
                                if let Some(g) = open_gap {
                                    gaps[g].promotions.push(e.seq);
                                }
                            }
                        }
                    } else {
                        st.role = Some(*role);
                        if let Some(i) = st.open.take() {
                            close(&mut ivs[i], e, format!("became {role}{}", with_why(why)));
                        }
                    }
                }
                Event::ProcessExited { node, how, .. } => {
                    let st = nodes.entry(*node).or_default();
                    if let Some(i) = st.open.take() {
                        close(&mut ivs[i], e, format!("exited ({how})"));
                    }
                    *st = NodeState::default();
                }
                Event::ProcessStarted { node, .. } => {
                    let st = nodes.entry(*node).or_default();
                    if let Some(i) = st.open.take() {
                        close(&mut ivs[i], e, "restarted".into());
                    }
                    *st = NodeState::default();
                }
                Event::Paused { node } => {
                    let st = nodes.entry(*node).or_default();
                    if let Some(i) = st.open.take() {
                        close(&mut ivs[i], e, "was paused".into());
                    }
                    st.paused = true;
                }
                Event::Resumed { node } => {
                    let st = nodes.entry(*node).or_default();
                    st.paused = false;
                    // A frozen leader wakes up still believing it leads, and acts on it
                    // until it notices otherwise: that is exactly the danger to expose.
                    if st.role == Some(Role::Leader) && st.open.is_none() {
                        st.open = Some(ivs.len());
                        ivs.push(Iv {
                            node: *node,
                            start: e.at,
                            start_seq: e.seq,
                            end: None,
                            end_seq: None,
                            token: st.token,
                            why: format!(
                                "resumed from a pause still leader (led because: {})",
                                st.why
                            ),
                            resumed: true,
                            end_why: String::new(),
                        });
                    }
                }
                Event::PollStarted {
                    node: Some(node), ..
                } => {
                    let acting = nodes.get(node).is_some_and(|s| s.open.is_some());
                    if let (Some(g), true) = (open_gap, acting) {
                        gaps[g].served = Some(Served {
                            at: e.at,
                            seq: e.seq,
                            node: *node,
                        });
                        open_gap = None;
                    }
                }
                _ => {}
            }
            let acting_after = nodes.values().filter(|s| s.open.is_some()).count();
            if acting_before > 0 && acting_after == 0 && open_gap.is_none() {
                let lost = ivs.iter().find(|iv| iv.end_seq == Some(e.seq));
                open_gap = Some(gaps.len());
                gaps.push(Gap {
                    lost_at: e.at,
                    lost_seq: e.seq,
                    lost_node: lost.map(|iv| iv.node),
                    lost_how: lost.map(|iv| iv.end_why.clone()).unwrap_or_default(),
                    served: None,
                    promotions: Vec::new(),
                });
            }
        }
        Timeline {
            ivs,
            gaps,
            end: h.end(),
        }
    }

    pub(super) fn acting_at(&self, seq: u64) -> Vec<&Iv> {
        self.ivs.iter().filter(|iv| iv.covers(seq)).collect()
    }

    pub(super) fn acting_iv(&self, node: NodeId, seq: u64) -> Option<&Iv> {
        self.ivs.iter().find(|iv| iv.node == node && iv.covers(seq))
    }

    /// Says why `node` was not acting leader at `seq`, for explanations.
    pub(super) fn not_acting(&self, node: NodeId, seq: u64) -> String {
        match self
            .ivs
            .iter()
            .rev()
            .find(|iv| iv.node == node && iv.start_seq < seq)
        {
            Some(iv) => format!(
                "its last acting-leader interval ran from {} to {}, when it {}",
                t(iv.start),
                t(iv.end_or(self.end)),
                iv.end_why
            ),
            None => "it had not acted as leader before".into(),
        }
    }

    /// Says why `node` was not acting leader at time `at` (an event at `seq` told of it).
    pub(super) fn not_acting_when(&self, node: NodeId, at: Millis, seq: u64) -> String {
        match self
            .ivs
            .iter()
            .rev()
            .find(|iv| iv.node == node && iv.start_seq < seq && iv.start <= at)
        {
            Some(iv) => format!(
                "its last acting-leader interval by then ran from {} to {}, when it {}",
                t(iv.start),
                t(iv.end_or(self.end)),
                iv.end_why
            ),
            None => "it had not acted as leader by then".into(),
        }
    }
}

// Words.

/// Times and durations read as seconds with a tenth (`12.0s`), or with milliseconds when
/// the tenth would round.
pub(super) fn t(m: Millis) -> String {
    if m.0.is_multiple_of(100) {
        format!("{:.1}s", m.as_secs_f64())
    } else {
        format!("{:.3}s", m.as_secs_f64())
    }
}

pub(super) fn tok(token: Option<u64>) -> String {
    match token {
        Some(k) => format!(" with token {k}"),
        None => " without a token".into(),
    }
}

pub(super) fn token_words(token: Option<u64>) -> String {
    match token {
        Some(k) => format!("token {k}"),
        None => "no token".into(),
    }
}

pub(super) fn short(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
}

pub(super) fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "none".into()
    } else {
        items.join("; ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::test_support::*;

    #[test]
    fn a_paused_leader_stops_acting_and_acts_again_on_resume() {
        let h = hist(vec![
            (2000, lead('a', 1, "lease granted")),
            (5000, paused('a')),
            (9000, resumed('a')),
            (12000, role('a', Role::Follower)),
            (13000, paused('a')),
            (14000, resumed('a')),
        ]);
        let ivs = leader_intervals(&h);
        let spans: Vec<(Millis, Option<Millis>, u64)> = ivs
            .iter()
            .map(|iv| (iv.start, iv.end, iv.start_seq))
            .collect();
        assert_eq!(
            spans,
            vec![
                (Millis(2000), Some(Millis(5000)), 0),
                (Millis(9000), Some(Millis(12000)), 2),
            ],
            "a resumed follower must not act"
        );
        assert!(ivs
            .iter()
            .all(|iv| iv.node == n('a') && iv.token == Some(1)));
        assert!(ivs[1].why.contains("lease granted"), "{}", ivs[1].why);
    }

    #[test]
    fn an_exited_leader_does_not_act_again_on_restart() {
        let h = hist(vec![
            (1000, lead('a', 1, "won")),
            (3000, killed('a')),
            (
                4000,
                Event::ProcessStarted {
                    node: n('a'),
                    incarnation: 2,
                },
            ),
            (5000, resumed('a')),
        ]);
        let ivs = leader_intervals(&h);
        assert_eq!(ivs.len(), 1);
        assert_eq!(ivs[0].end, Some(Millis(3000)));
    }

    #[test]
    fn takeovers_measure_from_loss_to_first_poll_as_leader() {
        let h = hist(vec![
            (1000, lead('a', 1, "won")),
            (1100, poll('a', 1)),
            (10_000, killed('a')),
            // b polls before it leads: that is not service.
            (12_000, poll('b', 2)),
            (14_000, lead('b', 2, "lease expired")),
            (15_500, poll('b', 3)),
            (20_000, paused('b')),
        ]);
        let got = takeovers(&h);
        assert_eq!(
            got,
            vec![
                Takeover {
                    lost_at: Millis(10_000),
                    served_at: Some(Millis(15_500)),
                    new_leader: Some(n('b')),
                    latency: Some(Millis(5_500)),
                },
                Takeover {
                    lost_at: Millis(20_000),
                    served_at: None,
                    new_leader: None,
                    latency: None,
                },
            ]
        );
    }
}
