//! One test per class of issue 19: the panics, the livelocks, the quadratic wait, the
//! wraps, the path escapes, the symlinks, the gzip bomb, the FIFO and the misplaced error
//! locations; each was a real failure before the fix.

use lifeboat_model::fault::Fault;
use lifeboat_model::profile::{Profile, ProfileName};
use lifeboat_model::scenario::Scenario;
use lifeboat_model::time::Millis;
use lifeboat_model::NodeId;
use lifeboat_sim::turmoil_engine::TurmoilWorld;
use lifeboat_sim::world::{NodeSetup, World, WorldConfig};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BASE: &str = r#"
name = "hostile"
[cluster]
nodes = ["a", "b", "c"]

[[step]]
action = "start"
node = "a"
"#;

fn with(extra: &str) -> String {
    format!("{BASE}{extra}")
}

fn refused(text: &str) -> lifeboat_model::scenario::ScenarioError {
    Scenario::parse("t.toml", text).expect_err("must be refused")
}

fn line_of(text: &str, needle: &str) -> usize {
    let at = text.find(needle).expect("needle in text");
    text[..at].matches('\n').count() + 1
}

struct Run {
    code: i32,
    out: String,
    elapsed: Duration,
}

/// Runs the built binary with a hard 30 s limit (a hang is a failure, not a stuck test).
fn lifeboat(dir: &Path, args: &[&str]) -> Run {
    let start = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_lifeboat"))
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if start.elapsed() > Duration::from_secs(30) {
            child.kill().unwrap();
            panic!("lifeboat {args:?} ran past 30 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    Run {
        code: out.status.code().expect("exited, not killed"),
        out: format!(
            "{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
        elapsed: start.elapsed(),
    }
}

fn three_nodes(profile: Profile) -> WorldConfig {
    let nodes = ["a", "b", "c"]
        .iter()
        .enumerate()
        .map(|(i, n)| NodeSetup {
            id: NodeId::parse(n).unwrap(),
            host: n.to_string(),
            blank: i > 0,
        })
        .collect();
    WorldConfig::new(7, profile, nodes)
}

// ------------------------------------------------------------------ panics

#[test]
fn clock_rates_that_stop_or_reverse_a_clock_are_refused_at_parse_with_key_and_bound() {
    for ppm in [
        "-1000000",
        "-1000001",
        "1000000000000",
        "9223372036854775807",
        "-9223372036854775808",
    ] {
        let text = with(&format!(
            "\n[[step]]\naction = \"fault\"\nfault = {{ kind = \"clock-rate\", node = \"a\", ppm = {ppm} }}\n"
        ));
        let e = refused(&text);
        assert!(
            e.message.contains(&format!("ppm = {ppm}"))
                && e.message.contains("expected -500000 to 500000"),
            "{e}"
        );
        assert_eq!(e.line, line_of(&text, "fault = {"), "{e}");
    }
}

#[test]
fn both_engines_refuse_a_stopping_clock_instead_of_dividing_by_zero() {
    let a = NodeId::parse("a").unwrap();
    for ppm in [
        -1_000_000,
        -1_000_001,
        i64::MIN,
        i64::MAX,
        1_000_000_000_000,
    ] {
        let fault = Fault::ClockRate { node: a, ppm };
        let mut fast = World::new(three_nodes(Profile::default_for(ProfileName::Fenced)));
        fast.start(a);
        let e = fast.inject(&fault).unwrap_err();
        assert!(e.contains("ppm"), "{e}");
        fast.run_for(Millis::secs(5));
        let mut turmoil = TurmoilWorld::new(three_nodes(Profile::default_for(ProfileName::Fenced)));
        turmoil.start(a);
        let e = turmoil.inject(&fault).unwrap_err();
        assert!(e.contains("ppm"), "{e}");
        turmoil.run_for(Millis::secs(1));
    }
}

#[test]
fn a_multibyte_content_hash_is_a_finding_not_a_panic() {
    let tmp = tempfile::tempdir().unwrap();
    let (v1, public) = v1_bundle(tmp.path());
    let path = v1.join("manifest.json");
    let mut m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    m["contentHash"] = serde_json::json!("ééééééééé🦀");
    std::fs::write(&path, serde_json::to_vec(&m).unwrap()).unwrap();
    let r = lifeboat(tmp.path(), &["snapshot", "verify", "v1", "--key", &public]);
    assert_eq!(r.code, 1, "{}", r.out);
    assert!(
        r.out.contains("does not end in the first 8 hex"),
        "{}",
        r.out
    );
}

// ------------------------------------------------------------------ livelocks and wraps

#[test]
fn zero_periods_are_refused_with_the_key() {
    for (section, key) in [
        ("fenced", "renew_every"),
        ("fenced", "follower_sync_every"),
        ("fenced", "snapshot_every"),
        // (v1's `heartbeat_every = "0s"` is OpenTrident's heartbeat-disabled runner, which
        // arms no timer: allowed, see `model::limits::check_v1`.)
        ("opentrident-v1", "follower_poll"),
    ] {
        let text = with(&format!("\n[profiles.{section}]\n{key} = \"0ms\"\n"));
        let e = refused(&text);
        assert!(
            e.message.contains(&format!("{section}.{key}")) && e.message.contains("at least 1ms"),
            "{e}"
        );
        assert_eq!(
            e.line,
            line_of(&text, &format!("[profiles.{section}]")),
            "{e}"
        );
    }
}

#[test]
fn a_duration_that_would_wrap_is_refused_quoting_value_and_limit() {
    for (block, needle) in [
        (
            "\n[profiles.fenced]\nrenew_every = \"18446744073709551615ms\"\n",
            "renew_every",
        ),
        (
            "\n[[step]]\naction = \"fault\"\nfault = { kind = \"kill\", node = \"a\" }\nfor = \"18446744073709551615ms\"\n",
            "for =",
        ),
        (
            "\n[[step]]\naction = \"fault\"\nfault = { kind = \"latency\", extra = \"18446744073709551615ms\" }\n",
            "fault =",
        ),
        ("\n[[step]]\naction = \"wait\"\nfor = \"99999999999999999999999999999999999999999h\"\n", "for ="),
    ] {
        let text = with(block);
        let e = refused(&text);
        assert!(
            e.message.contains("is too large") && e.message.contains("the limit is 30 days"),
            "{e}"
        );
        assert!(e.message.contains("ms`") || e.message.contains("h`"), "{e}");
        // Inside a step, serde reports a value at the step's table; elsewhere at the value.
        let expected = if needle == "renew_every" {
            line_of(&text, needle)
        } else {
            text[..text.rfind("[[step]]").unwrap()].lines().count() + 1
        };
        assert_eq!(e.line, expected, "{e}");
    }
}

#[test]
fn a_scenario_asking_for_more_simulated_time_than_the_limit_is_refused() {
    let waits: String = (0..40)
        .map(|_| "\n[[step]]\naction = \"wait\"\nfor = \"720h\"\n")
        .collect();
    let e = refused(&with(&waits));
    assert!(e.message.contains("simulated time: the limit is"), "{e}");
}

#[test]
fn out_of_model_values_are_refused_or_warned() {
    let text = with(
        "\n[[step]]\naction = \"fault\"\nfault = { kind = \"clock-rate\", node = \"b\", ppm = 400000 }\nfor = \"10s\"\n\n[network]\nlatency_max = \"2s\"\n",
    );
    let s = Scenario::parse("t.toml", &text).unwrap();
    let warnings = lifeboat_model::limits::model_warnings(&s, &s.profile(None));
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(warnings[0].contains("drift_ppt") && warnings[0].contains("violations are expected"));
    assert!(warnings[1].contains("max_latency") && warnings[1].contains("violations are expected"));
    for (fault, key) in [
        ("{ kind = \"loss\", percent = 101 }", "percent = 101"),
        ("{ kind = \"telegram-errors\", code = 0 }", "code = 0"),
        ("{ kind = \"telegram-errors\", code = 200 }", "code = 200"),
    ] {
        let e = refused(&with(&format!(
            "\n[[step]]\naction = \"fault\"\nfault = {fault}\n"
        )));
        assert!(
            e.message.contains(key) && e.message.contains("expected"),
            "{e}"
        );
    }
    let e = refused(&with(
        "\n[network]\nlatency_min = \"50ms\"\nlatency_max = \"10ms\"\n",
    ));
    assert!(e.message.contains("latency_min (\"50ms\") exceeds"), "{e}");
    let e = refused(&with(
        "\n[[criterion]]\nid = 3\nname = \"x\"\n\n[[criterion]]\nid = 3\nname = \"y\"\n",
    ));
    assert!(
        e.message.contains("criterion id 3 is declared twice"),
        "{e}"
    );
}

// ------------------------------------------------------------------ the quadratic wait

/// Events processed by a three-node fenced world over `hours` of simulated time. Snapshots
/// and follower syncs are turned off: a chain that grows all run long costs more per
/// verification as it grows, which is not the wake scheduling under test here.
fn events_over(hours: u64) -> u64 {
    let quiet = lifeboat_model::profile::FencedParams {
        snapshot_every: lifeboat_model::limits::MAX_DURATION,
        follower_sync_every: lifeboat_model::limits::MAX_DURATION,
        ..Default::default()
    };
    let mut w = World::new(three_nodes(Profile::Fenced(quiet)));
    for n in ["a", "b", "c"] {
        w.start(NodeId::parse(n).unwrap());
    }
    w.run_for(Millis(hours * 3_600_000));
    w.events_processed()
}

#[test]
fn a_hundred_hour_wait_costs_about_a_hundred_one_hour_waits() {
    let one = events_over(1);
    let hundred = events_over(100);
    let ratio = hundred as f64 / one as f64;
    println!("events: 1 h {one}, 100 h {hundred}, ratio {ratio:.1}");
    assert!(
        (80.0..=120.0).contains(&ratio),
        "1 h: {one} events, 100 h: {hundred} events"
    );
}

/// `tests/robustness.rs`'s input `scenario-19-19716` (fm-14 mutated: a store tamper for
/// 720 h and a chat step waiting `1h1h1h1h` for an answer): the runner asked who answered
/// after every probe, and each question scanned the whole history, so the wait was
/// quadratic: 50 s on this machine against the robustness run's 20 s bound. The world now
/// reads each history entry once for this (`shared::Replies`).
#[test]
fn a_chat_step_waiting_hours_for_an_answer_stays_within_the_robustness_bound() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/hostile/chat-waiting-hours.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let scenario = Scenario::parse("chat-waiting-hours.toml", &text).unwrap();
    // CPU time of this thread, as the robustness run bounds it: wall time on a shared
    // machine measures the neighbours too.
    let cpu = || {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid timespec to write to; the clock id is a constant.
        assert_eq!(
            unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) },
            0
        );
        Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
    };
    let start = cpu();
    // The robustness run's event budget and time bound.
    let report = lifeboat_sim::backend::run_scenario_bounded(&scenario, 200_000);
    let took = cpu() - start;
    println!("took {took:?} of CPU: {}", report.reason);
    assert!(took < Duration::from_secs(20), "took {took:?}");
}

