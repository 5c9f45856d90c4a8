//! Every scenario file in `scenarios/`, run on the simulated backend for every profile its
//! `[expect]` table names, must reach the verdict it expects; the failure-mode scenarios
//! must cover `opentrident-protocol.md` §8 one file per item; and a malformed scenario must
//! be refused with its file, line and column.
//!
//! The expectations live in the scenario files, so this test never needs editing when a
//! scenario is added: drop a file with an `[expect]` table into `scenarios/`.

use lifeboat::commands::drill::{load, run_sim};
use lifeboat_model::profile::ProfileName;
use lifeboat_model::scenario::Scenario;
use lifeboat_sim::backend::Engine;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The failure modes of `opentrident-protocol.md` §8.
const FAILURE_MODES: std::ops::RangeInclusive<u32> = 1..=22;

fn scenario_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios")
}

/// Every `*.toml` in `scenarios/`, sorted, as paths relative to the crate root (so that
/// messages and `lifeboat drill` commands read the same).
fn scenario_files() -> Vec<PathBuf> {
    let dir = scenario_dir();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    assert!(
        !files.is_empty(),
        "no scenario files in {}: nothing would be tested",
        dir.display()
    );
    files
}

fn shown(path: &Path) -> String {
    path.strip_prefix(env!("CARGO_MANIFEST_DIR"))
        .unwrap_or(path)
        .display()
        .to_string()
}

fn load_all() -> Vec<(PathBuf, Scenario)> {
    scenario_files()
        .into_iter()
        .map(|p| {
            let s = load(&p).unwrap_or_else(|e| panic!("{e:#}"));
            (p, s)
        })
        .collect()
}

#[test]
fn every_scenario_reaches_its_expected_verdict_on_every_profile() {
    expect_verdicts_on(Engine::Fast);
}

/// The turmoil engine carries the same scenarios over simulated TCP at a 1 ms tick: the
/// two engines must agree on every verdict (each must match the file's), so that a failure
/// the fast engine finds is one the full-stack world finds too.
#[test]
fn every_scenario_reaches_the_same_verdict_on_the_turmoil_engine() {
    expect_verdicts_on(Engine::Turmoil);
}

