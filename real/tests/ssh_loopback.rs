//! The SSH layer and the remote faults against a real sshd on loopback (see
//! `common/sshd.rs`): commands and exit codes, files, strict host keys, streaming a
//! Docker image between two connections, and cuts healed by heal, by heal_all and by
//! their dead-man's switch. Needs root (iptables) and the Docker engine, as
//! `scripts/test.sh` provides.
//!
//! Cuts use 127.0.0.97-99, where only these tests listen, so loopback traffic that
//! matters (sshd on 127.0.0.1, Docker) is never cut. Each test uses its own address, as
//! they run in parallel.

#[path = "common/sshd.rs"]
mod sshd;

use lifeboat_real::remote_faults::{self, Direction};
use lifeboat_real::ssh::{self, shell_quote, Remote};
use sshd::Sshd;
use std::io::Read as _;
use std::os::unix::fs::PermissionsExt as _;
use std::process::Command;
use std::time::{Duration, Instant};

/// Every test is bounded: a hang is a failure, not a stuck CI job.
const TEST_LIMIT: Duration = Duration::from_secs(180);

fn random_hex(n: usize) -> String {
    let mut b = vec![0u8; n];
    std::fs::File::open("/dev/urandom")
        .unwrap()
        .read_exact(&mut b)
        .unwrap();
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn local_sh(script: &str) -> std::process::Output {
    Command::new("sh").args(["-c", script]).output().unwrap()
}

fn local_check(script: &str) -> String {
    let out = local_sh(script);
    assert!(
        out.status.success(),
        "`{script}` failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

async fn connect(s: &Sshd) -> Remote {
    Remote::connect(&s.target(), &s.control_dir())
        .await
        .unwrap_or_else(|e| panic!("connect: {e:#}\nsshd log:\n{}", s.log()))
}

async fn bounded<F: std::future::Future<Output = ()>>(f: F) {
    tokio::time::timeout(TEST_LIMIT, f)
        .await
        .expect("the test took too long");
}

#[tokio::test]
async fn commands_exit_codes_and_output() {
    bounded(async {
        let s = Sshd::start();
        let r = connect(&s).await;
        let host = format!("127.0.0.1:{}", s.port());

        let out = r.run("echo out; echo err >&2; exit 3").await.unwrap();
        assert_eq!(out.status, Some(3));
        assert!(!out.success());
        assert_eq!(out.stdout_text(), "out\n");
        assert_eq!(out.stderr_text(), "err\n");

        assert_eq!(r.run("true").await.unwrap().status, Some(0));
        assert_eq!(r.run("no-such-command-x").await.unwrap().status, Some(127));
        // ssh cannot tell exit 255 from a signal; neither is a lost connection.
        assert_eq!(r.run("exit 255").await.unwrap().status, None);
        assert_eq!(r.run("kill -9 $$").await.unwrap().status, None);
        assert!(r.run("true").await.unwrap().success(), "still connected");

        assert_eq!(r.check("echo hi").await.unwrap(), "hi\n");
        let err = format!(
            "{:#}",
            r.check("echo one >&2; echo boom >&2; exit 1")
                .await
                .unwrap_err()
        );
        assert!(err.contains(&host), "{err}");
        assert!(err.contains("echo one >&2; echo boom >&2; exit 1"), "{err}");
        assert!(err.contains("exited with status 1"), "{err}");
        assert!(err.ends_with("one\nboom"), "{err}");

        // Quoting survives the remote login shell and `sh -c`.
        for weird in ["it's", "$HOME `id` \"x\" \\ ;|&", "a\nb\tc", ""] {
            let got = r
                .check(&format!("printf %s {}", shell_quote(weird)))
                .await
                .unwrap();
            assert_eq!(got, weird);
        }

        // stdin is fed while both outputs drain: 4 MiB through `cat` and back, more
        // than any pipe buffer holds.
        let big: Vec<u8> = (0..4 << 20).map(|i: u32| (i % 251) as u8).collect();
        let out = r.run_with_input("cat; echo done >&2", &big).await.unwrap();
        assert!(out.success());
        assert!(out.stdout == big, "stdin round trip");
        assert_eq!(out.stderr_text(), "done\n");
        r.close().await.unwrap();
    })
    .await
}

#[tokio::test]
async fn write_file_round_trips_binary_content_and_mode() {
    bounded(async {
        let s = Sshd::start();
        let r = connect(&s).await;
        let mut contents: Vec<u8> = (0..=255u8).collect();
        contents.extend(random_hex(50_000).into_bytes());
        contents.extend([0, b'\'', b'\n', 0xff]);
        let path = s.dir().join("new dir/sub/it's a file");
        let p = path.to_str().unwrap();

        r.write_file(p, &contents, 0o640).await.unwrap();
        assert!(
            std::fs::read(&path).unwrap() == contents,
            "binary round trip"
        );
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o640);
        assert_eq!(
            r.check(&format!("stat -c %a {}", shell_quote(p)))
                .await
                .unwrap(),
            "640\n"
        );

        // Overwrites in place, with the new mode; no temporary file left beside it.
        r.write_file(p, b"short", 0o600).await.unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"short");
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o7777,
            0o600
        );
        let siblings = std::fs::read_dir(path.parent().unwrap()).unwrap().count();
        assert_eq!(siblings, 1);

        let err = format!(
            "{:#}",
            r.write_file("/proc/no/such/file", b"x", 0o600)
                .await
                .unwrap_err()
        );
        assert!(
            err.contains("/proc/no/such/file") && err.contains("127.0.0.1"),
            "{err}"
        );
        r.close().await.unwrap();
    })
    .await
}

