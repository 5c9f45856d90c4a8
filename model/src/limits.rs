//! The bounds of every duration, count and rate the input formats accept, in one place.
//!
//! Scenario files, profile overrides and fuzz plans are written by people and programs we
//! do not control. Each value that reaches the clocks, timers and queues of a world is
//! checked here first, so that a typo or a mutated file gets an error naming the key, the
//! value and the bound instead of a wrapped clock, a timer storm or a panic. Values that
//! are well-formed but lie outside what a profile's model assumes (a clock drifting faster
//! than `drift_ppt`, latencies beyond `max_latency`) are allowed: [`model_warnings`] says
//! that violations are then expected.

use crate::fault::Fault;
use crate::profile::{FencedParams, Profile, V1Params};
use crate::scenario::{Action, Scenario};
use crate::time::Millis;
use std::collections::BTreeSet;

/// The longest duration any format accepts: 30 days. Long enough for any drill or TTL a
/// scenario means, short enough that sums of a few thousand never overflow a `u64`.
pub const MAX_DURATION: Millis = Millis(30 * 24 * 3_600_000);

/// The most simulated time one scenario may ask for: the sum of its waits, `wait_for`
/// bounds, holds, chat bounds and `settle`. A run costs time linear in this.
pub const MAX_SCENARIO_TIME: Millis = MAX_DURATION;

/// The longest one-way latency or extra delay (network, store, disk): one hour.
pub const MAX_LATENCY: Millis = Millis(3_600_000);

/// The largest clock rate error, in parts per million either way: a clock running at
/// half or one and a half times true speed. At -1,000,000 a clock stops and timers never
/// fire; beyond it time runs backwards.
pub const MAX_CLOCK_PPM: i64 = 500_000;

/// The largest wall-clock offset or step, in ms either way (30 days).
pub const MAX_CLOCK_OFFSET_MS: i64 = MAX_DURATION.0 as i64;

/// The most steps one scenario may hold.
pub const MAX_STEPS: usize = 10_000;

/// The most criteria one scenario may declare.
pub const MAX_CRITERIA: usize = 100;

/// The longest chat message, in bytes (Telegram's own limit is 4,096 characters).
pub const MAX_CHAT_BYTES: usize = 4096;

/// The longest host name or other free-text identifier, in bytes.
pub const MAX_NAME_BYTES: usize = 253;

/// The most consecutive polls or errors a count parameter may ask for.
pub const MAX_COUNT: u32 = 1_000_000;

/// The most faults one fuzz plan may draw (`lifeboat fuzz --max-faults`).
pub const MAX_FAULTS_PER_PLAN: usize = 64;

/// The largest scenario, target or manifest file read, in bytes.
pub const MAX_INPUT_BYTES: u64 = 4 * 1024 * 1024;

/// Where in a scenario file a refused value is: keys and array indices from the root,
/// so the parser can point at the value's span.
pub type KeyPath = Vec<PathPart>;

/// One part of a [`KeyPath`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PathPart {
    /// A table key.
    Key(&'static str),
    /// An array element (0-based).
    Index(usize),
}

/// A value outside its bound: where it is and what was expected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LimitError {
    /// The key path of the value at fault.
    pub path: KeyPath,
    /// Key, value and bound, in words.
    pub message: String,
}

fn refuse(path: KeyPath, message: String) -> LimitError {
    LimitError { path, message }
}

use PathPart::{Index, Key};

/// Refuses a duration above [`MAX_DURATION`]; `parse_duration` calls this for every
/// duration any format writes.
pub fn check_duration(text: &str, value: u128) -> Result<Millis, String> {
    if value > MAX_DURATION.0 as u128 {
        return Err(format!(
            "duration `{}` is too large: the limit is 30 days ({}ms)",
            text.trim(),
            MAX_DURATION.0
        ));
    }
    Ok(Millis(value as u64))
}

/// A period that must be positive (a zero period fires its timer forever at one
/// instant).
fn positive(section: &str, key: &str, value: Millis) -> Result<(), String> {
    if value == Millis::ZERO {
        return Err(format!(
            "{section}.{key} = \"0ms\": expected a period of at least 1ms (a zero period fires forever at one instant)"
        ));
    }
    Ok(())
}

fn count(section: &str, key: &str, value: u32, min: u32) -> Result<(), String> {
    if value < min || value > MAX_COUNT {
        return Err(format!(
            "{section}.{key} = {value}: expected {min} to {MAX_COUNT}"
        ));
    }
    Ok(())
}

