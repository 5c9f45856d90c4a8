//! The real backend end to end, against local doubles: `lifeboat drill --backend real`
//! rents "servers" from the Hetzner Cloud double, and each server is a real sshd
//! (Debian's openssh-server) on its own loopback address, booted the way cloud-init
//! boots a Hetzner server: with the host key lifeboat put into the create call's user
//! data, so host-key checking stays strict. The service on them is the file-backed
//! stand-in of tests/fixtures/real/loopback-target.toml.
//!
//! - `interrupted_in_every_phase_leaves_no_server_and_no_cut`: Ctrl-C in each phase of a
//!   run (creating servers, waiting for them, SSH, preparing, starting, a cut in force, a
//!   stopped node) ends with every server deleted and every iptables rule healed.
//! - `a_finished_drill_writes_no_secret`: every file the drill wrote, and everything it
//!   printed, is searched for the tokens it was given; none is found.
//!
//! Needs root (sshd, iptables), /usr/sbin/sshd (scripts/test.sh installs
//! openssh-server) and iptables.

use lifeboat_real::doubles::hetzner::HetznerDouble;
use std::io::{BufRead, BufReader, Read};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const SSHD: &str = "/usr/sbin/sshd";
const LIFEBOAT: &str = env!("CARGO_BIN_EXE_lifeboat");
/// Where the Telegram endpoint "lives" for cuts: nothing listens there, so a cut of it
/// never touches the test's own traffic.
const TELEGRAM_HOST: &str = "127.0.0.98";