fn expect_verdicts_on(engine: Engine) {
    let scenarios = load_all();
    // One thread per file: each run owns its simulated world, and the slowest file, not
    // the sum of all of them, sets the test's duration.
    let results: Vec<Vec<String>> = std::thread::scope(|scope| {
        let handles: Vec<_> = scenarios
            .iter()
            .map(|(path, s)| {
                scope.spawn(move || {
                    let file = shown(path);
                    if s.expect.is_empty() {
                        return vec![format!(
                            "{file}: has no [expect] table, so no profile of it is ever checked"
                        )];
                    }
                    let mut mismatches = Vec::new();
                    for (profile, expected) in &s.expect {
                        let report = run_sim(s, engine, Some(*profile), None, &mut |_| {});
                        if report.verdict != *expected {
                            mismatches.push(format!(
                                "{file} --profile {profile} --engine {engine}: expected {expected}, got {}\n  reason: {}\n  replay: cargo run --release -- drill {file} --profile {profile} --engine {engine} --no-evidence",
                                report.verdict,
                                report.reason.replace('\n', "\n          ")
                            ));
                        }
                    }
                    mismatches
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a scenario run panicked"))
            .collect()
    });
    let runs: usize = scenarios.iter().map(|(_, s)| s.expect.len()).sum();
    let mismatches: Vec<String> = results.into_iter().flatten().collect();
    assert!(
        mismatches.is_empty(),
        "{} of {runs} scenario runs on the {engine} engine did not reach the verdict their file expects:\n\n{}\n",
        mismatches.len(),
        mismatches.join("\n\n")
    );
}

#[test]
fn each_failure_mode_of_section_8_has_exactly_one_scenario() {
    let mut by_mode: BTreeMap<u32, Vec<String>> = BTreeMap::new();
    let mut problems = Vec::new();
    for (path, s) in load_all() {
        let file = shown(&path);
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("a UTF-8 file name");
        if s.name != stem {
            problems.push(format!(
                "{file}: name = \"{}\" differs from the file name (evidence directories are named after it)",
                s.name
            ));
        }
        // fm-NN-<short-name>.toml must say failure_mode = NN, and the other way round.
        let from_name = stem
            .strip_prefix("fm-")
            .and_then(|rest| rest.split_once('-'))
            .and_then(|(nn, short)| {
                (nn.len() == 2 && !short.is_empty())
                    .then(|| nn.parse::<u32>().ok())
                    .flatten()
            });
        if stem.starts_with("fm-") && from_name.is_none() {
            problems.push(format!(
                "{file}: a failure-mode scenario must be named fm-NN-<short-name>.toml"
            ));
        }
        if from_name != s.failure_mode && stem.starts_with("fm-") {
            problems.push(format!(
                "{file}: the file name says failure mode {from_name:?}, the file says failure_mode = {:?}",
                s.failure_mode
            ));
        }
        let Some(mode) = s.failure_mode else {
            continue;
        };
        if !stem.starts_with("fm-") {
            problems.push(format!(
                "{file}: sets failure_mode = {mode} but is not named fm-{mode:02}-<short-name>.toml"
            ));
        }
        for profile in ProfileName::ALL {
            if !s.expect.contains_key(&profile) {
                problems.push(format!(
                    "{file}: [expect] gives no verdict for {profile}; a failure-mode scenario states both"
                ));
            }
        }
        if s.description.trim().is_empty() {
            problems.push(format!(
                "{file}: has no description (it must cite the code fact)"
            ));
        }
        by_mode.entry(mode).or_default().push(file);
    }
    for mode in FAILURE_MODES {
        match by_mode.get(&mode).map(Vec::as_slice) {
            None | Some([]) => problems.push(format!("failure mode {mode} has no scenario")),
            Some([_]) => {}
            Some(files) => problems.push(format!(
                "failure mode {mode} has {} scenarios: {}",
                files.len(),
                files.join(", ")
            )),
        }
    }
    for (mode, files) in &by_mode {
        if !FAILURE_MODES.contains(mode) {
            problems.push(format!(
                "failure_mode = {mode} is not an item of §8 (1 to 22): {}",
                files.join(", ")
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// A small valid scenario; the malformed ones below each change one thing in it.
const VALID: &str = r#"name = "malformed"
[cluster]
nodes = ["a", "b"]

[[step]]
action = "start"
node = "a"

[[step]]
action = "wait_for"
condition = "leader"
node = "a"
within = "30s"
"#;

#[test]
fn a_malformed_scenario_is_refused_with_its_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    };

    // The control: the unaltered text loads, so each error below comes from its one change.
    let valid = write("valid.toml", VALID);
    let s = load(&valid).unwrap_or_else(|e| panic!("the valid control did not load: {e:#}"));
    assert_eq!(s.steps.len(), 2);

    // A TOML syntax error: an unquoted duration on line 13, whose value starts at column 10.
    let syntax = write(
        "syntax-error.toml",
        &VALID.replace("within = \"30s\"", "within = 30s"),
    );
    let err = format!("{:#}", load(&syntax).unwrap_err());
    let at = format!("{}:13:10: ", syntax.display());
    assert!(
        err.starts_with(&at) && err.len() > at.len(),
        "expected `{at}<what was wrong>`, got: {err}"
    );

    // A node the cluster does not have: reported at the `[[step]]` header of step 2
    // (line 9, column 1), saying which nodes exist.
    let unknown = write(
        "unknown-node.toml",
        &VALID.replace("node = \"a\"\nwithin", "node = \"d\"\nwithin"),
    );
    let err = format!("{:#}", load(&unknown).unwrap_err());
    let at = format!("{}:9:1: ", unknown.display());
    assert!(err.starts_with(&at), "expected `{at}…`, got: {err}");
    assert!(
        err.contains("step 2 (wait_for): node `d` is not in the cluster (a, b)"),
        "the message should name the step, the node and the cluster: {err}"
    );

    // A file that is not there is named too.
    let missing = dir.path().join("missing.toml");
    let err = format!("{:#}", load(&missing).unwrap_err());
    assert!(
        err.contains(&missing.display().to_string()),
        "the error should name the missing file: {err}"
    );
}