/// Refuses `fenced` timings that would stall or flood a world: zero periods and counts
/// out of range. (Longer-than-[`MAX_DURATION`] values cannot be written at all.)
pub fn check_fenced(p: &FencedParams) -> Result<(), String> {
    let s = "fenced";
    for (key, value) in [
        ("lease_ttl", p.lease_ttl),
        ("renew_every", p.renew_every),
        ("watch_timeout", p.watch_timeout),
        ("request_timeout", p.request_timeout),
        ("poll_timeout", p.poll_timeout),
        ("min_poll", p.min_poll),
        ("snapshot_every", p.snapshot_every),
        ("follower_sync_every", p.follower_sync_every),
        ("snapshot_ttl", p.snapshot_ttl),
        ("retry_after", p.retry_after),
    ] {
        positive(s, key, value)?;
    }
    for (key, value) in [
        ("lease_ttl", p.lease_ttl),
        ("renew_every", p.renew_every),
        ("step_down_margin", p.step_down_margin),
        ("max_latency", p.max_latency),
        ("watch_timeout", p.watch_timeout),
        ("request_timeout", p.request_timeout),
        ("poll_timeout", p.poll_timeout),
        ("min_poll", p.min_poll),
        ("snapshot_every", p.snapshot_every),
        ("follower_sync_every", p.follower_sync_every),
        ("snapshot_ttl", p.snapshot_ttl),
        ("retry_after", p.retry_after),
    ] {
        at_most(s, key, value, MAX_DURATION)?;
    }
    at_most(s, "max_latency", p.max_latency, MAX_LATENCY)
}

/// Refuses `opentrident-v1` timings that would stall or flood a world.
pub fn check_v1(p: &V1Params) -> Result<(), String> {
    let s = "opentrident-v1";
    for (key, value) in [
        ("stale_after", p.stale_after),
        ("follower_poll", p.follower_poll),
        ("restart_backoff_first", p.restart_backoff_first),
        ("restart_backoff_max", p.restart_backoff_max),
        ("poll_timeout", p.poll_timeout),
        ("snapshot_every", p.snapshot_every),
        ("retry_after", p.retry_after),
        ("request_timeout", p.request_timeout),
    ] {
        positive(s, key, value)?;
        at_most(s, key, value, MAX_DURATION)?;
    }
    at_most(s, "boot_time", p.boot_time, MAX_DURATION)?;
    // `0s` is OpenTrident's runner with no heartbeat enabled (no timer is armed, the lock
    // is never refreshed), a configuration the code allows; it arms nothing, so it cannot
    // spin.
    at_most(s, "heartbeat_every", p.heartbeat_every, MAX_DURATION)?;
    if p.restart_backoff_first > p.restart_backoff_max {
        return Err(format!(
            "{s}.restart_backoff_first ({}) must not exceed restart_backoff_max ({})",
            p.restart_backoff_first, p.restart_backoff_max
        ));
    }
    count(s, "stale_polls", p.stale_polls, 1)?;
    if let Some(n) = p.docs_claim_conflict_exit_after {
        count(s, "docs_claim_conflict_exit_after", n, 1)?;
    }
    Ok(())
}

fn at_most(section: &str, key: &str, value: Millis, max: Millis) -> Result<(), String> {
    if value > max {
        return Err(format!("{section}.{key} = \"{value}\": the limit is {max}"));
    }
    Ok(())
}

/// Checks every bound of a parsed scenario that the TOML types alone cannot: counts,
/// rates, latencies, the total simulated time, duplicate criterion ids, and both
/// profiles' overrides. The error's path points at the value at fault.
pub fn check_scenario(s: &Scenario) -> Result<(), LimitError> {
    check_counts(s)?;
    check_network(s)?;
    if let Some(p) = &s.profiles.fenced {
        check_fenced(p).map_err(|m| refuse(vec![Key("profiles"), Key("fenced")], m))?;
    }
    if let Some(p) = &s.profiles.opentrident_v1 {
        check_v1(p).map_err(|m| refuse(vec![Key("profiles"), Key("opentrident-v1")], m))?;
    }
    for (i, step) in s.steps.iter().enumerate() {
        if let Action::Fault { fault, .. } | Action::Heal { fault } = &step.action {
            check_fault(fault).map_err(|(key, m)| {
                refuse(
                    vec![Key("step"), Index(i), Key("fault"), Key(key)],
                    format!("step {} ({}): {m}", i + 1, step.action.name()),
                )
            })?;
        }
        if let Action::Chat { text, .. } = &step.action {
            if text.len() > MAX_CHAT_BYTES {
                return Err(refuse(
                    vec![Key("step"), Index(i), Key("text")],
                    format!(
                        "step {} (chat): text is {} bytes: the limit is {MAX_CHAT_BYTES}",
                        i + 1,
                        text.len()
                    ),
                ));
            }
        }
    }
    check_total_time(s)
}