#[tokio::test]
async fn host_keys_are_checked_strictly() {
    bounded(async {
        let s = Sshd::start();
        let cd = s.control_dir();

        // A known_hosts entry for this host:port with another key.
        let other = sshd::keygen(&s.dir().join("other_host_key"));
        let mut fields = other.split_whitespace();
        let wrong = format!(
            "[127.0.0.1]:{} {} {}\n",
            s.port(),
            fields.next().unwrap(),
            fields.next().unwrap()
        );
        let mut t = s.target();
        t.known_hosts = s.known_hosts_file("known_hosts_wrong", &wrong);
        let err = format!("{:#}", Remote::connect(&t, &cd).await.unwrap_err());
        assert!(err.contains("host key verification failed"), "{err}");
        assert!(err.contains(&format!("127.0.0.1:{}", s.port())), "{err}");
        assert!(
            err.contains("REMOTE HOST IDENTIFICATION HAS CHANGED"),
            "{err}"
        );

        // Retrying does not wear it down: it fails at once, long before the deadline.
        let start = Instant::now();
        let err = format!(
            "{:#}",
            Remote::connect_retrying(&t, &cd, Duration::from_secs(60))
                .await
                .unwrap_err()
        );
        assert!(err.contains("host key verification failed"), "{err}");
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "retried a host key failure"
        );

        // No key known: refused, and nothing is added (no accept-new).
        t.known_hosts = s.known_hosts_file("known_hosts_empty", "");
        let err = format!(
            "{:#}",
            Remote::connect_retrying(&t, &cd, Duration::from_secs(60))
                .await
                .unwrap_err()
        );
        assert!(err.contains("host key verification failed"), "{err}");
        assert_eq!(std::fs::read_to_string(&t.known_hosts).unwrap(), "");

        // The right key connects.
        let r = connect(&s).await;
        assert!(r.run("true").await.unwrap().success());
        r.close().await.unwrap();
    })
    .await
}

#[tokio::test]
async fn connect_retrying_waits_for_a_booting_server_and_gives_up_clearly() {
    bounded(async {
        // The server comes up 2 s after the first attempt.
        let mut s = Sshd::configure();
        let (t, cd) = (s.target(), s.control_dir());
        let start = Instant::now();
        let pending = tokio::spawn(async move {
            Remote::connect_retrying(&t, &cd, Duration::from_secs(60)).await
        });
        tokio::time::sleep(Duration::from_secs(2)).await;
        s.launch();
        let r = pending.await.unwrap().expect("connects once sshd is up");
        assert!(start.elapsed() >= Duration::from_secs(2));
        assert!(r.run("true").await.unwrap().success());
        r.close().await.unwrap();

        // Nothing listening: gives up at the deadline, naming host:port and the cause.
        let mut t = s.target();
        t.port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let start = Instant::now();
        let err = format!(
            "{:#}",
            Remote::connect_retrying(&t, &s.control_dir(), Duration::from_secs(2))
                .await
                .unwrap_err()
        );
        let waited = start.elapsed();
        assert!(err.contains(&format!("127.0.0.1:{}", t.port)), "{err}");
        assert!(err.contains("not reachable within 2"), "{err}");
        assert!(err.contains("Connection refused"), "{err}");
        assert!(waited >= Duration::from_secs(2) && waited < Duration::from_secs(15));

        // A missing key file is our mistake, not a booting server: no waiting.
        let mut t = s.target();
        t.key = s.dir().join("no-such-key");
        let start = Instant::now();
        let err = format!(
            "{:#}",
            Remote::connect_retrying(&t, &s.control_dir(), Duration::from_secs(60))
                .await
                .unwrap_err()
        );
        assert!(
            err.contains("no-such-key") && err.contains("does not exist"),
            "{err}"
        );
        assert!(start.elapsed() < Duration::from_secs(2));
    })
    .await
}