// ------------------------------------------------------------------ misplaced locations

#[test]
fn a_bad_node_is_reported_at_its_value_whatever_the_text_around_it() {
    let text = r#"
name = "where"
description = """
The words [[step]] in a description.
"""
# [[step]] in a comment
[cluster]
nodes = ["a", "b"]

[[ step ]]
action = "start"
node = "a"

[[step]]
action = "wait_for"
condition = "leader"
node = "d"
within = "30s"
"#;
    let e = refused(text);
    assert!(e.message.contains("step 2 (wait_for)"), "{e}");
    assert_eq!(e.line, line_of(text, "node = \"d\""), "{e}");
    assert_eq!(e.column, "node = ".len() + 1, "{e}");
}

#[test]
fn messages_name_what_is_duplicated_and_a_bom_is_accepted() {
    let text = "name = \"x\"\n[cluster]\nnodes = [\"a\", \"b\", \"a\"]\n[[step]]\naction = \"start\"\nnode = \"a\"\n";
    let e = refused(text);
    assert!(e.message.contains("names node `a` twice"), "{e}");
    assert_eq!((e.line, e.column), (3, 20), "{e}");
    let dup_key = with("\n[[step]]\naction = \"start\"\nnode = \"a\"\nnode = \"b\"\n");
    let e = refused(&dup_key);
    assert!(e.message.contains("duplicate key `node`"), "{e}");
    assert_eq!(e.line, dup_key.lines().count(), "{e}");
    let bom = format!("\u{feff}{BASE}");
    Scenario::parse("bom.toml", &bom).expect("a byte-order mark is accepted");
}

