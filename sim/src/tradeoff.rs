//! The lease-TTL trade-off (issue 18): what a shorter `fenced` lease buys, a faster
//! takeover after a crash, against what it costs, a healthy leader losing its lease to
//! latency, loss and pauses. An operator picks a TTL from the figure this sweep draws
//! (`cargo run --release --example ttl_sweep`, `docs/performance.md`).
//!
//! Each TTL gets `fenced` with every lease-relative timing scaled in the defaults'
//! proportions ([`scaled`]); the network's bound (`max_latency`) and the drift allowance
//! stay as they are, because they describe the network and the clocks, not the lease. All
//! runs are on the fast engine under one [`Mix`]: a latency range, a loss rate on every
//! message, and (in the healthy runs) seeded pauses of random nodes.
//!
//! - Crash takeover: [`measure::takeover_scenario`]'s drill (the leader crashes at a
//!   seed-drawn moment of its renewal period) with the mix's latency and loss; the sample
//!   is the time from the crash to the new leader's first reply ([`measure::outcome_since`]).
//! - Step-downs: a three-node cluster runs for simulated hours with nothing crashing, only
//!   the mix; every time a node stops leading while its process runs is a step-down.

use crate::backend::{run_scenario, Engine};
use crate::measure::{self, LossKind, Outcome, Samples};
use lifeboat_model::fault::Fault;
use lifeboat_model::history::{Event, History, Role};
use lifeboat_model::ids::NodeId;
use lifeboat_model::profile::{FencedParams, Profile, ProfileName};
use lifeboat_model::scenario::{
    Action, ClusterSpec, Condition, NetworkSpec, ProfileOverrides, Scenario, Step,
};
use lifeboat_model::time::Millis;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use std::ops::Range;

/// The TTLs of the figure, in seconds: from well below the defaults to Patroni's.
pub const TTLS_S: [u64; 8] = [2, 3, 5, 7, 10, 15, 20, 30];

/// Kubernetes client-go leader election's default lease (`docs/prior-art.md`).
pub const KUBERNETES_TTL: Millis = Millis(15_000);
/// Patroni's default `ttl` (`docs/prior-art.md`).
pub const PATRONI_TTL: Millis = Millis(30_000);

/// The conditions every run of the sweep is under.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mix {
    /// Shortest one-way latency.
    pub latency_min: Millis,
    /// Longest one-way latency.
    pub latency_max: Millis,
    /// Percent of all messages lost, for the whole run.
    pub loss_percent: u8,
    /// Mean time between two pauses of the same node (healthy runs only); pauses hit the
    /// three nodes one after another, never two at once.
    pub pause_every: Millis,
    /// Shortest pause.
    pub pause_min: Millis,
    /// Longest pause; durations are log-uniform between the two, so most are short.
    pub pause_max: Millis,
}

impl Default for Mix {
    /// A busy cloud network and a process that stalls now and then: 5–150 ms one way,
    /// 1 % of messages lost, and each node paused (a GC, a VM steal, a swap storm) about
    /// every 10 minutes for 0.1 to 10 s.
    fn default() -> Self {
        Mix {
            latency_min: Millis(5),
            latency_max: Millis(150),
            loss_percent: 1,
            pause_every: Millis::secs(600),
            pause_min: Millis(100),
            pause_max: Millis::secs(10),
        }
    }
}

impl Mix {
    fn network(&self) -> NetworkSpec {
        NetworkSpec {
            latency_min: self.latency_min,
            latency_max: self.latency_max,
        }
    }

    fn loss(&self) -> Step {
        step(Action::Fault {
            fault: Fault::Loss {
                percent: self.loss_percent,
            },
            duration: None,
        })
    }
}

/// `fenced` at lease `ttl`, every lease-relative timing scaled in the defaults'
/// proportions (at 10 s: renew every 2 s, step down 0.5 s early, 2 s request timeout,
/// 5 s watch and long poll, 0.5 s shortest poll and retry). The drift allowance, the
/// network bound and the snapshot cadence do not depend on the lease and stay.
pub fn scaled(ttl: Millis) -> FencedParams {
    let d = FencedParams::default();
    let s = |m: Millis| Millis((m.0 * ttl.0 / d.lease_ttl.0).max(1));
    FencedParams {
        lease_ttl: ttl,
        renew_every: s(d.renew_every),
        step_down_margin: s(d.step_down_margin),
        watch_timeout: s(d.watch_timeout),
        request_timeout: s(d.request_timeout),
        poll_timeout: s(d.poll_timeout),
        min_poll: s(d.min_poll),
        retry_after: s(d.retry_after),
        ..d
    }
}

fn step(action: Action) -> Step {
    Step {
        phase: None,
        criterion: None,
        action,
    }
}