/// Removes the test image from the local engine, also when the test fails.
struct ImageGuard(String);

impl Drop for ImageGuard {
    fn drop(&mut self) {
        let _ = local_sh(&format!(
            "docker rmi -f {} >/dev/null 2>&1",
            shell_quote(&self.0)
        ));
    }
}

#[tokio::test]
async fn streams_a_docker_image_between_two_connections() {
    bounded(async {
        let s = Sshd::start();
        // A small image FROM scratch: 8 MiB of random bytes (so gzip cannot shrink it
        // and the stream moves real volume) and a marker file.
        let tag = format!("lifeboat-ssh-test:{}", random_hex(6));
        let _guard = ImageGuard(tag.clone());
        let ctx = s.dir().join("image");
        std::fs::create_dir(&ctx).unwrap();
        std::fs::write(ctx.join("hello"), b"hello from lifeboat\n").unwrap();
        local_check(&format!(
            "head -c 8388608 /dev/urandom > {ctx}/blob && tar -c -C {ctx} . | docker import - {t} >/dev/null",
            ctx = shell_quote(ctx.to_str().unwrap()),
            t = shell_quote(&tag)
        ));
        let t = shell_quote(&tag);
        let id = local_check(&format!("docker image inspect --format '{{{{.Id}}}}' {t}"));
        let expect_gz: u64 = local_check(&format!("docker save {t} | gzip -1 | wc -c"))
            .trim()
            .parse()
            .unwrap();
        let expect_sha = local_check(&format!("docker save {t} | sha256sum"));

        let a = connect(&s).await;
        let b = connect(&s).await;

        // The runbook's sender, byte for byte: what B receives is what A's engine saves.
        let sha_file = s.dir().join("received.sha");
        let start = Instant::now();
        let n = ssh::stream(
            &a,
            &format!("docker save {t} | gzip -1"),
            &b,
            &format!(
                "gunzip | sha256sum > {}",
                shell_quote(sha_file.to_str().unwrap())
            ),
        )
        .await
        .unwrap();
        let took = start.elapsed();
        assert_eq!(n, expect_gz, "bytes streamed");
        assert_eq!(std::fs::read_to_string(&sha_file).unwrap(), expect_sha);
        println!(
            "stream: {n} bytes (docker save | gzip -1 of an 8 MiB image) in {took:.2?}: {:.1} MiB/s",
            n as f64 / took.as_secs_f64() / (1 << 20) as f64
        );

        // The runbook's receiver: `docker load` on B restores the image from the stream
        // alone. The engine forgets it first; A sends the save taken before.
        let saved = s.dir().join("saved.tar");
        local_check(&format!(
            "docker save -o {} {t} && docker rmi -f {t} >/dev/null",
            shell_quote(saved.to_str().unwrap())
        ));
        assert!(!local_sh(&format!("docker image inspect {t} >/dev/null 2>&1"))
            .status
            .success());
        let n = ssh::stream(
            &a,
            &format!("gzip -1 < {}", shell_quote(saved.to_str().unwrap())),
            &b,
            "gunzip | docker load",
        )
        .await
        .unwrap();
        assert_eq!(n, expect_gz);
        assert_eq!(
            local_check(&format!("docker image inspect --format '{{{{.Id}}}}' {t}")),
            id,
            "the loaded image is the saved one"
        );

        // Failures name their side, host and stderr.
        let err = format!(
            "{:#}",
            ssh::stream(&a, "echo partial; echo sender-broke >&2; exit 4", &b, "cat >/dev/null")
                .await
                .unwrap_err()
        );
        assert!(err.contains("sending side") && err.contains("exited with status 4"), "{err}");
        assert!(err.contains("sender-broke") && !err.contains("receiving side"), "{err}");
        let err = format!(
            "{:#}",
            ssh::stream(
                &a,
                "head -c 50000000 /dev/zero",
                &b,
                "head -c 10 >/dev/null; echo receiver-broke >&2; exit 5"
            )
            .await
            .unwrap_err()
        );
        assert!(err.contains("receiving side") && err.contains("exited with status 5"), "{err}");
        assert!(err.contains("receiver-broke"), "{err}");
        assert!(err.contains(&format!("127.0.0.1:{}", s.port())), "{err}");
        a.close().await.unwrap();
        b.close().await.unwrap();
    })
    .await
}