// ------------------------------------------------------------------ files: FIFO, UTF-8, escapes

#[cfg(unix)]
fn mkfifo(path: &Path) {
    assert!(Command::new("mkfifo").arg(path).status().unwrap().success());
}

#[test]
#[cfg(unix)]
fn a_fifo_or_a_device_is_refused_at_once_by_every_command() {
    let tmp = tempfile::tempdir().unwrap();
    mkfifo(&tmp.path().join("fifo"));
    let (bundle, public) = lifeboat_bundle(tmp.path());
    std::fs::remove_file(bundle.join("manifest.json")).unwrap();
    mkfifo(&bundle.join("manifest.json"));
    for args in [
        vec!["drill", "fifo", "--no-evidence"],
        vec!["drill", "/dev/zero", "--no-evidence"],
        vec!["manifest", "check", "fifo"],
        vec!["manifest", "check", "/dev/zero"],
        vec!["snapshot", "verify", "bundle", "--manifest", "fifo"],
        vec!["snapshot", "verify", "bundle", "--key", &public],
    ] {
        let r = lifeboat(tmp.path(), &args);
        assert_eq!(r.code, 2, "{args:?}: {}", r.out);
        assert!(
            r.out.contains("found a FIFO") || r.out.contains("found a device"),
            "{args:?}: {}",
            r.out
        );
        assert!(
            r.elapsed < Duration::from_secs(10),
            "{args:?}: {:?}",
            r.elapsed
        );
    }
}

