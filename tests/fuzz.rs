//! Property fuzzing in `cargo test`: proptest generates fault plans, the fast engine runs
//! them as ten-minute drills, and the checkers judge them. `PROPTEST_CASES` scales the
//! fenced property up (the default keeps CI quick).
//!
//! Contents:
//! - `fenced_survives_fuzzed_faults`: every fuzzed fault plan passes, judged as the CLI
//!   judges (`passed()`: a violated invariant, a failed liveness step or UNKNOWN fails).
//! - `v1_split_brain_found_and_shrunk`: the fuzzer finds OpenTrident's split brain within
//!   100 cases, shrinks it, and the written scenario replays to the same trace hash in two
//!   separate processes.
//! - `broken_fenced_is_caught`: a fenced variant with step-down removed fails, so we know
//!   the fuzzer can fail.
//! - `fuzz_regressions_pass_on_both_engines`: every failure the fuzzer once found, kept in
//!   `tests/regressions/` after its fix, passes on the fast and the turmoil engine.

use lifeboat_model::check::Invariant;
use lifeboat_model::profile::{FencedParams, Profile, ProfileName};
use lifeboat_model::scenario::{Scenario, Verdict};
use lifeboat_model::time::Millis;
use lifeboat_sim::backend::Engine;
use lifeboat_sim::fuzz::{
    case_scenario, make_fault, run_case, FaultPlan, PlannedFault, FAULT_KINDS, FAULT_PHASE,
    FAULT_START, MAX_FAULT,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed, TestCaseError, TestError, TestRunner};
use std::process::Command;

fn plans(profile: Profile, max: usize) -> impl Strategy<Value = FaultPlan> {
    prop::collection::vec(
        (
            FAULT_START.0..FAULT_PHASE.0,
            0..FAULT_KINDS,
            any::<u64>(),
            any::<u64>(),
            500..=MAX_FAULT.0,
        ),
        0..=max,
    )
    .prop_map(move |raw| {
        let mut faults: Vec<PlannedFault> = raw
            .into_iter()
            .map(|(at, kind, n, m, d)| PlannedFault {
                at: Millis(at),
                fault: make_fault(kind, n, m, &profile),
                duration: Millis(d),
            })
            .collect();
        faults.sort_by_key(|f| f.at);
        FaultPlan { faults }
    })
}

fn runner(cases: u32, seed: u64) -> TestRunner {
    TestRunner::new(Config {
        cases,
        failure_persistence: None,
        rng_seed: RngSeed::Fixed(seed),
        fork: false,
        timeout: 0,
        ..Config::default()
    })
}

fn cases_from_env(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn fenced_survives_fuzzed_faults() {
    let profile = Profile::default_for(ProfileName::Fenced);
    let mut r = runner(cases_from_env(48), 7);
    let result = r.run(&plans(profile.clone(), 8), |plan| {
        let seed = plan.faults.first().map_or(1, |f| f.at.0);
        let out = run_case(seed, &profile, &plan, Engine::Fast);
        // As the CLI judges a case: the verdict, so a failed liveness step or an UNKNOWN
        // counts as a failure too, not only a violated invariant.
        if out.passed() {
            Ok(())
        } else {
            Err(TestCaseError::fail(format!(
                "seed {seed}: {} {:?}: {}",
                out.report.verdict,
                out.violated(),
                out.report.reason
            )))
        }
    });
    if let Err(e) = result {
        panic!("fenced broke an invariant: {e}");
    }
}

#[test]
fn v1_split_brain_found_and_shrunk() {
    let profile = Profile::default_for(ProfileName::OpentridentV1);
    let mut r = runner(100, 11);
    // The runner stops at the first failure (then shrinks), so reaching Err at all
    // within `cases: 100` means the first 100 cases held one.
    let result = r.run(&plans(profile.clone(), 8), |plan| {
        let out = run_case(1, &profile, &plan, Engine::Fast);
        let v = out.violated();
        if v.contains(&Invariant::LeaderExclusive) && v.contains(&Invariant::PollExclusive) {
            Err(TestCaseError::fail(out.report.reason))
        } else {
            Ok(())
        }
    });
    let Err(TestError::Fail(reason, minimal)) = result else {
        panic!("the fuzzer found no v1 split brain in 100 cases: {result:?}");
    };
    assert!(
        minimal.faults.len() <= 5,
        "shrunk plan has {} faults",
        minimal.faults.len()
    );
    let reason = reason.message().to_string();
    assert!(reason.contains("lock file on host"), "{reason}");
    assert!(reason.contains("409 Conflict"), "{reason}");

    // The shrunk case as a file replays to one trace hash, in two separate processes.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("v1-split-brain.toml");
    std::fs::write(&file, case_scenario(1, &profile, &minimal).to_toml()).unwrap();
    let hash = |engine: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_lifeboat"))
            .arg("replay")
            .arg(&file)
            .args(["--engine", engine])
            .output()
            .unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        assert_eq!(
            out.status.code(),
            Some(1),
            "a failing case exits 1 on the {engine} engine:\n{text}"
        );
        text.lines()
            .find_map(|l| l.strip_prefix("trace hash ").map(str::to_string))
            .expect("replay prints the trace hash")
    };
    let (h1, h2) = (hash("fast"), hash("fast"));
    assert_eq!(h1, h2);
    assert_eq!(
        h1,
        run_case(1, &profile, &minimal, Engine::Fast)
            .report
            .trace_hash,
        "replay and the fuzzer agree"
    );
    // The file the fast engine's failure became fails on turmoil's full stack too (exit 1
    // is asserted inside), with the same split brain.
    hash("turmoil");
    let full = run_case(1, &profile, &minimal, Engine::Turmoil);
    let v = full.violated();
    assert!(
        v.contains(&Invariant::LeaderExclusive) && v.contains(&Invariant::PollExclusive),
        "turmoil found {v:?} for the shrunk case: {}",
        full.report.reason
    );
}