/// Heals every cut of a test, also when the test fails.
struct CutGuard(String);

impl Drop for CutGuard {
    fn drop(&mut self) {
        let _ = local_sh(&remote_faults::heal_all(&self.0));
    }
}

fn rules_for(tag: &str) -> Vec<String> {
    local_check("iptables -w -S")
        .lines()
        .filter(|l| l.contains(&format!("--comment lifeboat-{tag}")))
        .map(str::to_string)
        .collect()
}

fn pid_file(tag: &str) -> Option<String> {
    ["/run", "/tmp"]
        .iter()
        .map(|d| format!("{d}/lifeboat-{tag}.pid"))
        .find(|p| std::path::Path::new(p).exists())
}

/// The live (not zombie) processes matching `pgrep_args`, waiting up to 3 s for them to
/// go: a killed process is gone at once, but this machine's init reaps orphans late.
/// The pattern is written `lifeboa[t]-…` so the shell running pgrep does not match.
async fn live(r: &Remote, pgrep_args: &str) -> Vec<String> {
    let cmd = format!(
        "for p in $(pgrep {pgrep_args}); do s=$(ps -o stat= -p $p) && case $s in Z*) ;; *) echo $p ;; esac; done"
    );
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let pids: Vec<String> = r
            .check(&cmd)
            .await
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect();
        if pids.is_empty() || Instant::now() > deadline {
            return pids;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Whether a TCP connect to `ip:port` gets through within a second.
async fn reaches(ip: &str, port: u16) -> bool {
    matches!(
        tokio::time::timeout(
            Duration::from_secs(1),
            tokio::net::TcpStream::connect((ip, port))
        )
        .await,
        Ok(Ok(_))
    )
}

#[tokio::test]
async fn a_cut_is_healed_by_its_dead_mans_switch() {
    bounded(async {
        let s = Sshd::start();
        let tag = format!("test-{}", random_hex(4));
        let _guard = CutGuard(tag.clone());
        let armed = remote_faults::cut(
            &tag,
            "127.0.0.99",
            Direction::Outbound,
            Duration::from_secs(3),
        );
        let r = connect(&s).await;
        r.check(&armed.apply).await.unwrap();
        let shown = r.check("iptables -w -S OUTPUT").await.unwrap();
        assert!(
            shown.contains(&format!(
                "-A OUTPUT -d 127.0.0.99/32 -m comment --comment lifeboat-{tag} -j DROP"
            )),
            "{shown}"
        );
        assert_eq!(rules_for(&tag).len(), 2, "OUTPUT and FORWARD");
        // lifeboat "dies": the connection ends, heal never runs.
        r.close().await.unwrap();
        tokio::time::sleep(Duration::from_secs(5)).await;
        let r = connect(&s).await;
        let shown = r.check("iptables -w -S").await.unwrap();
        assert!(!shown.contains(&format!("lifeboat-{tag}")), "{shown}");
        assert_eq!(pid_file(&tag), None, "the switch removed its pid file");
        r.close().await.unwrap();
    })
    .await
}

#[tokio::test]
async fn heal_removes_a_cut_at_once_and_disarms_its_switch() {
    bounded(async {
        let s = Sshd::start();
        let tag = format!("test-{}", random_hex(4));
        let _guard = CutGuard(tag.clone());
        // Our own listener behind the cut: proof that the rule really drops packets.
        let listener = tokio::net::TcpListener::bind("127.0.0.98:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((c, _)) = listener.accept().await {
                drop(c);
            }
        });
        assert!(reaches("127.0.0.98", port).await);

        let armed = remote_faults::cut(
            &tag,
            "127.0.0.98",
            Direction::Both,
            Duration::from_secs(120),
        );
        let r = connect(&s).await;
        r.check(&armed.apply).await.unwrap();
        assert_eq!(rules_for(&tag).len(), 4);
        assert!(!reaches("127.0.0.98", port).await, "the cut drops packets");
        let pid = std::fs::read_to_string(pid_file(&tag).expect("switch armed")).unwrap();
        let pid = pid.trim();
        // The switch and its sleep share a process group led by the switch.
        let group = live(&r, &format!("-g {pid}")).await;
        assert_eq!(group.len(), 2, "sh and sleep: {group:?}");
        let by_tag = live(&r, &format!("-f 'lifeboa[t]-{tag}'")).await;
        assert_eq!(by_tag, [pid.to_string()]);

        let start = Instant::now();
        r.check(&armed.heal).await.unwrap();
        println!("heal of a 4-rule cut: {:.0?}", start.elapsed());
        assert!(rules_for(&tag).is_empty());
        assert!(reaches("127.0.0.98", port).await, "healed");
        assert_eq!(
            live(&r, &format!("-g {pid}")).await,
            Vec::<String>::new(),
            "no switch, no sleep"
        );
        assert_eq!(
            live(&r, &format!("-f 'lifeboa[t]-{tag}'")).await,
            Vec::<String>::new()
        );
        assert_eq!(pid_file(&tag), None);
        // Healing twice is harmless.
        r.check(&armed.heal).await.unwrap();
        r.close().await.unwrap();
    })
    .await
}