#[test]
fn invalid_utf8_has_a_position_and_control_characters_are_escaped() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("bad.toml"), b"name = \"x\"\nab\xff\n").unwrap();
    let r = lifeboat(tmp.path(), &["drill", "bad.toml", "--no-evidence"]);
    assert_eq!(r.code, 2, "{}", r.out);
    assert!(r.out.contains("bad.toml:2:3: invalid UTF-8"), "{}", r.out);

    let (bundle, public) = lifeboat_bundle(tmp.path());
    let made = lifeboat(
        tmp.path(),
        &[
            "manifest",
            "create",
            "--bundle",
            "bundle",
            "--key",
            &public,
            "--url",
            "https://x",
            "--image",
            "img@sha256:00",
            "--out",
            "boot.json",
        ],
    );
    assert_eq!(made.code, 0, "{}", made.out);
    let _ = bundle;
    let path = tmp.path().join("boot.json");
    let mut m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    m["snapshot_head"] = serde_json::json!("snap\u{1b}[2J\u{1b}]0;owned\u{7}");
    std::fs::write(&path, serde_json::to_vec(&m).unwrap()).unwrap();
    let r = lifeboat(
        tmp.path(),
        &["manifest", "check", "boot.json", "--head", "snap-1"],
    );
    assert_eq!(r.code, 1, "{}", r.out);
    assert!(
        !r.out.contains('\u{1b}') && !r.out.contains('\u{7}'),
        "{:?}",
        r.out
    );
    assert!(r.out.contains("snap\\u{1b}[2J"), "{}", r.out);
    let r = lifeboat(
        tmp.path(),
        &["manifest", "check", "boot.json", "--head", ""],
    );
    assert_eq!(r.code, 2, "{}", r.out);
    assert!(r.out.contains("--head is empty"), "{}", r.out);
}

// ------------------------------------------------------------------ bundles

fn keygen(dir: &Path) -> String {
    let r = lifeboat(dir, &["snapshot", "keygen", "--out", "snap.key"]);
    assert_eq!(r.code, 0, "{}", r.out);
    r.out
        .lines()
        .find_map(|l| l.strip_prefix("public key: "))
        .unwrap()
        .trim()
        .to_string()
}

fn state(dir: &Path) {
    std::fs::create_dir_all(dir.join("state")).unwrap();
    std::fs::write(dir.join("state/planner.json"), b"{\"plan\":1}").unwrap();
    std::fs::create_dir_all(dir.join("outside")).unwrap();
    std::fs::write(dir.join("outside/secret-outside.txt"), b"not yours").unwrap();
}

