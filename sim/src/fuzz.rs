//! The fuzzer's cases: a cluster, a profile and a random fault schedule, written as a
//! scenario so that any failure replays from its file.
//!
//! A case is a ten-minute drill: the primary starts, two blank nodes bootstrap from the
//! manifest, faults of every kind land at random times for random durations during the
//! safety phase (the first `FAULT_PHASE`), the operator chats throughout; then every
//! fault is healed and the liveness phase requires a reply (TigerBeetle's VOPR split).
//! proptest generates and shrinks [`FaultPlan`]s; `lifeboat fuzz` draws them from a
//! seeded generator. Either way the case becomes a [`Scenario`] and runs through the
//! same drill runner as every other scenario.
//!
//! Fault model per profile: `fenced` declares it survives one-way latency up to its
//! `max_latency` and clock rate error up to its `drift_ppt`; the fuzzer stays inside
//! those bounds for it (drawing past them is a different claim, tested separately).

use crate::backend::{run_scenario, Engine};
use lifeboat_model::check::{Count, Invariant};
use lifeboat_model::drill::DrillReport;
use lifeboat_model::fault::{Fault, Tamper};
use lifeboat_model::ids::{Endpoint, NodeId};
use lifeboat_model::profile::Profile;
use lifeboat_model::scenario::{
    Action, ClusterSpec, NetworkSpec, ProfileOverrides, Scenario, Step, Verdict,
};
use lifeboat_model::time::Millis;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// When faults may start: after the cluster formed, before the liveness phase.
pub const FAULT_START: Millis = Millis(30_000);
/// The safety phase's end; faults start before it.
pub const FAULT_PHASE: Millis = Millis(480_000);
/// Total simulated length of a case (about ten minutes).
pub const CASE_LENGTH: Millis = Millis(600_000);
/// The longest any one fault lasts.
pub const MAX_FAULT: Millis = Millis(60_000);

/// One fault of a plan: when, what, for how long.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedFault {
    /// Start, from the beginning of the case.
    pub at: Millis,
    /// The fault.
    pub fault: Fault,
    /// How long before it is healed.
    pub duration: Millis,
}

/// A fault schedule.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultPlan {
    /// The faults, in order of start.
    pub faults: Vec<PlannedFault>,
}

const NODES: [NodeId; 3] = [NodeId(0), NodeId(1), NodeId(2)];

/// Every fault kind the fuzzer draws, by index (so proptest can shrink toward simple
/// kinds).
pub const FAULT_KINDS: usize = 19;

/// Builds fault kind `kind` (mod [`FAULT_KINDS`]) from raw random numbers, inside the
/// fault model `profile` declares.
pub fn make_fault(kind: usize, n: u64, m: u64, profile: &Profile) -> Fault {
    let node = NODES[(n % 3) as usize];
    let other = NODES[((n + 1 + m % 2) % 3) as usize];
    let endpoints = [
        Endpoint::Node(other),
        Endpoint::LeaseStore,
        Endpoint::Telegram,
        Endpoint::SnapshotStore,
    ];
    let peer = endpoints[(m % 4) as usize];
    let (max_latency, max_ppm) = match profile {
        Profile::Fenced(p) => (
            p.max_latency.saturating_sub(Millis(40)),
            p.drift_ppt as i64 * 1000 * 8 / 10,
        ),
        Profile::OpentridentV1(_) => (Millis(2000), 100_000),
    };
    let signed = |v: u64, max: i64| (v % (2 * max as u64 + 1)) as i64 - max;
    match kind % FAULT_KINDS {
        0 => Fault::Kill { node },
        1 => Fault::Crash { node },
        2 => Fault::Stop { node },
        3 => Fault::Pause { node },
        4 => Fault::Partition {
            a: Endpoint::Node(node),
            b: peer,
        },
        5 => Fault::PartitionOneway {
            from: Endpoint::Node(node),
            to: peer,
        },
        6 => Fault::PartitionOneway {
            from: peer,
            to: Endpoint::Node(node),
        },
        7 => Fault::Isolate { node },
        8 => Fault::ClockOffset {
            node,
            ms: signed(m, 300_000),
        },
        9 => Fault::ClockStep {
            node,
            ms: signed(m, 600_000),
        },
        10 => Fault::ClockRate {
            node,
            ppm: signed(m, max_ppm),
        },
        11 => Fault::Latency {
            extra: Millis(m % (max_latency.0 + 1)),
        },
        12 => Fault::Loss {
            percent: (m % 31) as u8,
        },
        13 => Fault::StoreDown,
        // One in four is slow enough (10-30 s) that a publish sent before a leader change
        // lands after it: the store's fencing-token check has something to refuse.
        14 => Fault::StoreSlow {
            extra: Millis(if m.is_multiple_of(4) {
                10_000 + m / 4 % 20_000
            } else {
                m % 5000
            }),
        },
        15 => Fault::StoreTamper {
            tamper: Tamper::ALL[(m % Tamper::ALL.len() as u64) as usize],
        },
        16 => Fault::TelegramErrors {
            code: [500, 502, 429][(m % 3) as usize],
        },
        17 => Fault::ForeignPoller,
        _ => {
            if m.is_multiple_of(2) {
                Fault::LockFileCorrupt {
                    host: node.to_string(),
                }
            } else {
                Fault::DiskSlow {
                    host: node.to_string(),
                    extra: Millis(m % 2000),
                }
            }
        }
    }
}

