//! Mutants the checkers must catch (issue 13, item 6; `docs/mutants.md`).
//!
//! Each mutant removes one mechanism of the `fenced` protocol or its services. For each,
//! a pinned seed shows the fuzzer's case (the same `random_plan` and `run_case` that
//! `lifeboat fuzz` runs, fast engine) violating the invariant that mechanism protects,
//! while the same case without the mutant does not (a mutant with no catching case has
//! `seed: None` and no test claiming one). Two ignored tests measure: `time_to_catch`, per
//! mutant over 20 seed streams, the cases and CPU seconds until the first catch (issue
//! 18's time-to-catch benchmark), and `mutant_table`, from seed 0, the size of the shrunk
//! case; they printed the tables in `docs/mutants.md`:
//!
//! ```text
//! cargo test --release -p lifeboat-sim --features mutants --test mutants -- --ignored --exact time_to_catch --nocapture
//! cargo test --release -p lifeboat-sim --features mutants --test mutants -- --ignored --exact mutant_table --nocapture
//! ```
#![cfg(feature = "mutants")]

use lifeboat_model::check::Invariant;
use lifeboat_model::mutant::Mutant;
use lifeboat_model::profile::{FencedParams, Profile};
use lifeboat_sim::backend::Engine;
use lifeboat_sim::fuzz::{case_scenario, random_plan, run_case, CaseOutcome, FaultPlan};

/// The most faults a case draws: `lifeboat fuzz`'s default.
const MAX_FAULTS: usize = 8;

/// How many cases `mutant_table` runs per mutant before it calls the mutant a survivor.
const BUDGET: u64 = 10_000;

/// A mutant, the invariant its mechanism protects, and a seed whose case catches it
/// (`None`: no case found yet; `docs/mutants.md` lists it as surviving).
struct Pinned {
    mutant: Mutant,
    invariant: Invariant,
    seed: Option<u64>,
}

const PINNED: [Pinned; 12] = [
    Pinned {
        mutant: Mutant::StoreNoTokenCheck,
        invariant: Invariant::LeaderExclusive,
        seed: Some(2015),
    },
    Pinned {
        mutant: Mutant::StoreNoChildCheck,
        invariant: Invariant::ChainIntact,
        seed: Some(187),
    },
    Pinned {
        mutant: Mutant::NoStepDown,
        invariant: Invariant::LeaderExclusive,
        seed: Some(9),
    },
    Pinned {
        mutant: Mutant::WallClockLease,
        invariant: Invariant::LeaderExclusive,
        seed: Some(659),
    },
    Pinned {
        mutant: Mutant::PollWithoutLease,
        invariant: Invariant::PollExclusive,
        seed: Some(9),
    },
    Pinned {
        mutant: Mutant::OffsetBeforeReplies,
        invariant: Invariant::ChatAnswered,
        seed: Some(40),
    },
    Pinned {
        mutant: Mutant::RepliesAfterStepDown,
        invariant: Invariant::ChatAnswered,
        seed: Some(40),
    },
    Pinned {
        mutant: Mutant::NoSignatureCheck,
        invariant: Invariant::TamperRefused,
        seed: Some(100),
    },
    Pinned {
        mutant: Mutant::NoVersionFloor,
        invariant: Invariant::TamperRefused,
        seed: Some(45),
    },
    Pinned {
        mutant: Mutant::NoManifestHeadCheck,
        invariant: Invariant::TamperRefused,
        seed: Some(38),
    },
    Pinned {
        mutant: Mutant::LeaseBackBeforeLastPoll,
        invariant: Invariant::PollExclusive,
        seed: Some(8),
    },
    Pinned {
        mutant: Mutant::StaleCandidacyAnswers,
        invariant: Invariant::LeaderExclusive,
        seed: None,
    },
];

fn pinned(mutant: Mutant) -> &'static Pinned {
    PINNED
        .iter()
        .find(|p| p.mutant == mutant)
        .expect("every mutant is pinned")
}

/// The fenced profile with `mutant` (or none).
fn profile(mutant: Option<Mutant>) -> Profile {
    Profile::Fenced(FencedParams {
        mutant,
        ..FencedParams::default()
    })
}

/// The fuzzer's case `seed` for `mutant`, or for the intact protocol.
fn case(mutant: Option<Mutant>, seed: u64, plan: Option<&FaultPlan>) -> CaseOutcome {
    let profile = profile(mutant);
    let drawn;
    let plan = match plan {
        Some(p) => p,
        None => {
            drawn = random_plan(seed, &profile, MAX_FAULTS);
            &drawn
        }
    };
    run_case(seed, &profile, plan, Engine::Fast)
}