fn lifeboat_bundle(dir: &Path) -> (std::path::PathBuf, String) {
    state(dir);
    let public = keygen(dir);
    let r = lifeboat(
        dir,
        &[
            "snapshot", "create", "--from", "state", "--out", "bundle", "--key", "snap.key",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.out);
    (dir.join("bundle"), public)
}

fn v1_bundle(dir: &Path) -> (std::path::PathBuf, String) {
    state(dir);
    let public = keygen(dir);
    let r = lifeboat(
        dir,
        &[
            "snapshot",
            "v1-create",
            "--from",
            "state",
            "--out",
            "v1",
            "--key",
            "snap.key",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.out);
    (dir.join("v1"), public)
}

#[test]
#[cfg(unix)]
fn verification_never_follows_a_symlink_out_of_the_bundle() {
    let tmp = tempfile::tempdir().unwrap();
    let (bundle, public) = lifeboat_bundle(tmp.path());
    std::fs::remove_dir_all(bundle.join("files")).unwrap();
    std::os::unix::fs::symlink(tmp.path().join("outside"), bundle.join("files")).unwrap();
    let r = lifeboat(
        tmp.path(),
        &["snapshot", "verify", "bundle", "--key", &public],
    );
    assert_ne!(r.code, 0, "{}", r.out);
    assert!(r.out.contains("symbolic link"), "{}", r.out);
    assert!(!r.out.contains("secret-outside"), "{}", r.out);

    let v1dir = tmp.path().join("v1case");
    std::fs::create_dir_all(&v1dir).unwrap();
    let (v1, public) = v1_bundle(&v1dir);
    std::fs::remove_file(v1.join("planner.json.gz")).unwrap();
    std::os::unix::fs::symlink(
        v1dir.join("outside/secret-outside.txt"),
        v1.join("planner.json.gz"),
    )
    .unwrap();
    let r = lifeboat(&v1dir, &["snapshot", "verify", "v1", "--key", &public]);
    assert_eq!(r.code, 1, "{}", r.out);
    assert!(
        r.out.contains("planner.json.gz: a symbolic link"),
        "{}",
        r.out
    );
}

#[test]
fn a_gzip_bomb_and_a_file_that_is_not_gzip_are_named_as_such() {
    use std::io::Write;
    let tmp = tempfile::tempdir().unwrap();
    let (v1, public) = v1_bundle(tmp.path());
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let chunk = vec![0u8; 1 << 20];
    for _ in 0..70 {
        gz.write_all(&chunk).unwrap();
    }
    std::fs::write(v1.join("planner.json.gz"), gz.finish().unwrap()).unwrap();
    let r = lifeboat(tmp.path(), &["snapshot", "verify", "v1", "--key", &public]);
    assert_eq!(r.code, 1, "{}", r.out);
    assert!(r.out.contains("likely gzip bomb"), "{}", r.out);

    std::fs::write(v1.join("planner.json.gz"), b"{\"plain\": true}").unwrap();
    let r = lifeboat(tmp.path(), &["snapshot", "verify", "v1", "--key", &public]);
    assert!(r.out.contains("planner.json.gz: not gzip"), "{}", r.out);
    assert!(
        r.out.contains("could not be read (not missing;"),
        "{}",
        r.out
    );
}

// ------------------------------------------------------------------ evidence directory

#[test]
fn the_evidence_bundle_lands_under_out_whatever_the_scenario_name() {
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path().join("a/b");
    std::fs::create_dir_all(&work).unwrap();
    for (i, name) in ["../../escaped", "/tmp/absolute-escape", "new\\nline"]
        .iter()
        .enumerate()
    {
        let text = format!(
            "name = \"{name}\"\n[cluster]\nnodes = [\"a\"]\n[[step]]\naction = \"start\"\nnode = \"a\"\n",
        );
        std::fs::write(work.join(format!("s{i}.toml")), text).unwrap();
        let r = lifeboat(
            &work,
            &["drill", &format!("s{i}.toml"), "--out", "out", "--quiet"],
        );
        assert!(r.code <= 2, "{}", r.out);
    }
    let made: Vec<String> = std::fs::read_dir(work.join("out"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(made.len(), 3, "{made:?}");
    assert!(
        made.iter()
            .all(|n| !n.contains('\n') && !n.starts_with('.')),
        "{made:?}"
    );
    // Nothing beside the work directory, one or two levels up.
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 1);
    assert_eq!(std::fs::read_dir(tmp.path().join("a")).unwrap().count(), 1);
}