#[tokio::test]
async fn heal_all_removes_leftovers_by_prefix() {
    bounded(async {
        let s = Sshd::start();
        let run = format!("test-{}", random_hex(4));
        let other = format!("other-{}", random_hex(4));
        let _guard = CutGuard(run.clone());
        let _other_guard = CutGuard(other.clone());
        let r = connect(&s).await;
        let long = Duration::from_secs(120);
        r.check(
            &remote_faults::cut(&format!("{run}-1"), "127.0.0.97", Direction::Inbound, long).apply,
        )
        .await
        .unwrap();
        r.check(
            &remote_faults::cut(&format!("{run}-2"), "127.0.0.97", Direction::Outbound, long).apply,
        )
        .await
        .unwrap();
        let keep = remote_faults::cut(&other, "127.0.0.97", Direction::Outbound, long);
        r.check(&keep.apply).await.unwrap();
        assert_eq!(rules_for(&run).len(), 4);

        r.check(&remote_faults::heal_all(&run)).await.unwrap();
        assert!(rules_for(&run).is_empty());
        assert_eq!(
            live(&r, &format!("-f 'lifeboa[t]-{run}'")).await,
            Vec::<String>::new()
        );
        assert_eq!(pid_file(&format!("{run}-1")), None);
        // Another run's cut is not touched.
        assert_eq!(rules_for(&other).len(), 2);
        assert!(pid_file(&other).is_some());
        r.check(&keep.heal).await.unwrap();
        assert!(rules_for(&other).is_empty());
        r.close().await.unwrap();
    })
    .await
}

#[tokio::test]
async fn timings() {
    bounded(async {
        let s = Sshd::start();
        let start = Instant::now();
        let r = connect(&s).await;
        let connect_time = start.elapsed();
        let start = Instant::now();
        for _ in 0..20 {
            r.check("true").await.unwrap();
        }
        let per_cmd = start.elapsed() / 20;
        // Commands multiplexed in parallel over one connection.
        let start = Instant::now();
        let runs: Vec<_> = (0..8).map(|_| r.check("true")).collect();
        for out in futures_util::future::join_all(runs).await {
            out.unwrap();
        }
        let parallel = start.elapsed();
        // The stream's own cost: 64 MiB through two connections and this process.
        let r2 = connect(&s).await;
        let start = Instant::now();
        let n = ssh::stream(&r, "head -c 67108864 /dev/zero", &r2, "cat >/dev/null")
            .await
            .unwrap();
        let took = start.elapsed();
        assert_eq!(n, 64 << 20);
        println!(
            "ssh loopback: connect {connect_time:.0?}, one command {per_cmd:.0?}, 8 in parallel \
             {parallel:.0?}, stream transport {:.0} MiB/s",
            64.0 / took.as_secs_f64()
        );
        r.close().await.unwrap();
        r2.close().await.unwrap();
    })
    .await
}
