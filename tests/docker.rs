//! The docker backend on the local Docker engine: real processes in real containers.
//!
//! Contents:
//! 1. `scenarios_on_docker`: the AAA drill (fenced) and every failure-mode scenario the
//!    backend can express run at once, each as `lifeboat drill … --backend docker`, and
//!    each must end with the verdict its file expects for fenced (the sim's verdict);
//!    the AAA drill's evidence bundle must verify and its report show the takeover.
//! 2. `scenarios_docker_cannot_express_stop_with_a_capability_message`: the rest stop at
//!    once, with exit code 2 and the missing capability named, and create nothing.
//! 3. `interrupted_drill_leaves_nothing`: SIGINT halfway through a drill; afterwards no
//!    container, network or image of that run is left.
//!
//! Needs a Docker engine and Debian's etcd-server (`scripts/test.sh` installs it), and a
//! statically linked lifeboat for the node image: `$LIFEBOAT_NODE_BINARY`, or else this
//! test builds one (`RUSTFLAGS=-Ctarget-feature=+crt-static cargo build --target
//! x86_64-unknown-linux-gnu`). The containers reach only each other and the host.

use lifeboat_model::fault::Capability;
use lifeboat_model::profile::ProfileName;
use lifeboat_model::scenario::{Scenario, Verdict};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const DOCKER_CAPS: [Capability; 5] = [
    Capability::ProcessFaults,
    Capability::Pause,
    Capability::Partition,
    Capability::PartitionOneway,
    Capability::ClockSkew,
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The static lifeboat for the node image, built once per test process if not given.
fn node_binary() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(p) = std::env::var_os("LIFEBOAT_NODE_BINARY").filter(|p| !p.is_empty()) {
            return PathBuf::from(p);
        }
        let target = "x86_64-unknown-linux-gnu";
        let status = Command::new(env!("CARGO"))
            .current_dir(root())
            .args(["build", "--quiet", "--bin", "lifeboat", "--target", target])
            .env("RUSTFLAGS", "-C target-feature=+crt-static")
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building the static lifeboat failed");
        let dir = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| root().join("target"));
        dir.join(target).join("debug").join("lifeboat")
    })
    .clone()
}

fn load(path: &Path) -> Scenario {
    let text = std::fs::read_to_string(path).unwrap();
    Scenario::parse(&path.display().to_string(), &text).unwrap()
}

fn drill(scenario: &Path, out: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_lifeboat"));
    cmd.current_dir(root())
        .arg("drill")
        .arg(scenario)
        .args(["--backend", "docker", "--profile", "fenced", "--out"])
        .arg(out)
        .arg("--node-binary")
        .arg(node_binary());
    cmd
}

fn docker_scenarios() -> (Vec<PathBuf>, Vec<PathBuf>) {
    let mut can = Vec::new();
    let mut cannot = Vec::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("scenarios"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    for f in files {
        let s = load(&f);
        if s.capabilities().iter().all(|c| DOCKER_CAPS.contains(c)) {
            can.push(f);
        } else {
            cannot.push(f);
        }
    }
    (can, cannot)
}

#[test]
fn scenarios_on_docker() {
    let (can, _) = docker_scenarios();
    assert!(
        can.iter().any(|p| p.ends_with("aaa-drill.toml")),
        "the AAA drill runs on docker"
    );
    let out = tempfile::tempdir().unwrap();
    let started = Instant::now();
    // All at once: each run has its own network, and its waits are wall-clock time.
    let children: Vec<_> = can
        .iter()
        .map(|f| {
            let child = drill(f, out.path())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            (f.clone(), child)
        })
        .collect();
    let mut failures = Vec::new();
    for (f, child) in children {
        let o = child.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&o.stdout).to_string();
        let s = load(&f);
        let want = s
            .expect
            .get(&ProfileName::Fenced)
            .map_or(Verdict::Pass, |e| e.verdict);
        let got = match o.status.code() {
            Some(0) => Verdict::Pass,
            Some(1) => Verdict::Fail,
            _ => Verdict::Unknown,
        };
        eprintln!(
            "{}: {got} (expected {want}) in {:.0?}",
            f.display(),
            started.elapsed()
        );
        if got != want {
            failures.push(format!(
                "{}: {got}, expected {want}\n{text}\n{}",
                f.display(),
                String::from_utf8_lossy(&o.stderr)
            ));
        }
        if f.ends_with("aaa-drill.toml") {
            assert!(text.contains("Takeover: leader lost at"), "{text}");
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    // The AAA drill's bundle holds the runbook's files and verifies.
    let bundle = std::fs::read_dir(out.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("aaa-drill-fenced-"))
        })
        .expect("an AAA evidence bundle");
    for f in [
        "primary-pre.json",
        "follower-post.json",
        "restore-post.json",
        "bootstrap.json",
        "snapshot-head.txt",
        "telegram-proof.txt",
        "sha256.txt",
        "fault-proof.txt",
    ] {
        assert!(bundle.join(f).exists(), "{} lacks {f}", bundle.display());
    }
    let ok = Command::new("sha256sum")
        .current_dir(&bundle)
        .args(["-c", "--quiet", "sha256.txt"])
        .status()
        .unwrap();
    assert!(ok.success(), "sha256sum -c failed in {}", bundle.display());
}

#[test]
fn scenarios_docker_cannot_express_stop_with_a_capability_message() {
    let (_, cannot) = docker_scenarios();
    assert!(!cannot.is_empty());
    let out = tempfile::tempdir().unwrap();
    for f in cannot {
        let o = drill(&f, out.path()).arg("--no-evidence").output().unwrap();
        let text = String::from_utf8_lossy(&o.stdout);
        assert_eq!(o.status.code(), Some(2), "{}: {text}", f.display());
        assert!(
            text.contains("the docker backend lacks") && text.contains("nothing was run"),
            "{}: {text}",
            f.display()
        );
    }
}

fn leftovers(run: &str) -> Vec<String> {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let d = lifeboat_real::docker::connect().await.unwrap();
        lifeboat_real::docker::cleanup::leftovers(&d, Some(run))
            .await
            .unwrap()
    })
}

#[test]
fn interrupted_drill_leaves_nothing() {
    use std::io::{BufRead, BufReader};
    let out = tempfile::tempdir().unwrap();
    let mut child = drill(&root().join("scenarios/aaa-drill.toml"), out.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let mut run = None;
    let deadline = Instant::now() + Duration::from_secs(300);
    for line in stdout.lines() {
        let line = line.unwrap();
        if let Some(rest) = line.strip_prefix("docker run ") {
            run = rest.split(':').next().map(str::to_string);
        }
        // Midway: the primary leads and has answered the chat; b is not yet bootstrapped.
        if line.contains("step  3") {
            break;
        }
        assert!(Instant::now() < deadline, "the drill made no progress");
    }
    let run = run.expect("the drill names its run");
    assert!(
        !leftovers(&run).is_empty(),
        "run {run} has containers while it runs"
    );
    let pid = child.id().to_string();
    let sent = Command::new("kill").args(["-INT", &pid]).status().unwrap();
    assert!(sent.success());
    let status = child.wait().unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert_eq!(status.code(), Some(130), "{err}");
    assert!(err.contains("interrupted"), "{err}");
    let left = leftovers(&run);
    assert!(left.is_empty(), "run {run} left: {left:?}");
}