/// The crash-takeover drill for one seed: [`measure::takeover_scenario`] under the mix's
/// latency, with its loss rate from the first step.
pub fn crash_scenario(p: &FencedParams, mix: &Mix, seed: u64) -> Scenario {
    let mut s = measure::takeover_scenario(&Profile::Fenced(p.clone()), LossKind::Crash, seed);
    s.name = format!("ttl-{}-crash-{seed}", p.lease_ttl);
    s.network = mix.network();
    s.steps.insert(0, mix.loss());
    s
}

/// One crash-takeover sample.
pub fn crash_sample(p: &FencedParams, mix: &Mix, seed: u64) -> Outcome {
    let report = run_scenario(
        &crash_scenario(p, mix, seed),
        Engine::Fast,
        None,
        None,
        &mut |_| {},
    );
    let crashed = report
        .history
        .iter()
        .find(|e| matches!(e.event, Event::Fault(Fault::Crash { .. })))
        .map(|e| e.at);
    crashed.map_or(Outcome::NoTakeover, |at| {
        measure::outcome_since(&report.history, at)
    })
}

/// The healthy-leader drill: `a` leads, `b` and `c` bootstrap and follow, then for
/// `duration` nothing crashes while the mix's latency, loss and pauses go on.
pub fn healthy_scenario(p: &FencedParams, mix: &Mix, duration: Millis, seed: u64) -> Scenario {
    let nodes = [NodeId(0), NodeId(1), NodeId(2)];
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5e1f_57a6);
    let mut steps = vec![
        mix.loss(),
        step(Action::Start { node: nodes[0] }),
        step(Action::WaitFor {
            condition: Condition::Leader,
            node: Some(nodes[0]),
            within: Millis::secs(60),
        }),
        step(Action::RegenerateManifest),
        step(Action::Bootstrap { node: nodes[1] }),
        step(Action::Bootstrap { node: nodes[2] }),
    ];
    // Pauses of any node arrive at three times the per-node rate; each starts after the
    // previous one has healed, so no node is ever paused twice over.
    let mean_gap = mix.pause_every.0 as f64 / nodes.len() as f64;
    let (lo, hi) = (
        mix.pause_min.0 as f64,
        mix.pause_max.0.max(mix.pause_min.0) as f64,
    );
    let mut elapsed = 0u64;
    let mut last_pause = 0u64;
    loop {
        let u: f64 = rng.random_range(f64::EPSILON..1.0);
        let gap = ((-u.ln() * mean_gap) as u64).max(last_pause + 1_000);
        if elapsed + gap >= duration.0 {
            break;
        }
        let v: f64 = rng.random_range(0.0..1.0);
        let pause = (lo * (hi / lo).powf(v)) as u64;
        let node = nodes[rng.random_range(0..nodes.len())];
        steps.push(step(Action::Wait {
            duration: Millis(gap),
        }));
        steps.push(step(Action::Fault {
            fault: Fault::Pause { node },
            duration: Some(Millis(pause)),
        }));
        elapsed += gap;
        last_pause = pause;
    }
    steps.push(step(Action::Wait {
        duration: Millis(duration.0 - elapsed),
    }));
    Scenario {
        name: format!("ttl-{}-healthy-{seed}", p.lease_ttl),
        description: "TTL trade-off: a healthy leader under latency, loss and pauses.".into(),
        failure_mode: None,
        seed,
        profile: Some(ProfileName::Fenced),
        cluster: ClusterSpec {
            nodes: nodes.to_vec(),
            primary: vec![nodes[0]],
            hosts: BTreeMap::new(),
            hostnames: BTreeMap::new(),
        },
        network: mix.network(),
        profiles: ProfileOverrides {
            fenced: Some(p.clone()),
            opentrident_v1: None,
        },
        expect: BTreeMap::new(),
        // Shorter leases must not buy speed with safety: the two exclusivity checks run
        // on every healthy run and the sweep reports whether they held.
        invariants: vec!["leader-exclusive".into(), "poll-exclusive".into()],
        settle: Millis::secs(1),
        criteria: Vec::new(),
        steps,
    }
}

/// How often a leader stopped leading while its process ran: a step-down, an expired
/// lease noticed after a pause, a lost campaign. Crashes and stops are not counted.
pub fn step_downs(h: &History) -> usize {
    let mut role: BTreeMap<NodeId, Role> = BTreeMap::new();
    let mut n = 0;
    for e in h.iter() {
        if let Event::RoleChanged { node, role: r, .. } = &e.event {
            let was = role.insert(*node, *r);
            if was == Some(Role::Leader) && !matches!(r, Role::Leader | Role::Stopped) {
                n += 1;
            }
        }
    }
    n
}