/// The interval between the operator's chats in a case: polls and replies are in flight
/// just after each one.
pub const CHAT_EVERY: Millis = Millis(20_000);

/// Draws a plan of up to `max_faults` faults from `seed`.
///
/// Swarm testing (as TigerBeetle's VOPR does): each case enables a random subset of the
/// fault kinds and a random intensity (how long its faults last), so that a case is not
/// always the same average mix in which the rarer interactions drown; across many cases
/// every kind still appears, alone and in company. Start times are biased toward the
/// moments where the protocol decides something ([`biased_start`]). Half the cases with
/// room for two faults carry a handover under a latency drop ([`handover_motif`]); half
/// of the others with room for three, a leader lost on a slow, lossy network
/// ([`lossy_takeover_motif`]).
pub fn random_plan(seed: u64, profile: &Profile, max_faults: usize) -> FaultPlan {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed_f00d);
    let mut kinds: Vec<usize> = (0..FAULT_KINDS).filter(|_| rng.random_bool(0.5)).collect();
    if kinds.is_empty() {
        kinds.push(rng.random_range(0..FAULT_KINDS));
    }
    // Intensity: short faults exercise quick flaps around renewals, long ones outlast the
    // lease and force takeovers.
    let longest = [2_000, 12_000, MAX_FAULT.0][rng.random_range(0..3usize)];
    let count = rng.random_range(0..=max_faults);
    let mut faults: Vec<PlannedFault> = Vec::with_capacity(count);
    if count >= 2 && rng.random_bool(0.5) {
        faults.extend(handover_motif(&mut rng, profile));
    } else if count >= 3 && rng.random_bool(0.5) {
        faults.extend(lossy_takeover_motif(&mut rng, profile));
    }
    while faults.len() < count {
        let kind = kinds[rng.random_range(0..kinds.len())];
        let at = biased_start(&mut rng, profile, faults.last());
        faults.push(PlannedFault {
            at,
            fault: make_fault(kind, rng.random(), rng.random(), profile),
            duration: Millis(rng.random_range(500..=longest)),
        });
    }
    faults.sort_by_key(|f| f.at);
    FaultPlan { faults }
}

/// A fault's start, biased toward the moments that matter: just after a chat (a reply and
/// the next poll in flight), when the previous fault heals (a second change landing on a
/// recovering cluster), while it is in place, or about when a leader it cut off would step
/// down (a safe lease later). Half the starts stay uniform over the safety phase.
fn biased_start(rng: &mut ChaCha8Rng, profile: &Profile, prev: Option<&PlannedFault>) -> Millis {
    let uniform = |rng: &mut ChaCha8Rng| Millis(rng.random_range(FAULT_START.0..FAULT_PHASE.0));
    let at = match (rng.random_range(0..8u32), prev) {
        (0..=3, _) | (6.., None) => uniform(rng),
        (4 | 5, _) => {
            let chats = FAULT_PHASE.0 / CHAT_EVERY.0;
            let chat = rng.random_range(2..chats) * CHAT_EVERY.0;
            Millis(chat + rng.random_range(0..3_000))
        }
        (6, Some(p)) => {
            let heal = p.at + p.duration;
            Millis((heal.0 + rng.random_range(0..400)).saturating_sub(200))
        }
        (_, Some(p)) => {
            let step_down = match profile {
                Profile::Fenced(f) => f.safe_lease(),
                Profile::OpentridentV1(_) => Millis::secs(10),
            };
            if rng.random_bool(0.5) {
                p.at + Millis(rng.random_range(0..3_000))
            } else {
                Millis((p.at + step_down).0 + rng.random_range(0..2_000))
                    .saturating_sub(Millis(1_000))
            }
        }
    };
    at.max(FAULT_START).min(FAULT_PHASE - Millis(1))
}

