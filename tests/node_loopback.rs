//! The node daemon for real on loopback: two `lifeboat node` processes, a real etcd
//! (Debian's `etcd-server`, `/usr/bin/etcd`) and the Telegram and releases doubles, all
//! on 127.0.0.1. A blank node bootstraps from a manifest and follows; the leader is
//! killed with SIGKILL; the follower takes over and answers the chat; the merged history
//! passes the checkers.
//!
//! Needs `/usr/bin/etcd` (`scripts/test.sh` installs etcd-server when it is missing).

use lifeboat_model::bootstrap::BootstrapManifest;
use lifeboat_model::check::{self, CheckConfig, Invariant};
use lifeboat_model::history::{Event, Role};
use lifeboat_model::node::{Dashboard, Disk};
use lifeboat_model::profile::{FencedParams, Profile};
use lifeboat_model::snapshot::{self, SnapshotKey};
use lifeboat_model::{Millis, NodeId};
use lifeboat_real::clients::ReleasesClient;
use lifeboat_real::doubles::{releases, telegram, ReleasesDouble, TelegramDouble};
use lifeboat_real::events::{self, HistoryPage, Stamped};
use lifeboat_real::node::{self as daemon, store::ReleasesStore};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn profile() -> Profile {
    Profile::Fenced(FencedParams {
        lease_ttl: Millis::secs(4),
        renew_every: Millis::secs(1),
        poll_timeout: Millis::secs(2),
        watch_timeout: Millis::secs(2),
        ..FencedParams::default()
    })
}

#[allow(clippy::too_many_arguments)]
fn node(
    id: &str,
    data: &Path,
    port: u16,
    etcd: &str,
    tg: SocketAddr,
    rel: SocketAddr,
    key: &SnapshotKey,
    bootstrap: Option<&Path>,
) -> Kill {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_lifeboat"));
    cmd.arg("node");
    match bootstrap {
        Some(m) => cmd.args(["bootstrap", "--from"]).arg(m),
        None => cmd.arg("run"),
    };
    cmd.args(["--id", id, "--data"])
        .arg(data)
        .args(["--listen", &format!("127.0.0.1:{port}"), "--etcd", etcd])
        .args(["--telegram", &format!("http://{tg}")])
        .args(["--releases", &format!("http://{rel}")])
        .env(
            "LIFEBOAT_PROFILE",
            serde_json::to_string(&profile()).unwrap(),
        )
        .env("TELEGRAM_BOT_TOKEN", telegram::TEST_TOKEN)
        .env("GITHUB_TOKEN", releases::TEST_TOKEN)
        .env("SNAPSHOT_SIGNING_KEY", hex::encode(key.to_seed()))
        .stdout(Stdio::null());
    Kill(cmd.spawn().expect("lifeboat node starts"))
}

async fn dashboard(port: u16) -> Option<Dashboard> {
    reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}/api/dashboard-data"))
        .timeout(Duration::from_secs(1))
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()
}