fn check_counts(s: &Scenario) -> Result<(), LimitError> {
    if s.steps.len() > MAX_STEPS {
        return Err(refuse(
            vec![Key("step"), Index(MAX_STEPS)],
            format!(
                "the scenario has {} steps: the limit is {MAX_STEPS}",
                s.steps.len()
            ),
        ));
    }
    if s.criteria.len() > MAX_CRITERIA {
        return Err(refuse(
            vec![Key("criterion"), Index(MAX_CRITERIA)],
            format!(
                "the scenario declares {} criteria: the limit is {MAX_CRITERIA}",
                s.criteria.len()
            ),
        ));
    }
    let mut seen = BTreeSet::new();
    for (i, c) in s.criteria.iter().enumerate() {
        if !seen.insert(c.id) {
            return Err(refuse(
                vec![Key("criterion"), Index(i), Key("id")],
                format!(
                    "criterion id {} is declared twice: ids must be unique",
                    c.id
                ),
            ));
        }
    }
    for (node, host) in &s.cluster.hosts {
        if host.is_empty() || host.len() > MAX_NAME_BYTES || host.chars().any(char::is_control) {
            return Err(refuse(
                vec![Key("cluster"), Key("hosts")],
                format!(
                    "cluster.hosts.{node} = {host:?}: expected 1 to {MAX_NAME_BYTES} bytes without control characters"
                ),
            ));
        }
    }
    Ok(())
}

fn check_network(s: &Scenario) -> Result<(), LimitError> {
    let n = &s.network;
    if n.latency_max > MAX_LATENCY {
        return Err(refuse(
            vec![Key("network"), Key("latency_max")],
            format!(
                "network.latency_max = \"{}\": the limit is {MAX_LATENCY}",
                n.latency_max
            ),
        ));
    }
    if n.latency_min > n.latency_max {
        return Err(refuse(
            vec![Key("network"), Key("latency_min")],
            format!(
                "network.latency_min (\"{}\") exceeds network.latency_max (\"{}\"): expected latency_min <= latency_max",
                n.latency_min, n.latency_max
            ),
        ));
    }
    Ok(())
}

/// Checks one fault's values; the error names the fault's key at fault.
pub fn check_fault(fault: &Fault) -> Result<(), (&'static str, String)> {
    match fault {
        Fault::ClockRate { ppm, .. } if ppm.unsigned_abs() > MAX_CLOCK_PPM as u64 => Err((
            "ppm",
            format!(
                "clock-rate ppm = {ppm}: expected -{MAX_CLOCK_PPM} to {MAX_CLOCK_PPM} (at -1000000 a clock stops)"
            ),
        )),
        Fault::ClockOffset { ms, .. } | Fault::ClockStep { ms, .. }
            if ms.unsigned_abs() > MAX_CLOCK_OFFSET_MS as u64 =>
        {
            Err((
                "ms",
                format!(
                    "{} ms = {ms}: expected -{MAX_CLOCK_OFFSET_MS} to {MAX_CLOCK_OFFSET_MS} (30 days)",
                    fault.kind()
                ),
            ))
        }
        Fault::Latency { extra } | Fault::StoreSlow { extra } | Fault::DiskSlow { extra, .. }
            if *extra > MAX_LATENCY =>
        {
            Err((
                "extra",
                format!(
                    "{} extra = \"{extra}\": the limit is {MAX_LATENCY}",
                    fault.kind()
                ),
            ))
        }
        Fault::Loss { percent } if *percent > 100 => Err((
            "percent",
            format!("loss percent = {percent}: expected 0 to 100"),
        )),
        Fault::TelegramErrors { code } if !(400..=599).contains(code) => Err((
            "code",
            format!(
                "telegram-errors code = {code}: expected an HTTP error code from 400 to 599 (such as 429, 500, 502)"
            ),
        )),
        Fault::LockFileCorrupt { host } | Fault::DiskSlow { host, .. }
            if host.is_empty()
                || host.len() > MAX_NAME_BYTES
                || host.chars().any(char::is_control) =>
        {
            Err((
                "host",
                format!(
                    "{} host = {host:?}: expected 1 to {MAX_NAME_BYTES} bytes without control characters",
                    fault.kind()
                ),
            ))
        }
        _ => Ok(()),
    }
}