/// A graceful stop of (most likely) the leader just as a latency fault heals, timed to a
/// poll in flight: a chat at `C` reaches the leader's open poll, its answer, the reply and
/// the reply's answer take three one-way latencies `L`, so the next poll leaves at about
/// `C + 3L` and lands at `C + 4L`. The latency heals and the stop comes in between, so
/// the takeover the stop starts runs at normal speed while that poll is still on its way:
/// a handover that does not wait for it lets it land after the next leader's poll and end
/// it with 409.
fn handover_motif(rng: &mut ChaCha8Rng, profile: &Profile) -> [PlannedFault; 2] {
    let max_latency = match profile {
        Profile::Fenced(p) => p.max_latency.saturating_sub(Millis(40)),
        Profile::OpentridentV1(_) => Millis(2000),
    };
    let extra = rng.random_range(max_latency.0 / 2..=max_latency.0.max(1));
    let chats = FAULT_PHASE.0 / CHAT_EVERY.0;
    let chat = rng.random_range(2..chats - 1) * CHAT_EVERY.0;
    let stop = Millis(chat + 3 * extra + rng.random_range(60..=60 + extra / 3));
    let at = Millis(chat - rng.random_range(1_000..10_000));
    let node = if rng.random_bool(0.75) {
        NODES[0]
    } else {
        NODES[rng.random_range(0..3usize)]
    };
    [
        PlannedFault {
            at,
            fault: Fault::Latency {
                extra: Millis(extra),
            },
            duration: stop - at,
        },
        PlannedFault {
            at: stop,
            fault: Fault::Stop { node },
            duration: Millis(rng.random_range(500..=MAX_FAULT.0)),
        },
    ]
}

/// The leader lost while the lease store is slow and lossy: followers' reads fail and
/// arm retries, answers take long, so a candidacy overlaps reads and retries armed before
/// it began; whatever answers an earlier candidacy left behind arrive during a later one.
fn lossy_takeover_motif(rng: &mut ChaCha8Rng, profile: &Profile) -> [PlannedFault; 3] {
    let max_latency = match profile {
        Profile::Fenced(p) => p.max_latency.saturating_sub(Millis(40)),
        Profile::OpentridentV1(_) => Millis(2000),
    };
    let at = Millis(rng.random_range(FAULT_START.0..FAULT_PHASE.0 - 30_000));
    let duration = Millis(rng.random_range(10_000..30_000));
    let node = if rng.random_bool(0.75) {
        NODES[0]
    } else {
        NODES[rng.random_range(0..3usize)]
    };
    let lose = [
        Fault::Kill { node },
        Fault::Crash { node },
        Fault::Stop { node },
        Fault::Pause { node },
    ][rng.random_range(0..4usize)]
    .clone();
    [
        PlannedFault {
            at,
            fault: Fault::Latency {
                extra: Millis(rng.random_range(max_latency.0 / 4..=max_latency.0.max(1))),
            },
            duration,
        },
        PlannedFault {
            at,
            fault: Fault::Loss {
                percent: rng.random_range(10..=30),
            },
            duration,
        },
        PlannedFault {
            at: at + Millis(rng.random_range(0..duration.0 / 2)),
            fault: lose,
            duration: Millis(rng.random_range(500..=MAX_FAULT.0)),
        },
    ]
}

fn step(action: Action) -> Step {
    Step {
        phase: None,
        criterion: None,
        action,
    }
}