/// The pinned case violates the mutant's invariant; without the mutant it does not.
fn assert_caught(mutant: Mutant) {
    let p = pinned(mutant);
    let seed = p.seed.expect("a pinned seed");
    let caught = case(Some(mutant), seed, None);
    assert!(
        caught.violated().contains(&p.invariant),
        "mutant {mutant}, seed {seed}: expected {} violated, got {:?}: {}",
        p.invariant,
        caught.violated(),
        caught.report.reason
    );
    let intact = case(None, seed, None);
    assert!(
        !intact.violated().contains(&p.invariant),
        "seed {seed} violates {} without the mutant too: {}",
        p.invariant,
        intact.report.reason
    );
}

#[test]
fn store_no_token_check_is_caught() {
    assert_caught(Mutant::StoreNoTokenCheck);
}

#[test]
fn store_no_child_check_is_caught() {
    assert_caught(Mutant::StoreNoChildCheck);
}

#[test]
fn no_step_down_is_caught() {
    assert_caught(Mutant::NoStepDown);
}

#[test]
fn wall_clock_lease_is_caught() {
    assert_caught(Mutant::WallClockLease);
}

#[test]
fn poll_without_lease_is_caught() {
    assert_caught(Mutant::PollWithoutLease);
}

#[test]
fn offset_before_replies_is_caught() {
    assert_caught(Mutant::OffsetBeforeReplies);
}

#[test]
fn replies_after_step_down_is_caught() {
    assert_caught(Mutant::RepliesAfterStepDown);
}

#[test]
fn no_signature_check_is_caught() {
    assert_caught(Mutant::NoSignatureCheck);
}

#[test]
fn no_version_floor_is_caught() {
    assert_caught(Mutant::NoVersionFloor);
}

#[test]
fn no_manifest_head_check_is_caught() {
    assert_caught(Mutant::NoManifestHeadCheck);
}

#[test]
fn lease_back_before_last_poll_is_caught() {
    assert_caught(Mutant::LeaseBackBeforeLastPoll);
}

#[test]
fn every_mutant_is_listed_once() {
    for m in Mutant::ALL {
        assert_eq!(PINNED.iter().filter(|p| p.mutant == m).count(), 1, "{m}");
        assert_eq!(Mutant::parse(m.name()), Ok(m));
    }
    // The one survivor so far (docs/mutants.md): no pinned case, no test claiming one.
    let survivors: Vec<Mutant> = PINNED
        .iter()
        .filter(|p| p.seed.is_none())
        .map(|p| p.mutant)
        .collect();
    assert_eq!(survivors, [Mutant::StaleCandidacyAnswers]);
}

/// This thread's CPU time in seconds (user + system), from `/proc/thread-self/stat`.
fn thread_cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap_or_default();
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // Fields 14 and 15 of stat(5), counted from the state (field 3), in USER_HZ (100).
    (ticks(11) + ticks(12)) / 100.0
}

/// Removes faults from `plan` one at a time while the case still violates `invariant`.
fn shrink(mutant: Mutant, seed: u64, invariant: Invariant, plan: FaultPlan) -> FaultPlan {
    let mut plan = plan;
    let mut i = 0;
    while i < plan.faults.len() {
        let mut smaller = plan.clone();
        smaller.faults.remove(i);
        if case(Some(mutant), seed, Some(&smaller))
            .violated()
            .contains(&invariant)
        {
            plan = smaller;
        } else {
            i += 1;
        }
    }
    plan
}

/// How many seed streams `time_to_catch` runs per mutant.
const STREAMS: u64 = 20;

/// How many cases `time_to_catch` runs per stream before it calls the stream a miss.
const CAP: u64 = 2_000;

/// One stream's time to first catch: cases run until (and including) the catching one,
/// and the CPU seconds they took; `None` cases when the stream missed within the cap.
struct Catch {
    cases: Option<u64>,
    cpu: f64,
    seed: Option<u64>,
}

/// Runs stream `stream` for `mutant` until its first catch or `cap` cases. Case `i` of
/// stream `s` is seed `s * 1_000_003 + i`, as `lifeboat fuzz --seed s` numbers them.
fn catch_stream(p: &Pinned, stream: u64, cap: u64) -> Catch {
    let start = thread_cpu_seconds();
    let base = stream * 1_000_003;
    let cases = (0..cap)
        .find(|i| {
            case(Some(p.mutant), base + i, None)
                .violated()
                .contains(&p.invariant)
        })
        .map(|i| i + 1);
    Catch {
        cases,
        cpu: thread_cpu_seconds() - start,
        seed: cases.map(|n| base + n - 1),
    }
}

fn min_median_max(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    (v[0], median, v[n - 1])
}