#[test]
fn broken_fenced_is_caught() {
    let profile = Profile::Fenced(FencedParams {
        broken_no_step_down: true,
        ..FencedParams::default()
    });
    let mut r = runner(200, 3);
    let result = r.run(&plans(profile.clone(), 8), |plan| {
        let out = run_case(5, &profile, &plan, Engine::Fast);
        let v = out.violated();
        if v.contains(&Invariant::LeaderExclusive) || v.contains(&Invariant::PollExclusive) {
            Err(TestCaseError::fail(out.report.reason))
        } else {
            Ok(())
        }
    });
    match result {
        Err(TestError::Fail(reason, minimal)) => {
            assert!(minimal.faults.len() <= 5, "{minimal:?}");
            assert!(!reason.message().is_empty());
        }
        other => panic!("the fuzzer did not catch the broken variant: {other:?}"),
    }
}

#[test]
fn same_seed_same_trace_hash() {
    let profile = Profile::default_for(ProfileName::Fenced);
    let plan = lifeboat_sim::fuzz::random_plan(42, &profile, 8);
    let a = run_case(42, &profile, &plan, Engine::Fast);
    let b = run_case(42, &profile, &plan, Engine::Fast);
    assert_eq!(a.report.trace_hash, b.report.trace_hash);
    assert!(!a.report.history.entries.is_empty());
}

/// Every file in `tests/regressions/` (a fuzz failure, kept once fixed) must pass on both
/// engines.
#[test]
fn fuzz_regressions_pass_on_both_engines() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/regressions");
    let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    assert!(
        !files.is_empty(),
        "no regression files in {}",
        dir.display()
    );
    let runs: Vec<(std::path::PathBuf, Engine)> = files
        .iter()
        .flat_map(|f| [(f.clone(), Engine::Fast), (f.clone(), Engine::Turmoil)])
        .collect();
    // One thread per run: the turmoil runs take seconds each.
    let failures: Vec<String> = std::thread::scope(|scope| {
        let handles: Vec<_> = runs
            .iter()
            .map(|(path, engine)| {
                scope.spawn(move || {
                    let name = path.file_name().unwrap().to_string_lossy().to_string();
                    let text = std::fs::read_to_string(path).unwrap();
                    let scenario = Scenario::parse(&name, &text).unwrap_or_else(|e| panic!("{e}"));
                    let report = lifeboat_sim::backend::run_scenario(
                        &scenario,
                        *engine,
                        None,
                        None,
                        &mut |_| {},
                    );
                    (report.verdict != Verdict::Pass).then(|| {
                        format!(
                            "tests/regressions/{name} on the {engine} engine: {}\n  {}",
                            report.verdict, report.reason
                        )
                    })
                })
            })
            .collect();
        handles
            .into_iter()
            .filter_map(|h| h.join().expect("a regression run panicked"))
            .collect()
    });
    assert!(
        failures.is_empty(),
        "{} of {} regression runs did not pass:\n{}",
        failures.len(),
        runs.len(),
        failures.join("\n")
    );
}
