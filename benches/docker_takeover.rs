//! Wall-clock takeover latency on the docker backend: `benches/docker-takeover.toml` run N
//! times as `lifeboat drill --backend docker`, each run timing two takeovers (after a
//! SIGKILL, when the lease must run out; after a graceful stop, when it is handed back),
//! read from each run's `verdict.json`, beside the lease settings used.
//!
//! Not a criterion timing: one sample is a minute of real containers, and the figure is
//! the drill's own measurement (leader loss to the first poll by the new leader).
//!
//! `cargo bench --bench docker_takeover`: 2 runs; `LIFEBOAT_BENCH_FULL=1`: 10 runs. Needs
//! the Docker engine and Debian's etcd-server, as `tests/docker.rs` does; without Docker
//! it says so and measures nothing.

mod common;

use common::{mode, pick, secs, Table};
use lifeboat_model::profile::{Profile, ProfileName};
use lifeboat_model::time::Millis;
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The static lifeboat the node image needs: `$LIFEBOAT_NODE_BINARY`, or built here.
fn node_binary() -> PathBuf {
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
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"))
        .join(target)
        .join("debug")
        .join("lifeboat")
}

/// The two takeovers of one run, in order (kill, then graceful stop), in milliseconds.
fn one_run(bin: &Path, out: &Path) -> Result<Vec<u64>, String> {
    let run = Command::new(env!("CARGO_BIN_EXE_lifeboat"))
        .current_dir(root())
        .args([
            "drill",
            "benches/docker-takeover.toml",
            "--backend",
            "docker",
        ])
        .args(["--profile", "fenced", "--quiet", "--out"])
        .arg(out)
        .arg("--node-binary")
        .arg(bin)
        .output()
        .map_err(|e| format!("cannot run lifeboat: {e}"))?;
    let said = String::from_utf8_lossy(&run.stdout).trim().to_string();
    if !run.status.success() {
        return Err(format!("the drill did not pass: {said}"));
    }
    let bundle = std::fs::read_dir(out)
        .map_err(|e| e.to_string())?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.join("verdict.json").exists())
        .ok_or("no evidence bundle written")?;
    let verdict: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(bundle.join("verdict.json")).map_err(|e| e.to_string())?,
    )
    .map_err(|e| e.to_string())?;
    let latencies: Vec<u64> = verdict["takeovers"]
        .as_array()
        .ok_or("verdict.json has no takeovers")?
        .iter()
        .filter_map(|t| t["latency"].as_u64())
        .collect();
    if latencies.len() != 2 {
        return Err(format!("expected two takeovers, found {latencies:?}"));
    }
    Ok(latencies)
}

fn summary(kind: &str, mut ms: Vec<u64>, t: &mut Table) {
    ms.sort_unstable();
    let at = |q: f64| Millis(ms[((ms.len() - 1) as f64 * q).round() as usize]);
    t.row(vec![
        kind.to_string(),
        ms.len().to_string(),
        secs(Some(Millis(ms[0]))),
        secs(Some(at(0.5))),
        secs(ms.last().map(|m| Millis(*m))),
    ]);
}

fn main() {
    let docker_up = Command::new("docker")
        .args(["version", "--format", "{{.Server.Version}}"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !docker_up {
        println!("docker_takeover: no Docker engine reachable here; nothing measured");
        return;
    }
    let runs = pick(2, 10);
    let bin = node_binary();
    let mut kill = Vec::new();
    let mut stop = Vec::new();
    for i in 0..runs {
        let out = tempfile::tempdir().expect("a temporary directory");
        match one_run(&bin, out.path()) {
            Ok(l) => {
                println!("run {}/{runs}: kill {} ms, stop {} ms", i + 1, l[0], l[1]);
                kill.push(l[0]);
                stop.push(l[1]);
            }
            Err(e) => panic!("docker takeover run {} failed: {e}", i + 1),
        }
    }
    let Profile::Fenced(p) = Profile::default_for(ProfileName::Fenced) else {
        unreachable!("fenced is fenced")
    };
    let mut t = Table::new(&["leader lost by", "runs", "min", "p50", "max"]);
    summary("SIGKILL (lease runs out)", kill, &mut t);
    summary("graceful stop (lease revoked)", stop, &mut t);
    t.print(&format!(
        "docker backend, fenced, wall-clock takeover ({} mode; lease TTL {}, renew every {}, request timeout {})",
        mode(),
        secs(Some(p.lease_ttl)),
        secs(Some(p.renew_every)),
        secs(Some(p.request_timeout))
    ));
}