/// The scenario for a case: `seed`, `profile`, `plan`. Its own seed drives the world.
pub fn case_scenario(seed: u64, profile: &Profile, plan: &FaultPlan) -> Scenario {
    let mut steps = vec![
        step(Action::Start { node: NODES[0] }),
        step(Action::Wait {
            duration: Millis::secs(5),
        }),
        step(Action::RegenerateManifest),
        step(Action::Bootstrap { node: NODES[1] }),
    ];
    let mut now = Millis::secs(5);
    let mut faults = plan.faults.clone();
    faults.sort_by_key(|f| f.at);
    // A plan that tampers with the store has the third node join while the first tamper
    // is in place, from a manifest regenerated then: a blank node's restore, checked
    // against the head its manifest names, meets the tamper. Otherwise it joins at once.
    let mut late_join = faults
        .iter()
        .find(|f| matches!(f.fault, Fault::StoreTamper { .. }))
        .map(|f| f.at.max(now) + Millis::secs(1));
    if late_join.is_none() {
        steps.push(step(Action::Bootstrap { node: NODES[2] }));
    }
    // Chats every 20 s through the safety phase, interleaved with the faults.
    let mut chats: Vec<Millis> = (1..(FAULT_PHASE.0 / 20_000))
        .map(|i| Millis(i * 20_000))
        .collect();
    chats.retain(|t| *t > now);
    let mut fi = 0;
    let mut ci = 0;
    let mut chat_no = 0;
    while fi < faults.len() || ci < chats.len() || late_join.is_some() {
        if let Some(join) = late_join {
            let before_fault = faults.get(fi).is_none_or(|f| join < f.at.max(now));
            let before_chat = chats.get(ci).is_none_or(|c| join < *c);
            if before_fault && before_chat {
                if join > now {
                    steps.push(step(Action::Wait {
                        duration: join - now,
                    }));
                    now = join;
                }
                steps.push(step(Action::RegenerateManifest));
                steps.push(step(Action::Bootstrap { node: NODES[2] }));
                late_join = None;
                continue;
            }
        }
        let next_fault = faults.get(fi).map(|f| f.at.max(now));
        let next_chat = chats.get(ci).copied();
        let (t, is_fault) = match (next_fault, next_chat) {
            (Some(f), Some(c)) if f <= c => (f, true),
            (Some(f), None) => (f, true),
            (_, Some(c)) => (c, false),
            (None, None) => break,
        };
        if t > now {
            steps.push(step(Action::Wait { duration: t - now }));
            now = t;
        }
        if is_fault {
            let f = &faults[fi];
            steps.push(step(Action::Fault {
                fault: f.fault.clone(),
                duration: Some(f.duration),
            }));
            fi += 1;
        } else {
            chat_no += 1;
            // Sent without a bound of its own: invariant 3 judges every message at the end.
            steps.push(step(Action::Chat {
                text: format!("fuzz message {chat_no}"),
                within: Millis::ZERO,
                from: None,
            }));
            ci += 1;
        }
    }
    let heal_at = FAULT_PHASE + MAX_FAULT;
    if heal_at > now {
        steps.push(step(Action::Wait {
            duration: heal_at - now,
        }));
    }
    steps.push(step(Action::HealAll));
    // Liveness: a node whose fault was a kill or stop is back now; a leader must answer.
    steps.push(step(Action::Chat {
        text: "after the storm".into(),
        within: profile.takeover_bound() + Millis::secs(30),
        from: None,
    }));
    let used = heal_at + profile.takeover_bound() + Millis::secs(30);
    let settle = CASE_LENGTH.saturating_sub(used).max(Millis::secs(20));
    let mut profiles = ProfileOverrides::default();
    match profile {
        Profile::Fenced(p) => profiles.fenced = Some(p.clone()),
        Profile::OpentridentV1(p) => profiles.opentrident_v1 = Some(p.clone()),
    }
    Scenario {
        name: format!("fuzz-{}-{seed}", profile.name()),
        description: format!(
            "A fuzzed ten-minute drill: {} fault(s), then heal and require a reply. Replay with `lifeboat replay FILE`.",
            plan.faults.len()
        ),
        failure_mode: None,
        seed,
        profile: Some(profile.name()),
        cluster: ClusterSpec {
            nodes: NODES.to_vec(),
            primary: vec![NODES[0]],
            hosts: BTreeMap::new(),
            hostnames: BTreeMap::new(),
        },
        network: NetworkSpec::default(),
        profiles,
        expect: BTreeMap::new(),
        invariants: Vec::new(),
        settle,
        criteria: Vec::new(),
        steps,
    }
}