/// What the healthy runs of one TTL showed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Healthy {
    /// Simulated hours run with nothing crashing.
    pub hours: f64,
    /// Step-downs over those hours.
    pub step_downs: usize,
    /// Pauses injected over those hours (all nodes).
    pub pauses: usize,
    /// Runs in which leader-exclusive or poll-exclusive was violated.
    pub unsafe_runs: usize,
}

impl Healthy {
    /// Step-downs per simulated hour.
    pub fn per_hour(&self) -> f64 {
        if self.hours > 0.0 {
            self.step_downs as f64 / self.hours
        } else {
            0.0
        }
    }
}

/// Runs the healthy drill for `duration` once per seed.
pub fn healthy_runs(p: &FencedParams, mix: &Mix, duration: Millis, seeds: Range<u64>) -> Healthy {
    let mut out = Healthy::default();
    for seed in seeds {
        let s = healthy_scenario(p, mix, duration, seed);
        out.pauses += s
            .steps
            .iter()
            .filter(|st| {
                matches!(
                    st.action,
                    Action::Fault {
                        fault: Fault::Pause { .. },
                        ..
                    }
                )
            })
            .count();
        let report = run_scenario(&s, Engine::Fast, None, None, &mut |_| {});
        out.hours += duration.0 as f64 / 3_600_000.0;
        out.step_downs += step_downs(&report.history);
        if report.invariants.iter().any(|r| !r.ok()) {
            out.unsafe_runs += 1;
        }
    }
    out
}

/// One TTL's row of the figure.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    /// The lease TTL.
    pub ttl: Millis,
    /// The scaled renewal period.
    pub renew_every: Millis,
    /// Crash-takeover samples.
    pub crash: Samples,
    /// The healthy runs.
    pub healthy: Healthy,
}

/// How much to run per TTL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Effort {
    /// Seeds of crash-takeover samples.
    pub crash_seeds: Range<u64>,
    /// Seeds of healthy runs.
    pub healthy_seeds: Range<u64>,
    /// Length of each healthy run.
    pub healthy_for: Millis,
}

/// The sweep: one [`Row`] per TTL, in the order given. `progress` hears each TTL as it
/// finishes.
pub fn sweep(
    ttls: &[Millis],
    mix: &Mix,
    effort: &Effort,
    progress: &mut dyn FnMut(&Row),
) -> Vec<Row> {
    ttls.iter()
        .map(|&ttl| {
            let p = scaled(ttl);
            let mut crash = Samples::default();
            for seed in effort.crash_seeds.clone() {
                match crash_sample(&p, mix, seed) {
                    Outcome::Took(t) => crash.latencies.push(t),
                    Outcome::AlreadyLed => crash.already_led += 1,
                    Outcome::NoTakeover => crash.no_takeover += 1,
                }
            }
            crash.latencies.sort_unstable();
            let healthy = healthy_runs(&p, mix, effort.healthy_for, effort.healthy_seeds.clone());
            let row = Row {
                ttl,
                renew_every: p.renew_every,
                crash,
                healthy,
            };
            progress(&row);
            row
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scaled_timings_are_valid_at_every_ttl_and_the_defaults_at_10_s() {
        assert_eq!(scaled(Millis::secs(10)), FencedParams::default());
        for s in TTLS_S {
            let p = scaled(Millis::secs(s));
            p.validate().unwrap_or_else(|e| panic!("ttl {s} s: {e}"));
            assert_eq!(p.renew_every.0 * 5, p.lease_ttl.0);
        }
    }

    #[test]
    fn the_healthy_drill_pauses_nodes_one_at_a_time_and_lasts_its_duration() {
        let mix = Mix::default();
        let s = healthy_scenario(&scaled(Millis::secs(5)), &mix, Millis::secs(3_600), 7);
        let mut waited = 0;
        let mut pauses = 0;
        let mut last_pause = 0;
        for (i, st) in s.steps.iter().enumerate() {
            let pause_next = s.steps.get(i + 1).is_some_and(|n| {
                matches!(
                    n.action,
                    Action::Fault {
                        fault: Fault::Pause { .. },
                        ..
                    }
                )
            });
            match &st.action {
                Action::Wait { duration } => {
                    if pauses > 0 && pause_next {
                        assert!(duration.0 > last_pause, "a pause overlaps the next");
                    }
                    waited += duration.0;
                }
                Action::Fault {
                    fault: Fault::Pause { .. },
                    duration: Some(d),
                } => {
                    assert!((mix.pause_min..=mix.pause_max).contains(d), "{d}");
                    pauses += 1;
                    last_pause = d.0;
                }
                _ => {}
            }
        }
        assert_eq!(waited, 3_600_000);
        // About 18 pauses an hour at one per node every 10 minutes.
        assert!((6..=40).contains(&pauses), "{pauses} pauses in an hour");
    }
}