fn sh(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The private half of the host key in cloud-init user data (`ssh_keys:
/// ed25519_private: |` followed by the key indented four spaces).
fn host_key_from_user_data(user_data: &str) -> String {
    let mut out = String::new();
    let mut inside = false;
    for line in user_data.lines() {
        if line.trim_start().starts_with("ed25519_private:") {
            inside = true;
            continue;
        }
        if inside {
            match line.strip_prefix("    ") {
                Some(l) => {
                    out.push_str(l);
                    out.push('\n');
                }
                None => break,
            }
        }
    }
    assert!(out.contains("PRIVATE KEY"), "no host key in the user data");
    out
}

/// One rented "server": an sshd on its own loopback address.
struct Server {
    child: Child,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Boots a server as cloud-init would: the host key from the user data, the operator's
/// key authorized, sshd listening on `ip:port`.
fn boot(dir: &Path, ip: IpAddr, port: u16, user_data: &str, authorized: &str) -> Server {
    let d = dir.join(ip.to_string());
    std::fs::create_dir_all(&d).unwrap();
    let key = d.join("host_ed25519");
    std::fs::write(&key, host_key_from_user_data(user_data)).unwrap();
    sh(Command::new("chmod").arg("600").arg(&key));
    std::fs::write(d.join("authorized_keys"), authorized).unwrap();
    let cfg = d.join("sshd_config");
    std::fs::write(
        &cfg,
        format!(
            "ListenAddress {ip}:{port}\nHostKey {k}\nAuthorizedKeysFile {a}\nPidFile {p}\n\
             PubkeyAuthentication yes\nAuthenticationMethods publickey\nPasswordAuthentication no\n\
             KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\nStrictModes no\n\
             UsePAM no\nMaxSessions 64\n",
            k = key.display(),
            a = d.join("authorized_keys").display(),
            p = d.join("sshd.pid").display(),
        ),
    )
    .unwrap();
    std::fs::create_dir_all("/run/sshd").unwrap();
    let log = std::fs::File::create(d.join("sshd.log")).unwrap();
    let child = Command::new(SSHD)
        .args(["-D", "-e", "-f"])
        .arg(&cfg)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("starting {SSHD}: {e}"));
    Server { child }
}

/// The doubles and the "data centre": the Hetzner double, and a thread that boots an
/// sshd for each server the double creates.
struct World {
    double: HetznerDouble,
    api: String,
    token: String,
    port: u16,
    dir: tempfile::TempDir,
    client_key: PathBuf,
    servers: Arc<Mutex<Vec<Server>>>,
    stop: Arc<AtomicBool>,
    rt: tokio::runtime::Runtime,
    target: PathBuf,
    root: PathBuf,
}

impl World {
    fn new(token: &str) -> World {
        assert!(
            Path::new(SSHD).exists(),
            "{SSHD} is missing: run scripts/test.sh, which installs openssh-server"
        );
        let dir = tempfile::Builder::new()
            .prefix("lbreal")
            .tempdir_in("/tmp")
            .unwrap();
        let client_key = dir.path().join("operator_ed25519");
        sh(Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "operator", "-f"])
            .arg(&client_key));
        let rt = tokio::runtime::Runtime::new().unwrap();
        let double = HetznerDouble::new(token);
        // Every server gets its own loopback address, so each has its own sshd.
        let base = 10 + (std::process::id() % 200) as u8;
        double.set_server_ips(
            (0..8)
                .map(|i| IpAddr::V4(Ipv4Addr::new(127, 0, 1, base.wrapping_add(i))))
                .collect(),
        );
        let (addr, _task) = rt
            .block_on(double.serve(SocketAddr::from(([127, 0, 0, 1], 0))))
            .unwrap();
        let root = dir.path().join("srv");
        let target = dir.path().join("loopback-target.toml");
        let text = std::fs::read_to_string("tests/fixtures/real/loopback-target.toml").unwrap();
        std::fs::write(
            &target,
            text.replace("/tmp/lifeboat-loopback", &root.display().to_string()),
        )
        .unwrap();
        let world = World {
            double,
            api: format!("http://{addr}/v1"),
            token: token.to_string(),
            port: free_port(),
            dir,
            client_key,
            servers: Arc::default(),
            stop: Arc::default(),
            rt,
            target,
            root,
        };
        world.watch();
        world
    }

    /// Boots an sshd for every server the double created (cloud-init's part).
    fn watch(&self) {
        let (double, servers, stop) =
            (self.double.clone(), self.servers.clone(), self.stop.clone());
        let (dir, port) = (self.dir.path().to_path_buf(), self.port);
        let authorized = std::fs::read_to_string(self.client_key.with_extension("pub")).unwrap();
        std::thread::spawn(move || {
            let mut booted = 0;
            while !stop.load(Ordering::Relaxed) {
                let created: Vec<_> = double
                    .requests()
                    .into_iter()
                    .filter(|r| r.method == "POST" && r.path == "/v1/servers" && r.status == 201)
                    .collect();
                for r in created.iter().skip(booted) {
                    let body = r.body.as_ref().expect("create has a JSON body");
                    let name = body["name"].as_str().unwrap();
                    booted += 1;
                    // Deleted before it could boot (a run interrupted while creating).
                    let Some(ip) = double.server_ip(name) else {
                        continue;
                    };
                    let user_data = body["user_data"].as_str().expect("user data");
                    let s = boot(&dir, ip, port, user_data, &authorized);
                    servers.lock().unwrap().push(s);
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        });
    }

    fn command(&self, out: &Path) -> Command {
        let mut c = Command::new(LIFEBOAT);
        c.args([
            "drill",
            "tests/fixtures/real/loopback-drill.toml",
            "--backend",
            "real",
            "--yes",
        ])
        .arg("--target")
        .arg(&self.target)
        .args(["--hetzner-api", &self.api])
        .arg("--ssh-key")
        .arg(&self.client_key)
        .args(["--ssh-port", &self.port.to_string()])
        .args(["--telegram-double", "http://127.0.0.1:9"])
        .args(["--service-host", &format!("telegram={TELEGRAM_HOST}")])
        .arg("--node-binary")
        .arg(LIFEBOAT)
        .arg("--out")
        .arg(out)
        .env("HCLOUD_TOKEN", &self.token)
        .env("LOOPBACK_SERVICE_TOKEN", SERVICE_TOKEN)
        .env("TELEGRAM_BOT_TOKEN", BOT_TOKEN)
        .env("TMPDIR", self.dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        c
    }

    fn servers_left(&self) -> Vec<String> {
        self.double.server_names()
    }
}

impl Drop for World {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.servers.lock().unwrap().clear();
        let _ = &self.rt;
    }
}

const SERVICE_TOKEN: &str = "svc-9f8e7d6c5b4a39281706f5e4d3c2b1a0-loopback";
const BOT_TOKEN: &str = "5000000002:AAH-lifeboat-test-bot-token-never-printed";

/// Every lifeboat iptables rule of this machine (a healed run leaves none).
fn lifeboat_rules(run_tag: &str) -> Vec<String> {
    let out = sh(&mut Command::new("iptables-save"));
    out.lines()
        .filter(|l| l.contains("lifeboat-") && l.contains(run_tag))
        .map(str::to_string)
        .collect()
}

/// Reads a child's stdout line by line until one contains `marker` (or it ends).
fn wait_for_line(child: &mut Child, marker: &str, seen: &mut Vec<String>) -> bool {
    let stdout = child.stdout.as_mut().unwrap();
    let mut reader = BufReader::new(stdout);
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut line = String::new();
    while Instant::now() < deadline {
        line.clear();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return false;
        }
        seen.push(line.trim_end().to_string());
        if line.contains(marker) {
            return true;
        }
    }
    false
}