/// What one case found.
#[derive(Clone, Debug)]
pub struct CaseOutcome {
    /// The scenario run.
    pub scenario: Scenario,
    /// The drill's report.
    pub report: DrillReport,
}

impl CaseOutcome {
    /// The invariants violated.
    pub fn violated(&self) -> Vec<Invariant> {
        self.report
            .invariants
            .iter()
            .filter(|r| !r.ok())
            .map(|r| r.invariant)
            .collect()
    }

    /// True when the case passed.
    pub fn passed(&self) -> bool {
        self.report.verdict == Verdict::Pass
    }

    /// What the checkers judged in this case, by kind: the denominators of a fuzz run. A
    /// kind two checkers count (restores) is taken once, at its larger count.
    pub fn judged(&self) -> BTreeMap<Count, u64> {
        let mut out: BTreeMap<Count, u64> = BTreeMap::new();
        for r in &self.report.invariants {
            for (kind, n) in &r.counts {
                let slot = out.entry(*kind).or_default();
                *slot = (*slot).max(*n);
            }
        }
        out
    }
}

/// Runs one case on `engine`.
pub fn run_case(seed: u64, profile: &Profile, plan: &FaultPlan, engine: Engine) -> CaseOutcome {
    let scenario = case_scenario(seed, profile, plan);
    // Its chats carry a zero bound (invariant 3 judges them), so the only step that can
    // fail is the closing liveness chat: the runner's verdict is the case's verdict.
    let report = run_scenario(&scenario, engine, None, None, &mut |_| {});
    CaseOutcome { scenario, report }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lifeboat_model::profile::ProfileName;

    /// Swarm testing must not starve any kind: over 2,000 drawn plans every fault kind
    /// appears (counted by `make_fault`'s index, recovered from the fault's own kind).
    #[test]
    fn every_fault_kind_appears_across_drawn_plans() {
        for name in [ProfileName::Fenced, ProfileName::OpentridentV1] {
            let profile = Profile::default_for(name);
            let mut seen: BTreeMap<String, u64> = BTreeMap::new();
            for seed in 0..2_000 {
                for f in random_plan(seed, &profile, 8).faults {
                    *seen.entry(kind_name(&f.fault)).or_default() += 1;
                    assert!(f.at >= FAULT_START && f.at < FAULT_PHASE, "{f:?}");
                }
            }
            let mut all: BTreeMap<String, u64> = BTreeMap::new();
            for kind in 0..FAULT_KINDS {
                for m in 0..8 {
                    all.insert(kind_name(&make_fault(kind, m, m, &profile)), 0);
                }
            }
            for kind in all.keys() {
                assert!(
                    seen.get(kind).copied().unwrap_or(0) >= 20,
                    "{kind} drawn {:?} times in 2,000 plans: {seen:?}",
                    seen.get(kind)
                );
            }
        }
    }

    /// The fault's kind as written in scenario files (`kind = "…"`), one-way partitions
    /// told apart by direction so both of `make_fault`'s shapes are counted.
    fn kind_name(f: &Fault) -> String {
        let value = serde_json::to_value(f).unwrap_or_default();
        let kind = value["kind"].as_str().unwrap_or("?").to_string();
        match f {
            Fault::PartitionOneway {
                from: Endpoint::Node(_),
                ..
            } => format!("{kind} from a node"),
            Fault::PartitionOneway { .. } => format!("{kind} to a node"),
            _ => kind,
        }
    }

    /// Same seed, same plan: a fuzz run replays case by case from its seed.
    #[test]
    fn same_seed_same_plan() {
        let profile = Profile::default_for(ProfileName::Fenced);
        for seed in [0, 7, 11_041_493] {
            assert_eq!(
                random_plan(seed, &profile, 8),
                random_plan(seed, &profile, 8)
            );
        }
    }
}