/// Prints `docs/mutants.md`'s time-to-catch table: per mutant, over `STREAMS` seed
/// streams (stream `s` is `lifeboat fuzz --seed s`), the cases and CPU seconds until the
/// fuzzer first reports the mutant's invariant violated, capped at `CAP` cases per stream
/// (a miss counts as the cap in the statistics and is counted apart). Mutants run on
/// `JOBS` threads (default 2), each stream on one thread, CPU seconds from that thread.
/// `MUTANT=<name>`, `STREAMS=<n>` and `CAP=<n>` narrow a run.
#[test]
#[ignore = "measures time to first catch (minutes); see docs/mutants.md"]
fn time_to_catch() {
    let env = |k: &str, d: u64| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let streams = env("STREAMS", STREAMS);
    let cap = env("CAP", CAP);
    let jobs = env("JOBS", 2).max(1) as usize;
    let only = std::env::var("MUTANT").ok();
    let todo: Vec<&Pinned> = PINNED
        .iter()
        .filter(|p| only.as_deref().is_none_or(|o| o == p.mutant.name()))
        .collect();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: std::sync::Mutex<Vec<(usize, Vec<Catch>)>> = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let Some(p) = todo.get(i) else { break };
                let catches: Vec<Catch> = (0..streams).map(|s| catch_stream(p, s, cap)).collect();
                eprintln!("measured {}", p.mutant);
                results.lock().unwrap().push((i, catches));
            });
        }
    });
    let mut results = results.into_inner().unwrap();
    results.sort_by_key(|(i, _)| *i);
    println!("{streams} streams per mutant, at most {cap} cases each");
    println!("| mutant | invariant | cases min / median / max | CPU s min / median / max | streams not caught in {cap} | first catch of stream 0 (pinned seed) |");
    println!("|---|---|---|---|---|---|");
    for (i, catches) in results {
        let p = todo[i];
        let cases = min_median_max(
            catches
                .iter()
                .map(|c| c.cases.unwrap_or(cap) as f64)
                .collect(),
        );
        let cpu = min_median_max(catches.iter().map(|c| c.cpu).collect());
        let missed = catches.iter().filter(|c| c.cases.is_none()).count();
        let miss = |v: f64| {
            if missed > 0 && v >= cap as f64 {
                format!(">{cap}")
            } else {
                format!("{v}")
            }
        };
        println!(
            "| {} | {} | {} / {} / {} | {:.2} / {:.2} / {:.2} | {} | {} |",
            p.mutant,
            p.invariant,
            miss(cases.0),
            miss(cases.1),
            miss(cases.2),
            cpu.0,
            cpu.1,
            cpu.2,
            missed,
            catches[0]
                .seed
                .map_or_else(|| "-".to_string(), |s| s.to_string())
        );
    }
}

/// Prints `docs/mutants.md`'s table: per mutant, the first of seeds 0, 1, 2, … whose case
/// violates the mutant's invariant, the CPU seconds spent until then, and the shrunk case.
/// `MUTANT=<name>` measures one mutant only.
#[test]
#[ignore = "measures the mutant table (minutes); see docs/mutants.md"]
fn mutant_table() {
    let only = std::env::var("MUTANT").ok();
    println!("| mutant | invariant that caught it | cases to first catch | CPU s to first catch | pinned seed | shrunk faults | shrunk steps | all violated in that case |");
    println!("|---|---|---|---|---|---|---|---|");
    for p in &PINNED {
        if only.as_deref().is_some_and(|o| o != p.mutant.name()) {
            continue;
        }
        let start = thread_cpu_seconds();
        let mut found = None;
        for seed in 0..BUDGET {
            let out = case(Some(p.mutant), seed, None);
            if out.violated().contains(&p.invariant) {
                found = Some((seed, out));
                break;
            }
        }
        let cpu = thread_cpu_seconds() - start;
        match found {
            Some((seed, out)) => {
                let all: Vec<String> = out.violated().iter().map(|i| i.to_string()).collect();
                let drawn = random_plan(seed, &profile(Some(p.mutant)), MAX_FAULTS);
                let shrunk = shrink(p.mutant, seed, p.invariant, drawn);
                let steps = case_scenario(seed, &profile(Some(p.mutant)), &shrunk)
                    .steps
                    .len();
                println!(
                    "| {} | {} | {} | {:.2} | {} | {} | {} | {} |",
                    p.mutant,
                    p.invariant,
                    seed + 1,
                    cpu,
                    seed,
                    shrunk.faults.len(),
                    steps,
                    all.join(", ")
                );
            }
            None => println!(
                "| {} | {} | not caught in {BUDGET} | {:.2} | - | - | - | - |",
                p.mutant, p.invariant, cpu
            ),
        }
    }
}

/// The intact protocol under the final fuzzer: `CASES` (default 2,000) cases of seed
/// stream `STREAM` (default 0) with no mutant must all pass (`passed()`, liveness
/// included). A quick check that the biased schedules do not break `fenced` itself;
/// `lifeboat fuzz --profile fenced` is the long run.
#[test]
#[ignore = "runs thousands of intact cases (minutes)"]
fn intact_fenced_passes_the_biased_fuzzer() {
    let env = |k: &str, d: u64| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let base = env("STREAM", 0) * 1_000_003;
    let failures: Vec<String> = (0..env("CASES", 2_000))
        .filter_map(|i| {
            let out = case(None, base + i, None);
            (!out.passed()).then(|| format!("seed {}: {}", base + i, out.report.reason))
        })
        .collect();
    assert!(failures.is_empty(), "{failures:#?}");
}