fn run_id(lines: &[String]) -> Option<String> {
    lines.iter().find_map(|l| {
        l.split("servers labelled lifeboat.run=")
            .nth(1)
            .map(|r| r.split(';').next().unwrap().trim().to_string())
    })
}

#[test]
fn interrupted_in_every_phase_leaves_no_server_and_no_cut() {
    let world = World::new("hctest-interrupt-0123456789abcdef0123456789abcdef");
    let phases = [
        "phase: provision — creating server",
        "phase: provision — waiting for server",
        "phase: connect",
        "phase: prepare a — install",
        "phase: prepare b — stage",
        "phase: start a",
        "phase: fault — partition",
        "phase: fault — stop",
    ];
    for phase in phases {
        let out = world.dir.path().join("out-interrupt");
        let mut child = world.command(&out).spawn().unwrap();
        let mut seen = Vec::new();
        let reached = wait_for_line(&mut child, phase, &mut seen);
        if !reached {
            let _ = child.kill();
            let mut err = String::new();
            let _ = child.stderr.take().unwrap().read_to_string(&mut err);
            panic!(
                "the run never reached `{phase}`:\n{}\n{err}",
                seen.join("\n")
            );
        }
        let id = run_id(&seen).expect("the run printed its id");
        if phase == "phase: fault — stop" {
            // The cut is in force now: teardown, not its dead-man's switch (15 minutes
            // away), must heal it.
            assert!(!lifeboat_rules(&id).is_empty(), "the cut is not in place");
        }
        // Ctrl-C.
        sh(Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .stdout(Stdio::null()));
        let mut rest = String::new();
        let _ = child.stdout.take().unwrap().read_to_string(&mut rest);
        let mut err = String::new();
        let _ = child.stderr.take().unwrap().read_to_string(&mut err);
        let status = child.wait().unwrap();
        assert_eq!(
            status.code(),
            Some(130),
            "interrupted at `{phase}`: exit {status}\n{}\n{rest}\n{err}",
            seen.join("\n")
        );
        assert!(
            err.contains("torn down: nothing of run"),
            "interrupted at `{phase}`: {err}"
        );
        let left = world.servers_left();
        assert!(
            left.is_empty(),
            "interrupted at `{phase}`: servers left: {left:?}"
        );
        let rules = lifeboat_rules(&id);
        assert!(
            rules.is_empty(),
            "interrupted at `{phase}`: iptables rules left: {rules:?}"
        );
    }
}

