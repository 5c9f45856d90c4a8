//! The evidence bundle: the runbook's phase 6 as files.
//!
//! `drills/<scenario>-<profile>-<date>/` holds the files the runbook names
//! (`primary-pre.json`, `follower-post.json`, `restore-post.json`, `bootstrap.json`,
//! `snapshot-head.txt`, `telegram-proof.txt`, `sha256.txt`), plus the full history as
//! JSON lines and in Jepsen's EDN format, `verdict.json` and `report.html`. `sha256.txt`
//! is written last and verifies with `sha256sum -c`.

use crate::report;
use anyhow::Context;
use lifeboat_model::drill::{self, CriterionStatus, DrillReport};
use lifeboat_model::history::History;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// The files the runbook's minimum bundle names; a missing one fails criterion 9.
pub use lifeboat_model::drill::RUNBOOK_FILES;

/// Writes the bundle for `report` under `root` and returns its directory. The evidence
/// criterion (the runbook's 9: a criterion with neither steps nor invariants) is judged
/// again here against the files as written, and the verdict is reached again from the
/// criteria before `verdict.json` and `report.html` are written, so a bundle that lacks a
/// runbook file can never carry a PASS.
pub fn write_bundle(root: &Path, report: &mut DrillReport, date: &str) -> anyhow::Result<PathBuf> {
    let dir = unique_dir(
        root,
        &bundle_dir_name(&report.scenario, report.profile, date),
    );
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    for (name, text) in &report.evidence {
        let path = dir.join(name);
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    judge_bundle(report, &dir);
    let mut files: Vec<(String, Vec<u8>)> = report
        .evidence
        .iter()
        .map(|(k, v)| (k.clone(), v.clone().into_bytes()))
        .collect();
    // The runbook files were written above; they are listed again so sha256.txt covers
    // them.
    files.push((
        "history.jsonl".into(),
        report.history.to_jsonl().into_bytes(),
    ));
    files.push((
        "history.edn".into(),
        jepsen_edn(&report.history).into_bytes(),
    ));
    files.push((
        "verdict.json".into(),
        (serde_json::to_string_pretty(&report)? + "\n").into_bytes(),
    ));
    files.push(("report.html".into(), report::html(report).into_bytes()));
    let mut sums = String::new();
    for (name, bytes) in &files {
        let path = dir.join(name);
        std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))?;
        sums.push_str(&format!(
            "{}  {}\n",
            hex::encode(Sha256::digest(bytes)),
            name
        ));
    }
    std::fs::write(dir.join("sha256.txt"), sums).context("writing sha256.txt")?;
    Ok(dir)
}

/// Judges the evidence criteria against the runbook files present in `dir` and reaches
/// the verdict again. Only the evidence criteria (neither steps nor invariants) change.
fn judge_bundle(report: &mut DrillReport, dir: &Path) {
    let missing: Vec<&str> = RUNBOOK_FILES
        .iter()
        .copied()
        .filter(|f| !dir.join(f).is_file())
        .collect();
    for c in report.criteria.iter_mut().filter(|c| c.from_bundle) {
        if missing.is_empty() {
            c.status = CriterionStatus::Met;
            c.detail = format!("bundle written to {}", dir.display());
        } else {
            c.status = CriterionStatus::NotMet;
            c.detail = format!("the bundle lacks {}", missing.join(", "));
        }
    }
    drill::decide(report);
}

/// The bundle's directory name: `<scenario>-<profile>-<date>`, with the scenario's name
/// reduced to ASCII letters, digits, `-`, `_` and `.` (anything else becomes `_`, at most
/// 80 of them, never `.` or `..` alone). A scenario file is input like any other: its
/// name must not lead the bundle out of `--out` (`../../x`, `/etc`) or into a name with
/// a newline.
pub fn bundle_dir_name(
    scenario: &str,
    profile: lifeboat_model::profile::ProfileName,
    date: &str,
) -> String {
    let mut name: String = scenario
        .chars()
        .take(80)
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    // A leading dot would hide the bundle, and `..` would name the parent.
    if name.is_empty() || name.starts_with('.') {
        name.insert(0, '_');
    }
    let date: String = date
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{name}-{profile}-{date}")
}

/// A directory under `root` named `base`, or `base-2`, `base-3`, … if taken. `base` is
/// one path component (see [`bundle_dir_name`]), so the result is always inside `root`.
fn unique_dir(root: &Path, base: &str) -> PathBuf {
    let first = root.join(base);
    if !first.exists() {
        return first;
    }
    (2..)
        .map(|i| root.join(format!("{base}-{i}")))
        .find(|p| !p.exists())
        .expect("some suffix is free")
}

/// The history in Jepsen's EDN history format: one map per event, with `:type :info`,
/// `:f` the event kind, `:process` the node, `:time` in nanoseconds and `:value` the
/// event as JSON text.
pub fn jepsen_edn(h: &History) -> String {
    let mut out = String::new();
    for e in h.iter() {
        let json = serde_json::to_value(&e.event).unwrap_or_default();
        let kind = json["type"].as_str().unwrap_or("event").to_string();
        let process = e
            .event
            .node()
            .map_or(":nemesis".to_string(), |n| format!("\"{n}\""));
        out.push_str(&format!(
            "{{:index {}, :type :info, :f :{}, :process {}, :time {}, :value {:?}}}\n",
            e.seq,
            kind,
            process,
            e.at.0 * 1_000_000,
            json.to_string()
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use lifeboat_model::profile::ProfileName;
    use std::path::Component;

    #[test]
    fn hostile_scenario_names_stay_one_component_under_out() {
        for name in [
            "../../x",
            "/etc/passwd",
            "a\nb",
            "..",
            ".",
            "",
            "a/../../b",
            "C:\\x",
            "nul\0byte",
            "é🦀",
        ] {
            let dir_name = bundle_dir_name(name, ProfileName::Fenced, "2026-01-01");
            let dir = unique_dir(Path::new("/tmp/out"), &dir_name);
            assert_eq!(
                dir.parent(),
                Some(Path::new("/tmp/out")),
                "{name:?} -> {dir:?}"
            );
            let last = dir.components().next_back();
            assert!(
                matches!(last, Some(Component::Normal(_))),
                "{name:?} -> {dir:?}"
            );
            assert!(!dir_name.starts_with('.'), "{name:?} -> {dir_name}");
            assert!(
                dir_name
                    .chars()
                    .all(|c| c.is_ascii_graphic() && c != '/' && c != '\\'),
                "{name:?} -> {dir_name:?}"
            );
        }
        assert_eq!(
            bundle_dir_name("aaa-drill", ProfileName::Fenced, "2026-01-01"),
            "aaa-drill-fenced-2026-01-01"
        );
    }
}
