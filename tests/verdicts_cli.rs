//! `lifeboat drill` verdicts show their evidence: run as a user runs them, the built binary
//! on fixture scenarios (`tests/fixtures/verdicts/`), output and exit codes checked.
//!
//! - an idle one-node drill prints `not judged` with what was missing for every invariant
//!   it had no events for, and `held` only beside a count of what was judged;
//! - a drill whose bundle lacks a runbook file fails criterion 9 and exits 1.

use std::path::Path;
use std::process::Command;

struct Run {
    code: i32,
    out: String,
    err: String,
}

fn drill(out_dir: &Path, fixture: &str, extra: &[&str]) -> Run {
    let scenario = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/verdicts")
        .join(fixture);
    let out = Command::new(env!("CARGO_BIN_EXE_lifeboat"))
        .arg("drill")
        .arg(&scenario)
        .arg("--out")
        .arg(out_dir)
        .args(extra)
        .output()
        .expect("the lifeboat binary runs");
    Run {
        code: out.status.code().expect("exited, not killed"),
        out: String::from_utf8_lossy(&out.stdout).into_owned(),
        err: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The console line of one invariant, e.g. `  3 chat-answered   not judged: …`.
fn invariant_line<'a>(out: &'a str, name: &str) -> &'a str {
    out.lines()
        .find(|l| l.trim_start().starts_with(name))
        .unwrap_or_else(|| panic!("no line for {name} in:\n{out}"))
}

#[test]
fn an_idle_one_node_drill_judges_nothing_it_did_not_see() {
    let tmp = tempfile::tempdir().unwrap();
    let r = drill(tmp.path(), "one-node-idle.toml", &[]);
    assert_eq!(r.code, 0, "stdout:\n{}\nstderr:\n{}", r.out, r.err);
    for (name, missing) in [
        ("3 chat-answered", "not judged: no chat message was sent"),
        ("4 takeover-bounded", "not judged: no leader was lost"),
        (
            "6 tamper-refused",
            "not judged: no snapshot was restored and no tampered snapshot was served",
        ),
        (
            "7 rpo-bounded",
            "not judged: no node took the lead after a leader was lost",
        ),
        (
            "8 health-truthful",
            "not judged: no health probe was recorded",
        ),
    ] {
        let line = invariant_line(&r.out, name);
        assert!(line.contains(missing), "{name}: {line}");
    }
    // Every invariant line is either not judged with a reason, or held with a non-zero
    // count beside it.
    let mut held = 0;
    for inv in [
        "1 leader-exclusive",
        "2 poll-exclusive",
        "3 chat-answered",
        "4 takeover-bounded",
        "5 chain-intact",
        "6 tamper-refused",
        "7 rpo-bounded",
        "8 health-truthful",
    ] {
        let line = invariant_line(&r.out, inv);
        assert!(!line.contains("VIOLATED"), "{line}");
        if line.contains(" held (") {
            held += 1;
            let counts = line.split(" held (").nth(1).unwrap();
            let nonzero = counts
                .split(|c: char| !c.is_ascii_digit())
                .filter(|d| !d.is_empty())
                .any(|d| d != "0");
            assert!(nonzero, "held without a count: {line}");
        } else {
            assert!(line.contains("not judged: "), "{line}");
        }
    }
    // The node led and polled alone: those two were judged.
    assert!(held >= 2, "{}", r.out);
    assert!(invariant_line(&r.out, "1 leader-exclusive").contains("1 leader interval"));
    // verdict.json carries the same statuses.
    let bundle = std::fs::read_dir(tmp.path())
        .unwrap()
        .next()
        .expect("a bundle directory")
        .unwrap()
        .path();
    let verdict: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(bundle.join("verdict.json")).unwrap())
            .unwrap();
    let chat = verdict["invariants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["invariant"] == "chat-answered")
        .unwrap();
    assert_eq!(chat["status"], "not-judged");
    assert_eq!(chat["not_judged_because"], "no chat message was sent");
    assert_eq!(chat["counts"]["messages-sent"], 0);
    let html = std::fs::read_to_string(bundle.join("report.html")).unwrap();
    assert!(html.contains("not judged: no chat message was sent"));
}

#[test]
fn a_bundle_missing_a_runbook_file_fails_criterion_9() {
    let tmp = tempfile::tempdir().unwrap();
    let r = drill(tmp.path(), "bundle-lacks-runbook-file.toml", &[]);
    assert_eq!(r.code, 1, "stdout:\n{}\nstderr:\n{}", r.out, r.err);
    let line = r
        .out
        .lines()
        .find(|l| l.contains("9. failover + restore evidence"))
        .unwrap_or_else(|| panic!("no criterion 9 line:\n{}", r.out));
    assert!(line.contains("NOT MET"), "{line}");
    assert!(
        r.out.contains("the bundle lacks follower-post.json"),
        "{}",
        r.out
    );
    assert!(r.out.contains("Verdict: FAIL"), "{}", r.out);
    // Criterion 1 was met with its steps and invariants behind it.
    let one = r
        .out
        .lines()
        .find(|l| l.contains("1. the node leads and answers"))
        .unwrap();
    assert!(one.trim_start().starts_with("met"), "{one}");
}