#[test]
fn a_finished_drill_writes_no_secret() {
    let token = "hctest-secret-fedcba9876543210fedcba9876543210";
    let world = World::new(token);
    let out = world.dir.path().join("out-secrets");
    let output = world.command(&out).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        matches!(output.status.code(), Some(0) | Some(1)),
        "the drill did not finish: {:?}\n{stdout}\n{stderr}",
        output.status
    );
    assert!(stdout.contains("Verdict:"), "{stdout}\n{stderr}");
    eprintln!("{stdout}");
    assert!(
        world.servers_left().is_empty(),
        "{:?}",
        world.servers_left()
    );
    // The cut was applied and healed, with proof.
    let bundle = std::fs::read_dir(&out)
        .unwrap()
        .flatten()
        .next()
        .expect("an evidence bundle")
        .path();
    let proof = std::fs::read_to_string(bundle.join("fault-proof.txt")).unwrap();
    assert!(proof.contains("applied on a"), "{proof}");
    assert!(
        proof.contains("healed on a") || stdout.contains("healing faults"),
        "{proof}"
    );

    // The tokens it was given, and the operator's private key.
    let key = std::fs::read_to_string(&world.client_key).unwrap();
    let key_body: Vec<&str> = key
        .lines()
        .filter(|l| !l.starts_with("-----") && l.len() > 20)
        .collect();
    let mut secrets: Vec<&str> = vec![token, SERVICE_TOKEN, BOT_TOKEN];
    secrets.extend(key_body);
    let mut files = Vec::new();
    collect_files(&out, &mut files);
    // The run's own work directory (known_hosts, control sockets) too.
    for e in std::fs::read_dir(world.dir.path()).unwrap().flatten() {
        if e.file_name()
            .to_string_lossy()
            .starts_with("lifeboat-real-")
        {
            collect_files(&e.path(), &mut files);
        }
    }
    assert!(
        files.len() >= 5,
        "too few files to be the bundle: {files:?}"
    );
    let mut texts: Vec<(String, String)> = files
        .iter()
        .map(|f| {
            (
                f.display().to_string(),
                String::from_utf8_lossy(&std::fs::read(f).unwrap_or_default()).into_owned(),
            )
        })
        .collect();
    texts.push(("stdout".into(), stdout.clone()));
    texts.push(("stderr".into(), stderr.clone()));
    for (name, text) in &texts {
        for s in &secrets {
            assert!(!text.contains(s), "{name} holds a secret ({}…)", &s[..8]);
        }
    }
    // The service's token reached the node, through standard input into a 0600 file.
    let env_file = world.root.join("node.env");
    let env = std::fs::read_to_string(&env_file).unwrap();
    assert!(env.contains(SERVICE_TOKEN), "{env}");
    let mode = sh(Command::new("stat").args(["-c", "%a"]).arg(&env_file));
    assert_eq!(mode.trim(), "600");
}

fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        let ft = e.file_type().unwrap();
        if ft.is_dir() {
            collect_files(&p, out);
        } else if ft.is_file() {
            out.push(p);
        }
    }
}

#[test]
fn the_dry_run_prints_the_whole_plan_and_touches_nothing() {
    let out = Command::new(LIFEBOAT)
        .args([
            "drill",
            "scenarios/aaa-drill.toml",
            "--backend",
            "real",
            "--dry-run",
        ])
        .env_remove("HCLOUD_TOKEN")
        .env_remove("TELEGRAM_BOT_TOKEN")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // In order: the price, the servers (B and C only: A is the existing primary), the
    // runbook's copies and image staging, phase 0, the bootstrap, the leader loss, the
    // Telegram proof, phase 5, and the deletion.
    let expected = [
        "a live run needs --host a=ADDR",
        "GET https://api.hetzner.cloud/v1/server_types?name=cpx11",
        "POST /v1/servers name=lifeboat-",
        "user_data: <cloud-config with the server's host key, redacted>",
        "docker save opentrident:latest | gzip -1",
        "docker load",
        "manifest bootstrap --json",
        "node dist/index.js bootstrap --from http://127.0.0.1:18890/bootstrap.json",
        "docker stop opentrident-gateway opentrident-cli",
        "you send the bot (from your Telegram): \"drill: who answers now? [<one-time code>]\"",
        "sha256sum -- trust-telemetry-v1.json bootstrap.json snapshot-head",
        "DELETE /v1/servers/<id of lifeboat-",
    ];
    let mut from = 0;
    for e in expected {
        let at = text[from..]
            .find(e)
            .unwrap_or_else(|| panic!("`{e}` missing (or out of order) in the plan:\n{text}"));
        from += at + e.len();
    }
    assert_eq!(
        text.matches("POST /v1/servers name=").count(),
        2,
        "two servers, B and C:\n{text}"
    );
    assert!(
        text.contains("A live run needs HCLOUD_TOKEN and TELEGRAM_BOT_TOKEN"),
        "{text}"
    );
}