async fn wait_until<F: Fn(&Dashboard) -> bool>(port: u16, within: Duration, what: &str, f: F) {
    let deadline = Instant::now() + within;
    loop {
        let d = dashboard(port).await;
        if d.as_ref().is_some_and(&f) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what} within {within:?}; last: {d:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn tg_history(tg: SocketAddr) -> Vec<Stamped> {
    let page: HistoryPage = reqwest::get(format!("http://{tg}/inject/history"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    page.entries
}

async fn replied_by(tg: SocketAddr, update: i64, within: Duration) -> NodeId {
    let deadline = Instant::now() + within;
    loop {
        let found = tg_history(tg).await.iter().find_map(|e| match &e.event {
            Event::ChatReplied {
                update_id, node, ..
            } if *update_id == update => Some(*node),
            _ => None,
        });
        if let Some(n) = found {
            return n;
        }
        assert!(
            Instant::now() < deadline,
            "update {update} not answered within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn node_events(data: &Path) -> Vec<Stamped> {
    std::fs::read_to_string(daemon::events_path(data))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn two_daemons_fail_over_through_etcd() {
    let etcd_bin = PathBuf::from("/usr/bin/etcd");
    assert!(
        etcd_bin.exists(),
        "this test needs etcd: apt-get install etcd-server (scripts/test.sh does)"
    );
    let tmp = tempfile::tempdir().unwrap();
    let (cport, pport) = (free_port(), free_port());
    let etcd_url = format!("http://127.0.0.1:{cport}");
    let _etcd = Kill(
        Command::new(&etcd_bin)
            .args(["--name", "t", "--data-dir"])
            .arg(tmp.path().join("etcd"))
            .args(["--listen-client-urls", &etcd_url])
            .args(["--advertise-client-urls", &etcd_url])
            .args(["--listen-peer-urls", &format!("http://127.0.0.1:{pport}")])
            .args([
                "--initial-advertise-peer-urls",
                &format!("http://127.0.0.1:{pport}"),
            ])
            .args(["--initial-cluster", &format!("t=http://127.0.0.1:{pport}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("etcd starts"),
    );
    let (tg, _t1) = TelegramDouble::new(telegram::TEST_TOKEN)
        .serve("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let (rel, _t2) = ReleasesDouble::new(releases::TEST_TOKEN)
        .serve("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while reqwest::get(format!("{etcd_url}/health")).await.is_err() {
        assert!(Instant::now() < deadline, "etcd did not come up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let origin = events::now_us();

    // Genesis: the primary's state, published as the chain's first snapshot.
    let key = SnapshotKey::from_seed([7; 32]);
    let rel_url = reqwest::Url::parse(&format!("http://{rel}")).unwrap();
    let store = ReleasesStore::new(
        ReleasesClient::new(
            rel_url.clone(),
            rel_url,
            "lifeboat",
            "snapshots",
            releases::TEST_TOKEN,
        )
        .unwrap(),
    );
    let mut disk = Disk::primary();
    let b = snapshot::create(
        &key,
        disk.files.clone(),
        None,
        0,
        Millis(origin / 1000),
        Millis::secs(3600),
    )
    .unwrap();
    let genesis_us = events::now_us();
    store.publish(&b, Some(0)).await.unwrap();
    // The store's own record of the genesis publish, as the docker backend writes it:
    // chain-intact judges the heads served against what the store accepted.
    let stored = lifeboat_model::proto::StoredBundle::Lifeboat(b.clone());
    let genesis = [
        Event::PublishAttempted {
            node: NodeId(0),
            id: stored.id().to_string(),
            version: 1,
            parent: None,
            token: Some(0),
            digest: lifeboat_model::store::content_digest(&stored),
        },
        Event::SnapshotPublished {
            node: NodeId(0),
            id: stored.id().to_string(),
            version: 1,
            parent: None,
            token: Some(0),
            state_version: disk.state_version(),
            accepted: true,
            note: String::new(),
        },
    ]
    .map(|event| Stamped {
        at_us: genesis_us,
        event,
    });
    disk.head_manifest = Some(b.manifest.clone());
    disk.trust.highest = Some((1, snapshot::digest(&b.manifest)));
    disk.snapshot_head = Some(b.manifest.manifest.id.clone());
    let (da, db) = (tmp.path().join("a"), tmp.path().join("b"));
    std::fs::create_dir_all(&da).unwrap();
    daemon::write_disk(&da, &disk).unwrap();
    let manifest = BootstrapManifest::new(
        &b.manifest.manifest.id,
        "http://releases",
        "lifeboat-node:test",
        &key.public(),
        vec![],
        Millis(origin / 1000),
    );
    let mpath = tmp.path().join("bootstrap.json");
    std::fs::write(&mpath, serde_json::to_string(&manifest).unwrap()).unwrap();

    let (pa, pb) = (free_port(), free_port());
    let mut a = node("a", &da, pa, &etcd_url, tg, rel, &key, None);
    wait_until(pa, Duration::from_secs(40), "a leads", |d| {
        d.role == Role::Leader && d.readyz
    })
    .await;
    let _b = node("b", &db, pb, &etcd_url, tg, rel, &key, Some(&mpath));
    wait_until(
        pb,
        Duration::from_secs(40),
        "b restores and follows a",
        |d| {
            d.role == Role::Follower
                && d.observed_leader == Some(NodeId(0))
                && d.snapshot_head.is_some()
        },
    )
    .await;

    let http = reqwest::Client::new();
    let inject = |text: &'static str| {
        let http = http.clone();
        async move {
            let v: serde_json::Value = http
                .post(format!("http://{tg}/inject/message"))
                .json(&serde_json::json!({"chat_id": 4242, "text": text}))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            v["update_id"].as_i64().unwrap()
        }
    };
    let u1 = inject("before").await;
    assert_eq!(replied_by(tg, u1, Duration::from_secs(10)).await, NodeId(0));

    // SIGKILL the leader: its lease must run out in etcd before b may take over.
    let killed_at = Instant::now();
    let kill_us = events::now_us();
    a.0.kill().unwrap();
    a.0.wait().unwrap();
    wait_until(pb, Duration::from_secs(20), "b takes over", |d| {
        d.role == Role::Leader && d.readyz
    })
    .await;
    let took = killed_at.elapsed();
    assert!(
        took >= Duration::from_secs(2),
        "b led {took:?} after the kill: sooner than a 4 s lease could expire"
    );
    let u2 = inject("after").await;
    assert_eq!(replied_by(tg, u2, Duration::from_secs(10)).await, NodeId(1));

    // The merged history passes the checkers that judge this run.
    let exited = vec![Stamped {
        at_us: kill_us,
        event: Event::ProcessExited {
            node: NodeId(0),
            code: None,
            how: "kill".into(),
        },
    }];
    let (ea, eb, et) = (node_events(&da), node_events(&db), tg_history(tg).await);
    let h = events::merge(origin, &[&genesis, &exited, &ea, &eb, &et]);
    let cfg = CheckConfig {
        takeover_bound: profile().takeover_bound(),
        rpo_bound: profile().rpo_bound(),
        observe_lag: profile().observe_lag(),
    };
    for inv in [
        Invariant::LeaderExclusive,
        Invariant::PollExclusive,
        Invariant::ChatAnswered,
        Invariant::TakeoverBounded,
        Invariant::ChainIntact,
        Invariant::HealthTruthful,
    ] {
        let r = check::check(inv, &h, &cfg);
        assert!(r.ok(), "{inv}: {:?}\n{}", r.violations, h.to_jsonl());
    }
    let t = check::takeovers(&h);
    assert!(
        t.iter().any(|t| t.new_leader == Some(NodeId(1))),
        "the history shows b's takeover: {t:?}"
    );
}