/// The simulated time a scenario asks for at most: what its steps can wait, plus
/// `settle`.
pub fn scenario_time(s: &Scenario) -> u128 {
    let steps: u128 = s
        .steps
        .iter()
        .map(|step| match &step.action {
            Action::Wait { duration } | Action::Hold { duration, .. } => duration.0 as u128,
            Action::WaitFor { within, .. } | Action::Chat { within, .. } => within.0 as u128,
            _ => 0,
        })
        .sum();
    steps + s.settle.0 as u128
}

fn check_total_time(s: &Scenario) -> Result<(), LimitError> {
    let total = scenario_time(s);
    if total > MAX_SCENARIO_TIME.0 as u128 {
        return Err(refuse(
            vec![Key("settle")],
            format!(
                "the steps and settle add up to {total} ms of simulated time: the limit is {MAX_SCENARIO_TIME} ({} ms)",
                MAX_SCENARIO_TIME.0
            ),
        ));
    }
    Ok(())
}

/// Values inside the hard bounds but outside what `profile`'s model assumes: the run is
/// allowed, and these say which violations are then expected and why.
pub fn model_warnings(s: &Scenario, profile: &Profile) -> Vec<String> {
    let Profile::Fenced(p) = profile else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let drift_ppm = p.drift_ppt as i64 * 1000;
    let mut latency_extra = Millis::ZERO;
    for (i, step) in s.steps.iter().enumerate() {
        let Action::Fault { fault, .. } = &step.action else {
            continue;
        };
        match fault {
            Fault::ClockRate { node, ppm } if ppm.abs() > drift_ppm => out.push(format!(
                "step {}: clock-rate ppm = {ppm} on {node} is beyond fenced.drift_ppt ({} ppt = {drift_ppm} ppm): the lease arithmetic no longer holds, violations are expected",
                i + 1,
                p.drift_ppt
            )),
            Fault::Latency { extra } => latency_extra = latency_extra.max(*extra),
            _ => {}
        }
    }
    let worst = s.network.latency_max + latency_extra;
    if worst > p.max_latency {
        out.push(format!(
            "one-way latency can reach {worst} (network.latency_max {} plus latency faults {latency_extra}), beyond fenced.max_latency ({}): a message may land after the lease it was sent under, violations are expected",
            s.network.latency_max, p.max_latency
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_and_huge_periods_are_refused_with_key_and_bound() {
        let p = FencedParams {
            renew_every: Millis::ZERO,
            ..FencedParams::default()
        };
        let e = check_fenced(&p).unwrap_err();
        assert!(
            e.contains("fenced.renew_every") && e.contains("at least 1ms"),
            "{e}"
        );
        let v = V1Params {
            follower_poll: Millis::ZERO,
            ..V1Params::default()
        };
        let e = check_v1(&v).unwrap_err();
        assert!(e.contains("opentrident-v1.follower_poll"), "{e}");
        // A disabled heartbeat (OpenTrident's runner with none enabled) arms no timer.
        let off = V1Params {
            heartbeat_every: Millis::ZERO,
            ..V1Params::default()
        };
        assert_eq!(check_v1(&off), Ok(()));
        let e = crate::time::parse_duration("18446744073709551615ms").unwrap_err();
        assert!(
            e.contains("`18446744073709551615ms`")
                && e.contains("the limit is 30 days (2592000000ms)"),
            "{e}"
        );
    }

    #[test]
    fn fault_values_outside_their_bounds_name_the_key() {
        let node = crate::ids::NodeId(0);
        for (fault, key) in [
            (
                Fault::ClockRate {
                    node,
                    ppm: -1_000_000,
                },
                "ppm",
            ),
            (
                Fault::ClockRate {
                    node,
                    ppm: i64::MIN,
                },
                "ppm",
            ),
            (Fault::ClockOffset { node, ms: i64::MAX }, "ms"),
            (Fault::Loss { percent: 101 }, "percent"),
            (Fault::TelegramErrors { code: 0 }, "code"),
            (Fault::TelegramErrors { code: 200 }, "code"),
            (
                Fault::Latency {
                    extra: Millis(MAX_LATENCY.0 + 1),
                },
                "extra",
            ),
        ] {
            let (k, m) = check_fault(&fault).unwrap_err();
            assert_eq!(k, key, "{m}");
        }
        assert!(check_fault(&Fault::ClockRate { node, ppm: 40_000 }).is_ok());
        assert!(check_fault(&Fault::TelegramErrors { code: 429 }).is_ok());
    }
}
